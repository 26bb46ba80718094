"""``compare-embeddings`` as a run: the models loaded and named, the table printed and
written (compare.md, compare.json), the maps drawn, and all of it logged to MLflow as
a run of its own.  The figures themselves are :mod:`wordnet.runs.compare`'s."""
from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

from wordnet.fileio import atomic_write
from wordnet.runs import compare, rundir
from wordnet.runs.locate import load
from wordnet.tracking.errors import TrackingError

FILES = ("compare.md", "compare.json", "embeddings_compared.png")
EXPERIMENT = "wordnet-compare"        # its runs' figures are no model's: their own experiment


def model_names(uris: list[str]) -> list[str]:
    """How the table and the maps name each model: a file's or folder's name, an MLflow
    URI as given; ``NAME #N`` for the Nth model when NAME is taken."""
    names = []
    for uri in uris:
        name = Path(uri).name if "://" not in uri and ":/" not in uri else uri
        names.append(name if name not in names else f"{name} #{len(names) + 1}")
    return names


def compare_embeddings(uris: list[str], k: int = compare.K, data_dir: Path | None = None,
                       out: str | None = None, tracking_uri: str | None = None,
                       experiment: str = EXPERIMENT, track: bool = True, echo=print,
                       status=lambda message: print(message, file=sys.stderr)) -> Path:
    """Compare the models at ``uris`` (anything ``--model`` accepts) on their ``k``
    nearest neighbours; the table goes to ``echo``, the files to ``out`` (a new folder
    under artifacts/ without it), which is returned.  CompareError before anything is
    written when they cannot be compared; TrackingError when MLflow did not take the
    run (the files are written)."""
    from wordnet import plots
    if track:
        from wordnet.tracking.store import connect
        status("connecting to MLflow...")
        connect(tracking_uri, experiment)
    names = model_names(uris)
    loaded = [compare.Embeddings(name, p.W1, tuple(p.vocab.words)) for name, p in
              zip(names, (load(uri, data_dir, tracking_uri) for uri in uris))]
    pairs = compare.compare(loaded, k)
    out = rundir.output_folder(out, f"compare-{datetime.now():%Y%m%d-%H%M%S}", False, None)
    rundir.check_writable(out)
    words = loaded[0].words
    text = compare.table(pairs, words, k)
    echo(text)
    atomic_write(out / "compare.md", ("# Embeddings compared\n\n" + "\n".join(
        f"{n}. {name}: {uri}" for n, (name, uri) in enumerate(zip(names, uris), 1))
        + "\n\n" + text).encode())
    atomic_write(out / "compare.json", json.dumps({
        "k": k, "models": dict(zip(names, uris)),
        "pairs": [{"models": [p.first, p.second], "mean_overlap": p.mean,
                   "per_word": dict(zip(words, p.per_word.tolist()))} for p in pairs]},
        indent=1).encode())
    plots.embedding_maps(out / "embeddings_compared.png", [m.W1 for m in loaded], names, words)
    echo(f"table and maps: {out}/")
    if track:
        _log(out, uris, names, pairs, k, text, echo)
    return out


def _log(out: Path, uris, names, pairs, k: int, text: str, echo) -> None:
    """The comparison as an MLflow run: the models and k as parameters, each pair's
    mean overlap as a metric, the table as its description, the files."""
    from wordnet.tracking.run import start_run
    with start_run(f"compare {' · '.join(names)}") as run:
        run.log_params({f"model{n}": uri for n, uri in enumerate(uris, 1)} | {"k": k})
        run.set_tags({"mlflow.note.content": "Embeddings compared: the share of each word's "
                      f"{k} nearest neighbours two models have in common.\n\n" + text})
        run.log_metrics({f"overlap/{names.index(p.first) + 1}-{names.index(p.second) + 1}":
                         p.mean for p in pairs})
        run.log_artifacts(*(out / name for name in FILES))
    if run.lost:
        raise TrackingError(f"MLflow did not take the comparison ({run.lost}); the "
                            f"table and maps are in {out}/")
    echo(f"MLflow run {run.run_name!r}: {run.page}")
