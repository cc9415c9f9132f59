"""Running a program directly, statement by statement, on values stored in a :class:`Space`.

This is the reference semantics: the optax export runs programs this way on
parameter trees, tests run them on NumPy arrays, and the compile-once
interpreter must agree with it.
"""

from __future__ import annotations

from typing import Any, Mapping

from symopt.programs.functions import FUNCTIONS

from symopt.programs.spaces import Space
from symopt.programs.program import Call, Const, Expr, Program, Var


def hyperparameters(program: Program) -> dict[str, float]:
    """Names assigned a plain constant (``b1 = 0.9``): the knobs that can be overridden."""
    found: dict[str, float] = {}
    for stmt in program.body:
        if isinstance(stmt.value, Const) and stmt.target not in found:
            found[stmt.target] = stmt.value.value
    return found


def check_overrides(program: Program, overrides: Mapping[str, Any]) -> None:
    """Raise ValueError naming any override that is not a hyperparameter of the program."""
    known = hyperparameters(program)
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        listing = ", ".join(f"{k}={v!r}" for k, v in known.items()) or "none"
        raise ValueError(f"program {program.name!r} has no hyperparameter {', '.join(map(repr, unknown))}; "
                         f"its hyperparameters (names assigned a constant) are: {listing}")


ROLES = ("weight", "grad", "lr", "step")
"""The argument roles that are inputs of a step; every other argument is a state slot."""


def bind(program: Program, state: Mapping[str, Any], **roles: Any) -> dict[str, Any]:
    r"""The inputs of :func:`run`: ``state`` (slot -> value) and each role's value (``weight=``, ``grad=``,
    ``lr=``, ``step=``) under the argument that plays it; roles the program has no argument for are dropped.

    >>> from symopt.programs.parser import parse
    >>> bind(parse("def f(params, g, m):\n    return g, m"), {"m": 0.0}, weight=1.0, grad=2.0, lr=0.1)
    {'m': 0.0, 'params': 1.0, 'g': 2.0}
    """
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise TypeError(f"unknown roles {sorted(unknown)}; the roles are {', '.join(ROLES)}")
    inputs = dict(state)
    for role in ROLES:
        arg = program.arg_for(role)
        if arg is not None and role in roles:
            inputs[arg] = roles[role]
    return inputs


def run(program: Program, space: Space, inputs: Mapping[str, Any],
        overrides: Mapping[str, Any] | None = None) -> tuple:
    """The program's returned values, ``(update, *new_state)``, for the given argument values.

    ``overrides`` replaces the constant of a hyperparameter statement
    (``b1 = 0.9``) by a value, which may be a traced array.
    """
    overrides = overrides or {}
    env = dict(inputs)
    for stmt in program.body:
        if stmt.target in overrides and isinstance(stmt.value, Const):
            env[stmt.target] = overrides[stmt.target]
        else:
            env[stmt.target] = evaluate(stmt.value, env, space)
    return tuple(evaluate(e, env, space) for e in program.returns)


def evaluate(expr: Expr, env: Mapping[str, Any], space: Space):
    """The value of one expression."""
    if isinstance(expr, Const):
        return space.const(expr.value)
    if isinstance(expr, Var):
        return env[expr.name]
    assert isinstance(expr, Call)
    return FUNCTIONS[expr.fn].apply(space, *(evaluate(a, env, space) for a in expr.args))
