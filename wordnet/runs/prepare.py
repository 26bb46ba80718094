"""Before a run's work: refuse an output folder that cannot be written, load the data
and reach MLflow, the data loading while MLflow is imported and its store opened; the
folder is made only once the store is reached."""
from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from wordnet.data.dataset import Dataset, load_dataset
from wordnet.runs.rundir import check_creatable, check_writable


def prepare(out: Path, data: Path | None, tracking_uri: str | None, experiment: str,
            track: bool, status=lambda message: print(message, file=sys.stderr)) -> Dataset:
    """The dataset of ``data`` (None: the copy shipped with the package), once ``out``
    is known writable and, if ``track``, MLflow connected to ``tracking_uri`` and
    ``experiment`` (its TrackingError raised here, ``out`` not made); ``status`` says it
    connects."""
    check_creatable(out)                        # nothing made before the store answers
    if not track:
        check_writable(out)
        return load_dataset(data)
    from wordnet.tracking.store import connect
    status("connecting to MLflow...")
    with ThreadPoolExecutor(1, thread_name_prefix="wordnet-connect") as connecting:
        connected = connecting.submit(connect, tracking_uri, experiment)
        dataset = load_dataset(data)
        connected.result()                      # its TrackingError, if any
    check_writable(out)
    return dataset
