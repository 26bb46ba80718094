#!/usr/bin/env python
"""`wordnet-pipeline data build` on a large text: its time and its peak memory.

The text is a real one (default: the King James Bible as Debian's `bible` prints it)
repeated until it reaches --gigabytes; the build is the command a user types, in a
child process, and its peak resident memory is the child's (getrusage).  The folder
it makes is removed afterwards.

    python benchmarks/bench_build.py --gigabytes 1
    python benchmarks/bench_build.py --text my.txt --gigabytes 0.1 --sentences lines
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import pipeline_executable  # beside this script

KJV = ["bible", "-l100000", "gen1:1-rev22:21"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--text", help="the text to repeat [default: the King James Bible]")
    ap.add_argument("--gigabytes", type=float, default=1.0, help="size to build (default 1)")
    ap.add_argument("--sentences", default="text", choices=("lines", "text"))
    ap.add_argument("--scratch", help="where the text and the folder go [default: the temp dir]")
    args = ap.parse_args(argv)
    exe = pipeline_executable()
    with tempfile.TemporaryDirectory(prefix="bench-build-", dir=args.scratch) as scratch:
        scratch = Path(scratch)
        if args.text:
            one = Path(args.text).read_bytes()
        else:
            if not shutil.which("bible"):
                print("no `bible` program: apt-get install bible-kjv, or pass --text",
                      file=sys.stderr)
                return 2
            one = subprocess.run(KJV, capture_output=True, check=True).stdout
        big = scratch / "text.txt"
        copies = max(1, round(args.gigabytes * 1e9 / len(one)))
        with open(big, "wb") as f:
            for _ in range(copies):
                f.write(one)
        size = big.stat().st_size
        print(f"== data build of {size / 1e9:.2f} GB ({copies} copies of a {len(one) / 1e6:.1f} "
              f"MB text), --sentences {args.sentences}")
        start = time.perf_counter()
        subprocess.run([exe, "data", "build", str(big), "--out", str(scratch / "data"),
                        "--sentences", args.sentences], check=True)
        wall = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        made = json.loads((scratch / "data" / "manifest.json").read_text())
        on_disk = sum(p.stat().st_size for p in (scratch / "data").iterdir())
        words = sum(s["words"] for s in made["counts"]["splits"].values())
        print(f"  {wall:.1f} s ({size / 1e6 / wall:.1f} MB/s, {words / wall / 1e6:.2f} M "
              f"words/s); peak memory {peak:.0f} MiB; the folder {on_disk / 1e9:.2f} GB, "
              f"{made['counts']['vocabulary']:,} words in its vocabulary")
    return 0


if __name__ == "__main__":
    sys.exit(main())
