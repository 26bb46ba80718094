"""Using a trained model: next-word probabilities, generation, embedding distances.

The forward pass is the engine's, with the exact backend: its products need
no BLAS, so a cold ``wordnet-pipeline predict`` neither imports scipy nor
MLflow and answers within half a second, with the C program's digits.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from . import checkpoint
from .data import DATA_ENV, DEFAULT_DIR, Vocabulary
from .model import Model
from .rundir import NPZ_CHECKPOINT, RECIPE, RUNS_DIR, VOCAB, RunDir, latest_run

MAX_CHARS = 1000                      # longest text accepted as input


class InputError(ValueError):
    """Text that cannot be a context: empty, too long, non-ASCII, or the wrong length."""


RUN_ID = re.compile(r"[0-9a-f]{32}")


class ModelNotFound(LookupError):
    """No model where one was asked for (or no trained model at all)."""


def top_k(p: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest entries of each row of ``p``, largest first, ties
    lower index first: ``np.argsort(-p, axis=1, kind="stable")[:, :k]``, without
    sorting whole rows."""
    k = min(k, p.shape[1])
    if k == 0 or len(p) == 0:
        return np.empty((len(p), k), dtype=np.intp)
    kth = -np.partition(-p, k - 1, axis=1)[:, k - 1:k]      # each row's k-th largest value
    above, tied = p > kth, p == kth
    room = k - above.sum(axis=1, keepdims=True)             # places left for the tied values
    chosen = above | (tied & (np.cumsum(tied, axis=1) <= room))
    index = np.nonzero(chosen)[1].reshape(len(p), k)        # ascending within each row
    values = np.take_along_axis(p, index, axis=1)
    return np.take_along_axis(index, np.argsort(-values, axis=1, kind="stable"), axis=1)


def words_of(text: str, count: int | None = None) -> list[str]:
    """``text`` normalised like the training data: lower-cased, split on white space."""
    if len(text) > MAX_CHARS:
        raise InputError(f"input of {len(text)} characters is too long (at most {MAX_CHARS})")
    if not text.isascii():
        bad = next(c for c in text if not c.isascii())
        raise InputError(f"non-ASCII character {bad!r}: the vocabulary is plain English words")
    words = text.lower().split()
    if not words:
        raise InputError("empty input: give words such as \"have a good\"")
    if count is not None and len(words) != count:
        raise InputError(f"expected {count} words, got {len(words)}: {' '.join(words)!r}")
    return words


class Prediction(NamedTuple):            # a tuple: cheap to make by the ten thousand
    word: str
    probability: float


