"""The model a run logs: the pyfunc model of :mod:`wordnet.serving.pyfunc`, with its
checkpoint, vocabulary and recipe, and the requirements a fresh environment installs
to serve it (the wheel it carries, see :mod:`wordnet.tracking.wheel`)."""
from __future__ import annotations

import warnings
from pathlib import Path

from wordnet.tracking.wheel import DISTRIBUTION, installed_wheel

SERVING_CODE = Path(__file__).resolve().parents[1] / "serving" / "pyfunc.py"


def model_artifacts(checkpoint: Path, vocab: Path) -> tuple[dict[str, str], list[str]]:
    """What the logged model carries (the checkpoint, its vocabulary, the recipe beside
    it, the installed wheel) and its requirements (:func:`model_requirements`)."""
    artifacts = {"checkpoint": str(checkpoint), "vocab": str(vocab)}
    recipe = checkpoint.parent / "recipe.json"     # the activation (predict.Predictor)
    if recipe.is_file():
        artifacts["recipe"] = str(recipe)
    wheel = installed_wheel()
    if wheel is not None:
        artifacts["wheel"] = str(wheel)
    return artifacts, model_requirements(wheel)


def model_requirements(wheel: Path | None) -> list[str]:
    """The logged model's requirements.txt: the wheel it carries, as a path relative to
    the model's folder (MLflow's artifacts/ subfolder: `mlflow models serve
    --env-manager virtualenv` installs from that folder, as does `pip install -r` run
    there), and the MLflow it was logged with, which wrote its MLmodel file.
    Without a wheel (an editable install or a source tree, see wordnet.tracking.wheel), the
    distribution by name and version, with a warning: that model needs the package
    from an index."""
    import mlflow

    from wordnet import __version__
    if wheel is None:
        warnings.warn(f"wordnet does not run from an installed wheel: the logged model "
                      f"requires {DISTRIBUTION}=={__version__} from a package index "
                      f"instead of carrying its own wheel", stacklevel=2)
        package = f"{DISTRIBUTION}=={__version__}"
    else:
        package = f"artifacts/{wheel.name}"
    return [package, f"mlflow=={mlflow.__version__}"]
