"""A run's folder: the name of every file in it, reading and writing them, and the
latest run.

    model.bin       the checkpoint (C format)     vocab.txt       its vocabulary
    model.npz       the window scorer's or skip-gram's checkpoint, instead of model.bin
    recipe.json     the hyperparameters           history.json    every training CE
    metrics.json    the final metrics             run.json        what ran, how it ended
    .lock           held by the run writing into the folder, names it
    .mlflow_run     the MLflow run a command has open on the folder (runs.ownership)
    ce_curves.png   embeddings.png / .html        reproduction.md / reproduction.json

``run.json`` (the manifest) records the last run that succeeded in the folder,
or one that changed its model; :func:`latest_run` trusts only those that
finished.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import tempfile
import unicodedata
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from wordnet.errors import WordNetError
from wordnet.fileio import MiB, atomic_write, read_bounded, write_json
from wordnet.models import checkpoint, registry
from wordnet.runs.recipes import Recipe

RUNS_DIR = Path("artifacts")          # where `run` puts a folder per run
CHECKPOINT, VOCAB, MANIFEST, RECIPE = "model.bin", "vocab.txt", "run.json", "recipe.json"
NPZ_CHECKPOINT = "model.npz"          # the window scorer's and skip-gram's (checkpoint.save_npz)
METRICS, HISTORY = "metrics.json", "history.json"
CE_PLOT, EMBEDDING_PLOT, EMBEDDING_PAGE = "ce_curves.png", "embeddings.png", "embeddings.html"
REPORT, REPORT_JSON = "reproduction.md", "reproduction.json"
SWEEP, LOCK = "sweep.json", ".lock"
OPEN_RUN = ".mlflow_run"              # the MLflow run a command has open on the folder
SPACE_MARGIN = 4 * 2**20              # bytes for the plots, reports and JSON files
JSON_LIMIT = 16 * MiB                 # the most a run folder's JSON file holds, but
JSON_LIMITS = {HISTORY: 512 * MiB}    # every CE of a long run (some 25 bytes each)


class RunFolderError(WordNetError):
    """A run folder cannot be written, or holds a file that cannot be read."""


class RunNameError(WordNetError):
    """A run's name that gives no folder name: a usage error."""
    exit_code = 2


NAME_BYTES = 200                      # of a folder name (a file system's limit is 255)


def folder_name(name: str) -> str:
    """The folder a run's name gives: one path component, never a path.  Separators
    (``/``, ``\\``) and control characters become ``-``; the parts ``.`` and ``..``, and
    leading dots, dashes and spaces, go; at most NAME_BYTES bytes of UTF-8.  The MLflow
    run keeps its name as given.  :class:`RunNameError` when nothing is left."""
    cleaned = "".join("/" if ch == "\\" or unicodedata.category(ch).startswith("C") else ch
                      for ch in name)
    parts = [p for p in cleaned.split("/") if p.strip() not in ("", ".", "..")]
    slug = "-".join(parts).lstrip(".- ").rstrip(" .")
    slug = slug.encode()[:NAME_BYTES].decode(errors="ignore").rstrip(" .")
    if not slug:
        raise RunNameError(f"the run name {name!r} gives no folder name: use letters or "
                           "digits in --run-name, or give --out DIR")
    return slug


