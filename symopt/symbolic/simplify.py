"""Making programs short without changing what they compute: dead code out, then SymPy.

:func:`simplify` removes dead code (:mod:`symopt.programs.liveness`), writes
each live output as a SymPy expression faithful to how the program runs
(:mod:`symopt.symbolic.exact_form`: hero's guarded division stays whole,
``expm1`` stays ``expm1``, constants are their float32 values), lets SymPy
rewrite it within a time limit (as written, ``factor_terms``, ``expand``,
``simplify``; constants folded, like terms collected, nested interpolations
merged, common subexpressions shared), and prints each rewrite back as a
program. The shortest one that is no longer than the dead-code-free program
and passes the numeric check of :mod:`symopt.symbolic.equivalence` (exact
zeros, tiny and huge values, several steps with the state carried, float64
and float32) is the result; otherwise the dead-code-free program is.

Nothing but a ProgramError leaves :func:`simplify`: when SymPy fails (an
infinite constant such as ``cosh(1e+30)``, a recursion too deep, an
expression with no counterpart in the language) or runs out of time, the
result is the dead-code-free program.
"""

from __future__ import annotations

import functools
import gc
import signal
import threading
from typing import Callable

import sympy as sp

from symopt.programs.program import Program
from symopt.programs.liveness import (eliminate_dead_code, size)
from symopt.symbolic.equivalence import equivalent
from symopt.symbolic.exact_form import from_sympy, printed_size, to_sympy_outputs

__all__ = ["SimplifyTimeout", "simplify", "with_deadline"]

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
            if not done and not _in_gc_callback(frame):  # raised there, it is lost and printed (JAX's has one)
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


def _in_gc_callback(frame) -> bool:
    """Whether ``frame`` runs inside one of ``gc.callbacks``, where an exception is printed and dropped; the
    alarm then waits for its next repeat (50 ms)."""
    codes = {getattr(getattr(cb, "__func__", cb), "__code__", None) for cb in gc.callbacks}
    while frame is not None:
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False


# --- simplification ------------------------------------------------------------------------------

REWRITES: tuple[tuple[str, Callable[[sp.Expr], sp.Expr]], ...] = (
    ("as written", lambda e: e),
    ("factor_terms", sp.factor_terms),
    ("expand", functools.partial(sp.expand, deep=False)),
    ("simplify", sp.simplify),
)
"""SymPy's rewrites, cheapest first; each is tried on every output."""


def simplify(program: Program, timeout: float = 5.0) -> Program:
    """A short program that computes what ``program`` computes, found with SymPy within ``timeout`` seconds.

    The dead-code-free program when no rewrite is shorter and passes the
    numeric check, when time runs out, or when anything fails inside (see the
    module docstring). Raises nothing but ProgramError.
    """
    base = eliminate_dead_code(program)
    try:
        return _simplify(base, timeout)
    except Exception:  # SymPy errors, decimal.InvalidOperation, RecursionError...: the program as it is
        return base


def _simplify(base: Program, timeout: float) -> Program:
    found: list[Program] = []
    try:
        with_deadline(lambda: _rewrites(base, found), timeout)
    except SimplifyTimeout:
        pass
    candidates = sorted(list(found), key=size)  # a copy: an abandoned worker thread may still append
    for candidate in candidates:
        if size(candidate) > size(base):
            break
        if equivalent(base, candidate):
            return candidate
    return base


def _rewrites(base: Program, found: list[Program]) -> None:
    """Append to ``found`` the program of each rewrite, and of each output's shortest printable rewrite."""
    outputs = to_sympy_outputs(base)
    best: dict[str, tuple[int, sp.Expr]] = {}
    for _, rewrite in REWRITES:
        try:
            rewritten = {name: rewrite(e) for name, e in outputs.items()}
        except Exception:  # a rewrite SymPy cannot do on this expression
            continue
        try:
            found.append(from_sympy(base, rewritten))
        except Exception:  # no counterpart in the language (or a program that does not check)
            pass
        for name, e in rewritten.items():
            try:
                cost = printed_size(e)
            except Exception:
                continue
            if name not in best or cost < best[name][0]:
                best[name] = (cost, e)
    if len(best) == len(outputs) and len(outputs) > 1:
        found.append(from_sympy(base, {name: best[name][1] for name in outputs}))


