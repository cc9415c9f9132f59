"""A program as mathematics: SymPy expressions of its outputs, and LaTeX.

:func:`to_sympy` substitutes the statements of a program through, so that the
update and each new state slot become one SymPy expression of the program's
inputs (the arguments: ``w``, ``g``, ``lr``, ``t`` and the old state slots). It is
the one translator of :mod:`symopt.symbolic.exact_form` in its form for reading
(constants as written, nothing folded).
:func:`latex` prints those expressions as one LaTeX line per output.

Each library function brings its own SymPy form (``Function.sympy`` in
:mod:`symopt.programs.functions`): element-wise functions map to SymPy's
(``sqrt(x)`` is ``sqrt(Abs(x))``, as hero takes ``|x|`` first), and the
tree-wide reductions (``global_norm``, ``dot``, ``cosine_sim``,
``clip_by_global_norm``, per-tensor ``norm``) are opaque ``sympy.Function``
stand-ins that keep their name. :func:`numpy_namespace` gives those stand-ins
their NumPy meaning for ``sympy.lambdify``.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from typing import Iterator

import numpy as np
import sympy as sp
from sympy.printing.latex import LatexPrinter

from symopt.programs.checker import check
from symopt.programs.execute import hyperparameters as program_hyperparameters
from symopt.programs.functions import FUNCTIONS
from symopt.programs.tree_functions import SYMPY_REDUCTIONS
from symopt.programs.program import Program
from symopt.symbolic.exact_form import translate, written_constant

__all__ = ["SymbolicForm", "latex", "numpy_namespace", "to_sympy"]


@dataclasses.dataclass(frozen=True, eq=False)
class SymbolicForm(Mapping):
    """The outputs of a program as SymPy expressions of its inputs.

    A read-only mapping from ``"update"`` and each state slot name (in argument
    order) to its expression, so ``dict(form)`` and ``form.items()`` work.
    ``form.update`` and ``form.state`` say the same without ambiguity (a state
    slot may itself be called ``update``; the mapping's ``"update"`` is always
    the update).

    Attributes:
        update: the program's own update. A program without an ``lr`` argument
            is multiplied by the learning rate outside it (``to_optax`` does
            that); this expression does not include that factor.
        state: the new value of each state slot, by slot name.
        symbols: the SymPy symbol of each argument (``real=True``, named after
            the argument), in argument order; the expressions are functions of
            these (and, with ``keep_hyperparameters``, of :attr:`hyperparameters`).
        hyperparameters: the symbol of each hyperparameter kept symbolic, by
            name (empty unless ``keep_hyperparameters=True``).
        defaults: the program's value of each hyperparameter (``b1 = 0.9``).
        exact: whether hero's division guard (``x / (y + 1e-8)``) is kept.
    """

    program: Program
    update: sp.Expr
    state: dict[str, sp.Expr]
    symbols: dict[str, sp.Symbol]
    hyperparameters: dict[str, sp.Symbol]
    defaults: dict[str, float]
    exact: bool

    def __getitem__(self, key: str) -> sp.Expr:
        if key == "update":
            return self.update
        return self.state[key]

    def __iter__(self) -> Iterator[str]:
        yield "update"
        yield from (k for k in self.state if k != "update")

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v}" for k, v in [("update", self.update), *self.state.items()])
        return f"SymbolicForm({body})"


def to_sympy(program: Program, *, exact: bool = False, keep_hyperparameters: bool = False) -> SymbolicForm:
    """The update and each new state slot as SymPy expressions of the program's inputs.

    Args:
        program: a checked program (the result of :func:`symopt.parse`).
        exact: keep everything numerically faithful to how the program runs:
            each ``x / y`` is hero's guarded ``x / (y + 1e-8)``. The default,
            ``exact=False``, drops that implicit 1e-8 so the math reads as
            written (``m / (sqrt(v) + 1e-8)`` stays that, but is no longer
            ``m / (sqrt(v) + 1e-8 + 1e-8)``). Guards inside ``cosine_sim`` and
            ``clip_by_global_norm`` live in their numeric forms either way, and
            ``get_eps()`` is always the number 1e-8.
        keep_hyperparameters: write hyperparameters (names assigned a constant,
            ``b1 = 0.9``) as symbols instead of their numbers; their values are
            in ``form.defaults``. A hyperparameter that shares its name with an
            argument stays a number.

    Every argument is a real SymPy symbol of the same name; state inputs are
    the old values of the slots (``m``), and all right-hand sides read the
    values before the step. Whole-number constants become SymPy Integers,
    other constants the exact Float of the program's value.
    """
    if not isinstance(program, Program):
        raise TypeError(f"to_sympy() needs a symopt.Program, got {type(program).__name__}; "
                        "optax-level baselines have no program text")
    check(program)
    symbols = {a: sp.Symbol(a, real=True) for a in program.args}
    values = program_hyperparameters(program)
    hyper = {name: sp.Symbol(name, real=True) for name in values
             if keep_hyperparameters and name not in symbols}
    out = translate(program, symbols, program.state_args, faithful=False, guard=exact, hyperparameters=hyper)
    update = out.pop("update")
    return SymbolicForm(program, update, out, symbols, hyper, values, exact)


# -- NumPy meaning for lambdify ----------------------------------------------------------


def numpy_namespace() -> dict:
    """A ``sympy.lambdify`` module entry that gives the reductions their NumPy meaning.

    Use as ``sympy.lambdify(args, expr, modules=[numpy_namespace(), "numpy"])``.
    A tensor is one flat NumPy array, which is one parameter tensor (as
    ``FlatSpace(np)`` without segments): ``norm(x)`` is then the norm of the
    whole array, broadcast over it. ``Max``/``Min`` are element-wise with
    broadcasting (SymPy's printer would stack their arguments).
    """
    names = {name: FUNCTIONS[name].numpy for name in SYMPY_REDUCTIONS}
    names["Max"] = lambda *a: functools.reduce(np.maximum, a)
    names["Min"] = lambda *a: functools.reduce(np.minimum, a)
    return names


# -- LaTeX -------------------------------------------------------------------------------

_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
          "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi",
          "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi",
          "Psi", "Omega"}

_NICE_NAMES = {"lr": r"\eta", "eps": r"\epsilon", "wd": r"\lambda", "b": r"\beta", "mu": r"\mu"}
_BETA = re.compile(r"^(?:b|beta)_?(\d+)$")


def _tex_word(word: str) -> str:
    if word in _GREEK:
        return "\\" + word
    if len(word) == 1:
        return word
    return r"\mathrm{" + word.replace("_", r"\_") + "}"


def latex_name(name: str) -> str:
    """LaTeX for a program name: ``b1`` is ``\\beta_{1}``, ``lr`` is ``\\eta``, ``m_hat`` is ``m_{\\mathrm{hat}}``."""
    if name in _NICE_NAMES:
        return _NICE_NAMES[name]
    beta = _BETA.match(name)
    if beta:
        return rf"\beta_{{{beta.group(1)}}}"
    base, sep, sub = name.partition("_")
    if not sep:
        digits = re.search(r"\d+$", name)
        if digits and digits.start() > 0:
            base, sub = name[:digits.start()], digits.group()
    if not base:  # a name that starts with an underscore
        return _tex_word(name)
    if sub:
        return f"{_tex_word(base)}_{{{_tex_word(sub) if not sub.isdigit() else sub}}}"
    return _tex_word(base)


def _powered(print_function):
    """A printer method that also takes SymPy's ``exp=`` (a function raised to a power, ``f(x)^2``)."""

    def method(self, e, exp=None):
        text = print_function(self, e)
        return text if exp is None else r"\left(%s\right)^{%s}" % (text, exp)

    return method


class _Printer(LatexPrinter):
    """SymPy's LaTeX printer, with notation for the tree-wide reductions and expm1."""

    @_powered
    def _print_global_norm(self, e):
        return r"\left\lVert %s \right\rVert" % self._print(e.args[0])

    @_powered
    def _print_norm(self, e):
        return r"\left\lVert %s \right\rVert_{\mathrm{tensor}}" % self._print(e.args[0])

    @_powered
    def _print_dot(self, e):
        return r"\left\langle %s, %s \right\rangle" % tuple(self._print(a) for a in e.args)

    @_powered
    def _print_cosine_sim(self, e):
        return r"\operatorname{cos\_sim}\left(%s, %s\right)" % tuple(self._print(a) for a in e.args)

    @_powered
    def _print_expm1(self, e):
        return r"\operatorname{expm1}\left(%s\right)" % self._print(e.args[0])

    @_powered
    def _print_clip_by_global_norm(self, e):
        x, c = (self._print(a) for a in e.args)
        return r"\operatorname{clip}_{%s}\left(%s\right)" % (c, x)


def _wrapped(expr: sp.Expr, printer: _Printer) -> str:
    """LaTeX of an expression, in parentheses when it is a sum (it follows a minus sign or a factor)."""
    text = printer.doprint(expr)
    if isinstance(expr, sp.Add) or text.startswith("-"):
        return rf"\left({text}\right)"
    return text


def latex(program: Program, *, exact: bool = False, keep_hyperparameters: bool = False) -> str:
    """The whole update rule as LaTeX, one line per output, in an ``aligned`` block.

    The first line is the weight update, ``w \\leftarrow w - \\ldots`` (with
    ``\\eta`` times the program's update when the program takes no ``lr``: the
    learning rate multiplies it outside), then one ``m \\leftarrow \\ldots`` line
    per state slot. Every right-hand side reads the values before the step.
    ``exact`` and ``keep_hyperparameters`` are as for :func:`to_sympy`; with
    ``keep_hyperparameters`` a last line gives the hyperparameters' values.
    Reductions print as ``\\lVert x \\rVert`` (global norm), ``\\langle x, y
    \\rangle`` (dot over the tree), ``\\lVert x \\rVert_{\\mathrm{tensor}}``
    (per-tensor norm), ``\\operatorname{cos\\_sim}`` and
    ``\\operatorname{clip}_{c}(x)``.
    """
    form = to_sympy(program, exact=exact, keep_hyperparameters=keep_hyperparameters)
    all_symbols = {**form.symbols, **form.hyperparameters}
    printer = _Printer({"symbol_names": {s: latex_name(n) for n, s in all_symbols.items()}})
    weight = latex_name(program.arg_for("weight") or "w")
    step = _wrapped(form.update, printer)
    if not program.has_lr:
        step = rf"\eta \, {step}"
    lines = [rf"{weight} &\leftarrow {weight} - {step}"]
    lines += [rf"{latex_name(slot)} &\leftarrow {printer.doprint(expr)}" for slot, expr in form.state.items()]
    if form.hyperparameters:
        given = r",\quad ".join(f"{latex_name(n)} = {printer.doprint(written_constant(form.defaults[n]))}"
                                for n in form.hyperparameters)
        lines.append(rf"&\text{{with }} {given}")
    return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"
