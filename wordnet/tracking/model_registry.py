"""The model registry: a version only for a run whose stages finished, one per run,
described, and the aliases that say which version to serve.

    models:/wordnet@reproduced   the latest model that passed every reproduction check
    models:/wordnet@best         the lowest validation CE of all the versions
    models:/wordnet/latest       the latest finished run's model

A run registers at the end of a command whose stages all finished (a failed
reproduction, an interruption: nothing registered); a later command on the same run
(e.g. ``--stage reproduce``) updates its version instead of adding one.
"""
from __future__ import annotations

import math

REPRODUCED, BEST = "reproduced", "best"
FIGURE_TAG = "wordnet.select_by"            # the version's figure that `best` compares


def register(name: str, run_id: str, model_id: str, description: str,
             select_by: tuple[str, float] | None, reproduced: bool) -> tuple[str, list[str]]:
    """The version of ``name`` holding the logged model ``model_id`` of ``run_id``, made
    if the run has none; described; aliased ``reproduced`` if it passed every check, and
    ``best`` if its ``select_by`` (figure name, value: lower is better) beats the
    current best's; tagged as the logged model is (``wordnet.*``).  Returns (version,
    the aliases it got now)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from wordnet.tracking.noise import silently
    client = MlflowClient()
    found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    if found:
        version = str(max(int(v.version) for v in found))
    else:
        version = str(silently(mlflow.register_model)(f"models:/{model_id}", name).version)
    client.update_model_version(name, version, description=description)
    for key, value in client.get_logged_model(model_id).tags.items():
        if key.startswith("wordnet."):               # e.g. the reproduction's verdict
            client.set_model_version_tag(name, version, key, value)
    aliases = []
    if reproduced:
        client.set_registered_model_alias(name, REPRODUCED, version)
        aliases.append(REPRODUCED)
    if select_by is not None and math.isfinite(select_by[1]):
        figure, value = select_by
        client.set_model_version_tag(name, version, FIGURE_TAG, f"{figure}={value!r}")
        try:
            best = client.get_model_version_by_alias(name, BEST)
            held = _figure(best.tags.get(FIGURE_TAG), figure)
        except MlflowException:                       # no version is `best` yet
            best, held = None, None
        if best is None or str(best.version) == version or held is None or value < held:
            client.set_registered_model_alias(name, BEST, version)
            aliases.append(BEST)
    return version, aliases


def _figure(tag: str | None, figure: str) -> float | None:
    """The value of ``figure`` in a version's FIGURE_TAG, None if it holds another."""
    key, _, value = (tag or "").partition("=")
    try:
        return float(value) if key == figure else None
    except ValueError:
        return None
