"""Regularised evolution and funnel selection, with the NumPy toy evaluation (a real training loop)."""

import functools

import numpy as np
import pytest

from symopt.programs import parse
from symopt.evolve import evolution
from symopt.campaign import funnel
from symopt.evaluation import toy
from symopt.config.space import SearchSpace
from symopt.config.start import conform

SPACE = SearchSpace(functions=("+", "-", "*", "/", "sqrt", "square", "sign", "interpolate", "abs"), max_length=10)
SGD = conform(parse("def sgd(g):\n    return g\n"), SPACE)
EVALUATE = functools.partial(toy.evaluate, tasks=["toy_quadratic"], seeds=(0,))


def campaign(seed, budget=40, **params):
    p = evolution.Params(SPACE, **{"population": 10, "tournament": 3, **params})
    state = evolution.init(SGD, p, EVALUATE, seed)
    return evolution.run(state, p, EVALUATE, budget)


def history(state):
    return [(e.id, e.parent, e.program, e.fitness, e.cached, e.island) for e in state.history]


@pytest.mark.slow
def test_same_seed_same_campaign():
    a, b = campaign(5), campaign(5)
    assert history(a) == history(b)
    assert a.stats == b.stats
    assert history(campaign(6)) != history(a)


def test_budget_counts_and_improvement():
    state = campaign(0, budget=60)
    s = state.stats
    assert s.evaluated == 60 and len(state.records) == 60
    assert s.children == s.cache_hits + s.evaluated - 1  # the start program was trained, not generated
    assert s.generated >= s.invalid + s.unchanged + s.children
    assert state.best.fitness > state.start.fitness  # plain SGD is far behind AdamW on the toy quadratic
    assert all(len(pop) == 10 for pop in state.islands)
    # cache hits carry the fitness of the program they match, and were never trained
    trained = {e.id: e.fitness for e in state.history if not e.cached}
    for e in state.history:
        if e.cached:
            assert e.fitness == trained[e.cached_from] and e.id not in state.records


def test_oldest_dies_and_tournament_takes_the_best():
    state = campaign(1, budget=15)
    ids = [ind.id for ind in state.islands[0]]
    assert ids == [e.id for e in state.history][-10:]  # the newest ten, oldest first: the oldest died
    pop = [evolution.Individual(i, None, float(i), None) for i in range(10)]
    rng = np.random.default_rng(0)
    assert evolution.tournament(pop, 10, rng).id == 9
    picks = [evolution.tournament(pop, 2, rng).id for _ in range(300)]
    assert min(picks) >= 1 and np.mean(picks) > 5


def test_trains_dead_code_free_programs():
    seen = []

    def evaluate(programs):
        seen.extend(programs)
        return EVALUATE(programs)

    p = evolution.Params(SPACE, population=5, tournament=2)
    evolution.run(evolution.init(SGD, p, evaluate, 0), p, evaluate, 20)
    from symopt.programs.liveness import dead_statements
    assert len(seen) == 20 and all(dead_statements(q) == 0 for q in seen)


def test_islands_migrate_and_restart():
    state = campaign(2, budget=40, islands=2, migration_interval=10, migrants=2, restart_patience=6,
                     restart_from="alternate")
    assert state.migrations == 4
    assert state.restarts and {r[2] for r in state.restarts} <= {"start", "best"}
    assert state.restarts[0][2] == "start" and (len(state.restarts) < 2 or state.restarts[1][2] == "best")
    ids = [{ind.id for ind in pop} for pop in state.islands]
    assert all(len(pop) == 10 for pop in state.islands)
    origin = {e.id: e.island for e in state.history}
    assert any(origin[i] != k for k, pop in enumerate(ids) for i in pop if i != 0)  # a migrant lives abroad


def test_batches_are_deterministic_and_respect_the_budget():
    a = campaign(3, budget=30, batch=4)
    b = campaign(3, budget=30, batch=4)
    assert history(a) == history(b) and a.stats.evaluated == 30


def test_funnel_promotes_leaders_and_ranks_on_validation():
    programs = [parse(f"def f(g):\n    return g * {i}.0\n") for i in range(1, 9)]
    entries = [funnel.Entry(i, p, {"small": s}) for i, (p, s) in enumerate(zip(programs, [5, 1, 7, 7, 3, 8, 2, 6]))]
    entries[3].fitness["small"] = 6.5
    calls = []

    def scale(program):  # a stage score: the program's constant
        return program.returns[0].args[1].value

    def stage2(ps):
        calls.append(("big", [scale(p) for p in ps]))
        return [10 - scale(p) for p in ps]  # the big stage prefers small constants

    def validate(ps):
        calls.append(("validation", [scale(p) for p in ps]))
        return [scale(p) for p in ps]  # validation prefers large ones

    hall, reached = funnel.run(entries, [("big", 4, stage2)], keep=2, validate=validate, first="small")
    # stage 1 leaders: fitness 8 (id 5), 7 (id 2), 6.5 (id 3), 6 (id 7)
    assert [e.id for e in reached["big"]] == [5, 2, 3, 7]
    assert calls[0] == ("big", [6.0, 3.0, 4.0, 8.0])
    # big stage: 10 - c: ids 2 (7), 3 (6) lead; validation ranks id 3 (c=4) above id 2 (c=3)
    assert calls[1] == ("validation", [3.0, 4.0])
    assert [e.id for e in hall] == [3, 2]
    assert hall[0].fitness == {"small": 6.5, "big": 6.0} and hall[0].validation == 4.0
    assert len(funnel.leaders(entries, "big", 10)) == 4  # only entries scored on a stage lead there


