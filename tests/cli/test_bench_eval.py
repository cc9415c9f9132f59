"""``symopt bench eval`` at its smallest settings: the shape of its output, never its speed."""

from __future__ import annotations

import json
import math

import pytest

from symopt.cli import main
from symopt.cli.bench_eval import report

SECONDS = ("interpreter_s", "batched_s", "jit_per_candidate_s", "native_s", "jit_compile_s", "interpreter_compile_s",
           "batched_compile_s", "reference_s")


@pytest.mark.slow
def test_bench_eval_measures_the_four_ways(capsys):
    assert main(["bench", "eval", "--task", "quadratic_illcond", "--programs", "sgd", "--repeats", "1",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["task"], r["steps"], r["programs"], r["repeats"]) == ("quadratic_illcond", 200, ["sgd"], 1)
    for key in SECONDS:
        assert isinstance(r[key], float) and 0 < r[key] < math.inf, key
    assert r["jit_compile_s"] <= r["jit_per_candidate_s"]  # the compile is part of the fresh jit's time
    for ratio, (num, den) in {"jit_over_interpreter": ("jit_per_candidate_s", "interpreter_s"),
                              "interpreter_over_native": ("interpreter_s", "native_s"),
                              "batched_over_interpreter": ("batched_s", "interpreter_s")}.items():
        assert math.isclose(r[ratio], r[num] / r[den]), ratio
    assert r["warm_compiles"] == 0  # the timed rounds reuse the compiled interpreter: nothing compiles
    assert isinstance(r["setup_compiles"], int)  # 0 when an earlier test in this process compiled the same
    for key in ("interpreter_by_program_s", "native_by_program_s"):
        assert set(r[key]) == {"sgd"} and r[key]["sgd"] > 0
    assert r["interpreter_by_program_s"]["sgd"] == r["interpreter_s"]  # the mean over one program
    assert r["cpus"] >= 1 and isinstance(r["backend"], str)

    text = report(r).splitlines()  # the table printed without --json
    assert text[0].startswith("task quadratic_illcond (200 steps, seed 0), programs sgd; best of 1")
    for label in ("(a) interpreter, warm", "(b) batched interpreter", "(c) fresh jit per candidate",
                  "(d) native optax, compiled", "(c)/(a) =", "(a)/(d) =", "(b)/(a) ="):
        assert any(label in line for line in text), label


def test_bench_eval_is_a_bench_subcommand():
    from symopt.cli import build_parser

    args = build_parser().parse_args(["bench", "eval", "--json", "--task", "rosenbrock"])
    assert args.json and args.task == "rosenbrock" and callable(args.func)
