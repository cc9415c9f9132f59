"""The library functions that see more than one number at a time: over the whole parameter tree
(``global_norm``, ``dot``, ``cosine_sim``, ``clip_by_global_norm``), each tensor (``norm``) or each tensor's
matrix view (``orthogonalize``, ``row_mean``, ``col_mean``, ``rows``, ``cols``, ``is_matrix``).

Two of each one's faces live here, its numeric form against a :class:`~symopt.programs.spaces.Space` and
its SymPy stand-in; its exported sources (JAX, PyTorch) are in :mod:`symopt.programs.sources`, and its row in
:mod:`symopt.programs.functions` joins them with its shape rule.
"""

from __future__ import annotations

import types
from typing import Callable

import sympy as sp

from symopt.programs.spaces import DIV_EPS, Space


# --- numeric forms of the reductions -----------------------------------------------


def global_norm_numeric(s: Space, x):
    return s.xp.sqrt(s.total(s.map(s.xp.square, x)))


def dot_numeric(s: Space, x, y):
    return s.total(s.map(lambda a, b: a * b, x, y))


def cosine_sim_numeric(s: Space, x, y):
    return dot_numeric(s, x, y) / (global_norm_numeric(s, x) * global_norm_numeric(s, y) + DIV_EPS)


def clip_by_global_norm_numeric(s: Space, x, c):
    factor = s.xp.minimum(1.0, c / (global_norm_numeric(s, x) + DIV_EPS))
    return s.map(lambda a: a * factor, x)


def norm_numeric(s: Space, x):
    return s.map(s.xp.sqrt, s.per_tensor(s.map(s.xp.square, x)))


# --- numeric forms of the matrix functions: on each tensor's matrix view [..., rows, cols] ---------

NS_COEFFS = (3.4445, -4.7750, 2.0315)
"""Muon's quintic Newton-Schulz coefficients (Keller Jordan; optax.contrib's default)."""
NS_STEPS = 5


def _newton_schulz(xp, m):
    """Muon's orthogonalisation, as optax.contrib.orthogonalize_via_newton_schulz: X = M / (||M||_F + 1e-8)
    (transposed when tall), then X <- aX + (bA + cA^2)X with A = X X^T, five times."""
    if min(m.shape[-2:]) == 1:
        return _newton_schulz_vector(xp, m)
    tall = m.shape[-2] > m.shape[-1]
    x = xp.swapaxes(m, -1, -2) if tall else m
    x = x / (xp.linalg.norm(x, ord="fro", axis=(-2, -1), keepdims=True) + DIV_EPS)
    a_, b_, c_ = NS_COEFFS
    for _ in range(NS_STEPS):
        a = x @ xp.swapaxes(x, -1, -2)
        x = a_ * x + (b_ * a + c_ * (a @ a)) @ x
    return xp.swapaxes(x, -1, -2) if tall else x


def _newton_schulz_vector(xp, m):
    """The same iteration on a matrix of one row or one column (a vector's view), in closed form: there
    A = X X^T is the 1 x 1 ||X||^2, so each step scales X by the number a + b||X||^2 + c||X||^4. Equal to the
    matrix form up to rounding, without its fifteen small matrix products (a quarter of a Muon step's
    Newton-Schulz time on ``mlp_digits``, whose biases are vectors)."""
    norm = xp.linalg.norm(m, ord="fro", axis=(-2, -1), keepdims=True)
    x = m / (norm + DIV_EPS)
    s2 = xp.square(norm / (norm + DIV_EPS))  # ||X||^2
    a_, b_, c_ = NS_COEFFS
    for _ in range(NS_STEPS):
        f = a_ + b_ * s2 + c_ * xp.square(s2)
        x = x * f
        s2 = s2 * xp.square(f)
    return x


def _mean_over(xp, m, axis):
    """The mean over one axis of the matrix view, spread back over it; summed in float32 at least."""
    mean = xp.mean(m, axis=axis, keepdims=True, dtype=xp.promote_types(m.dtype, xp.float32))
    return xp.broadcast_to(xp.asarray(mean, dtype=m.dtype), m.shape)


