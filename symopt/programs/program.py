"""Update-rule programs as plain, immutable data, and their text form.

A program is ``def train(args): statements; return update, *new_state``. Each
statement assigns one expression to a name; an expression is a constant, a
name, or a call of a library function (operators are calls of ``+ - * /`` and
``neg``). Source positions ride along for error messages but take no part in
equality, hashing or printing, so ``parse(str(p)) == p``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Iterator, Mapping, Union

Pos = tuple[int, int] | None

_NO_POS = dict(default=None, compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class Const:
    """A numeric constant (always stored as a finite float)."""

    value: float
    pos: Pos = dataclasses.field(**_NO_POS)

    def __post_init__(self):
        value = float(self.value)
        object.__setattr__(self, "value", 0.0 if value == 0 else value)


@dataclasses.dataclass(frozen=True)
class Var:
    """A reference to an argument or an earlier assignment."""

    name: str
    pos: Pos = dataclasses.field(**_NO_POS)


@dataclasses.dataclass(frozen=True)
class Call:
    """A library function applied to expressions; operators are calls too."""

    fn: str
    args: tuple["Expr", ...]
    pos: Pos = dataclasses.field(**_NO_POS)


Expr = Union[Const, Var, Call]


@dataclasses.dataclass(frozen=True)
class Assign:
    """One statement: ``target = value``."""

    target: str
    value: Expr
    pos: Pos = dataclasses.field(**_NO_POS)


# Argument roles (docs/design.md §2). Every other argument is a state slot.
ROLE_NAMES = {
    "weight": ("w", "weight", "params"),
    "grad": ("g", "grad", "gradient"),
    "lr": ("lr",),
    "step": ("t", "step"),
}
_ROLE_OF = {alias: role for role, aliases in ROLE_NAMES.items() for alias in aliases}


@dataclasses.dataclass(frozen=True)
class Program:
    """An update rule: arguments, straight-line statements, and the returned values.

    ``returns`` is ``(update, *new_state)`` with the new state in the order of
    :attr:`state_args`. Build programs with :func:`symopt.parse`, which checks
    them; programs built in code are checked by :func:`symopt.programs.check`.
    """

    args: tuple[str, ...]
    body: tuple[Assign, ...]
    returns: tuple[Expr, ...]
    name: str = "train"
    pos: Pos = dataclasses.field(**_NO_POS)

    # -- roles ---------------------------------------------------------------------

    def role(self, arg: str) -> str:
        """``weight``, ``grad``, ``lr``, ``step`` or ``state`` for an argument name."""
        return _ROLE_OF.get(arg, "state")

    def arg_for(self, role: str) -> str | None:
        """The argument that plays ``role``, or None."""
        return next((a for a in self.args if self.role(a) == role), None)

    @property
    def state_args(self) -> tuple[str, ...]:
        """The state slots, in argument order (zero at step 0)."""
        return tuple(a for a in self.args if self.role(a) == "state")

    @property
    def has_lr(self) -> bool:
        """Whether the program scales by the learning rate itself."""
        return self.arg_for("lr") is not None

    # -- identity --------------------------------------------------------------------

    def __str__(self) -> str:
        text = self.__dict__.get("_text")
        if text is None:  # immutable, so printed once (kept off the fields: eq and repr ignore it)
            lines = [f"def {self.name}({', '.join(self.args)}):"]
            lines += [f"    {s.target} = {format_expr(s.value)}" for s in self.body]
            lines.append("    return " + ", ".join(format_expr(e) for e in self.returns))
            text = self.__dict__["_text"] = "\n".join(lines) + "\n"
        return text

    @property
    def digest(self) -> str:
        """SHA-256 of the printed program: the same in every process and on every machine."""
        digest = self.__dict__.get("_digest")
        if digest is None:
            digest = self.__dict__["_digest"] = hashlib.sha256(str(self).encode()).hexdigest()
        return digest

    def __hash__(self) -> int:
        return int(self.digest[:16], 16)

    def __len__(self) -> int:
        return len(self.body)

    def with_constant(self, name: str, value: float) -> "Program":
        """The program with the statement ``name = <constant>`` set to ``value`` (a baseline's ``b1``, say)."""
        if not any(s.target == name and isinstance(s.value, Const) for s in self.body):
            raise KeyError(f"program {self.name!r} assigns no constant to {name!r}")
        body = tuple(dataclasses.replace(s, value=Const(float(value))) if s.target == name else s for s in self.body)
        return dataclasses.replace(self, body=body)

    def constants(self) -> Iterator[Const]:
        """Every constant in the program, in text order."""
        for expr in [s.value for s in self.body] + list(self.returns):
            yield from (e for e in walk(expr) if isinstance(e, Const))


def walk(expr: Expr) -> Iterator[Expr]:
    """The expression and all its sub-expressions, depth first, left to right."""
    stack = [expr]
    while stack:
        e = stack.pop()
        yield e
        if isinstance(e, Call):
            stack.extend(reversed(e.args))


def names_in(expr: Expr) -> set[str]:
    """The variable names an expression reads (a new set; computed once per Call node)."""
    if isinstance(expr, Var):
        return {expr.name}
    if not isinstance(expr, Call):
        return set()
    names = expr.__dict__.get("_names")
    if names is None:  # nodes are immutable, so the answer can live on the node (not a field: eq/hash ignore it)
        names = frozenset(e.name for e in walk(expr) if isinstance(e, Var))
        object.__setattr__(expr, "_names", names)
    return set(names)


def rename(expr: Expr, mapping: Mapping[str, str]) -> Expr:
    """``expr`` with each variable named in ``mapping`` renamed (the same node where nothing changes).

    >>> format_expr(rename(Call("+", (Var("m"), Var("g"))), {"m": "m1"}))
    'm1 + g'
    """
    if isinstance(expr, Var):
        return Var(mapping[expr.name]) if expr.name in mapping else expr
    if isinstance(expr, Call):
        return Call(expr.fn, tuple(rename(a, mapping) for a in expr.args))
    return expr


# -- printing --------------------------------------------------------------------------

PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3}
"""How tightly each operator binds (``neg`` is unary minus); calls, names and constants bind as :data:`ATOM`."""
ATOM = 4


def format_const(value: float) -> str:
    """The shortest text that parses back to the same float."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e16:
        return f"{int(value)}.0"
    return repr(value)


def _prec(e: Expr) -> int:
    if isinstance(e, Call) and e.fn in PRECEDENCE:
        return PRECEDENCE[e.fn]
    if isinstance(e, Const) and (e.value < 0 or math.copysign(1, e.value) < 0):
        return PRECEDENCE["neg"]
    return ATOM


def format_expr(e: Expr) -> str:
    """Python text for an expression, with only the parentheses the tree needs."""
    if isinstance(e, Const):
        return format_const(e.value)
    if isinstance(e, Var):
        return e.name
    if e.fn in PRECEDENCE and e.fn != "neg":
        p = PRECEDENCE[e.fn]
        left, right = e.args
        lt, rt = format_expr(left), format_expr(right)
        if _prec(left) < p:
            lt = f"({lt})"
        if _prec(right) <= p:  # operators are left-associative: a - (b - c) keeps its parentheses
            rt = f"({rt})"
        return f"{lt} {e.fn} {rt}"
    if e.fn == "neg":
        (x,) = e.args
        xt = format_expr(x)
        # The parser folds a minus sign into a constant, so build -c as Const(-c), never neg(Const(c)).
        return f"-{xt}" if _prec(x) == ATOM and not isinstance(x, Const) else f"-({xt})"
    return f"{e.fn}({', '.join(format_expr(a) for a in e.args)})"
