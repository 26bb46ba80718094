"""wordnet.runs.reproduce: the checks on the published model and on the model just trained,
through the reproduce stage itself."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from wordnet.cli import cli
from wordnet.data import embedded
from wordnet.models import checkpoint
from wordnet.models.base import INT_MAX
from wordnet.models.fourgram import Model
from wordnet.runs import pipeline, recipes, reproduce
from wordnet.runs.rundir import RunDir

PUBLISHED_KEYS = {"test_ce", "valid_ce", "test_top1", "test_top5", "next_words"}


def folder_with(tmp_path, model: bytes, recipe: recipes.Recipe):
    """A run folder holding ``model`` as trained by ``recipe``."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.bin").write_bytes(model)
    (out / "vocab.txt").write_bytes(embedded.read_bytes("vocab.txt"))
    RunDir(out).write_json("recipe.json", recipe.as_json())
    return out


def reproduce_stage(out, dataset, recorder=None):
    """The reproduce stage on the folder ``out``, as `run --stage reproduce` runs it."""
    recipe = RunDir(out).recipe()
    run = pipeline.PipelineRun(recipe, out, pipeline.RunOptions(echo=lambda m: None, dataset=dataset), recorder)
    return run.stages.reproduce()


def flip_last_bit(path, offset):
    blob = bytearray(path.read_bytes())
    blob[offset] ^= 1                         # little-endian: the first byte holds the last bit
    path.write_bytes(bytes(blob))


@pytest.fixture(scope="module")
def tiny(dataset, tmp_path_factory):
    """20 updates of the quick recipe with overrides, trained and tested by the pipeline."""
    out = tmp_path_factory.mktemp("tiny")
    recipe = recipes.with_overrides(recipes.load_recipe("quick"),
                                    {"backend": "exact", "early_stop": "19"})
    pipeline.PipelineRun(recipe, out, pipeline.RunOptions(echo=lambda m: None, dataset=dataset)).execute(
        ("load", "train", "test"))
    return out


def test_the_c_recipe_is_byte_identical_with_c_full_and_logged(dataset, tmp_path,
                                                               recording_run):
    """c_full.bin as the folder's model, under the reference recipe as written: both parts
    pass, byte identity among them, and the metrics say so."""
    out = folder_with(tmp_path, embedded.read_bytes("c_full.bin"), recipes.load_recipe("reference"))
    recorder = recording_run()
    reproduce_stage(out, dataset, recorder)
    report = json.loads((out / "reproduction.json").read_text())
    results = {c["key"]: (c["part"], c["result"]) for c in report["checks"]}
    assert report["passed"] and report["notes"] == []
    assert {k for k, (part, _) in results.items() if part == "published"} == PUBLISHED_KEYS
    assert results["identical"] == ("trained", "pass")
    assert results["max_difference"] == ("trained", "pass")
    assert results["baseline"] == ("trained", "pass")
    assert results["agreement"] == ("trained", "pass")      # enforced: the recipe as written
    assert all(result == "pass" for _, result in results.values())
    logged = {k: (v, step) for k, v, step in recorder.metrics}
    assert logged["reproduce/identical"][0] == 1.0
    assert logged["reproduce/max_weight_difference"][0] == 0.0
    assert logged["reproduce/failures"][0] == 0.0
    assert {"reproduction.md", "reproduction.json"} <= set(recorder.artifacts)
    markdown = (out / "reproduction.md").read_text()
    assert "## (a) The engine on the published model9-3000.bin" in markdown
    assert "## (b) The model just trained" in markdown
    assert "| byte identity with c_full.bin | True | True | pass |" in markdown


def test_one_flipped_bit_fails_the_run_and_names_the_check(tmp_path, monkeypatch):
    out = folder_with(tmp_path, embedded.read_bytes("c_full.bin"), recipes.load_recipe("reference"))
    flip_last_bit(out / "model.bin", checkpoint.HEADER.size + 8 * 1234)   # a weight of W1
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["run", "--stage", "reproduce", "--out", str(out),
                                      "--no-tracking"])
    assert result.exit_code == 1, result.output
    assert "FAIL  byte identity with c_full.bin: False" in result.output
    assert "Error: 2 reproduction check(s) failed: byte identity with c_full.bin; largest " \
           "weight difference from c_full.bin" in result.output
    assert json.loads((out / "run.json").read_text())["status"] == "FAILED"


