"""What MLflow's UI shows of the runs, in headless Chromium (tools/ui_check.py).

One store holding a run of every kind, logged through the command line with no
--experiment (so each kind goes to its default experiment): the reference recipe, quick
runs at three learning rates, a sweep with pruned trials, the window scorer, skip-gram,
skip-gram with negatives, a training killed and resumed, a test stage run alone on an
earlier folder, a compare-embeddings.  Then the walk of its pages (ui_check.walk), whose
screenshots go to $WORDNET_UI_SHOTS if set (else a temporary folder).  Each test checks
one demand of the issue on what the browser read, with what MlflowClient read of the
store where the browser cannot say it.

Marked ``browser``: it needs Chromium and chromedriver, which .ci/run installs.
Skipped where they are missing, except under CI, where that fails.
"""
import importlib.util
import os
import shutil
import time
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
    shots = Path(os.environ.get("WORDNET_UI_SHOTS") or tmp_path_factory.mktemp("shots"))
    started = time.monotonic()
    result = ui_check.walk(shots)
    result["seconds"] = time.monotonic() - started
    result["shots"] = sorted(p.name for p in shots.iterdir())
    print(f"\nthe UI walk: {result['seconds']:.0f} s ({result['logged']['seconds']}); "
          f"screenshots in {shots}")
    return result


def runs_of(seen, experiment):
    return seen["experiments"][experiment]["runs"]


def by_role(seen, role):
    """The run (name, its record) of a role: "reference", "lr=0.05", "resumed", ..."""
    run_id = seen["role_id"][role]
    return next((name, run) for exp in seen["experiments"].values()
                for name, run in exp["runs"].items() if run["id"] == run_id)


# 1. The printed links open the training view.

def test_the_printed_links_open_the_model_training_view(seen):
    links = seen["logged"]["links"]
    assert links["reference"]["line"].startswith("MLflow run 'reference · exact': http://")
    for role in ("reference", "resumed", "compare"):
        assert links[role]["url"].endswith("?workflowType=machine_learning"), links[role]
        page = seen["links"][role]                      # opened in a fresh browser
        assert page["view"] == "training", (role, page)
        assert {"Runs", "Models"} <= set(page["nav"]), (role, page["nav"])
        assert not {"Judges", "Prompts", "Evaluation runs", "Training runs"} & set(page["nav"])
        assert {"Overview", "Model metrics"} <= set(page["tabs"]), (role, page["tabs"])
    # The marker tells the views apart: without the parameter MLflow opens its GenAI view.
    bare = seen["links"]["reference-without-workflowType"]
    assert bare["view"] == "genai" and "Judges" in bare["nav"], bare


# 2. No empty chart card on a run page.

@pytest.mark.parametrize("role", ["reference", "lr=0.05", "lr=0.5", "resumed", "sweep-parent",
                                  "sweep-trial-pruned", "window", "skipgram", "skipgram-neg",
                                  "compare"])
def test_no_empty_chart_card_on_a_run_page(seen, role):
    page = seen["run_pages"][role]
    empty = {key: card for key, card in page["cards"].items()
             if card["kind"] not in ("bar", "line")}
    assert not empty, (f"{page['name']}: cards without data (screenshot "
                       f"run-charts-{role}.png)", empty)
    assert set(page["cards"]) == set(page["logged"]), (set(page["cards"]) ^ set(page["logged"]))


def test_a_run_page_opened_after_another_in_the_same_tab_has_no_empty_card(seen):
    # MLflow's UI was once seen carrying a run page's chart cards (the reference's
    # reproduce/*) to the next run page opened in the same tab, empty there (an xfail
    # here until it passed in CI and here alike): the walk opens lr=0.2's page after the
    # reference's (run-charts-lr=0.2-after-reference.png).
    assert not seen["carried_over"]["empty"], seen["carried_over"]


# 3. No chart mixes two quantities.

KINDS = {"wordnet-4gram": "4gram", "wordnet-window": "window", "wordnet-skipgram": "skipgram",
         "wordnet-skipgram-neg": "skipgram-neg", "wordnet-compare": "compare"}


