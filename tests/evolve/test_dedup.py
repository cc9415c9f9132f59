"""Canonical hash and behaviour fingerprint: equal programs written differently merge, different ones never do."""

import subprocess
import sys

import numpy as np
import pytest

from symopt.programs import parse
from symopt.programs.execute import run
from symopt.programs.spaces import FlatSpace
from symopt.evolve.dedup import BatchSpace, Cache, CacheEntry, Stats, behaviour, canonical_hash
from symopt.config.start import HERO_ADAMW

ADAMW = parse(HERO_ADAMW)


def program(body: str, returns: str = "update, m, v"):
    lines = "".join(f"    {line.strip()}\n" for line in body.strip().splitlines())
    return parse(f"def train(w, g, m, v, lr):\n{lines}    return {returns}\n")


ADAMW_REWRITTEN = program("""
    v = interpolate(v, square(g), 0.001)
    junk = exp(w)
    mom = interpolate(m, g, 0.1)
    u = lr * (0.0001 * w + mom / (1e-8 + sqrt(v)))
""", returns="u, mom, v")


def test_same_program_written_differently_merges():
    assert canonical_hash(ADAMW) == canonical_hash(ADAMW_REWRITTEN)
    assert behaviour(ADAMW) == behaviour(ADAMW_REWRITTEN)


def test_algebraically_equal_programs_share_a_fingerprint_only():
    a, b = program("update = (g + g) * lr"), program("update = 2.0 * g * lr")
    assert canonical_hash(a) != canonical_hash(b)
    assert behaviour(a).fingerprint == behaviour(b).fingerprint
    # an unused state update does not count either
    c = program("update = 2.0 * g * lr\nv = v + g")
    assert canonical_hash(c) == canonical_hash(b) and behaviour(c) == behaviour(b)


@pytest.mark.parametrize("a, b", [
    ("update = g * lr", "update = tanh(g) * lr"),                 # agree on small inputs, differ on large
    ("update = g * lr", "update = sin(g) * lr"),
    ("update = g * lr", "update = min(max(g, -100.0), 100.0) * lr"),  # a clip that only large inputs reach
    ("update = g * lr", "update = clip_by_global_norm(g, 1000.0) * lr"),
    ("update = m / (sqrt(v) + 1e-8) * lr\nm = m + g\nv = v + g * g",    # differ only on tiny inputs
     "update = m / (sqrt(v) + 1e-6) * lr\nm = m + g\nv = v + g * g"),
    ("update = g * lr", "update = g * lr * 1.0001"),
    ("update = m * lr\nm = interpolate(m, g, 0.1)", "update = m * lr\nm = interpolate(m, g, 0.1001)"),
    ("update = g * lr\nm = m + g", "update = (g + 1e-4 * m) * lr\nm = m + g"),           # state read later
    ("update = g * lr", "update = g * lr * min(1.0, exp(2000.0 - lr * 10000.0))"),        # differs at lr 0.3 only
])
def test_different_behaviour_never_merges(a, b):
    pa, pb = program(a), program(b)
    assert behaviour(pa).fingerprint != behaviour(pb).fingerprint
    assert canonical_hash(pa) != canonical_hash(pb)


def test_update_must_depend_on_gradient_or_weights():
    assert behaviour(ADAMW).changes_weights
    assert behaviour(program("update = w * 0.01 * lr")).changes_weights
    for body in ["update = lr * 0.5", "update = (g - g) * lr", "update = sqrt(-1.0 - abs(g)) * 0.0 + lr",
                 "update = arccosh(0.5 - abs(g)) * lr"]:
        assert not behaviour(program(body)).changes_weights, body


def test_batch_space_rows_match_flat_space_runs():
    p = program("""
        x = global_norm(g) + norm(w) * dot(g, w)
        update = clip_by_global_norm(g, 0.5) * x + cosine_sim(g, m) * lr + orthogonalize(m) * is_matrix(g)
        update = update + row_mean(g) * col_mean(w) / rows(g) + cols(w)
        m = interpolate(m, g, 0.1)
    """)
    rng = np.random.default_rng(0)
    shapes = ((3,), (5,), (2, 4))
    segments = (3, 5, 8)
    rows = [{"w": rng.normal(size=16), "g": rng.normal(size=16), "m": rng.normal(size=16),
             "v": np.zeros(16), "lr": 0.01 * (i + 1)} for i in range(4)]
    batched = run(p, BatchSpace(shapes), {k: np.stack([np.atleast_1d(r[k]) for r in rows])
                                          if k != "lr" else np.array([[r[k]] for r in rows]) for k in rows[0]})
    flat = FlatSpace(np, np.repeat(np.arange(3), segments), 3, shapes)
    for i, r in enumerate(rows):
        single = run(p, flat, r)
        for got, want in zip(batched, single):
            np.testing.assert_allclose(np.broadcast_to(got, (4, 16))[i], np.broadcast_to(want, (16,)), rtol=1e-12)


@pytest.mark.slow
def test_canonical_hash_is_stable_across_processes():
    code = ("from symopt.programs import parse; from symopt.evolve.dedup import canonical_hash, behaviour;"
            "from symopt.config.start import HERO_ADAMW; p = parse(HERO_ADAMW);"
            "print(canonical_hash(p), behaviour(p).fingerprint)")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed, "PATH": "", "PYTHONPATH": ":".join(sys.path)}).stdout
            for seed in ("1", "2")}
    assert outs == {f"{canonical_hash(ADAMW)} {behaviour(ADAMW).fingerprint}\n"}


def test_cache_and_stats():
    cache = Cache()
    entry = CacheEntry(3, 0.5)
    cache.add("h1", "f1", entry)
    assert cache.lookup("h1", "other") is entry and cache.lookup("other", "f1") is entry
    assert cache.lookup("h2", "f2") is None
    assert cache.by_hash["other"] is entry  # learned
    s = Stats(children=10, cache_hits=9, evaluated=1, statements=10, dead_statements=7)
    assert s.cache_hit_rate == 0.9 and s.dead_fraction == 0.7
    assert s.as_dict()["cache_hit_rate"] == 0.9
