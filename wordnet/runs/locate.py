"""Where a model comes from: a checkpoint file, a run's folder, an MLflow run or
registered model (``runs:/``, ``models:/``), ``published`` (the upstream author's
model9-3000.bin, shipped with the package), a recipe's name (the latest finished run
of that recipe under ``artifacts/``), or the latest run under ``artifacts/``.
"""
from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from wordnet.data import embedded
from wordnet.data.dataset import DATA_ENV, DEFAULT_DIR
from wordnet.errors import WordNetError
from wordnet.models import registry
from wordnet.models.predictor import Embeddings, Predictor
from wordnet.runs.recipes import recipe_names
from wordnet.runs.rundir import (
    MANIFEST,
    NPZ_CHECKPOINT,
    RECIPE,
    RUNS_DIR,
    VOCAB,
    RunDir,
    RunFolderError,
    latest_run,
)

RUN_ID = re.compile(r"[0-9a-f]{32}")
PUBLISHED = "published"         # the name of the upstream author's model9-3000.bin


class ModelNotFound(WordNetError, LookupError):
    """No model where one was asked for (or no trained model at all)."""


class NotAPredictor(WordNetError, ValueError):
    """A model asked to predict next words that has embeddings only: input the command
    cannot use."""
    exit_code = 2


def load(model: str | None, data_dir: Path | None = None,
         tracking_uri: str | None = None, predicts: bool = False,
         tell: Callable[[str], None] | None = None) -> Embeddings:
    """The model of ``--model``: a checkpoint file, a run's folder, a ``runs:/`` or
    ``models:/`` URI, ``published``, a recipe's name (its latest finished run), or None
    for the latest finished run (with ``predicts``, the latest 4-gram run).  A path
    that exists wins over a name.  A 4-gram model is a Predictor; the window scorer and
    skip-gram have Embeddings only.  ``tell`` is told which model that is (see
    :func:`model_files`)."""
    with model_files(model, data_dir, tracking_uri, predicts=predicts,
                     tell=tell) as (checkpoint_path, vocab_path):
        if Path(checkpoint_path).suffix == ".npz":
            return Embeddings.load(checkpoint_path, vocab_path)
        return Predictor.load(checkpoint_path, vocab_path)


def load_predictor(model: str | None, data_dir: Path | None = None,
                   tracking_uri: str | None = None,
                   tell: Callable[[str], None] | None = None) -> Predictor:
    """The 4-gram model of ``--model`` (the latest 4-gram run's without it), which
    predicts next words; NotAPredictor for a model of another kind."""
    loaded = load(model, data_dir, tracking_uri, predicts=True, tell=tell)
    if not isinstance(loaded, Predictor):
        raise NotAPredictor(f"{model or 'the latest run'} is a {loaded.kind} model: it does "
                            "not predict next words (`nearest`, `distance` and "
                            "`compare-embeddings` read its embeddings)")
    return loaded


@contextmanager
def model_files(model: str | None, data_dir: Path | None = None, tracking_uri: str | None = None,
                vocab: bool = True, predicts: bool = False,
                tell: Callable[[str], None] | None = None
                ) -> Iterator[tuple[Path, Path | None]]:
    """(checkpoint, vocabulary) of ``--model`` (see :func:`load`), the vocabulary None
    unless ``vocab``; an MLflow model's files last as long as the ``with`` block.  An
    MLflow run's ID (32 hexadecimal digits, not a file here) is its ``runs:/ID``.
    ``tell(origin)``, before the files are read: which model it is, the file and its
    MLflow run when known (``artifacts/quick-.../model.bin (MLflow run 'quick · fast')``,
    ``runs:/ID (MLflow run 'quick · fast')``), the answer changing after a new run."""
    tell = tell or (lambda origin: None)
    if model is not None and RUN_ID.fullmatch(model) and not Path(model).exists():
        model = f"runs:/{model}"
    if model is not None and model.startswith(("runs:/", "models:/")):
        with tempfile.TemporaryDirectory(prefix="wordnet-model-") as tmp:
            checkpoint_path, vocab_path, origin = _download(model, Path(tmp), tracking_uri)
            tell(origin)
            yield checkpoint_path, vocab_path if vocab else None
        return
    if model is None:
        folder = latest_run(models=registry.predicting() if predicts else None)
        if folder is None:
            what = "4-gram model (one that predicts next words)" if predicts else "model"
            raise ModelNotFound(f"no trained {what} under {RUNS_DIR}/: train one with "
                                "`wordnet-pipeline run --stage all`, or pass --model PATH")
        path = RunDir(folder).model_file()
        tell(_local_origin(path))
        yield path, folder / VOCAB if vocab else None
        return
    if model == PUBLISHED and not Path(model).exists():
        with tempfile.TemporaryDirectory(prefix="wordnet-model-") as tmp:
            tell(f"{PUBLISHED} (the upstream author's {embedded.PUBLISHED_MODEL}, shipped "
                 "with the package)")
            yield _published(Path(tmp), vocab)
        return
    if model in recipe_names() and not Path(model).exists():
        folder = latest_run(recipe=model)
        if folder is None:
            raise ModelNotFound(f"no finished run of the {model} recipe under {RUNS_DIR}/: "
                                f"train one with `wordnet-pipeline run --pipeline {model}`")
        path = RunDir(folder).model_file()
        tell(_local_origin(path))
        yield path, folder / VOCAB if vocab else None
        return
    path = Path(model)
    if path.is_dir():
        path = RunDir(path).model_file()
    if not path.exists():                     # what is there but not a file: checkpoint.read
        raise ModelNotFound(f"{model}: no such model file")
    vocab_path = _vocabulary_for(path, data_dir) if vocab else None
    tell(_local_origin(path))
    yield path, vocab_path


