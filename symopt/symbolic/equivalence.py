"""Numeric equivalence of two programs: the check that guards every exact rewrite.

:func:`equivalent` says whether a rewritten program (``after``) computes what
the original (``before``) computes, and :func:`mismatch` says where it does not.
They compare the update and the new value of every live state slot of
``before`` (see :mod:`symopt.programs.liveness`) on probes of what optimizers
meet:

* entries of ``w``, ``g`` and the state that are exact zeros (dead units,
  unused embeddings, a state at its first step), tiny (±1e-7, ±1e-30), huge
  (±1e30), negative, and standard normal; in four regimes (``normal``: normals
  and zeros; ``tiny``: tiny values and zeros; ``huge``: ±1e30 among normals;
  ``mixed``: all of these), each with a few entries where every input holds
  the same special value (all zero, all 1e-7, ...);
* several steps with the state carried over: the state starts at zero (as
  training does) or at random values from the same regime, and at each step
  both programs read the new state of ``before`` (lockstep, so a difference is
  not compounded); ``t`` counts the steps, from 1 or from 1001; ``lr`` is
  1e-3, 0.1, 0 (a warm-up's start) or 1;
* each probe in float64 and in float32 (the dtype training runs in), with
  the library's NumPy forms (:func:`symopt.programs.execute.run`).

``after`` matches when it is non-finite (NaN or ±inf) exactly where ``before``
is, and every finite entry is within the noise of ``before`` itself: 1e-6
relative, plus 16 times the largest change of ``before`` when its inexact constants
(those float32 cannot hold: 0.1, not 1.0) and inputs each move by a float32 rounding (2^-22 relative, up or down at
random; two such runs). Reordered arithmetic and folded constants stay inside
that noise, even where terms cancel (``interpolate(m, g, 0.28)`` for
``interpolate(interpolate(m, g, 0.1), g, 0.2)`` differs in one float32 ulp of a
constant, and ``0.28 * g - 0.72 * m`` may be a hundred times smaller than its
terms); changed mathematics does not: a guard of 1e-8 dropped from ``g / g``
changes the result at ``g = 1e-7`` by 9%, and ``exp(w) - 1`` for ``expm1(w)``
loses every digit at ``w = 1e-30``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from symopt.programs.execute import run
from symopt.programs.spaces import FlatSpace
from symopt.programs.program import Program
from symopt.programs.liveness import live_states

__all__ = ["Mismatch", "equivalent", "mismatch"]

STEPS = 3
"""Steps per probe trajectory, by default."""
REGIMES = ("normal", "tiny", "huge", "mixed")
RTOL = 1e-6
"""Relative tolerance of each finite entry, in float64 and float32 alike."""
NOISE = 16.0
"""Multiple of ``before``'s own sensitivity to float32 rounding that ``after`` may differ by."""
ROUNDING = 2.0 ** -22
"""The relative size of one perturbation of a constant or an input: one to two float32 ulps."""
LEARNING_RATES = (1e-3, 0.1, 0.0, 1.0)

# Three parameter tensors of 6, 9 and 13 entries: per-tensor norms and tree-wide sums see several.
_SHAPES = ((2, 3), (3, 3), (13,))  # a wide matrix, a square one and a vector, for the matrix functions
_SEGMENTS = np.repeat([0, 1, 2], [6, 9, 13])
_N = len(_SEGMENTS)
_ALIGNED = {"normal": (0.0,), "tiny": (0.0, 1e-7, -1e-30), "huge": (0.0, 1e30, -1e30),
            "mixed": (0.0, -1e-7, 1e-30, 1e30)}
_SPECIAL = {"normal": (0.0,), "tiny": (0.0, 1e-7, -1e-7, 1e-30, -1e-30), "huge": (1e30, -1e30),
            "mixed": (0.0, 1e-7, -1e-7, 1e-30, -1e-30, 1e30, -1e30)}


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """Where two programs differ: the output, the step, the dtype, the probe entry and both values."""

    output: str
    step: int
    dtype: str
    regime: str
    inputs: dict[str, float]
    before: float
    after: float

    def __str__(self) -> str:
        where = ", ".join(f"{k}={v:.3g}" for k, v in self.inputs.items())
        return (f"{self.output} at step {self.step} ({self.dtype}, {self.regime} probe; {where}): "
                f"{self.before:.7g} before, {self.after:.7g} after")


def equivalent(before: Program, after: Program, *, seed: int = 0, steps: int = STEPS) -> bool:
    """Whether ``after`` gives the update and live new state of ``before`` on every probe.

    False also when the two take different arguments. ``seed`` draws the probes
    (a check with another seed is an independent one).
    """
    if before.args != after.args:
        return False
    return mismatch(before, after, seed=seed, steps=steps) is None


def mismatch(before: Program, after: Program, *, seed: int = 0, steps: int = STEPS) -> Mismatch | None:
    """The first probe on which ``after`` differs from ``before`` (see the module docstring), or None.

    Raises ValueError when the two programs take different arguments.
    """
    if before.args != after.args:
        raise ValueError(f"the programs take different arguments: ({', '.join(before.args)}) "
                         f"and ({', '.join(after.args)})")
    outputs = ("update", *live_states(before))
    for k, regime in enumerate(REGIMES):
        for random_state in (False, True):
            rng = np.random.default_rng([seed, k, int(random_state)])
            lr = LEARNING_RATES[(k + random_state) % len(LEARNING_RATES)]
            probe = _Probe(before, regime, random_state, rng, lr, 1000 * random_state, steps)
            for dtype in (np.float64, np.float32):
                found = probe.compare(before, after, outputs, dtype)
                if found is not None:
                    return found
    return None


