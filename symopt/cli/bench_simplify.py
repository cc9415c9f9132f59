"""``symopt bench simplify``: how often simplification changes what a program computes.

Runs :func:`symopt.simplify` on N random programs over the whole library
(:mod:`symopt.programs.generate`) and judges each result against its program
with :func:`symopt.symbolic.equivalence.mismatch`, on probes of another seed
than the one :func:`~symopt.simplify` checks with: an independent judge.
Counts the programs whose simplification raised (anything but ProgramError),
changed the update or a live state, or came out shorter (and how many of those
SymPy shortened beyond dead-code elimination); and the time taken.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from symopt.programs.generate import numpy_chooser, random_program
from symopt.programs.liveness import eliminate_dead_code, size
from symopt.symbolic.equivalence import mismatch
from symopt.symbolic.simplify import simplify

JUDGE_SEED = 7919
"""Probe seed of the judge; simplify's own check uses seed 0."""


def run(programs: int = 300, seed: int = 0, timeout: float = 5.0, examples: int = 3) -> dict:
    """Simplify ``programs`` random programs; the counts, the times and a few examples of each failure."""
    rng = np.random.default_rng(seed)
    counts = {"programs": programs, "raised": 0, "changed": 0, "shortened": 0, "rewritten": 0}
    seen: dict[str, list[str]] = {"raised": [], "changed": []}
    times = []
    for _ in range(programs):
        program = random_program(numpy_chooser(rng))
        t0 = time.perf_counter()
        try:
            result = simplify(program, timeout=timeout)
        except Exception as e:  # what the benchmark counts: simplify must not raise
            counts["raised"] += 1
            seen["raised"].append(f"{program}  raised {type(e).__name__}: {e}")
            continue
        finally:
            times.append(time.perf_counter() - t0)
        found = mismatch(program, result, seed=JUDGE_SEED, steps=4)
        if found is not None:
            counts["changed"] += 1
            seen["changed"].append(f"{program}  became\n{result}  {found}")
        elif size(result) < size(program):
            counts["shortened"] += 1
            counts["rewritten"] += size(result) < size(eliminate_dead_code(program))
    return {**counts, "seconds_mean": float(np.mean(times)), "seconds_max": float(np.max(times)),
            "examples": {k: v[:examples] for k, v in seen.items()}}


def report(r: dict) -> str:
    n = r["programs"]

    def pct(k):
        return f"{r[k]:>5} ({100 * r[k] / n:.1f}%)"

    lines = [f"simplify on {n} random programs over the whole library",
             f"  raised          {pct('raised')}",
             f"  changed         {pct('changed')}   (update or a live state differs on the judge's probes)",
             f"  shortened       {pct('shortened')}   (and unchanged)",
             f"  by SymPy        {pct('rewritten')}   (shorter than dead-code elimination alone makes it)",
             f"  time            {r['seconds_mean']:.3f} s mean, {r['seconds_max']:.2f} s max"]
    for kind, texts in r["examples"].items():
        for text in texts:
            lines += ["", f"-- {kind}:", text.rstrip()]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    print(report(run(args.programs, args.seed, args.timeout)))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--programs", type=int, default=300, help="random programs to simplify (default: 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the program generator (default: 0)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds of SymPy per program (default: 5)")