def test_each_experiment_holds_one_kind_and_charts_only_its_metrics(seen):
    assert set(KINDS) <= set(seen["experiments"]), sorted(seen["experiments"])
    for experiment, kind in KINDS.items():
        runs = runs_of(seen, experiment)
        assert {run["kind"] for run in runs.values()} == {kind}, (experiment, runs)
        titles = set(seen["chart_views"][experiment])
        logged = set(seen["chart_views"][experiment + ":logged"])
        assert titles, f"no chart read in {experiment}'s Chart view"
        assert titles <= logged, (experiment, titles - logged)
        overlap = {t for t in titles if t.startswith("overlap/")}
        assert bool(overlap) == (kind == "compare"), (experiment, overlap)
    four_gram = set(seen["chart_views"]["wordnet-4gram"])
    assert {"train/ce_running_mean", "valid/final_ce", "test/ce"} <= four_gram
    assert not {"train/loss_running_mean", "test/log_likelihood", "valid/loss"} & four_gram
    skipgram = set(seen["chart_views"]["wordnet-skipgram"])
    assert "train/ce_running_mean" not in skipgram and "train/loss_running_mean" in skipgram


def test_the_compare_view_names_only_the_4gram_models_metrics(seen):
    shown = set(seen["compare"]["metrics"])
    logged = {key for run in runs_of(seen, "wordnet-4gram").values() for key in run["metrics"]}
    assert {"valid/final_ce", "test/ce"} <= shown, shown
    assert shown <= logged, shown - logged


# 4. One run per model, with its whole curve.

def test_the_resumed_training_is_one_run_with_one_whole_curve(seen):
    links = seen["logged"]["links"]
    assert links["interrupted"]["run_id"] == links["resumed"]["run_id"]
    name, run = by_role(seen, "resumed")
    assert run["status"] == "FINISHED"
    assert [n for n in runs_of(seen, "wordnet-4gram") if n.startswith(name)] == [name]
    steps = seen["steps"]["train/ce_running_mean"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) == 901, steps[:5]
    assert seen["steps"]["valid/ce"] == [301, 601, 901]
    chart = seen["run_pages"]["resumed"]["cards"]["train/ce_running_mean"]
    assert chart["kind"] == "line" and chart["runs"] == [name], chart      # one line
    assert chart["first"] <= 10 and chart["last"] == 901, chart              # from start to end
    assert chart["gap"] <= 901 / 20, chart                                   # without a hole


def test_a_test_stage_run_alone_adds_no_run(seen):
    links = seen["logged"]["links"]
    assert links["test-only"]["run_id"] == links["lr=0.5"]["run_id"]
    name, run = by_role(seen, "lr=0.5")
    assert [n for n in runs_of(seen, "wordnet-4gram") if n.startswith(name)] == [name]
    assert "test/ce" in run["metrics"] and "valid/final_ce" in run["metrics"]
    assert seen["run_pages"]["lr=0.5"]["cards"]["test/ce"]["kind"] == "bar"
    versions = [v for v in seen["registry"]["versions"].values() if v["run_id"] == run["id"]]
    assert len(versions) == 1, versions                     # its version updated, not another


# 5. Registered versions only of finished, passing runs.

def test_the_registry_lists_only_finished_runs_and_the_reference_is_reproduced(seen):
    rows = {row["version"]: [s.replace("\xa0", " ") for s in row["text"]]
            for row in seen["registry"]["rows"]}
    versions = seen["registry"]["versions"]
    assert set(rows) == set(versions), (sorted(rows), sorted(versions))
    for number, version in versions.items():
        assert version["status"] == "FINISHED", (number, version)
    reference = seen["role_id"]["reference"]
    [(number, version)] = [(n, v) for n, v in versions.items() if v["run_id"] == reference]
    assert "reproduced" in version["aliases"] and "@ reproduced" in rows[number], rows[number]
    registered = {v["run_id"] for v in versions.values()}
    not_finished = {run["id"] for exp in seen["experiments"].values()
                    for run in exp["runs"].values() if run["status"] != "FINISHED"}
    assert not_finished and not registered & not_finished
    pruned = {row["run_id"] for row in seen["logged"]["sweep"] if row["status"] == "PRUNED"}
    assert pruned and pruned <= not_finished and not registered & pruned


