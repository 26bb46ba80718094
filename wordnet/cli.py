"""``wordnet-pipeline``: train, evaluate and reproduce (``run``, ``sweep``, ``log``), fetch
the data, use a model (``predict``, ``generate``, ``nearest``, ``distance``, ``info``),
serve it over HTTP (``serve``) and compare models' embeddings (``compare-embeddings``).

The commands that use a model import neither MLflow nor the compiled engine
unless they need them, so that a cold ``predict`` answers within half a second.
"""
from __future__ import annotations

import gc
import json
import os
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import click
from click.core import ParameterSource

from . import __version__
from .data import UnknownWordError
from .model import THREADS_ENV, default_threads
from .predict import InputError
from .search import PRUNERS, SAMPLERS
from .trials import THREADS as TRIAL_THREADS

STAGE_CHOICES = ("load", "train", "validate", "test", "reproduce", "all")
DEBUG = "wordnet.debug"
SHOWN_WORDS = 20                      # generate --interactive: the text's last words shown

EPILOG = """\b
Exit status: 0 success; 1 failure (training diverged, a reproduction check
failed, a missing file, a full disk or an unreachable server); 2 usage error
(bad option, --set key or value, or input words); 130 interrupted (Ctrl-C); 141
the output's reader went away (| head); 143 terminated (SIGTERM).
"""


class BadInput(click.ClickException):
    """Input the command cannot use: one line, exit status 2."""
    exit_code = 2


class Terminated(KeyboardInterrupt):
    """SIGTERM: stops whatever runs as Ctrl-C does (a run ends KILLED, its folder says so)."""


def _terminate(signum, frame):
    raise Terminated()


class Group(click.Group):
    """Turns the package's errors into one-line messages (tracebacks with --debug), and
    SIGTERM into :class:`Terminated`."""

    def invoke(self, ctx):
        main = threading.current_thread() is threading.main_thread()   # signals go there only
        previous = signal.signal(signal.SIGTERM, _terminate) if main else None
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Terminated:
            click.echo("Terminated.", err=True)
            raise click.exceptions.Exit(143) from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            raise click.exceptions.Exit(130) from None
        except BrokenPipeError:
            # The reader went away (`wordnet-pipeline nearest day | head -1`): stop
            # quietly, with the status of a program SIGPIPE ended; stdout goes to
            # /dev/null so that the interpreter's last flush has nowhere to fail.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise click.exceptions.Exit(141) from None
        except Exception as e:
            if ctx.meta.get(DEBUG):
                raise
            if isinstance(e, (InputError, UnknownWordError)):
                raise BadInput(str(e)) from None
            # The package's own errors and OS errors carry a message meant for users.
            if isinstance(e, OSError) or type(e).__module__.startswith("wordnet."):
                raise click.ClickException(str(e)) from None
            raise click.ClickException(f"unexpected {type(e).__name__}: {e} "
                                       "(run with --debug for the traceback)") from None
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)


@click.group(cls=Group, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wordnet-pipeline")
@click.option("--debug", is_flag=True, envvar="WORDNET_DEBUG",
              help="Show the traceback of an error.")
@click.pass_context
def cli(ctx, debug):
    """Hinton's 4-gram neural language model: train it, track it with MLflow, use it.

    \b
    Start with:
      wordnet-pipeline run --stage all       train, evaluate, compare with the C reference
      wordnet-pipeline predict "have a good" the likeliest next words
      mlflow ui                              compare the runs in a browser
    """
    ctx.meta[DEBUG] = debug


# -- the pipeline -------------------------------------------------------------------------

# Where a command logs: the tracking store and the experiment.
STORE_OPTIONS = [
    click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", show_envvar=True,
                 help="MLflow tracking URI [default: MLflow's, ./mlflow.db]."),
    click.option("--experiment", envvar="MLFLOW_EXPERIMENT_NAME", default="wordnet",
                 show_default=True, help="MLflow experiment."),
]


def store_options(f):
    for option in reversed(STORE_OPTIONS):
        f = option(f)
    return f


