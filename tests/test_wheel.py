"""wordnet.tracking.wheel: the installed package's wheel, rebuilt offline for a logged model to carry,
and the requirement a model gets when there is no such wheel; the build's commit stamp."""
import base64
import csv
import hashlib
import io
import subprocess
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import wordnet
from wordnet import tracking
from wordnet.tracking import wheel

CHECKOUT = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_the_installed_package_and_a_true_record(tmp_path):
    path = wheel.build(tmp_path)
    dist = metadata.distribution("wordnet-4gram")
    assert path.name.startswith("wordnet_4gram-0.1.0-cp3") and path.suffix == ".whl"
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        info = "wordnet_4gram-0.1.0.dist-info"
        assert {"wordnet/__init__.py", "wordnet/serving/pyfunc.py", "wordnet/_commit.py",
                f"{info}/METADATA", f"{info}/WHEEL", f"{info}/entry_points.txt",
                f"{info}/RECORD"} <= names
        assert any(n.startswith("wordnet/_loop.") and n.endswith(".so") for n in names)
        assert not {f"{info}/INSTALLER", f"{info}/REQUESTED", f"{info}/direct_url.json"} & names
        assert not any(n.endswith(".pyc") or n.startswith("..") for n in names)
        packed = [n for n in names if n.endswith(".xz")]        # the data, compressed already
        assert packed and all(archive.getinfo(n).compress_type == zipfile.ZIP_STORED
                              for n in packed)
        rows = list(csv.reader(io.StringIO(archive.read(f"{info}/RECORD").decode())))
        assert {row[0] for row in rows} == names
        for name, digest, size in rows:
            if name.endswith("/RECORD"):
                continue
            data = archive.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert (digest, int(size)) == (f"sha256={expected.decode()}", len(data)), name
        cli = "wordnet/cli/__init__.py"
        assert archive.read(cli) == Path(dist.locate_file(cli)).read_bytes()


def test_an_editable_install_gets_a_plain_requirement_and_a_warning(monkeypatch):
    def editable():
        raise wheel.NotRebuildable("wordnet-4gram is an editable install")
    monkeypatch.setattr(wheel, "_regular_install", editable)
    wheel.installed_wheel.cache_clear()
    try:
        assert wheel.installed_wheel() is None
    finally:
        wheel.installed_wheel.cache_clear()
    import mlflow
    with pytest.warns(UserWarning, match="requires wordnet-4gram==0.1.0 from a package index"):
        requirements = tracking.model_requirements(None)
    assert requirements == ["wordnet-4gram==0.1.0", f"mlflow=={mlflow.__version__}"]


def test_the_installed_package_records_the_commit_it_was_built_from():
    """CI installs the checkout it tests: the stamp is that checkout's HEAD."""
    assert "site-packages" in wordnet.__file__, "the tests must import the installed package"
    from wordnet._commit import COMMIT  # written by setup.py's build
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=CHECKOUT, capture_output=True,
                          text=True)
    expected = head.stdout.strip() if head.returncode == 0 else "unknown"
    assert COMMIT == tracking.git_commit() == expected
