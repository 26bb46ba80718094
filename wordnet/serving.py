"""The MLflow pyfunc model: 3-word contexts in, the top-k next words out.

Input: a list of contexts such as ``["have a good", "i want to"]``; the
parameter ``top_k`` (default 5) sets how many words come back.  Output, per
context: ``{"context": [...], "predictions": [{"word", "probability"}, ...]}``.
Served over HTTP by ``mlflow models serve -m runs:/ID/model --env-manager local``:

    curl -X POST localhost:5000/invocations -H 'Content-Type: application/json' \\
         -d '{"inputs": ["have a good"], "params": {"top_k": 3}}'

This file is the model's code ("models from code"): MLflow copies it into the
logged model and runs it when loading, taking the model from ``set_model``
below.  The checkpoint and the vocabulary travel as the model's artifacts.
"""
from __future__ import annotations

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel
from pydantic import BaseModel      # MLflow's own dependency; it turns these into the schema

from wordnet.data import UnknownWordError
from wordnet.predict import InputError, Predictor


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
        top_k = int((params or {}).get("top_k", 5))
        if not 1 <= top_k <= len(self.predictor.vocab):
            raise MlflowException.invalid_parameter_value(
                f"top_k must be in 1..{len(self.predictor.vocab)}, got {top_k}")
        answers = []
        for text in model_input:
            try:
                ranked = self.predictor.predict(text, top_k)
            except (InputError, UnknownWordError) as e:   # a bad request, not a server fault
                raise MlflowException.invalid_parameter_value(f"{text!r}: {e}") from None
            answers.append(NextWords(
                context=text.lower().split(),
                predictions=[WordProbability(word=p.word, probability=p.probability)
                             for p in ranked]))
        return answers


mlflow.models.set_model(WordNetModel())
