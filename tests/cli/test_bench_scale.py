"""``symopt bench scale --campaign``: the search stage of one campaign on 1 and on N workers of one pool."""

from __future__ import annotations

import json

import pytest

from symopt.evaluation import toy

BUDGET = 24


@pytest.fixture(scope="module")
def measured(ray_session):
    from symopt.cli.bench_scale import measure_campaign
    from symopt.distributed import EvaluatorPool

    config = toy.campaign(budget=BUDGET)
    config["campaign"]["stages"][0]["steps"] = 400  # a few ms per candidate: the pool, not the driver, is busy
    with EvaluatorPool(workers=2) as pool:
        yield measure_campaign(pool, config, seed=3, warmup_budget=8)


@pytest.mark.slow
def test_both_runs_train_the_budget_on_the_search_stage(measured):
    assert measured["budget"] == BUDGET and measured["workers"] == 2 and measured["compile_excluded"]
    for k in (1, 2):
        (run,) = measured[f"workers_{k}"]["runs"]
        assert run["evaluated"] == run["records"] == BUDGET  # the start program counts; cache hits do not
        assert 0 < run["trainings"] < BUDGET and run["seconds"] > 0 and run["trainings_per_s"] > 0
        assert run["cache_hits"] >= 0 and run["worker_s_per_candidate"] > 0 and run["driver_cpu_s_per_training"] > 0


def test_one_worker_uses_slot_0_and_n_workers_use_both(measured):
    assert measured["workers_1"]["runs"][0]["slots"] == {"0": BUDGET}
    slots = measured["workers_2"]["runs"][0]["slots"]
    assert set(slots) == {"0", "1"} and sum(slots.values()) == BUDGET


def test_figures_and_json(measured):
    from symopt.cli.bench_scale import json_safe, report_campaign

    r = json.loads(json.dumps(json_safe(measured), allow_nan=False))
    for key in ("trainings_per_s_1", "trainings_per_s_n", "speedup", "speedup_median", "efficiency",
                "efficiency_median", "target_efficiency", "warmup_s", "warm_s", "other_busy_cores_before",
                "other_busy_cores_after", "load_average_before", "load_average_after"):
        assert key in r, key
    assert r["efficiency"] == pytest.approx(r["speedup"] / 2)
    assert r["speedup"] == pytest.approx(r["trainings_per_s_n"] / r["trainings_per_s_1"])
    r["cluster"] = {"cpus": 2}
    text = report_campaign(r)
    assert "compilation excluded" in text and "speed-up" in text


def test_first_stage_cuts_the_funnel():
    from symopt.cli.bench_scale import first_stage

    cfg = first_stage(toy.campaign(budget=50), budget=30, seed=4, steps=100)
    c = cfg.campaign
    assert len(c.stages) == 1 and c.stages[0].name == "small" and c.stages[0].steps == 100
    assert c.validation == () and c.hall_of_fame == 1 and c.budget == 30 and c.seed == 4
