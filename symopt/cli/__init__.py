"""The ``symopt`` command line: one sub-command per job, each in its own module.

Each command module has ``add_arguments(parser)`` and ``main(args)``; argparse is
used in this package and nowhere else in symopt.
"""

from __future__ import annotations

import argparse
import warnings

from symopt.cli import (bench_compile, bench_driver, bench_eval, bench_fuzz, bench_scale, bench_simplify, compare, demo,
                        derive, export, inspect, report, search, simplify, study)

COMMANDS = (
    ("demo", demo, "parse a baseline, print its math and LaTeX, write it as an optax module"),
    ("search", search, "evolve update rules (regularised evolution, funnel, hall of fame)"),
    ("simplify", simplify, "print a program file simplified (dead code removed, SymPy)"),
    ("derive", derive, "shorten a program step by step (remove, replace, round, rewrite), "
                       "each step checked by training on a search stage"),
    ("inspect", inspect, "a run's hall of fame as a table: programs, fitness, state memory"),
    ("export", export, "write a run's hall-of-fame entry as a standalone optax module"),
    ("compare", compare, "baselines and found programs side by side, each at its best lr"),
    ("report", report, "PNG plots of a run: best fitness, loss curves against AdamW and Lion, "
                       "Pareto front of fitness and state memory"),
    ("study", study, "does search fitness predict validation, and do the leaders transfer? "
                     "(a benchmark: minutes to hours)"),
)
"""(name, module, help) of each command."""

BENCHMARKS = (
    ("eval", bench_eval, "cost of evaluating a candidate: interpreter vs a fresh jit vs native"),
    ("compile", bench_compile, "a campaign's executable: compile (every opcode, its instruction set), load from the "
                               "cache, time per instruction by bucket"),
    ("scale", bench_scale, "evaluations/s with 1 worker and with N Ray workers"),
    ("driver", bench_driver, "the driver's CPU per training (mutation, fingerprints, the log), no training, no Ray"),
    ("simplify", bench_simplify, "how often simplification changes the update, on random programs over the whole "
                                 "library"),
    ("fuzz", bench_fuzz, "generated program texts through parse, check, lowering and simplify: "
                         "crashes other than ProgramError, and code run (none allowed)"),
)
"""(name, module, help) of each ``symopt bench`` command."""


def _add(sub, name: str, module, help: str) -> None:
    parser = sub.add_parser(name, help=help)
    module.add_arguments(parser)
    parser.set_defaults(func=module.main)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="symopt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module, help in COMMANDS:
        _add(sub, name, module, help)
    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench", required=True)
    for name, module, help in BENCHMARKS:
        _add(bench, name, module, help)
    return parser


def _warning_line(message, category, filename, lineno, line=None) -> str:
    """A warning as one line for the user, without the Python file, line and source that raised it."""
    return f"symopt: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous, warnings.formatwarning = warnings.formatwarning, _warning_line
    try:
        return int(args.func(args) or 0)
    finally:
        warnings.formatwarning = previous
