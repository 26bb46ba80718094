"""Before a run's work: refuse an output folder that cannot be written, load the data
and reach MLflow, the data loading while MLflow is imported and its store opened."""
from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from wordnet.data.dataset import Dataset, load_dataset
from wordnet.runs.rundir import check_writable


def prepare(out: Path, data: Path | None, tracking_uri: str | None, experiment: str,
            track: bool, status=lambda message: print(message, file=sys.stderr)) -> Dataset:
    """The dataset of ``data`` (None: the copy shipped with the package), once ``out``
    is known writable and, if ``track``, MLflow connected to ``tracking_uri`` and
    ``experiment`` (its TrackingError raised here); ``status`` says it connects."""
    check_writable(out)
    if not track:
        return load_dataset(data)
    from wordnet.tracking.store import connect
    status("connecting to MLflow...")
    with ThreadPoolExecutor(1, thread_name_prefix="wordnet-connect") as connecting:
        connected = connecting.submit(connect, tracking_uri, experiment)
        dataset = load_dataset(data)
        connected.result()                      # its TrackingError, if any
    return dataset
