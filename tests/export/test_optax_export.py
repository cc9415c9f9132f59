"""Programs exported with ``to_optax`` behave like optax's own optimizers.

Every check is parametrised over a handful of programs written here and over every
Program baseline in ``symopt.programs.baselines`` (optax-level baselines are skipped:
they are optax already). The reference semantics is ``symopt.programs.execute.run``
on one flat NumPy vector (``FlatSpace``), which the tree-based export must match.
"""

from __future__ import annotations

import inspect
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from symopt import Program, parse
from symopt.export.optax_export import optimizer_factory, state_type, stored_shape, to_optax
from symopt.programs.checker import state_kinds
from symopt.programs.execute import hyperparameters, run
from symopt.programs.spaces import FlatSpace

ADAM_LIKE = parse("""\
def adam_like(g, m, v, t, lr):
    b1 = 0.9
    b2 = 0.999
    m = interpolate(g, m, b1)
    v = interpolate(square(g), v, b2)
    m_hat = m / (1.0 - power(b1, t))
    v_hat = v / (1.0 - power(b2, t))
    update = lr * m_hat / (sqrt(v_hat) + 1e-8)
    return update, m, v
""")

LION_LIKE = parse("""\
def lion_like(w, g, m, lr):
    b1 = 0.9
    b2 = 0.99
    wd = 0.1
    c = interpolate(g, m, b1)
    update = lr * (sign(c) + w * wd)
    m = interpolate(g, m, b2)
    return update, m
""")

SGD_LIKE = parse("""\
def sgd_like(g, mom):
    beta = 0.9
    mom = g + beta * mom
    return mom, mom
""")

PLAIN_SGD = parse("def plain_sgd(g):\n    return g\n")

REDUCTIONS = parse("""\
def reductions(g, m, k, lr):
    c = clip_by_global_norm(g, 1.0)
    m = interpolate(m, c, 0.1)
    n = norm(m)
    k = global_norm(g) + 0.5 * k
    update = lr * (m / n * cosine_sim(m, g) + 0.01 * dot(g, g) / (k + 1.0) * g)
    return update, m, k
""")

MINE = {p.name: p for p in (ADAM_LIKE, LION_LIKE, SGD_LIKE, PLAIN_SGD, REDUCTIONS)}


def _baselines() -> dict[str, Program]:
    try:
        from symopt.programs import baselines
    except ImportError:
        return {}
    found = {}
    for name in baselines.names():
        b = baselines.get(name)
        if isinstance(b, Program):  # optax-level baselines (adafactor) are optax already
            found[f"baseline_{name}"] = b
    return found


BASELINES = _baselines()
ALL = {**MINE, **BASELINES}
LR = 0.01


class Pair(NamedTuple):
    a: jax.Array
    b: dict


def _shapes_to_tree(kind: str, make):
    if kind == "array":
        return make((4,))
    if kind == "nested":
        return {"dense": {"kernel": make((2, 3)), "bias": make((3,))},
                "layers": [make((2,)), (make((1, 1)), make((5,)))], "scale": make(())}
    if kind == "small":
        return {"dense": {"kernel": make((2, 3)), "bias": make((3,))}, "scale": [make(())]}
    if kind == "namedtuple":
        return Pair(a=make((3,)), b={"c": make((2, 2))})
    if kind == "none_leaves":
        return {"a": make((3,)), "frozen": None, "b": [None, make((2,))]}
    raise AssertionError(kind)