def pipeline_options(f):
    options = [
        click.option("--pipeline", "recipe", default="reference", show_default=True,
                     metavar="NAME|PATH", help="Recipe: reference, quick, or a .toml file."),
        click.option("--data-dir", type=click.Path(file_okay=False),
                     help="Data folder [default: $WORDNET_DATA_DIR, else data/ if it "
                          "holds the data, else the copy shipped with the package]."),
        click.option("--out", type=click.Path(file_okay=False),
                     help="Output folder [default: a new folder under artifacts/]."),
        *STORE_OPTIONS,
        click.option("--run-name", help="MLflow run name [default: RECIPE-DATE-TIME]."),
        click.option("--no-tracking", is_flag=True, help="Do not log to MLflow."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@cli.command(epilog=EPILOG)
@click.option("--stage", "stages", multiple=True, type=click.Choice(STAGE_CHOICES),
              default=("all",), show_default=True,
              help="Stage to run (repeatable); `all` is the five in order.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe value (repeatable), e.g. --set learning_rate=0.05.")
@click.option("--from-run", metavar="RUN_ID", help="Take the model of this MLflow run.")
@click.option("--resume", is_flag=True,
              help="Continue the training that Ctrl-C or SIGTERM stopped in --out.")
@click.option("--register", metavar="NAME", default="wordnet", show_default=True,
              help="Register the trained model in MLflow under NAME (models:/NAME/latest).")
@click.option("--no-register", is_flag=True, help="Log the trained model, register nothing.")
@click.option("--parent-run", metavar="RUN_ID", hidden=True,
              help="Nest the MLflow run under this one (a sweep's trials with --jobs).")
@click.option("--judge-fds", metavar="W,R", hidden=True,
              help="Pipes to a sweep's pruner (wordnet.trials).")
@pipeline_options
def run(stages, sets, from_run, resume, register, no_register, parent_run, judge_fds, recipe,
        data_dir, out, tracking_uri, experiment, run_name, no_tracking):
    """Run pipeline stages: load, train, validate, test, reproduce.

    \b
    load       read the data (--data-dir, $WORDNET_DATA_DIR, data/, else the copy
               shipped with the package)
    train      the training loop; writes model.bin (C format) and the CE curves
               (model.npz for the window scorer and skip-gram)
    validate   CE, perplexity, top-1 and top-5 accuracy on the validation set
               (the window scorer: ranking accuracy; skip-gram: log-likelihood)
    test       the same on the test set
    reproduce  check the published model9-3000.bin and the model just trained
               against the C reference; exit status 1 when a check fails (4-gram)

    A stage run alone takes the model from --out, --from-run or the latest run.
    Ctrl-C or SIGTERM during training, and every checkpoint_minutes of it, save the
    model and the state it needs to go on; --resume --out DIR continues it (bit for
    bit, with the exact backend).
    --set keys: the recipe's hyperparameters (batch_size, embedding_size,
    hidden_size, epochs, early_stop, learning_rate, momentum, validation_period,
    checkpoint_minutes, backend, dtype, init, seed, activation, weight_decay,
    init_embeddings=MODEL; model=4gram|window|skipgram, window, corruption,
    negatives) and reference_checkpoint=PATH (compared byte for byte).
    The window scorer and skip-gram (--pipeline window, skipgram, skipgram-neg)
    do not resume: their training is not saved when interrupted.
    """
    from . import pipeline, rundir
    from .recipes import EVALUATION_KEYS
    from .trials import PipeJudge

    chosen = tuple(s for s in pipeline.STAGES if s in stages or "all" in stages)
    base, overrides = _recipe(recipe, sets)
    training_only = sorted(set(overrides) - set(EVALUATION_KEYS))
    if "train" not in chosen and training_only:
        raise click.UsageError(f"--set {', '.join(training_only)}: only applies with --stage train")
    if from_run and no_tracking:
        raise click.UsageError("--from-run needs MLflow: drop --no-tracking")
    if from_run and "train" in chosen:
        raise click.UsageError("--from-run gives a trained model: drop --stage train")
    if not no_register and not register.strip():
        raise click.BadParameter("give the registered model a name, or pass --no-register",
                                 param_hint="--register")
    if resume and ("train" not in chosen or not out or sets):
        raise click.UsageError("--resume continues the training stopped in --out DIR, with "
                               "its recipe: give --out, keep --stage train, drop --set")
    needs_model = "train" not in chosen and chosen != ("load",)     # a model from before
    data = _find_data(data_dir)
    folder_name = run_name or f"{base.name}-{datetime.now():%Y%m%d-%H%M%S}"
    out = rundir.output_folder(out, folder_name, needs_model, from_run)
    dataset = _prepare(out, data, tracking_uri, experiment, no_tracking)
    pipeline.run(base, overrides, chosen, out, data, track=not no_tracking, run_name=run_name,
                 from_run=from_run, echo=click.echo, progress=Progress, dataset=dataset,
                 resume=resume, register=None if no_register else register,
                 parent_run_id=parent_run,
                 judge=PipeJudge(judge_fds, click.echo) if judge_fds else None)
    click.echo(f"done: {out}/")


@cli.command(epilog=EPILOG)
@click.option("--out", required=True, type=click.Path(file_okay=False, exists=True),
              help="The run's folder.")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Data folder [default: as for run].")
@store_options
@click.option("--register", metavar="NAME", default="wordnet", show_default=True,
              help="Register the model in MLflow under NAME.")
@click.option("--no-register", is_flag=True, help="Log the model, register nothing.")
def log(out, data_dir, tracking_uri, experiment, register, no_register):
    """Log a finished run's folder to MLflow, as a new run.

    For a run whose tracking was lost on the way (its run.json says
    mlflow_not_logged): its parameters, curves, final figures, files and model.
    """
    from .backfill import log_folder
    out, data = Path(out), _find_data(data_dir)
    dataset = _prepare(out, data, tracking_uri, experiment, False)
    page = log_folder(out, data, dataset, None if no_register else register, echo=click.echo)
    click.echo(f"logged {out}/: {page}")


@cli.command(epilog=EPILOG)
@click.option("--set", "sets", multiple=True, required=True, metavar="KEY=SPEC",
              help="What to sweep (repeatable): KEY=V1,V2,... (a grid), or a "
                   "distribution: loguniform:LO:HI, uniform:LO:HI, int:LO:HI, choice:A,B,...")
@click.option("--samples", type=click.IntRange(min=1),
              help="Trials to sample (a random or TPE search) instead of the full grid.")
@click.option("--sampler", type=click.Choice(SAMPLERS), default="tpe", show_default=True,
              help="How --samples are drawn: Optuna's TPE (model-based) or random.")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of the sampler: the same trials.")
@click.option("--prune", type=click.Choice(PRUNERS), default="none", show_default=True,
              help="Stop trials clearly worse than the others at a validation point.")
@click.option("--stage", "stages", multiple=True, default=("train", "validate", "test"),
              type=click.Choice(("train", "validate", "test", "reproduce")), show_default=True,
              help="Stages of each run (repeatable).")
@click.option("--threads", type=click.IntRange(min=1),
              help=f"Threads of each trial [default: cores / --jobs with --jobs, else "
                   f"{TRIAL_THREADS}].")
@click.option("--jobs", type=click.IntRange(min=1),
              help="Trials at once on this machine [default: cores / --threads]; 1 runs "
                   "them one after the other in this process.")
@click.option("--executor", type=click.Choice(("local", "ray")), default="local",
              show_default=True, help="Where trials run: here, or as Ray tasks (on the "
              "data shipped with the package; pip install 'wordnet-4gram[ray]').")
@click.option("--ray-address", metavar="HOST:PORT",
              help="A Ray cluster's head [default: a Ray started here for the sweep].")
@click.option("--resume", metavar="SWEEP_RUN_ID",
              help="Go on with this sweep's MLflow run: only its unfinished trials run.")
@pipeline_options
def sweep(sets, samples, sampler, seed, prune, stages, threads, jobs, executor, ray_address,
          resume, recipe, data_dir, out, tracking_uri, experiment, run_name, no_tracking):
    """Trials of a recipe over --set values, nested under one MLflow run.

    \b
    A grid:    --set learning_rate=0.01,0.1,1.0 --set hidden_size=100,200
    A search:  --set learning_rate=loguniform:0.01:1 --set hidden_size=choice:50,100,200
               --samples 20 --seed 1 --prune asha
    Each trial is a `wordnet-pipeline run` process with --threads threads, --jobs at
    once (its output in its folder's trial.log), or a Ray task with --executor ray.
    The parent run names the best trial by validation CE (the window scorer's: its
    validation loss) and holds the summary; the model cannot vary in a sweep.
    """
    from . import pipeline, rundir, sweeps
    from .figures import FIGURES
    from .model import ConfigError
    from .recipes import with_overrides
    from .search import Search, parse_space

    base = _recipe(recipe, ())[0]
    try:
        search = Search(parse_space(sets), samples, sampler, seed, prune)
        for values in search.planned or ():
            with_overrides(base, values)
        for key, axis in search.space.items():
            if axis.kind not in ("grid", "choice"):
                with_overrides(base, {key: axis.text(axis.low)})
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint="--set") from None
    if resume and no_tracking:
        raise click.UsageError("--resume finds the sweep in MLflow: drop --no-tracking")
    if seed is not None and samples is None:
        raise click.UsageError("--seed is the sampler's: it needs --samples N")
    if executor == "local" and ray_address:
        raise click.UsageError("--ray-address needs --executor ray")
    if executor == "ray" and jobs:
        raise click.UsageError("--jobs is for --executor local: Ray runs as many trials "
                               "at once as its CPUs allow, --threads each")
    chosen = tuple(s for s in pipeline.STAGES if s in stages or s == "train")
    data = _find_data(data_dir)
    cores = default_threads()
    threads = threads or (max(1, cores // jobs) if jobs else TRIAL_THREADS)
    jobs = jobs or max(1, cores // threads)
    if jobs == 1 and executor == "local":
        os.environ[THREADS_ENV] = str(threads)      # the trials run here (model.default_threads)
    folder_name = run_name or f"sweep-{base.name}-{datetime.now():%Y%m%d-%H%M%S}"
    out = rundir.output_folder(out, folder_name, False, None)
    ray = None
    if executor == "ray":
        from .ray_sweep import RayTrials
        try:
            ray = RayTrials.connect(ray_address, threads, tracking_uri, no_tracking)
        except ConfigError as e:
            raise click.UsageError(str(e)) from None
    dataset = _prepare(out, data, tracking_uri, experiment, no_tracking)
    where = f"Ray ({ray.describe()})" if ray else (
        f"{jobs} at a time, {threads} thread(s) each" if jobs > 1 else "one after the other")
    click.echo(f"sweep: {search.total} trials ({base.name} recipe, {where}) -> {out}/")
    results = sweeps.sweep(base, search, chosen, out, data, track=not no_tracking,
                           run_name=run_name, echo=click.echo, progress=Progress,
                           dataset=dataset, jobs=jobs, threads=threads, source=recipe, ray=ray,
                           resume=resume)
    keys = list(search.space)
    names = FIGURES[base.config.model]
    shown = [k for k in names.shown[:3] if any(k in r for r in results)]
    click.echo(f"\nbest first, by {names.select_by} (all in {out / 'sweep.md'}):")
    click.echo("  ".join(f"{k:>14}" for k in keys + shown + ["status"]))
    for r in results:
        values = [r[k] for k in keys] + [f"{r[k]:.6f}" if k in r else "-" for k in shown]
        click.echo("  ".join(f"{v:>14}" for v in values + [r["status"]]))
    failed = [r for r in results if r["status"] in ("FAILED", "KILLED")]
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(results)} trials failed (see above)")


@cli.group()
def data():
    """The data files (pinned by SHA-256)."""


@data.command()
@click.option("--from", "source", type=click.Path(exists=True, file_okay=False),
              help="Copy from this folder instead of downloading.")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Where to put them [default: $WORDNET_DATA_DIR, else data/].")
def fetch(source, data_dir):
    """Download the data files from upstream (or copy them --from a folder), checking
    each SHA-256; train_data.csv is rebuilt from raw_sentences.txt."""
    from .fetch import fetch as fetch_files
    dest = _data_dir(data_dir)
    fetch_files(dest, Path(source) if source else None, log=lambda m: click.echo(m, err=True))
    click.echo(f"data ready in {dest}/")


# -- using a model ------------------------------------------------------------------------

MODEL_OPTION = click.option("--model", metavar="PATH|runs:/ID|models:/NAME/VERSION",
                            help="Checkpoint, run folder or MLflow model [default: latest run].")
TRACKING_OPTION = click.option(
    "--tracking-uri", envvar="MLFLOW_TRACKING_URI", show_envvar=True,
    help="MLflow tracking URI of a runs:/ or models:/ model [default: MLflow's, ./mlflow.db].")


def model_options(f):
    f = click.option("--data-dir", type=click.Path(file_okay=False),
                     help="Where to find vocab.txt when it is not beside the model.")(f)
    return MODEL_OPTION(TRACKING_OPTION(f))


@cli.command(epilog=EPILOG)
@click.argument("context", nargs=-1, required=True)
@model_options
@click.option("--top-k", "-k", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def predict(context, model, tracking_uri, data_dir, top_k, as_json):
    """The likeliest next words after a context.

    CONTEXT is 3 words; the top-k next words are shown with their probabilities.
    Example: wordnet-pipeline predict "have a good"
    """
    predictor = _predictor(model, data_dir, tracking_uri)
    text = " ".join(context)
    ranked = predictor.predict(text, min(top_k, len(predictor.vocab)))
    if as_json:
        click.echo(json.dumps({"context": text.lower().split(),
                               "predictions": [{"word": p.word, "probability": p.probability}
                                               for p in ranked]}))
        return
    width = max(len(p.word) for p in ranked)
    for n, p in enumerate(ranked, 1):
        click.echo(f"{n:>2}. {p.word:<{width}}  {p.probability:.6f}")


@cli.command(epilog=EPILOG)
@click.argument("context", nargs=-1)
@model_options
@click.option("--words", "-n", type=click.IntRange(min=1, max=10_000), default=10,
              show_default=True, help="How many words to add.")
@click.option("--sample", is_flag=True, help="Sample each word instead of taking the likeliest.")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="With --sample: below 1 sharper, above 1 flatter.")
@click.option("--seed", type=int, help="With --sample: the random seed.")
@click.option("--interactive", "-i", is_flag=True,
              help="Choose each next word among the top 5, as the C program does.")
@click.pass_context
def generate(ctx, context, model, tracking_uri, data_dir, words, sample, temperature, seed, interactive):
    """Continue a context word by word.

    CONTEXT is 3 words; each next word is the likeliest, or sampled with --sample.
    """
    for name in ("temperature", "seed"):
        if not sample and ctx.get_parameter_source(name) != ParameterSource.DEFAULT:
            raise click.UsageError(f"--{name} only applies with --sample")
    if temperature != temperature:                      # NaN passes FloatRange's comparisons
        raise click.BadParameter("nan is not a temperature", param_hint="--temperature")
    if not context and not interactive:
        raise BadInput("give 3 words to start from, e.g. \"have a good\"")
    predictor = _predictor(model, data_dir, tracking_uri)
    if interactive:
        return _interactive(predictor, " ".join(context))
    import numpy as np
    rng = np.random.default_rng(seed) if sample else None
    text = " ".join(context)
    click.echo(" ".join(text.lower().split() + predictor.generate(text, words, rng, temperature)))


def _interactive(predictor, text):
    """The C program's loop: show the top 5, read 1 to 5 (Enter for 1); Ctrl-D or q ends.

    Each step shows the text's last SHOWN_WORDS words (the whole text, at every step,
    made a long session's output grow as its square); the end shows it all, once."""
    if not text:
        click.echo("|Input first 3 words > ", nl=False)
        text = sys.stdin.readline()
    predictor.encode(text)                              # fails early on a bad context
    words = text.lower().split()
    while True:
        ranked = predictor.predict(" ".join(words[-predictor.context_size:]), 5)
        click.echo(("... " if len(words) > SHOWN_WORDS else "")
                   + " ".join(words[-SHOWN_WORDS:]))
        click.echo("*Top 5 = " + " ".join(f"{n}.{p.word}({p.probability:.6f})"
                                          for n, p in enumerate(ranked, 1)))
        while True:
            click.echo("|Choose a number (default = 1)> ", nl=False)
            answer = sys.stdin.readline()
            choice = answer.strip()
            if not answer or choice == "q":
                click.echo()
                if len(words) > SHOWN_WORDS:
                    click.echo(" ".join(words))
                return
            if choice in ("", "1", "2", "3", "4", "5"):
                break
            click.echo("choose 1 to 5, Enter for 1, q to quit")
        words.append(ranked[int(choice or 1) - 1].word)


@cli.command(epilog=EPILOG)
@click.argument("word")
@model_options
@click.option("--k", "-k", type=click.IntRange(min=1), default=10, show_default=True)
def nearest(word, model, tracking_uri, data_dir, k):
    """The words nearest to WORD in embedding space.

    The K words whose embeddings (columns of W1) are closest in Euclidean distance.
    """
    for other, d in _embeddings(model, data_dir, tracking_uri).nearest(word, k):
        click.echo(f"{other:<12} {d:.6f}")


@cli.command(epilog=EPILOG)
@click.argument("word1")
@click.argument("word2")
@model_options
def distance(word1, word2, model, tracking_uri, data_dir):
    """The distance between two words' embeddings.

    The Euclidean distance between the embeddings of WORD1 and WORD2.
    """
    click.echo(f"{_embeddings(model, data_dir, tracking_uri).distance(word1, word2):.6f}")


@cli.command(epilog=EPILOG)
@click.option("--model", "-m", metavar="PATH|runs:/ID|models:/NAME/VERSION",
              help="Checkpoint, run folder or MLflow model [default: the latest 4-gram run].")
@TRACKING_OPTION
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Where to find vocab.txt when it is not beside the model.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=5001, show_default=True)
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=1 << 20,   # server.MAX_BODY
              envvar="WORDNET_SERVE_MAX_BODY", show_envvar=True, show_default=True,
              help="Largest request body; a larger one is refused unread (413).")
def serve(model, tracking_uri, data_dir, host, port, max_body_bytes):
    """Serve a 4-gram model over HTTP, as `mlflow models serve` does, guarded.

    POST /invocations takes MLflow's request, {"inputs": ["have a good"], "params":
    {"top_k": 3}}, and answers as MLflow does, {"predictions": [...]}; GET /ping,
    /health and /version. A request must be application/json, with a Content-Length
    of at most --max-body-bytes (415, 411, 413 otherwise, the body unread).
    """
    from .server import serve as serve_http
    serve_http(_predictor(model, data_dir, tracking_uri), host, port, max_body_bytes)


@cli.command("compare-embeddings", epilog=EPILOG)
@click.argument("models", nargs=-1, required=True, metavar="MODEL MODEL...")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Nearest neighbours per word.")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Where to find vocab.txt when it is not beside a model.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Folder of the table and the maps [default: a new folder under artifacts/].")
@store_options
@click.option("--no-tracking", is_flag=True, help="Do not log to MLflow.")
def compare_embeddings(models, k, data_dir, out, tracking_uri, experiment, no_tracking):
    """How much models' embeddings agree: shared nearest neighbours, maps side by side.

    For every pair of MODELs (a checkpoint, a run folder, an MLflow run ID, runs:/ID
    or models:/NAME/VERSION), the mean share of each word's K nearest words that
    both models give; the words they agree on most and least; and every model's
    t-SNE map side by side (each turned to fit the first's). Logged to MLflow as a
    run of its own unless --no-tracking.
    """
    from . import compare, plots, rundir, tracking
    from .fileio import atomic_write
    if len(models) < 2:
        raise click.UsageError("give two models or more to compare")
    uris = list(models)
    if not no_tracking:
        click.echo("connecting to MLflow...", err=True)
        tracking.connect(tracking_uri, experiment)
    names = []
    for uri in uris:
        name = Path(uri).name if "://" not in uri and ":/" not in uri else uri
        names.append(name if name not in names else f"{name} #{len(names) + 1}")
    loaded = [compare.Embeddings(name, p.W1, tuple(p.vocab.words)) for name, p in
              zip(names, (_embeddings(uri, data_dir, tracking_uri) for uri in uris))]
    try:
        pairs = compare.compare(loaded, k)
    except compare.CompareError as e:
        raise click.UsageError(str(e)) from None
    out = rundir.output_folder(out, f"compare-{datetime.now():%Y%m%d-%H%M%S}", False, None)
    rundir.check_writable(out)
    words = loaded[0].words
    text = compare.table(pairs, words, k)
    click.echo(text)
    atomic_write(out / "compare.md", ("# Embeddings compared\n\n" + "\n".join(
        f"{n}. {name}: {uri}" for n, (name, uri) in enumerate(zip(names, uris), 1))
        + "\n\n" + text).encode())
    atomic_write(out / "compare.json", json.dumps({
        "k": k, "models": dict(zip(names, uris)),
        "pairs": [{"models": [p.first, p.second], "mean_overlap": p.mean,
                   "per_word": dict(zip(words, p.per_word.tolist()))} for p in pairs]},
        indent=1).encode())
    plots.embedding_maps(out / "embeddings_compared.png", [m.W1 for m in loaded], names, words)
    click.echo(f"table and maps: {out}/")
    if no_tracking:
        return
    with tracking.start_run(f"compare {' · '.join(names)}") as run:
        run.log_params({f"model{n}": uri for n, uri in enumerate(uris, 1)} | {"k": k})
        run.set_tags({"mlflow.note.content": "Embeddings compared: the share of each word's "
                      f"{k} nearest neighbours two models have in common.\n\n" + text})
        run.log_metrics({f"overlap/{names.index(p.first) + 1}-{names.index(p.second) + 1}":
                         p.mean for p in pairs})
        run.log_artifacts(out / "compare.md", out / "compare.json",
                          out / "embeddings_compared.png")
    if run.lost:
        raise click.ClickException(f"MLflow did not take the comparison ({run.lost}); the "
                                   f"table and maps are in {out}/")
    click.echo(f"MLflow run: {run.page}")


