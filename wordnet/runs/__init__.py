"""A run: its recipe (``recipes``), its folder (``rundir``), its stages (``pipeline``),
the reproduction checks (``reproduce``), a model found by name (``locate``), a folder
logged after the fact (``backfill``) and embeddings compared (``compare``)."""
