"""The commands that train and track: ``run``, ``log``, ``sweep`` and ``data fetch``."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from wordnet.cli.group import cli, pipeline_options, read_recipe, status, store_options
from wordnet.exits import SEE_EXIT
from wordnet.sweeps.executor import EXECUTORS
from wordnet.sweeps.search import PRUNERS, SAMPLERS
from wordnet.sweeps.trials import THREADS as TRIAL_THREADS

STAGE_CHOICES = ("load", "train", "validate", "test", "reproduce", "all")


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
              help="Once every stage finished, register the model in MLflow under NAME "
                   "(models:/NAME/latest; @reproduced, @best).")
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
    momentum, validation_period, checkpoint_minutes, weight_decay,
    lr_schedule=constant|linear, embedding_size, backend, dtype, init, seed,
    init_embeddings=MODEL, model=4gram|window|skipgram),
    then its own: the 4-gram model's hidden_size, activation; the window scorer's
    hidden_size, activation, window, corruption; skip-gram's window, negatives;
    and reference_checkpoint=PATH (compared byte for byte).
    The window scorer and skip-gram (--pipeline window, skipgram, skipgram-neg)
    do not resume: their training is not saved when interrupted.
    """
    from wordnet.data.dataset import find_data
    from wordnet.models.base import default_threads
    from wordnet.plots.painter import Painter
    from wordnet.progress import Progress
    from wordnet.runs import pipeline, rundir
    from wordnet.runs.prepare import prepare
    from wordnet.runs.recipes import EVALUATION_KEYS, with_overrides
    from wordnet.sweeps.trials import PipeJudge
    from wordnet.tracking.errors import check_model_name

    default_threads()                           # $WORDNET_THREADS checked: exit 2, nothing made
    chosen = tuple(s for s in pipeline.STAGES if s in stages or "all" in stages)
    base, overrides = read_recipe(recipe, sets)
    training_only = sorted(set(overrides) - set(EVALUATION_KEYS))
    if "train" not in chosen and training_only:
        raise click.UsageError(f"--set {', '.join(training_only)}: only applies with --stage train")
    if from_run and no_tracking:
        raise click.UsageError("--from-run needs MLflow: drop --no-tracking")
    if from_run and "train" in chosen:
        raise click.UsageError("--from-run gives a trained model: drop --stage train")
    if not no_register:
        check_model_name(register)              # exit 2 now, not after the training
    if resume and ("train" not in chosen or not out or sets):
        raise click.UsageError("--resume continues the training stopped in --out DIR, with "
                               "its recipe: give --out, keep --stage train, drop --set")
    needs_model = "train" not in chosen and chosen != ("load",)     # a model from before
    data = find_data(data_dir)                  # before anything is made: no folder, no store
    folder_name = run_name or f"{base.name}-{datetime.now():%Y%m%d-%H%M%S}"
    out = rundir.output_folder(out, folder_name, needs_model, from_run)
    if experiment is None:                      # the model's kind's: the folder's model's
        model = (needs_model or resume) and rundir.RunDir(out).recipe()
        experiment = (model or with_overrides(base, overrides)).config.experiment
    # A training's plots: their process imports its libraries while MLflow's store is
    # reached, not after the training (the run waits for it before training).
    painter = Painter() if "train" in chosen else None
    try:
        if painter is not None:
            painter.warm_up()
        dataset = prepare(out, data, tracking_uri, experiment, not no_tracking, status)
        pipeline.run(base, overrides, chosen, out, pipeline.RunOptions(
            data_dir=data, dataset=dataset, track=not no_tracking, run_name=run_name,
            from_run=from_run, resume=resume, register=None if no_register else register,
            parent_run_id=parent_run,
            judge=PipeJudge(judge_fds, click.echo) if judge_fds else None,
            echo=click.echo, progress=Progress, painter=painter))
    finally:
        if painter is not None:
            painter.close()
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
    """Log a finished run's folder to MLflow: into its run, or a new one.

    For a run whose tracking was lost on the way (its run.json says
    mlflow_not_logged), or that ran with --no-tracking: its parameters, curves, final
    figures, files and model. A folder logged already is not logged again.
    """
    from wordnet.data.dataset import find_data
    from wordnet.runs.backfill import log_folder
    from wordnet.runs.prepare import prepare
    from wordnet.runs.rundir import RunDir
    from wordnet.tracking.errors import check_model_name
    if not no_register:
        check_model_name(register)
    out, data = Path(out), find_data(data_dir)
    recipe = RunDir(out).recipe()               # None: log_folder says what is missing
    if experiment is None and recipe is not None:
        experiment = recipe.config.experiment
    dataset = prepare(out, data, tracking_uri, experiment or "Default", True, status)
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
              help="Stop trials early at a validation point: asha, when not among the best "
                   "quarter of the trials at its rung; median, when worse than the finished "
                   "trials' median there.")