def orthogonalize_numeric(s: Space, x):
    return s.matrices(lambda m, ndim: _newton_schulz(s.xp, m), x)


def row_mean_numeric(s: Space, x):
    return s.matrices(lambda m, ndim: _mean_over(s.xp, m, -1), x)


def col_mean_numeric(s: Space, x):
    return s.matrices(lambda m, ndim: _mean_over(s.xp, m, -2), x)


def rows_numeric(s: Space, x):
    return s.matrices(lambda m, ndim: s.xp.full_like(m, m.shape[-2]), x)


def cols_numeric(s: Space, x):
    return s.matrices(lambda m, ndim: s.xp.full_like(m, m.shape[-1]), x)


def is_matrix_numeric(s: Space, x):
    return s.matrices(lambda m, ndim: s.xp.full_like(m, 1.0 if ndim >= 2 else 0.0), x)


# --- SymPy forms that have no SymPy builtin ---------------------------------------


class _SympyScalar(Space):
    """Numbers as SymPy values: on a scalar the reductions are plain arithmetic (as the lowering writes them)."""

    xp = types.SimpleNamespace(sqrt=sp.sqrt, square=lambda x: x ** 2, minimum=sp.Min)

    def map(self, f, *args):
        return f(*args)

    def total(self, x):
        return x

    def per_tensor(self, x):
        return x


class _Reduction(sp.Function):
    """SymPy stand-in for a tree-wide reduction; of numbers, its numeric form on a scalar (a number SymPy
    can compare, as in ``max(dot(get_eps(), 0.999), g)``)."""

    numeric: Callable

    @classmethod
    def eval(cls, *args):
        if all(a.is_number for a in args):
            return cls.numeric(_SympyScalar(), *args)


class global_norm(_Reduction):
    """SymPy stand-in for the norm over the whole parameter tree."""

    nargs = 1
    numeric = staticmethod(global_norm_numeric)


class dot(_Reduction):
    """SymPy stand-in for the inner product over the whole parameter tree."""

    nargs = 2
    numeric = staticmethod(dot_numeric)


class cosine_sim(_Reduction):
    """SymPy stand-in for the cosine similarity over the whole parameter tree."""

    nargs = 2
    numeric = staticmethod(cosine_sim_numeric)


class clip_by_global_norm(_Reduction):
    """SymPy stand-in for clipping a tree to a global norm."""

    nargs = 2
    numeric = staticmethod(clip_by_global_norm_numeric)


class norm(_Reduction):
    """SymPy stand-in for the L2 norm of each parameter tensor."""

    nargs = 1
    numeric = staticmethod(norm_numeric)


class _MatrixFunction(sp.Function):
    """SymPy stand-in for a function of each tensor's matrix view: opaque, so no rewrite goes through it.

    Only the means of a number are that number (a scalar is the same along every row and column).
    """

    nargs = 1
    keeps_numbers = False

    @classmethod
    def eval(cls, x):
        if cls.keeps_numbers and x.is_number:
            return x


class orthogonalize(_MatrixFunction):
    """SymPy stand-in for Muon's orthogonalisation of each matrix."""


class row_mean(_MatrixFunction):
    """SymPy stand-in for the mean of each row."""

    keeps_numbers = True


class col_mean(_MatrixFunction):
    """SymPy stand-in for the mean of each column."""

    keeps_numbers = True


class rows(_MatrixFunction):
    """SymPy stand-in for the number of rows of each tensor's matrix view."""


class cols(_MatrixFunction):
    """SymPy stand-in for the number of columns of each tensor's matrix view."""


class is_matrix(_MatrixFunction):
    """SymPy stand-in for 1 on matrices, 0 on vectors."""


SYMPY_REDUCTIONS = {f.__name__: f for f in (global_norm, dot, cosine_sim, clip_by_global_norm, norm, orthogonalize,
                                            row_mean, col_mean, rows, cols, is_matrix)}
