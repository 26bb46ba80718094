"""Sweeps: the search space and Optuna's sampling and pruning (``search``), the trials
and the parent run (``sweep``), a trial's process (``trials``), trials on Ray
(``ray_executor``)."""
