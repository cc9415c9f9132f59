"""search(): a whole campaign end to end, with real training (the NumPy toy tasks and the JAX evaluator)."""

import json

import pytest

from symopt.programs import parse
from symopt.campaign import search
from symopt.evaluation import toy
from symopt.symbolic.equivalence import equivalent

TOY = toy.campaign()


@pytest.mark.slow
def test_search_end_to_end_with_log(tmp_path):
    campaign = search(TOY, seed=1, run_dir=tmp_path)
    s = campaign.stats
    assert s.evaluated == 40 and s.generated > s.children >= s.evaluated - 1 and s.cache_hits == s.children - 39
    assert 1 <= len(campaign.hall_of_fame) <= 3
    validation = [e.validation for e in campaign.hall_of_fame]
    assert validation == sorted(validation, reverse=True)
    for e in campaign.hall_of_fame:
        assert set(e.fitness) == {"small", "large"}
        assert equivalent(e.program, e.simplified) and parse(str(e.simplified)) == e.simplified
    assert campaign.reference.fitness["small"] == campaign.state.start.fitness
    assert campaign.best.fitness >= max(e.fitness["small"] for e in campaign.hall_of_fame)
    lines = [json.loads(line) for line in (tmp_path / "evaluations.jsonl").read_text().splitlines()]
    search_lines = [x for x in lines if x["stage"] == "small"]
    assert len(search_lines) == 40 and search_lines[0]["id"] == 0 and search_lines[0]["parent"] is None
    base = {"id", "parent", "program", "fitness", "stage"}
    assert set(search_lines[0]) == base and all(set(x) == base | {"proposed"} for x in search_lines[1:])
    assert all(set(x) == base for x in lines if x["stage"] != "small")
    # serial, batch 1: each training is accepted right after it is proposed
    assert [x["proposed"] for x in search_lines[1:]] == list(range(2, 41))
    assert {x["stage"] for x in lines} == {"small", "large", "validation"}
    assert len([x for x in lines if x["stage"] == "large"]) == 6
    parse(search_lines[-1]["program"])
    assert "trained" in campaign.summary()
    # lineage: every child that entered a population, in order; the parents are earlier children
    lineage = [json.loads(line) for line in (tmp_path / "lineage.jsonl").read_text().splitlines()]
    assert [e["id"] for e in lineage] == [e.id for e in campaign.history]
    assert sum(not e["cached"] for e in lineage) == 40 and sum(e["cached"] for e in lineage) == s.cache_hits
    known = set()
    for e in lineage:
        assert e["parent"] is None or e["parent"] in known
        known.add(e["id"])
    # snapshots: one every budget/20 trainings; the last is the final state, every member's program included
    snapshots = sorted((tmp_path / "populations").glob("*.json"))
    assert [int(p.stem) for p in snapshots] == list(range(2, 41, 2))
    last = json.loads(snapshots[-1].read_text())
    state = campaign.state
    assert last["islands"] == [[[ind.id, ind.fitness] for ind in pop] for pop in state.islands]
    assert last["best"] == {"id": state.best.id, "fitness": state.best.fitness} and last["in_flight"] == []
    assert {int(k): v for k, v in last["programs"].items()} == {ind.id: str(ind.program) for pop in state.islands
                                                                  for ind in pop}
    saved = json.loads((tmp_path / "hall_of_fame.json").read_text())
    assert [e["id"] for e in saved["hall_of_fame"]] == [e.id for e in campaign.hall_of_fame]


@pytest.mark.slow
def test_search_is_reproducible_and_overrides():
    a = search(TOY, seed=2, budget=15)
    b = search(TOY, seed=2, budget=15)
    assert [e.program for e in a.history] == [e.program for e in b.history]
    assert a.config.campaign.budget == 15 and a.stats.evaluated == 15


def test_search_rejects_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'ray'"):
        search(TOY, backend="ray")


@pytest.mark.slow
def test_search_with_the_jax_evaluator(tmp_path):
    config = {"space": {"functions": ["+", "-", "*", "/", "sqrt", "square", "sign", "interpolate"],
                        "max_length": 8},
              "campaign": {"population": 6, "tournament": 2, "budget": 13, "batch": 4, "hall_of_fame": 2,
                           "stages": [{"tasks": ["quadratic_illcond"], "steps": 50}]}}
    campaign = search(config, seed=0, run_dir=tmp_path)
    s = campaign.stats
    assert s.evaluated == 13 and s.children == s.cache_hits + 12
    start = campaign.state.records[0]
    assert start.result.runs[0].task == "quadratic_illcond" and start.result.runs[0].steps == 50
    assert abs(start.fitness) < 5  # hero's AdamW (no bias correction) is near optax's AdamW
    assert campaign.hall_of_fame and campaign.hall_of_fame[0].fitness["stage1"] >= start.fitness
    logged = [json.loads(line) for line in (tmp_path / "evaluations.jsonl").read_text().splitlines()]
    assert [x["fitness"] for x in logged] == [r.fitness for r in campaign.state.records.values()]


