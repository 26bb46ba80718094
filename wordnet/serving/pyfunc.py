"""The MLflow pyfunc model: 3-word contexts in, the top-k next words out.

Input: a list of contexts such as ``["have a good", "i want to"]``; the
parameter ``top_k`` (default 5; null means the default) sets how many words
come back.  Output, per context: ``{"context": [...], "predictions": [{"word",
"probability"}, ...], "unknown": [...]}``: the context as the model read it, and
the words of it outside the vocabulary, which a model trained on a folder ``data
build`` made reads as ``<unk>`` (the course's vocabulary refuses them).  Served over
HTTP by ``mlflow models serve -m models:/wordnet/latest --env-manager local``:

    curl -X POST localhost:5000/invocations -H 'Content-Type: application/json' \\
         -d '{"inputs": ["have a good"], "params": {"top_k": 3}}'

A bad request is a client's fault, not the server's: ``predict`` raises
MlflowException with the error code INVALID_PARAMETER_VALUE, which MLflow's
scoring server answers with HTTP 400 and the message (any other exception
would become a 400 saying only "unexpected error", with a traceback).  Bad
JSON, a payload without ``inputs``, or inputs that are not a list of strings
never reach ``predict``: MLflow itself answers those with 400.  One bad
context fails the whole request, naming it by its index.  The request's cost
is bounded here, before any work (MAX_CONTEXTS, MAX_PREDICTIONS); what comes
before the model (the body's size, its content type, JSON nested too deeply)
MLflow's server does not bound: ``wordnet-pipeline serve`` (wordnet/server.py)
serves the same ``predict`` with those guards, through MLflow's public API only.

This file is the model's code ("models from code"): MLflow copies it into the
logged model and runs it when loading, taking the model from ``set_model``
below.  The checkpoint and the vocabulary travel as the model's artifacts.
"""
from __future__ import annotations

import numbers
import os

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel
from pydantic import BaseModel, TypeAdapter  # MLflow's dependency; it makes these the schema

from wordnet.data.dataset import UnknownWordError
from wordnet.errors import WordNetError
from wordnet.models.predictor import InputError, Predictor

DEFAULT_TOP_K = 5
# The most a request may ask for: 10,000 contexts at top_k 10 (100,000 predictions) take
# about 5 s and 280 MB; 10,000 at top_k 250 took 48 s and 2.2 GB
MAX_CONTEXTS = ("WORDNET_SERVE_MAX_CONTEXTS", 10_000)
MAX_PREDICTIONS = ("WORDNET_SERVE_MAX_PREDICTIONS", 100_000)


class WordProbability(BaseModel):
    word: str
    probability: float


class NextWords(BaseModel):
    context: list[str]                  # as the model read it: <unk> for a word outside
    predictions: list[WordProbability]
    unknown: list[str] = []             # the words outside the vocabulary, read as <unk>


ANSWERS = TypeAdapter(list[NextWords])


class WordNetModel(PythonModel):
    def load_context(self, context) -> None:
        self._ready(Predictor.load(context.artifacts["checkpoint"], context.artifacts["vocab"]))

    @classmethod
    def of(cls, predictor: Predictor) -> "WordNetModel":
        """The model of a checkpoint already loaded (``wordnet-pipeline serve``)."""
        model = cls()
        model._ready(predictor)
        return model

    def _ready(self, predictor: Predictor) -> None:
        self.max_contexts, self.max_predictions = _limit(*MAX_CONTEXTS), _limit(*MAX_PREDICTIONS)
        self.predictor = predictor

    def predict(self, model_input: list[str], params: dict[str, int] | None = None
                ) -> list[NextWords]:
        if not isinstance(model_input, list):       # MLflow's check of the type hints, first
            raise MlflowException.invalid_parameter_value(
                f"inputs: expected a list of strings, got {type(model_input).__name__}")
        k = self._top_k((params or {}).get("top_k"))
        self._check_size(len(model_input), k)
        contexts = np.empty((len(model_input), self.predictor.context_size), dtype=np.int32)
        unknown = []
        for n, text in enumerate(model_input):
            if not isinstance(text, str):
                raise MlflowException.invalid_parameter_value(
                    f"inputs[{n}]: expected a string of 3 words, got {type(text).__name__}")
            try:
                contexts[n], outside = self.predictor.read(text)
            except (InputError, UnknownWordError) as e:   # a bad request, not a server fault
                raise MlflowException.invalid_parameter_value(
                    f"inputs[{n}] {_shown(text)}: {e}") from None
            unknown.append(outside)
        ranked = self.predictor.predict_batch(contexts, k)    # forward passes by the thousand
        # pydantic builds the answer objects in one call, three times faster than one by one
        words = self.predictor.vocab.words
        return ANSWERS.validate_python([
            {"context": [words[i] for i in context],
             "predictions": [{"word": w, "probability": q} for w, q in predictions],
             "unknown": outside}
            for context, predictions, outside in zip(contexts.tolist(), ranked, unknown)])

    def _top_k(self, value) -> int:
        """``top_k`` checked here too: MLflow lets null through, and a model loaded
        without its signature checks nothing."""
        if value is None:
            return DEFAULT_TOP_K
        size = len(self.predictor.vocab)
        if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
                or not 1 <= value <= size):
            raise MlflowException.invalid_parameter_value(
                f"top_k must be in 1..{size}, got {value!r}")
        return int(value)

    def _check_size(self, contexts: int, k: int) -> None:
        """The limits of a request, checked before any work is done for it."""
        if contexts > self.max_contexts:
            raise MlflowException.invalid_parameter_value(
                f"{contexts:,} contexts in one request: at most {self.max_contexts:,} "
                f"(${MAX_CONTEXTS[0]})")
        if contexts * k > self.max_predictions:
            raise MlflowException.invalid_parameter_value(
                f"{contexts:,} contexts x top_k {k} = {contexts * k:,} predictions in one "
                f"answer: at most {self.max_predictions:,} (${MAX_PREDICTIONS[0]})")


class LimitError(WordNetError, ValueError):
    """A request limit in the environment that is not a positive whole number."""


def _limit(variable: str, default: int) -> int:
    """The positive integer in the environment ``variable``, else ``default``."""
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise LimitError(f"${variable} must be a positive whole number, got {value!r}")
    return int(value)


def _shown(text: str, limit: int = 60) -> str:
    """``text`` quoted, cut short: an error message need not echo a page of input."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


mlflow.models.set_model(WordNetModel())
