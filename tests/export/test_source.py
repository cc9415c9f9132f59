"""export_source: a standalone optax module that computes exactly what to_optax computes."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from symopt.export import export_source, to_optax
from symopt.programs import FUNCTIONS, parse
from symopt.programs.functions import Kind
from symopt.programs.checker import calls
from symopt.programs.program import PRECEDENCE

_counter = itertools.count()

PROGRAMS = {
    "adam": """
def train(w, g, m, v, lr, t):
    b1 = 0.9
    b2 = 0.999
    m = interpolate(m, g, 1.0 - b1)
    v = interpolate(v, square(g), 1.0 - b2)
    mhat = m / (1.0 - power(b1, t))
    vhat = v / (1.0 - power(b2, t))
    update = mhat / (sqrt(vhat) + 1e-8)
    update = update + w * 0.01
    update = update * lr
    return update, m, v
""",
    "lion": """
def lion(w, g, m, lr):
    b1 = 0.9
    b2 = 0.99
    wd = 0.1
    c = interpolate(g, m, b1)
    update = (sign(c) + w * wd) * lr
    m = interpolate(g, m, b2)
    return update, m
""",
    "reductions": """
def train(g, mom, m_hat, count, lr):
    u = clip_by_global_norm(g, 1.0) * cosine_sim(g, mom) + dot(g, mom) * g / global_norm(g) / norm(g)
    u = max(u, -1.0) - min(u, 0.5)
    s = global_norm(2.0) * dot(g * 2.0, mom) + cosine_sim(lr, 3.0) + dot(lr, lr) + norm(-2.0)
    s = s + clip_by_global_norm(lr, 0.5)
    n = norm(mom) + global_norm(clip_by_global_norm(mom * 3.0, 0.1))
    return (u * s + g) * lr, mom * 0.9 + g, n, count + 1.0
""",
    "no_lr": """
def sign_momentum(g, m):
    beta = 0.9
    m = beta * m + (1.0 - beta) * g
    return sign(m) + 0.1 * g, m
""",
    "constants": """
def train(g, m):
    c = get_pi() * get_e() + get_eps() / 3.0
    m = m * 0.5 + g * c
    return m * get_eps() * 1e6 + g, m
""",
    # every element-wise function, on arguments inside its domain; scalar-only uses too
    "all_elementwise": """
def train(g, lr):
    x = tanh(g) * 0.5
    a = abs(x) + cos(x) + sin(x) + tan(x) + arcsin(x) + arccos(x) + arctan(x)
    b = sinh(x) + cosh(x) + arcsinh(x) + arccosh(2.0 + x) + arctanh(x) + exp(x)
    c = exp2(x) + exp10(x) + expm1(x) + log(1.5 + x) + log10(1.5 + x) + log2(1.5 + x) + log1p(x)
    d = square(x) + sqrt(x) + cube(x) + cbrt(x) + sign(x) + reciprocal(2.0 + x) + divide(x, 3.0 + x) + invert(x) + negative(x)
    e = power(1.5 + x, x) + max(x, 0.1) - min(x, -0.1) + interpolate(x, g, 0.3) + -(x * 2.0)
    s = exp10(0.5) + sqrt(lr) + log(lr) + reciprocal(4.0) + 1.0 / 3.0 + cbrt(-8.0) + get_pi()
    return (a + b + c + d + e) * lr * s, 
""",
    # every matrix function, on the matrix (4 x 3) and the vector; Muon's and Adafactor's pieces
    "matrices": """
def train(g, m, v_row, v_col, lr):
    m = interpolate(m, g, 0.1)
    v_row = interpolate(v_row, row_mean(square(g)), 0.2)
    v_col = interpolate(v_col, col_mean(square(g)), 0.2)
    vhat = divide(v_row * v_col, col_mean(v_row) + 1e-30)
    scale = sqrt(max(1.0, divide(cols(g), rows(g))))
    muon = orthogonalize(m) * scale
    adafactor = g / sqrt(vhat + 1e-30)
    k = is_matrix(g)
    return (k * muon + (1.0 - k) * adafactor + row_mean(1.0)) * lr, m, v_row, v_col
