"""The function library: hero's 45 functions, each with its JAX, NumPy, SymPy and shape faces."""

from __future__ import annotations

import itertools
import math
import warnings

import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from symopt.programs import FUNCTIONS, HERO_FUNCTIONS, Kind
from symopt.programs.functions import EXTRA_FUNCTIONS, MATRIX_FUNCTIONS, ShapeError, get, join, suggest
from symopt.programs.spaces import DIV_EPS, FlatSpace, TreeSpace

F32_MAX = float(np.finfo(np.float32).max)
RTOL = 1e-4
ATOL = 1e-5

# docs/design.md §2, verbatim.
DESIGN_LIBRARY = (
    "+ - * / max min get_pi get_e get_eps "
    "abs cos sin tan arcsin arccos arctan sinh cosh tanh arcsinh arccosh arctanh exp exp2 exp10 expm1 "
    "log log10 log2 log1p square sqrt cube cbrt sign reciprocal norm invert negative "
    "global_norm interpolate dot cosine_sim clip_by_global_norm power"
).split()

REDUCTIONS = ("global_norm", "dot", "cosine_sim", "clip_by_global_norm", "norm")
ELEMENTWISE = tuple(n for n in FUNCTIONS if not FUNCTIONS[n].is_reduction and FUNCTIONS[n].arity > 0)


# -- the library as data ------------------------------------------------------------------


def test_exactly_the_45_hero_functions():
    assert len(HERO_FUNCTIONS) == 45
    assert len(set(HERO_FUNCTIONS)) == 45
    assert sorted(HERO_FUNCTIONS) == sorted(DESIGN_LIBRARY)
    # unary minus, written -x, and optax's plain division (outside hero's set)
    assert set(FUNCTIONS) == set(HERO_FUNCTIONS) | {"neg"} | set(EXTRA_FUNCTIONS) \
        == set(HERO_FUNCTIONS) | {"neg", "divide", *MATRIX_FUNCTIONS}
    assert {n for n in FUNCTIONS if FUNCTIONS[n].is_reduction} == set(REDUCTIONS) | set(MATRIX_FUNCTIONS)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_each_function_has_four_faces(name):
    f = FUNCTIONS[name]
    assert f.name == name
    assert isinstance(f.arity, int) and 0 <= f.arity <= 3
    assert callable(f.sympy) and callable(f.shape)
    assert (f.elementwise is None) != (f.reduction is None)  # exactly one numeric form
    symbols = sp.symbols(f"x0:{f.arity}") if f.arity else ()
    expr = f.sympy(*symbols)
    assert isinstance(expr, sp.Basic)
    assert expr.free_symbols <= set(symbols)
    if name in MATRIX_FUNCTIONS:  # tests/programs/test_tree_functions.py has their faces
        assert f.shape((Kind.TENSOR,)) in (Kind.TENSOR, Kind.ROWS, Kind.COLS, Kind.TENSOR_WISE)
        return
    # the shape rule answers for scalars, and the numeric forms run on scalars
    assert f.shape((Kind.SCALAR,) * f.arity) == Kind.SCALAR
    args = [np.float32(0.5)] * f.arity
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out_np = np.asarray(f.numpy(*args))
        out_jax = np.asarray(f.jax(*[jnp.float32(a) for a in args]))
    assert out_np.shape == () and out_jax.shape == ()


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_shape_rule_broadcasts(name):
    f = FUNCTIONS[name]
    for kinds in itertools.product(list(Kind), repeat=f.arity):
        assert f.shape(kinds) == join(kinds)
        assert f.shape(kinds) == (Kind.TENSOR if {Kind.ROWS, Kind.COLS} <= set(kinds) else max(kinds))


def test_reduction_shape_rules():
    S, P, T = Kind.SCALAR, Kind.TENSOR_WISE, Kind.TENSOR
    shape = {n: FUNCTIONS[n].shape for n in REDUCTIONS}
    assert shape["global_norm"]((T,)) == S
    assert shape["norm"]((T,)) == P
    assert shape["norm"]((S,)) == S
    assert shape["dot"]((T, T)) == S and shape["dot"]((S, S)) == S
    assert shape["cosine_sim"]((T, T)) == S
    assert shape["clip_by_global_norm"]((T, S)) == T
    assert shape["clip_by_global_norm"]((S, S)) == S
    for name, kinds in [("dot", (T, S)), ("dot", (S, T)), ("cosine_sim", (T, S)), ("clip_by_global_norm", (T, T)),
                        ("global_norm", (P,)), ("norm", (P,)), ("dot", (P, P)), ("clip_by_global_norm", (P, S)),
                        ("cosine_sim", (P, P))]:
        with pytest.raises(ShapeError):
            shape[name](kinds)


