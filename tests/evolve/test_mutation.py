"""Mutation: valid children that behave differently, deterministic for a seed, constants that re-parse."""

import numpy as np
import pytest

from symopt.programs import parse
from symopt.programs.checker import check
from symopt.programs.program import Call, Const, Var, walk
from symopt.evolve import mutation
from symopt.evolve.dedup import behaviour
from symopt.config.space import Constants, SearchSpace, load
from symopt.config.start import HERO_ADAMW

ADAMW = parse(HERO_ADAMW)
HERO = load("hero").space


def _exprs(program):
    for e in [s.value for s in program.body] + list(program.returns):
        yield from walk(e)


@pytest.mark.parametrize("seed", range(40))
def test_children_are_valid_and_differ(seed):
    rng = np.random.default_rng(seed)
    parent = mutation.Candidate.of(ADAMW)
    out = mutation.mutate(parent, HERO, rng)
    assert out.child is not None
    child = out.child.program
    check(child)
    assert mutation.why_invalid(child, HERO) is None
    assert len(child.body) <= HERO.max_length
    assert parse(str(child)) == child
    assert out.child.behaviour == behaviour(child)
    assert out.child.behaviour.fingerprint != parent.behaviour.fingerprint
    assert out.child.behaviour.changes_weights
    assert out.generated == out.invalid + out.unchanged + 1


def test_mutation_is_deterministic():
    def chain(seed):
        rng = np.random.default_rng(seed)
        p = mutation.Candidate.of(ADAMW)
        texts = []
        for _ in range(15):
            p = mutation.mutate(p, HERO, rng).child
            texts.append(str(p.program))
        return texts

    assert chain(3) == chain(3)
    assert chain(3) != chain(4)


def test_each_operator():
    rng = np.random.default_rng(0)
    inserted = mutation.insert(ADAMW, HERO, rng)
    assert len(inserted.body) == len(ADAMW.body) + 1
    deleted = mutation.delete(ADAMW, HERO, rng)
    assert len(deleted.body) == len(ADAMW.body) - 1
    changed = [mutation.modify(ADAMW, HERO, np.random.default_rng(s)) for s in range(30)]
    assert all(len(p.body) == len(ADAMW.body) for p in changed)
    assert sum(p != ADAMW for p in changed) >= 25
    assert mutation.delete(parse("def f(g):\n    return g\n"), HERO, rng) is None


def test_constant_mutation_scale():
    rng = np.random.default_rng(0)
    space = SearchSpace()
    ratios = [mutation.mutate_constant(Const(0.5), space, rng).value / 0.5 for _ in range(2000)]
    logs = np.log2(ratios)
    assert abs(np.mean(logs)) < 0.1 and abs(np.std(logs) - 1.0) < 0.1  # 2^N(0, 1)
    assert mutation.mutate_constant(Const(1e10), space, np.random.default_rng(1)).value <= 1e10


def test_negative_constants_are_constants_and_reparse():
    space = SearchSpace(functions=("+", "*", "max"), constants=Constants(init="log-uniform", negative=1.0,
                                                                         probability=1.0))
    rng = np.random.default_rng(0)
    program = parse("def f(w, g, m, v, lr):\n    return g * lr, m, v\n")
    for _ in range(20):
        program = mutation.insert(program, space, rng)
    consts = [e for e in _exprs(program) if isinstance(e, Const)]
    assert len(consts) > 20 and all(c.value < 0 for c in consts if c.value != -1.0)
    assert not any(isinstance(e, Call) and e.fn == "neg" for e in _exprs(program))
    assert parse(str(program)) == program


def test_rejects_updates_that_cannot_change_the_weights():
    for text in ["update = lr * 0.5", "update = (g - g) * lr", "update = m * lr",
                 "x1 = g\n    update = lr + 0.0 * m"]:
        program = parse(f"def f(w, g, m, v, lr):\n    {text}\n    return update, m, v\n")
        assert (mutation.why_invalid(program, HERO) is not None
                or not behaviour(program).changes_weights), text
    # momentum reads g through the state slot m, one step later: valid
    momentum = parse("def f(w, g, m, v, lr):\n    update = m * lr\n    m = m + g\n    return update, m, v\n")
    assert mutation.why_invalid(momentum, HERO) is None and behaviour(momentum).changes_weights


