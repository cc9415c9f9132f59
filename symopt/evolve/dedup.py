"""Never train the same behaviour twice: a canonical hash and a behaviour fingerprint.

* :func:`canonical_hash` hashes what the dead-code-eliminated program computes,
  node by node (hero's hash tracker): names and statement order do not count,
  the arguments of commutative functions are sorted, nested ``+``, ``*``,
  ``max``, ``min`` are flattened, and only the update and the live state slots
  are hashed. SHA-256 throughout, so it is the same in every process.
* :func:`behaviour` runs the program with NumPy (the reference executor,
  each probe a tree of a vector, a wide and a tall matrix) on fixed random probes and hashes what
  it returns (AutoML-Zero's functional equivalence checking): trajectories of
  three steps with the state carried, from a zero state (steps 1-3) and from a
  random one (steps 1000-1002), with inputs of magnitude 1e-6, 1e-3, 1, 1e2 and
  1e4 and a mixed one whose entries range from 1e-8 to 1e4. All probe runs go
  through the program together, one row each (:class:`BatchSpace`). The effective update (times ``lr``
  when the program does not take it) and the live new states of every step
  are rounded to 20 significant bits (about 6 decimal digits, finer than any
  difference float32 training can show) and hashed. Programs that differ
  anywhere on these probes get different fingerprints; ones equal to six
  digits on all of them are treated as the same optimizer.
* The same probes tell whether an update *can change the weights*: if the
  update is the same (to the same rounding) when ``g`` and ``w`` are replaced
  by other values, on every probe, the program is rejected before training
  (constant or zero updates, ``g - g``, updates that are NaN everywhere).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from typing import Any

import numpy as np

from symopt.programs.execute import ROLES, bind, run
from symopt.programs.spaces import matrix_view, Space
from symopt.programs.liveness import eliminate_dead_code, live_states
from symopt.programs.program import Const, Expr, Program, Var

# --- canonical hash ------------------------------------------------------------------------------

COMMUTATIVE = {"+", "*", "max", "min", "dot", "cosine_sim"}
ASSOCIATIVE = {"+", "*", "max", "min"}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


class _Hasher:
    """Hash-consing over a program's values: each value's digest from its function and operands."""

    def __init__(self):
        self.flat: dict[str, tuple[str, tuple[str, ...]]] = {}  # digest -> (fn, operands) of + * max min

    def node(self, expr: Expr, env: dict[str, str]) -> str:
        if isinstance(expr, Const):
            return _digest("const", repr(expr.value))
        if isinstance(expr, Var):
            return env[expr.name]
        operands = [self.node(a, env) for a in expr.args]
        if expr.fn in ASSOCIATIVE:
            flat = []
            for d in operands:
                inner = self.flat.get(d)
                flat.extend(inner[1] if inner and inner[0] == expr.fn else (d,))
            operands = flat
        if expr.fn in COMMUTATIVE:
            operands = sorted(operands)
        d = _digest("call", expr.fn, *operands)
        if expr.fn in ASSOCIATIVE:
            self.flat[d] = (expr.fn, tuple(operands))
        return d


def canonical_hash(program: Program) -> str:
    """SHA-256 of what the program computes, independent of names, order and dead code."""
    p = eliminate_dead_code(program, rename=False)
    states = p.state_args
    env = {}
    for a in p.args:
        role = p.role(a)
        env[a] = _digest("arg", role if role != "state" else f"state{states.index(a)}")
    hasher = _Hasher()
    for stmt in p.body:
        env[stmt.target] = hasher.node(stmt.value, env)
    live = set(live_states(p))
    parts = ["args", *(p.role(a) for a in p.args), "update", hasher.node(p.returns[0], env)]
    for i, (s, ret) in enumerate(zip(states, p.returns[1:])):
        if s in live:
            parts += [f"state{i}", hasher.node(ret, env)]
    return _digest(*parts)


# --- behaviour fingerprint -----------------------------------------------------------------------

SHAPES = ((3,), (2, 4), (5, 3))
"""The probe tree: a vector, a wide and a tall matrix (the matrix functions see them as such)."""
SEGMENTS = tuple(math.prod(s) for s in SHAPES)
SCALES = (1e-6, 1e-3, 1.0, 1e2, 1e4)
STEPS = 3
BITS = 20


class BatchSpace(Space):
    """Many probe runs at once: a tensor is an array [rows, n] (one run per row), a scalar [rows, 1].

    Reductions act within a row: ``total`` over the row, ``per_tensor`` over each
    segment of it, so every row is an independent run on a tree of ``len(segments)``
    tensors.
    """

    xp = np

    def __init__(self, shapes: tuple[tuple[int, ...], ...]):
        self.shapes = shapes
        segments = [math.prod(s) for s in shapes]
        self.ids = np.repeat(np.arange(len(segments)), segments)
        self.n = sum(segments)

    def const(self, value):
        return np.float32(value)

    def map(self, f, *args):
        return f(*args)

    def _tensor(self, x) -> bool:
        return np.ndim(x) == 2 and x.shape[1] == self.n

    def total(self, x):
        return x.sum(axis=1, keepdims=True) if self._tensor(x) else x

    def per_tensor(self, x):
        if not self._tensor(x):
            return x
        sums = np.zeros((x.shape[0], int(self.ids.max()) + 1), x.dtype)
        np.add.at(sums.T, self.ids, x.T)
        return sums[:, self.ids]

    def matrices(self, f, x):
        if not self._tensor(x):
            return x
        pieces, start = [], 0
        for shape in self.shapes:
            size = math.prod(shape)
            view = x[:, start:start + size].reshape(x.shape[0], *matrix_view(shape))
            pieces.append(f(view, len(shape)).reshape(x.shape[0], size))
            start += size
        return np.concatenate(pieces, axis=1)


@dataclasses.dataclass(frozen=True)
class _Probes:
    """Inputs of all probe rows, step by step, and which rows are twins of which."""

    steps: tuple[dict, ...]  # per step: role -> array [rows, n] or [rows, 1]
    state: np.ndarray  # [slots, rows, n]: initial state (zero on the rows that start from zero)
    main: np.ndarray  # row indices whose twins are ...
    twin: np.ndarray  # ... these rows (same lr, t and state, other g and w)


@functools.cache
def _probes() -> _Probes:
    rng = np.random.default_rng(20240611)
    n = sum(SEGMENTS)
    draws = []  # one per row: (draw function, t of step 1, lr, random state?)
    for scale in SCALES:
        normal = functools.partial(lambda s: s * rng.standard_normal(n), scale)
        draws += [(normal, 1, 0.01, False), (normal, 1000, 0.3, True)]
    mixed = lambda: rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-8, 4, n)  # noqa: E731
    draws += [(mixed, 1, 0.001, False), (mixed, 50, 0.05, True)]
    main = [i for i, d in enumerate(draws) if not d[3]]
    draws += [draws[i] for i in main]  # twins: the zero-state rows again, with new g and w
    twin = list(range(len(draws) - len(main), len(draws)))
    rows = len(draws)
    steps = []
    for k in range(STEPS):
        steps.append({
            "weight": np.stack([d[0]() for d in draws]),
            "grad": np.stack([d[0]() for d in draws]),
            "lr": np.array([[d[2]] for d in draws]),
            "step": np.array([[float(d[1] + k)] for d in draws]),
        })
    state = np.stack([np.stack([d[0]() if d[3] else np.zeros(n) for d in draws]) for _ in range(4)])
    assert state.shape == (4, rows, n)
    return _Probes(tuple(steps), state, np.array(main), np.array(twin))


def quantize(x) -> np.ndarray:
    """Values rounded to :data:`BITS` significant bits, as integer codes; NaN, +-inf and -0 made canonical."""
    x = np.asarray(x, np.float64)
    m, e = np.frexp(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0))
    q = np.rint(m * 2.0 ** BITS).astype(np.int64)
    over = np.abs(q) == 2 ** BITS  # rounding up to the next power of two: renormalise
    q[over] //= 2
    e = e.astype(np.int64)
    e[over] += 1
    e[q == 0] = 0
    q[np.isnan(x)] = 3 << 40
    q[np.isposinf(x)] = 5 << 40
    q[np.isneginf(x)] = -(5 << 40)
    return q * 4096 + e


@dataclasses.dataclass(frozen=True)
class Behaviour:
    """A program's fingerprint, and whether its update depends on the gradient or the weights."""

    fingerprint: str
    changes_weights: bool