def _local_origin(path: Path) -> str:
    """The checkpoint ``path``, and the MLflow run its folder's run.json names."""
    try:
        manifest = RunDir(path.parent).read_json(MANIFEST) or {}
    except (OSError, RunFolderError):         # not a run's folder, or a damaged record
        manifest = {}
    return _with_run(str(path), manifest.get("mlflow_run_name"), manifest.get("mlflow_run_id"))


def _with_run(what: str, name: str | None, run_id: str | None) -> str:
    if name:
        return f"{what} (MLflow run {name!r})"
    return f"{what} (MLflow run {run_id})" if run_id and run_id not in what else what


def _published(dest: Path, vocab: bool) -> tuple[Path, Path | None]:
    """The package's copy of model9-3000.bin and of the vocabulary it was trained on,
    written into ``dest``."""
    paths = []
    for name in (embedded.PUBLISHED_MODEL, VOCAB) if vocab else (embedded.PUBLISHED_MODEL,):
        (dest / name).write_bytes(embedded.read_bytes(name))
        paths.append(dest / name)
    return paths[0], paths[1] if vocab else None


def _vocabulary_for(checkpoint_path: Path, data_dir: Path | None) -> Path | None:
    """The vocabulary beside the checkpoint, else in --data-dir or $WORDNET_DATA_DIR
    (which must hold one), else in data/, else None: the one shipped with the package."""
    beside = checkpoint_path.parent / VOCAB
    if beside.exists():                       # a folder or a FIFO is refused when read, not
        return beside                         # replaced by the shipped vocabulary
    named = data_dir or os.environ.get(DATA_ENV)
    if named:
        if not (Path(named) / VOCAB).exists():
            raise ModelNotFound(f"no {VOCAB} beside {checkpoint_path} nor in {named}/")
        return Path(named) / VOCAB
    return DEFAULT_DIR / VOCAB if (DEFAULT_DIR / VOCAB).exists() else None


def _run_and_model(run_id: str) -> tuple[str, str | None]:
    """(the run's name, ``models:/ID`` of the model it logged, None when it logged none):
    ``runs:/ID`` names the run, and its model's name depends on the recipe."""
    from mlflow import MlflowClient
    run = MlflowClient().get_run(run_id)
    models = [m.model_id for m in (run.outputs.model_outputs if run.outputs else [])]
    return run.info.run_name, f"models:/{models[-1]}" if models else None


def _download(uri: str, dest: Path, tracking_uri: str | None) -> tuple[Path, Path, str]:
    """(checkpoint, vocabulary, which model it is) of the pyfunc model at ``uri`` in the
    tracking store ``tracking_uri`` (else MLflow's), downloaded into ``dest``; of a run
    that logged no model (the window scorer, skip-gram), its model.npz and vocab.txt
    artifacts, and its recipe.json (its hyperparameters)."""
    from wordnet.tracking import use_store_for_reading
    use_store_for_reading(tracking_uri)

    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model as MLmodel

    origin = uri
    try:
        if uri.startswith("runs:/") and uri.rstrip("/").count("/") == 1:
            run_id = uri.removeprefix("runs:/").rstrip("/")
            name, model = _run_and_model(run_id)
            origin = _with_run(uri, name, None)
            if model is None:
                return *_run_artifacts(run_id, dest), origin
            uri = model
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest)))
        artifacts = MLmodel.load(str(local)).flavors["python_function"]["artifacts"]
        return (local / artifacts["checkpoint"]["path"], local / artifacts["vocab"]["path"],
                origin)
    except (MlflowException, OSError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelNotFound(f"{uri}: cannot download the model ({reason})") from None
    except KeyError:
        raise ModelNotFound(f"{uri}: not a WordNet model (no checkpoint and vocabulary)") from None


def _run_artifacts(run_id: str, dest: Path) -> tuple[Path, Path]:
    """model.npz and vocab.txt among the artifacts of run ``run_id``, into ``dest``, with
    recipe.json beside them when the run logged it."""
    import mlflow
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    if NPZ_CHECKPOINT not in names or VOCAB not in names:
        raise ModelNotFound(f"runs:/{run_id}: the run logged no model")
    found = [Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name,
                                                      dst_path=str(dest)))
             for name in (NPZ_CHECKPOINT, VOCAB, RECIPE) if name in names]
    return found[0], found[1]