class RunDir:
    """The files of one run's folder."""

    def __init__(self, path):
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __str__(self) -> str:
        return str(self.path)

    # -- the model --------------------------------------------------------------------

    def save_model(self, header: checkpoint.Header, params: dict, words, recipe: Recipe) -> None:
        """The checkpoint, its vocabulary and the recipe that trained it; a window
        scorer's or skip-gram's checkpoint of an earlier run in the folder is removed."""
        checkpoint.save(self / CHECKPOINT, header, params)
        atomic_write(self / VOCAB, ("\n".join(words) + "\n").encode())
        self.write_json(RECIPE, recipe.as_json())
        (self / NPZ_CHECKPOINT).unlink(missing_ok=True)

    def load_model(self, vocab_size: int):
        """(header, params) of the folder's checkpoint."""
        return checkpoint.load(self / CHECKPOINT, vocab_size)

    def save_npz_model(self, kind: str, params: dict, words, recipe: Recipe) -> None:
        """The window scorer's or skip-gram's checkpoint, its vocabulary and recipe; what
        a 4-gram model of an earlier run in the folder left (its checkpoint, resume
        state, CE plot and reproduction report) is removed."""
        checkpoint.save_npz(self / NPZ_CHECKPOINT, kind, params)
        atomic_write(self / VOCAB, ("\n".join(words) + "\n").encode())
        self.write_json(RECIPE, recipe.as_json())
        for path in (self / CHECKPOINT, checkpoint.state_path(self / CHECKPOINT), self / CE_PLOT,
                     self / REPORT, self / REPORT_JSON):
            path.unlink(missing_ok=True)

    def has_model(self) -> bool:
        return (self / CHECKPOINT).is_file() or (self / NPZ_CHECKPOINT).is_file()

    def model_kind(self) -> str:
        """The folder's model kind (wordnet.models.registry), as its recipe.json says;
        without a readable one (or one from before the other models), the 4-gram model
        unless model.npz is the only checkpoint there ("npz": one of the others)."""
        try:
            saved = self.read_json(RECIPE)
        except RunFolderError:
            saved = None
        model = saved.get("config", {}).get("model") if isinstance(saved, dict) else None
        if isinstance(model, str):
            return model
        only_npz = (self / NPZ_CHECKPOINT).is_file() and not (self / CHECKPOINT).is_file()
        return "npz" if only_npz else registry.DEFAULT

    def model_file(self) -> Path:
        """The folder's checkpoint: its kind's (model.bin for a 4-gram model), else
        model.npz."""
        kind = registry.KINDS.get(self.model_kind())
        return self / (kind.checkpoint if kind else NPZ_CHECKPOINT)

    def recipe(self) -> Recipe | None:
        """The recipe the folder's model was trained with, if recorded."""
        saved = self.read_json(RECIPE)
        if saved is None:
            return None
        try:
            return Recipe.from_json(saved)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise RunFolderError(f"{self / RECIPE}: unreadable ({_one_line(e)})") from None

    # -- JSON and the manifest ---------------------------------------------------------

    def write_json(self, name: str, obj) -> None:
        write_json(self / name, obj)

    def read_json(self, name: str):
        """The JSON file ``name``, or None if there is none; RunFolderError, in one line,
        for a file that is not a regular one, too large, not JSON, or (run.json,
        metrics.json, history.json, recipe.json, reproduction.json) not of the form
        the pipeline writes, e.g. hand-edited."""
        path = self / name
        try:
            blob = read_bounded(path, JSON_LIMITS.get(name, JSON_LIMIT), name, RunFolderError)
        except FileNotFoundError:
            return None
        try:
            saved = json.loads(blob)
        except (ValueError, RecursionError) as e:
            raise RunFolderError(f"{path}: unreadable ({_one_line(e)})") from None
        problem = _SHAPES[name](saved) if name in _SHAPES else None
        if problem:
            raise RunFolderError(f"{path}: not as a run writes it: {problem}")
        return saved

    # -- one run at a time ----------------------------------------------------------------

    @contextmanager
    def lock(self):
        """Hold the folder for one run: another run into it, meanwhile, fails at once
        with an error naming this one (its pid, start time and command)."""
        fd = os.open(self / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
                raise RunFolderError(f"{self}: in use by another run ({holder or 'starting'}); "
                                     "wait for it to end or choose another --out") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, (f"pid {os.getpid()}, started "
                           f"{datetime.now().astimezone().isoformat(timespec='seconds')}: "
                           f"{' '.join(sys.argv)}").encode(), 0)
            yield
        finally:
            os.close(fd)                         # releases the lock

    def forget(self, name: str) -> None:
        (self / name).unlink(missing_ok=True)

    def has_manifest(self) -> bool:
        return (self / MANIFEST).is_file()

    def write_manifest(self, **fields) -> None:
        fields["finished"] = datetime.now(timezone.utc).isoformat()
        self.write_json(MANIFEST, fields)


def latest_run(root: Path = RUNS_DIR, models=None, recipe: str | None = None) -> Path | None:
    """The folder of the last run that finished with a checkpoint, of any model, or of
    one of ``models`` (kinds, e.g. ``registry.predicting()``: those that predict next
    words), or of the recipe named ``recipe`` (as its run.json records it)."""
    best, best_time = None, ""
    for manifest in Path(root).glob(f"*/{MANIFEST}"):
        try:
            info = RunDir(manifest.parent).read_json(MANIFEST) or {}
        except (OSError, RunFolderError):
            continue
        folder = RunDir(manifest.parent)
        if (info.get("status") == "FINISHED" and folder.has_model()
                and (models is None or folder.model_kind() in models)
                and (recipe is None or info.get("recipe") == recipe)
                and info.get("finished", "") > best_time):
            best, best_time = folder.path, info["finished"]
    return best


