"""The hand-coded baselines match optax's own optimizers step for step.

Every optimizer runs 100 steps of a ``lax.scan`` on a small tanh MLP (parameters
a pytree of matrices and vectors, a fresh batch each step); the parameters after
every step must agree with optax's to a relative difference
``|a - b| / (|b| + 1e-6)`` of at most 1e-5 in float32. PowerSign and AddSign have
no optax twin and are checked against a NumPy reimplementation instead.

To keep the suite fast, all the scans of one group (the defaults, the overrides)
are compiled together in one jitted function, one ``lax.scan`` per optimizer:
tracing and compiling once costs about as much as one optimizer alone.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from symopt.export.optax_export import to_optax
from symopt.programs import Program, baselines, parse

STEPS = 100
TOL = 1e-5
FLOOR = 1e-6

EXPECTED = {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam", "adamw",
            "nadam", "radam", "lion", "powersign", "addsign", "adafactor", "lookahead", "muon"}


def _lookahead(lr, sync_period=6, slow_step_size=0.5, **adam_kw):
    return optax.lookahead(optax.adam(lr, **adam_kw), int(sync_period), slow_step_size)


# name -> (learning rate typical for the optimizer, optax's twin given lr and overrides)
TWINS = {
    "sgd": (0.05, lambda lr: optax.sgd(lr)),
    "momentum": (0.01, lambda lr, momentum=0.9: optax.sgd(lr, momentum=momentum)),
    "nesterov": (0.01, lambda lr, momentum=0.9: optax.sgd(lr, momentum=momentum, nesterov=True)),
    "adagrad": (0.1, optax.adagrad),
    "rmsprop": (1e-3, optax.rmsprop),
    "adadelta": (1.0, optax.adadelta),
    "adam": (1e-3, optax.adam),
    "adamw": (1e-3, optax.adamw),
    "nadam": (1e-3, optax.nadam),
    "radam": (1e-3, optax.radam),
    "lion": (1e-4, optax.lion),
    "adafactor": (1e-2, optax.adafactor),
    "muon": (2e-2, optax.contrib.muon),
    "lookahead": (1e-3, _lookahead),
}
NUMPY_TWINS = {"powersign": 1e-2, "addsign": 1e-2}

OVERRIDES = [
    ("momentum", {"momentum": 0.5}),
    ("nesterov", {"momentum": 0.5}),
    ("adagrad", {"initial_accumulator_value": 0.5, "eps": 1e-3}),
    ("rmsprop", {"decay": 0.5}),
    ("adadelta", {"rho": 0.5, "weight_decay": 0.1}),
    ("adam", {"b1": 0.8}),
    ("adam", {"b2": 0.9, "eps": 1e-3}),
    ("adamw", {"weight_decay": 0.5}),
    ("nadam", {"b1": 0.8}),
    ("radam", {"b2": 0.99, "threshold": 8.0}),
    ("lion", {"b1": 0.5, "weight_decay": 0.1}),
    ("adafactor", {"min_dim_size_to_factor": 4, "decay_rate": 0.5}),  # w1 [8, 5] factored, w2 [5, 3] not
    ("adafactor", {"min_dim_size_to_factor": 2, "clipping_threshold": 0.1}),  # both factored, clipped
    ("muon", {"beta": 0.8, "adam_b1": 0.5, "weight_decay": 0.1}),
    ("lookahead", {"sync_period": 3, "slow_step_size": 0.8, "b1": 0.8}),
]
OVERRIDE_IDS = [f"{n}-{'-'.join(o)}" for n, o in OVERRIDES]


# --- the problem: a tanh MLP on random regression data, a new batch every step ------------------

def _problem():
    rng = np.random.default_rng(0)
    params = {
        "w1": rng.normal(0, 0.5, (8, 5)).astype(np.float32),
        "b1": rng.normal(0, 0.5, (5,)).astype(np.float32),
        "w2": rng.normal(0, 0.5, (5, 3)).astype(np.float32),
    }
    xs = rng.normal(0, 1, (STEPS, 16, 8)).astype(np.float32)
    ys = (np.sin(2 * xs[..., :3]) + 0.1 * rng.normal(0, 1, (STEPS, 16, 3))).astype(np.float32)
    return jax.tree.map(jnp.asarray, params), (jnp.asarray(xs), jnp.asarray(ys))


PARAMS, BATCHES = _problem()


def loss(params, batch):
    x, y = batch
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    return jnp.mean((h @ params["w2"] - y) ** 2)


grad = jax.grad(loss)


def run_many(specs: dict[str, tuple]) -> dict[str, tuple]:
    """``{key: (optimizer, lookahead)}`` -> ``{key: (params, states, grads, slow)}`` after each step.

    One jit, one 100-step ``lax.scan`` per optimizer. ``lookahead`` optimizers get
    ``optax.LookaheadParams`` and the gradient at the fast weights; their params
    come back as the fast weights and ``slow`` as the slow ones (else None).
    """

    @jax.jit
    def run(params, batches):
        out = {}
        for key, (opt, lookahead) in specs.items():
            start = optax.LookaheadParams.init_synced(params) if lookahead else params

            def step(carry, batch, opt=opt, lookahead=lookahead):
                params, state = carry
                g = grad(params.fast if lookahead else params, batch)
                updates, state = opt.update(g, state, params)
                params = optax.apply_updates(params, updates)
                return (params, state), (params, state, g)

            out[key] = jax.lax.scan(step, (start, opt.init(start)), batches)[1]
        return out

    result = jax.device_get(run(PARAMS, BATCHES))
    return {k: ((p.fast, s, g, p.slow) if specs[k][1] else (p, s, g, None)) for k, (p, s, g) in result.items()}


def max_rel_diff(ours, theirs) -> float:
    diffs = [np.max(np.abs(np.float64(a) - np.float64(b)) / (np.abs(np.float64(b)) + FLOOR))
             for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True)]
    return float(max(diffs))


@pytest.fixture(scope="module")
def defaults():
    """Every baseline with its defaults, and its optax twin."""
    specs = {}
    for name, (lr, twin) in TWINS.items():
        specs[f"ours/{name}"] = (to_optax(baselines.get(name), learning_rate=lr), False)
        specs[f"optax/{name}"] = (twin(lr), name == "lookahead")
    for name, lr in NUMPY_TWINS.items():
        specs[f"ours/{name}"] = (to_optax(baselines.get(name), learning_rate=lr), False)
    return run_many(specs)


@pytest.fixture(scope="module")
def overridden():
    """Each override case, exported by symopt and by optax's corresponding argument."""
    specs = {}
    for case, (name, overrides) in zip(OVERRIDE_IDS, OVERRIDES):
        lr, twin = TWINS[name]
        specs[f"ours/{case}"] = (to_optax(baselines.get(name), learning_rate=lr, **overrides), False)
        specs[f"optax/{case}"] = (twin(lr, **overrides), name == "lookahead")
    return run_many(specs)


