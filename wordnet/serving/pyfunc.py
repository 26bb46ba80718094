"""The MLflow pyfunc model: 3-word contexts in, the top-k next words out.

Input: a list of contexts such as ``["have a good", "i want to"]``; the
parameter ``top_k`` (default 5; null means the default) sets how many words
come back.  Output, per context: ``{"context": [...], "predictions": [{"word",
"probability"}, ...]}``.  Served over HTTP by ``mlflow models serve -m
models:/wordnet/latest --env-manager local``:

    curl -X POST localhost:5000/invocations -H 'Content-Type: application/json' \\
         -d '{"inputs": ["have a good"], "params": {"top_k": 3}}'

A bad request is a client's fault, not the server's: ``predict`` raises
MlflowException with the error code INVALID_PARAMETER_VALUE, which MLflow's
scoring server answers with HTTP 400 and the message (any other exception
would become a 400 saying only "unexpected error", with a traceback).  Bad
JSON, a payload without ``inputs``, or inputs that are not a list of strings
never reach ``predict``: MLflow itself answers those with 400.  One bad
context fails the whole request, naming it by its index.  Two bad requests
MLflow's scoring server (3.17) would answer with 500 before the model sees
them; ``_guard_scoring_server`` turns them into a 415 and a 400, and cuts
the whole request MLflow puts into an error message.

This file is the model's code ("models from code"): MLflow copies it into the
logged model and runs it when loading, taking the model from ``set_model``
below.  The checkpoint and the vocabulary travel as the model's artifacts.
"""
from __future__ import annotations

import inspect
import logging
import numbers
import os

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel, scoring_server
from pydantic import (  # MLflow's dependency; it makes these the schema
    BaseModel,
    TypeAdapter,
)

from wordnet.data.dataset import UnknownWordError
from wordnet.models.predictor import InputError, Predictor

DEFAULT_TOP_K = 5
# The most a request may ask for: 10,000 contexts at top_k 10 (100,000 predictions) take
# about 5 s and 280 MB; 10,000 at top_k 250 took 48 s and 2.2 GB
MAX_CONTEXTS = ("WORDNET_SERVE_MAX_CONTEXTS", 10_000)
MAX_PREDICTIONS = ("WORDNET_SERVE_MAX_PREDICTIONS", 100_000)
MAX_MESSAGE = 2000                        # characters of an error message MLflow returns
# The parameters of the scoring server function _guard_scoring_server wraps, in MLflow 3.17
GUARDED_PARAMETERS = ["data", "content_type", "model", "input_schema"]

logger = logging.getLogger(__name__)


class WordProbability(BaseModel):
    word: str
    probability: float


class NextWords(BaseModel):
    context: list[str]
    predictions: list[WordProbability]


ANSWERS = TypeAdapter(list[NextWords])


class WordNetModel(PythonModel):
    def load_context(self, context) -> None:
        if scoring_server._SERVER_MODEL_PATH in os.environ:     # inside `mlflow models serve`
            _guard_scoring_server()
        self.max_contexts, self.max_predictions = _limit(*MAX_CONTEXTS), _limit(*MAX_PREDICTIONS)
        self.predictor = Predictor.load(context.artifacts["checkpoint"],
                                        context.artifacts["vocab"])

    def predict(self, model_input: list[str], params: dict[str, int] | None = None
                ) -> list[NextWords]:
        k = self._top_k((params or {}).get("top_k"))
        self._check_size(len(model_input), k)
        contexts = np.empty((len(model_input), self.predictor.context_size), dtype=np.int32)
        for n, text in enumerate(model_input):
            if not isinstance(text, str):
                raise MlflowException.invalid_parameter_value(
                    f"inputs[{n}]: expected a string of 3 words, got {type(text).__name__}")
            try:
                contexts[n] = self.predictor.encode(text)
            except (InputError, UnknownWordError) as e:   # a bad request, not a server fault
                raise MlflowException.invalid_parameter_value(
                    f"inputs[{n}] {_shown(text)}: {e}") from None
        ranked = self.predictor.predict_batch(contexts, k)    # forward passes by the thousand
        # pydantic builds the answer objects in one call, three times faster than one by one
        return ANSWERS.validate_python([
            {"context": text.lower().split(),
             "predictions": [{"word": w, "probability": q} for w, q in predictions]}
            for text, predictions in zip(model_input, ranked)])

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


def _limit(variable: str, default: int) -> int:
    """The positive integer in the environment ``variable``, else ``default``."""
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"${variable} must be a positive whole number, got {value!r}")
    return int(value)


def _guard_scoring_server() -> None:
    """Make MLflow's scoring server answer two bad requests with a 4xx, not a 500.

    Its /invocations route calls ``scoring_server.invocations``, which fails on a
    request without a Content-Type header (it splits None) and on JSON nested deeper
    than Python's recursion limit (json.loads raises RecursionError).  The wrapper
    gives the first MLflow's own 415 for an unsupported content type, and the second
    the 400 MLflow gives any other invalid JSON.  MLflow's error messages quote the
    whole request (10 MB of it for a bad context among 700,000): the wrapper cuts
    them to MAX_MESSAGE characters.

    The function is private to MLflow: when its parameters are not the ones of 3.17
    (GUARDED_PARAMETERS), MLflow is left as it is, with a warning.
    """
    invocations = scoring_server.invocations
    if getattr(invocations, "guarded", False):
        return
    parameters = list(inspect.signature(invocations).parameters)
    if parameters != GUARDED_PARAMETERS:
        logger.warning("MLflow %s: scoring_server.invocations%s is not the function wordnet "
                       "wraps (%s); a request without Content-Type or with JSON nested too "
                       "deeply may get a 500", mlflow.__version__,
                       inspect.signature(invocations), ", ".join(GUARDED_PARAMETERS))
        return

    def guarded(data, content_type, model, input_schema):
        try:
            return invocations(data, content_type or "", model, input_schema)
        except RecursionError:
            raise MlflowException.invalid_parameter_value(
                "Ensure that input is a valid JSON formatted string: "
                "it is nested too deeply to parse") from None
        except MlflowException as e:
            e.message = _cut(e.message, MAX_MESSAGE)
            raise

    guarded.guarded = True
    scoring_server.invocations = guarded


def _cut(message: str, limit: int) -> str:
    """``message`` with its middle cut to keep it within ``limit`` characters: its
    start says what failed, its end (our own message) why."""
    if len(message) <= limit:
        return message
    half = (limit - 40) // 2
    return f"{message[:half]} ... ({len(message) - 2 * half:,} characters cut) ... {message[-half:]}"


def _shown(text: str, limit: int = 60) -> str:
    """``text`` quoted, cut short: an error message need not echo a page of input."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


mlflow.models.set_model(WordNetModel())
