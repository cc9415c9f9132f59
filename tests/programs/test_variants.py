"""The Adam variants of study part h: those with an optax twin match it step for step, the others their paper."""

from __future__ import annotations

import numpy as np
import optax
import optax.contrib
import pytest
from tests.programs.test_baselines import assert_matches_twin, run_many

from symopt.export.optax_export import to_optax
from symopt.programs import baselines, variants

LR = 1e-3
TWINS = {
    "amsgrad": optax.amsgrad,
    "adamax": optax.adamax,
    "adabelief": optax.adabelief,
    "adopt": optax.contrib.adopt,
    "ademamix": optax.contrib.ademamix,
}


@pytest.fixture(scope="module")
def trajectories():
    specs = {}
    for name, twin in TWINS.items():
        specs[f"ours/{name}"] = (to_optax(variants.get(name), learning_rate=LR), False)
        specs[f"optax/{name}"] = (twin(LR), False)
    return run_many(specs)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TWINS))
def test_matches_its_optax_twin(name, trajectories):
    assert_matches_twin(name, trajectories[f"ours/{name}"][0], trajectories[f"optax/{name}"][0])


def test_every_variant_has_a_momentum_decay_that_part_h_can_set():
    for name in variants.names():
        program = variants.get(name)
        assert program.with_constant("b1", 0.35) != program, name


def _run(program, grads):
    """The program's update at each step (optax's update is minus it at learning rate 1)."""
    opt = to_optax(program, learning_rate=1.0)
    params = np.zeros_like(grads[0])
    state, updates = opt.init(params), []
    for g in grads:
        u, state = opt.update(g, state, params)
        updates.append(-np.asarray(u))
    return updates


def test_cautious_zeroes_the_components_that_disagree_with_the_gradient_and_keeps_the_norm():
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(50,)).astype(np.float32) for _ in range(6)]
    cautious = _run(variants.get("cautious"), grads)
    adam = _run(baselines.get("adam"), grads)
    for g, u, a in zip(grads, cautious, adam):
        assert np.all(u * g >= 0)
        kept = a * g > 0
        np.testing.assert_allclose(u[kept] / a[kept], np.linalg.norm(a) / np.linalg.norm(a[kept]), rtol=1e-4)
    # From the second step the momentum disagrees with g somewhere: those components are dropped, the
    # direction's norm is kept.
    assert max(np.count_nonzero(u == 0) for u in cautious[1:]) > 0
    for u, a in zip(cautious, adam):
        np.testing.assert_allclose(np.linalg.norm(u), np.linalg.norm(a), rtol=1e-5)


def test_laprop_averages_the_normalised_gradient():
    rng = np.random.default_rng(1)
    grads = [rng.normal(scale=s, size=(20,)).astype(np.float32) for s in (1.0, 5.0, 0.2, 3.0)]
    b1, b2, eps = 0.9, 0.999, 1e-8
    mu, nu, expected = np.zeros(20), np.zeros(20), []
    for t, g in enumerate(grads, 1):
        nu = (1 - b2) * g ** 2 + b2 * nu
        mu = (1 - b1) * g / (np.sqrt(nu / (1 - b2 ** t)) + eps) + b1 * mu
        expected.append(mu / (1 - b1 ** t))
    ours = _run(variants.get("laprop"), grads)
    # float32's 1 - 0.999^t carries a relative error near 1e-4; a wrong order of normalising and averaging
    # is off by far more (the gradients' scales differ 25-fold)
    np.testing.assert_allclose(np.array(ours), np.array(expected), rtol=5e-4)


def test_an_unknown_variant_names_the_known_ones():
    with pytest.raises(KeyError, match="adabelief"):
        variants.get("adam_x")