""",
    # names that clash with the module's own, scalar and per-tensor outputs, a repeated hyperparameter
    "clashes": """
def train(params, grad, updates, state, jnp, ref, t):
    b1 = 0.5
    tree_map = grad * b1
    b1 = 0.25
    updates = tree_map + updates * b1
    state = global_norm(grad)
    jnp = norm(grad) * 0.5
    ref = jnp + t
    return state * 0.01, updates, state, jnp, ref
""",
}

PARAMS = {"a": np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(4, 3),
          "b": np.array([0.3, -0.7, 1.1], np.float32)}


def _program(key):
    return parse(PROGRAMS[key])


def _load(tmp_path, source, name):
    path = tmp_path / f"exported_{name}_{next(_counter)}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _exported(tmp_path, program, name="opt"):
    return getattr(_load(tmp_path, export_source(program, name), name), name)


def _trajectories(opt_a, opt_b, params=PARAMS, steps=20):
    """Both optimizers' parameters after ``steps`` jitted steps on the same gradients (one compile)."""
    params = jax.tree_util.tree_map(jnp.asarray, params)

    def grad(p, k):
        return jax.tree_util.tree_map(lambda x: jnp.sin(3.0 * x.astype(jnp.float32) + k).astype(x.dtype)
                                      + 0.1 * x, p)

    def run(opt):
        def step(carry, k):
            p, s = carry
            u, s = opt.update(grad(p, k), s, p)
            return (optax.apply_updates(p, u), s), None
        (p, _), _ = jax.lax.scan(step, (params, opt.init(params)), jnp.arange(steps, dtype=jnp.float32))
        return p

    return jax.jit(lambda: (run(opt_a), run(opt_b)))()


def _assert_same(a, b, rtol=1e-6, atol=1e-7):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_allclose(np.asarray(x, np.float32), np.asarray(y, np.float32), rtol=rtol, atol=atol)


def test_factored_state_is_stored_factored_by_both_exports(tmp_path):
    """A row mean's slot keeps one number per row between steps, a column mean's one per column."""
    program = _program("matrices")
    params = jax.tree_util.tree_map(jnp.asarray, {**PARAMS, "c": np.float32(0.5)})  # [4, 3], [3] and a 0-d leaf
    for opt in (to_optax(program, 0.01), _exported(tmp_path, program)(learning_rate=0.01)):
        state = opt.init(params)
        _, state = jax.jit(opt.update)(params, state, params)
        shapes = {k: {n: tuple(x.shape) for n, x in getattr(state, k).items()} for k in ("m", "v_row", "v_col")}
        assert shapes == {"m": {"a": (4, 3), "b": (3,), "c": ()}, "v_row": {"a": (4, 1), "b": (3,), "c": ()},
                          "v_col": {"a": (1, 3), "b": (1,), "c": ()}}


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(PROGRAMS))
def test_same_params_as_to_optax(tmp_path, key):
    program = _program(key)
    ours, theirs = _trajectories(_exported(tmp_path, program)(learning_rate=0.01), to_optax(program, 0.01))
    assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(ours))
    _assert_same(ours, theirs)


def test_every_library_function_is_exported_and_checked():
    assert {name for name, f in FUNCTIONS.items() if f.export[0]} | set(PRECEDENCE) == set(FUNCTIONS)
    used = set().union(*(calls(_program(k)) for k in PROGRAMS))
    assert used == set(FUNCTIONS)


