"""Making programs short: dead-code elimination, and simplification through SymPy.

:func:`eliminate_dead_code` removes what cannot affect the weights: statements
whose values reach neither the update nor a *live* state slot (a slot whose old
value the update reads, directly or through other live slots, at a later
step). A dead slot's return becomes the slot's name. Temporaries named
``x<N>`` (as mutation names them) are renumbered ``x1, x2, ...`` in order.

:func:`simplify` then rewrites each live output as a SymPy expression,
simplifies it within a time limit, and prints it back as a short program
(constants folded, ``m / sqrt(m * m)`` -> ``sign(m)``, ``0.9 * m + 0.1 * g`` ->
``interpolate(m, g, 0.1)``, nested interpolations merged, common
subexpressions shared).

The division guard. In the language ``x / y`` is ``x / (y + 1e-8)``. The
first attempt simplifies with the guard set to zero (exact algebra, so
``m / sqrt(m * m)`` can become ``sign(m)``) and prints every division it
emits as ``/``, which guards it again. Such a result is kept only if it
matches the original on numeric probes: NumPy runs over three steps with the
state carried, every input entry of magnitude 1e-2 to 1e2 with a random sign,
each output within relative 1e-4 (NaN where the original has NaN). The guard
matters only for denominators below about 1e-4, outside those probes, so the
rule is: *the guard may be dropped where it changes no output by more than
1e-4 relative for inputs of magnitude 1e-2 to 1e2*. If that check fails, a
second attempt keeps the guard as a symbol ``eps`` and prints ``x / (y + eps)``
back as ``x / y`` (exact); if that fails too, or time runs out, the result is
the dead-code-eliminated program.
"""

from __future__ import annotations

import math
import re
import signal
import threading
import time
from typing import Callable

import numpy as np
import sympy as sp

from symopt.programs.check import check
from symopt.programs.errors import ProgramError
from symopt.programs.execute import run
from symopt.programs.functions import DIV_EPS, FUNCTIONS, SYMPY_REDUCTIONS, FlatSpace
from symopt.programs.program import Assign, Call, Const, Expr, Program, Var, names_in, walk

TEMP = re.compile(r"^x\d+$")

# --- dead-code elimination -------------------------------------------------------------------


def _needed_inputs(program: Program, seeds: set[str], body=None) -> tuple[set[str], list[bool]]:
    """Backward liveness: (names read before assignment, which statements are needed) for ``seeds``."""
    body = program.body if body is None else body
    needed = set(seeds)
    keep = [False] * len(body)
    for i in range(len(body) - 1, -1, -1):
        stmt = body[i]
        if stmt.target in needed:
            keep[i] = True
            needed.discard(stmt.target)
            needed |= names_in(stmt.value)
    return needed, keep


def live_states(program: Program) -> tuple[str, ...]:
    """State slots whose value can reach the update, at this step or a later one (in argument order)."""
    cached = program.__dict__.get("_live_states")  # programs are immutable: computed once per object
    if cached is None:
        cached = _live_states(program)
        object.__setattr__(program, "_live_states", cached)
    return cached


def _live_states(program: Program) -> tuple[str, ...]:
    states = program.state_args
    live: set[str] = set()
    while True:
        seeds = names_in(program.returns[0])
        for s, ret in zip(states, program.returns[1:]):
            if s in live:
                seeds |= names_in(ret)
        inputs, _ = _needed_inputs(program, seeds)
        new = live | (inputs & set(states))
        if new == live:
            return tuple(s for s in states if s in live)
        live = new


def inputs_read(program: Program) -> set[str]:
    """The arguments whose values can reach the update, at this step or through live state later."""
    live = set(live_states(program))
    seeds = names_in(program.returns[0])
    for s, ret in zip(program.state_args, program.returns[1:]):
        if s in live:
            seeds |= names_in(ret)
    needed, _ = _needed_inputs(program, seeds)
    return needed & set(program.args)


def eliminate_dead_code(program: Program, rename: bool = True) -> Program:
    """The program without statements that cannot affect the weights; see the module docstring."""
    states = program.state_args
    live = set(live_states(program))
    seeds = names_in(program.returns[0])
    for s, ret in zip(states, program.returns[1:]):
        if s in live:
            seeds |= names_in(ret)
    _, keep = _needed_inputs(program, seeds)
    body = tuple(s for s, k in zip(program.body, keep) if k)
    returns = (program.returns[0],) + tuple(ret if s in live else Var(s)
                                            for s, ret in zip(states, program.returns[1:]))
    out = Program(program.args, body, returns, program.name)
    return tidy_names(out) if rename else out