def make_tree(kind: str, seed: int, dtype=jnp.float32, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    return _shapes_to_tree(kind, lambda shape: jnp.asarray(scale * rng.normal(size=shape), dtype))


def flat(tree) -> np.ndarray:
    return np.concatenate([np.asarray(x, np.float32).ravel() for x in jax.tree_util.tree_leaves(tree)])


def reference(program: Program, learning_rate, params, grads_seq, overrides=None) -> list[np.ndarray]:
    """The updates of ``program`` run by ``execute.run`` on one flat float32 NumPy vector."""
    leaves = jax.tree_util.tree_leaves(params)
    sizes = [int(np.size(x)) for x in leaves]
    space = FlatSpace(np, np.repeat(np.arange(len(sizes)), sizes), len(sizes), [np.shape(x) for x in leaves])
    w, n = flat(params), sum(sizes)
    state = {s: np.zeros(n, np.float32) for s in program.state_args}
    overrides = {k: np.float32(v) for k, v in (overrides or {}).items()}
    updates = []
    for step, grads in enumerate(grads_seq):
        lr = np.float32(learning_rate(step) if callable(learning_rate) else learning_rate)
        inputs = dict(state)
        for role, value in (("grad", flat(grads)), ("weight", w), ("lr", lr), ("step", np.float32(step + 1))):
            if program.arg_for(role):
                inputs[program.arg_for(role)] = value
        with np.errstate(all="ignore"):
            direction, *new_state = run(program, space, inputs, overrides)
            direction = np.broadcast_to(direction, (n,)).astype(np.float32)
            if not program.has_lr:
                direction = direction * lr
        state = {s: np.broadcast_to(v, (n,)).astype(np.float32) for s, v in zip(program.state_args, new_state)}
        updates.append(-direction)
        w = w - direction
    return updates


def counted_jit(fn):
    """jax.jit(fn) and a list that grows by one each time fn is traced (compiled)."""
    traces = []

    def traced(*args, **kwargs):
        traces.append(1)
        return fn(*args, **kwargs)

    return jax.jit(traced), traces


def run_optimizer(opt, params, grads_seq, jit=True):
    update = counted_jit(opt.update)[0] if jit else opt.update
    state = opt.init(params)
    updates, states = [], [state]
    for grads in grads_seq:
        u, state = update(grads, state, params)
        params = optax.apply_updates(params, u)
        updates.append(u)
        states.append(state)
    return updates, states, params


# -- the same checks for every program ----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ALL))
def test_jit_matches_reference_without_recompiling(name):
    program = ALL[name]
    opt = to_optax(program, LR)
    assert isinstance(opt, optax.GradientTransformation)
    params = make_tree("small", 0)
    grads_seq = [make_tree("small", 1 + i) for i in range(3)]
    update, traces = counted_jit(opt.update)
    state = jax.jit(opt.init)(params)
    _check_state(program, state, params, count=0)
    expected = reference(program, LR, params, grads_seq)
    for step, grads in enumerate(grads_seq):
        u, new_state = update(grads, state, params)
        params = optax.apply_updates(params, u)
        assert jax.tree_util.tree_structure(u) == jax.tree_util.tree_structure(grads)
        np.testing.assert_allclose(flat(u), expected[step], rtol=2e-4, atol=1e-6, err_msg=f"step {step}")
        assert type(new_state) is type(state)
        _check_state(program, new_state, params, count=step + 1)
        state = new_state
    assert len(traces) == 1, "the second and third updates must reuse the first compilation"
    if hasattr(update, "_cache_size"):  # a private JAX API: the compilation cache holds one entry
        assert update._cache_size() == 1
    assert np.all(np.isfinite(flat(params)))


def _check_state(program, state, params, count):
    """A NamedTuple of the int32 step count and one tree per state slot, shaped as the parameters (a factored
    slot as a row or a column of them: optax_export.stored_shape)."""
    held = state_kinds(program)
    assert isinstance(state, tuple) and type(state) is not tuple and hasattr(state, "_fields")
    assert state._fields == ("count", *program.state_args)
    assert state.count.dtype == jnp.int32 and state.count.shape == () and int(state.count) == count
    for slot in program.state_args:
        tree = getattr(state, slot)
        assert jax.tree_util.tree_structure(tree) == jax.tree_util.tree_structure(params)
        for leaf, ref in zip(jax.tree_util.tree_leaves(tree), jax.tree_util.tree_leaves(params)):
            assert leaf.shape == stored_shape(ref.shape, held[slot]) and leaf.dtype == ref.dtype
            if count == 0:
                assert np.all(np.asarray(leaf) == 0)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ALL))
def test_bfloat16_in_bfloat16_out(name):
    program = ALL[name]
    opt = to_optax(program, LR)
    params = make_tree("small", 0, jnp.bfloat16)
    update, traces = counted_jit(opt.update)
    state = opt.init(params)
    for i in range(2):
        u, state = update(make_tree("small", 1 + i, jnp.bfloat16), state, params)
        params = optax.apply_updates(params, u)
        assert all(x.dtype == jnp.bfloat16 for x in jax.tree_util.tree_leaves(u))
        for slot in program.state_args:
            assert all(x.dtype == jnp.bfloat16 for x in jax.tree_util.tree_leaves(getattr(state, slot)))
        assert state.count.dtype == jnp.int32
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree_util.tree_leaves(params))
    assert len(traces) == 1
    assert np.all(np.isfinite(flat(params)))