def output_folder(out: str | None, run_name: str, needs_model: bool, from_run: str | None) -> Path:
    """--out, else a fresh folder under artifacts/ for a run that trains (or fetches a
    run's model), named by :func:`folder_name` of ``run_name``, else the folder of the
    latest finished run."""
    if out:
        return Path(out)
    if needs_model and not from_run:
        latest = latest_run()
        if latest is None:
            raise RunFolderError(f"no trained model under {RUNS_DIR}/: run --stage train "
                                 "first, or pass --out DIR or --from-run RUN_ID")
        return latest
    name = folder_name(run_name)
    folder, n = RUNS_DIR / name, 1
    while folder.exists():
        n += 1
        folder = RUNS_DIR / f"{name}-{n}"
    return folder


def check_creatable(folder: Path) -> None:
    """Fail now when ``folder`` could not be made or written, leaving nothing: its
    nearest existing ancestor must be a folder that takes a file (an unnamed temporary
    one, gone when closed).  The check before the tracking store is reached;
    :func:`check_writable` makes the folder after."""
    folder = Path(os.path.abspath(folder))
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == p.parent)
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a folder")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise RunFolderError(f"{folder}: cannot write the run's files there "
                             f"({e.strerror or e}); choose another --out") from None


def check_writable(folder: Path) -> None:
    """Fail now, not after an hour of training, when ``folder`` cannot take files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise RunFolderError(f"{folder}: cannot write the run's files there "
                             f"({e.strerror or e}); choose another --out") from None


def space_needed(header: checkpoint.Header, iterations: int) -> int:
    """Bytes a training run may hold in its folder at once: the checkpoint and the
    resume state, each beside the temporary copy atomic_write replaces it with; the
    history (about 25 bytes a CE in JSON), likewise; and SPACE_MARGIN."""
    return 2 * 2 * header.file_size() + 2 * 32 * iterations + SPACE_MARGIN


def check_space(folder: Path, needed: int) -> None:
    """Fail before training, not when saving its result, when ``folder``'s file system
    has less than ``needed`` bytes free."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise RunFolderError(f"{folder}: only {_megabytes(free)} free, and the run needs about "
                             f"{_megabytes(needed)} (checkpoint, resume state, history); free "
                             "some space or choose another --out")


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


# -- what each JSON file of a run's folder must look like ------------------------------

def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _manifest_problem(saved) -> str | None:
    if not isinstance(saved, dict):
        return "not an object"
    for key in ("status", "recipe", "finished", "mlflow_not_logged"):
        if key in saved and not isinstance(saved[key], str):
            return f"{key} is not a string"
    for key in ("mlflow_run_id", "mlflow_run_name"):
        if saved.get(key) is not None and not isinstance(saved[key], str):
            return f"{key} is neither a string nor null"
    stages = saved.get("stages", [])
    if not isinstance(stages, list) or not all(isinstance(s, str) for s in stages):
        return "stages is not a list of names"
    return None


def _metrics_problem(saved) -> str | None:
    if not isinstance(saved, dict):
        return "not an object"
    bad = [k for k, v in saved.items() if not _number(v)]
    return f"{', '.join(bad[:3])} not a number" if bad else None


def _history_problem(saved) -> str | None:
    if not isinstance(saved, dict) or not {"train_ce", "valid_ce"} <= set(saved):
        return "not an object with train_ce and valid_ce"
    train, valid = saved["train_ce"], saved["valid_ce"]
    if not isinstance(train, list) or not all(_number(v) for v in train):
        return "train_ce is not a list of numbers"
    if not isinstance(valid, list) or not all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], int)
            and not isinstance(p[0], bool) and _number(p[1]) for p in valid):
        return "valid_ce is not a list of [iteration, CE] pairs"
    return None


def _report_problem(saved) -> str | None:
    checks = saved.get("checks") if isinstance(saved, dict) else None
    if not isinstance(checks, list) or not all(
            isinstance(c, dict) and isinstance(c.get("name"), str)
            and isinstance(c.get("result"), str) for c in checks):
        return "no list of checks, each with a name and a result"
    return None


def _recipe_problem(saved) -> str | None:
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        return "not an object with a config"
    return None


_SHAPES = {MANIFEST: _manifest_problem, METRICS: _metrics_problem, HISTORY: _history_problem,
           REPORT_JSON: _report_problem, RECIPE: _recipe_problem}


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split()) or type(e).__name__
