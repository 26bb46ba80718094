#!/usr/bin/env python
"""Each model's default training on a quiet and on a busy machine, against one thread.

For the 4-gram model (recipe `quick`: fast backend, float64), the window scorer
(`window`), skip-gram with the full softmax (`skipgram`) and with negative sampling
(`skipgram-neg`), each through its public trainer (``Trainer.run``,
``SampledTrainer.run``) on the real training examples, three rows:

  * **default**: the model's threads unset, as `wordnet-pipeline run` makes it: up to
    min(CPUs, 4) threads, as many as the governor measures to pay
    (wordnet/training/threads.py);
  * **1 thread**: ``threads=1``;
  * **2 fixed**: ``threads=2``, the old default: two threads whatever the load.

A row trains fresh weights for ``--seconds`` (then ``request_stop()``: about as long as
the recipes' own runs); its rate is the trainer's own (``History.updates /
History.seconds``: the governor's trials included).  Each model first trains once,
untimed: the first run of a process pays for imports and allocations.
The phases: **quiet**, then **busy**, with a competing process spinning on one core
(``while True: pass``).  The repeats go round-robin over the rows; the table gives each
row's median, its ratio to the 1-thread row of the same phase, and (busy) to its own
quiet median.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_busy.py
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_skipgram import Hog, load_avg  # noqa: E402  (beside this script)

from wordnet.data.corpus import load_corpus  # noqa: E402
from wordnet.data.dataset import load_dataset  # noqa: E402
from wordnet.models import registry  # noqa: E402
from wordnet.models.base import THREADS_ENV  # noqa: E402
from wordnet.runs.recipes import load_recipe  # noqa: E402
from wordnet.training.sampled import SampledTrainer, examples  # noqa: E402
from wordnet.training.trainer import Trainer  # noqa: E402

MODELS = ("quick", "window", "skipgram", "skipgram-neg")
ROWS = {"default": None, "1 thread": 1, "2 fixed": 2}


def trainers(recipe: str, dataset, corpus):
    """threads -> a fresh trainer of ``recipe``'s model (its epochs made endless), and
    the examples it trains on."""
    config = load_recipe(recipe).config
    config = dataclasses.replace(config, epochs=10_000, early_stop=0)
    cls = registry.of(config).model
    if config.model == "4gram":
        return (lambda T: Trainer(cls.initialize(config, 250, threads=T), config)), dataset.train
    rows = examples(cls, corpus, "train", config)
    return (lambda T: SampledTrainer(cls.initialize(config, 250, threads=T), config, corpus)), rows


def rate(make, T, rows, seconds: float) -> float:
    trainer = make(T)
    timer = threading.Timer(seconds, trainer.request_stop)
    timer.start()
    try:
        history = trainer.run(rows)
    finally:
        timer.cancel()
    return history.updates / history.seconds


def measure(models, repeats: int, seconds: float, dataset, corpus) -> dict:
    made = {m: trainers(m, dataset, corpus) for m in models}
    for make, rows in made.values():          # untimed: the first run's imports, allocations
        rate(make, 1, rows, 0.5)
    found = {(m, r): [] for m in models for r in ROWS}
    for _ in range(repeats):
        for m, (make, rows) in made.items():
            for r, T in ROWS.items():
                found[m, r].append(rate(make, T, rows, seconds))
    return {key: statistics.median(v) for key, v in found.items()}


def report(phases: dict, models) -> None:
    names = list(phases)
    head = " | ".join(f"{p} updates/s | {p} ÷ 1 thread" for p in names)
    print(f"\n| model | row | {head} | busy ÷ quiet |")
    print("|---|---|" + "---|---|" * len(names) + "---|")
    for m in models:
        for r in ROWS:
            cells = []
            for p in names:
                v = phases[p][m, r]
                cells += [f"{v:,.0f}", f"{v / phases[p][m, '1 thread']:.2f}"]
            tail = (f"{phases['busy'][m, r] / phases['quiet'][m, r]:.2f}" if "busy" in phases
                    else "")
            print(f"| {m} | {r} | " + " | ".join(cells) + f" | {tail} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="per repeat of a row (the recipes' runs take 5 to 13 s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=",".join(MODELS), help="recipes, comma-separated")
    parser.add_argument("--no-quiet", action="store_true", help="only the busy phase")
    args = parser.parse_args()
    if os.environ.get(THREADS_ENV):
        sys.exit(f"unset ${THREADS_ENV}: it fixes the default row's threads")
    models = args.only.split(",")
    dataset = load_dataset()
    corpus = load_corpus(dataset.vocab, None)
    print(f"{os.cpu_count()} CPUs; 1-minute load average before timing: {load_avg()}")
    phases = {}
    if not args.no_quiet:
        phases["quiet"] = measure(models, args.repeats, args.seconds, dataset, corpus)
    with Hog():
        phases["busy"] = measure(models, args.repeats, args.seconds, dataset, corpus)
    print(f"1-minute load average after timing: {load_avg()}")
    report(phases, models)


if __name__ == "__main__":
    main()