def dead_statements(program: Program) -> int:
    """How many of the program's statements :func:`eliminate_dead_code` removes."""
    return len(program.body) - len(eliminate_dead_code(program, rename=False).body)


def tidy_names(program: Program) -> Program:
    """Temporaries named ``x<N>`` renumbered ``x1, x2, ...`` in order of first assignment."""
    order: list[str] = []
    for stmt in program.body:
        if TEMP.match(stmt.target) and stmt.target not in order and stmt.target not in program.args:
            order.append(stmt.target)
    mapping = {old: f"x{i}" for i, old in enumerate(order, 1)}
    if all(k == v for k, v in mapping.items()):
        return program
    return Program(program.args, tuple(Assign(mapping.get(s.target, s.target), _rename(s.value, mapping))
                                       for s in program.body),
                   tuple(_rename(e, mapping) for e in program.returns), program.name)


def _rename(expr: Expr, mapping: dict[str, str]) -> Expr:
    if isinstance(expr, Var):
        return Var(mapping.get(expr.name, expr.name)) if expr.name in mapping else expr
    if isinstance(expr, Call):
        return Call(expr.fn, tuple(_rename(a, mapping) for a in expr.args))
    return expr


def size(program: Program) -> int:
    """Number of expression nodes: how long a program is to read."""
    return sum(1 + sum(1 for _ in walk(s.value)) for s in program.body) + sum(
        sum(1 for _ in walk(e)) for e in program.returns)


# --- numeric equivalence ------------------------------------------------------------------------

PROBE_STEPS = 3
PROBE_SEEDS = (0, 1, 2)


def _probe_inputs(program: Program, seed: int, n: int = 12):
    rng = np.random.default_rng([2024, seed])

    def vec():
        return rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-2, 2, n)

    for step in range(1, PROBE_STEPS + 1):
        inputs = {}
        for a in program.args:
            role = program.role(a)
            if role in ("weight", "grad"):
                inputs[a] = vec()
            elif role == "lr":
                inputs[a] = np.float64(10.0 ** rng.uniform(-3, -1))
            elif role == "step":
                inputs[a] = np.float64(step)
        yield inputs, (vec() if seed else None)


def _trajectory(program: Program, seed: int, outputs: tuple[str, ...]) -> list[np.ndarray]:
    """Effective update and the given new states at each probe step."""
    segments = np.array([0] * 3 + [1] * 4 + [2] * 5)
    space = FlatSpace(np, segments, 3)
    state = {s: np.zeros(len(segments)) for s in program.state_args}
    out = []
    with np.errstate(all="ignore"):
        for inputs, init in _probe_inputs(program, seed, len(segments)):
            if init is not None and not out:  # start from a random state on some probes
                state = {s: init * (k + 1) for k, s in enumerate(program.state_args)}
            update, *new = run(program, space, {**inputs, **state})
            if not program.has_lr and "lr" in inputs:
                update = update * inputs["lr"]
            new = dict(zip(program.state_args, new))
            out.append(np.broadcast_to(np.asarray(update, np.float64), segments.shape))
            out += [np.broadcast_to(np.asarray(new[s], np.float64), segments.shape) for s in outputs]
            state = {s: np.broadcast_to(np.asarray(v, np.float64), segments.shape) for s, v in new.items()}
    return out


def equivalent(a: Program, b: Program, rtol: float = 1e-4) -> bool:
    """Whether two programs give the same update and the same live new state on numeric probes.

    Probes: see the module docstring. NaN must match NaN, infinities must match
    exactly, finite values within ``rtol`` relative to the output's largest entry.
    """
    if a.args != b.args:
        return False
    live = live_states(a)
    for seed in PROBE_SEEDS:
        for x, y in zip(_trajectory(a, seed, live), _trajectory(b, seed, live)):
            if not _close(x, y, rtol):
                return False
    return True


def _close(x: np.ndarray, y: np.ndarray, rtol: float) -> bool:
    nan_x, nan_y = np.isnan(x), np.isnan(y)
    if not np.array_equal(nan_x, nan_y):
        return False
    inf_x, inf_y = np.isinf(x), np.isinf(y)
    if not np.array_equal(inf_x, inf_y) or not np.array_equal(x[inf_x], y[inf_y]):
        return False
    fin = ~(nan_x | inf_x)
    if not fin.any():
        return True
    xf, yf = x[fin], y[fin]
    scale = max(float(np.max(np.abs(xf))), float(np.max(np.abs(yf))))
    return bool(np.all(np.abs(xf - yf) <= rtol * np.maximum(np.abs(xf), np.abs(yf)) + 1e-9 * scale + 1e-300))


