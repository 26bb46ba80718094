"""The MLflow pyfunc model: 3-word contexts in, the top-k next words out.

Input: a list of contexts such as ``["have a good", "i want to"]``; the
parameter ``top_k`` (default 5; null means the default) sets how many words
come back.  Output, per context: ``{"context": [...], "predictions": [{"word",
"probability"}, ...]}``.  Served over HTTP by ``mlflow models serve -m
runs:/ID/model --env-manager local``:

    curl -X POST localhost:5000/invocations -H 'Content-Type: application/json' \\
         -d '{"inputs": ["have a good"], "params": {"top_k": 3}}'

A bad request is a client's fault, not the server's: ``predict`` raises
MlflowException with the error code INVALID_PARAMETER_VALUE, which MLflow's
scoring server answers with HTTP 400 and the message (any other exception
would become a 400 saying only "unexpected error", with a traceback).  Bad
JSON, a payload without ``inputs``, or inputs that are not a list of strings
never reach ``predict``: MLflow itself answers those with 400.  One bad
context fails the whole request, naming it by its index.  Two bad requests
MLflow (3.17) answers with 500 before the model sees them, and goes on
serving: no Content-Type header, and JSON nested thousands of levels deep.

This file is the model's code ("models from code"): MLflow copies it into the
logged model and runs it when loading, taking the model from ``set_model``
below.  The checkpoint and the vocabulary travel as the model's artifacts.
"""
from __future__ import annotations

import numbers

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel
from pydantic import BaseModel      # MLflow's own dependency; it turns these into the schema

from wordnet.data import UnknownWordError
from wordnet.predict import InputError, Predictor

DEFAULT_TOP_K = 5


class WordProbability(BaseModel):
    word: str
    probability: float


class NextWords(BaseModel):
    context: list[str]
    predictions: list[WordProbability]


class WordNetModel(PythonModel):
    def load_context(self, context) -> None:
        self.predictor = Predictor.load(context.artifacts["checkpoint"],
                                        context.artifacts["vocab"])

    def predict(self, model_input: list[str], params: dict[str, int] | None = None
                ) -> list[NextWords]:
        top_k = self._top_k((params or {}).get("top_k"))
        answers = []
        for n, text in enumerate(model_input):
            if not isinstance(text, str):
                raise MlflowException.invalid_parameter_value(
                    f"inputs[{n}]: expected a string of 3 words, got {type(text).__name__}")
            try:
                ranked = self.predictor.predict(text, top_k)
            except (InputError, UnknownWordError) as e:   # a bad request, not a server fault
                raise MlflowException.invalid_parameter_value(
                    f"inputs[{n}] {_shown(text)}: {e}") from None
            answers.append(NextWords(
                context=text.lower().split(),
                predictions=[WordProbability(word=p.word, probability=p.probability)
                             for p in ranked]))
        return answers

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


def _shown(text: str, limit: int = 60) -> str:
    """``text`` quoted, cut short: an error message need not echo a page of input."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


mlflow.models.set_model(WordNetModel())