class Embeddings:
    """A model's word embeddings, the columns of its W1, with their vocabulary: what
    ``nearest``, ``distance`` and ``compare-embeddings`` read, of a model of any kind."""
    kind = "4gram"

    def __init__(self, W1: np.ndarray, vocab: Vocabulary, kind: str = "4gram"):
        self.W1, self.vocab, self.kind = W1, vocab, kind   # column v: word v's embedding
        if len(vocab) != W1.shape[1]:
            raise ValueError(f"the vocabulary has {len(vocab)} words, the model {W1.shape[1]}")

    @classmethod
    def load(cls, model_path: Path, vocab_path: Path | None) -> "Embeddings":
        """W1 of the window scorer's or skip-gram's checkpoint (checkpoint.load_npz)."""
        from .skipgram import SkipGram
        from .window import WindowScorer
        kind, params = checkpoint.load_npz(model_path, {m.kind: m.PARAMS
                                                        for m in (WindowScorer, SkipGram)})
        vocab = Vocabulary.read(vocab_path) if vocab_path else Vocabulary.embedded()
        if len(vocab) != params["W1"].shape[1]:
            raise checkpoint.CheckpointError(
                f"{model_path}: vocabulary of {params['W1'].shape[1]} words, "
                f"but {vocab_path or 'the vocabulary shipped with the package'} has {len(vocab)}")
        return cls(params["W1"], vocab, kind)

    def embedding(self, word: str) -> np.ndarray:
        return self.W1[:, self.vocab.encode(words_of(word, 1))[0]]

    def distance(self, a: str, b: str) -> float:
        """Euclidean distance between two word embeddings (columns of W1)."""
        return float(np.linalg.norm(self.embedding(a) - self.embedding(b)))

    def nearest(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` words closest to ``word`` in embedding space, closest first."""
        i = int(self.vocab.encode(words_of(word, 1))[0])
        d = np.linalg.norm(self.W1 - self.W1[:, [i]], axis=0)
        order = [j for j in np.argsort(d, kind="stable") if j != i][:k]
        return [(self.vocab.words[j], float(d[j])) for j in order]


class Predictor(Embeddings):
    """A 4-gram checkpoint's parameters with their vocabulary."""

    def __init__(self, params: dict[str, np.ndarray], vocab: Vocabulary,
                 header: checkpoint.Header | None = None, activation: str = "sigmoid"):
        self.model = Model(params, "exact", activation=activation)
        super().__init__(self.model.W1, vocab)
        self.header = header
        self.context_size = self.model.context_size

    @classmethod
    def load(cls, model_path: Path, vocab_path: Path | None) -> "Predictor":
        """The checkpoint at ``model_path`` with the vocabulary at ``vocab_path``
        (None: the one shipped with the package), and the hidden layer's activation of
        the recipe beside it (a run's folder, an MLflow model's files), else the C
        program's sigmoid: the C format does not record it."""
        header, params = checkpoint.load(model_path)
        vocab = Vocabulary.read(vocab_path) if vocab_path else Vocabulary.embedded()
        vocab_path = vocab_path or "the vocabulary shipped with the package"
        if len(vocab) != header.vocab_size:
            raise checkpoint.CheckpointError(
                f"{model_path}: vocabulary of {header.vocab_size} words, "
                f"but {vocab_path} has {len(vocab)}")
        return cls(params, vocab, header, _activation_beside(Path(model_path)))

    def encode(self, text: str) -> np.ndarray:
        """The indices of a context; UnknownWordError names the closest words."""
        return self.vocab.encode(words_of(text, self.context_size))

    def probabilities(self, contexts: np.ndarray) -> np.ndarray:
        """P(next word | context), (n, V), for (n, D) 0-based contexts."""
        return self.model.predict_proba(contexts)

    def predict(self, text: str, k: int = 5) -> list[Prediction]:
        return self.predict_batch(self.encode(text)[None], k)[0]

    def predict_batch(self, contexts: np.ndarray, k: int = 5,
                      chunk: int = 1024) -> list[list[Prediction]]:
        """The ``k`` likeliest next words after each of the (n, D) 0-based ``contexts``,
        with one forward pass per thousand contexts rather than one per context; the
        probabilities of one ``chunk`` at a time, so memory grows with n x k, not n x V."""
        words = self.vocab.words
        ranked = []
        for start in range(0, len(contexts), chunk):
            p = self.probabilities(contexts[start:start + chunk])
            top = top_k(p, k)
            chosen = np.take_along_axis(p, top, axis=1)
            ranked += [[Prediction(words[i], q) for i, q in zip(row, probs)]
                       for row, probs in zip(top.tolist(), chosen.tolist())]
        return ranked

    def generate(self, text: str, words: int, rng: np.random.Generator | None = None,
                 temperature: float = 1.0) -> list[str]:
        """``text`` continued by ``words`` words: the most likely each time, or sampled
        from p^(1/temperature) when ``rng`` is given."""
        context = list(self.encode(text))
        out = []
        for _ in range(words):
            p = self.probabilities(np.asarray(context[-self.context_size:]))[0]
            if rng is None:
                i = int(np.argmax(p))
            else:
                # the maximum subtracted before dividing: a tiny temperature then
                # gives the likeliest word, not inf - inf
                log_p = np.log(p)
                q = np.exp((log_p - log_p.max()) / temperature)
                i = int(rng.choice(len(q), p=q / q.sum()))
            context.append(i)
            out.append(self.vocab.words[i])
        return out


def load(model: str | None, data_dir: Path | None = None,
         tracking_uri: str | None = None, predicts: bool = False) -> Embeddings:
    """The model of ``--model``: a checkpoint file, a run's folder, a ``runs:/`` or
    ``models:/`` URI, or None for the latest finished run (with ``predicts``, the
    latest 4-gram run).  A 4-gram model is a Predictor; the window scorer and
    skip-gram have Embeddings only."""
    with model_files(model, data_dir, tracking_uri, predicts=predicts) as (checkpoint_path,
                                                                           vocab_path):
        if Path(checkpoint_path).suffix == ".npz":
            return Embeddings.load(checkpoint_path, vocab_path)
        return Predictor.load(checkpoint_path, vocab_path)


@contextmanager
def model_files(model: str | None, data_dir: Path | None = None, tracking_uri: str | None = None,
                vocab: bool = True, predicts: bool = False) -> Iterator[tuple[Path, Path | None]]:
    """(checkpoint, vocabulary) of ``--model`` (see :func:`load`), the vocabulary None
    unless ``vocab``; an MLflow model's files last as long as the ``with`` block.  An
    MLflow run's ID (32 hexadecimal digits, not a file here) is its ``runs:/ID``."""
    if model is not None and RUN_ID.fullmatch(model) and not Path(model).exists():
        model = f"runs:/{model}"
    if model is not None and model.startswith(("runs:/", "models:/")):
        with tempfile.TemporaryDirectory(prefix="wordnet-model-") as tmp:
            checkpoint_path, vocab_path = _download(model, Path(tmp), tracking_uri)
            yield checkpoint_path, vocab_path if vocab else None
        return
    if model is None:
        folder = latest_run(models=("4gram",) if predicts else None)
        if folder is None:
            what = "4-gram model (one that predicts next words)" if predicts else "model"
            raise ModelNotFound(f"no trained {what} under {RUNS_DIR}/: train one with "
                                "`wordnet-pipeline run --stage all`, or pass --model PATH")
        yield RunDir(folder).model_file(), folder / VOCAB if vocab else None
        return
    path = Path(model)
    if path.is_dir():
        path = RunDir(path).model_file()
    if not path.exists():                     # what is there but not a file: checkpoint.read
        raise ModelNotFound(f"{model}: no such model file")
    yield path, _vocabulary_for(path, data_dir) if vocab else None


def _vocabulary_for(checkpoint_path: Path, data_dir: Path | None) -> Path | None:
    """The vocabulary beside the checkpoint, else in --data-dir or $WORDNET_DATA_DIR
    (which must hold one), else in data/, else None: the one shipped with the package."""
    beside = checkpoint_path.parent / VOCAB
    if beside.is_file():
        return beside
    named = data_dir or os.environ.get(DATA_ENV)
    if named:
        if not (Path(named) / VOCAB).is_file():
            raise ModelNotFound(f"no {VOCAB} beside {checkpoint_path} nor in {named}/")
        return Path(named) / VOCAB
    return DEFAULT_DIR / VOCAB if (DEFAULT_DIR / VOCAB).is_file() else None


def _model_of_run(run_id: str) -> str | None:
    """``models:/ID`` of the model the run logged (``runs:/ID`` names the run, and its
    model's name depends on the recipe); None when it logged none."""
    from mlflow import MlflowClient
    outputs = MlflowClient().get_run(run_id).outputs
    models = [m.model_id for m in (outputs.model_outputs if outputs else [])]
    return f"models:/{models[-1]}" if models else None


def _download(uri: str, dest: Path, tracking_uri: str | None) -> tuple[Path, Path]:
    """(checkpoint, vocabulary) of the pyfunc model at ``uri`` in the tracking store
    ``tracking_uri`` (else MLflow's), downloaded into ``dest``; of a run that logged
    no model (the window scorer, skip-gram), its model.npz and vocab.txt artifacts."""
    from .tracking import use_store_for_reading
    use_store_for_reading(tracking_uri)

    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model as MLmodel

    try:
        if uri.startswith("runs:/") and uri.rstrip("/").count("/") == 1:
            run_id = uri.removeprefix("runs:/").rstrip("/")
            model = _model_of_run(run_id)
            if model is None:
                return _run_artifacts(run_id, dest)
            uri = model
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest)))
        artifacts = MLmodel.load(str(local)).flavors["python_function"]["artifacts"]
        return local / artifacts["checkpoint"]["path"], local / artifacts["vocab"]["path"]
    except (MlflowException, OSError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelNotFound(f"{uri}: cannot download the model ({reason})") from None
    except KeyError:
        raise ModelNotFound(f"{uri}: not a WordNet model (no checkpoint and vocabulary)") from None


def _run_artifacts(run_id: str, dest: Path) -> tuple[Path, Path]:
    """model.npz and vocab.txt among the artifacts of run ``run_id``, into ``dest``."""
    import mlflow
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    if NPZ_CHECKPOINT not in names or VOCAB not in names:
        raise ModelNotFound(f"runs:/{run_id}: the run logged no model")
    return tuple(Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name,
                                                          dst_path=str(dest)))
                 for name in (NPZ_CHECKPOINT, VOCAB))


def _activation_beside(checkpoint_path: Path) -> str:
    """The activation in the recipe.json beside a checkpoint; sigmoid without one."""
    recipe = checkpoint_path.parent / RECIPE
    try:
        saved = json.loads(recipe.read_text()) if recipe.is_file() else {}
        return saved.get("config", {}).get("activation", "sigmoid")
    except (OSError, ValueError, AttributeError) as e:
        raise checkpoint.CheckpointError(f"{recipe}: unreadable ({e})") from None
