"""What MLflow's UI shows of the runs, in headless Chromium (tools/ui_check.py).

Marked ``browser``: it needs Chromium and chromedriver, which .ci/run installs.
Skipped where they are missing, except under CI, where that fails.
"""
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "ui_check.py"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def ui_check():
    spec = importlib.util.spec_from_file_location("ui_check", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [p for p in (module.CHROMIUM, module.DRIVER) if not shutil.which(p)]
    if missing or importlib.util.find_spec("selenium") is None:
        message = f"no {', '.join(missing) or 'selenium'}: apt-get install chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run installs them)")
        pytest.skip(message)
    return module


@pytest.fixture(scope="module")
def seen(ui_check, tmp_path_factory):
    shots = tmp_path_factory.mktemp("shots")
    with tempfile.TemporaryDirectory(prefix="wordnet-ui-") as tmp:
        with ui_check.mlflow_server(Path(tmp)) as url:
            ui_check.log_runs(url, Path(tmp))
            result = ui_check.look(url, shots)
    result["shots"] = sorted(p.name for p in shots.iterdir())
    return result


def test_runs_are_named_by_what_differs_and_listed(seen):
    singles = [f"lr={lr} stop=1500 every=500 · quick · fast" for lr in ("0.05", "0.2", "0.5")]
    assert set(singles) <= set(seen["runs"])
    assert {"h=50 stop=300 · quick · fast", "h=100 stop=300 · quick · fast",
            "sweep hidden_size × early_stop · quick"} <= set(seen["runs"])
    assert all(name[:12] in seen["runs_page"] for name in singles)
    assert all(name[:12] in seen["compare"] for name in singles)


def test_the_run_page_has_the_description_bars_for_finals_lines_for_curves(seen):
    assert "One-epoch smoke run" in seen["overview"]
    assert "Overridden: early_stop=1500 (recipe: 3725), learning_rate=0." in seen["overview"]
    charts = seen["run_charts"]                          # title -> kinds, per group
    assert charts == seen["logged_charts"]               # drawn as logged
    for final in ("final_ce", "perplexity", "top1", "top5", "updates_per_second",
                  "train_seconds", "updates"):
        assert set(charts.get(final, [])) == {"bar"}, (final, charts)
    for curve in ("ce_running_mean", "batch_ce_mean10", "epoch"):
        assert charts.get(curve) == ["line"], (curve, charts)
    assert charts.get("ce") == ["bar", "line"], charts        # test/ce, and the valid/ce curve


def test_the_sweep_parent_and_the_model_page(seen):
    assert "Best by validation CE: h=" in seen["sweep"]
    assert "test/ce" in seen["model"] and "wordnet-quick-fast" in seen["model"]
    assert seen["shots"] == ["compare.png", "model.png", "run-charts.png", "run-overview.png",
                             "runs.png", "sweep-parent.png"]
