"""A program's outputs as SymPy expressions that compute what the program runs, and back to a program.

:func:`to_sympy_outputs` writes the update and each live new state as SymPy
expressions of the arguments, faithful to how the program runs, so that any
identity SymPy applies is an identity of the running program over the reals:

* the language's ``x / y`` is hero's ``x / (y + 1e-8)``: it becomes one opaque
  function, :class:`guarded_div`, so no field algebra applies to it (``g / g``
  is 0 at ``g = 0`` and 0.91 at ``g = 1e-7``, not 1); only ``divide`` and
  ``reciprocal`` (unguarded) become SymPy's ``x / y`` and ``1 / x``;
* ``expm1``, ``log10`` and ``log2`` stay functions of their own (the library's
  SymPy forms), so ``expm1(w)`` never becomes ``exp(w) - 1``, which loses every
  digit of a small ``w`` in float32;
* constants are the float32 values the program runs with (``0.999`` is
  0.99899999797...), and a subexpression of constants is computed as the
  program computes it, in float32 (``1 - 0.999`` is 0.0010000467;
  ``cosh(1e+30)`` is inf, and an output that reads it raises
  :class:`Unprintable` instead of sending SymPy after a number of 10^29 digits).

What real algebra cannot see (rounding, overflow, ``0 * inf``) is left to the
numeric check of :mod:`symopt.symbolic.equivalence`.

:func:`from_sympy` prints chosen expressions back as statements: a
:class:`guarded_div` as ``/``, any other denominator as ``divide(x, y)`` or
``reciprocal(y)`` (never ``/``, which would add a guard), shared
subexpressions as temporaries, constants as the shortest decimal of their
float32 value. An expression with no counterpart in the language raises
:class:`Unprintable`.
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import expm1, log2, log10

from symopt.programs.checker import check
from symopt.programs.execute import evaluate
from symopt.programs.functions import FUNCTIONS
from symopt.programs.spaces import DIV_EPS, FlatSpace
from symopt.programs.tree_functions import SYMPY_REDUCTIONS
from symopt.programs.program import Assign, Call, Const, Expr, Program, Var, format_expr, names_in, walk
from symopt.programs.liveness import live_states

__all__ = ["Unprintable", "constant", "from_sympy", "guarded_div", "printed_size", "symbol", "to_sympy_outputs",
           "translate", "written_constant"]


class guarded_div(sp.Function):
    """hero's ``x / y``, that is ``x / (y + 1e-8)``, kept whole.

    It evaluates only where that is exact: a numeric denominator folds into the
    factor ``1 / (y + 1e-8)``, a numeric factor of ``x`` moves out, and ``0 / y`` is 0.
    """

    nargs = 2

    @classmethod
    def eval(cls, x, y):
        if y.is_number:
            return x / (y + sp.Float(DIV_EPS))
        if x.is_zero:
            return sp.S.Zero
        coeff, rest = x.as_coeff_Mul()
        if coeff.is_Number and coeff != 1:
            return coeff * cls(rest, y)
        return None

    def _eval_is_real(self):
        x, y = self.args
        return True if x.is_real and y.is_real else None


# -- to SymPy -------------------------------------------------------------------------------------


class Unprintable(Exception):
    """A SymPy expression with no counterpart in the language."""


def symbol(program: Program, name: str) -> sp.Symbol:
    """The SymPy symbol of an argument: ``t`` is positive, ``lr`` non-negative, the rest real."""
    role = program.role(name)
    if role == "step":
        return sp.Symbol(name, positive=True)
    if role == "lr":
        return sp.Symbol(name, nonnegative=True)
    return sp.Symbol(name, real=True)


def to_sympy_outputs(program: Program) -> dict[str, sp.Expr]:
    """The update and each live new state (by slot name) as faithful SymPy expressions of the arguments.

    Raises :class:`Unprintable` when an output reads a constant subexpression that is not finite.
    """
    return translate(program, {a: symbol(program, a) for a in program.args}, live_states(program))


def translate(program: Program, symbols: dict[str, sp.Expr], slots, *, faithful: bool = True,
              guard: bool = True, hyperparameters: dict[str, sp.Symbol] | None = None) -> dict[str, sp.Expr]:
    """The one Program -> SymPy translator: the update and the new state of each of ``slots``, as SymPy
    expressions of ``symbols`` (argument name -> symbol), keyed ``"update"`` and by slot name.

    ``faithful=True`` is this module's form (see the module docstring). ``faithful=False`` is
    the form for reading (:func:`symopt.symbolic.to_sympy`): constants are their values as
    written (:func:`written_constant`), nothing is folded, ``x / y`` is ``x / (y + 1e-8)``
    spelled out (``guard=True``) or the plain quotient, and a statement ``name = <constant>``
    with ``name`` in ``hyperparameters`` reads as that symbol.
    """
    hyper = hyperparameters or {}
    env: dict[str, sp.Expr] = dict(symbols)
    known: dict[str, np.floating] = {}  # names that hold a constant, as the program computes it (exact only)
    for stmt in program.body:
        value = _fold(stmt.value, known) if faithful else None
        if stmt.target in hyper and isinstance(stmt.value, Const):
            env[stmt.target] = hyper[stmt.target]
        elif value is None:  # read before the name is rebound: x = 2.0; x = x * g reads the constant
            env[stmt.target] = _sym(stmt.value, env, known, faithful, guard)
            known.pop(stmt.target, None)
        else:
            known[stmt.target] = value
            env.pop(stmt.target, None)
    out = {"update": _sym(program.returns[0], env, known, faithful, guard)}
    wanted = set(slots)
    for s, ret in zip(program.state_args, program.returns[1:]):
        if s in wanted:
            out[s] = _sym(ret, env, known, faithful, guard)
    return out


def written_constant(value: float) -> sp.Expr:
    """A constant as written: an Integer when it is a whole number, else the exact binary Float of its value."""
    if value == int(value) and abs(value) < 2 ** 53:
        return sp.Integer(int(value))
    return sp.Float(value)


def constant(value: float) -> sp.Expr:
    """The float32 value a constant runs as: an Integer when that is whole, else an exact Float."""
    with np.errstate(over="ignore"):
        v32 = float(np.float32(value))
    if math.isfinite(v32) and v32 == int(v32) and abs(v32) <= 2 ** 24:
        return sp.Integer(int(v32))
    return sp.Float(v32 if math.isfinite(v32) else value)


def _fold(expr: Expr, known: dict[str, np.floating]) -> np.floating | None:
    """A subexpression of constants (and of names holding one) as the program computes it, in float32.

    SymPy would evaluate it exactly instead: ``exp10(sinh(cbrt(1e+30)))`` is a number of
    ten billion digits to SymPy (minutes, and a decimal.InvalidOperation for ``cosh(1e+30)``),
    ``inf`` to the program.
    """
    if not names_in(expr) <= known.keys():
        return None
    with np.errstate(all="ignore"):
        return np.float32(evaluate(expr, known, FlatSpace(np)))


def _sym(expr: Expr, env: dict, known: dict, faithful: bool = True, guard: bool = True) -> sp.Expr:
    if not faithful:
        if isinstance(expr, Const):
            return written_constant(expr.value)
    else:
        value = _fold(expr, known)
        if value is not None:
            if not np.isfinite(value):
                raise Unprintable(f"the constant {format_expr(expr)} is {value} when the program runs")
            return constant(float(value))
    if isinstance(expr, Var):
        return env[expr.name]
    args = [_sym(a, env, known, faithful, guard) for a in expr.args]
    if expr.fn == "/" and faithful:
        return guarded_div(*args)
    if expr.fn == "/" and not guard:
        return args[0] / args[1]
    return FUNCTIONS[expr.fn].sympy(*args)


# -- back to a program ----------------------------------------------------------------------------


_FUNCS = {sp.sin: "sin", sp.cos: "cos", sp.tan: "tan", sp.asin: "arcsin", sp.acos: "arccos",
          sp.atan: "arctan", sp.sinh: "sinh", sp.cosh: "cosh", sp.tanh: "tanh", sp.asinh: "arcsinh",
          sp.acosh: "arccosh", sp.atanh: "arctanh", sp.exp: "exp", sp.Abs: "abs", sp.sign: "sign",
          expm1: "expm1"}
_LOGS = {sp.log: "log", log10: "log10", log2: "log2"}  # each runs on |x|


def _const(value) -> Const:
    """A number as the language's constant: the shortest decimal of its float32 value when float32 holds it."""
    try:
        v = complex(value)
    except (TypeError, OverflowError):
        raise Unprintable(str(value)) from None
    if v.imag != 0 or not math.isfinite(v.real):
        raise Unprintable(str(value))
    x = v.real
    with np.errstate(over="ignore"):
        x32 = np.float32(x)
    if np.isfinite(x32) and (x32 != 0 or x == 0):
        return Const(float(str(x32)))
    return Const(x)  # float32 cannot hold it: as written, and the program runs it as 0 or inf either way