def behaviour(program: Program) -> Behaviour:
    """The program's behaviour fingerprint on the fixed probes; see the module docstring."""
    probes = _probes()
    space = BatchSpace(SHAPES)
    rows, n = probes.state.shape[1:]
    live = live_states(program)
    slots = program.state_args
    state = {s: probes.state[i % len(probes.state)] for i, s in enumerate(slots)}
    hashed = []  # per step: the update, then each live new state; quantized together below
    with np.errstate(all="ignore"):
        for step in probes.steps:
            inputs = bind(program, state, **{role: step[role] for role in ROLES})
            update, *new = run(program, space, inputs)
            if not program.has_lr:
                update = update * step["lr"]
            new = {s: np.broadcast_to(np.asarray(v, np.float64), (rows, n)) for s, v in zip(slots, new)}
            hashed += [np.broadcast_to(update, (rows, n))] + [new[s] for s in live]
            state = new
        q = quantize(np.stack(hashed))  # one call: the same codes as one call per array
    h = hashlib.sha256(",".join(program.role(a) for a in program.args).encode())
    for block in q:
        h.update(block.tobytes())
    updates = q[::1 + len(live)]
    depends = not np.array_equal(updates[:, probes.main], updates[:, probes.twin])
    return Behaviour(h.hexdigest(), depends)