# --- time limits ----------------------------------------------------------------------------------


class SimplifyTimeout(BaseException):
    """SymPy ran past its time limit (a BaseException, so SymPy's own ``except Exception`` cannot swallow it)."""


def with_deadline(fn: Callable[[], object], seconds: float):
    """``fn()`` under a time limit; raises :class:`SimplifyTimeout` when it runs past.

    On the main thread a SIGALRM timer interrupts SymPy (pure Python) between
    bytecodes; an outer timer is restored afterwards. Elsewhere ``fn`` runs in a daemon thread that is abandoned at the
    deadline (it finishes in the background; its result is dropped).
    """
    if seconds <= 0:
        raise SimplifyTimeout()
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        done = False

        def on_alarm(signum, frame):
            if not done:
                raise SimplifyTimeout()

        old_handler = signal.signal(signal.SIGALRM, on_alarm)
        # Repeat every 50 ms after the deadline, in case a bare 'except:' somewhere swallows the first one.
        old_timer = signal.setitimer(signal.ITIMER_REAL, seconds, 0.05)
        try:
            return fn()
        finally:
            done = True
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_handler)
            if old_timer[0] > 0:  # give an outer timer back what it had left
                signal.setitimer(signal.ITIMER_REAL, max(1e-3, old_timer[0] - seconds), old_timer[1])
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller below
            box["error"] = e

    worker = threading.Thread(target=target, daemon=True, name="symopt-simplify")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise SimplifyTimeout()
    if "error" in box:
        raise box["error"]
    return box["value"]


# --- to SymPy -----------------------------------------------------------------------------------

EPS = sp.Symbol("eps", positive=True)


def _symbol(program: Program, name: str) -> sp.Symbol:
    role = program.role(name)
    if role in ("lr", "step"):
        return sp.Symbol(name, positive=True)
    return sp.Symbol(name, real=True)


def to_sympy_outputs(program: Program, guard: str = "symbol") -> dict[str, sp.Expr]:
    """SymPy expressions of the update and each live new state, in terms of the arguments.

    ``guard``: ``"symbol"`` writes ``x / y`` as ``x / (y + eps)``, ``"zero"`` as ``x / y``,
    ``"value"`` as ``x / (y + 1e-8)`` (the library's SymPy form).
    """
    env: dict[str, sp.Expr] = {a: _symbol(program, a) for a in program.args}
    for stmt in program.body:
        env[stmt.target] = _sym(stmt.value, env, guard)
    out = {"update": _sym(program.returns[0], env, guard)}
    live = set(live_states(program))
    for s, ret in zip(program.state_args, program.returns[1:]):
        if s in live:
            out[s] = _sym(ret, env, guard)
    return out


def _sym(expr: Expr, env: dict, guard: str) -> sp.Expr:
    if isinstance(expr, Const):
        return sp.Float(expr.value) if expr.value != int(expr.value) or abs(expr.value) > 1e15 else sp.Integer(int(expr.value))
    if isinstance(expr, Var):
        return env[expr.name]
    args = [_sym(a, env, guard) for a in expr.args]
    if expr.fn == "/":
        x, y = args
        return x / y if guard == "zero" else x / (y + (EPS if guard == "symbol" else sp.Float(DIV_EPS)))
    return FUNCTIONS[expr.fn].sympy(*args)


# --- simplification ------------------------------------------------------------------------------


def _sign_rule(e: sp.Expr) -> sp.Expr:
    """x / |x| and |x| / x -> sign(x)."""

    def fix(mul):
        factors = list(sp.Mul.make_args(mul))
        changed = False
        for f in list(factors):
            if f.is_Pow and isinstance(f.base, sp.Abs) and f.exp == -1 and f.base.args[0] in factors:
                factors.remove(f)
                factors.remove(f.base.args[0])
                factors.append(sp.sign(f.base.args[0]))
                changed = True
            elif isinstance(f, sp.Abs) and f in factors and sp.Pow(f.args[0], -1) in factors:
                factors.remove(f)
                factors.remove(sp.Pow(f.args[0], -1))
                factors.append(sp.sign(f.args[0]))
                changed = True
        return sp.Mul(*factors) if changed else mul

    return e.replace(lambda x: x.is_Mul, fix)


