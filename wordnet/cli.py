"""``wordnet-pipeline``: train, evaluate and reproduce (``run``, ``sweep``, ``log``), fetch
the data, use a model (``predict``, ``generate``, ``nearest``, ``distance``, ``info``),
serve it over HTTP (``serve``) and compare models' embeddings (``compare-embeddings``).

Each command declares its options, checks what is about the command line itself,
and calls into the package: ``wordnet.runs`` (a run, its data and store,
comparisons, finding a model), ``wordnet.sweeps``, ``wordnet.use`` (what using a
model shows), ``wordnet.progress`` (the training's progress line) and
``wordnet.exits`` (exit statuses and one-line errors).

The commands that use a model import neither MLflow nor the compiled engine
unless they need them, so that a cold ``predict`` answers within half a second.
"""
from __future__ import annotations

import gc
import sys
from datetime import datetime
from pathlib import Path

import click
from click.core import ParameterSource

from wordnet import __version__
from wordnet.exits import DEBUG, EPILOG, SEE_EXIT, BadInput, Group
from wordnet.runs.recipes import recipe_names
from wordnet.sweeps.executor import EXECUTORS
from wordnet.sweeps.search import PRUNERS, SAMPLERS
from wordnet.sweeps.trials import THREADS as TRIAL_THREADS

STAGE_CHOICES = ("load", "train", "validate", "test", "reproduce", "all")


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


def pipeline_options(run_name: str, folder_name: str):
    """The options of the commands that run pipelines; ``run_name`` and ``folder_name``
    say how the MLflow run and the output folder are named without --run-name."""
    return lambda f: _pipeline_options(f, run_name, folder_name)


