"""MLflow tracking: one MLflow run per pipeline run, metrics batched off the training thread.

``store`` connects to a tracking store (to log a run, or to read a model);
``run`` is a pipeline run's MLflow run and its end (or a later one's, continuing it);
``model_registry`` registers its model; ``metrics`` batches its
metrics off the training thread; ``logged_model`` and ``wheel`` make the model
it logs; ``machine`` says what it ran on and from; ``errors`` says what failed.
The names other layers use are re-exported here (``tracking.start_run``).

MLflow is imported by the functions that need it, never at import time.
"""
from wordnet.tracking.errors import TrackingError, first_line
from wordnet.tracking.logged_model import SERVING_CODE, model_requirements
from wordnet.tracking.machine import git_commit, machine_tags
from wordnet.tracking.metrics import MetricQueue
from wordnet.tracking.run import NoRun, Run, continuable, end_orphan, start_run
from wordnet.tracking.store import connect, current_store, page_of, use_store_for_reading

__all__ = ["SERVING_CODE", "MetricQueue", "NoRun", "Run", "TrackingError", "connect",
           "continuable", "current_store", "end_orphan", "first_line", "git_commit", "machine_tags", "model_requirements", "page_of",
           "start_run", "use_store_for_reading"]