# --- the cache and the counts -------------------------------------------------------------------


@dataclasses.dataclass
class CacheEntry:
    """What the first program with a given hash or fingerprint scored."""

    id: int
    fitness: float
    result: Any = None


class Cache:
    """Fitness by canonical hash and by behaviour fingerprint (either one is a hit)."""

    def __init__(self):
        self.by_hash: dict[str, CacheEntry] = {}
        self.by_fingerprint: dict[str, CacheEntry] = {}

    def lookup(self, canonical: str, fingerprint: str) -> CacheEntry | None:
        hit = self.by_hash.get(canonical) or self.by_fingerprint.get(fingerprint)
        if hit is not None:  # remember the other key too, so the next lookup is a hash hit
            self.by_hash.setdefault(canonical, hit)
            self.by_fingerprint.setdefault(fingerprint, hit)
        return hit

    def add(self, canonical: str, fingerprint: str, entry: CacheEntry) -> None:
        self.by_hash.setdefault(canonical, entry)
        self.by_fingerprint.setdefault(fingerprint, entry)

    def __len__(self) -> int:
        return len(self.by_fingerprint)


@dataclasses.dataclass
class Stats:
    """Counts over a search.

    ``generated``: programs produced by a mutation operator (every step of every
    child); ``invalid``: those rejected before training (shape or type errors,
    longer than the space allows, an update that cannot change the weights);
    ``unchanged``: those that behave exactly like their parent (kept as a base
    for further mutation, never trained); ``children``: programs handed on to
    the population (valid, behaving differently from the parent);
    ``cache_hits``: children whose hash or fingerprint was trained before;
    ``evaluated``: children trained (and the start program); ``failed``: parents
    for which no valid, different child came within ``max_tries`` steps. ``statements``/``dead_statements``: over
    all children, how many statements they have and how many of those
    dead-code elimination removes.
    """

    generated: int = 0
    invalid: int = 0
    unchanged: int = 0
    children: int = 0
    failed: int = 0
    cache_hits: int = 0
    evaluated: int = 0
    statements: int = 0
    dead_statements: int = 0

    @property
    def cache_hit_rate(self) -> float:
        """Share of children that were not trained because their behaviour had been."""
        return self.cache_hits / self.children if self.children else 0.0

    @property
    def dead_fraction(self) -> float:
        """Share of the children's statements that cannot affect the weights."""
        return self.dead_statements / self.statements if self.statements else 0.0

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "cache_hit_rate": self.cache_hit_rate,
                "dead_fraction": self.dead_fraction}