# -- pytrees --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("tree", ["array", "nested", "namedtuple", "none_leaves"])
@pytest.mark.parametrize("name", ["adam_like", "lion_like", "reductions"])
def test_any_pytree(name, tree):
    program = MINE[name]
    params = make_tree(tree, 0)
    grads_seq = [make_tree(tree, 1 + i) for i in range(2)]
    updates, states, _ = run_optimizer(to_optax(program, LR), params, grads_seq)
    expected = reference(program, LR, params, grads_seq)
    for step, u in enumerate(updates):
        assert jax.tree_util.tree_structure(u) == jax.tree_util.tree_structure(grads_seq[0])
        for got, want in zip(jax.tree_util.tree_leaves(u), jax.tree_util.tree_leaves(grads_seq[0])):
            assert got.shape == want.shape
        np.testing.assert_allclose(flat(u), expected[step], rtol=2e-4, atol=1e-6)
    if tree == "none_leaves":
        assert updates[0]["frozen"] is None and updates[0]["b"][0] is None
        assert states[-1][1]["frozen"] is None
    if tree == "namedtuple":
        assert isinstance(updates[0], Pair)


def test_tree_wide_reductions_span_all_leaves():
    """global_norm over the tree is not the norm of one leaf: the update of one leaf depends on the others."""
    program = parse("def f(g):\n    u = g / global_norm(g)\n    return u\n")
    opt = to_optax(program, 1.0)
    a = {"x": jnp.asarray([3.0]), "y": jnp.asarray([4.0])}
    u, _ = opt.update(a, opt.init(a))
    np.testing.assert_allclose([float(u["x"][0]), float(u["y"][0])], [-0.6, -0.8], rtol=1e-6)
    per_tensor = parse("def f(g):\n    u = g / norm(g)\n    return u\n")
    opt = to_optax(per_tensor, 1.0)
    u, _ = opt.update(a, opt.init(a))
    np.testing.assert_allclose([float(u["x"][0]), float(u["y"][0])], [-1.0, -1.0], rtol=1e-6)


# -- agreement with optax's own optimizers --------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("program,twin", [
    (ADAM_LIKE, lambda lr: optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8)),
    (LION_LIKE, lambda lr: optax.lion(lr, b1=0.9, b2=0.99, weight_decay=0.1)),
    (SGD_LIKE, lambda lr: optax.sgd(lr, momentum=0.9)),
    (PLAIN_SGD, lambda lr: optax.sgd(lr)),
], ids=["adam", "lion", "momentum", "sgd"])
def test_matches_optax_twin(program, twin):
    params = make_tree("nested", 0)
    grads_seq = [make_tree("nested", 10 + i) for i in range(5)]
    ours, _, p_ours = run_optimizer(to_optax(program, LR), params, grads_seq)
    theirs, _, p_theirs = run_optimizer(twin(LR), params, grads_seq)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(flat(a), flat(b), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(flat(p_ours), flat(p_theirs), rtol=1e-5, atol=1e-6)


# -- learning-rate schedules ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["adam_like", "lion_like", "sgd_like", "reductions"])
def test_schedule_is_used(name):
    program = MINE[name]
    schedule = optax.linear_schedule(init_value=0.1, end_value=0.0, transition_steps=3)
    params = make_tree("nested", 0)
    grads_seq = [make_tree("nested", 1 + i) for i in range(4)]
    updates, _, _ = run_optimizer(to_optax(program, schedule), params, grads_seq)
    expected = reference(program, lambda step: float(schedule(step)), params, grads_seq)
    for step, u in enumerate(updates):
        np.testing.assert_allclose(flat(u), expected[step], rtol=2e-4, atol=1e-7)
    # the schedule has (all but) reached 0 at the fourth step
    assert np.abs(flat(updates[3])).max() < 1e-5 * np.abs(flat(updates[0])).max()
    assert np.any(flat(updates[0]) != 0)
    constant, _, _ = run_optimizer(to_optax(program, 0.1), params, grads_seq)
    assert not np.allclose(flat(constant[1]), flat(updates[1]))  # 0.1 * 2/3, not 0.1


# -- inject_hyperparams ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["adam_like", "sgd_like", "plain_sgd"])
def test_inject_hyperparams_of_to_optax(name):
    program = MINE[name]
    params = make_tree("nested", 0)
    grads = make_tree("nested", 1)
    opt = optax.inject_hyperparams(to_optax)(program, learning_rate=0.1)
    update, traces = counted_jit(opt.update)
    state = opt.init(params)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.1)
    u, _ = update(grads, state, params)
    direct, _ = to_optax(program, 0.1).update(grads, to_optax(program, 0.1).init(params), params)
    np.testing.assert_allclose(flat(u), flat(direct), rtol=2e-5)
    state.hyperparams["learning_rate"] = jnp.asarray(0.05, jnp.float32)
    u_half, _ = update(grads, state, params)
    half, _ = to_optax(program, 0.05).update(grads, to_optax(program, 0.05).init(params), params)
    np.testing.assert_allclose(flat(u_half), flat(half), rtol=2e-5)
    assert not np.allclose(flat(u_half), flat(u))
    assert len(traces) == 1  # the learning rate is traced, not baked in