@pytest.mark.slow
def test_hyperparameter_overrides_and_schedule(tmp_path):
    program = _program("adam")
    factory = _exported(tmp_path, program, "adam_like")
    schedule = optax.linear_schedule(0.02, 0.001, 20)
    ours, theirs = _trajectories(factory(learning_rate=schedule, b1=0.8, b2=0.99),
                                 to_optax(program, schedule, b1=0.8, b2=0.99))
    _assert_same(ours, theirs)
    default, _ = _trajectories(factory(learning_rate=schedule), factory(learning_rate=schedule))
    assert not np.allclose(default["a"], ours["a"])  # the override changed something
    sig = inspect.signature(factory)
    assert sig.parameters["learning_rate"].default == 0.001
    assert {k: p.default for k, p in sig.parameters.items() if k != "learning_rate"} == {"b1": 0.9, "b2": 0.999}


def test_repeated_hyperparameter_follows_to_optax(tmp_path):
    program = _program("clashes")  # b1 = 0.5, later b1 = 0.25: an override replaces both
    factory = _exported(tmp_path, program)
    assert inspect.signature(factory).parameters["b1"].default is None
    ours, theirs = _trajectories(factory(learning_rate=0.1, b1=0.75), to_optax(program, 0.1, b1=0.75))
    _assert_same(ours, theirs)


@pytest.mark.slow
def test_inject_hyperparams_and_bf16(tmp_path):
    program = _program("adam")
    factory = _exported(tmp_path, program)
    ours = optax.inject_hyperparams(factory)(learning_rate=0.01, b1=0.8)
    # inject_hyperparams hands the factory float32 arrays, traced: XLA folds constants differently
    theirs = to_optax(program, jnp.float32(0.01), b1=jnp.float32(0.8))
    ours, theirs = _trajectories(ours, theirs)
    _assert_same(ours, theirs, atol=1e-6)
    bf16 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.bfloat16), PARAMS)
    ours, theirs = _trajectories(factory(0.01), to_optax(program, 0.01), params=bf16)
    assert ours["a"].dtype == jnp.bfloat16
    _assert_same(ours, theirs)


def test_state_is_a_named_tuple_with_count_and_slots(tmp_path):
    module = _load(tmp_path, export_source(_program("adam"), "my_adam"), "my_adam")
    state = module.my_adam().init(PARAMS)
    assert isinstance(state, module.MyAdamState)
    assert state._fields == ("count", "m", "v")
    assert state.count.dtype == jnp.int32
    with pytest.raises(ValueError, match="weights"):
        module.my_adam().update(PARAMS, state)


@pytest.mark.parametrize("key", sorted(PROGRAMS))
def test_source_is_standalone_and_readable(key):
    program = _program(key)
    source = export_source(program, "opt")
    tree = ast.parse(source)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported <= {"jax", "jax.numpy", "optax", "typing", "collections"}
    assert "symopt" not in imported and "import symopt" not in source and "from symopt" not in source
    doc = ast.get_docstring(tree)
    assert str(program).strip().splitlines()[1].strip() in doc
    factory = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "opt")
    fdoc = ast.get_docstring(factory)
    assert str(program).splitlines()[-1].strip() in fdoc and "update = " in fdoc and "As math" in fdoc
    # only the helpers the program uses
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert defined - {"opt", "_like", "_leaf_sum", "_total", "_matrices", "_mean_over", "_rows_of", "_cols_of"} \
        <= calls(program)


def test_bad_names_and_baselines():
    program = _program("lion")
    for bad in ("1x", "my-opt", "class", "", "sqrt", "jnp", "callable"):
        with pytest.raises(ValueError):
            export_source(program, bad)

    class Baseline:
        def to_optax(self, learning_rate=1e-3):
            return optax.adam(learning_rate)

    with pytest.raises(TypeError, match="optax-level baseline"):
        export_source(Baseline(), "x")
    with pytest.raises(TypeError, match="Program"):
        export_source(str(program), "x")


