"""to_sympy and latex: a program's outputs as SymPy expressions that compute what the program computes."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import sympy as sp

from symopt.programs import FUNCTIONS, parse
from symopt.programs.execute import run
from symopt.programs.spaces import FlatSpace
from symopt.programs.tree_functions import SYMPY_REDUCTIONS
from symopt.symbolic import latex, latex_name, numpy_namespace, to_sympy

# Constants are dyadic (0.875, not 0.9): FlatSpace(np) holds constants as float32, SymPy as exact
# floats, and 1 - 0.999 differs between the two by 5e-5 relative; 1 - 0.99609375 does not.
PROGRAMS = {
    "adam": """
def train(w, g, m, v, lr, t):
    b1 = 0.875
    b2 = 0.99609375
    m = interpolate(m, g, 1.0 - b1)
    v = interpolate(v, square(g), 1.0 - b2)
    mhat = m / (1.0 - power(b1, t))
    vhat = v / (1.0 - power(b2, t))
    update = mhat / (sqrt(vhat) + 1e-8)
    update = update + w * 0.0078125
    update = update * lr
    return update, m, v
""",
    "lion": """
def lion(w, g, m, lr):
    c = interpolate(g, m, 0.875)
    update = (sign(c) + w * 0.125) * lr
    m = interpolate(g, m, 0.984375)
    return update, m
""",
    "reductions": """
def train(g, mom, acc, lr):
    u = clip_by_global_norm(g, 0.5) * cosine_sim(g, mom) + dot(g, mom) * g / global_norm(g)
    u = u / norm(mom) + global_norm(lr) * dot(lr, 2.0)
    acc = acc + square(u)
    return u * lr / sqrt(acc), mom * 0.75 + g, acc
""",
    "operators_and_constants": """
def train(g, m):
    c = get_pi() * get_e() - get_eps() / 4.0
    m = -(m * 0.5) + g / c - (g - m * 2.0) * -0.25
    u = max(m, g) - min(-m, 0.25) + reciprocal(c) * cube(g) - log(m) * invert(g)
    return u, m
""",
    "without_lr": """
def sign_momentum(g, m):
    beta = 0.875
    m = beta * m + (1.0 - beta) * g
    return sign(m) + exp(-abs(g)) * 0.125, m
