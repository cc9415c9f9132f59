"""``symopt bench driver``: the driver's own CPU time per training, with no training and no Ray.

    taskset -c 1 symopt bench driver [--config quick] [--budget 1500] [--repeats 3]

The configuration's search stage (:func:`symopt.cli.bench_scale.first_stage`) runs
against an instant backend: each candidate's fitness is a number derived from a
hash of its text, returned at once. What is left is the driver's work per
training: mutation, validity checks, fingerprints, acceptance, lineage and the
fsynced log, in a temporary run directory. CPU time (``time.process_time``)
from the first accepted training to the last, per training; the figure is the
part of ``symopt bench scale``'s "driver CPU per training" that is not Ray's.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time

from symopt.cli.bench_scale import first_stage
from symopt.campaign.campaign import search


def instant_backend(tasks, seeds, steps, grid, functions=None):
    """A fitness in [-0.5, 0.5) from a hash of each program's text, at once (no training)."""
    def evaluate(programs):
        return [int(hashlib.sha256(str(p).encode()).hexdigest()[:8], 16) / 2 ** 32 - 0.5 for p in programs]
    return evaluate


def driver_ms(config, budget: int, seed: int = 0) -> float:
    """Driver CPU milliseconds per training of one campaign of the search stage on the instant backend."""
    marks: list[tuple[float, int]] = []
    cfg = first_stage(config, budget=budget, seed=seed)
    with tempfile.TemporaryDirectory() as run_dir:
        search(cfg, backend=instant_backend, run_dir=run_dir,
               progress=lambda state, _: marks.append((time.process_time(), state.stats.evaluated)))
    (t0, n0), (t1, n1) = marks[0], marks[-1]
    return 1000 * (t1 - t0) / max(1, n1 - n0)


def main(args: argparse.Namespace) -> int:
    runs = [driver_ms(args.config, args.budget, args.seed) for _ in range(args.repeats)]
    print(f"driver CPU per training ({args.config}, search stage, instant backend, budget {args.budget}): "
          f"{min(runs):.2f} ms best, {statistics.median(runs):.2f} median ({', '.join(f'{r:.2f}' for r in runs)})")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="quick", help="search configuration (default: quick)")
    parser.add_argument("--budget", type=int, default=1500, help="trainings per campaign (default: 1500)")
    parser.add_argument("--seed", type=int, default=0, help="campaign seed (default: 0)")
    parser.add_argument("--repeats", type=int, default=3, help="campaigns (default: 3)")
