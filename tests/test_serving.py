"""wordnet.serving: the pyfunc model, loaded in process, through `predict --model runs:/…`
and `models:/…`, and served over HTTP by `mlflow models serve`."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from wordnet import tracking
from wordnet.cli import cli

BIN = Path(sys.executable).parent
HAVE_A_GOOD = [("time", 0.332076), ("day", 0.102091), ("game", 0.059815), ("team", 0.057552),
               ("year", 0.041762)]                                    # SPEC section 6


@pytest.fixture(scope="module")
def logged(empty_store, data_dir, tmp_path_factory):
    """model9-3000.bin logged as the pyfunc model of a run, and registered as `wordnet` 1;
    yields (folder, tracking URI, run id) with MLflow pointed at that store."""
    import mlflow
    folder = tmp_path_factory.mktemp("serving")
    shutil.copy(empty_store, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)                                        # the run's artifacts go here
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        tracking.connect(uri, "serving")
        with tracking.start_run("model9") as run:
            run.log_model(data_dir / "model9-3000.bin", data_dir / "vocab.txt", "have a good")
        mlflow.register_model(f"runs:/{run.run_id}/model", "wordnet")
        try:
            yield folder, uri, run.run_id
        finally:
            mlflow.set_tracking_uri(None)


def check_have_a_good(predictions, k=5):
    assert [p["word"] for p in predictions] == [w for w, _ in HAVE_A_GOOD[:k]]
    for p, (_, expected) in zip(predictions, HAVE_A_GOOD):
        assert p["probability"] == pytest.approx(expected, abs=5e-7)


def test_the_pyfunc_model_answers_a_list_of_contexts(logged):
    import mlflow
    _, _, run_id = logged
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    first, second = model.predict(["have a good", "  I want TO "], params={"top_k": 3})
    assert first.context == ["have", "a", "good"] and second.context == ["i", "want", "to"]
    check_have_a_good([p.model_dump() for p in first.predictions], k=3)
    assert len(second.predictions) == 3
    assert [p.model_dump() for p in model.predict(["have a good"])[0].predictions][4]["word"] == "year"


def test_the_pyfunc_model_rejects_bad_input_clearly(logged):
    import mlflow
    from mlflow.exceptions import MlflowException
    model = mlflow.pyfunc.load_model(f"runs:/{logged[2]}/model")
    with pytest.raises(MlflowException, match="'hve' is not in the vocabulary"):
        model.predict(["hve a good"])
    with pytest.raises(MlflowException, match="expected 3 words"):
        model.predict(["a good"])
    with pytest.raises(MlflowException, match="top_k must be in 1..250"):
        model.predict(["have a good"], params={"top_k": 0})


@pytest.mark.parametrize("uri", ["runs:/{run_id}", "runs:/{run_id}/model", "models:/wordnet/1"])
def test_predict_with_an_mlflow_model(logged, uri):
    _, _, run_id = logged
    result = CliRunner().invoke(cli, ["predict", "have a good", "--json",
                                      "--model", uri.format(run_id=run_id)])
    assert result.exit_code == 0, result.output
    check_have_a_good(json.loads(result.stdout)["predictions"])


def test_predict_with_a_missing_mlflow_model_is_a_one_line_error(logged):
    result = CliRunner().invoke(cli, ["predict", "have a good", "--model", "models:/nope/1"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: models:/nope/1: cannot download the model")
    assert len(result.stderr.strip().splitlines()) == 1


def test_mlflow_models_serve_answers_over_http(logged):
    folder, uri, run_id = logged
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri,
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}   # uvicorn comes from PATH
    log = folder / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(BIN / "mlflow"), "models", "serve", "-m", f"runs:/{run_id}/model",
             "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.3)
        answer = post(f"{url}/invocations", {"inputs": ["have a good"], "params": {"top_k": 5}})
        [prediction] = answer["predictions"]
        assert prediction["context"] == ["have", "a", "good"]
        check_have_a_good(prediction["predictions"])
        with pytest.raises(urllib.error.HTTPError) as error:
            post(f"{url}/invocations", {"inputs": ["hve a good"]})
        assert error.value.code == 400
        assert "'hve' is not in the vocabulary" in error.value.read().decode()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())