def _pipeline_options(f, run_name, folder_name):
    options = [
        click.option("--pipeline", "recipe", default="reference", show_default=True,
                     metavar="NAME|PATH",
                     help=f"Recipe: {', '.join(recipe_names())}, or a .toml file."),
        click.option("--data-dir", type=click.Path(file_okay=False),
                     help="Data folder [default: $WORDNET_DATA_DIR, else data/ if it "
                          "holds the data, else the copy shipped with the package]."),
        click.option("--out", type=click.Path(file_okay=False),
                     help="Output folder [default: a new folder under artifacts/]."),
        *STORE_OPTIONS,
        click.option("--run-name",
                     help="Name of the MLflow run and, without --out, of the output folder "
                          f"[default: {run_name}; the folder {folder_name} under "
                          "artifacts/]."),
        click.option("--no-tracking", is_flag=True, help="Do not log to MLflow."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@cli.command(epilog=SEE_EXIT)
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
              help="Pipes to a sweep's pruner (wordnet.sweeps.trials).")
@pipeline_options("the run named by what sets it apart, e.g. 'lr=0.2 · quick · fast'",
                  "RECIPE-DATE-TIME")
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
    --set keys: every model's (batch_size, epochs, early_stop, learning_rate,
    momentum, validation_period, checkpoint_minutes, weight_decay, embedding_size,
    backend, dtype, init, seed, init_embeddings=MODEL, model=4gram|window|skipgram),
    then its own: the 4-gram model's hidden_size, activation; the window scorer's
    hidden_size, activation, window, corruption; skip-gram's window, negatives;
    and reference_checkpoint=PATH (compared byte for byte).
    The window scorer and skip-gram (--pipeline window, skipgram, skipgram-neg)
    do not resume: their training is not saved when interrupted.
    """
    from wordnet.data.dataset import find_data
    from wordnet.progress import Progress
    from wordnet.runs import pipeline, rundir
    from wordnet.runs.prepare import prepare
    from wordnet.runs.recipes import EVALUATION_KEYS
    from wordnet.sweeps.trials import PipeJudge

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
    data = find_data(data_dir)                  # before anything is made: no folder, no store
    folder_name = run_name or f"{base.name}-{datetime.now():%Y%m%d-%H%M%S}"
    out = rundir.output_folder(out, folder_name, needs_model, from_run)
    dataset = prepare(out, data, tracking_uri, experiment, not no_tracking, _status)
    pipeline.run(base, overrides, chosen, out, pipeline.RunOptions(
        data_dir=data, dataset=dataset, track=not no_tracking, run_name=run_name,
        from_run=from_run, resume=resume, register=None if no_register else register,
        parent_run_id=parent_run, judge=PipeJudge(judge_fds, click.echo) if judge_fds else None,
        echo=click.echo, progress=Progress))
    click.echo(f"done: {out}/")


@cli.command(epilog=SEE_EXIT)
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
    from wordnet.data.dataset import find_data
    from wordnet.runs.backfill import log_folder
    from wordnet.runs.prepare import prepare
    out, data = Path(out), find_data(data_dir)
    dataset = prepare(out, data, tracking_uri, experiment, True, _status)
    page = log_folder(out, data, dataset, None if no_register else register, echo=click.echo)
    click.echo(f"logged {out}/: {page}")


@cli.command(epilog=SEE_EXIT)
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
@click.option("--executor", "executor_name", type=click.Choice(tuple(EXECUTORS)),
              default="local", show_default=True, help="Where trials run: here, or as Ray tasks (on the "
              "data shipped with the package; pip install 'wordnet-4gram[ray]').")
@click.option("--ray-address", metavar="HOST:PORT",
              help="A Ray cluster's head [default: a Ray started here for the sweep].")
@click.option("--resume", metavar="SWEEP_RUN_ID",
              help="Go on with this sweep's MLflow run: only its unfinished trials run.")
@pipeline_options("the parent run 'sweep KEY × KEY · RECIPE'", "sweep-RECIPE-DATE-TIME")
def sweep(sets, samples, sampler, seed, prune, stages, threads, jobs, executor_name,
          ray_address, resume, recipe, data_dir, out, tracking_uri, experiment, run_name,
          no_tracking):
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
    from wordnet.data.dataset import find_data
    from wordnet.errors import ConfigError
    from wordnet.models import registry
    from wordnet.progress import Progress
    from wordnet.runs import pipeline, rundir
    from wordnet.runs.prepare import prepare
    from wordnet.runs.recipes import with_overrides
    from wordnet.sweeps import executor
    from wordnet.sweeps import sweep as sweeps
    from wordnet.sweeps.search import Search, parse_space

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
    try:
        options = executor.configure(executor.Options(
            executor_name, jobs, threads, ray_address, tracking_uri, not no_tracking))
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    chosen = tuple(s for s in pipeline.STAGES if s in stages or s == "train")
    data = find_data(data_dir)
    folder_name = run_name or f"sweep-{base.name}-{datetime.now():%Y%m%d-%H%M%S}"
    out = rundir.output_folder(out, folder_name, False, None)
    dataset = prepare(out, data, tracking_uri, experiment, not no_tracking, _status)
    results = sweeps.sweep(sweeps.Sweep(base, search, chosen, out, data, options, recipe,
                                        run_name, resume),
                           echo=click.echo, progress=Progress, dataset=dataset)
    keys = list(search.space)
    names = registry.of(base.config).figures
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


@data.command(epilog=SEE_EXIT)
@click.option("--from", "source", type=click.Path(exists=True, file_okay=False),
              help="Copy from this folder instead of downloading.")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Where to put them [default: $WORDNET_DATA_DIR, else data/].")
def fetch(source, data_dir):
    """Download the data files from upstream (or copy them --from a folder), checking
    each SHA-256; train_data.csv is rebuilt from raw_sentences.txt."""
    from wordnet.data.fetch import data_dir as data_folder
    from wordnet.data.fetch import fetch as fetch_files
    dest = data_folder(data_dir)
    fetch_files(dest, Path(source) if source else None, log=_status)
    click.echo(f"data ready in {dest}/")


# -- using a model ------------------------------------------------------------------------

MODEL_OPTION = click.option("--model", metavar="PATH|runs:/ID|models:/NAME/VERSION",
                            help="Checkpoint, run folder or MLflow model [default: latest run].")
TRACKING_OPTION = click.option(
    "--tracking-uri", envvar="MLFLOW_TRACKING_URI", show_envvar=True,
    help="MLflow tracking URI of a runs:/ or models:/ model [default: MLflow's, ./mlflow.db].")


def model_options(f):
    f = click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Where to find vocab.txt when it is not beside the model.")(f)
    return MODEL_OPTION(TRACKING_OPTION(f))


@cli.command(epilog=SEE_EXIT)
@click.argument("context", nargs=-1, required=True)
@model_options
@click.option("--top-k", "-k", type=click.IntRange(min=1), default=5, show_default=True,
              help="How many next words to show (at most the vocabulary's size).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def predict(context, model, tracking_uri, data_dir, top_k, as_json):
    """The likeliest next words after a context.

    CONTEXT is 3 words; the top-k next words are shown with their probabilities.
    Example: wordnet-pipeline predict "have a good"
    """
    from wordnet.runs.locate import load_predictor
    from wordnet.use import prediction_json, prediction_lines
    predictor = load_predictor(model, data_dir, tracking_uri)
    text = " ".join(context)
    ranked = predictor.predict(text, min(top_k, len(predictor.vocab)))
    for line in [prediction_json(text, ranked)] if as_json else prediction_lines(ranked):
        click.echo(line)


@cli.command(epilog=SEE_EXIT)
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
    from wordnet.runs.locate import load_predictor
    predictor = load_predictor(model, data_dir, tracking_uri)
    if interactive:
        from wordnet.use import interactive as choose_words
        return choose_words(predictor, " ".join(context), read=lambda: sys.stdin.readline(),
                            write=lambda text: click.echo(text, nl=False))
    import numpy as np
    rng = np.random.default_rng(seed) if sample else None
    text = " ".join(context)
    click.echo(" ".join(text.lower().split() + predictor.generate(text, words, rng, temperature)))


@cli.command(epilog=SEE_EXIT)
@click.argument("word")
@model_options
@click.option("--k", "-k", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many words to show.")
def nearest(word, model, tracking_uri, data_dir, k):
    """The words nearest to WORD in embedding space.

    The K words whose embeddings (columns of W1) are closest in Euclidean distance.
    """
    from wordnet.runs.locate import load
    for other, d in load(model, data_dir, tracking_uri).nearest(word, k):
        click.echo(f"{other:<12} {d:.6f}")


@cli.command(epilog=SEE_EXIT)
@click.argument("word1")
@click.argument("word2")
@model_options
def distance(word1, word2, model, tracking_uri, data_dir):
    """The distance between two words' embeddings.

    The Euclidean distance between the embeddings of WORD1 and WORD2.
    """
    from wordnet.runs.locate import load
    click.echo(f"{load(model, data_dir, tracking_uri).distance(word1, word2):.6f}")


@cli.command(epilog=SEE_EXIT)
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
    from wordnet.runs.locate import load_predictor
    from wordnet.serving.server import serve as serve_http
    serve_http(load_predictor(model, data_dir, tracking_uri), host, port, max_body_bytes)


@cli.command("compare-embeddings", epilog=SEE_EXIT)
@click.argument("models", nargs=-1, required=True, metavar="MODEL MODEL...")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Nearest neighbours per word.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
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
    from wordnet.runs.compare import CompareError
    from wordnet.runs.comparison import compare_embeddings as compare
    if len(models) < 2:
        raise click.UsageError("give two models or more to compare")
    try:
        compare(list(models), k, data_dir, out, tracking_uri, experiment, not no_tracking,
                echo=click.echo, status=_status)
    except CompareError as e:                       # different vocabularies
        raise click.UsageError(str(e)) from None


@cli.command(epilog=SEE_EXIT)
@click.argument("path", required=False, metavar="[MODEL]")
@MODEL_OPTION
@TRACKING_OPTION
def info(path, model, tracking_uri):
    """A model's hyperparameters and sizes.

    The header of the model's checkpoint, as the C program's `info` shows it.
    MODEL, or --model, is what --model of `predict` accepts [default: latest run].
    """
    from wordnet.use import model_info
    if path and model:
        raise click.UsageError("give the model once: MODEL or --model")
    for line in model_info(path or model, tracking_uri):
        click.echo(line)


# -- helpers ------------------------------------------------------------------------------

def _recipe(name, sets):
    from wordnet.errors import ConfigError
    from wordnet.runs.recipes import load_recipe, parse_overrides, with_overrides
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


def _status(message: str) -> None:
    """A line about what the command is doing (not its result): on stderr."""
    click.echo(message, err=True)


def main():
    try:
        cli(prog_name="wordnet-pipeline")
    finally:
        # Exiting, the interpreter collects the cycles of every module imported: 1.4 s
        # after MLflow and its store, 0.7 s after scikit-learn.  Nothing of ours needs
        # that collection (files are closed, runs ended), so it skips it.
        gc.freeze()