@click.option("--stage", "stages", multiple=True, default=("train", "validate", "test"),
              type=click.Choice(("train", "validate", "test", "reproduce")), show_default=True,
              help="Stages of each run (repeatable).")
@click.option("--threads", type=click.IntRange(min=1),
              help=f"Threads of each trial, at most 4 per CPU and 256 [default: cores / "
                   f"--jobs with --jobs, else {TRIAL_THREADS}].")
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

    base = read_recipe(recipe, ())[0]
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
    dataset = prepare(out, data, tracking_uri, experiment or base.config.experiment,
                      not no_tracking, status)
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
    """The data: the course's files (pinned by SHA-256), or a folder made from your text."""


@data.command(epilog=SEE_EXIT)
@click.argument("texts", nargs=-1, required=True, metavar="TEXT...")
@click.option("--out", required=True, type=click.Path(), help="The data folder to make (new).")
@click.option("--vocab-size", type=click.IntRange(2, 1_000_000), default=10_000,
              show_default=True, help="Words in the vocabulary, <unk> included.")
@click.option("--min-count", type=click.IntRange(1), default=5, show_default=True,
              help="Times a word appears in the training split to be in the vocabulary.")
@click.option("--sentences", type=click.Choice(["lines", "text"]), default="lines",
              show_default=True, help="lines: a sentence a line; text: running text, cut "
                                      "after . ! ? and at blank lines.")
@click.option("--keep-case", is_flag=True, help="Do not lower-case the text.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Of the split of the sentences (80 % training, 10 % validation, 10 % test).")
def build(texts, out, vocab_size, min_count, sentences, keep_case, seed):
    """Make a data folder from your text, for `run --data-dir`.

    TEXT is a UTF-8 file (.gz and .xz are read as such), or - for standard input;
    several are read one after the other.  A word is a run of letters, digits and
    underscores (apostrophes inside it kept); every other character that is not
    white space is a token of its own.  The vocabulary is the --vocab-size - 1 most
    frequent words of the training split, after <unk>, which stands for the others.
    Every model reads the folder: `wordnet-pipeline run --data-dir OUT --pipeline
    quick` (or window, skipgram, skipgram-neg).
    """
    import sys

    from wordnet.data.build import build as build_folder

    def progress(total, label):
        return click.progressbar(length=max(total, 1), label=label, file=sys.stderr)

    made = build_folder(texts, Path(out), vocab_size=vocab_size, min_count=min_count,
                        lowercase=not keep_case, mode=sentences, seed=seed, progress=progress,
                        tell=lambda message: click.echo(message, err=True))
    counts = made["counts"]
    splits = ", ".join(f"{name} {c['sentences']:,} sentences ({c['4grams']:,} 4-grams)"
                       for name, c in counts["splits"].items())
    click.echo(f"built {out}/ in {made['seconds']:.1f} s: {counts['vocabulary']:,} words "
               f"(<unk> first); {splits}")
    click.echo(f"train on it: wordnet-pipeline run --data-dir {out} --pipeline quick")


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
    fetch_files(dest, Path(source) if source else None, log=status)
    click.echo(f"data ready in {dest}/")