# --- step-for-step agreement with optax ----------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TWINS))
def test_matches_optax(name, defaults):
    assert_matches_twin(name, defaults[f"ours/{name}"][0], defaults[f"optax/{name}"][0])


TOLERANCE = {"adafactor": 2e-5}
"""Twins that round differently: Adafactor's RMS is norm(x) / sqrt(n) here, sqrt(mean(x^2)) in optax, one float32
rounding apart (1e-7 at step 3), which its normalised steps carry to 1.2e-5 over 100 steps. A wrong rule is off by
far more."""
CHECKED_STEPS = {"muon": 5, "adafactor-min_dim_size_to_factor-decay_rate": 10}
"""Twins compared over their first steps only: Newton-Schulz (Muon) and a factored moment of a tall matrix (optax
averages its rows where the program averages its columns, then the other way round) agree to one float32 rounding
per step (2e-7 to 2e-6 over the first five steps), but the quintic's steep slope near zero amplifies those roundings
step after step (4e-3 and 8e-3 after 100 steps on this problem). A wrong rule (another beta, scale or axis) is off
by more than 1e-3 at the first step."""


def assert_matches_twin(name, ours, theirs):
    """``ours`` (parameters after each step) is finite and within ``TOL`` of ``theirs``, which moved."""
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(ours))
    steps = CHECKED_STEPS.get(name, CHECKED_STEPS.get(name.split("-")[0], STEPS))
    ours, theirs = (jax.tree.map(lambda x: x[:steps], t) for t in (ours, theirs))
    moved = max_rel_diff(theirs, jax.tree.map(lambda p: np.broadcast_to(p, (steps, *p.shape)), PARAMS))
    assert moved > 1e-3, f"{name} barely moved the parameters ({moved:.2g}): the test would prove nothing"
    diff = max_rel_diff(ours, theirs)
    print(f"{name}: max relative difference {diff:.3g}")
    tol = TOLERANCE.get(name.split("-")[0], TOL)
    assert diff <= tol, f"{name}: max relative difference {diff:.3g} > {tol}"