@pytest.mark.slow
def test_inject_hyperparams_of_to_optax_with_static_overrides():
    params, grads = make_tree("array", 0), make_tree("array", 1)
    opt = optax.inject_hyperparams(to_optax)(ADAM_LIKE, learning_rate=0.1, b1=0.5)
    u, _ = opt.update(grads, opt.init(params), params)
    direct = to_optax(ADAM_LIKE, 0.1, b1=0.5)
    d, _ = direct.update(grads, direct.init(params), params)
    np.testing.assert_allclose(flat(u), flat(d), rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["adam_like", "lion_like", "sgd_like"])
def test_inject_hyperparams_of_optimizer_factory(name):
    program = MINE[name]
    knob = {"adam_like": "b1", "lion_like": "wd", "sgd_like": "beta"}[name]
    defaults = hyperparameters(program)
    params = make_tree("nested", 0)
    grads_seq = [make_tree("nested", 1 + i) for i in range(2)]
    factory = optimizer_factory(program)
    opt = optax.inject_hyperparams(factory)(learning_rate=0.1, **{knob: 0.5})
    state = opt.init(params)
    assert set(state.hyperparams) == {"learning_rate", *defaults}
    assert float(state.hyperparams[knob]) == pytest.approx(0.5)
    update, traces = counted_jit(opt.update)

    def two_steps(state, value):
        state.hyperparams[knob] = jnp.asarray(value, jnp.float32)
        out, p = [], params
        for g in grads_seq:
            u, state = update(g, state, p)
            p = optax.apply_updates(p, u)
            out.append(flat(u))
        return out

    for value in (0.5, 0.8):
        got = two_steps(opt.init(params), value)
        want = reference(program, 0.1, params, grads_seq, {knob: value})
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-7)
    assert not np.allclose(two_steps(opt.init(params), 0.5)[1], two_steps(opt.init(params), 0.8)[1])
    assert len(traces) == 1  # injected values are traced: changing them does not recompile
    # the factory's defaults are the program's, and with them it is to_optax(program)
    default_opt = factory(0.1)
    u, _ = default_opt.update(grads_seq[0], default_opt.init(params), params)
    np.testing.assert_allclose(flat(u), reference(program, 0.1, params, grads_seq[:1])[0], rtol=2e-4, atol=1e-7)


def test_optimizer_factory_defaults_reproduce_the_program():
    """A name assigned two constants: the factory's defaults keep both (an override replaces both)."""
    program = parse("def f(g, m):\n    b = 0.9\n    m = interpolate(g, m, b)\n    b = 0.5\n    u = m * b\n"
                    "    return u, m\n")
    params, grads_seq = make_tree("array", 0), [make_tree("array", 1), make_tree("array", 2)]
    want, _, _ = run_optimizer(to_optax(program, 0.1), params, grads_seq)
    got, _, _ = run_optimizer(optax.inject_hyperparams(optimizer_factory(program))(learning_rate=0.1),
                              params, grads_seq)
    for a, b in zip(got, want):
        np.testing.assert_allclose(flat(a), flat(b), rtol=1e-5)
    overridden, _, _ = run_optimizer(optax.inject_hyperparams(optimizer_factory(program))(learning_rate=0.1, b=0.7),
                                     params, grads_seq)
    np.testing.assert_allclose(flat(overridden[0]), -0.1 * 0.3 * 0.7 * flat(grads_seq[0]), rtol=1e-5)


def test_state_class_is_shared_between_optimizers_of_one_program():
    """A pytree's type is part of its structure: a new class per to_optax() call would retrace jit."""
    params = make_tree("array", 0)
    assert state_type(ADAM_LIKE) is state_type(parse(str(ADAM_LIKE)))
    a, b = to_optax(ADAM_LIKE, LR), to_optax(ADAM_LIKE, 2 * LR)
    assert type(a.init(params)) is type(b.init(params))
    update, traces = counted_jit(b.update)
    update(make_tree("array", 1), a.init(params), params)  # b's update on a's state
    update(make_tree("array", 1), a.update(make_tree("array", 1), a.init(params))[1], params)
    assert len(traces) == 1