def test_cli_search(tmp_path, capsys):
    from symopt.cli import main

    config = tmp_path / "tiny.toml"
    config.write_text('name = "tiny"\n[space]\nfunctions = ["+", "*", "sign", "interpolate"]\n'
                      '[campaign]\nstart = "sgd"\npopulation = 4\ntournament = 2\nbudget = 6\nhall_of_fame = 2\n'
                      '[[campaign.stages]]\ntasks = ["toy_quadratic"]\n')
    assert main(["search", str(config), "--serial", "--run-dir", str(tmp_path)]) == 0
    assert "campaign tiny: 6 trained" in capsys.readouterr().out
    saved = json.loads((tmp_path / "hall_of_fame.json").read_text())
    assert len(saved["hall_of_fame"]) == 2 and saved["stats"]["evaluated"] == 6
    config.write_text("[campaign]\npopulaton = 4\n")
    assert main(["search", str(config), "--serial"]) == 1
    assert "tiny.toml: campaign.populaton: unknown key (did you mean 'population'?)" in capsys.readouterr().err
    assert main(["search", str(config), "--serial", "--workers", "2"]) == 1
    assert "--serial trains in this process; leave out --workers, --address and --insecure" in capsys.readouterr().err
    assert main(["search", str(config), "--workers", "0"]) == 1
    assert "--workers must be at least 1, got 0" in capsys.readouterr().err


def test_the_phases_of_a_campaign_run_alone_give_what_search_gives():
    """search() is CampaignRun's phases in turn: open, evolve (the search stage), check (the funnel on the
    leaders so far), finish (the last check, the reference, the simplified hall of fame)."""
    import time

    from symopt.campaign.campaign import CampaignRun, serial_backend
    from symopt.config.space import load
    from symopt.storage.run_log import Lineage, Log, config_json

    cfg = load(TOY).replace_campaign(seed=1)
    run = CampaignRun(cfg)
    assert run.names == ["small", "large"] and run.entries == {} and run.curve == []
    run.open(serial_backend, Log(None, config_json(cfg), False), Lineage(None, cfg.campaign.budget))
    state = run.evolve()
    assert state.stats.evaluated == 40 and run.curve == []  # toy.campaign() makes no check during the search
    hall = run.check(state)
    assert run.curve[-1].trained == 40 and {e.id for e in hall} <= set(run.entries)
    campaign = run.finish(state, time.perf_counter())
    whole = search(TOY, seed=1)
    assert [(e.id, e.fitness, e.validation) for e in campaign.hall_of_fame] == \
        [(e.id, e.fitness, e.validation) for e in whole.hall_of_fame]
    assert len(run.curve) == 2  # finish checks once more, on the same leaders: the same point
    assert run.curve[0] == run.curve[1]


def test_the_reference_rides_along_in_the_last_checks_calls():
    """At the end the start program trains in the funnel's own calls of each later stage and of validation (the
    workers share it out with the entries), and scores there what it scores trained alone."""
    from symopt.campaign.campaign import serial_backend
    from symopt.config.space import load
    from symopt.config.start import start_program

    calls = []

    def counting(tasks, *args):
        evaluate = serial_backend(tasks, *args)

        def evaluate_fn(programs):
            calls.append((tuple(tasks), len(programs)))
            return evaluate(programs)
        return evaluate_fn

    campaign = search(TOY, seed=1, backend=counting)
    later = [c for c in calls if c[0] != ("toy_quadratic",)]
    assert [t for t, _ in later] == [("toy_quadratic_large",), ("toy_quadratic_noisy",)]  # one call each
    assert all(n >= 2 for _, n in later)  # the entries and the reference together
    cfg = load(TOY)
    start = start_program(cfg.campaign.start, cfg.space)
    large = serial_backend(["toy_quadratic_large"], cfg.campaign.seeds, None)([start])[0]
    noisy = serial_backend(["toy_quadratic_noisy"], cfg.campaign.seeds, None)([start])[0]
    assert campaign.reference.fitness["large"] == large.fitness
    assert campaign.reference.validation == noisy.fitness
