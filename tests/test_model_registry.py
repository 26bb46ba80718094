"""wordnet.tracking.model_registry: one version per run, described, and the aliases
`reproduced` and `best` on the versions they name."""
import pytest


@pytest.fixture
def logged(tracking_uri):
    """Makes a finished run with a logged model (the smallest pyfunc model: registering
    needs one, not ours); returns (run ID, model ID)."""
    import mlflow

    class Identity(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input

    mlflow.set_experiment("registry")          # not the active one of an earlier test's store

    def make(tags=None):
        with mlflow.start_run() as run:
            info = mlflow.pyfunc.log_model(name="m", python_model=Identity())
        if tags:
            mlflow.MlflowClient().set_logged_model_tags(info.model_id, tags)
        return run.info.run_id, info.model_id
    return make


def test_one_version_per_run_its_description_the_latest(logged):
    from mlflow import MlflowClient

    from wordnet.tracking.model_registry import register
    run_id, model_id = logged({"wordnet.reproduce": "passed", "other": "x"})
    first, _ = register("wordnet", run_id, model_id, "trained", None, False)
    again, _ = register("wordnet", run_id, model_id, "trained, then tested", None, False)
    assert first == again == "1"
    [version] = MlflowClient().search_model_versions("name = 'wordnet'")
    assert version.run_id == run_id and version.description == "trained, then tested"
    assert version.tags == {"wordnet.reproduce": "passed"}      # the logged model's, ours


def test_best_goes_to_the_lowest_figure_and_reproduced_to_a_reproduction(logged):
    from mlflow import MlflowClient

    from wordnet.tracking.model_registry import register
    client = MlflowClient()
    a = register("wordnet", *logged(), "a", ("valid/final_ce", 3.0), True)
    b = register("wordnet", *logged(), "b", ("valid/final_ce", 3.5), False)
    c = register("wordnet", *logged(), "c", ("valid/final_ce", 2.5), False)
    assert (a, b, c) == (("1", ["reproduced", "best"]), ("2", []), ("3", ["best"]))
    assert client.get_registered_model("wordnet").aliases == {"reproduced": 1, "best": 3}
    # a figure that is not a number never becomes the best
    assert register("wordnet", *logged(), "d", ("valid/final_ce", float("nan")), False) == (
        "4", [])
    assert str(client.get_model_version_by_alias("wordnet", "best").version) == "3"