@cli.command(epilog=EPILOG)
@click.argument("path", required=False, metavar="[MODEL]")
@MODEL_OPTION
@TRACKING_OPTION
def info(path, model, tracking_uri):
    """A model's hyperparameters and sizes.

    The header of the model's checkpoint, as the C program's `info` shows it.
    MODEL, or --model, is what --model of `predict` accepts [default: latest run].
    """
    from .checkpoint import load
    from .predict import model_files
    if path and model:
        raise click.UsageError("give the model once: MODEL or --model")
    with model_files(path or model, tracking_uri=tracking_uri, vocab=False) as (checkpoint, _):
        if checkpoint.suffix == ".npz":
            return _npz_info(checkpoint)
        h, params = load(checkpoint)
    rows = [("Mini-batch size", h.batch_size), ("Layer 1 Neurons", h.embedding_size),
            ("Layer 2 Neurons", h.hidden_size), ("Training epochs", h.epochs),
            ("Early stop @ iteration", h.early_stop), ("Momentum", h.momentum),
            ("Learning rate", h.learning_rate), ("Verify per iteration", h.validation_period),
            ("Raw training data rows", h.train_rows), ("Raw validation data rows", h.valid_rows),
            ("Raw test data rows", h.test_rows), ("Raw data columns", h.columns),
            ("Input dimension", h.context_size), ("Vocabulary size", h.vocab_size)]
    click.echo("## Model Info")
    for name, value in rows:
        shown = f"{value:f}" if isinstance(value, float) else f"{value:8d}"
        click.echo(f"   {name:<24} = {shown}")
    click.echo(f"   {'Parameters':<24} = {sum(p.size for p in params.values()):8d}")