class _Probe:
    """One trajectory's inputs: fresh ``w`` and ``g`` at each step, a start state, ``lr`` and ``t``."""

    def __init__(self, program: Program, regime: str, random_state: bool, rng: np.random.Generator,
                 lr: float, t0: int, steps: int):
        self.regime = regime
        self.roles = {a: program.role(a) for a in program.args}
        tensors = [a for a, r in self.roles.items() if r in ("weight", "grad")]
        self.draws = [{a: _draw(regime, rng) for a in tensors} for _ in range(steps)]
        self.start = {s: (_draw(regime, rng) if random_state else np.zeros(_N)) for s in program.state_args}
        self.lr, self.t0 = lr, t0
        self.whole = {a for a, r in self.roles.items() if r == "step"}
        self.rounding_seed = int(rng.integers(2 ** 32))

    def inputs(self, step: int, state: dict, dtype) -> dict:
        values = {}
        for a, role in self.roles.items():
            if role in ("weight", "grad"):
                values[a] = self.draws[step - 1][a].astype(dtype)
            elif role == "lr":
                values[a] = dtype(self.lr)
            elif role == "step":
                values[a] = dtype(self.t0 + step)
            else:
                values[a] = state[a]
        return values

    def compare(self, before: Program, after: Program, outputs: tuple[str, ...], dtype) -> Mismatch | None:
        space = FlatSpace(np, _SEGMENTS, 3, _SHAPES)
        rng = np.random.default_rng(self.rounding_seed)
        state = {s: v.astype(dtype) for s, v in self.start.items()}
        for step in range(1, len(self.draws) + 1):
            inputs = self.inputs(step, state, dtype)
            with np.errstate(all="ignore"):
                expected = _outputs(before, space, inputs)
                got = _outputs(after, space, inputs)
                perturbed = [_outputs(before, _Rounded(rng), _rounded(inputs, self.whole, rng)) for _ in range(2)]
            for name in outputs:
                noise = _noise(expected[name], [p[name] for p in perturbed])
                bad = _first_difference(expected[name], got[name], noise, dtype)
                if bad is not None:
                    where = {a: float(np.broadcast_to(v, (_N,))[bad]) for a, v in inputs.items()}
                    return Mismatch(name, step, np.dtype(dtype).name, self.regime, where,
                                    float(expected[name][bad]), float(got[name][bad]))
            state = {s: expected[s].astype(dtype) for s in before.state_args}
        return None


class _Rounded(FlatSpace):
    """The probes' space with each constant that float32 cannot hold exactly moved by a float32 rounding, up or
    down at random (an exact one has no rounding to move it by)."""

    def __init__(self, rng: np.random.Generator):
        super().__init__(np, _SEGMENTS, 3, _SHAPES)
        self.rng = rng

    def const(self, value):
        exact = float(np.float32(value))
        if exact == value:  # 1.0, 0.5, 3.0: float32 holds it, so no rounding moves it (radam's 1 - on stays 0)
            return np.float32(exact)
        return np.float32(exact * (1.0 + self.rng.choice((-1.0, 1.0)) * ROUNDING))


def _rounded(inputs: dict, whole: set[str], rng: np.random.Generator) -> dict:
    """The inputs with each entry moved by a float32 rounding, up or down at random, except those in ``whole``."""
    out = {}
    for name, value in inputs.items():
        value = np.asarray(value)
        signs = rng.choice((-1.0, 1.0), value.shape)
        out[name] = value if name in whole else (value * (1.0 + signs * ROUNDING)).astype(value.dtype)
    return out


def _noise(expected: np.ndarray, perturbed: list[np.ndarray]) -> np.ndarray:
    """Per entry, how far ``before`` moves under rounding (inf where it turns non-finite)."""
    x = expected.astype(np.float64)
    noise = np.zeros(x.shape)
    for p in perturbed:
        p = p.astype(np.float64)
        with np.errstate(all="ignore"):
            moved = np.where(np.isfinite(p), np.abs(p - x), np.inf)
        noise = np.maximum(noise, moved)
    return noise


def _draw(regime: str, rng: np.random.Generator) -> np.ndarray:
    """One tensor input: the regime's aligned specials first, then a mix of its specials and normals."""
    aligned = np.array(_ALIGNED[regime], np.float64)
    rest = _N - len(aligned)
    special = rng.choice(_SPECIAL[regime], rest)
    if regime == "tiny":
        values = special * rng.uniform(1.0, 2.0, rest)
    else:
        normal = rng.normal(size=rest)
        values = np.where(rng.uniform(size=rest) < (0.2 if regime == "normal" else 0.4), special, normal)
    return np.concatenate([aligned, values])


def _outputs(program: Program, space: FlatSpace, inputs: dict) -> dict[str, np.ndarray]:
    update, *new = run(program, space, inputs)
    values = {"update": update, **dict(zip(program.state_args, new))}
    return {k: np.broadcast_to(np.asarray(v), (_N,)) for k, v in values.items()}


def _first_difference(x: np.ndarray, y: np.ndarray, noise: np.ndarray, dtype) -> int | None:
    """The first entry where y differs from x: finite where x is not (or the reverse), or outside the noise."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    fx, fy = np.isfinite(x), np.isfinite(y)
    tiny = float(np.finfo(dtype).tiny)
    with np.errstate(all="ignore"):
        far = np.abs(x - y) > RTOL * np.maximum(np.abs(x), np.abs(y)) + NOISE * noise + tiny
    bad = (fx != fy) | (fx & fy & far)
    return int(np.argmax(bad)) if bad.any() else None