def test_gives_up_after_max_tries():
    # With get_pi() alone, 'return g' can only gain dead code or lose its gradient: no valid, different child.
    space = SearchSpace(functions=("get_pi",), max_length=1)
    program = parse("def f(w, g, m, v, lr):\n    return g, m, v\n")
    out = mutation.mutate(program, space, np.random.default_rng(0))
    assert out.child is None and out.generated == space.mutation.max_tries


def _shape(program):
    """The program with every constant replaced by 0: what a constants-only mutation keeps."""
    import dataclasses

    from symopt.programs.program import Assign

    def zero(e):
        if isinstance(e, Const):
            return Const(0.0)
        if isinstance(e, Call):
            return Call(e.fn, tuple(zero(a) for a in e.args))
        return e

    return dataclasses.replace(program, body=tuple(Assign(s.target, zero(s.value)) for s in program.body))


def test_constants_only_control_changes_constants_and_nothing_else():

    from symopt.config.start import start_program

    quick = load("quick")
    from symopt.cli.study import control

    space = control(quick).space
    start = start_program("adamw", space)
    rng = np.random.default_rng(0)
    changed = 0
    for _ in range(20):
        child = mutation.mutate(start, space, rng).child
        assert child is not None and _shape(child.program) == _shape(start)
        changed += child.program != start
    assert changed == 20


def _accumulating(space):
    import dataclasses

    weights = dataclasses.replace(space.mutation, insert=0.0, delete=0.0, modify=0.0, accumulate=1.0)
    return dataclasses.replace(space, mutation=weights)


def test_accumulate_writes_a_running_average_read_in_place_of_the_name():
    from symopt.programs.execute import run
    from symopt.programs.spaces import FlatSpace
    from symopt.config.space import start_program

    space = _accumulating(load("quick").space)
    sgd = start_program("sgd", space)  # update = g * lr
    children = [mutation.accumulate(sgd, space, np.random.default_rng(s)) for s in range(40)]
    for child in children:
        check(child)
        assert parse(str(child)) == child and len(child.body) == len(sgd.body) + 1
        (average,) = [s for s in child.body if isinstance(s.value, Call) and s.value.fn == "interpolate"]
        slot, (old, name, rate) = average.target, average.value.args
        assert slot in sgd.state_args and old.name == slot and name.name in ("g", "lr", "update")
        assert 0.01 <= rate.value <= 1.0
    # one of them is momentum: m = (1 - c) m + c g, and the update reads m where it read g
    ema = next(c for c in children if c.body[0].target == "m" and c.body[0].value.fn == "interpolate"
               and c.body[0].value.args[1] == Var("g"))
    c = ema.body[0].value.args[2].value
    g1, g2, lr = np.array([1.0, -2.0]), np.array([3.0, 0.5]), 0.1
    m = np.zeros(2)
    inputs = {"w": np.zeros(2), "m": m, "v": np.zeros(2), "lr": lr, "t": 1.0}
    update, m1, _ = run(ema, FlatSpace(np), {**inputs, "g": g1})
    update, m2, _ = run(ema, FlatSpace(np), {**inputs, "g": g2, "m": m1, "t": 2.0})
    assert np.allclose(m2, (1 - c) * c * g1 + c * g2) and np.allclose(update, lr * m2)


def test_accumulate_finds_momentum_from_sgd_in_one_mutation():
    from symopt.study.momentum import momentum_found
    from symopt.config.space import start_program

    space = load("quick").space
    sgd = start_program("sgd", space)
    alone = _accumulating(space)
    found = [momentum_found(mutation.mutate(sgd, alone, np.random.default_rng(s)).child.program) for s in range(12)]
    assert sum(found) >= 3
    # hero's three operators alone: one mutation of SGD never holds momentum
    hero = [momentum_found(mutation.mutate(sgd, HERO, np.random.default_rng(s)).child.program) for s in range(12)]
    assert not any(hero)


def test_accumulate_has_nothing_to_do_without_reads_or_state():
    space = _accumulating(load("quick").space)
    stateless = parse("def f(w, g, lr):\n    return g\n")
    assert mutation.accumulate(stateless, space, np.random.default_rng(0)) is None


def test_accumulate_writes_into_a_free_slot_where_there_is_one():
    from symopt.config.space import start_program

    space = _accumulating(load("quick").space)
    momentum = start_program("momentum", space)  # m is in use, v is free
    targets = {next(s.target for s in mutation.accumulate(momentum, space, np.random.default_rng(k)).body
                    if isinstance(s.value, Call) and s.value.fn == "interpolate") for k in range(20)}
    assert targets == {"v"}


