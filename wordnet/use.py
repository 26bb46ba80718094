"""What the commands that use a model show: its predictions (a table or JSON), the C
program's interactive loop (``generate -i``) and a checkpoint's info table (``info``).

Nothing here imports MLflow, nor the compiled engine unless the model needs it: a
cold ``predict`` answers within half a second.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

SHOWN_WORDS = 20                      # generate --interactive: the text's last words shown


def prediction_lines(ranked) -> list[str]:
    """``predict``'s table: rank, word and probability of each prediction."""
    width = max(len(p.word) for p in ranked)
    return [f"{n:>2}. {p.word:<{width}}  {p.probability:.6f}" for n, p in enumerate(ranked, 1)]


def prediction_json(predictor, text: str, ranked) -> str:
    """``predict --json``: in one line, what the served model answers (wordnet.serving.pyfunc):
    the context as the model read it, the predictions, the words read as <unk>."""
    indices, unknown = predictor.read(text)
    return json.dumps({"context": [predictor.vocab.words[i] for i in indices],
                       "predictions": [{"word": p.word, "probability": p.probability}
                                       for p in ranked],
                       "unknown": unknown})


def interactive(predictor, text: str, read=None, write=None) -> None:
    """The C program's loop: show the top 5, read 1 to 5 (Enter for 1); Ctrl-D or q ends.
    ``read`` gives a line ("" at the end of the input; default: stdin's), ``write``
    shows text as is (default: on stdout).

    Each step shows the text's last SHOWN_WORDS words (the whole text, at every step,
    made a long session's output grow as its square); the end shows it all, once."""
    read = read or sys.stdin.readline
    write = write or (lambda shown: print(shown, end="", flush=True))
    if not text:
        write("|Input first 3 words > ")
        text = read()
    predictor.encode(text)                              # fails early on a bad context
    words = text.lower().split()
    while True:
        ranked = predictor.predict(" ".join(words[-predictor.context_size:]), 5)
        write(("... " if len(words) > SHOWN_WORDS else "") + " ".join(words[-SHOWN_WORDS:])
              + "\n")
        write("*Top 5 = " + " ".join(f"{n}.{p.word}({p.probability:.6f})"
                                     for n, p in enumerate(ranked, 1)) + "\n")
        while True:
            write("|Choose a number (default = 1)> ")
            answer = read()
            choice = answer.strip()
            if not answer or choice == "q":
                write("\n")
                if len(words) > SHOWN_WORDS:
                    write(" ".join(words) + "\n")
                return
            if choice in ("", "1", "2", "3", "4", "5"):
                break
            write("choose 1 to 5, Enter for 1, q to quit\n")
        words.append(ranked[int(choice or 1) - 1].word)


def model_info(model: str | None, tracking_uri: str | None = None, tell=None) -> list[str]:
    """``info``'s lines for the model ``model`` (what --model accepts; None: the latest
    run's): a 4-gram checkpoint's header as the C program's ``info`` shows it; a window
    scorer's or skip-gram's kind, with its objective when its recipe is beside it, and
    parameter shapes.  ``tell`` is told which model it is (``locate.model_files``)."""
    from wordnet.models.checkpoint import load
    from wordnet.runs.locate import model_files
    with model_files(model, tracking_uri=tracking_uri, vocab=False,
                     tell=tell) as (checkpoint, _):
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
    lines = ["## Model Info"]
    for name, value in rows:
        shown = f"{value:f}" if isinstance(value, float) else f"{value:8d}"
        lines.append(f"   {name:<24} = {shown}")
    return lines + [f"   {'Parameters':<24} = {sum(p.size for p in params.values()):8d}"]


def _npz_info(path: Path) -> list[str]:
    """What `info` shows of a window scorer's or skip-gram's checkpoint: its kind, with
    what its recipe beside it trains it for, and the shapes of its parameters (the C
    header's hyperparameters are in its recipe)."""
    from wordnet.models import registry
    from wordnet.models.checkpoint import load_npz
    from wordnet.runs.rundir import RunDir, RunFolderError
    kind, params = load_npz(path, registry.checkpoint_kinds(path.suffix))
    try:
        recipe = RunDir(path.parent).recipe()
    except (OSError, RunFolderError):         # the model is readable: its kind is shown
        recipe = None
    config = recipe.config if recipe is not None and recipe.config.model == kind else None
    return (["## Model Info", f"   {'Model':<24} = {registry.kind(kind).describe(config)}"]
            + [f"   {name:<24} = {' x '.join(map(str, p.shape))}" for name, p in params.items()]
            + [f"   {'Parameters':<24} = {sum(p.size for p in params.values()):8d}"])
