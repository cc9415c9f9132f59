"""The study's parts that need no campaign (Spearman, the panel, the control configuration), and part (e) on toy tasks."""

import math

import pytest

import json

import numpy as np

from symopt.cli.study import (FRESH_SEEDS, check_fresh, control, headroom_panel, paired, panel, part_c, part_e, part_h, part_t,
                              spearman, with_factors)
from symopt.evaluation import Grid
from symopt.evaluation.fitness import fitness_of
from symopt.programs import parse
from symopt.campaign.campaign import BACKENDS
from symopt.storage.run_dir import read_hall_of_fame
from symopt.programs import baselines, variants
from symopt.evaluation import toy
from symopt.study.predictors import correlations, sample
from symopt.config.space import load


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert spearman([1, 1, 2], [5, 5, 6]) == pytest.approx(1.0)  # ties share their mean rank
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_paired_difference_and_its_standard_error():
    mean, se = paired([0.3, 0.1, 0.2], [0.1, 0.0, 0.0])  # differences 0.2, 0.1, 0.2
    assert mean == pytest.approx(0.5 / 3)
    assert se == pytest.approx(math.sqrt(((0.2 - 0.5 / 3) ** 2 * 2 + (0.1 - 0.5 / 3) ** 2) / 2 / 3))
    assert paired([1.0], [0.5])[0] == 0.5 and math.isnan(paired([1.0], [0.5])[1])


def test_panel_holds_every_baseline_program_at_three_factors_and_mutants():
    config = load("quick")
    items = panel(config, mutants=4)
    programs = [n for n in baselines.names() if baselines.is_program(n)]
    assert len(items) == 3 * len(programs) + 4 and len({label for label, _ in items}) == len(items)
    assert panel(config, mutants=4)[-1][1] == items[-1][1]  # a fixed seed: the same panel every time


def test_control_mutates_constants_only():
    config = load("quick")
    m = control(config).space.mutation
    assert config.space.mutation.accumulate > 0  # every structural operator is off in the control, this one too
    assert (m.insert, m.delete, m.modify, m.accumulate, m.constant) == (0.0, 0.0, 0.0, 0.0, 1.0)
    assert control(config).campaign == config.campaign


def test_with_factors_sets_every_stage_and_validation_grid():
    config = with_factors(load("quick"), (0.1, 1 / 3, 1, 3))
    assert all(s.grid.factors == (0.1, 1 / 3, 1.0, 3.0) for s in config.campaign.stages)
    assert config.campaign.stages[0].grid.gates == load("quick").campaign.stages[0].grid.gates  # the rest kept


def test_part_e_reports_the_leader_and_the_lion_family_and_replays_a_finished_run(tmp_path):
    config = toy.campaign(budget=12)
    config["campaign"]["start"] = "lion"  # the start is of the family: it is trained, and on every stage
    out: dict = {}
    lines = part_e(load(config), 0, None, tmp_path, out)
    e = out["e"]
    assert e["budget"] == 12 and e["seconds"] > 0 and len(e["hall_of_fame"]) >= 1
    assert e["lion_family_trained"] >= 1 and e["best_lion_family"] is not None  # the start at least
    assert e["lion_family_in_hall"] == [h["rank"] for h in e["hall_of_fame"] if h["lion_family"]]
    assert lines[0].startswith("### (e) toy, seed 0, budget 12") and "| start |" in "\n".join(lines)
    again: dict = {}
    part_e(load(config), 0, None, tmp_path, again)  # replayed from the log: the same figures, the first run's time
    assert again["e"] == e


def test_part_c_scores_both_leaders_again_on_fresh_seeds(tmp_path):
    config = load(toy.campaign(budget=12))
    out: dict = {}
    lines = part_c(config, [0, 1], None, tmp_path, out)
    c, rows = out["c"], out["c"]["runs"]
    assert len(rows) == 2 and c["fresh_seeds"] == list(FRESH_SEEDS)
    fresh = BACKENDS["serial"](config.campaign.validation, FRESH_SEEDS, None, Grid(config.campaign.stages[0].lr_factors))
    for r in rows:  # the fresh score is the validation tasks' fitness on FRESH_SEEDS, not the hall of fame's seeds
        found = read_hall_of_fame(tmp_path / "search" / f"seed{r['seed']}").entries[0].program
        assert r["leader_fresh"] == pytest.approx(fitness_of(fresh([found])[0]), abs=1e-9)
        assert math.isfinite(r["control_fresh"]) and math.isfinite(r["start_fresh"])
    diffs = [r["leader_fresh"] - r["control_fresh"] for r in rows]
    assert c["over_control_fresh"]["mean"] == pytest.approx(sum(diffs) / 2)
    assert c["beats_control_fresh"] == sum(d > 0 for d in diffs)
    assert "| seed | leader | start | control leader | leader, fresh |" in "\n".join(lines)
    for kind, leader in (("search", "leader_fresh"), ("control", "control_fresh")):  # every entry, each seed
        hall = c["halls"][kind]
        assert [h["rank"] for h in hall if h["seed"] == 0][0] == 1 and {h["seed"] for h in hall} == {0, 1}
        assert [h["fresh"] for h in hall if h["rank"] == 1] == [r[leader] for r in rows]
        assert c["hall_summary"][kind]["mean_fresh"] == pytest.approx(sum(h["fresh"] for h in hall) / len(hall))
        leaders = [h for h in hall if h["rank"] == 1]
        assert c["hall_summary"][kind]["leader_optimism"] == pytest.approx(
            sum(h["validation"] - h["fresh"] for h in leaders) / len(leaders))


