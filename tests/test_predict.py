"""wordnet.models.predictor: next words, input normalisation, generation and distances."""
import numpy as np
import pytest

from wordnet.data.dataset import UnknownWordError
from wordnet.models.checkpoint import load
from wordnet.models.fourgram import Model
from wordnet.models.predictor import InputError, Predictor, top_k, words_of


@pytest.fixture(scope="module")
def predictor(data_dir) -> Predictor:
    return Predictor.load(data_dir / "model9-3000.bin", data_dir / "vocab.txt")


def test_predict_gives_the_published_top_five(predictor):
    got = [(p.word, f"{p.probability:.6f}") for p in predictor.predict("Have  a GOOD", k=5)]
    assert got == [("time", "0.332076"), ("day", "0.102091"), ("game", "0.059815"),
                   ("team", "0.057552"), ("year", "0.041762")]


def test_a_batch_of_contexts_is_predicted_at_once(predictor, dataset, data_dir):
    contexts = dataset.test[:10_000, :-1]
    p = predictor.probabilities(contexts)
    assert p.shape == (10_000, 250)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    engine = Model(load(data_dir / "model9-3000.bin")[1], "fast").predict_proba(contexts)
    np.testing.assert_allclose(p, engine, rtol=0, atol=1e-13)


@pytest.mark.parametrize("k", [1, 3, 5, 12])
def test_top_k_is_a_stable_sort_cut_short(k):
    rng = np.random.default_rng(k)
    p = rng.integers(0, 4, (200, 12)).astype(float) / 4       # ties everywhere
    p[7] = 0.5                                                # a row of one value
    expected = np.argsort(-p, axis=1, kind="stable")[:, :k]
    assert np.array_equal(top_k(p, k), expected)
    assert top_k(p, 20).shape == (200, 12) and top_k(p[:0], k).shape == (0, k)


def test_predict_batch_ranks_each_context_as_predict_does(predictor, dataset):
    contexts = np.ascontiguousarray(dataset.test[:300, :-1])
    batch = predictor.predict_batch(contexts, k=7)
    assert len(batch) == 300 and all(len(top) == 7 for top in batch)
    for row, top in zip(contexts[::37], batch[::37]):
        text = " ".join(predictor.vocab.words[i] for i in row)
        assert top == predictor.predict(text, k=7)
    p = predictor.probabilities(contexts)
    assert [q.probability for q in batch[5]] == sorted(p[5], reverse=True)[:7]


@pytest.mark.parametrize("text, words", [
    ("have a good", ["have", "a", "good"]),
    ("  HAVE\ta\n Good  ", ["have", "a", "good"]),
    ("it 's .", ["it", "'s", "."]),
])
def test_input_is_normalised_like_the_training_data(text, words):
    assert words_of(text, 3) == words


@pytest.mark.parametrize("text, message", [
    ("", "empty input"), (" \t ", "empty input"), ("a b", "expected 3 words, got 2"),
    ("na\u00efve a b", "non-ASCII character '\u00ef'"), ("a " * 600, "too long"),
])
def test_bad_input(text, message):
    with pytest.raises(InputError, match=message):
        words_of(text, 3)


def test_an_unknown_word_names_the_closest(predictor):
    with pytest.raises(UnknownWordError) as info:
        predictor.predict("have a godo")
    assert "good" in info.value.suggestions


def test_generation_greedy_and_sampled(predictor):
    greedy = predictor.generate("have a good", 4)
    assert greedy[0] == "time" and len(greedy) == 4
    sampled = [predictor.generate("have a good", 20, np.random.default_rng(5), 1.0)
               for _ in range(2)]
    assert sampled[0] == sampled[1] != predictor.generate("have a good", 20)
    cold = predictor.generate("have a good", 4, np.random.default_rng(5), temperature=1e-3)
    assert cold == greedy                           # a temperature near 0 is the argmax


def test_distances_are_between_embeddings(predictor):
    d = predictor.distance("day", "week")
    assert d == pytest.approx(float(np.linalg.norm(predictor.embedding("day")
                                                   - predictor.embedding("week"))))
    assert predictor.distance("week", "day") == d
    nearest = predictor.nearest("day", 249)
    assert len(nearest) == 249 and "day" not in dict(nearest)
    assert [n for _, n in nearest] == sorted(n for _, n in nearest)


def test_a_tanh_model_is_read_as_tanh_from_its_folder_and_from_mlflow(tracking_uri, data_dir,
                                                                      tmp_path):
    """The C format does not record the activation: the recipe beside the checkpoint
    (in the run's folder, and among the logged model's files) does."""
    import mlflow
    from click.testing import CliRunner
    from mlflow import MlflowClient

    from wordnet.cli import cli
    out = tmp_path / "tanh"
    result = CliRunner().invoke(cli, [
        "run", "--pipeline", "quick", "--set", "activation=tanh", "--set", "weight_decay=1e-4",
        "--set", "early_stop=300", "--stage", "train", "--data-dir", str(data_dir),
        "--out", str(out), "--experiment", "tanh", "--no-register"])
    assert result.exit_code == 0, result.output
    assert "act=tanh wd=0.0001" in result.output                      # the run's name
    folder = Predictor.load(out / "model.bin", out / "vocab.txt")
    assert folder.model.activation == "tanh"
    bare = tmp_path / "bare.bin"                                       # no recipe beside it
    bare.write_bytes((out / "model.bin").read_bytes())
    assert Predictor.load(bare, out / "vocab.txt").model.activation == "sigmoid"
    contexts = np.array([[0, 1, 2], [10, 20, 30]], dtype=np.int32)
    p = folder.probabilities(contexts)
    assert not np.allclose(p, Predictor.load(bare, out / "vocab.txt").probabilities(contexts))

    [experiment] = MlflowClient().search_experiments(filter_string="name = 'tanh'")
    [run] = MlflowClient().search_runs([experiment.experiment_id])
    assert run.data.params["activation"] == "tanh" and run.data.params["weight_decay"] == "0.0001"
    [model] = mlflow.search_logged_models(experiment_ids=[experiment.experiment_id],
                                          output_format="list")
    from wordnet.runs.locate import load
    assert load(run.info.run_id).model.activation == "tanh"           # a run's ID, as --model
    served = mlflow.pyfunc.load_model(f"models:/{model.model_id}")
    words = folder.vocab.words
    answer = served.predict([" ".join(words[i] for i in contexts[0])], params={"top_k": 3})
    top = [(w.word, w.probability) for w in answer[0].predictions]
    expected = folder.predict(" ".join(words[i] for i in contexts[0]), k=3)
    assert [w for w, _ in top] == [e.word for e in expected]
    assert [pr for _, pr in top] == pytest.approx([e.probability for e in expected], abs=1e-12)