def test_the_fast_backend_is_held_to_its_bound(dataset, tmp_path):
    """Under the fast backend the same flipped bit is within the BLAS bound: reported as a
    difference, not a failure; a larger one fails."""
    fast = recipes.with_overrides(recipes.load_recipe("reference"), {"backend": "fast"})
    out = folder_with(tmp_path, embedded.read_bytes("c_full.bin"), fast)
    flip_last_bit(out / "model.bin", checkpoint.HEADER.size + 8 * 1234)
    reproduce_stage(out, dataset)
    checks = {c["key"]: c for c in json.loads((out / "reproduction.json").read_text())["checks"]}
    assert checks["identical"]["result"] == ("not enforced (the fast backend's BLAS sums in "
                                             "another order)")
    assert 0 < checks["max_difference"]["value"] < 1e-15
    assert checks["max_difference"]["result"] == "pass"
    header, params = checkpoint.load(out / "model.bin")
    params["W3"][0, 0] += 1e-9
    checkpoint.save(out / "model.bin", header, params)
    with pytest.raises(pipeline.PipelineError, match="largest weight difference from c_full.bin"):
        reproduce_stage(out, dataset)


def test_the_quick_bound_fails_on_an_untrained_model(reference_file, tmp_path, monkeypatch):
    out = folder_with(tmp_path, reference_file("c_init.bin").read_bytes(),
                      recipes.load_recipe("quick"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["run", "--stage", "reproduce", "--out", str(out),
                                      "--no-tracking"])
    assert result.exit_code == 1, result.output
    assert "FAIL  test CE, the quick recipe's bound: 5.5456" in result.output
    assert "FAIL  test CE, against the unigram baseline" in result.output
    assert "checks passed" not in result.output


def test_other_recipes_say_why_the_byte_checks_do_not_apply(tiny, dataset):
    """20 updates of the quick recipe (early_stop=19): the engine's part passes, the C
    recipe's byte checks are named as not applying, and what the short training cannot
    reach, the unigram baseline and the recipe's bound, is reported, not enforced, saying
    so; the stage passes, none of its checks on the model just trained."""
    said = []
    recipe = RunDir(tiny).recipe()
    run = pipeline.PipelineRun(recipe, tiny, pipeline.RunOptions(echo=said.append,
                                                                 dataset=dataset))
    run.stages.reproduce()
    assert said[0] == ("reproduce: the overrides take out these checks, reported but not "
                       "enforced: the test CE against the unigram baseline (overridden: "
                       "early_stop=19); the quick recipe's bound on the test CE (overridden: "
                       "early_stop=19)")
    report = json.loads((tiny / "reproduction.json").read_text())
    assert report["passed"]
    results = {c["key"]: c["result"] for c in report["checks"]}
    assert {k for k in results if results[k] == "pass"} == PUBLISHED_KEYS
    assert "identical" not in results
    assert results["baseline"] == results["bound"] == "not enforced (overridden: early_stop=19)"
    assert results["agreement"] == "not enforced (the quick recipe reports it)"
    [baseline] = [c for c in report["checks"] if c["key"] == "baseline"]
    assert not baseline["passed"] and not baseline["enforced"]     # 20 updates: above it
    [c_full] = report["notes"]
    assert c_full.startswith("comparison with c_full.bin: it is the C program's model of its "
                             "own recipe, and here epochs=1 (C recipe: 9); early_stop=19 "
                             "(C recipe: 3000); validation_period=1000 (C recipe: never)")
    assert any(line.startswith("  info  test CE, against the unigram baseline: ")
               and line.endswith(", not enforced (overridden: early_stop=19)") for line in said)
    assert said[-1] == ("reproduce: 5 enforced check(s) passed, none of them on the model just "
                        "trained (not enforced: overridden: early_stop=19; the quick recipe "
                        "reports it).")
    assert "| test CE, against the unigram baseline | " in (tiny / "reproduction.md").read_text()
    assert "| not enforced (overridden: early_stop=19) |" in (tiny / "reproduction.md").read_text()


def test_a_short_run_keeps_the_checks_it_can_reach(dataset):
    """What is taken out, and why, from the recipe and its overrides alone."""
    def waived(name, **overrides):
        recipe = recipes.with_overrides(recipes.load_recipe(name),
                                        {k: str(v) for k, v in overrides.items()})
        return reproduce.waived(recipe, len(dataset.train))
    assert waived("reference") == waived("quick") == {}
    assert waived("quick", epochs=1) == {}                      # the recipe's own value
    assert waived("quick", early_stop=800) == {
        "baseline": "overridden: early_stop=800", "bound": "overridden: early_stop=800"}
    assert waived("quick", early_stop=5000) == {"bound": "overridden: early_stop=5000"}
    assert waived("quick", learning_rate=0.2, epochs=2) == {
        "bound": "overridden: epochs=2, learning_rate=0.2"}     # longer: the baseline holds
    short = waived("reference", epochs=1, learning_rate=0.2)
    assert short["baseline"] == "overridden: epochs=1"
    assert short["agreement"] == short["bound"] == "overridden: epochs=1, learning_rate=0.2"


def test_statistical_parity_is_enforced_when_the_recipe_asks(tiny, dataset):
    saved = RunDir(tiny).recipe()
    strict = recipes.Recipe("strict", "", saved.config, saved.config,
                            enforce_statistical_parity=True)
    model = Model(checkpoint.load(tiny / "model.bin")[1], "exact")
    from wordnet.training.trainer import evaluate
    ours = evaluate(model, dataset.test)
    report = reproduce.reproduce(tiny / "model.bin", model, strict, dataset, ours)
    assert [c.key for c in report.failed] == ["baseline", "parity_ce", "parity_top1", "agreement"]
    # the agreement, as both models' likeliest words over the test rows of full batches
    rows = dataset.test[:len(dataset.test) // 100 * 100, :-1]
    published = Model(checkpoint.load_embedded("model9-3000.bin")[1], "exact")
    expected = np.mean(model.predict_proba(rows).argmax(axis=1)
                       == published.predict_proba(rows).argmax(axis=1))
    assert report.value("agreement") == expected


def test_another_c_library_is_named_instead_of_failing(dataset, tmp_path, monkeypatch):
    out = folder_with(tmp_path, embedded.read_bytes("c_full.bin"), recipes.load_recipe("reference"))
    flip_last_bit(out / "model.bin", checkpoint.HEADER.size + 8 * 1234)
    monkeypatch.setattr(reproduce.platform, "libc_ver", lambda: ("", ""))
    reproduce_stage(out, dataset)                           # no failure: not enforced here
    report = json.loads((out / "reproduction.json").read_text())
    assert {c["key"]: c["result"] for c in report["checks"]}["identical"] == (
        "not enforced (the platform's C library is not glibc)")
    assert any("exp and log from the platform's C library" in n and "not glibc" in n
               for n in report["notes"])


def test_byte_parity_with_a_given_checkpoint(dataset, reference_file, tmp_path):
    """10 exact updates of the C recipe are the C program's c_10_updates.bin, byte for byte."""
    c_recipe = recipes.with_overrides(recipes.load_recipe("quick"), {
        "backend": "exact", "epochs": "1", "early_stop": "10", "validation_period": str(INT_MAX),
        "reference_checkpoint": str(reference_file("c_10_updates.bin"))})
    run = pipeline.PipelineRun(c_recipe, tmp_path, pipeline.RunOptions(echo=lambda m: None, dataset=dataset))
    run.stages.train()
    notes = []
    checks = {c.key: c for c in reproduce.byte_parity(
        tmp_path / "model.bin", reference_file("c_10_updates.bin").read_bytes(),
        "c_10_updates.bin", c_recipe.config, notes)}
    assert checks["identical"].passed and checks["max_difference"].value == 0.0 and not notes
    checks = {c.key: c for c in reproduce.byte_parity(
        tmp_path / "model.bin", reference_file("c_init.bin").read_bytes(), "c_init.bin",
        c_recipe.config, notes, key="given_")}
    assert not checks["given_identical"].passed and checks["given_max_difference"].value > 0
    assert checks["given_header"].value == "differs in early_stop"


def test_a_check_that_is_not_enforced_is_never_labelled_pass(tmp_path):
    """Met or not, a check not enforced says so, and why, in both reports and on the
    command line."""
    report = reproduce.Report("a model", [
        reproduce.Check(reproduce.TRAINED, "agreement", "top-1 agreement", 0.3, ">= 0.6",
                        False, enforced=False, why="the quick recipe reports it"),
        reproduce.Check(reproduce.TRAINED, "parity_ce", "test CE vs model9-3000.bin", 2.62,
                        "2.62 ± 0.01", True, enforced=False, why="overridden: epochs=8")])
    report.write(tmp_path)
    written = json.loads((tmp_path / "reproduction.json").read_text())
    assert written["passed"]
    assert [(c["result"], c["why"]) for c in written["checks"]] == [
        ("not enforced (the quick recipe reports it)", "the quick recipe reports it"),
        ("not enforced (overridden: epochs=8)", "overridden: epochs=8")]
    markdown = (tmp_path / "reproduction.md").read_text()
    assert "| top-1 agreement | 0.3 | >= 0.6 | not enforced (the quick recipe reports it) |" in markdown
    assert "| test CE vs model9-3000.bin | 2.62 | 2.62 ± 0.01 | not enforced (overridden: epochs=8) |" in markdown
    assert "| pass |" not in markdown
    assert report.verdict() == ("0 enforced check(s) passed, none of them on the model just "
                                "trained (not enforced: the quick recipe reports it; "
                                "overridden: epochs=8).")
    assert report.lines()[-1] == ("  info  test CE vs model9-3000.bin: 2.62 (expected 2.62 ± "
                                  "0.01), not enforced (overridden: epochs=8)")
