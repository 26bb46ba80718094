"""The ``wordnet-pipeline`` command group, and what every command's options share: the
tracking store, a pipeline's recipe, data and naming, a model's reference, a recipe
read with its --set overrides."""
from __future__ import annotations

from pathlib import Path

import click

from wordnet import __version__
from wordnet.exits import DEBUG, EPILOG, Group
from wordnet.runs.recipes import recipe_names
from wordnet.tracking.noise import quiet


@click.group(cls=Group, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wordnet-pipeline")
@click.option("--debug", is_flag=True, envvar="WORDNET_DEBUG",
              help="Show the traceback of an error.")
@click.option("--verbose", "-v", is_flag=True, envvar="WORDNET_VERBOSE",
              help="Show MLflow's own messages and progress bars too.")
@click.pass_context
def cli(ctx, debug, verbose):
    """Hinton's 4-gram neural language model: train it, track it with MLflow, use it.

    \b
    Start with:
      wordnet-pipeline run --stage all       train, evaluate, compare with the C reference
      wordnet-pipeline predict "have a good" the likeliest next words
      mlflow ui                              compare the runs in a browser
    """
    ctx.meta[DEBUG] = debug
    quiet(verbose)



# Where a command logs: the tracking store and the experiment.
STORE_OPTIONS = [
    click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", show_envvar=True,
                 help="MLflow tracking URI [default: MLflow's, ./mlflow.db]."),
    click.option("--experiment", envvar="MLFLOW_EXPERIMENT_NAME", show_envvar=True,
                 help="MLflow experiment [default: one per kind of model: wordnet-4gram, "
                      "wordnet-window, wordnet-skipgram, wordnet-skipgram-neg; "
                      "compare-embeddings: wordnet-compare]."),
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
                          "under artifacts/ (one folder: / \\ and control characters "
                          f"become -, leading dots go) [default: {run_name}; the folder "
                          f"{folder_name}]."),
        click.option("--no-tracking", is_flag=True, help="Do not log to MLflow."),
    ]
    for option in reversed(options):
        f = option(f)
    return f



MODEL_OPTION = click.option("--model", metavar="PATH|runs:/ID|models:/NAME/VERSION",
                            help="Checkpoint, run folder, MLflow model, `published` (the "
                                 "shipped model9-3000.bin) or a recipe's name (its latest "
                                 "run) [default: latest run].")
TRACKING_OPTION = click.option(
    "--tracking-uri", envvar="MLFLOW_TRACKING_URI", show_envvar=True,
    help="MLflow tracking URI of a runs:/ or models:/ model [default: MLflow's, ./mlflow.db].")


def model_options(f):
    f = click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Where to find vocab.txt when it is not beside the model.")(f)
    return MODEL_OPTION(TRACKING_OPTION(f))



def read_recipe(name, sets):
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


def status(message: str) -> None:
    """A line about what the command is doing (not its result): on stderr."""
    click.echo(message, err=True)
