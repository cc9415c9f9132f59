"""The function library of update-rule programs: hero's 45 functions.

Each function has four faces: a numeric form written once against an array
module ``xp`` (instantiated with ``jax.numpy``, with ``numpy`` and, in
:func:`symopt.to_torch`, with torch under NumPy's names), a SymPy form, and a
shape rule over value kinds (see :class:`Kind`); and the source forms the
exported modules are written with, for JAX (``export``) and PyTorch (``torch``).

Domains follow hero (google/automl, hero/fn_lib.py), with two repairs:

* ``log``, ``log10``, ``log2`` and ``sqrt`` take the absolute value of their
  input first, and ``log1p(x)`` is ``log(|1 + x|)``, as in hero;
* ``x / y`` is ``x / (y + 1e-8)`` (hero's guarded division); ``cosine_sim``
  and ``clip_by_global_norm`` guard their norms the same way;
* ``arcsin``/``arccos`` outside [-1, 1], ``arccosh`` below 1, ``arctanh``
  outside (-1, 1), ``power`` of a negative base to a fractional exponent, and
  overflowing ``exp``/``cosh``/... give NaN or Inf, as in hero: a candidate that
  produces them diverges and gets the worst fitness, so no domain is clipped;
* hero's ``cbrt`` returns the function object instead of a value: here it is
  the real cube root; hero's ``invert`` is a bitwise NOT that fails on floats:
  here it is its real extension ``invert(x) = -x - 1`` (equal to ``~x`` on
  integers).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Callable

import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import expm1 as _sp_expm1, log2 as _sp_log2, log10 as _sp_log10

from symopt.programs.hints import did_you_mean
from symopt.programs.sources import JAX as _JAX_SOURCES, TORCH as _TORCH_SOURCES
from symopt.programs.spaces import DIV_EPS, FlatSpace, Space
from symopt.programs.tree_functions import (clip_by_global_norm, clip_by_global_norm_numeric, col_mean,
                                            col_mean_numeric, cols, cols_numeric, cosine_sim, cosine_sim_numeric,
                                            dot, dot_numeric, global_norm, global_norm_numeric, is_matrix,
                                            is_matrix_numeric, norm, norm_numeric, orthogonalize,
                                            orthogonalize_numeric, row_mean, row_mean_numeric, rows, rows_numeric)



class Kind(enum.IntEnum):
    """What a value is; broadcasting two kinds gives their :func:`join`.

    SCALAR: one number (``lr``, ``t``, constants, ``global_norm(g)``);
    TENSOR_WISE: one number per parameter tensor (``norm(g)``);
    ROWS: one number per row of each tensor's matrix view (``row_mean(g)``, see :func:`matrix_view`);
    COLS: one number per column of it (``col_mean(g)``);
    TENSOR: one number per parameter (``w``, ``g``, state slots).

    A factored second moment (Adafactor's) keeps a ROWS and a COLS value: rows + columns
    numbers per matrix, not rows x columns.
    """

    SCALAR = 0
    TENSOR_WISE = 1
    ROWS = 2
    COLS = 3
    TENSOR = 4


def join(kinds) -> Kind:
    """The kind of a value broadcast from values of these kinds: the largest, and rows with columns a tensor."""
    kinds = set(kinds)
    if {Kind.ROWS, Kind.COLS} <= kinds:
        return Kind.TENSOR
    return max(kinds, default=Kind.SCALAR)


FACTORED = (Kind.ROWS, Kind.COLS)


class ShapeError(Exception):
    """A function applied to kinds of values it does not accept."""



@dataclasses.dataclass(frozen=True)
class Function:
    """One library function: arity, shape rule, numeric form, SymPy form and exported form.

    ``elementwise(xp, *args)`` is set for element-wise functions; reductions over
    the parameter tree set ``reduction(space, *args)`` instead. ``export`` is what
    :func:`symopt.export_source` writes into a module: for an element-wise
    function its body over ``x, y, w`` and a one-line docstring, for a reduction
    its whole definition over trees (and ``""``); empty for the operators. ``torch`` is the same for
    ``export_source(..., framework="torch")`` (its docstring is ``export[1]``): an element-wise body over
    tensors or numbers ``x, y, w`` (``_tensor(x)`` makes a number a float32 0-d tensor), a reduction's
    definition over lists of tensors, one per parameter of a group. The optimizer of :func:`symopt.to_torch`
    runs the numeric form on ``symopt.export.torch_array``'s NumPy-like face of torch.
    """

    name: str
    arity: int
    sympy: Callable[..., sp.Expr]
    shape: Callable[[tuple[Kind, ...]], Kind]
    elementwise: Callable | None = None
    reduction: Callable | None = None
    doc: str = ""
    export: tuple[str, str] = ("", "")
    torch: str = ""

    def apply(self, space: Space, *args):
        """The function on values stored as ``space`` stores them."""
        if self.reduction is not None:
            return self.reduction(space, *args)
        if self.arity == 0:
            return space.const(self.elementwise(space.xp))
        return space.map(lambda *a: self.elementwise(space.xp, *a), *args)

    def jax(self, *args):
        """JAX form on arrays (a tensor value is one flat array, one tensor)."""
        import jax.numpy as jnp

        return self.apply(FlatSpace(jnp), *args)

    def numpy(self, *args):
        """NumPy form on arrays (a tensor value is one flat array, one tensor)."""
        return self.apply(FlatSpace(np), *args)

    @property
    def is_reduction(self) -> bool:
        return self.reduction is not None


# --- shape rules ------------------------------------------------------------------


def _no_tensor_wise(name: str, kinds: tuple[Kind, ...]) -> None:
    if Kind.TENSOR_WISE in kinds:
        raise ShapeError(f"{name}() of a per-tensor value (such as norm(x)) is not defined")


def _to_scalar(name):
    def rule(kinds):
        _no_tensor_wise(name, kinds)
        return Kind.SCALAR
    return rule


def _same_kind_to_scalar(name):
    def rule(kinds):
        _no_tensor_wise(name, kinds)
        if kinds[0] != kinds[1]:
            raise ShapeError(f"{name}() needs two tensors or two scalars, got "
                             f"{kinds[0].name.lower()} and {kinds[1].name.lower()}")
        return Kind.SCALAR
    return rule


def _clip_rule(kinds):
    _no_tensor_wise("clip_by_global_norm", kinds)
    if kinds[1] != Kind.SCALAR:
        raise ShapeError("clip_by_global_norm(x, c) needs a scalar clip norm c")
    return kinds[0]


def _norm_rule(kinds):
    _no_tensor_wise("norm", kinds)
    return Kind.TENSOR_WISE if kinds[0] == Kind.TENSOR else Kind.SCALAR


def _tensor_to(name, kind):
    def rule(kinds):
        if kinds[0] != Kind.TENSOR:
            raise ShapeError(f"{name}() needs a tensor (one number per parameter), got a "
                             f"{kinds[0].name.lower().replace('_', '-')} value")
        return kind
    return rule


def _mean_rule(kept: Kind, dropped: Kind):
    """row_mean keeps ROWS and turns COLS into one number per tensor; col_mean the other way round."""
    def rule(kinds):
        k = kinds[0]
        if k == Kind.TENSOR:
            return kept
        return Kind.TENSOR_WISE if k == dropped else k
    return rule



def _sym_div(x, y):
    return x / (y + sp.Float(DIV_EPS))


def _sym_cbrt(x):
    return sp.sign(x) * sp.Abs(x) ** sp.Rational(1, 3)


# --- the library --------------------------------------------------------------------


def _unary(name, ew, sym, doc="", export=("", ""), torch=""):
    return Function(name, 1, sym, join, elementwise=ew, doc=doc, export=export, torch=torch)


def _binary(name, ew, sym, doc="", export=("", ""), torch=""):
    return Function(name, 2, sym, join, elementwise=ew, doc=doc, export=export, torch=torch)


def _const(name, value, sym, export=("", ""), torch=""):
    return Function(name, 0, lambda: sym, lambda kinds: Kind.SCALAR, elementwise=lambda xp: value, export=export,
                    torch=torch)


def _abs_then(f):
    return lambda xp, x: getattr(xp, f)(xp.abs(x))


_FUNCTIONS = [
    # primitives: the operators and element-wise max/min
    _binary("+", lambda xp, x, y: x + y, lambda x, y: x + y),
    _binary("-", lambda xp, x, y: x - y, lambda x, y: x - y),
    _binary("*", lambda xp, x, y: x * y, lambda x, y: x * y),
    # xp.divide, not the / operator: a program's constants and lr are Python floats in a TreeSpace,
    # and Python's float division raises ZeroDivisionError where arrays give inf.
    _binary("/", lambda xp, x, y: xp.divide(x, y + DIV_EPS), _sym_div, "x / (y + 1e-8)"),
    _unary("neg", lambda xp, x: -x, lambda x: -x, "unary minus, written -x"),
    _binary("divide", lambda xp, x, y: xp.divide(x, y), lambda x, y: x / y,
            "x / y unguarded, as optax divides; not one of hero's 45 (the baselines use it to match optax)",
            export=("jnp.divide(x, y)", "x / y, unguarded (as optax divides)."),
           torch='torch.divide(_tensor(x), y)'),
    _binary("max", lambda xp, x, y: xp.maximum(x, y), sp.Max,
            export=("jnp.maximum(x, y)", "Element-wise maximum."),
           torch='torch.maximum(_tensor(x), _tensor(y))'),
    _binary("min", lambda xp, x, y: xp.minimum(x, y), sp.Min,
            export=("jnp.minimum(x, y)", "Element-wise minimum."),
           torch='torch.minimum(_tensor(x), _tensor(y))'),
    # constants
    _const("get_pi", math.pi, sp.pi,
           export=("3.141592653589793", "pi."),
           torch='3.141592653589793'),
    _const("get_e", math.e, sp.E,
           export=("2.718281828459045", "e."),
           torch='2.718281828459045'),
    _const("get_eps", 1e-8, sp.Float(1e-8),
           export=("1e-08", "hero's epsilon, 1e-8."),
           torch='1e-08'),
    # element-wise
    _unary("abs", lambda xp, x: xp.abs(x), sp.Abs,
           export=("jnp.abs(x)", "|x|."),
           torch='torch.abs(_tensor(x))'),
    _unary("cos", lambda xp, x: xp.cos(x), sp.cos,
           export=("jnp.cos(x)", "cos(x)."),
           torch='torch.cos(_tensor(x))'),
    _unary("sin", lambda xp, x: xp.sin(x), sp.sin,
           export=("jnp.sin(x)", "sin(x)."),
           torch='torch.sin(_tensor(x))'),
    _unary("tan", lambda xp, x: xp.tan(x), sp.tan,
           export=("jnp.tan(x)", "tan(x)."),
           torch='torch.tan(_tensor(x))'),
    _unary("arcsin", lambda xp, x: xp.arcsin(x), sp.asin, "NaN outside [-1, 1]",
           export=("jnp.arcsin(x)", "arcsin(x); NaN outside [-1, 1]."),
           torch='torch.arcsin(_tensor(x))'),
    _unary("arccos", lambda xp, x: xp.arccos(x), sp.acos, "NaN outside [-1, 1]",
           export=("jnp.arccos(x)", "arccos(x); NaN outside [-1, 1]."),
           torch='torch.arccos(_tensor(x))'),
    _unary("arctan", lambda xp, x: xp.arctan(x), sp.atan,
           export=("jnp.arctan(x)", "arctan(x)."),
           torch='torch.arctan(_tensor(x))'),
    _unary("sinh", lambda xp, x: xp.sinh(x), sp.sinh,
           export=("jnp.sinh(x)", "sinh(x)."),
           torch='torch.sinh(_tensor(x))'),
    _unary("cosh", lambda xp, x: xp.cosh(x), sp.cosh,
           export=("jnp.cosh(x)", "cosh(x)."),
           torch='torch.cosh(_tensor(x))'),
    _unary("tanh", lambda xp, x: xp.tanh(x), sp.tanh,
           export=("jnp.tanh(x)", "tanh(x)."),
           torch='torch.tanh(_tensor(x))'),
    _unary("arcsinh", lambda xp, x: xp.arcsinh(x), sp.asinh,
           export=("jnp.arcsinh(x)", "arcsinh(x)."),
           torch='torch.arcsinh(_tensor(x))'),
    _unary("arccosh", lambda xp, x: xp.arccosh(x), sp.acosh, "NaN below 1",
           export=("jnp.arccosh(x)", "arccosh(x); NaN below 1."),
           torch='torch.arccosh(_tensor(x))'),
    _unary("arctanh", lambda xp, x: xp.arctanh(x), sp.atanh, "NaN outside (-1, 1)",
           export=("jnp.arctanh(x)", "arctanh(x); NaN outside (-1, 1)."),
           torch='torch.arctanh(_tensor(x))'),
    _unary("exp", lambda xp, x: xp.exp(x), sp.exp,
           export=("jnp.exp(x)", "e ** x."),
           torch='torch.exp(_tensor(x))'),
    _unary("exp2", lambda xp, x: xp.exp2(x), lambda x: 2 ** x,
           export=("jnp.exp2(x)", "2 ** x."),
           torch='torch.exp2(_tensor(x))'),
    _unary("exp10", lambda xp, x: xp.power(xp.asarray(10.0, dtype=x.dtype) if hasattr(x, "dtype") else 10.0, x),
           lambda x: 10 ** x,
           export=('jnp.power(jnp.asarray(10.0, dtype=x.dtype) if hasattr(x, "dtype") else 10.0, x)', "10 ** x, in the dtype of x."),
           torch='torch.pow(10.0, _tensor(x))'),
    # expm1, log10 and log2 keep SymPy functions of their own: exp(x) - 1 is not expm1 in float32
    _unary("expm1", lambda xp, x: xp.expm1(x), _sp_expm1,
           export=("jnp.expm1(x)", "e ** x - 1."),
           torch='torch.expm1(_tensor(x))'),
    _unary("log", _abs_then("log"), lambda x: sp.log(sp.Abs(x)), "log(|x|)",
           export=("jnp.log(jnp.abs(x))", "log(|x|), as hero."),
           torch='torch.log(torch.abs(_tensor(x)))'),
    _unary("log10", _abs_then("log10"), lambda x: _sp_log10(sp.Abs(x)), "log10(|x|)",
           export=("jnp.log10(jnp.abs(x))", "log10(|x|), as hero."),
           torch='torch.log10(torch.abs(_tensor(x)))'),
    _unary("log2", _abs_then("log2"), lambda x: _sp_log2(sp.Abs(x)), "log2(|x|)",
           export=("jnp.log2(jnp.abs(x))", "log2(|x|), as hero."),
           torch='torch.log2(torch.abs(_tensor(x)))'),
    _unary("log1p", lambda xp, x: xp.log(xp.abs(1 + x)), lambda x: sp.log(sp.Abs(1 + x)), "log(|1 + x|)",
           export=("jnp.log(jnp.abs(1 + x))", "log(|1 + x|), as hero."),
           torch='torch.log(torch.abs(1 + _tensor(x)))'),
    _unary("square", lambda xp, x: xp.square(x), lambda x: x ** 2,
           export=("jnp.square(x)", "x ** 2."),
           torch='torch.square(_tensor(x))'),
    _unary("sqrt", _abs_then("sqrt"), lambda x: sp.sqrt(sp.Abs(x)), "sqrt(|x|)",
           export=("jnp.sqrt(jnp.abs(x))", "sqrt(|x|), as hero."),
           torch='torch.sqrt(torch.abs(_tensor(x)))'),
    _unary("cube", lambda xp, x: x * x * x, lambda x: x ** 3,
           export=("x * x * x", "x ** 3."),
           torch='x * x * x'),
    _unary("cbrt", lambda xp, x: xp.cbrt(x), _sym_cbrt, "real cube root (hero's is broken)",
           export=("jnp.cbrt(x)", "The real cube root."),
           torch='torch.sign(_tensor(x)) * torch.abs(_tensor(x)) ** (1.0 / 3.0)'),
    _unary("sign", lambda xp, x: xp.sign(x), sp.sign,
           export=("jnp.sign(x)", "-1, 0 or 1."),
           torch='torch.sign(_tensor(x))'),
    _unary("reciprocal", lambda xp, x: xp.divide(1.0, x), lambda x: 1 / x, "1 / x, unguarded as in hero",
           export=("jnp.divide(1.0, x)", "1 / x, unguarded as in hero."),
           torch='torch.divide(1.0, _tensor(x))'),
    Function("norm", 1, norm, _norm_rule, reduction=norm_numeric,
             doc="L2 norm of each parameter tensor, as hero's jnp.linalg.norm per leaf",
             export=(_JAX_SOURCES['norm'], ""), torch=_TORCH_SOURCES['norm']),
    _unary("invert", lambda xp, x: -x - 1, lambda x: -x - 1, "-x - 1: ~x extended to reals (hero's is bitwise)",
           export=("-x - 1", "-x - 1: bitwise NOT (~x) extended to real numbers."),
           torch='-x - 1'),
    _unary("negative", lambda xp, x: -x, lambda x: -x,
           export=("-x", "-x."),
           torch='-x'),
    # over the whole parameter tree
    Function("global_norm", 1, global_norm, _to_scalar("global_norm"), reduction=global_norm_numeric,
             export=(_JAX_SOURCES['global_norm'], ""), torch=_TORCH_SOURCES['global_norm']),
    Function("interpolate", 3, lambda x, y, w: (1 - w) * x + w * y, join,
             elementwise=lambda xp, x, y, w: (1 - w) * x + w * y, doc="(1 - w) * x + w * y",
             export=("(1 - w) * x + w * y", "(1 - w) * x + w * y."),
           torch='(1 - w) * x + w * y'),
    Function("dot", 2, dot, _same_kind_to_scalar("dot"), reduction=dot_numeric,
             export=(_JAX_SOURCES['dot'], ""), torch=_TORCH_SOURCES['dot']),
    Function("cosine_sim", 2, cosine_sim, _same_kind_to_scalar("cosine_sim"), reduction=cosine_sim_numeric,
             doc="dot(x, y) / (global_norm(x) * global_norm(y) + 1e-8)",
             export=(_JAX_SOURCES['cosine_sim'], ""), torch=_TORCH_SOURCES['cosine_sim']),
    Function("clip_by_global_norm", 2, clip_by_global_norm, _clip_rule, reduction=clip_by_global_norm_numeric,
             doc="x * min(1, c / (global_norm(x) + 1e-8))",
             export=(_JAX_SOURCES['clip_by_global_norm'], ""), torch=_TORCH_SOURCES['clip_by_global_norm']),
    _binary("power", lambda xp, x, y: xp.power(x, y), lambda x, y: x ** y, "NaN for a negative base to a fractional power",
            export=("jnp.power(x, y)", "x ** y; NaN for a negative base to a fractional power."),
           torch='torch.pow(_tensor(x), _tensor(y))'),
    # over each tensor's matrix view (matrix_view): not hero's; what Muon and Adafactor are made of
    Function("orthogonalize", 1, orthogonalize, _tensor_to("orthogonalize", Kind.TENSOR), reduction=orthogonalize_numeric,
             doc="Muon's Newton-Schulz orthogonalisation of each tensor's matrix view (a vector is one column)",
             export=(_JAX_SOURCES['orthogonalize'], ""), torch=_TORCH_SOURCES['orthogonalize']),
    Function("row_mean", 1, row_mean, _mean_rule(Kind.ROWS, Kind.COLS), reduction=row_mean_numeric,
             doc="the mean of each row of each tensor's matrix view, spread over the row",
             export=(_JAX_SOURCES['row_mean'], ""), torch=_TORCH_SOURCES['row_mean']),
    Function("col_mean", 1, col_mean, _mean_rule(Kind.COLS, Kind.ROWS), reduction=col_mean_numeric,
             doc="the mean of each column of each tensor's matrix view, spread over the column",
             export=(_JAX_SOURCES['col_mean'], ""), torch=_TORCH_SOURCES['col_mean']),
    Function("rows", 1, rows, _tensor_to("rows", Kind.TENSOR_WISE), reduction=rows_numeric,
             doc="the number of rows of each tensor's matrix view (its fan-in)",
             export=(_JAX_SOURCES['rows'], ""), torch=_TORCH_SOURCES['rows']),
    Function("cols", 1, cols, _tensor_to("cols", Kind.TENSOR_WISE), reduction=cols_numeric,
             doc="the number of columns of each tensor's matrix view (its fan-out)",
             export=(_JAX_SOURCES['cols'], ""), torch=_TORCH_SOURCES['cols']),
    Function("is_matrix", 1, is_matrix, _tensor_to("is_matrix", Kind.TENSOR_WISE), reduction=is_matrix_numeric,
             doc="1 on tensors of two or more axes, 0 on vectors: a rule treats the two apart with it",
             export=(_JAX_SOURCES['is_matrix'], ""), torch=_TORCH_SOURCES['is_matrix']),
]

FUNCTIONS: dict[str, Function] = {f.name: f for f in _FUNCTIONS}
OPERATORS = ("+", "-", "*", "/", "neg")
"""Functions written as operators; ``neg`` is unary minus (hero counts it with ``-``)."""

MATRIX_FUNCTIONS = ("orthogonalize", "row_mean", "col_mean", "rows", "cols", "is_matrix")
"""The functions of each tensor's matrix view (:func:`matrix_view`); every other function is element-wise
or sums over whole tensors or the whole tree."""

EXTRA_FUNCTIONS = ("divide", *MATRIX_FUNCTIONS)
"""Library functions beyond hero's: search spaces may add them, the baselines use them."""

HERO_FUNCTIONS = tuple(name for name in FUNCTIONS if name != "neg" and name not in EXTRA_FUNCTIONS)
"""The 45 functions of hero's search space (the four operators count as four)."""

assert len(HERO_FUNCTIONS) == 45, len(HERO_FUNCTIONS)


def get(name: str) -> Function:
    """The library function called ``name``; an unknown name raises KeyError with suggestions."""
    try:
        return FUNCTIONS[name]
    except KeyError:
        raise KeyError(f"unknown function {name!r}{suggest(name)}") from None


def suggest(name: str, candidates=None) -> str:
    """' (did you mean ...?)' for names close to ``name``, or ''."""
    return did_you_mean(name, [n for n in (candidates if candidates is not None else FUNCTIONS) if n not in OPERATORS])