# -- helpers ------------------------------------------------------------------------------

def _npz_info(path):
    """What `info` shows of a window scorer's or skip-gram's checkpoint: its kind and
    the shapes of its parameters (the C header's hyperparameters are in its recipe)."""
    from .checkpoint import load_npz
    from .sampled_stages import MODELS
    kind, params = load_npz(path, {m.kind: m.PARAMS for m in MODELS.values()})
    click.echo("## Model Info")
    click.echo(f"   {'Model':<24} = {kind}")
    for name, p in params.items():
        click.echo(f"   {name:<24} = {' x '.join(map(str, p.shape))}")
    click.echo(f"   {'Parameters':<24} = {sum(p.size for p in params.values()):8d}")


def _recipe(name, sets):
    from .model import ConfigError
    from .recipes import load_recipe, parse_overrides, with_overrides
    try:
        base = load_recipe(name)
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint="--pipeline") from None
    try:
        overrides = parse_overrides(sets)
        with_overrides(base, overrides)
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint="--set") from None
    return base, overrides


def _find_data(option):
    """The data folder (None: the copy shipped with the package), found before
    anything is made: no folder, no tracking store."""
    from .data import find_data
    return find_data(option)


def _prepare(out, data, tracking_uri, experiment, no_tracking):
    """Before any work: refuse an unwritable --out, load the data and reach MLflow; the
    data loads while MLflow is imported and its store opened, on another thread."""
    from concurrent.futures import ThreadPoolExecutor

    from .data import load_dataset
    from .rundir import check_writable
    check_writable(out)
    if no_tracking:
        return load_dataset(data)
    from .tracking import connect
    click.echo("connecting to MLflow...", err=True)
    with ThreadPoolExecutor(1, thread_name_prefix="wordnet-connect") as connecting:
        connected = connecting.submit(connect, tracking_uri, experiment)
        dataset = load_dataset(data)
        connected.result()                      # its TrackingError, if any
    return dataset


