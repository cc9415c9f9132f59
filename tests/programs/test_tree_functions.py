"""The functions of each tensor's matrix view: their faces agree with each other and with optax."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from optax.contrib._muon import orthogonalize_via_newton_schulz  # not re-exported by optax.contrib

from symopt.programs import baselines, parse
from symopt.programs.checker import check, state_kinds
from symopt.programs.functions import FUNCTIONS, MATRIX_FUNCTIONS, Kind, ShapeError, join
from symopt.programs.spaces import FlatSpace, TreeSpace, matrix_view
from symopt.programs.tree_functions import NS_COEFFS
from symopt.evolve.dedup import BatchSpace
from symopt.tools.inspect_run import state_memory
from symopt.symbolic import to_sympy
from symopt.symbolic.simplify import simplify

SHAPES = ((7, 4), (4, 7), (5, 5), (6,), (2, 3, 4), ())  # tall, wide, square, a vector, 3 axes, 0-d


def _tree(seed=0, shapes=SHAPES, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _flat(leaves, shapes=SHAPES, xp=np):
    space = FlatSpace(xp, np.repeat(np.arange(len(shapes)), [math.prod(s) for s in shapes]), len(shapes), shapes)
    return space, xp.concatenate([xp.ravel(xp.asarray(x)) for x in leaves])


def _split(flat, shapes=SHAPES):
    out, start = [], 0
    for s in shapes:
        n = math.prod(s)
        out.append(np.asarray(flat[start:start + n]).reshape(s))
        start += n
    return out


def test_matrix_view_is_last_axis_against_the_rest():
    assert matrix_view((64, 32)) == (64, 32)
    assert matrix_view((3, 3, 8, 16)) == (72, 16)  # a conv kernel [kh, kw, in, out]
    assert matrix_view((10,)) == (10, 1) and matrix_view(()) == (1, 1)


@pytest.mark.parametrize("shape", [(9, 4), (4, 9), (6, 6), (32, 10)])
def test_orthogonalize_equals_optax_newton_schulz(shape):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    want = np.asarray(orthogonalize_via_newton_schulz(jnp.asarray(x), jnp.asarray(NS_COEFFS)))
    f = FUNCTIONS["orthogonalize"]
    space, flat = _flat([x], (shape,))
    np.testing.assert_allclose(f.apply(space, flat).reshape(shape), want, atol=2e-6)
    jspace, jflat = _flat([x], (shape,), jnp)
    np.testing.assert_allclose(np.asarray(f.apply(jspace, jflat)).reshape(shape), want, atol=2e-6)
    np.testing.assert_allclose(np.asarray(f.apply(TreeSpace(jnp), [jnp.asarray(x)])[0]), want, atol=2e-6)
    # Muon's iteration: singular values land near 1 (about 0.68 to 1.13), whatever the input's scale
    s = np.linalg.svd(want, compute_uv=False)
    assert s.min() > 0.6 and s.max() < 1.2


@pytest.mark.parametrize("shape", [(9, 1), (1, 9), (1, 1), (300, 1)])
@pytest.mark.parametrize("scale", [1.0, 1e-7, 0.0, 1e4])
def test_orthogonalize_of_one_row_or_column_is_the_iteration_in_closed_form(shape, scale):
    """A vector's view (one column) is orthogonalised by scaling, not by matrix products: what optax's
    iteration gives on it, at any scale, zero included."""
    x = (np.random.default_rng(2).standard_normal(shape) * scale).astype(np.float32)
    want = np.asarray(orthogonalize_via_newton_schulz(jnp.asarray(x), jnp.asarray(NS_COEFFS)))
    f = FUNCTIONS["orthogonalize"]
    for xp in (np, jnp):
        space, flat = _flat([x], (shape,), xp)
        np.testing.assert_allclose(np.asarray(f.apply(space, flat)).reshape(shape), want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", MATRIX_FUNCTIONS)
def test_faces_agree_on_a_tree_of_matrices_vectors_and_scalars(name):
    f = FUNCTIONS[name]
    leaves = _tree()
    space, flat = _flat(leaves)
    flat_np = _split(f.apply(space, flat))
    jspace, jflat = _flat(leaves, xp=jnp)
    flat_jax = _split(np.asarray(f.apply(jspace, jflat)))
    tree_jax = [np.asarray(x) for x in f.apply(TreeSpace(jnp), [jnp.asarray(x) for x in leaves])]
    tree_np = f.apply(TreeSpace(np), leaves)
    batch = BatchSpace(SHAPES)
    rows = np.stack([flat, 2.0 * flat])  # two probe rows at once
    batched = f.apply(batch, rows)
    for i, x in enumerate(leaves):
        for other in (flat_jax[i], tree_jax[i], tree_np[i], _split(batched[0])[i]):
            np.testing.assert_allclose(np.broadcast_to(other, x.shape), flat_np[i], rtol=2e-5, atol=2e-6)
    r, c = zip(*(matrix_view(s) for s in SHAPES))
    if name == "rows":
        assert [float(v.flat[0]) for v in flat_np] == list(r)
    if name == "cols":
        assert [float(v.flat[0]) for v in flat_np] == list(c)
    if name == "is_matrix":
        assert [float(v.flat[0]) for v in flat_np] == [1, 1, 1, 0, 1, 0]
    if name == "row_mean":
        np.testing.assert_allclose(flat_np[0], np.broadcast_to(leaves[0].mean(1, keepdims=True), (7, 4)), rtol=1e-6)
        np.testing.assert_allclose(flat_np[3], leaves[3])  # a vector is one column: each entry its own row
    if name == "col_mean":
        np.testing.assert_allclose(flat_np[1], np.broadcast_to(leaves[1].mean(0, keepdims=True), (4, 7)), rtol=1e-6)
        np.testing.assert_allclose(flat_np[3], np.full(6, leaves[3].mean()), rtol=1e-6)


@pytest.mark.parametrize("name", MATRIX_FUNCTIONS)
def test_bf16_stays_bf16(name):
    leaves = [jnp.asarray(x, jnp.bfloat16) for x in _tree(2, SHAPES[:4])]
    out = FUNCTIONS[name].apply(TreeSpace(jnp), leaves)
    assert all(o.dtype == jnp.bfloat16 and o.shape == x.shape for o, x in zip(out, leaves))
    assert all(np.all(np.isfinite(np.asarray(o, np.float32))) for o in out)


def test_shape_rules_and_factored_kinds():
    S, P, R, C, T = Kind.SCALAR, Kind.TENSOR_WISE, Kind.ROWS, Kind.COLS, Kind.TENSOR
    shape = {n: FUNCTIONS[n].shape for n in MATRIX_FUNCTIONS}
    assert shape["orthogonalize"]((T,)) == T
    assert shape["row_mean"]((T,)) == R and shape["col_mean"]((T,)) == C
    assert shape["row_mean"]((C,)) == P and shape["col_mean"]((R,)) == P  # the mean of a whole matrix
    assert shape["row_mean"]((R,)) == R and shape["row_mean"]((S,)) == S
    assert shape["rows"]((T,)) == P and shape["is_matrix"]((T,)) == P
    for name in ("orthogonalize", "rows", "cols", "is_matrix"):
        for kind in (S, P, R, C):
            with pytest.raises(ShapeError, match="needs a tensor"):
                shape[name]((kind,))
    assert join((R, C)) == T and join((R, P, S)) == R and join((C, S)) == C and join(()) == S


def test_adafactor_keeps_factored_state_and_counts_it_so():
    adafactor = baselines.get("adafactor")
    assert state_kinds(adafactor) == {"v": Kind.TENSOR, "v_row": Kind.ROWS, "v_col": Kind.COLS}
    assert state_memory(adafactor) == "1 slot + 2 factored = 4.0078 B/param"
    assert state_memory(baselines.get("muon")) == "2 slots = 8 B/param"
    # a slot that mixes rows into columns is a tensor again
    mixed = parse("def f(g, s):\n    s = row_mean(g) + col_mean(g) * s\n    return s, s\n")
    assert state_kinds(mixed) == {"s": Kind.TENSOR}
    means = parse("def f(g, s):\n    s = row_mean(g) + col_mean(s)\n    return s, s\n")  # col_mean(rows): per matrix
    assert state_kinds(means) == {"s": Kind.ROWS}


def test_sympy_sees_them_as_opaque_functions():
    program = parse("""
def f(g, m):
    m = interpolate(m, g, 0.1)
    return orthogonalize(m * 2.0) + row_mean(3.0) * col_mean(g) * is_matrix(g), m
""")
    check(program)
    form = to_sympy(program)
    funcs = {type(f).__name__ for f in form.update.atoms(sp.Function)}
    assert {"orthogonalize", "col_mean", "is_matrix"} <= funcs and "row_mean" not in funcs  # row_mean(3) = 3
    simple = simplify(program)
    assert "orthogonalize(" in str(simple)  # never rewritten away (not scale-invariant for SymPy)