def test_the_interrupted_run_was_registered_only_once_resumed_and_finished(seen):
    assert seen["logged"]["interrupted_status"] != "FINISHED"
    assert seen["logged"]["versions_before_resume"] == []
    assert len(seen["logged"]["versions_after_resume"]) == 1
    number = seen["logged"]["versions_after_resume"][0]
    assert seen["registry"]["versions"][number]["run_id"] == seen["role_id"]["resumed"]
    assert number in {row["version"] for row in seen["registry"]["rows"]}


# 6. No single point drawn as a line.

def test_the_reference_run_page_draws_no_single_point_as_a_line(seen):
    # valid/ce of the reference recipe has one point (validation_period is never reached:
    # it is measured once, after training). This passes only with the change that logs
    # a curve from its second point (branch cli, 078a0cd, merged in main 9e729e4); on a
    # branch without it, this fails for that reason alone (run-charts-reference.png).
    cards = seen["run_pages"]["reference"]["cards"]
    single = {key: card for key, card in cards.items()
              if card["kind"] == "line" and card["points"] < 2}
    assert not single, single


# What the walk checked before: names, descriptions, bars and lines, the sweep, the model.

def test_runs_are_named_by_what_differs_and_listed(seen):
    singles = [f"lr={lr} stop=1500 every=500 · quick · fast" for lr in ("0.05", "0.2", "0.5")]
    names = set(runs_of(seen, "wordnet-4gram"))
    assert set(singles) | {"reference · exact", "lr=0.4 stop=900 every=300 · quick · fast"} <= names
    assert "sweep learning_rate × early_stop × validation_period · quick" in names
    assert all(name[:12] in seen["runs_pages"]["wordnet-4gram"] for name in singles)
    assert all(name[:12] in seen["compare"]["text"] for name in singles)
    assert set(runs_of(seen, "wordnet-compare")) == {"compare lr=0.05 · lr=0.2"}


def test_the_run_page_has_the_description_bars_for_finals_lines_for_curves(seen):
    assert "One-epoch smoke run" in seen["overview"]
    assert "Overridden: early_stop=1500 (recipe: epoch end), learning_rate=0." in seen["overview"]
    for role in ("lr=0.05", "reference", "window", "skipgram"):
        page = seen["run_pages"][role]
        drawn = {key: card["kind"] for key, card in page["cards"].items()}
        logged = {key: metric["kind"] for key, metric in page["logged"].items()}
        assert drawn == logged, (role, drawn, logged)          # drawn as logged
    charts = {key: card["kind"] for key, card in seen["run_pages"]["lr=0.05"]["cards"].items()}
    for final in ("valid/final_ce", "valid/perplexity", "valid/top1", "valid/top5", "test/ce",
                  "perf/updates_per_second", "perf/train_seconds", "perf/updates"):
        assert charts.get(final) == "bar", (final, charts)
    for curve in ("train/ce_running_mean", "train/batch_ce_mean10", "valid/ce"):
        assert charts.get(curve) == "line", (curve, charts)


def test_the_sweep_parent_pruned_trials_and_the_model_page(seen):
    assert "Best by validation CE: lr=" in seen["sweep"]
    pruned = [row for row in seen["logged"]["sweep"] if row["status"] == "PRUNED"]
    assert pruned and all("validation point" in row["error"] for row in pruned)
    assert "test/ce" in seen["model"]["text"] and seen["model"]["name"] in seen["model"]["text"]
    pages = ["reference", "lr=0.05", "lr=0.5", "resumed", "sweep-parent", "sweep-trial-pruned",
             "window", "skipgram", "skipgram-neg", "compare"]
    experiments = list(KINDS)
    assert set(seen["shots"]) >= {
        "compare.png", "model.png", "registry.png", "run-overview.png", "sweep-parent.png",
        "link-reference.png", "link-resumed.png", "link-compare.png",
        *(f"run-charts-{p}.png" for p in pages), *(f"runs-{e}.png" for e in experiments),
        *(f"chart-view-{e}.png" for e in experiments)}
