"""Sweeps: the search space and Optuna's sampling and pruning (``search``), the trials
and the parent run (``sweep``), where trials run (``executor``: the interface and the
registry; ``in_process``, ``processes``, ``ray_executor``: the executors), a trial's
process (``trials``)."""