@pytest.mark.slow
def test_lookahead_slow_weights_match_optax(defaults):
    """The program keeps optax's slow weights in its state slot 'slow', and counts in 'k'."""
    _, states, _, _ = defaults["ours/lookahead"]
    slow = defaults["optax/lookahead"][3]
    diff = max_rel_diff(states.slow, slow)
    print(f"lookahead slow weights: max relative difference {diff:.3g}")
    assert diff <= TOL
    k = states.k["w1"]  # steps since the last synchronisation, the same for every entry
    np.testing.assert_array_equal(k, np.broadcast_to((np.arange(1, STEPS + 1) % 6)[:, None, None], k.shape))


# --- PowerSign and AddSign against a direct NumPy reimplementation -------------------------------

TWIN_TOL = 5e-5
"""NumPy twins round as XLA did when they were written (:func:`_fma32`); jaxlib 0.12 (Python 3.12, 3.13) contracts
fewer multiply-adds, a float32 rounding that compounds to 2e-5 over the run. A wrong rule is off by far more."""


def _fma32(x, y, z):
    """float32 ``x * y + z`` rounded once, as XLA on CPU computes ``x * y + z`` (it contracts
    a multiply feeding an add into one fused multiply-add; float64 holds the product exactly)."""
    return (np.float64(x) * np.float64(y) + np.float64(z)).astype(np.float32)


def _numpy_sign_rule(name, g, m, beta=0.9):
    """Bello et al. 2017 with f(t) = 1: m <- (1 - beta) g + beta m, then the update direction."""
    m = _fma32(np.float32(1 - beta), g, np.float32(beta) * m)
    agree = np.sign(g) * np.sign(m)
    if name == "powersign":
        return np.power(np.float32(np.e), agree) * g, m
    return (np.float32(1) + agree) * g, m


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NUMPY_TWINS))
def test_sign_rules_match_numpy(name, defaults):
    """The NumPy rule, fed the gradients of the exported optimizer's own run, retraces that run.

    (Recomputing the gradients outside the jitted scan would compile them differently
    and add float32 noise unrelated to the update rule.) The NumPy run keeps its own
    parameters and moment, so any difference in the rule shows and compounds.
    """
    lr = NUMPY_TWINS[name]
    ours, states, grads, _ = defaults[f"ours/{name}"]
    params = jax.device_get(PARAMS)
    m = jax.tree.map(np.zeros_like, params)
    steps, moments = [], []
    for i in range(STEPS):
        out = {k: _numpy_sign_rule(name, grads[k][i], m[k]) for k in params}
        m = {k: out[k][1] for k in params}
        params = {k: _fma32(-out[k][0], np.float32(lr), params[k]) for k in params}
        steps.append(params)
        moments.append(m)
    stack = lambda trees: jax.tree.map(lambda *xs: np.stack(xs), *trees)  # noqa: E731
    diff = max_rel_diff(ours, stack(steps))
    print(f"{name}: max relative difference to NumPy {diff:.3g}")
    assert diff <= TWIN_TOL
    assert max_rel_diff(states.m, stack(moments)) <= TWIN_TOL


# --- hyperparameter overrides move the trajectory as optax's arguments do ------------------------