@pytest.mark.slow
def test_program_baselines_match_to_optax(tmp_path):
    baselines = pytest.importorskip("symopt.programs.baselines")
    params = jax.tree_util.tree_map(jnp.asarray, PARAMS)
    grads = jax.tree_util.tree_map(lambda x: jnp.cos(x) + 0.5, params)
    for name in baselines.names():
        program = baselines.get(name)
        if not baselines.is_program(program):
            with pytest.raises(TypeError):
                export_source(program, name)
            continue
        opts = [_exported(tmp_path, program, name)(learning_rate=0.05), to_optax(program, 0.05)]
        results = []
        for opt in opts:  # eager, three steps: no compile per baseline
            p, s = params, opt.init(params)
            for _ in range(3):
                u, s = opt.update(grads, s, p)
                p = optax.apply_updates(p, u)
            results.append(p)
        _assert_same(*results)


@pytest.mark.slow
def test_every_hall_of_fame_entry_exports_a_module_that_trains_like_the_program_as_found(tmp_path):
    """A real campaign (serial, tiny budget, all 45 functions): what export writes is what was found and scored."""
    import proxy_tasks
    from symopt.programs.liveness import size
    from symopt.campaign import search

    config = {"space": {"functions": "hero", "max_length": 10},
              "campaign": {"population": 6, "tournament": 2, "budget": 6, "batch": 4, "hall_of_fame": 3,
                           "stages": [{"tasks": ["quadratic_illcond"], "steps": 30, "lr_factors": [1.0]}]}}
    campaign = search(config, seed=3)
    entries = [*campaign.hall_of_fame, campaign.reference]
    assert any(size(e.simplified) < size(e.program) for e in entries)  # there was something to simplify
    task = proxy_tasks.get("quadratic_illcond")
    schedule = task.schedule(1.0, 60)
    for e in entries:
        exported = _exported(tmp_path, e.simplified)(learning_rate=schedule)
        ours, ours_eval = proxy_tasks.train(task, exported, seed=0, steps=60)
        found, found_eval = proxy_tasks.train(task, to_optax(e.program, schedule), seed=0, steps=60)
        np.testing.assert_allclose(ours, found, rtol=1e-5, err_msg=f"{e.program}simplified to\n{e.simplified}")
        np.testing.assert_allclose(ours_eval, found_eval, rtol=1e-5)


def test_export_source_phases_alone():
    """export_source is its phases in turn: the slots' layout, update()'s prologue, the statements (emit's) and
    the epilogue; each runs alone."""
    from symopt.export import source
    from symopt.export.emit import Emitter, Names

    program = parse("def train(w, g, m, v):\n    m = 0.9 * m + g\n    v = row_mean(square(g))\n"
                    "    update = m / sqrt(v)\n    return update, m, v\n")
    fields, slot_field, factored = source._slots(program)
    assert fields[0] == "count" and slot_field == {"m": "m", "v": "v"} and factored == {"v": "_rows_of"}
    local = {n: n for n in ("w", "g", "m", "v", "update")}
    names = Names(set(local))
    emitter = Emitter(program, local, names, source.JAX)
    lr, prologue = source._prologue(program, "my_opt", local, names, slot_field, factored, emitter)
    assert prologue[0] == f"{lr} = learning_rate(state.count) if callable(learning_rate) else learning_rate"
    assert "g = updates" in prologue and "m = state.m" in prologue and "_rows_of" in emitter.helpers
    assert any(line.startswith("v = tree_map(lambda s, ref: jnp.broadcast_to") for line in prologue)
    epilogue = source._epilogue(program, names, "MyOptState", slot_field, factored, lr,
                                [("update", Kind.TENSOR), ("m", Kind.TENSOR), ("v", Kind.ROWS)])
    assert any(f"_like(u * {lr}, ref)" in line for line in epilogue)  # no lr argument: the update times the rate
    assert "    m=tree_map(_like, m, state.m)," in epilogue and any("_rows_of(_like(v, ref)" in x for x in epilogue)
