"""Random well-formed programs over the whole function library, from a stream of integer choices.

:func:`random_program` builds a program from ``choose(n)``, a function that
returns an integer in ``[0, n)``. One generator thus serves a NumPy Generator
(:func:`numpy_chooser`, for benchmarks) and Hypothesis (``lambda n:
data.draw(st.integers(0, n - 1))``, which shrinks a failing program to a
small one). Programs read ``w, g, m, v, lr`` (and ``t`` when chosen), nest
calls of any library function (shapes checked as they are built), use
constants from what optimizers write (0.9, 1e-8, ...) and the extremes
(0, 1e30), and carry state: statements may assign ``m`` and ``v``, whose old
values any later expression may read.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from symopt.programs.checker import check
from symopt.programs.functions import FUNCTIONS, Kind, ShapeError
from symopt.programs.program import Assign, Call, Const, Expr, Program, Var

__all__ = ["CONSTANTS", "numpy_chooser", "random_program"]

Choose = Callable[[int], int]

CONSTANTS = (0.0, 1.0, -1.0, 2.0, 0.5, -0.5, 3.0, 0.1, 0.9, 0.99, 0.999, 1e-3, 1e-8, 1e-30, 1e30, 10.0)
"""Constants programs meet: small integers, EMA rates, epsilons, and the extremes."""

CALLABLE = tuple(sorted(n for n in FUNCTIONS if n != "neg"))
"""Every library function a program can call (unary minus is drawn on its own)."""


def numpy_chooser(rng: np.random.Generator) -> Choose:
    """``choose(n)`` drawing from a NumPy Generator."""
    return lambda n: int(rng.integers(n))


def random_program(choose: Choose, *, functions=CALLABLE, max_statements: int = 5, max_depth: int = 3) -> Program:
    """A checked program of up to ``max_statements`` statements, expressions nested up to ``max_depth``."""
    states = (("m",), ("m", "v"), ())[choose(3)]
    args = ("w", "g", *states, "lr") + (("t",) if choose(2) else ())
    kinds = {a: (Kind.SCALAR if a in ("lr", "t") else Kind.TENSOR) for a in args}
    targets = ["update", *states] + [f"x{i}" for i in range(1, 4)]
    body = []
    for _ in range(choose(max_statements)):
        target = targets[choose(len(targets))]
        value, kind = _expression(choose, kinds, functions, max_depth)
        body.append(Assign(target, value))
        kinds[target] = kind
    # the last statement is the update, reading what came before (as hero's programs end)
    body.append(Assign("update", _expression(choose, kinds, functions, max_depth)[0]))
    program = Program(args, tuple(body), (Var("update"), *(Var(s) for s in states)), "train")
    check(program)
    return program


def _constant(choose: Choose) -> Const:
    if choose(3):
        return Const(CONSTANTS[choose(len(CONSTANTS))])
    mantissa = 1 + choose(99) / 10.0
    return Const(mantissa * 10.0 ** (choose(9) - 5) * (1 if choose(4) else -1))


def _expression(choose: Choose, kinds: dict[str, Kind], functions, depth: int) -> tuple[Expr, Kind]:
    """(expression, kind) over the names in ``kinds``; a call whose shapes do not fit becomes its first argument."""
    if depth <= 0 or choose(4) == 0:
        if choose(4):
            names = list(kinds)[::-1]  # the names assigned last first: a shrinking draw reads them
            name = names[min(choose(len(names)), choose(len(names)))]
            return Var(name), kinds[name]
        return _constant(choose), Kind.SCALAR
    if choose(12) == 0:
        inner, kind = _expression(choose, kinds, functions, depth - 1)
        return (Const(-inner.value) if isinstance(inner, Const) else Call("neg", (inner,))), kind
    fn = functions[choose(len(functions))]
    args = [_expression(choose, kinds, functions, depth - 1) for _ in range(FUNCTIONS[fn].arity)]
    try:
        kind = FUNCTIONS[fn].shape(tuple(k for _, k in args))
    except ShapeError:
        return args[0]
    return Call(fn, tuple(e for e, _ in args)), kind
