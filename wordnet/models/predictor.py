"""Using a trained model: next-word probabilities, generation, embedding distances.

The forward pass is the engine's, with the exact backend: its products need
no BLAS, so a cold ``wordnet-pipeline predict`` neither imports scipy nor
MLflow and answers within half a second, with the C program's digits.  Where a
model comes from (a file, a run's folder, MLflow) is :mod:`wordnet.runs.locate`'s.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from wordnet.data.dataset import Vocabulary
from wordnet.errors import WordNetError
from wordnet.fileio import MiB, read_bounded
from wordnet.models import checkpoint, registry
from wordnet.models.fourgram import Model

MAX_CHARS = 1000                      # longest text accepted as input
RECIPE = "recipe.json"                # beside a checkpoint in a run's folder (runs.rundir)


class InputError(WordNetError, ValueError):
    """Text that cannot be a context: empty, too long, non-ASCII, or the wrong length."""
    exit_code = 2


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


def words_of(text: str, count: int | None = None, vocab=None) -> list[str]:
    """``text`` cut into words as the training data was: the course's, lower-cased and
    split on white space, ASCII only; a vocabulary ``data build`` made (it has <unk>),
    by that build's rule (:func:`wordnet.data.text.tokens`), lower-cased unless the
    vocabulary has capitals (--keep-case)."""
    if len(text) > MAX_CHARS:
        raise InputError(f"input of {len(text)} characters is too long (at most {MAX_CHARS})")
    built = vocab is not None and vocab.has_unk()
    if not built and not text.isascii():
        bad = next(c for c in text if not c.isascii())
        raise InputError(f"non-ASCII character {bad!r}: the vocabulary is plain English words")
    if built:
        from wordnet.data.text import tokens
        words = tokens(text, lowercase=vocab.is_lowercase())
    else:
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
    def __init__(self, W1: np.ndarray, vocab: Vocabulary, kind: str = registry.DEFAULT):
        self.W1, self.vocab, self.kind = W1, vocab, kind   # column v: word v's embedding
        if len(vocab) != W1.shape[1]:
            raise ValueError(f"the vocabulary has {len(vocab)} words, the model {W1.shape[1]}")

    @classmethod
    def load(cls, model_path: Path, vocab_path: Path | None) -> "Embeddings":
        """W1 of a model saved as model.npz (checkpoint.load_npz): the window scorer's,
        skip-gram's."""
        vocab = Vocabulary.read(vocab_path) if vocab_path else Vocabulary.embedded()
        # the vocabulary first: W1's header is checked against it before W1 is read
        kind, params = checkpoint.load_npz(model_path, registry.checkpoint_kinds(".npz"),
                                           len(vocab))
        return cls(params["W1"], vocab, kind)

    def embedding(self, word: str) -> np.ndarray:
        return self.W1[:, self.vocab.encode(words_of(word, 1, self.vocab))[0]]

    def distance(self, a: str, b: str) -> float:
        """Euclidean distance between two word embeddings (columns of W1)."""
        return float(np.linalg.norm(self.embedding(a) - self.embedding(b)))

    def nearest(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` words closest to ``word`` in embedding space, closest first."""
        i = int(self.vocab.encode(words_of(word, 1, self.vocab))[0])
        d = np.linalg.norm(self.W1 - self.W1[:, [i]], axis=0)
        order = [j for j in np.argsort(d, kind="stable") if j != i][:k]
        return [(self.vocab.words[j], float(d[j])) for j in order]


class Predictor(Embeddings):
    """A 4-gram checkpoint's parameters with their vocabulary."""

    def __init__(self, params: dict[str, np.ndarray], vocab: Vocabulary,
                 header: checkpoint.Header | None = None, activation: str = "sigmoid"):
        # One thread: a request's products are small, and two threads meeting at every
        # kernel cost more than they save (docs/performance.md#prediction); a server
        # runs requests side by side instead.
        self.model = Model(params, "exact", threads=1, activation=activation)
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
        return self.read(text)[0]

    def read(self, text: str) -> tuple[np.ndarray, list[str]]:
        """(the indices of a context, its words outside the vocabulary): a vocabulary with
        ``<unk>`` reads those as ``<unk>``; any other raises UnknownWordError, which names
        the closest words."""
        words = words_of(text, self.context_size, self.vocab)
        return self.vocab.encode(words), self.vocab.unknown(words)

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



def _activation_beside(checkpoint_path: Path) -> str:
    """The activation in the recipe.json beside a checkpoint; sigmoid without one."""
    recipe = checkpoint_path.parent / RECIPE
    try:
        saved = json.loads(read_bounded(recipe, MiB, "recipe.json", checkpoint.CheckpointError)
                           ) if recipe.exists() else {}
        activation = saved.get("config", {}).get("activation", "sigmoid")
    except (OSError, ValueError, AttributeError, RecursionError) as e:
        raise checkpoint.CheckpointError(f"{recipe}: unreadable ({e})") from None
    if not isinstance(activation, str):
        raise checkpoint.CheckpointError(f"{recipe}: unreadable (activation {activation!r})")
    return activation