def _log(path, records):
    path.mkdir(parents=True)
    (path / "evaluations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_sample_takes_the_best_distinct_programs_above_the_start_and_a_seeded_spread(tmp_path):
    def sgd(lr):
        return f"def sgd(w, g, lr):\n    update = {lr} * lr * g\n    return update\n"

    fitness = [0.0, 0.5, None, 0.9, -0.2, 0.3, 0.7, 0.1, 0.2, 0.4]
    records = [{"id": i, "parent": None, "program": sgd(i + 1), "fitness": f, "stage": "s"}
               for i, f in enumerate(fitness)]
    records += [{"id": 10, "parent": 3, "program": sgd(4), "fitness": 0.95, "stage": "s"},  # program 3 again
                {"id": 11, "parent": 3, "program": sgd(12), "fitness": 2.0, "stage": "large"}]  # another stage
    _log(tmp_path / "search" / "seed0", records)
    picked = sample(tmp_path / "search" / "seed0", "s", top=2, spread=3, seed=0)
    assert [c.id for c in picked[:2]] == [3, 6]  # the best first; id 10 repeats id 3's program, the first kept
    rest = {c.id for c in picked[2:]}
    assert len(rest) == 3 and rest <= {1, 5, 7, 8, 9}  # above 0 (the start), not None, not the other stage
    assert {c.campaign for c in picked} == {"search/seed0"}
    assert sample(tmp_path / "search" / "seed0", "s", top=2, spread=3, seed=0) == picked  # seeded
    assert len(sample(tmp_path / "search" / "seed0", "s", top=4, spread=10)) == 7  # every one above 0, once


def test_correlations_pool_the_candidates_and_average_within_campaigns():
    from symopt.study.predictors import Candidate
    cands = [Candidate(k, i, "", 0.0) for k in ("a", "b") for i in range(4)]
    target = [1, 2, 3, 4, 10, 20, 30, 40]
    table = correlations(cands, {"up": [1, 2, 3, 4, 1, 2, 3, 4], "mixed": [1, 2, 3, 4, 4, 3, 2, 1]}, target)
    assert table["up"]["within"] == pytest.approx(1.0) and table["mixed"]["within"] == pytest.approx(0.0)
    assert table["up"]["pooled"] == pytest.approx(spearman([1, 2, 3, 4, 1, 2, 3, 4], target))


def test_part_t_scores_part_cs_candidates_task_by_task_against_fresh_validation(tmp_path):
    config = toy.campaign(budget=30)
    config["campaign"]["start"] = "adamw"  # the toy tasks' reference: mutants above it exist
    config["space"]["arguments"] = ["w", "g", "m", "v", "lr", "t"]
    config = load(config)
    with pytest.raises(SystemExit, match="run --parts c"):
        part_t(config, tmp_path, {})
    part_c(config, [0, 1], None, tmp_path, {})
    out: dict = {}
    lines = part_t(config, tmp_path, out, tasks=("toy_quadratic", "toy_quadratic_large"), per_campaign=(2, 2))
    t = out["t"]
    assert t["campaigns"] == ["search/seed0", "search/seed1", "control/seed0", "control/seed1"]
    assert 0 < t["candidates"] == len(t["rows"]) <= 16
    fresh = BACKENDS["serial"](config.campaign.validation, FRESH_SEEDS, None, Grid())
    row = t["rows"][0]
    assert row["validation"] == pytest.approx(fitness_of(fresh([parse(row["program"])])[0]), abs=1e-9)
    for r in t["rows"]:  # the stage is toy_quadratic on the campaign's seeds: re-scored, its logged fitness again
        assert r["scores"]["toy_quadratic"] == pytest.approx(r["fitness"], abs=1e-6)
    table = t["spearman"]
    assert set(table) == {"small (logged)", "toy_quadratic", "toy_quadratic_large"}
    assert table["toy_quadratic"]["pooled"] == pytest.approx(table["small (logged)"]["pooled"])
    assert lines[0].startswith(f"### (t) which tasks rank validation: {t['candidates']} candidates of 4 campaigns")


def test_headroom_panel_sets_each_baselines_momentum_decay_and_scales_its_rate():
    items = headroom_panel(decays=(0.9, 0.35), scales=(1.0, 0.1))
    lion = [x for x in items if x["baseline"] == "lion"]
    assert [(x["decay"], x["lr_scale"]) for x in lion] == [(0.9, 1.0), (0.9, 0.1), (0.35, 1.0), (0.35, 0.1)]
    assert "b1 = 0.35" in str(lion[2]["program"]) and "b1 = 0.9" not in str(lion[2]["program"])
    assert "0.1" in str(lion[3]["program"]).splitlines()[-1]  # no lr argument: the update itself is scaled
    sgd = [x for x in items if x["baseline"] == "sgd"]  # no decay to set: the program as it is, at each scale
    assert [(x["decay"], x["lr_scale"]) for x in sgd] == [(None, 1.0), (None, 0.1)]
    assert {x["baseline"] for x in items if x["family"] == "baseline"} == {
        n for n in baselines.names() if baselines.is_program(n)}
    cautious = [x for x in items if x["baseline"] == "cautious"]  # a variant: each decay, at x1 only
    assert [(x["family"], x["decay"], x["lr_scale"]) for x in cautious] == [("variant", 0.9, 1.0), ("variant", 0.35, 1.0)]
    assert {x["baseline"] for x in items if x["family"] == "variant"} == set(variants.names())
    with pytest.raises(KeyError, match="assigns no constant to 'b1'"):
        baselines.get("sgd").with_constant("b1", 0.5)
    muon = [x for x in items if x["baseline"] == "muon"]  # its beta, and the larger rates it wants
    assert [(x["decay"], x["lr_scale"]) for x in muon][:4] == [(0.9, 1.0), (0.9, 3.0), (0.9, 10.0), (0.9, 30.0)]
    assert "beta = 0.35" in str(muon[-1]["program"])
    only = headroom_panel(decays=(0.9,), scales=(1.0,), rules=["muon", "adafactor"])
    assert {x["baseline"] for x in only} == {"adamw", "muon", "adafactor"}


def test_part_h_ranks_each_rule_at_its_best_decay_against_adamws_best_and_measures_the_judges_noise(tmp_path):
    config = load(toy.campaign(budget=12))
    out: dict = {"c": {"runs": [{"leader_fresh": 0.1, "control_fresh": 0.3}, {"leader_fresh": 0.2, "control_fresh": 0.1}]}}
    seeds = (310, 311)
    lines = part_h(config, out, decays=(0.9, 0.5), scales=(1.0,), fresh_seeds=seeds)
    h = out["h"]
    assert h["fresh_seeds"] == [310, 311] and len(h["rows"]) == len(headroom_panel((0.9, 0.5), (1.0,)))
    for name, best in h["best"].items():
        assert best["fresh"] == max(r["fresh"] for r in h["rows"] if r["baseline"] == name)
    fresh = BACKENDS["serial"](config.campaign.validation, seeds, None, Grid(config.campaign.stages[0].lr_factors))
    adam = next(r for r in h["rows"] if r["baseline"] == "adam" and r["decay"] == 0.5)
    assert adam["fresh"] == pytest.approx(fitness_of(fresh([baselines.get("adam").with_constant("b1", 0.5)])[0]), abs=1e-9)
    (task,) = config.campaign.validation  # one validation task: its score is the fitness
    assert all(r["tasks"][task] == pytest.approx(r["fresh"]) for r in h["rows"])
    top = max((r for r in h["rows"] if r["baseline"] != "adamw"), key=lambda r: r["fresh"])
    assert h["per_task"][task]["other"] == top["fresh"] and h["per_task"][task]["other_rule"] == top["baseline"]
    assert h["per_task"][task]["adamw"] == h["best"]["adamw"]["fresh"]
    nudged = h["adamw_nudged"]  # the grid steps by 3: nudges of 3^(k/4), and the best itself
    assert [float(x) for x in nudged] == pytest.approx([3 ** -0.5, 3 ** -0.25, 1.0, 3 ** 0.25, 3 ** 0.5], abs=1e-4)
    assert nudged["1.0000"] == h["best"]["adamw"]["fresh"]
    assert h["judge_sd"] == pytest.approx(float(np.std(list(nudged.values()), ddof=1)))
    assert h["part_c_leaders"] == pytest.approx({"search": 0.15, "control": 0.2})
    assert lines[0].startswith("### (h) headroom") and "| adamw | baseline |" in "\n".join(lines)
    assert "| laprop | variant |" in "\n".join(lines)


def test_fresh_seeds_that_a_stage_trains_are_refused_with_the_clash_named():
    config = load("quick")  # stages train 0, 1 (search, validation) and 100, 101 (rescore)
    check_fresh(config, FRESH_SEEDS)
    with pytest.raises(SystemExit, match=r"--fresh-seeds \[1, 100\] are trained by quick's stages"):
        check_fresh(config, (1, 100, 300))
