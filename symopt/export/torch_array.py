"""PyTorch with NumPy's names: the array module ``xp`` that the library's numeric forms run on in
:func:`symopt.to_torch`.

Each library function's numeric form is written once against an array module
(``symopt.programs.functions``: ``xp.sqrt(xp.abs(x))``, ``xp.linalg.norm(x, ord="fro", axis=...)``);
JAX and NumPy supply it as they are. :data:`xp` is that module over torch: NumPy's names and
keywords (``axis``, ``keepdims``, ``swapaxes``, ``arcsin``...), numbers as float32 0-d tensors where
a torch function wants tensors (``jnp.cos(0.5)`` is a float32 array too; a 0-d tensor, like JAX's
weakly typed numbers, leaves a bf16 tensor bf16), and the one function torch lacks, ``cbrt``.
"""

from __future__ import annotations

import types

import torch

__all__ = ["xp"]


def as_tensor(x, dtype=None):
    """A tensor as it is (cast to ``dtype`` when given); a number as a float32 0-d tensor (or ``dtype``)."""
    if isinstance(x, torch.Tensor):
        return x if dtype is None else x.to(dtype)
    return torch.tensor(x, dtype=dtype or torch.float32)


def _tensors(f):
    """``f`` with its number arguments made float32 0-d tensors."""
    return lambda *args: f(*(as_tensor(a) for a in args))


def _cbrt(x):
    x = as_tensor(x)
    return torch.sign(x) * torch.abs(x) ** (1.0 / 3.0)


def _sum(x, dtype=None):
    return torch.sum(as_tensor(x), dtype=dtype)


def _mean(x, axis=None, keepdims=False, dtype=None):
    return torch.mean(x, dim=axis, keepdim=keepdims, dtype=dtype)


def _norm(x, ord=None, axis=None, keepdims=False):
    return torch.linalg.norm(x, ord=ord, dim=axis, keepdim=keepdims)


_ELEMENTWISE = ("abs", "cos", "sin", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "arcsinh",
                "arccosh", "arctanh", "exp", "exp2", "expm1", "log", "log10", "log2", "square", "sqrt", "sign",
                "divide", "maximum", "minimum")

xp = types.SimpleNamespace(
    **{name: _tensors(getattr(torch, name)) for name in _ELEMENTWISE},
    cbrt=_cbrt,
    power=_tensors(torch.pow),
    asarray=as_tensor,
    float32=torch.float32,
    promote_types=torch.promote_types,
    sum=_sum,
    mean=_mean,
    broadcast_to=torch.broadcast_to,
    full_like=torch.full_like,
    swapaxes=torch.swapaxes,
    linalg=types.SimpleNamespace(norm=_norm),
)
"""The array module of the library's numeric forms, over torch (see the module's docstring)."""