def test_get_and_suggest():
    assert get("sqrt") is FUNCTIONS["sqrt"]
    with pytest.raises(KeyError, match="did you mean 'square'"):
        get("squre")
    assert "cosine_sim" in suggest("cosine_similarity") or "cosine_sim" in suggest("cosin_sim")
    assert suggest("zzzz") == ""
    assert "'+'" not in suggest("+")  # operators are never suggested


# -- the three numeric faces agree ---------------------------------------------------------


def _sympy_value(expr: sp.Expr):
    """A SymPy expression evaluated to a float; complex -> NaN; complex infinity -> 'zoo'."""
    value = sp.N(expr, 30)
    if value.has(sp.zoo):
        return "zoo"
    if value is sp.nan or value.has(sp.nan):
        return math.nan
    try:
        return float(value)
    except TypeError:
        re, im = value.as_real_imag()
        if im == 0:
            return float(re)
        return math.nan
    except OverflowError:
        return math.copysign(math.inf, float(sp.sign(value)))


def _agree(numeric: float, exact, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """A float32 result against the exact value: NaN == NaN, inf == inf, overflow to inf allowed."""
    if exact == "zoo":  # complex infinity (1/0, log(0)): the float result is an infinity of either sign
        return math.isinf(numeric)
    if math.isnan(exact) or math.isnan(numeric):
        return math.isnan(exact) and math.isnan(numeric)
    if math.isinf(exact):
        return numeric == exact
    if abs(exact) > F32_MAX and math.isinf(numeric):
        return numeric == math.copysign(math.inf, exact)
    return abs(numeric - exact) <= atol + rtol * abs(exact)


def _sympy_forms(name):
    f = FUNCTIONS[name]
    symbols = sp.symbols(f"x0:{f.arity}")
    return f.sympy(*symbols), symbols


def _check_faces(name, columns, tolerance=None):
    """JAX, NumPy and SymPy forms of one element-wise function on float32 columns of inputs."""
    f = FUNCTIONS[name]
    columns = [np.asarray(c, np.float32) for c in columns]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out_np = np.asarray(f.numpy(*columns), np.float64)
    out_jax = np.asarray(f.jax(*[jnp.asarray(c) for c in columns]), np.float64)
    assert out_np.shape == out_jax.shape == columns[0].shape
    expr, symbols = _sympy_forms(name)
    failures = []
    for i in range(len(columns[0])):
        point = [float(c[i]) for c in columns]  # the exact float32 inputs
        exact = _sympy_value(expr.subs({s: sp.Float(v, 30) for s, v in zip(symbols, point)}, simultaneous=True))
        rtol, atol = tolerance(point) if tolerance else (RTOL, ATOL)
        for face, out in (("numpy", out_np[i]), ("jax", out_jax[i])):
            if not _agree(float(out), exact, rtol, atol):
                failures.append(f"{name}{tuple(point)}: {face} {float(out)!r}, sympy {exact!r}")
    assert not failures, "\n".join(failures[:20])


def _domain(name, rng, n):
    """Random float32 inputs, mostly inside the function's real domain, some outside it."""
    f = FUNCTIONS[name]
    general = rng.uniform(-3.0, 3.0, size=(f.arity, n))
    if name in ("arcsin", "arccos", "arctanh"):
        general[0, : n // 2] = rng.uniform(-0.999, 0.999, size=n // 2)
    if name == "arccosh":
        general[0, : n // 2] = rng.uniform(1.0, 10.0, size=n // 2)
    if name == "power":
        general[0, : n // 2] = rng.uniform(0.0, 4.0, size=n // 2)  # positive bases; negatives give NaN or reals
        general[1, :4] = [2.0, 3.0, -1.0, 0.0]  # integer exponents of negative bases too
    if name in ("exp", "exp2", "exp10", "expm1", "sinh", "cosh"):
        general *= 10  # large but below float32 overflow
    return general


def _cancellation_tolerance(name):
    """Absolute error of float32 arithmetic grows with the size of the terms that cancel."""
    if name in ("+", "-", "interpolate", "log1p", "invert", "expm1", "cosh", "sinh"):
        def tol(point):
            scale = max(1.0, *(abs(p) for p in point))
            if name == "interpolate":
                scale = max(1.0, abs(point[0]) * (1 + abs(point[2])) + abs(point[1] * point[2]))
            return RTOL, ATOL * scale
        return tol
    return None


@pytest.mark.slow
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_jax_numpy_and_sympy_forms_agree_on_random_inputs(name):
    rng = np.random.default_rng(sum(map(ord, name)))
    columns = _domain(name, rng, 24)
    _check_faces(name, columns, _cancellation_tolerance(name))


EDGES = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 1e-30, -1e-30, 3.0, -3.0, 1e30, -1e30, 100.0, -100.0]
EDGES_SMALL = [0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 1e30, -1e30]


@pytest.mark.slow
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_jax_numpy_and_sympy_forms_agree_on_edge_cases(name):
    f = FUNCTIONS[name]
    if f.arity == 1:
        combos = [(x,) for x in EDGES]
    elif f.arity == 2:
        combos = list(itertools.product(EDGES_SMALL, EDGES_SMALL))
    else:  # interpolate: weights inside and outside [0, 1], never large enough to overflow in between
        combos = [(x, y, w) for x in EDGES_SMALL for y in EDGES_SMALL for w in (0.0, 0.1, 0.5, 1.0, -1.0, 2.0)]
    columns = [[c[i] for c in combos] for i in range(f.arity)]
    _check_faces(name, columns, _cancellation_tolerance(name))


def test_the_agreement_check_can_fail():
    """The comparison is not vacuous: a wrong value, a wrong infinity, a NaN for a number all fail."""
    assert not _agree(1.001, 1.0)
    assert not _agree(math.inf, -math.inf)
    assert not _agree(math.nan, 1.0)
    assert not _agree(1.0, math.nan)
    assert not _agree(-math.inf, 1e39)  # overflow must keep the sign
    assert not _agree(3.0e38, 1e39)
    assert not _agree(1.0, "zoo")
    assert _agree(math.inf, 1e39) and _agree(math.nan, math.nan) and _agree(-math.inf, "zoo")
    assert _sympy_value(sp.asin(sp.Float(2))) != _sympy_value(sp.asin(sp.Float(2)))  # complex -> NaN
    assert _sympy_value(sp.log(sp.Float(0))) == "zoo"
    assert _sympy_value(sp.exp(sp.Float(1e30))) == math.inf


# -- documented domain behaviour -----------------------------------------------------------


def _all_faces(name, *args):
    """The value of a function at one point by its NumPy, JAX and SymPy forms."""
    f = FUNCTIONS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out_np = float(f.numpy(*[np.float32(a) for a in args]))
    out_jax = float(f.jax(*[jnp.float32(a) for a in args]))
    expr, symbols = _sympy_forms(name)
    exact = _sympy_value(expr.subs({s: sp.Float(a, 30) for s, a in zip(symbols, args)}, simultaneous=True))
    return out_np, out_jax, exact


@pytest.mark.parametrize("name,args,expected", [
    ("log", (-math.e,), 1.0),
    ("log", (math.e,), 1.0),
    ("log10", (-100.0,), 2.0),
    ("log2", (-8.0,), 3.0),
    ("log1p", (-3.0,), math.log(2.0)),  # log(|1 + x|)
    ("sqrt", (-4.0,), 2.0),
    ("sqrt", (9.0,), 3.0),
    ("cbrt", (-8.0,), -2.0),  # the real cube root, not NaN
    ("cbrt", (27.0,), 3.0),
    ("cbrt", (0.0,), 0.0),
    ("invert", (0.0,), -1.0),  # ~0 == -1
    ("invert", (5.0,), -6.0),  # ~5 == -6
    ("invert", (-3.0,), 2.0),  # ~-3 == 2
    ("invert", (0.5,), -1.5),  # -x - 1 on reals
    ("/", (1.0, 0.0), 1e8),  # guarded division: x / (y + 1e-8)
    ("/", (6.0, 3.0), 2.0),
    ("reciprocal", (4.0,), 0.25),
    ("interpolate", (2.0, 4.0, 0.25), 2.5),  # (1 - w) * x + w * y
    ("interpolate", (2.0, 4.0, 0.0), 2.0),
    ("interpolate", (2.0, 4.0, 1.0), 4.0),
    ("max", (-1.0, 2.0), 2.0),
    ("min", (-1.0, 2.0), -1.0),
    ("power", (2.0, 10.0), 1024.0),
    ("power", (-2.0, 3.0), -8.0),
    ("exp10", (2.0,), 100.0),
    ("exp2", (-1.0,), 0.5),
    ("negative", (3.0,), -3.0),
    ("neg", (3.0,), -3.0),
    ("cube", (-2.0,), -8.0),
    ("sign", (-0.5,), -1.0),
    ("sign", (0.0,), 0.0),
    ("abs", (-0.5,), 0.5),
    ("arcsin", (1.0,), math.pi / 2),
    ("arcsin", (2.0,), math.nan),
    ("arcsin", (-2.0,), math.nan),
    ("arccos", (2.0,), math.nan),
    ("arccosh", (0.5,), math.nan),
    ("arctanh", (2.0,), math.nan),
    ("arctanh", (1.0,), math.inf),
    ("power", (-8.0, 1.0 / 3.0), math.nan),
    ("exp", (1000.0,), math.inf),
    ("reciprocal", (0.0,), math.inf),
])
def test_documented_values(name, args, expected):
    for face, value in zip(("numpy", "jax", "sympy"), _all_faces(name, *args)):
        if value == "zoo":
            value = math.inf
        if math.isnan(expected):
            assert math.isnan(value), (face, value)
        else:
            assert value == pytest.approx(expected, rel=1e-5, abs=1e-6), (face, value)


@pytest.mark.parametrize("name,value", [("get_pi", math.pi), ("get_e", math.e), ("get_eps", 1e-8)])
def test_constants(name, value):
    f = FUNCTIONS[name]
    assert f.arity == 0
    assert float(f.numpy()) == pytest.approx(value, rel=1e-7)
    assert float(f.jax()) == pytest.approx(value, rel=1e-7)
    assert float(f.sympy()) == pytest.approx(value, rel=1e-12)
    assert DIV_EPS == 1e-8


@pytest.mark.slow
def test_python_float_arguments_do_not_raise():
    """In a TreeSpace (the optax export) constants and lr are Python floats, not arrays."""
    space = TreeSpace(jnp)
    assert float(FUNCTIONS["exp10"].apply(space, 2.0)) == pytest.approx(100.0)
    assert float(FUNCTIONS["reciprocal"].apply(space, 0.0)) == math.inf
    assert float(FUNCTIONS["/"].apply(space, 1.0, -DIV_EPS)) == math.inf
    assert float(FUNCTIONS["/"].apply(space, 1.0, 2.0)) == pytest.approx(0.5)
    for name in ELEMENTWISE:
        f = FUNCTIONS[name]
        f.apply(space, *[0.5] * f.arity)


@pytest.mark.parametrize("name", ["exp10", "/", "reciprocal", "sqrt", "log", "interpolate", "power", "cbrt"])
def test_bfloat16_stays_bfloat16_with_python_float_constants(name):
    f = FUNCTIONS[name]
    x = jnp.asarray([0.5, 2.0], jnp.bfloat16)
    out = f.apply(TreeSpace(jnp), *([[x]] + [0.25] * (f.arity - 1)))
    assert out[0].dtype == jnp.bfloat16


# -- reductions ----------------------------------------------------------------------------

SIZES = [3, 1, 5, 2, 4]


@pytest.fixture(scope="module")
def segmented():
    rng = np.random.default_rng(0)
    x = rng.normal(size=sum(SIZES)).astype(np.float32)
    y = rng.normal(size=sum(SIZES)).astype(np.float32)
    segments = np.repeat(np.arange(len(SIZES)), SIZES).astype(np.int32)
    return x, y, segments


def _spaces(segments):
    n = len(SIZES)
    return {"numpy": FlatSpace(np, segments, n), "jax": FlatSpace(jnp, jnp.asarray(segments), n)}


def _split(v):
    return np.split(np.asarray(v), np.cumsum(SIZES)[:-1])


def _hand(name, x, y, c=None):
    """The reductions computed by hand, in float64."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    if name == "global_norm":
        return np.linalg.norm(x64)
    if name == "dot":
        return float(x64 @ y64)
    if name == "cosine_sim":
        return float(x64 @ y64) / (np.linalg.norm(x64) * np.linalg.norm(y64) + 1e-8)
    if name == "clip_by_global_norm":
        return x64 * min(1.0, c / (np.linalg.norm(x64) + 1e-8))
    if name == "norm":
        return np.concatenate([np.full(s, np.linalg.norm(part)) for s, part in zip(SIZES, _split(x64))])
    raise AssertionError(name)


def _args(name, x, y, c):
    return {"global_norm": (x,), "norm": (x,), "dot": (x, y), "cosine_sim": (x, y),
            "clip_by_global_norm": (x, c)}[name]


@pytest.mark.parametrize("c", [0.5, 100.0])
@pytest.mark.parametrize("name", REDUCTIONS)
def test_reductions_flat_space_numpy_jax_and_by_hand(name, c, segmented):
    x, y, segments = segmented
    f = FUNCTIONS[name]
    expected = _hand(name, x, y, c)
    for face, space in _spaces(segments).items():
        xp = space.xp
        args = [xp.asarray(a) if isinstance(a, np.ndarray) else np.float32(a) for a in _args(name, x, y, c)]
        out = np.asarray(f.apply(space, *args), np.float64)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6, err_msg=face)
    if name == "clip_by_global_norm":
        clipped_norm = np.linalg.norm(_hand(name, x, y, c))
        assert clipped_norm == pytest.approx(min(c, np.linalg.norm(x)), rel=1e-6)
    if name == "norm":
        parts = _split(expected)
        assert len({round(float(p[0]), 6) for p in parts}) == len(SIZES)  # one norm per segment
        assert all(np.all(p == p[0]) for p in parts)


@pytest.mark.parametrize("c", [0.5, 100.0])
@pytest.mark.parametrize("xp", [np, jnp], ids=["numpy", "jax"])
@pytest.mark.parametrize("name", REDUCTIONS)
def test_reductions_tree_space_equals_flat_space(name, xp, c, segmented):
    x, y, segments = segmented
    f = FUNCTIONS[name]
    shapes = [(3,), (1,), (5,), (2, 1), (2, 2)]
    assert [int(np.prod(s)) for s in shapes] == SIZES

    def leaves(v):
        return [xp.asarray(part.reshape(shape)) for part, shape in zip(_split(v), shapes)]

    tree_args = [leaves(a) if isinstance(a, np.ndarray) else a for a in _args(name, x, y, c)]
    out_tree = f.apply(TreeSpace(xp), *tree_args)
    flat_space = _spaces(segments)["jax" if xp is jnp else "numpy"]
    flat_args = [xp.asarray(a) if isinstance(a, np.ndarray) else np.float32(a) for a in _args(name, x, y, c)]
    out_flat = np.asarray(f.apply(flat_space, *flat_args))
    if isinstance(out_tree, list):  # per-tensor (norm: one 0-d value per leaf) or per-parameter values
        out_tree = np.concatenate([np.broadcast_to(np.asarray(v), shape).ravel()
                                   for v, shape in zip(out_tree, shapes)])
    np.testing.assert_allclose(np.asarray(out_tree), out_flat, rtol=1e-5, atol=1e-6)


def test_norm_composes_element_wise_per_tensor(segmented):
    """norm(g) * g scales each tensor by its own norm, in both spaces."""
    x, _, segments = segmented
    flat = _spaces(segments)["numpy"]
    n = FUNCTIONS["norm"].apply(flat, x)
    scaled = FUNCTIONS["*"].apply(flat, n, x)
    expected = np.concatenate([np.linalg.norm(p) * p for p in _split(x)])
    np.testing.assert_allclose(scaled, expected, rtol=1e-5)
    tree = TreeSpace(np)
    leaves = _split(x)
    scaled_tree = FUNCTIONS["*"].apply(tree, FUNCTIONS["norm"].apply(tree, leaves), leaves)
    np.testing.assert_allclose(np.concatenate(scaled_tree), expected, rtol=1e-5)


def test_reductions_of_scalars():
    for space in (FlatSpace(np), TreeSpace(np), FlatSpace(jnp), TreeSpace(jnp)):
        s = np.float32(-3.0)
        assert float(FUNCTIONS["global_norm"].apply(space, s)) == pytest.approx(3.0)
        assert float(FUNCTIONS["norm"].apply(space, s)) == pytest.approx(3.0)
        assert float(FUNCTIONS["dot"].apply(space, s, np.float32(2.0))) == pytest.approx(-6.0)
        assert float(FUNCTIONS["clip_by_global_norm"].apply(space, s, np.float32(1.0))) == pytest.approx(-1.0)


def test_tree_space_sums_bfloat16_in_float32():
    leaves = [jnp.full((300,), 1.0, jnp.bfloat16), jnp.full((7,), 1.0, jnp.bfloat16)]
    assert float(FUNCTIONS["global_norm"].apply(TreeSpace(jnp), leaves) ** 2) == pytest.approx(307.0, rel=1e-5)
    assert float(FUNCTIONS["dot"].apply(TreeSpace(jnp), leaves, leaves)) == pytest.approx(307.0, rel=1e-5)


def test_flat_space_without_segments_is_one_tensor():
    x = np.arange(1.0, 5.0, dtype=np.float32)
    for f_out in (FUNCTIONS["norm"].numpy(x), FUNCTIONS["norm"].jax(jnp.asarray(x))):
        np.testing.assert_allclose(np.asarray(f_out), np.full(4, np.linalg.norm(x)), rtol=1e-6)
