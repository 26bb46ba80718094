"""The commands that use a trained model: ``predict``, ``generate``, ``nearest``,
``distance``, ``serve``, ``compare-embeddings`` and ``info``.  They import neither
MLflow nor the compiled engine unless they need them, so that a cold ``predict``
answers within half a second."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from click.core import ParameterSource

from wordnet.cli.group import (
    MODEL_OPTION,
    TRACKING_OPTION,
    cli,
    model_options,
    status,
    store_options,
)
from wordnet.exits import SEE_EXIT, BadInput


def said_model(origin: str) -> None:
    """Which model a command reads, on stderr: the answer changes after a new run."""
    click.echo(f"model: {origin}", err=True)


def said_unknown(vocab, *texts: str) -> None:
    """On stderr, the words of ``texts`` a vocabulary with <unk> reads as <unk>."""
    from wordnet.data.dataset import UNK
    from wordnet.models.predictor import words_of
    if vocab.has_unk():
        for word in vocab.unknown(words_of(" ".join(texts), None, vocab)):
            click.echo(f"note: {word!r} is not in the vocabulary: read as {UNK}", err=True)


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
    # --json: stdout is the JSON, stderr stays empty
    predictor = load_predictor(model, data_dir, tracking_uri, None if as_json else said_model)
    text = " ".join(context)
    ranked = predictor.predict(text, min(top_k, len(predictor.vocab)))
    if not as_json:
        said_unknown(predictor.vocab, text)
    lines = [prediction_json(predictor, text, ranked)] if as_json else prediction_lines(ranked)
    for line in lines:
        click.echo(line)


@cli.command(epilog=SEE_EXIT)
@click.argument("context", nargs=-1)
@model_options
@click.option("--words", "-n", type=click.IntRange(min=1, max=10_000), default=10,
              show_default=True, help="How many words to add.")
@click.option("--sample", is_flag=True, help="Sample each word instead of taking the likeliest.")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="With --sample: below 1 sharper, above 1 flatter.")
@click.option("--seed", type=click.IntRange(min=0), help="With --sample: the random seed.")
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
    from wordnet.models.predictor import words_of
    from wordnet.runs.locate import load_predictor
    predictor = load_predictor(model, data_dir, tracking_uri, said_model)
    if interactive:
        from wordnet.use import interactive as choose_words
        return choose_words(predictor, " ".join(context), read=lambda: sys.stdin.readline(),
                            write=lambda text: click.echo(text, nl=False))
    import numpy as np
    rng = np.random.default_rng(seed) if sample else None
    text = " ".join(context)
    continued = predictor.generate(text, words, rng, temperature)
    said_unknown(predictor.vocab, text)
    click.echo(" ".join(words_of(text, vocab=predictor.vocab) + continued))  # as read


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
    embeddings = load(model, data_dir, tracking_uri, tell=said_model)
    found = embeddings.nearest(word, k)
    said_unknown(embeddings.vocab, word)
    for other, d in found:
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
    embeddings = load(model, data_dir, tracking_uri, tell=said_model)
    d = embeddings.distance(word1, word2)
    said_unknown(embeddings.vocab, word1, word2)
    click.echo(f"{d:.6f}")


@cli.command(epilog=SEE_EXIT)
@click.option("--model", "-m", metavar="PATH|runs:/ID|models:/NAME/VERSION",
              help="Checkpoint, run folder, MLflow model, `published` or a recipe's name "
                   "[default: the latest 4-gram run].")
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
    """How much models' embeddings agree: shared nearest neighbours, maps in a grid.

    For every pair of MODELs (a checkpoint, a run folder, an MLflow run ID, runs:/ID,
    models:/NAME/VERSION, `published`: the shipped model9-3000.bin, or a recipe's
    name: its latest run under artifacts/), the mean share of each word's K nearest words that
    both models give; the words they agree on most and least; and every model's
    t-SNE map, two to a row (each turned to fit the first's). Logged to MLflow as a
    run of its own unless --no-tracking.
    """
    from wordnet.runs.compare import CompareError
    from wordnet.runs.comparison import EXPERIMENT
    from wordnet.runs.comparison import compare_embeddings as compare
    if len(models) < 2:
        raise click.UsageError("give two models or more to compare")
    try:
        compare(list(models), k, data_dir, out, tracking_uri, experiment or EXPERIMENT,
                not no_tracking,
                echo=click.echo, status=status)
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
    for line in model_info(path or model, tracking_uri, tell=said_model):
        click.echo(line)