def _data_dir(option):
    from .fetch import data_dir
    return data_dir(option)


def _embeddings(model, data_dir, tracking_uri, predicts=False):
    """The embeddings of --model, a model of any kind (the latest run's without it)."""
    from .predict import load
    return load(model, Path(data_dir) if data_dir else None, tracking_uri, predicts)


def _predictor(model, data_dir, tracking_uri):
    """The 4-gram model of --model (the latest 4-gram run's without it), which predicts
    next words."""
    from .predict import Predictor
    loaded = _embeddings(model, data_dir, tracking_uri, predicts=True)
    if not isinstance(loaded, Predictor):
        raise BadInput(f"{model or 'the latest run'} is a {loaded.kind} model: it does not "
                       "predict next words (`nearest`, `distance` and `compare-embeddings` "
                       "read its embeddings)")
    return loaded


class Progress:
    """Training progress on stderr: a bar redrawn in place on a terminal, otherwise a
    line every few seconds (logs stay readable)."""

    WIDTH = 24

    def __init__(self, total: int, loss: str = "CE"):
        self.total, self.stream, self.loss = total, sys.stderr, loss     # what it.train_ce is
        self.interactive = self.stream.isatty()
        self.interval = 0.2 if self.interactive else 5.0
        self.start = time.monotonic()
        self.next = self.start + self.interval

    def update(self, it) -> None:
        now = time.monotonic()
        if now < self.next and it.step < self.total:
            return
        self.next = now + self.interval
        rate = it.step / max(now - self.start, 1e-9)
        eta = time.strftime("%H:%M:%S", time.gmtime((self.total - it.step) / rate))
        text = (f"iteration {it.step:,}/{self.total:,} (epoch {it.epoch}, minibatch "
                f"{it.batch:,}/{it.batches:,})  {rate:,.0f} updates/s  {self.loss} {it.train_ce:.4f}  "
                f"ETA {eta}")
        if self.interactive:
            done = self.WIDTH * it.step // self.total
            self.stream.write(f"\r[{'#' * done}{'.' * (self.WIDTH - done)}] {text}\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()


def main():
    try:
        cli(prog_name="wordnet-pipeline")
    finally:
        # Exiting, the interpreter collects the cycles of every module imported: 1.4 s
        # after MLflow and its store, 0.7 s after scikit-learn.  Nothing of ours needs
        # that collection (files are closed, runs ended), so it skips it.
        gc.freeze()