def test_one_wrap_puts_orthogonalize_into_adamws_update():
    """From AdamW, Muon's direction (an orthogonalised moment) is one mutation away."""
    import dataclasses

    from symopt.programs.checker import calls
    from symopt.programs.liveness import eliminate_dead_code
    from symopt.config.space import start_program

    space = load("quick").space
    space = dataclasses.replace(space, functions=(*space.functions, "orthogonalize"),
                                mutation=dataclasses.replace(space.mutation, insert=0.0, delete=0.0, modify=0.0,
                                                             constant=0.0, accumulate=0.0, wrap=1.0))
    adamw = start_program("adamw", space)
    children = [mutation.wrap(adamw, space, np.random.default_rng(s)) for s in range(60)]
    children = [c for c in children if mutation.why_invalid(c, space) is None]  # not orthogonalize(lr), say
    assert len(children) >= 30
    for child in children:
        assert parse(str(child)) == child and len(child.body) == len(adamw.body)
    live = [c for c in children if "orthogonalize" in calls(eliminate_dead_code(c))]
    assert live, "no wrap of 60 put orthogonalize where the update reads it"
    # and through mutate(): a valid child that behaves differently, in one step
    outcome = mutation.mutate(live[0], space, np.random.default_rng(0))
    assert outcome.child is not None
    stateless = parse("def f(w, g, lr):\n    return w\n")
    assert mutation.wrap(parse("def f(g):\n    return 1.0\n"), space, np.random.default_rng(0)) is None
    assert mutation.wrap(stateless, space, np.random.default_rng(0)).returns[0].fn in space.functions


def test_one_graft_gives_adamw_muons_direction_on_matrices_and_keeps_its_vectors():
    """From AdamW, one graft orthogonalises the update of each matrix at AdamW's norm; vectors keep AdamW's step."""
    import dataclasses

    import jax.numpy as jnp

    from optax.contrib._muon import orthogonalize_via_newton_schulz

    from symopt import to_optax
    from symopt.programs.tree_functions import NS_COEFFS
    from symopt.config.start import start_program

    space = load("quick").space
    space = dataclasses.replace(space, mutation=dataclasses.replace(
        space.mutation, insert=0.0, delete=0.0, modify=0.0, constant=0.0, accumulate=0.0, wrap=0.0, graft=1.0))
    adamw = start_program("adamw", space)
    children = [mutation.graft(adamw, space, np.random.default_rng(s)) for s in range(40)]
    assert all(mutation.why_invalid(c, space) is None and parse(str(c)) == c for c in children)
    child = next(c for c in children if c.body[-2].value.fn == "orthogonalize")
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(6, 4)), jnp.float32), "b": jnp.asarray(rng.normal(size=4), jnp.float32)}
    grads = {k: jnp.asarray(rng.normal(size=v.shape), jnp.float32) for k, v in params.items()}
    (base, _), (grafted, _) = (opt.update(grads, opt.init(params), params)
                               for opt in (to_optax(adamw, 0.1), to_optax(child, 0.1)))
    np.testing.assert_allclose(grafted["b"], base["b"], rtol=1e-6)
    direction = orthogonalize_via_newton_schulz(base["w"], jnp.asarray(NS_COEFFS))
    np.testing.assert_allclose(grafted["w"], direction * jnp.linalg.norm(base["w"]) / jnp.linalg.norm(direction),
                               rtol=1e-4, atol=1e-7)
    assert not np.allclose(grafted["w"], base["w"], rtol=1e-2)
    # a returned expression is named first, and a returned state slot is left as the state
    momentum = parse("def f(g, m):\n    m = 0.9 * m + g\n    return m, m\n")
    out = mutation.graft(momentum, space, np.random.default_rng(0))
    assert out.returns[1] == Var("m") and out.returns[0] != Var("m")
    assert mutation.graft(parse("def f(g):\n    return 2.0 * g\n"), space, np.random.default_rng(0)).body[0].value \
        == Call("*", (Const(2.0), Var("g")))
    no_norm = dataclasses.replace(space, functions=tuple(f for f in space.functions if f != "norm"))
    assert mutation.graft(adamw, no_norm, np.random.default_rng(0)) is None