""",
}


def _call_text(name: str) -> str:
    """A call of each library function on arguments inside its domain (g in ±[0.1, 0.9], m in [0.5, 1.5])."""
    special = {"neg": "-g", "arccosh": "arccosh(m + 1.0)", "power": "power(m, g)",
               "interpolate": "interpolate(m, g, 0.25)", "clip_by_global_norm": "clip_by_global_norm(g, 0.5)"}
    if name in special:
        return special[name]
    arity = FUNCTIONS[name].arity
    if name in ("+", "-", "*", "/"):
        return f"g {name} m"
    return f"{name}({', '.join(['g', 'm'][:arity])})" if arity else f"g * {name}()"


def _inputs(program, dtype, seed=0):
    rng = np.random.default_rng(seed)
    n = 7
    values = {}
    for a in program.args:
        role = program.role(a)
        if role == "lr":
            values[a] = dtype(0.01)
        elif role == "step":
            values[a] = dtype(3.0)
        elif role == "grad":
            values[a] = (rng.uniform(0.1, 0.9, n) * rng.choice([-1.0, 1.0], n)).astype(dtype)
        elif role == "weight":
            values[a] = rng.uniform(-1.0, 1.0, n).astype(dtype)
        else:
            values[a] = rng.uniform(0.5, 1.5, n).astype(dtype)
    return values


def _lambdify(form, exprs):
    return sp.lambdify(list(form.symbols.values()), list(exprs), modules=[numpy_namespace(), "numpy"])


def _check_numerically(program, dtype, rtol=1e-5):
    form = to_sympy(program, exact=True)
    inputs = _inputs(program, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = run(program, FlatSpace(np), inputs)
        got = _lambdify(form, form.values())(*inputs.values())
    assert len(got) == len(expected) == 1 + len(program.state_args)
    for key, a, b in zip(form, got, expected):
        a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
        assert np.all(np.isfinite(b)), key
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-7, err_msg=f"{key} of\n{program}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("key", sorted(PROGRAMS))
def test_exact_form_computes_what_the_program_computes(key, dtype):
    _check_numerically(parse(PROGRAMS[key]), dtype)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_library_function_maps_to_sympy(name):
    program = parse(f"def train(g, m, lr):\n    u = {_call_text(name)}\n    return u * lr, m\n")
    assert name in {c.fn for s in program.body for c in _calls(s.value)}
    form = to_sympy(program)
    assert isinstance(form.update, sp.Expr)
    assert form.update.free_symbols <= set(form.symbols.values())
    _check_numerically(program, np.float64)
    _check_numerically(program, np.float32, rtol=2e-5)


def _calls(expr):
    from symopt.programs.program import Call, walk
    return [e for e in walk(expr) if isinstance(e, Call)]


def test_outputs_keys_symbols_and_hyperparameters():
    program = parse(PROGRAMS["adam"])
    form = to_sympy(program)
    assert list(form) == ["update", "m", "v"]
    assert list(form.symbols) == ["w", "g", "m", "v", "lr", "t"]
    assert all(s.is_real for s in form.symbols.values())
    g, m = form.symbols["g"], form.symbols["m"]
    assert sp.simplify(form["m"] - (sp.Float(0.875) * m + sp.Float(0.125) * g)) == 0
    assert form.defaults == {"b1": 0.875, "b2": 0.99609375}
    assert form.hyperparameters == {}
    # b1 and b2 appear as their numbers, or as symbols on request
    assert {str(s) for s in form.update.free_symbols} == {"w", "g", "m", "v", "lr", "t"}
    kept = to_sympy(program, keep_hyperparameters=True)
    b1 = kept.hyperparameters["b1"]
    assert sp.expand(kept["m"] - (b1 * m + (1 - b1) * g)) == 0
    assert sp.expand(kept["m"].subs(b1, sp.Float(0.875)) - form["m"]) == 0


def test_exact_keeps_the_division_guard_and_default_drops_it():
    program = parse("def train(g, m):\n    u = g / m\n    return u, m\n")
    g, m = (sp.Symbol(n, real=True) for n in "gm")
    assert to_sympy(program)["update"] == g / m
    assert to_sympy(program, exact=True)["update"] == g / (m + sp.Float(1e-8))


def test_program_without_lr_keeps_its_own_update():
    form = to_sympy(parse(PROGRAMS["without_lr"]))
    lr = sp.Symbol("lr", real=True)
    assert lr not in form.update.free_symbols
    assert "lr" not in form.symbols


def test_str_of_each_output_parses_back():
    for key, text in PROGRAMS.items():
        program = parse(text)
        form = to_sympy(program, exact=True)
        names = {**form.symbols, **SYMPY_REDUCTIONS}
        parsed = [sp.parse_expr(str(e), local_dict=names) for e in form.values()]
        inputs = _inputs(program, np.float64, seed=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = _lambdify(form, form.values())(*inputs.values())
            b = _lambdify(form, parsed)(*inputs.values())
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-12, err_msg=key)
        for e in form.values():  # every printer copes
            assert sp.latex(e) and sp.pretty(e) and sp.srepr(e)


def _balanced(text):
    depth = 0
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    return depth == 0 and len(re.findall(r"\\left(?!arrow)", text)) == len(re.findall(r"\\right(?!arrow)", text))


def test_latex_of_adam():
    text = latex(parse(PROGRAMS["adam"]))
    assert isinstance(text, str) and _balanced(text)
    assert text.startswith(r"\begin{aligned}") and text.endswith(r"\end{aligned}")
    lines = text.splitlines()[1:-1]
    assert len(lines) == 3
    assert lines[0].startswith(r"w &\leftarrow w - ")
    assert lines[1].startswith(r"m &\leftarrow ") and lines[2].startswith(r"v &\leftarrow ")
    assert r"\eta" in lines[0] and r"\sqrt" in lines[0] and "0.875 m" in lines[1] and "g^{2}" in lines[2]
    kept = latex(parse(PROGRAMS["adam"]), keep_hyperparameters=True)
    assert r"\beta_{1}" in kept and r"\beta_{2}" in kept and r"\text{with }" in kept
    assert r"\beta_{1} = 0.875" in kept and _balanced(kept)
    assert latex(parse(PROGRAMS["adam"]), exact=True) != text


def test_latex_of_lion_reductions_and_no_lr():
    lion = latex(parse(PROGRAMS["lion"]))
    assert r"\operatorname{sign}" in lion and _balanced(lion)
    reductions = latex(parse(PROGRAMS["reductions"]))
    for piece in (r"\left\lVert g \right\rVert", r"\left\langle g, \mathrm{mom} \right\rangle",
                  r"\operatorname{cos\_sim}", r"\operatorname{clip}_{0.5}", r"\mathrm{tensor}",
                  r"\mathrm{mom} &\leftarrow", r"\mathrm{acc} &\leftarrow"):
        assert piece in reductions, piece
    assert _balanced(reductions)
    no_lr = latex(parse(PROGRAMS["without_lr"]))
    assert no_lr.splitlines()[1].startswith(r"w &\leftarrow w - \eta \, ")


def test_latex_names():
    assert latex_name("b1") == r"\beta_{1}"
    assert latex_name("beta2") == r"\beta_{2}"
    assert latex_name("lr") == r"\eta"
    assert latex_name("m") == "m"
    assert latex_name("m_hat") == r"m_{\mathrm{hat}}"
    assert latex_name("v2") == "v_{2}"
    assert latex_name("alpha") == r"\alpha"
    assert latex_name("mom") == r"\mathrm{mom}"


def test_every_function_prints_as_latex():
    for name in FUNCTIONS:
        program = parse(f"def train(g, m, lr):\n    u = {_call_text(name)}\n    return u * lr, m\n")
        assert _balanced(latex(program)), name


def test_rejects_non_programs():
    with pytest.raises(TypeError):
        to_sympy("def train(g): return g")


@pytest.mark.parametrize("name", sorted(SYMPY_REDUCTIONS))
def test_a_reduction_under_a_power_prints_as_latex(name):
    args = {1: "g", 2: "g, m"}[SYMPY_REDUCTIONS[name].nargs.args[0]] if name != "clip_by_global_norm" else "g, 0.5"
    program = parse(f"def train(g, m, lr):\n    u = square({name}({args}))\n    return u * lr, m\n")
    text = latex(program)  # SymPy prints f(x)**2 by passing exp= to the function's printer: it raised TypeError
    assert _balanced(text) and "^{2}" in text


@pytest.mark.parametrize("call", ["dot(get_eps(), 0.999)", "global_norm(-0.5)", "norm(0.25)",
                                  "cosine_sim(0.3, -2.0)", "clip_by_global_norm(3.0, 0.5)"])
def test_a_reduction_of_constants_is_a_number_sympy_can_compare(call):
    # max(dot(get_eps(), 0.999), g) raised "not comparable": the reduction of numbers stayed unevaluated
    program = parse(f"def train(g, m, lr):\n    u = max({call}, g)\n    return u * lr, m\n")
    update = to_sympy(program).update
    assert not any(update.atoms(f) for f in SYMPY_REDUCTIONS.values())  # evaluated to a number
    _check_numerically(program, np.float64)
    _check_numerically(program, np.float32, rtol=2e-5)
