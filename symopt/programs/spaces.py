"""How the values of a program are stored: the spaces its numeric forms run in, and a tensor's matrix view.

A :class:`Space` gives the numeric forms of the library's functions (:mod:`symopt.programs.functions`)
element-wise application, the sum over the whole parameter tree, the sum within each tensor and each
tensor's matrix view: :class:`FlatSpace` (one flat vector, the interpreter's and NumPy's) and
:class:`TreeSpace` (a list of leaves, the optax export's).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

DIV_EPS = 1e-8
"""Hero's guard: ``x / y`` is ``x / (y + DIV_EPS)``; the norms of ``cosine_sim``, ``clip_by_global_norm`` and
Muon's Newton-Schulz are guarded the same way."""


def matrix_view(shape: tuple[int, ...]) -> tuple[int, int]:
    """How the matrix functions see a parameter tensor: (rows, columns).

    A tensor of two or more axes is a matrix of its last axis (the outputs of a dense
    layer's ``[in, out]`` kernel, of a convolution's ``[..., in, out]`` kernel) against all
    the others; a vector (biases, gains) is one column, a 0-d tensor a 1 x 1 matrix. Shape
    alone decides: a proxy task's tree carries no names, so embeddings and heads are
    matrices too, as in optax.contrib.muon's default.
    """
    if len(shape) >= 2:
        return math.prod(shape[:-1]), shape[-1]
    return (shape[0] if shape else 1), 1


class Space:
    """How values are stored; the numeric forms of reductions are written against it.

    A backend supplies element-wise application with broadcasting (``map``), the
    sum over the whole parameter tree (``total``) and the sum within each
    tensor, broadcast back over that tensor's values (``per_tensor``).
    """

    xp: Any

    def const(self, value: float):
        """A constant as a value; a Python float stays weakly typed in JAX, so bf16 stays bf16."""
        return value

    def map(self, f: Callable, *args):  # pragma: no cover - interface
        raise NotImplementedError

    def total(self, x):  # pragma: no cover - interface
        raise NotImplementedError

    def per_tensor(self, x):  # pragma: no cover - interface
        raise NotImplementedError

    def matrices(self, f: Callable, x):  # pragma: no cover - interface
        """``f(m, ndim)`` on each tensor's matrix view ``m`` (an array ``[..., rows, cols]``, see
        :func:`matrix_view`; ``ndim`` the tensor's own number of axes), returning an array of
        ``m``'s shape; the results reassembled as ``x`` is stored."""
        raise NotImplementedError


class FlatSpace(Space):
    """Tensor values as one flat vector; ``segments`` says which tensor each entry is in.

    Scalars are 0-d arrays. With ``segments=None`` the whole vector is one tensor.
    ``shapes``, the tensors' shapes in order, is what the matrix functions need;
    without it every tensor is a vector.
    """

    def __init__(self, xp, segments=None, num_segments: int = 1, shapes=None):
        self.xp = xp
        self.segments = segments
        self.num_segments = num_segments
        self.shapes = None if shapes is None else tuple(tuple(int(d) for d in s) for s in shapes)
        if self.shapes is not None and len(self.shapes) != num_segments:
            raise ValueError(f"{len(self.shapes)} shapes for {num_segments} segments")

    def _shapes(self, n: int) -> tuple[tuple[int, ...], ...]:
        if self.shapes is not None:
            return self.shapes
        if self.segments is None:
            return ((n,),)
        return tuple((int(c),) for c in np.bincount(np.asarray(self.segments), minlength=self.num_segments))

    def matrices(self, f, x):
        # Tensors of one view and rank go through f together, stacked: one batched computation per
        # group (a transformer's 18 tensors are 7 groups), so that a compiled step holds fewer. A group
        # of one goes through as the plain matrix: on a CPU a batch of one matrix product is slower
        # (Newton-Schulz on 64 x 64: 15%).
        xp = self.xp
        if not xp.ndim(x):
            return x
        shapes = self._shapes(x.shape[0])
        starts = np.cumsum([0] + [math.prod(shape) for shape in shapes]).tolist()
        groups: dict[tuple, list[int]] = {}
        for i, shape in enumerate(shapes):
            groups.setdefault((matrix_view(shape), len(shape)), []).append(i)
        pieces = [None] * len(shapes)
        for (view, ndim), members in groups.items():
            views = [x[starts[i]:starts[i + 1]].reshape(view) for i in members]
            out = f(views[0], ndim)[None] if len(views) == 1 else f(xp.stack(views), ndim)
            for j, i in enumerate(members):
                pieces[i] = out[j].reshape(-1)
        return xp.concatenate(pieces) if len(pieces) > 1 else pieces[0]

    def const(self, value):
        return np.float32(value) if self.xp is np else value

    def map(self, f, *args):
        return f(*args)

    def total(self, x):
        return self.xp.sum(x) if self.xp.ndim(x) else x

    def per_tensor(self, x):
        xp = self.xp
        if not xp.ndim(x):
            return x
        if self.segments is None:
            return xp.broadcast_to(xp.sum(x), x.shape)
        if xp is np:
            sums = np.bincount(self.segments, weights=x, minlength=self.num_segments).astype(x.dtype)
        else:
            import jax

            sums = jax.ops.segment_sum(x, self.segments, num_segments=self.num_segments)
        return sums[self.segments]


class TreeSpace(Space):
    """Tensor values as lists of arrays, one per parameter tensor; scalars as they are.

    Per-tensor values are lists of 0-d arrays. Sums are taken in float32 at
    least, so a bf16 tree keeps an accurate norm.
    """

    def __init__(self, xp):
        self.xp = xp

    def map(self, f, *args):
        n = next((len(a) for a in args if isinstance(a, list)), None)
        if n is None:
            return f(*args)
        return [f(*(a[i] if isinstance(a, list) else a for a in args)) for i in range(n)]

    def _sum(self, leaf):
        dtype = self.xp.promote_types(leaf.dtype, self.xp.float32)
        return self.xp.sum(leaf, dtype=dtype)

    def total(self, x):
        return sum(self._sum(leaf) for leaf in x) if isinstance(x, list) else x

    def per_tensor(self, x):
        return [self._sum(leaf) for leaf in x] if isinstance(x, list) else x

    def matrices(self, f, x):
        if not isinstance(x, list):
            return x
        return [f(leaf.reshape(matrix_view(leaf.shape)), leaf.ndim).reshape(leaf.shape) for leaf in x]
