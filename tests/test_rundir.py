"""wordnet.runs.rundir: the run folder, its checks before a run, and the latest run."""
import dataclasses
from pathlib import Path

import pytest

from wordnet.models import checkpoint
from wordnet.models.fourgram import FourGramConfig
from wordnet.runs import rundir
from wordnet.runs.rundir import RunDir, RunFolderError, latest_run


def test_an_unwritable_output_folder_is_caught_first(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(RunFolderError, match="cannot write the run's files there"):
        rundir.check_writable(tmp_path / "file" / "out")


def test_the_space_a_run_needs():
    reference = FourGramConfig()
    header = checkpoint.Header.for_run(reference, 250, (0, 0, 0))
    model = header.file_size()
    needed = rundir.space_needed(header, 32_801)
    assert 4 * model + 32_801 * 25 < needed < 20 * 2**20        # about 9 MB
    bigger = dataclasses.replace(reference, hidden_size=2000)
    more_params = (2000 - 200) * (3 * 50 + 1 + 250)             # W2, b2, W3
    bigger = checkpoint.Header.for_run(bigger, 250, (0, 0, 0))
    assert rundir.space_needed(bigger, 32_801) - needed == 4 * 8 * more_params
    rundir.check_space(Path("."), 1)
    with pytest.raises(RunFolderError, match=r"only .* MB free, and the run needs about "
                                                     r"1,000,000,000,000,000.0 MB"):
        rundir.check_space(Path("."), 10**21)


def test_the_output_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert rundir.output_folder("x", "run", True, None) == Path("x")
    assert rundir.output_folder(None, "run", False, None) == Path("artifacts/run")
    Path("artifacts/run").mkdir(parents=True)
    assert rundir.output_folder(None, "run", False, None) == Path("artifacts/run-2")
    with pytest.raises(RunFolderError, match="no trained model under artifacts"):
        rundir.output_folder(None, "run", True, None)
    (Path("artifacts/run") / "model.bin").write_bytes(b"")
    RunDir("artifacts/run").write_manifest(status="FINISHED")
    assert latest_run() == Path("artifacts/run")
    assert rundir.output_folder(None, "other", True, None) == Path("artifacts/run")
    RunDir("artifacts/run").write_manifest(status="FAILED")
    assert latest_run() is None
