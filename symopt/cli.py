"""The ``symopt`` command line: one sub-command per job, each in its own module."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from symopt.demo import main as demo

    return demo(args)


def _search(args: argparse.Namespace) -> int:
    from symopt.search.cli_search import main_search

    return main_search(args)


def _simplify(args: argparse.Namespace) -> int:
    from symopt.search.cli_simplify import main_simplify

    return main_simplify(args)


def _derive(args: argparse.Namespace) -> int:
    from symopt.search.cli_derive import main as derive

    return derive(args)


def _bench_eval(args: argparse.Namespace) -> int:
    from symopt.evaluation.bench import main as bench_eval

    return bench_eval(args)


def _bench_scale(args: argparse.Namespace) -> int:
    from symopt.campaigns.bench_scale import main as bench_scale

    return bench_scale(args)


def _bench_simplify(args: argparse.Namespace) -> int:
    from symopt.symbolic.bench_simplify import main as bench_simplify

    return bench_simplify(args)


def _bench_fuzz(args: argparse.Namespace) -> int:
    from symopt.campaigns.bench_fuzz import main as bench_fuzz

    return bench_fuzz(args)


def _inspect(args: argparse.Namespace) -> int:
    from symopt.campaigns.inspect_run import main as inspect_run

    return inspect_run(args)


def _export(args: argparse.Namespace) -> int:
    from symopt.campaigns.export_run import main as export_run

    return export_run(args)


def _report(args: argparse.Namespace) -> int:
    from symopt.campaigns.report import main as report

    return report(args)


def _compare(args: argparse.Namespace) -> int:
    from symopt.campaigns.compare import main as compare

    return compare(args)


def _study(args: argparse.Namespace) -> int:
    from symopt.campaigns.study import main as study

    return study(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="symopt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="parse a baseline, print its math and LaTeX, write it as an optax module")
    demo.add_argument("baseline", nargs="?", default="adamw", help="baseline name (default: adamw)")
    demo.add_argument("-o", "--output", default=None, help="where to write the optax module (default: runs/demo/NAME.py)")
    demo.set_defaults(func=_demo)

    s = sub.add_parser("search", help="evolve update rules (regularised evolution, funnel, hall of fame)")
    s.add_argument("config", help="search configuration: a TOML file or a name in search_spaces/ (hero, quick)")
    s.add_argument("--budget", type=int, default=None, help="candidates to train (default: the config's)")
    s.add_argument("--seed", type=int, default=None, help="seed of the search (default: the config's)")
    s.add_argument("--run-dir", default=None, help="where to write evaluations.jsonl and hall_of_fame.json "
                                                   "(default: runs/NAME)")
    s.add_argument("--resume", action="store_true", help="continue the run logged in --run-dir: logged candidates "
                                                         "take their logged fitness, the rest are trained")
    s.add_argument("--workers", type=int, default=None, help="Ray evaluator actors (default: one per free CPU)")
    s.add_argument("--address", default=None, help="join this Ray cluster (default: RAY_ADDRESS, else a local "
                                                   "Ray instance)")
    s.add_argument("--serial", action="store_true", help="train in this process, without Ray")
    from symopt.campaigns.cluster import INSECURE_HELP

    s.add_argument("--insecure", action="store_true", help=INSECURE_HELP)
    s.set_defaults(func=_search)

    simp = sub.add_parser("simplify", help="print a program file simplified (dead code removed, SymPy)")
    simp.add_argument("file", help="program file (def train(...): ... return update, ...), or - for stdin")
    simp.add_argument("--timeout", type=float, default=10.0, help="seconds of SymPy (default: 10)")
    simp.add_argument("--dead-code-only", action="store_true", help="only remove dead statements")
    simp.set_defaults(func=_simplify)

    from symopt.search import cli_derive as _derive_mod

    der = sub.add_parser("derive", help="shorten a program step by step (remove, replace, round, rewrite), "
                                        "each step checked by training on a search stage")
    _derive_mod.add_arguments(der)
    der.set_defaults(func=_derive)

    from symopt.campaigns import compare as _compare_mod, export_run as _export_mod, inspect_run as _inspect_mod

    insp = sub.add_parser("inspect", help="a run's hall of fame as a table: programs, fitness, state memory")
    _inspect_mod.add_arguments(insp)
    insp.set_defaults(func=_inspect)
    exp = sub.add_parser("export", help="write a run's hall-of-fame entry as a standalone optax module")
    _export_mod.add_arguments(exp)
    exp.set_defaults(func=_export)
    comp = sub.add_parser("compare", help="baselines and found programs side by side, each at its best lr")
    _compare_mod.add_arguments(comp)
    comp.set_defaults(func=_compare)
    from symopt.campaigns import report as _report_mod

    rep = sub.add_parser("report", help="PNG plots of a run: best fitness, loss curves against AdamW and Lion, "
                                        "Pareto front of fitness and state memory")
    _report_mod.add_arguments(rep)
    rep.set_defaults(func=_report)

    from symopt.campaigns import study as _study_mod

    st = sub.add_parser("study", help="does search fitness predict validation, and do the leaders transfer? "
                                      "(a benchmark: minutes to hours)")
    _study_mod.add_arguments(st)
    st.set_defaults(func=_study)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench", required=True)
    bench_eval = bench.add_parser("eval", help="cost of evaluating a candidate: interpreter vs a fresh jit vs native")
    from symopt.evaluation.bench import add_arguments as _bench_eval_arguments

    _bench_eval_arguments(bench_eval)
    bench_eval.set_defaults(func=_bench_eval)
    bench_scale = bench.add_parser("scale", help="evaluations/s with 1 worker and with N Ray workers")
    from symopt.campaigns.bench_scale import add_arguments as _bench_scale_arguments

    _bench_scale_arguments(bench_scale)
    bench_scale.set_defaults(func=_bench_scale)
    bench_simplify = bench.add_parser("simplify", help="how often simplification changes the update, "
                                                       "on random programs over the whole library")
    from symopt.symbolic.bench_simplify import add_arguments as _bench_simplify_arguments

    _bench_simplify_arguments(bench_simplify)
    bench_simplify.set_defaults(func=_bench_simplify)
    bench_fuzz = bench.add_parser("fuzz", help="generated program texts through parse, check, lowering and simplify: "
                                               "crashes other than ProgramError, and code run (none allowed)")
    from symopt.campaigns.bench_fuzz import add_arguments as _bench_fuzz_arguments

    _bench_fuzz_arguments(bench_fuzz)
    bench_fuzz.set_defaults(func=_bench_fuzz)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
