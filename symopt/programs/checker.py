"""Static checks of a program: names, functions, arity, constants, returns and shapes.

The checks are abstract execution over value kinds (scalar, per-tensor,
tensor): a program that passes them runs on any parameter tree without a
shape or name error.
"""

from __future__ import annotations

import keyword
import math

from symopt.programs.errors import ProgramError
from symopt.programs.functions import FUNCTIONS, join, Kind, ShapeError, suggest
from symopt.programs.program import Call, Const, Expr, Program, Var, walk

ARG_KINDS = {"weight": Kind.TENSOR, "grad": Kind.TENSOR, "state": Kind.TENSOR,
             "lr": Kind.SCALAR, "step": Kind.SCALAR}


def _fail(message: str, node) -> ProgramError:
    pos = getattr(node, "pos", None)
    return ProgramError(message, *(pos or (None, None)))


def check_name(name: str, node, what: str) -> None:
    """Reject names the language reserves: dunders, keywords and library functions."""
    if name.startswith("__") or name.endswith("__"):
        raise _fail(f"{what} {name!r}: names with double underscores are not allowed", node)
    if keyword.iskeyword(name) or not name.isidentifier():
        raise _fail(f"{what} {name!r} is not a valid name", node)
    if name in FUNCTIONS:
        raise _fail(f"{what} {name!r} is the name of a library function; choose another name", node)


def expr_kind(expr: Expr, kinds: dict[str, Kind]) -> Kind:
    """The kind of an expression's value given the kinds of the names it reads."""
    if isinstance(expr, Const):
        if not math.isfinite(expr.value):
            raise _fail(f"constant {expr.value!r} is not a finite number", expr)
        return Kind.SCALAR
    if isinstance(expr, Var):
        if expr.name not in kinds:
            raise _fail(f"undefined variable {expr.name!r}{suggest(expr.name, kinds)}", expr)
        return kinds[expr.name]
    fn = FUNCTIONS.get(expr.fn)
    if fn is None:
        raise _fail(f"unknown function {expr.fn!r}{suggest(expr.fn)}", expr)
    if len(expr.args) != fn.arity:
        plural = "s" if fn.arity != 1 else ""
        raise _fail(f"{expr.fn}() takes {fn.arity} argument{plural}, got {len(expr.args)}", expr)
    arg_kinds = tuple(expr_kind(a, kinds) for a in expr.args)
    try:
        return fn.shape(arg_kinds)
    except ShapeError as e:
        raise _fail(str(e), expr) from None


def check(program: Program) -> dict[str, Kind]:
    """Check a program; return the kind of every name it defines. Raises ProgramError."""
    if (program.name.startswith("__") or program.name.endswith("__")
            or keyword.iskeyword(program.name) or not program.name.isidentifier()):
        raise _fail(f"function name {program.name!r}: not a valid name, or one with double underscores", program)
    if not program.args:
        raise _fail("the function has no arguments; it needs at least the gradient", program)
    kinds: dict[str, Kind] = {}
    roles: dict[str, str] = {}
    for arg in program.args:
        check_name(arg, program, "argument")
        if arg in kinds:
            raise _fail(f"argument {arg!r} appears twice", program)
        role = program.role(arg)
        if role != "state" and role in roles:
            raise _fail(f"arguments {roles[role]!r} and {arg!r} both play the role {role!r}", program)
        roles[role] = arg
        kinds[arg] = ARG_KINDS[role]
    for stmt in program.body:
        check_name(stmt.target, stmt, "variable")
        kinds[stmt.target] = expr_kind(stmt.value, kinds)
    want = 1 + len(program.state_args)
    if len(program.returns) != want:
        slots = ", ".join(program.state_args)
        what = f"the update and the new {slots}" if slots else "the update alone"
        where = program.returns[0] if program.returns else program
        raise _fail(f"return gives {len(program.returns)} value(s); this program must return {want}: {what}", where)
    for expr in program.returns:
        expr_kind(expr, kinds)
    return kinds


def calls(program: Program) -> set[str]:
    """The library functions a program uses."""
    exprs = [s.value for s in program.body] + list(program.returns)
    return {e.fn for x in exprs for e in walk(x) if isinstance(e, Call)}


def state_kinds(program: Program) -> dict[str, Kind]:
    """What each state slot holds over a run: the least kinds, from zeros at step 0, that its new values keep.

    ``check`` gives a slot the kind TENSOR, the most general; a slot whose new value is only ever
    a ``row_mean`` of something (Adafactor's ``v_row``) holds one number per row, and that is what
    it costs to store. A program whose shape rules need the general kinds keeps TENSOR everywhere.
    """
    states = program.state_args
    held = {s: Kind.SCALAR for s in states}
    for _ in range(2 * len(Kind) * max(len(states), 1)):  # the kinds only grow: a fixpoint within this
        kinds = {a: (held[a] if a in held else ARG_KINDS[program.role(a)]) for a in program.args}
        try:
            for stmt in program.body:
                kinds[stmt.target] = expr_kind(stmt.value, kinds)
            new = {s: join((held[s], expr_kind(e, kinds))) for s, e in zip(states, program.returns[1:])}
        except ProgramError:
            return {s: Kind.TENSOR for s in states}
        if new == held:
            return held
        held = new
    return {s: Kind.TENSOR for s in states}