def _forms(e: sp.Expr) -> list[sp.Expr]:
    """Candidate forms of an expression, cheapest transformations first."""
    forms = [_sign_rule(e)]
    for transform in (sp.factor_terms, lambda x: sp.expand(x, deep=False), sp.simplify):
        try:
            forms.append(_sign_rule(transform(forms[0])))
        except Exception:  # a SymPy transformation that cannot handle this expression
            continue
    return forms


def _sympy_simplify(program: Program, guard: str) -> Program:
    outputs = to_sympy_outputs(program, guard)
    exact = guard == "symbol"
    printer = _Printer(exact)
    chosen = {}
    for name, e in outputs.items():
        best, best_cost = None, math.inf
        for form in _forms(e):
            try:
                cost = _cost(printer.expr(form))
            except _Unprintable:
                continue
            if cost < best_cost:
                best, best_cost = form, cost
        if best is None:
            raise _Unprintable(f"cannot print {name} = {e}")
        chosen[name] = best
    return _emit(program, chosen, exact)


def _cost(expr: Expr) -> int:
    return sum(1 for _ in walk(expr))


def simplify(program: Program, timeout: float = 5.0) -> Program:
    """A short program that behaves like ``program``, found with SymPy within ``timeout`` seconds.

    Returns the dead-code-eliminated program when SymPy finds nothing shorter
    that passes the numeric check, or when time runs out. See the module
    docstring for the rule on the division guard.
    """
    base = eliminate_dead_code(program)
    deadline = time.monotonic() + timeout
    for guard in ("zero", "symbol"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            candidate = with_deadline(lambda: _sympy_simplify(base, guard), remaining)
        except SimplifyTimeout:
            break
        except (_Unprintable, ProgramError, ValueError, TypeError, ZeroDivisionError,
                OverflowError, RecursionError, AttributeError):
            continue
        if size(candidate) <= size(base) and equivalent(base, candidate):
            return candidate
    return base


# --- back from SymPy ---------------------------------------------------------------------------------


class _Unprintable(Exception):
    """A SymPy expression with no counterpart in the language."""


_FUNCS = {sp.sin: "sin", sp.cos: "cos", sp.tan: "tan", sp.asin: "arcsin", sp.acos: "arccos",
          sp.atan: "arctan", sp.sinh: "sinh", sp.cosh: "cosh", sp.tanh: "tanh", sp.asinh: "arcsinh",
          sp.acosh: "arccosh", sp.atanh: "arctanh", sp.exp: "exp", sp.Abs: "abs", sp.sign: "sign"}


def _const(value) -> Const:
    try:
        v = complex(value)
    except TypeError:
        raise _Unprintable(str(value)) from None
    if v.imag != 0 or not math.isfinite(v.real):
        raise _Unprintable(str(value))
    return Const(float(f"{v.real:.6g}"))  # folded constants read as 6 digits; the probes check the result


class _Printer:
    """SymPy expressions back to the language.

    ``exact=False`` (the guard was set to zero): every denominator is printed
    with ``/``, which guards it again. ``exact=True`` (the guard is the symbol
    ``eps``): a factor ``1 / (y + eps)`` prints as ``/ y`` and any other
    denominator as ``reciprocal(...)`` (unguarded), so nothing changes.
    """

    def __init__(self, exact: bool):
        self.exact = exact

    def expr(self, e: sp.Expr) -> Expr:
        if e == EPS:
            return Const(DIV_EPS)
        if e.is_Symbol:
            return Var(e.name)
        if e.is_number:
            return _const(e)
        if e.is_Add:
            return self.add(e)
        if e.is_Mul or e.is_Pow:
            return self.mul(e)
        if isinstance(e, sp.log):
            if len(e.args) != 1:
                raise _Unprintable(str(e))
            (x,) = e.args
            return Call("log", (self.expr(x.args[0] if isinstance(x, sp.Abs) else x),))
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
        raise _Unprintable(str(e))

    def interpolation(self, e: sp.Expr) -> Expr | None:
        """``a * x + b * y`` with a + b = 1, both in (0, 1): ``interpolate(x, y, b)``, x the larger share."""
        terms = sp.Add.make_args(e)
        if len(terms) != 2:
            return None
        (c1, r1), (c2, r2) = (t.as_coeff_Mul() for t in terms)
        if not (c1.is_Number and c2.is_Number) or r1.is_number or r2.is_number:
            return None
        c1, c2 = float(c1), float(c2)
        if not (0 < c1 < 1 and 0 < c2 < 1 and abs(c1 + c2 - 1) < 1e-9):
            return None
        if c2 > c1 or (c2 == c1 and sp.default_sort_key(r2) < sp.default_sort_key(r1)):
            (c1, r1), (c2, r2) = (c2, r2), (c1, r1)
        return Call("interpolate", (self.expr(r1), self.expr(r2), _const(c2)))

    def add(self, e: sp.Expr) -> Expr:
        found = self.interpolation(e)
        if found is not None:
            return found
        terms = list(e.as_ordered_terms())
        positive = [t for t in terms if not t.as_coeff_Mul()[0].is_negative]
        if positive:  # start with a positive term, so "g - m" rather than "-m + g"
            terms.remove(positive[0])
            terms.insert(0, positive[0])
        out = self.expr(terms[0])
        for t in terms[1:]:
            if t.as_coeff_Mul()[0].is_negative:
                out = Call("-", (out, self.expr(-t)))
            else:
                out = Call("+", (out, self.expr(t)))
        return out

    def mul(self, e: sp.Expr) -> Expr:
        coeff, rest = e.as_coeff_Mul() if e.is_Mul else (sp.Integer(1), e)
        num, den = [], []
        for f in sp.Mul.make_args(rest):
            if f.is_Pow and f.exp.is_number and f.exp.is_negative:
                den.append(sp.Pow(f.base, -f.exp))
            else:
                num.append(f)
        guarded = [f for f in den if f.is_Add and EPS in sp.Add.make_args(f)] if self.exact else []
        unguarded = [f for f in den if f not in guarded]
        c = float(coeff)
        top: Expr | None = _const(coeff) if c not in (1.0, -1.0) else None
        factors = [self.factor(f) for f in num]
        if self.exact:
            factors += [Call("reciprocal", (self.factor(f),)) for f in unguarded]
        for x in factors:
            top = x if top is None else Call("*", (top, x))
        if top is None:
            top = Const(-1.0 if c == -1.0 else 1.0)
        elif c == -1.0:
            top = Const(-top.value) if isinstance(top, Const) else Call("neg", (top,))
        for f in guarded:  # x / (y + eps) is exactly the language's x / y
            top = Call("/", (top, self.expr(f - EPS)))
        if unguarded and not self.exact:
            bottom = None
            for f in unguarded:
                x = self.factor(f)
                bottom = x if bottom is None else Call("*", (bottom, x))
            top = Call("/", (top, bottom))
        return top

    def factor(self, f: sp.Expr) -> Expr:
        if not f.is_Pow:
            return self.expr(f)
        base, exp = f.base, f.exp
        if exp.is_number:
            if base.is_number:
                return _const(f)
            ev = complex(exp)
            if ev.imag:
                raise _Unprintable(str(f))
            ev = ev.real
            nonneg = isinstance(base, sp.Abs) or base.is_nonnegative
            inner = base.args[0] if isinstance(base, sp.Abs) else base
            if ev == 1:
                return self.expr(base)
            if ev == 2:
                return Call("square", (self.expr(base),))
            if ev == 3:
                return Call("cube", (self.expr(base),))
            if exp == sp.S.Half and nonneg:
                return Call("sqrt", (self.expr(inner),))
            if exp == sp.Rational(1, 3) and nonneg:
                return Call("cbrt", (self.expr(base),))
            return Call("power", (self.expr(base), _const(exp)))
        if base == 2:
            return Call("exp2", (self.expr(exp),))
        if base == 10:
            return Call("exp10", (self.expr(exp),))
        return Call("power", (self.expr(base), self.expr(exp)))


def _emit(program: Program, outputs: dict[str, sp.Expr], exact: bool) -> Program:
    """Statements for the chosen output expressions: shared subexpressions first, then states, then update."""
    to_expr = _Printer(exact).expr
    names = list(outputs)
    taken = set(program.args) | set(names)
    temps = (sp.Symbol(f"x{i}", real=True) for i in range(1, 10_000) if f"x{i}" not in taken)
    # never share a guarded denominator (y + eps): it must stay whole to print back as "/ y"
    replacements, reduced = sp.cse([outputs[n] for n in names], symbols=temps, order="none", ignore=(EPS,))
    reduced = dict(zip(names, reduced))
    body: list[tuple[str, sp.Expr]] = [(s.name, v) for s, v in replacements]
    result_name = {}
    # A state whose new value is a shared temporary takes the temporary's place under the slot's name,
    # unless a later statement still reads the slot's old value.
    for name in names:
        if name == "update":
            continue
        value = reduced[name]
        sym = _symbol(program, name)
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
        sym = _symbol(program, name)
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
        sym = _symbol(program, name)
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
