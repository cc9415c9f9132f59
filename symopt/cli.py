"""The ``symopt`` command line: one sub-command per job, each in its own module."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from symopt.demo import main as demo

    return demo(args)


def _bench_eval(args: argparse.Namespace) -> int:
    from symopt.evaluation.bench import main as bench_eval

    return bench_eval(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="symopt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="parse a baseline, print its math and LaTeX, write it as an optax module")
    demo.add_argument("baseline", nargs="?", default="adamw", help="baseline name (default: adamw)")
    demo.add_argument("-o", "--output", default=None, help="where to write the optax module (default: runs/demo/NAME.py)")
    demo.set_defaults(func=_demo)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench", required=True)
    bench_eval = bench.add_parser("eval", help="cost of evaluating a candidate: interpreter vs a fresh jit vs native")
    from symopt.evaluation.bench import add_arguments as _bench_eval_arguments

    _bench_eval_arguments(bench_eval)
    bench_eval.set_defaults(func=_bench_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
