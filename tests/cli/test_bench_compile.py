"""``symopt bench compile`` measures what it says, on a cheap task."""

from __future__ import annotations

import json
import math

import pytest

from symopt.cli import main


@pytest.mark.slow
def test_bench_compile_reports_compile_load_and_bucket_figures(capsys):
    assert main(["bench", "compile", "--task", "quadratic_illcond", "--repeats", "1", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["task"], r["config"], r["k"]) == ("quadratic_illcond", "quick", 3)
    assert r["opcodes_config"] < r["opcodes_all"]
    for key in ("compile_all_s", "compile_config_s", "load_s"):
        assert 0 < r[key] < math.inf, key
    assert r["load_s"] < r["compile_config_s"]  # loading an executable is cheaper than compiling it
    assert set(r["per_instruction_us"]) == {"32", "64", "128", "256"}
    assert math.isclose(r["ratio_128_32"], r["per_instruction_us"]["128"] / r["per_instruction_us"]["32"])
