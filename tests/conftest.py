"""Fixtures: the data and the C reference's files, found through environment variables.

WORDNET_DATA_DIR and WORDNET_REFERENCE_DIR point at them (.ci/run sets both).
Without them a test that needs them is skipped, except under CI, where it fails.
"""
import os
from pathlib import Path

import pytest


def _folder(var: str) -> Path:
    value = os.environ.get(var)
    if value and Path(value).is_dir():
        return Path(value)
    message = f"{var} is not set to a folder" + (f" ({value!r})" if value else "")
    if os.environ.get("CI"):
        pytest.fail(message + ": CI needs it")
    pytest.skip(message)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _folder("WORDNET_DATA_DIR")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return _folder("WORDNET_REFERENCE_DIR")


@pytest.fixture(scope="session")
def dataset(data_dir):
    from wordnet.data import load_dataset
    return load_dataset(data_dir)


@pytest.fixture(scope="session")
def reference_file(reference_dir):
    def get(name: str) -> Path:
        path = reference_dir / name
        if not path.is_file():
            pytest.fail(f"{path} is missing")
        return path
    return get


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """An SQLite tracking store with MLflow's tables made (seconds of migrations, once)."""
    path = tmp_path_factory.getbasetemp() / "mlflow-empty.db"
    if not path.exists():
        from mlflow import MlflowClient
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(path.parent)
            MlflowClient(f"sqlite:///{path}").search_experiments()
    return path
