"""The steady-state loop: propose/accept, batches, out-of-order results and replay (toy tasks, real training)."""

import functools

import pytest
from tests.doubles import Shuffled

from symopt.evaluation.fitness import fitness_of
from symopt.programs import parse
from symopt.evolve import evolution, steady
from symopt.evaluation import toy
from symopt.config.space import SearchSpace
from symopt.config.start import conform

SPACE = SearchSpace(functions=("+", "-", "*", "/", "sqrt", "square", "sign", "interpolate", "abs"), max_length=10)
SGD = conform(parse("def sgd(g):\n    return g\n"), SPACE)
EVALUATE = functools.partial(toy.evaluate, tasks=["toy_quadratic"], seeds=(0,))
PARAMS = evolution.Params(SPACE, population=10, tournament=3, batch=3)
BUDGET = 45


def shuffled(width: int, seed: int = 0) -> Shuffled:
    """Toy training finishing its in-flight candidates in a seeded random order (as a cluster would)."""
    return Shuffled(["toy_quadratic"], width=width, seed=seed)


def history(state):
    return [(e.id, e.parent, e.program, e.fitness, e.cached, e.island) for e in state.history]


def fresh(seed=0):
    return evolution.init(SGD, PARAMS, EVALUATE, seed)


@pytest.mark.slow
def test_batches_give_the_batch_synchronous_campaign():
    a = evolution.run(fresh(), PARAMS, EVALUATE, BUDGET)
    b = steady.evolve(fresh(), PARAMS, steady.Batches(EVALUATE, PARAMS.batch), BUDGET, 100 * BUDGET)
    assert history(a) == history(b) and a.stats == b.stats


def test_out_of_order_results_spend_the_budget_once():
    evaluator = shuffled(4)
    trained = []
    state = steady.evolve(fresh(), PARAMS, evaluator, BUDGET, 100 * BUDGET,
                          on_trained=lambda p, r, n: trained.append((p.id, n)))
    assert state.stats.evaluated == BUDGET and not state.inflight and evaluator.most == 4
    ids = [i for i, _ in trained]
    assert len(ids) == len(set(ids)) == BUDGET - 1  # the start program was trained by init
    assert ids != sorted(ids)  # results really came back out of order
    counts = [n for _, n in trained]
    assert counts == sorted(counts) and counts[-1] == BUDGET  # proposals never exceed the budget
    assert all(n - k - 1 <= 4 for k, n in enumerate(counts, 1))  # at most 4 in flight at an accept
    trained_events = {e.id for e in state.history if not e.cached}
    assert trained_events == set(ids) | {0}


def test_results_that_arrived_together_are_all_logged_before_any_is_accepted():
    events = []
    steady.evolve(fresh(), PARAMS, steady.Batches(EVALUATE, 3), BUDGET, 100 * BUDGET,
                  on_trained=lambda p, r, n: events.append(("trained", p.id)),
                  on_arrived=lambda: events.append(("durable",)),
                  on_accept=lambda state: events.append(("accepted",)))
    groups = "".join("t" if e[0] == "trained" else "d" if e[0] == "durable" else "a" for e in events)
    assert groups == "tttdaaa" * ((BUDGET - 1) // 3) + "t" * ((BUDGET - 1) % 3) + "d" + "a" * ((BUDGET - 1) % 3)
    # without poll (the cluster double): one result at a time, each made durable before it is used
    events.clear()
    steady.evolve(fresh(), PARAMS, shuffled(4), BUDGET, 100 * BUDGET,
                  on_trained=lambda p, r, n: events.append(("trained", p.id)),
                  on_arrived=lambda: events.append(("durable",)),
                  on_accept=lambda state: events.append(("accepted",)))
    assert "".join(e[0][0] for e in events) == "tda" * (BUDGET - 1)


def _log_of(seed=0, width=4):
    logged = []
    state = steady.evolve(fresh(), PARAMS, shuffled(width, seed), BUDGET, 100 * BUDGET,
                          on_trained=lambda p, r, n: logged.append(
                              steady.Logged(p.id, str(p.child.program), fitness_of(r), n)))
    return state, logged


@pytest.mark.slow
def test_replay_rebuilds_an_out_of_order_campaign_without_training():
    original, logged = _log_of()

    class Nothing:  # everything is in the log: asking it to train is a failure
        capacity = 0

        def submit(self, key, program):
            raise AssertionError("trained a logged candidate")

        def next_result(self):
            raise AssertionError("trained a logged candidate")

    replayed = steady.evolve(fresh(), PARAMS, Nothing(), BUDGET, 100 * BUDGET, replay=logged)
    assert history(replayed) == history(original) and replayed.stats == original.stats


@pytest.mark.slow
def test_replay_of_a_cut_log_trains_the_lost_candidates_first():
    _, logged = _log_of()
    cut = logged[:20]
    in_flight_at_cut = cut[-1].proposed - len(cut) - 1  # proposed when the 20th was accepted, minus those accepted
    evaluator = steady.Batches(EVALUATE, batch=1)
    order = []
    original_submit = evaluator.submit
    evaluator.submit = lambda key, program: (order.append(key), original_submit(key, program))
    state = steady.evolve(fresh(), PARAMS, evaluator, BUDGET, 100 * BUDGET, replay=cut)
    assert state.stats.evaluated == BUDGET
    lost = set(order[:in_flight_at_cut])
    assert len(lost) == in_flight_at_cut and lost.isdisjoint(r.id for r in cut)
    assert max(lost) < min(order[in_flight_at_cut:])  # proposed before the cut, trained before anything new


@pytest.mark.slow
def test_a_foreign_log_is_refused():
    _, logged = _log_of()
    wrong_program = [steady.Logged(logged[0].id, "def f(g):\n    return g\n", 0.0, logged[0].proposed)]
    with pytest.raises(steady.ReplayError, match="log belongs to another run"):
        steady.evolve(fresh(), PARAMS, shuffled(2), BUDGET, 100 * BUDGET, replay=wrong_program)
    with pytest.raises(steady.ReplayError, match="log belongs to another run"):
        steady.evolve(fresh(1), PARAMS, shuffled(2), BUDGET, 100 * BUDGET, replay=logged[:3])  # another seed
    too_many = [steady.Logged(1, "x", 0.0, 10 * BUDGET)]
    with pytest.raises(steady.ReplayError, match="proposes only"):
        steady.evolve(fresh(), PARAMS, shuffled(2), BUDGET, 100 * BUDGET, replay=too_many)


def test_accept_takes_each_proposal_once():
    state = fresh()
    proposal = evolution.propose(state, PARAMS, BUDGET, 100 * BUDGET)
    assert evolution.proposed(state) == 2 and proposal.id in {p.id for p in state.inflight.values()}
    evolution.accept(state, PARAMS, proposal, 0.5)
    assert state.records[proposal.id].fitness == 0.5 and not state.inflight
    with pytest.raises(ValueError, match="not in flight"):
        evolution.accept(state, PARAMS, proposal, 0.5)