@pytest.mark.slow
@pytest.mark.parametrize("case", OVERRIDE_IDS)
def test_override_matches_optax_argument(case, overridden, defaults):
    name = case.split("-")[0]
    ours, theirs = overridden[f"ours/{case}"][0], overridden[f"optax/{case}"][0]
    assert_matches_twin(case, ours, theirs)
    changed = max_rel_diff(ours, defaults[f"ours/{name}"][0])
    assert changed > 1e-3, f"overriding {case} did not change {name}'s trajectory"


INJECTED = [("adam", {"b1": 0.8, "eps": 1e-6}), ("radam", {"b2": 0.99}), ("lion", {"b1": 0.8}),
            ("adagrad", {"eps": 1e-5})]


@pytest.fixture(scope="module")
def injected():
    """optax.inject_hyperparams over symopt's optimizer_factory and over optax's own function."""
    from symopt.export.optax_export import optimizer_factory

    specs = {}
    for name, kw in INJECTED:
        lr = TWINS[name][0]
        specs[f"ours/{name}"] = (optax.inject_hyperparams(optimizer_factory(baselines.get(name)))(
            learning_rate=lr, **kw), False)
        specs[f"optax/{name}"] = (optax.inject_hyperparams(getattr(optax, name))(learning_rate=lr, **kw), False)
    return run_many(specs)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n, _ in INJECTED])
def test_injected_hyperparameters_match_optax(name, injected):
    """Hyperparameters injected as traced arrays (float32 arithmetic) still match optax's."""
    diff = max_rel_diff(injected[f"ours/{name}"][0], injected[f"optax/{name}"][0])
    print(f"{name} (inject_hyperparams): max relative difference {diff:.3g}")
    assert diff <= TOL


def test_unknown_override_is_refused():
    with pytest.raises(ValueError, match="b3"):
        to_optax(baselines.get("adam"), 1e-3, b3=0.5)
    with pytest.raises(ValueError, match="decay_rate"):
        to_optax(baselines.get("adafactor"), 1e-3, decay_rte=0.5)


# --- the registry -------------------------------------------------------------------------------

def test_names_complete_and_sorted():
    assert baselines.names() == sorted(EXPECTED)
    assert set(TWINS) | set(NUMPY_TWINS) == EXPECTED


def test_unknown_name_raises_with_suggestion():
    with pytest.raises(ValueError, match="did you mean 'adam'") as info:
        baselines.get("adamm")
    assert "lookahead" in str(info.value)  # the message lists the names
    with pytest.raises(ValueError, match="unknown baseline"):
        baselines.get("no-such-optimizer")
    with pytest.raises(TypeError):
        baselines.get(None)


def test_get_is_cached_and_case_insensitive():
    assert baselines.get("adam") is baselines.get("adam")
    assert baselines.get("Adam") is baselines.get("adam")


def test_kinds_and_docs():
    for name in baselines.names():
        b = baselines.get(name)
        assert baselines.is_program(name) and baselines.kind(b) == "program" and isinstance(b, Program)
        assert baselines.doc(name)
        assert (baselines.optax_twin(name) is None) == (name in NUMPY_TWINS)
        assert baselines.hyperparameters(name) is not None
    assert baselines.hyperparameters("adafactor")["decay_rate"] == 0.8
    assert baselines.hyperparameters("muon")["beta"] == 0.95
    assert baselines.hyperparameters("adam") == {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "eps_root": 0.0}
    assert baselines.hyperparameters("lion") == {"b1": 0.9, "b2": 0.99, "weight_decay": 1e-3}
    assert baselines.hyperparameters("adamw")["weight_decay"] == 1e-4


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_program_prints_back_and_reparses(name):
    p = baselines.get(name)
    assert p.name == name
    assert parse(str(p)) == p
    assert str(parse(str(p))) == str(p)
    assert parse(baselines.source(name)) == p


def test_programs_use_hero_functions_and_plain_division_only():
    from symopt.programs import HERO_FUNCTIONS
    from symopt.programs.functions import MATRIX_FUNCTIONS
    from symopt.programs.checker import calls

    for name in baselines.names():
        if baselines.is_program(name):
            allowed = set(HERO_FUNCTIONS) | {"neg", "divide"}
            if name in ("muon", "adafactor"):
                allowed |= set(MATRIX_FUNCTIONS)
            assert calls(baselines.get(name)) <= allowed, name