def test_optimizer_factory_signature():
    sig = inspect.signature(optimizer_factory(ADAM_LIKE))
    assert list(sig.parameters) == ["learning_rate", "b1", "b2"]
    assert sig.parameters["b1"].default == 0.9 and sig.parameters["b2"].default == 0.999
    assert list(inspect.signature(optimizer_factory(PLAIN_SGD)).parameters) == ["learning_rate"]


# -- overrides and errors -------------------------------------------------------------------


@pytest.mark.slow
def test_override_changes_the_constant():
    params = make_tree("array", 0)
    grads_seq = [make_tree("array", 1), make_tree("array", 2)]
    base, _, _ = run_optimizer(to_optax(ADAM_LIKE, LR), params, grads_seq)
    changed, _, _ = run_optimizer(to_optax(ADAM_LIKE, LR, b1=0.5), params, grads_seq)
    want = reference(ADAM_LIKE, LR, params, grads_seq, {"b1": 0.5})
    for got, w in zip(changed, want):
        np.testing.assert_allclose(flat(got), w, rtol=2e-4)
    assert not np.allclose(flat(base[1]), flat(changed[1]), rtol=1e-3)


def test_unknown_override_names_the_known_hyperparameters():
    with pytest.raises(ValueError) as info:
        to_optax(ADAM_LIKE, LR, b3=0.5)
    message = str(info.value)
    assert "'b3'" in message and "b1=0.9" in message and "b2=0.999" in message
    with pytest.raises(ValueError, match="none"):
        to_optax(PLAIN_SGD, LR, momentum=0.9)
    with pytest.raises(ValueError, match="'m'"):  # a state slot is not a hyperparameter
        to_optax(ADAM_LIKE, LR, m=0.0)


@pytest.mark.slow
def test_program_reading_weights_needs_params():
    opt = to_optax(LION_LIKE, LR)
    params = make_tree("nested", 0)
    state = opt.init(params)
    with pytest.raises(ValueError) as info:
        opt.update(make_tree("nested", 1), state)
    message = str(info.value)
    assert "'lion_like'" in message and "'w'" in message and "params" in message
    with pytest.raises(ValueError):
        jax.jit(opt.update)(make_tree("nested", 1), state)
    # a program that does not read the weights needs none
    sgd = to_optax(SGD_LIKE, LR)
    u, _ = sgd.update(make_tree("nested", 1), sgd.init(params))
    np.testing.assert_allclose(flat(u), -LR * flat(make_tree("nested", 1)), rtol=1e-6)


def test_not_a_program():
    with pytest.raises(TypeError, match="symopt.parse"):
        to_optax("def f(g):\n  return g\n")  # type: ignore[arg-type]


def test_state_type_names():
    State = state_type(ADAM_LIKE)
    assert State._fields == ("count", "m", "v")
    assert State.__name__ == "AdamLikeState"


@pytest.mark.slow
def test_composes_with_optax_chain():
    opt = optax.chain(optax.clip_by_global_norm(1.0), to_optax(ADAM_LIKE, LR))
    params = make_tree("nested", 0)
    grads = make_tree("nested", 1, scale=100.0)
    u, _ = jax.jit(opt.update)(grads, opt.init(params), params)
    clipped = optax.clip_by_global_norm(1.0).update(grads, None)[0]
    np.testing.assert_allclose(flat(u), reference(ADAM_LIKE, LR, params, [clipped])[0], rtol=2e-4, atol=1e-7)


def test_constants_and_learning_rate_edge_values_do_not_crash():
    """Python-float constants in the export's tree space: exp10 of a constant, division by zero."""
    params, grads = make_tree("array", 0), make_tree("array", 1)
    for text, expect in [
        ("def f(g):\n    u = g * exp10(2.0)\n    return u\n", lambda g: -100.0 * g),
        ("def f(g, lr):\n    u = g * exp10(lr)\n    return u\n", lambda g: -(10.0 ** 0.0) * g),
        ("def f(g):\n    u = g * reciprocal(0.0)\n    return u\n", lambda g: -np.inf * np.sign(g)),
        ("def f(g):\n    u = g + 1.0 / -1e-8\n    return u\n", lambda g: np.full_like(g, -np.inf)),
    ]:
        program = parse(text)
        lr = 0.0 if program.has_lr else 1.0
        opt = to_optax(program, lr)
        u, _ = opt.update(grads, opt.init(params))
        np.testing.assert_allclose(flat(u), expect(flat(grads)), rtol=1e-5)
    recip = to_optax(parse("def f(g, lr):\n    u = g * reciprocal(lr)\n    return u\n"), 0.0)
    u, _ = recip.update(grads, recip.init(params))
    assert np.all(np.isnan(flat(u)) | np.isinf(flat(u)))  # 0 * inf: no ZeroDivisionError
