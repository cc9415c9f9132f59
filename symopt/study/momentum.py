"""Does a program hold momentum? The detector of the study's part (d) (``symopt study --parts d``).

Momentum, as the issue puts it, is "a state slot tracing g that reaches the
update" (:func:`momentum_found`). Tracing g: a *leaky* slot (:func:`leaky_slots`,
on the SymPy form), ``s <- a * s + f(g, ...)`` with a constant 0 < a < 1 and
an input ``f`` that reads g and not s: the slot forgets geometrically and takes
in the gradient, plain (an EMA, :func:`ema_slots`: ``f = b * g``), clipped,
scaled by a schedule or mixed with other values. Reaching the update is judged
by behaviour, not by text: :func:`has_momentum` runs the
program two steps from a zero state with gradients ``+d`` then ``g2`` and
``-d`` then ``g2``; the update of the second step moves with ``d`` (positive
correlation) only if a state slot carried the first gradient into it. A
second-moment accumulator alone (``v`` from ``g * g``, leaky in RMSProp) cannot
do that, as ``(+d)^2 = (-d)^2``. "Moves with" means a correlation above 0.1
between the change of the update and ``d`` over 4,096 entries (Lion's sign of
a 0.99-EMA passes with about 0.3; chance correlations are about 0.016).

The Lion family (the study's part (e)), :func:`sign_of_momentum`: momentum as
above whose update reads ``sign(x)`` of a value computed from a slot that traces g with
its sign: Lion and signum, not the sign of a second moment; AddSign and
PowerSign, which gate g by ``sign(g) sign(m)``, count too.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from symopt.programs.execute import bind, run
from symopt.programs.spaces import FlatSpace
from symopt.programs.liveness import eliminate_dead_code, live_states
from symopt.programs.program import Call, Program, names_in, walk
from symopt.symbolic.exact_form import Unprintable, symbol, to_sympy_outputs


def _steps(program: Program, grads, w) -> tuple[np.ndarray, list[np.ndarray]]:
    """Run ``program`` from the zero state with gradient ``grads[k]`` at step ``k + 1``: the last update and
    the new state of each slot (float64 vectors shaped like ``w``)."""
    n = w.shape[0]
    space = FlatSpace(np)
    state = {s: np.zeros(n) for s in program.state_args}
    update = None
    for t, g in enumerate(grads, 1):
        inputs = bind(program, state, weight=w, grad=g, lr=np.float64(0.01), step=np.float64(t))
        update, *new = run(program, space, inputs)
        state = {s: np.broadcast_to(np.asarray(v, np.float64), (n,)) for s, v in zip(program.state_args, new)}
    return np.broadcast_to(np.asarray(update, np.float64), (n,)), list(state.values())


def has_momentum(program: Program, threshold: float = 0.1) -> bool:
    """Whether the update carries the previous gradient forward, in its direction (see module docstring)."""
    rng = np.random.default_rng(0)
    n = 4096  # many independent entries: a chance correlation is about 1/64, far below the threshold
    d, g2, w = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n)
    with np.errstate(all="ignore"):
        diff = _steps(program, (d, g2), w)[0] - _steps(program, (-d, g2), w)[0]
    if not np.all(np.isfinite(diff)) or not np.any(diff):
        return False
    return float(diff @ d / (np.linalg.norm(diff) * np.linalg.norm(d))) > threshold


def _slot_forms(program: Program):
    """(slot symbol, gradient symbol, expanded new value) for each live state slot."""
    grad = program.arg_for("grad")
    if grad is None:
        return []
    try:
        outputs = to_sympy_outputs(program)
    except Unprintable:  # a slot holds a constant that is not finite (m = -inf): it traces nothing
        return []
    g = symbol(program, grad)
    return [(symbol(program, slot), g, sp.expand(outputs[slot])) for slot in live_states(program)]


def ema_slots(program: Program) -> list[str]:
    """Live state slots that hold an EMA of the gradient: ``s <- a * s + b * g``, constants 0 < a < 1, b != 0."""
    found = []
    for s, g, expr in _slot_forms(program):
        a, b = expr.coeff(s), expr.coeff(g)
        if a.is_number and b.is_number and 0 < float(a) < 1 and float(b) != 0 and _zero(expr - a * s - b * g):
            found.append(s.name)
    return found


def leaky_slots(program: Program) -> list[str]:
    """Live state slots that trace the gradient: ``s <- a * s + f``, constant 0 < a < 1, ``f`` reads g and not s."""
    found = []
    for s, g, expr in _slot_forms(program):
        a = expr.coeff(s)
        if not (a.is_number and 0 < float(a) < 1):
            continue
        rest = expr - a * s
        if s not in rest.free_symbols and g in rest.free_symbols:
            found.append(s.name)
    return found


def momentum_found(program: Program) -> bool:
    """Momentum as the issue means it: a state slot tracing g (:func:`leaky_slots`) and an update that moves
    with the previous gradient (:func:`has_momentum`)."""
    return bool(leaky_slots(program)) and has_momentum(program)


def directional_slots(program: Program, agreement: float = 0.75) -> list[str]:
    """State slots whose sign follows the gradient's: after a first step from zero with gradient ``+d`` and
    with ``-d``, the slot has the sign of ``d`` and of ``-d`` on more than ``agreement`` of the entries. A
    momentum does (its sign is what Lion's update takes); a second moment (``g * g``, never negative) cannot."""
    rng = np.random.default_rng(1)
    n = 4096
    d, w = rng.standard_normal(n), rng.standard_normal(n)
    with np.errstate(all="ignore"):
        pairs = list(zip(program.state_args, _steps(program, (d,), w)[1], _steps(program, (-d,), w)[1]))
    return [s for s, plus, minus in pairs
            if float(np.mean((np.sign(plus) == np.sign(d)) & (np.sign(minus) == -np.sign(d)))) > agreement]


def sign_of_momentum(program: Program) -> bool:
    """The Lion family: momentum (:func:`momentum_found`) and an update that reads ``sign(x)``, where ``x``
    reads a state slot that traces g (:func:`leaky_slots`) with its sign (:func:`directional_slots`),
    directly or through the names computed from it."""
    p = eliminate_dead_code(program, rename=False)
    traced = set(leaky_slots(p)) & set(directional_slots(p))
    if not traced:
        return False
    reads = {a: {a} for a in p.args}  # name -> the arguments its value is computed from

    def sources(expr) -> set[str]:
        return set().union(*(reads.get(n, {n}) for n in names_in(expr)))

    signs: dict[str, bool] = {a: False for a in p.args}  # name -> whether its value passed through sign(traced)

    def through_sign(expr) -> bool:
        """``expr`` reads a name that passed through ``sign(traced)``, or takes that sign itself."""
        return any(signs.get(n, False) for n in names_in(expr)) or any(
            isinstance(e, Call) and e.fn == "sign" and bool(sources(e.args[0]) & traced) for e in walk(expr))

    for stmt in p.body:
        signs[stmt.target] = through_sign(stmt.value)
        reads[stmt.target] = sources(stmt.value)
    return through_sign(p.returns[0]) and has_momentum(p)


def _zero(expr) -> bool:
    """Whether SymPy shows ``expr`` to be 0 (expansion first; simplify, which can raise on Max(nan, ...), second)."""
    rest = sp.expand(expr)
    if rest == 0:
        return True
    try:
        return sp.simplify(rest) == 0
    except (ValueError, TypeError):  # "The argument 'nan' is not comparable", from Max/Min
        return False
