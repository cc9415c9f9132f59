"""``symopt compare A B ... --tasks T1 T2``: optimizers side by side, each at its best learning rate
(:mod:`symopt.tools.compare`)."""

from __future__ import annotations

import argparse
import sys

from symopt.tools.compare import DEFAULT_LRS, CompareError, compare, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("optimizers", nargs="+", metavar="NAME_OR_FILE",
                        help="baseline names (adam, lion, ...), program files, or RUN:N (rank N of a run)")
    parser.add_argument("--tasks", nargs="+", required=True,
                        help="proxy tasks (proxy_tasks.names()), or your own by import path package.module:attr")
    parser.add_argument("--steps", type=int, default=None, help="training steps on every task (default: each task's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds, averaged (default: 0)")
    parser.add_argument("--lrs", type=float, nargs="+", default=list(DEFAULT_LRS),
                        help="learning-rate grid as factors of each task's AdamW learning rate "
                             "(default: 0.1 0.3 1 3 10)")


def main(args: argparse.Namespace) -> int:
    try:
        labels, tasks, cells = compare(args.optimizers, args.tasks, args.seeds, args.steps, args.lrs)
    except CompareError as e:
        print(f"symopt compare: {e}", file=sys.stderr)
        return 1
    grid = ", ".join(f"{f:g}" for f in args.lrs)
    steps = f"{args.steps} steps" if args.steps else "each task's steps"
    print(f"final eval loss at the best learning rate (grid: task AdamW lr x {{{grid}}}; {steps}; "
          f"seeds {' '.join(map(str, args.seeds))})\n")
    print(table(labels, tasks, cells))
    print("\nlast column: mean log(L_AdamW / L), each at its best lr of the grid (0 = tuned AdamW, higher is better)")
    return 0