def test_funnel_moves_one_of_each_trained_behaviour():
    """Equal fitness on a stage means the same training there: only the oldest of such twins moves on."""
    programs = [parse(f"def f(g):\n    return g * {i}.0\n") for i in range(1, 7)]
    entries = [funnel.Entry(i, p, {"small": s}) for i, (p, s) in enumerate(zip(programs, [0.7, 0.9, 0.7, 0.9, 0.5, 0.1]))]
    assert [e.id for e in funnel.leaders(entries, "small", 3)] == [1, 0, 4]
    hall, reached = funnel.run(entries, [("big", 4, lambda ps: [1.0] * len(ps))], keep=3, first="small")
    assert [e.id for e in reached["big"]] == [1, 0, 4, 5]
    assert [e.id for e in hall] == [0]  # all four trained alike on the big stage: the oldest stays


def test_fitness_within_same_fitness_is_one_behaviour_and_the_best_of_it_moves_on():
    """Clones that differ by float rounding (an added 1e-10, say) score a hair apart: one place for them all."""
    programs = [parse(f"def f(g):\n    return g * {i}.0\n") for i in range(1, 6)]
    gap = funnel.SAME_FITNESS
    scores = [0.037, 0.037 + 0.3 * gap, 0.037 - 0.6 * gap, 0.037 - 2.5 * gap, 0.02]
    entries = [funnel.Entry(i, p, {"rescore": s}) for i, (p, s) in enumerate(zip(programs, scores))]
    assert [e.id for e in funnel.leaders(entries, "rescore", 3)] == [1, 3, 4]


def test_a_candidate_promoted_at_an_earlier_check_stays_in_the_running():
    programs = [parse(f"def f(g):\n    return g * {i}.0\n") for i in range(1, 5)]
    big = {1.0: 0.9, 2.0: 0.2, 3.0: 0.3, 4.0: 0.1}  # the big stage's fitness of each program (by its constant)
    stage = [("big", 1, lambda ps: [big[p.returns[0].args[1].value] for p in ps])]
    entries = [funnel.Entry(0, programs[0], {"small": 0.5}), funnel.Entry(1, programs[1], {"small": 0.4})]
    hall, _ = funnel.run(entries, stage, keep=1, first="small")
    assert [e.id for e in hall] == [0]
    # a later check: the search found two better on the small stage; only one of them is promoted now
    entries += [funnel.Entry(2, programs[2], {"small": 0.9}), funnel.Entry(3, programs[3], {"small": 0.8})]
    hall, reached = funnel.run(entries, stage, keep=1, first="small")
    assert [e.id for e in reached["big"]] == [2, 0]  # the new leader, and the one promoted before
    assert [e.id for e in hall] == [0] and hall[0].fitness["big"] == 0.9  # it still leads the big stage


def test_funnel_moves_on_only_candidates_that_beat_adamw_on_a_later_stage():
    from symopt.programs import parse

    p = parse("def f(g):\n    return g\n")
    entries = [funnel.Entry(i, p, {"s1": 1.0 - 0.1 * i}) for i in range(4)]
    stage2 = {0: -0.2, 1: 0.3, 2: 0.1, 3: -0.1}  # fitness against AdamW on the second stage
    stages = [("s2", 4, lambda programs: [stage2[i] for i in range(len(programs))]),
              ("s3", 4, lambda programs: [0.5] * len(programs))]
    hall, reached = funnel.run(entries, stages, keep=4, first="s1")
    assert [e.id for e in reached["s2"]] == [0, 1, 2, 3] and [e.id for e in reached["s3"]] == [1, 2]
    losing = [("s2", 4, lambda programs: [-0.5] * len(programs))]  # none beats AdamW: the best are kept
    hall, _ = funnel.run([funnel.Entry(i, p, {"s1": 1.0 - 0.1 * i}) for i in range(4)], losing, keep=2, first="s1")
    assert [e.id for e in hall] == [0]  # one per trained behaviour (equal fitness), the oldest
