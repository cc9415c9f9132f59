"""What every export of a program shares: how its state slots are stored and what its hyperparameters are.

Framework-free (any array with ``.ndim``, ``.shape`` and slicing): :func:`symopt.to_optax`, the
modules of :func:`symopt.export_source` and :func:`symopt.to_torch` all store a slot and name a
hyperparameter this way.
"""

from __future__ import annotations

from symopt.programs.execute import hyperparameters
from symopt.programs.functions import FACTORED, Kind
from symopt.programs.program import Const, Program


def stored_shape(shape: tuple[int, ...], kind: Kind) -> tuple[int, ...]:
    """How a state slot of this kind stores a leaf of this shape: a factored one keeps a row (ROWS: one number per
    row of the leaf's matrix view) or a column (COLS) of it; every other one the whole leaf."""
    if kind not in FACTORED or not shape:
        return tuple(shape)
    if kind == Kind.ROWS:
        return (*shape[:-1], 1) if len(shape) >= 2 else tuple(shape)
    return (1,) * (len(shape) - 1) + (shape[-1] if len(shape) >= 2 else 1,)


def factor(x, kind: Kind):
    """A full leaf of a factored slot (constant along its columns, or its rows) as the slot stores it."""
    if kind not in FACTORED or not x.ndim:
        return x
    return x[tuple(slice(0, 1) if size != want else slice(None)
                   for size, want in zip(x.shape, stored_shape(tuple(x.shape), kind)))]


def as_written(program: Program) -> set[str]:
    """The hyperparameters assigned different constants in two places: an override replaces both, so their
    default is None, "keep each as written" (the first value as default would change the program)."""
    return {k for k in hyperparameters(program)
            if len({s.value.value for s in program.body if s.target == k and isinstance(s.value, Const)}) > 1}


def defaults(program: Program) -> dict[str, float | None]:
    """Each hyperparameter's default as an exported optimizer's argument: its constant, or None (:func:`as_written`)."""
    repeated = as_written(program)
    return {k: None if k in repeated else v for k, v in hyperparameters(program).items()}