def _coefficient(e: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """(the product of a term's numeric factors, ``pi - 1`` included, as a Float; the rest)."""
    if not e.is_Mul:
        return sp.S.One, e
    numbers = [f for f in e.args if f.is_number]
    if not numbers:
        return sp.S.One, e
    coeff = sp.Mul(*numbers)
    rest = sp.Mul(*[f for f in e.args if f not in numbers])
    return (coeff if coeff.is_Number else sp.Float(coeff.evalf())), rest


def _negative(term: sp.Expr) -> bool:
    coeff = _coefficient(term)[0] if not term.is_number else term
    return bool(coeff.is_extended_negative)


def _is_nonnegative(e: sp.Expr) -> bool:
    return isinstance(e, sp.Abs) or bool(e.is_nonnegative)


class _Printer:
    """SymPy expressions back to the language, one operation for one operation."""

    def expr(self, e: sp.Expr) -> Expr:
        if e.is_Symbol:
            return Var(e.name)
        if e.is_number:
            return _const(e)
        if e.is_Add:
            return self.add(e)
        if e.is_Mul or e.is_Pow:
            return self.mul(e)
        if isinstance(e, guarded_div):
            return Call("/", tuple(self.expr(a) for a in e.args))
        if e.func in _LOGS:
            return self.log(e)
        if e.func in _FUNCS:
            return Call(_FUNCS[e.func], tuple(self.expr(a) for a in e.args))
        if isinstance(e, (sp.Max, sp.Min)):
            fn = "max" if isinstance(e, sp.Max) else "min"
            args = [self.expr(a) for a in e.args]
            out = args[0]
            for a in args[1:]:
                out = Call(fn, (out, a))
            return out
        name = type(e).__name__
        if name in SYMPY_REDUCTIONS and isinstance(e, SYMPY_REDUCTIONS[name]):
            return Call(name, tuple(self.expr(a) for a in e.args))
        raise Unprintable(str(e))

    def log(self, e: sp.Expr) -> Expr:
        """``log(|x|)`` is ``log(x)`` (the library's log takes |x|), ``log(|1 + x|)`` is ``log1p(x)``."""
        if len(e.args) != 1:
            raise Unprintable(str(e))
        (x,) = e.args
        if isinstance(x, sp.Abs):
            inner = x.args[0]
            if e.func is sp.log and inner.is_Add and sp.S.One in inner.args:
                return Call("log1p", (self.expr(inner - 1),))
            return Call(_LOGS[e.func], (self.expr(inner),))
        if not x.is_nonnegative:
            raise Unprintable(str(e))  # SymPy's log of a negative number is complex; the library's is not
        return Call(_LOGS[e.func], (self.expr(x),))

    def interpolation(self, e: sp.Expr) -> Expr | None:
        """``a * x + b * y`` with a + b = 1 (to float32 precision), both in (0, 1): ``interpolate(x, y, b)``."""
        terms = sp.Add.make_args(e)
        if len(terms) != 2:
            return None
        (c1, r1), (c2, r2) = (t.as_coeff_Mul() for t in terms)
        if not (c1.is_Number and c2.is_Number) or r1.is_number or r2.is_number:
            return None
        c1, c2 = float(c1), float(c2)
        if not (0 < c1 < 1 and 0 < c2 < 1 and abs(c1 + c2 - 1) < 1e-7):
            return None
        if c2 > c1 or (c2 == c1 and sp.default_sort_key(r2) < sp.default_sort_key(r1)):
            (c1, r1), (c2, r2) = (c2, r2), (c1, r1)
        return Call("interpolate", (self.expr(r1), self.expr(r2), _const(c2)))

    def add(self, e: sp.Expr) -> Expr:
        found = self.interpolation(e)
        if found is not None:
            return found
        terms = list(e.as_ordered_terms())
        positive = [t for t in terms if not _negative(t)]
        if positive:  # start with a positive term, so "g - m" rather than "-m + g"
            terms.remove(positive[0])
            terms.insert(0, positive[0])
        out = self.expr(terms[0])
        for t in terms[1:]:
            if _negative(t):
                out = Call("-", (out, self.expr(-t)))
            else:
                out = Call("+", (out, self.expr(t)))
        return out

    def mul(self, e: sp.Expr) -> Expr:
        """``c * x * y / (a * b)``: the numerator as products, any denominator as ``divide``/``reciprocal``."""
        coeff, rest = _coefficient(e)
        num, den = [], []
        for f in _with_cbrt(sp.Mul.make_args(rest)):
            if f.is_Pow and f.exp.is_number and f.exp.is_negative:
                den.append(sp.Pow(f.base, -f.exp))
            else:
                num.append(f)
        c = float(coeff)
        lead = [] if c in (1.0, -1.0) else [_const(coeff)]
        top = _product(lead + [self.factor(f) for f in num])
        if den:
            bottom = _product([self.factor(f) for f in den])
            top = Call("reciprocal", (bottom,)) if top is None else Call("divide", (top, bottom))
        if top is None:
            return _const(coeff)
        if c == -1.0:
            return Const(-top.value) if isinstance(top, Const) else Call("neg", (top,))
        return top

    def factor(self, f: sp.Expr) -> Expr:
        if isinstance(f, _Cbrt):
            return Call("cbrt", (self.expr(f.args[0]),))
        if not f.is_Pow:
            return self.expr(f)
        base, exp = f.base, f.exp
        if base.is_number:
            if exp.is_number:
                return _const(f)
            if base == 2:
                return Call("exp2", (self.expr(exp),))
            if base == 10:
                return Call("exp10", (self.expr(exp),))
            return Call("power", (self.expr(base), self.expr(exp)))
        if not exp.is_number:
            return Call("power", (self.expr(base), self.expr(exp)))
        ev = complex(exp)
        if ev.imag:
            raise Unprintable(str(f))
        ev = ev.real
        if ev == 1:
            return self.expr(base)
        if ev == 2:
            return Call("square", (self.expr(base),))
        if ev == 3:
            return Call("cube", (self.expr(base),))
        if ev == 0.5 and _is_nonnegative(base):  # the library's sqrt takes |x|
            return Call("sqrt", (self.expr(base.args[0] if isinstance(base, sp.Abs) else base),))
        if exp == sp.Rational(1, 3) and _is_nonnegative(base):
            return Call("cbrt", (self.expr(base),))
        return Call("power", (self.expr(base), _const(exp)))


class _Cbrt(sp.Function):
    """Marks ``sign(x) * |x| ** (1/3)`` (the library's real cube root) while a product is printed."""

    nargs = 1


def _with_cbrt(factors: tuple) -> list:
    """The factors of a product with each pair ``sign(x)``, ``|x| ** (1/3)`` as one cube root of x."""
    out = list(factors)
    for f in factors:
        if (f.is_Pow and isinstance(f.base, sp.Abs) and f.exp == sp.Rational(1, 3)
                and sp.sign(f.base.args[0]) in out and f in out):
            out.remove(f)
            out.remove(sp.sign(f.base.args[0]))
            out.append(_Cbrt(f.base.args[0], evaluate=False))
    return out


def _product(factors: list[Expr]) -> Expr | None:
    out = None
    for x in factors:
        out = x if out is None else Call("*", (out, x))
    return out


def from_sympy(program: Program, outputs: dict[str, sp.Expr]) -> Program:
    """A program with ``program``'s arguments whose update and live states are ``outputs``.

    Subexpressions shared between outputs become temporaries (``x1``, ...); a
    state whose old value nothing later reads is assigned in place; the others
    come after the update. Dead slots return their old value. Raises
    :class:`Unprintable`, or ProgramError when the result does not check.
    """
    to_expr = _Printer().expr
    names = list(outputs)
    taken = set(program.args) | set(names)
    temps = (sp.Symbol(f"x{i}", real=True) for i in range(1, 10_000) if f"x{i}" not in taken)
    replacements, reduced = sp.cse([outputs[n] for n in names], symbols=temps, order="none")
    reduced = dict(zip(names, reduced))
    body: list[tuple[str, sp.Expr]] = [(s.name, v) for s, v in replacements]
    result_name = {}
    # A state whose new value is a shared temporary takes the temporary's place under the slot's name,
    # unless a later statement still reads the slot's old value.
    for name in names:
        if name == "update":
            continue
        value = reduced[name]
        sym = symbol(program, name)
        idx = next((i for i, (t, _) in enumerate(body) if value.is_Symbol and t == value.name), None)
        later = [v for _, v in body[idx + 1:]] if idx is not None else []
        later += [reduced[n] for n in names if n != name]
        if idx is not None and not any(sym in v.free_symbols for v in later):
            old = body[idx][0]
            body[idx] = (name, body[idx][1])
            swap = {sp.Symbol(old, real=True): sym}
            body = [(t, v.xreplace(swap)) for t, v in body]
            reduced = {n: v.xreplace(swap) for n, v in reduced.items()}
            result_name[name] = name
    for name in names:
        if name == "update" or name in result_name:
            continue
        sym = symbol(program, name)
        if reduced[name] == sym:  # the slot keeps its value
            result_name[name] = name
            continue
        others = [n for n in names if n != name and n not in result_name]
        if not any(sym in reduced[n].free_symbols for n in others):
            body.append((name, reduced[name]))  # nothing reads the old value: assign it in place
            result_name[name] = name
    # States whose old value the update (or another state) reads come after the update.
    tail: list[tuple[str, sp.Expr]] = []
    late = [n for n in names if n != "update" and n not in result_name]
    for name in late:
        sym = symbol(program, name)
        clash = any(sym in reduced[n].free_symbols for n in late if n != name)
        tail.append((f"new_{name}" if clash else name, reduced[name]))
        result_name[name] = tail[-1][0]
    statements = [Assign(t, to_expr(v)) for t, v in body]
    statements.append(Assign("update", to_expr(reduced["update"])))
    statements += [Assign(t, to_expr(v)) for t, v in tail]
    returns = [Var("update")] + [Var(result_name.get(s, s)) for s in program.state_args]
    out = Program(program.args, tuple(statements), tuple(returns), program.name)
    check(out)
    return out


def printed_size(e: sp.Expr) -> int:
    """Expression nodes of one SymPy expression printed back to the language."""
    return sum(1 for _ in walk(_Printer().expr(e)))
