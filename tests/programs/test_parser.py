"""The program language: parsing, printing, roles, errors, identity and safety (docs/design.md §2)."""

from __future__ import annotations

import ast
import builtins
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import symopt
from symopt import Program, ProgramError, parse
from symopt.programs import Assign, Call, Const, Var, check
from symopt.programs.parser import MAX_CHARS, MAX_DEPTH

REPO = Path(__file__).resolve().parents[2]

# hero's own AdamW-like program, verbatim: two-space indent, a parenthesised tuple return.
HERO = """\
def train(w, m, v, gradient):
  m = interpolate(m, gradient, 0.1)
  g2 = square(gradient)
  v = interpolate(v, g2, 0.001)
  epsilon = 1e-8
  sqrt_v = sqrt(v)
  sqrt_v = sqrt_v + epsilon
  update = m / sqrt_v
  return (update, m, v)
"""

# hero writes type annotations on arguments, statements and the return.
HERO_ANNOTATED = """\
def train(w: Params, g: Grads, m: Tensor, lr: float) -> Updates:
  \"\"\"An annotated program with a docstring.\"\"\"
  g2: Tensor = square(g)
  m: Tensor = interpolate(m, g, 0.1)
  update = m / (sqrt(g2) + 1e-8)
  update = update * lr
  return (update, m)
"""

DESIGN_EXAMPLE = """\
def train(w, g, m, v, lr):
    g2 = square(g)
    m = interpolate(m, g, 0.1)        # (1 - 0.1) * m + 0.1 * g
    v = interpolate(v, g2, 0.001)
    update = m / (sqrt(v) + 1e-8)
    update = update + w * 0.01
    update = update * lr
    return update, m, v
"""

LION = """\
def lion(w, g, m, lr):
    c = interpolate(m, g, 0.1)
    update = sign(c) + w * 0.01
    update = update * lr
    m = interpolate(m, g, 0.01)
    return update, m
"""

VALID = [HERO, HERO_ANNOTATED, DESIGN_EXAMPLE, LION]


# -- loading valid programs ---------------------------------------------------------------


def test_hero_program_loads_verbatim():
    p = parse(HERO)
    assert isinstance(p, Program)
    assert p.name == "train"
    assert p.args == ("w", "m", "v", "gradient")
    assert [s.target for s in p.body] == ["m", "g2", "v", "epsilon", "sqrt_v", "sqrt_v", "update"]
    assert p.body[0].value == Call("interpolate", (Var("m"), Var("gradient"), Const(0.1)))
    assert p.body[3].value == Const(1e-8)
    assert p.body[6].value == Call("/", (Var("m"), Var("sqrt_v")))
    # the parenthesised tuple is the (update, *new_state) return, not one tuple value
    assert p.returns == (Var("update"), Var("m"), Var("v"))
    assert p.state_args == ("m", "v")


def test_annotations_and_docstring_are_accepted_and_ignored():
    p = parse(HERO_ANNOTATED)
    plain = parse(HERO_ANNOTATED.replace(": Params", "").replace(": Grads", "").replace(": Tensor", "")
                  .replace(": float", "").replace(" -> Updates", "")
                  .replace('  """An annotated program with a docstring."""\n', ""))
    assert p == plain
    assert p.args == ("w", "g", "m", "lr")
    assert [s.target for s in p.body] == ["g2", "m", "update", "update"]
    assert "Tensor" not in str(p) and "Params" not in str(p)


@pytest.mark.parametrize("text", VALID, ids=["hero", "annotated", "design", "lion"])
def test_print_parse_round_trip(text):
    p = parse(text)
    printed = str(p)
    assert parse(printed) == p
    assert str(parse(printed)) == printed  # printing is a fixed point
    assert hash(parse(printed)) == hash(p)
    assert parse(printed).digest == p.digest


def test_printing_keeps_only_needed_parentheses_and_is_canonical():
    p = parse("def train(g, m):\n  m = ((m) + (g * 2))\n  u = m - (g - 1.0)\n  u = -(u + g)\n  u = u * -1e-3\n"
              "  return u, m\n")
    assert str(p) == ("def train(g, m):\n"
                      "    m = m + g * 2.0\n"
                      "    u = m - (g - 1.0)\n"
                      "    u = -(u + g)\n"
                      "    u = u * -0.001\n"
                      "    return u, m\n")
    # integers become floats; a minus sign folds into the constant
    assert p.body[0].value.args[1].args[1] == Const(2.0)
    assert p.body[3].value.args[1] == Const(-0.001)


def test_left_associativity_and_precedence_survive_printing():
    p = parse("def train(g):\n  a = g - g - g\n  b = g - (g - g)\n  c = g / g / g\n  d = g / (g / g)\n"
              "  e = -g * g\n  f = -(g * g)\n  u = a + b + c + d + e + f\n  return u\n")
    a, b, c, d, e, f = (s.value for s in p.body[:6])
    assert a == Call("-", (Call("-", (Var("g"), Var("g"))), Var("g")))
    assert b == Call("-", (Var("g"), Call("-", (Var("g"), Var("g")))))
    assert c != d and a != b
    assert e == Call("*", (Call("neg", (Var("g"),)), Var("g")))
    assert f == Call("neg", (Call("*", (Var("g"), Var("g"))),))
    assert parse(str(p)) == p


def test_unary_plus_is_dropped_and_double_negation_kept():
    p = parse("def train(g):\n  u = +g\n  v = -(-g)\n  c = -(-2)\n  r = u + v + c\n  return r\n")
    assert p.body[0].value == Var("g")
    assert p.body[1].value == Call("neg", (Call("neg", (Var("g"),)),))
    assert p.body[2].value == Const(2.0)


def test_constants_round_trip_exactly():
    values = [0.1, 1e-8, 1e-300, 5e-324, 1.7976931348623157e308, 123456789.125, 1e16, 3.0, 0.3333333333333333]
    body = "".join(f"  c{i} = {v!r}\n  n{i} = -{v!r}\n" for i, v in enumerate(values))
    p = parse(f"def train(g):\n{body}  return g\n")
    consts = [s.value.value for s in p.body]
    assert consts == [x for v in values for x in (v, -v)]
    assert parse(str(p)) == p


def test_zeros_and_tiny_constants_that_are_not_zero_parse():
    for text, value in (("0.0", 0.0), ("0e5", 0.0), ("0.000", 0.0), ("1e-310", 1e-310), ("5e-324", 5e-324)):
        assert parse(f"def train(g):\n    return g * {text}\n").returns[0].args[1].value == value


def test_negative_zero_is_zero():
    assert parse("def train(g):\n  a = -0.0\n  return g\n") == parse("def train(g):\n  a = 0\n  return g\n")


# -- roles --------------------------------------------------------------------------------


@pytest.mark.parametrize("alias,role", [
    ("w", "weight"), ("weight", "weight"), ("params", "weight"),
    ("g", "grad"), ("grad", "grad"), ("gradient", "grad"),
    ("lr", "lr"), ("t", "step"), ("step", "step"),
    ("m", "state"), ("v", "state"), ("momentum", "state"), ("lr2", "state"), ("W", "state"),
])
def test_roles(alias, role):
    grad = "g" if role != "grad" else alias
    args = [grad] if alias == grad else [grad, alias]
    n_state = sum(1 for a in args if a == alias and role == "state")
    text = f"def train({', '.join(args)}):\n  return {', '.join([grad] * (1 + n_state))}\n"
    p = parse(text)
    assert p.role(alias) == role
    if role != "state":
        assert p.arg_for(role) == alias
        assert alias not in p.state_args
    else:
        assert p.state_args == (alias,)
    assert p.has_lr == (role == "lr")


def test_state_args_keep_argument_order_and_returns_follow_them():
    p = parse("def train(v, lr, g, m, t, w, acc):\n  return g, v, m, acc\n")
    assert p.state_args == ("v", "m", "acc")
    assert p.arg_for("weight") == "w" and p.arg_for("step") == "t" and p.arg_for("lr") == "lr"
    assert p.has_lr
    assert not parse("def train(g):\n  return g\n").has_lr
    assert parse("def train(g):\n  return g\n").arg_for("weight") is None


def test_two_arguments_with_one_role_rejected():
    with pytest.raises(ProgramError, match="both play the role 'grad'"):
        parse("def train(g, gradient):\n  return g\n")
    with pytest.raises(ProgramError, match="appears twice|duplicate argument"):
        parse("def train(g, m, m):\n  return g, m, m\n")


# -- errors -------------------------------------------------------------------------------


def _body(*lines: str, args: str = "g") -> str:
    return f"def train({args}):\n" + "".join(f"  {line}\n" for line in lines)


# (text, line, column, words the message must contain); columns are 1-based.
BAD = {
    "syntax": (_body("x = (g +", "return x"), 2, None, ["syntax error"]),
    "syntax_indent": ("def train(g):\nreturn g\n", 2, None, ["syntax error"]),
    "unknown_function": (_body("x = sqr(g)", "return x"), 2, 7,
                         ["unknown function", "'sqr'", "did you mean", "'sqrt'"]),
    "unknown_function_typo": (_body("x = interpolat(g, g, 0.1)", "return x"), 2, 7,
                              ["unknown function", "did you mean 'interpolate'"]),
    "unknown_builtin": (_body("x = open(g)", "return x"), 2, 7, ["unknown function", "'open'"]),
    "arity_too_many": (_body("x = sqrt(g, g)", "return x"), 2, 7, ["sqrt()", "takes 1 argument", "got 2"]),
    "arity_too_few": (_body("x = interpolate(g, g)", "return x"), 2, 7,
                      ["interpolate()", "takes 3 arguments", "got 2"]),
    "arity_constant": (_body("x = get_pi(g)", "return x"), 2, 7, ["get_pi()", "takes 0 arguments"]),
    "attribute": (_body("x = g.T", "return x"), 2, 7, ["attribute access", "not allowed"]),
    "attribute_call": (_body("x = jnp.sqrt(g)", "return x"), 2, 7, ["only library functions", "by name"]),
    "import_top": ("import os\ndef train(g):\n  return g\n", 1, 1, ["imports", "not allowed"]),
    "import_from": ("def train(g):\n  from os import system\n  return g\n", 2, 3, ["imports", "not allowed"]),
    "import_inside": (_body("import os", "return g"), 2, 3, ["imports", "not allowed"]),
    "subscript": (_body("x = g[0]", "return x"), 2, 7, ["subscripts", "not allowed"]),
    "subscript_target": (_body("g[0] = 1", "return g"), 2, 3, ["one name"]),
    "lambda": (_body("x = lambda: g", "return x"), 2, 7, ["lambdas", "not allowed"]),
    "list_comprehension": (_body("x = [a for a in g]", "return x"), 2, 7, ["comprehensions", "not allowed"]),
    "generator": (_body("x = sum(a for a in g)", "return x"), 2, 10, ["comprehensions", "not allowed"]),
    "dict_comprehension": (_body("x = {a: a for a in g}", "return x"), 2, 7, ["comprehensions", "not allowed"]),
    "dunder_variable": (_body("__x = g", "return __x"), 2, 3, ["'__x'", "double underscores"]),
    "dunder_argument": ("def train(g, __class__):\n  return g, g\n", 1, 1, ["'__class__'", "double underscores"]),
    "dunder_function_name": ("def __init__(g):\n  return g\n", 1, 1, ["'__init__'", "double underscores"]),
    "dunder_read": (_body("x = __builtins__", "return x"), 2, 7, ["undefined variable", "'__builtins__'"]),
    "undefined": (_body("x = y + g", "return x"), 2, 7, ["undefined variable", "'y'"]),
    "undefined_later": (_body("x = g * y", "y = g", "return x"), 2, 11, ["undefined variable", "'y'"]),
    "undefined_in_return": (_body("x = g", "return z"), 3, 10, ["undefined variable", "'z'"]),
    "for_loop": (_body("for i in g:", "  x = g", "return x"), 2, 3, ["loops", "not allowed"]),
    "while_loop": (_body("while g:", "  x = g", "return x"), 2, 3, ["loops", "not allowed"]),
    "if": (_body("if g:", "  x = g", "return g"), 2, 3, ["if statements", "not allowed"]),
    "return_too_short": (_body("return g", args="g, m, v"), 2, 10, ["return gives 1 value", "must return 3", "m, v"]),
    "return_too_long": (_body("return g, g", args="g"), 2, 10, ["return gives 2 value", "must return 1"]),
    "return_nothing": (_body("return", args="g"), 2, 3, ["return needs values"]),
    "no_return": (_body("x = g"), 2, 3, ["must end with", "return"]),
    "statement_after_return": (_body("return g", "x = g"), 3, 3, ["must end with", "return"]),
    "string": (_body("x = g * 'a'", "return x"), 2, 11, ["constant 'a'", "not a number"]),
    "bytes": (_body("x = g * b'a'", "return x"), 2, 11, ["not a number"]),
    "bool": (_body("x = g * True", "return x"), 2, 11, ["constant True", "not a number"]),
    "none": (_body("x = g * None", "return x"), 2, 11, ["constant None", "not a number"]),
    "complex": (_body("x = g * 1j", "return x"), 2, 11, ["constant 1j", "not a number"]),
    "infinite": (_body("x = g * 1e400", "return x"), 2, 11, ["constant inf", "not a finite number"]),
    "underflow": (_body("x = g * 1e-400", "return x"), 2, 11, ["constant 1e-400", "too small", "would be 0"]),
    "underflow_after_unicode": (_body("x = g * 1_0E-999  # é", "return x"), 2, 11, ["constant 1_0E-999", "too small"]),
    "huge_integer": (_body("x = g * " + "9" * 400, "return x"), 2, 11, ["integer constant", "too large for a float"]),
    "huge_hex_integer": (_body("x = g * 0x" + "f" * 4000, "return x"), 2, 11, ["integer constant", "too large"]),
    "pow": (_body("x = g ** 2", "return x"), 2, 7, ["Pow", "not allowed", "power(x, y)"]),
    "matmul": (_body("x = g @ g", "return x"), 2, 7, ["MatMult", "not allowed"]),
    "bitwise_not": (_body("x = ~g", "return x"), 2, 7, ["Invert", "not allowed"]),
    "augmented": (_body("x = g", "x += g", "return x"), 3, 3, ["augmented assignment", "not allowed", "m = m + g"]),
    "keyword_argument": (_body("x = interpolate(g, g, w=0.1)", "return x"), 2, 7,
                         ["interpolate()", "keyword arguments"]),
    "two_functions": ("def train(g):\n  return g\n\ndef other(g):\n  return g\n", 4, 1, ["exactly one function"]),
    "nested_function": (_body("def f(x):", "  return x", "return g"), 2, 3, ["nested functions", "not allowed"]),
    "class": ("class A:\n  pass\n", 1, 1, ["classes", "not allowed"]),
    "top_level_statement": ("x = 1\ndef train(g):\n  return g\n", 1, 1, ["not allowed"]),
    "shape_dot_norm": (_body("x = dot(norm(g), g)", "return x"), 2, 7, ["dot()", "per-tensor"]),
    "shape_clip_tensor_norm": (_body("x = clip_by_global_norm(g, g)", "return x"), 2, 7,
                               ["clip_by_global_norm", "scalar clip norm"]),
    "shape_dot_mixed": (_body("x = dot(g, 1.0)", "return x"), 2, 7, ["dot()", "two tensors or two scalars"]),
    "shape_global_norm_of_norm": (_body("x = global_norm(norm(g))", "return x"), 2, 7, ["global_norm()", "per-tensor"]),
    "assign_to_function_name": (_body("sqrt = g", "return sqrt"), 2, 3, ["'sqrt'", "library function"]),
    "default_argument": ("def train(g, m=0.0):\n  return g, m\n", 1, 1, ["plain names", "defaults"]),
    "star_args": ("def train(g, *m):\n  return g\n", 1, 1, ["plain names"]),
    "decorator": ("@jax.jit\ndef train(g):\n  return g\n", 1, 2, ["decorators"]),
    "multiple_targets": (_body("x = y = g", "return x"), 2, 3, ["one name"]),
    "tuple_target": (_body("x, y = g, g", "return x"), 2, 3, ["one name"]),
    "no_arguments": ("def train():\n  return 1.0\n", 1, 1, ["no arguments"]),
    "walrus": (_body("x = (y := g)", "return x"), 2, 8, ["assignment expressions", "not allowed"]),
    "comparison": (_body("x = g < g", "return x"), 2, 7, ["comparisons", "not allowed"]),
    "conditional": (_body("x = g if g else g", "return x"), 2, 7, ["conditional expressions", "not allowed"]),
    "fstring": (_body("x = f'{g}'", "return x"), 2, 7, ["f-strings", "not allowed"]),
    "list": (_body("x = [g]", "return x"), 2, 7, ["lists", "not allowed"]),
    "starred_return": (_body("return *g,"), 2, 10, ["starred", "not allowed"]),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_program_raises_located_program_error(name):
    text, line, column, words = BAD[name]
    with pytest.raises(ProgramError) as info:
        parse(text)
    e = info.value
    assert isinstance(e, ValueError)
    assert e.line == line
    if column is not None:
        assert e.column == column
    message = str(e)
    assert message.startswith(f"line {line}"), message
    if column is not None:
        assert f"line {line}, column {column}:" in message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("text,words", [
    ("", ["empty"]),
    ("   \n\n\t\n", ["empty"]),
    ("# only a comment\n", ["no function definition"]),
    ('"""only a docstring"""\n', ["no function definition"]),
    ("def train(g):\n  return g\n" + "#" * (MAX_CHARS + 1), ["characters", "limit"]),
    ("def train(g):\n  x = g\0\n  return x\n", ["null bytes"]),
    ("def train(g):\n  x = g\ud800\n  return x\n", ["cannot parse"]),
])
def test_bad_text_without_position(text, words):
    with pytest.raises(ProgramError) as info:
        parse(text)
    for word in words:
        assert word in str(info.value)


def test_not_a_string():
    with pytest.raises(ProgramError, match="must be a str"):
        parse(b"def train(g):\n  return g\n")  # type: ignore[arg-type]


@pytest.mark.parametrize("expr", [
    "-" * (MAX_DEPTH + 5) + "g",
    "sqrt(" * (MAX_DEPTH + 5) + "g" + ")" * (MAX_DEPTH + 5),
    " + ".join(["g"] * (MAX_DEPTH + 5)),
    "-" * 90_000 + "g",
    "(" * 1000 + "g" + ")" * 1000,
])
def test_deep_nesting_is_a_program_error(expr):
    with pytest.raises(ProgramError) as info:
        parse(f"def train(g):\n  x = {expr}\n  return x\n")
    assert "nest" in str(info.value)


def test_nesting_within_the_limit_parses():
    p = parse(f"def train(g):\n  x = {'sqrt(' * 20}g{')' * 20}\n  y = {' + '.join(['g'] * 30)}\n  return x + y\n")
    assert parse(str(p)) == p


def test_source_name_in_errors():
    with pytest.raises(ProgramError) as info:
        parse(_body("x = sqr(g)", "return x"), source="rules/adam.py")
    assert str(info.value).startswith("rules/adam.py, line 2, column 7: unknown function")
    assert info.value.source == "rules/adam.py" and info.value.line == 2


def test_program_error_is_the_public_error_type():
    assert symopt.ProgramError is ProgramError
    assert issubclass(ProgramError, ValueError)


def test_check_rejects_programs_built_in_code():
    good = Program(("g", "m"), (Assign("m", Call("interpolate", (Var("m"), Var("g"), Const(0.1)))),),
                   (Var("m"), Var("m")))
    check(good)
    assert parse(str(good)) == good
    for bad, words in [
        (Program(("g",), (), (Call("nope", (Var("g"),)),)), "unknown function"),
        (Program(("g",), (), (Call("sqrt", ()),)), "takes 1 argument"),
        (Program(("g",), (), (Const(float("nan")),)), "not a finite number"),
        (Program(("g",), (), (Var("g"),), name="not valid"), "not a valid name"),
        (Program(("g",), (Assign("class", Var("g")),), (Var("g"),)), "not a valid name"),
        (Program((), (), (Const(1.0),)), "no arguments"),
    ]:
        with pytest.raises(ProgramError, match=words) as info:
            check(bad)
        assert info.value.line is None  # built in code: no position


# -- identity -----------------------------------------------------------------------------


def test_equality_ignores_positions_and_formatting():
    a = parse("def train(g, m):\n  m = interpolate(m, g, 0.1)\n  return m, m\n")
    b = parse("def train(g, m):\n\n    # a comment\n    m = interpolate( m,g , 1e-1 )\n\n    return (m, m)\n")
    assert a == b and hash(a) == hash(b) and a.digest == b.digest
    assert a.body[0].pos != b.body[0].pos
    c = parse("def train(g, m):\n  m = interpolate(m, g, 0.2)\n  return m, m\n")
    d = parse("def other(g, m):\n  m = interpolate(m, g, 0.1)\n  return m, m\n")
    assert len({a, b, c, d}) == 3
    assert a != c and a.digest != c.digest
    assert a != d and hash(a) != hash(d)


@pytest.mark.slow
def test_digest_and_hash_are_stable_across_processes():
    programs = [HERO, LION, DESIGN_EXAMPLE]
    script = ("import sys\nfrom symopt import parse\n"
              "for text in sys.stdin.read().split('\\0'):\n"
              "    p = parse(text)\n"
              "    print(p.digest, hash(p), hash('salt'))\n")
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        result = subprocess.run([sys.executable, "-c", script], input="\0".join(programs), text=True,
                                capture_output=True, env=env, cwd=REPO, timeout=120, check=True)
        outputs.append([line.split() for line in result.stdout.splitlines()])
    here = [[parse(t).digest, str(hash(parse(t)))] for t in programs]
    assert [row[:2] for row in outputs[0]] == here
    assert [row[:2] for row in outputs[1]] == here
    # the processes really did hash differently: str hashes changed, program hashes did not
    assert outputs[0][0][2] != outputs[1][0][2]
    assert len(set(here[i][0] for i in range(3))) == 3
    assert all(len(d) == 64 and int(d, 16) >= 0 for d, _ in here)


def test_len_and_constants():
    p = parse(HERO)
    assert len(p) == 7
    assert [c.value for c in p.constants()] == [0.1, 0.001, 1e-8]


# -- safety -------------------------------------------------------------------------------


def test_parse_never_evaluates_or_unpickles(monkeypatch):
    compile_flags = []
    real_compile = builtins.compile

    def forbidden(*args, **kwargs):
        raise AssertionError("parse must not call this")

    def watched_compile(source, filename, mode, flags=0, *args, **kwargs):
        compile_flags.append(flags)
        if not flags & ast.PyCF_ONLY_AST:
            raise AssertionError("parse compiled program text to a code object")
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "compile", watched_compile)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    for text in VALID:
        p = parse(text)
        assert parse(str(p)) == p
    for name in ("unknown_function", "shape_dot_norm", "import_top", "lambda"):
        with pytest.raises(ProgramError):
            parse(BAD[name][0])
    # the patch is live (ast.parse goes through builtins.compile, and only for an AST)
    assert compile_flags and all(f & ast.PyCF_ONLY_AST for f in compile_flags)


@pytest.mark.parametrize("line", [
    "x = __import__('os').system('x')",
    "x = __import__(1)",
    "x = eval(g)",
    "x = exec(g)",
    "x = getattr(g, 1)",
    "x = g.__class__",
    "x = (lambda: 0)()",
    "x = globals()",
])
def test_code_injection_is_rejected_without_running(monkeypatch, line):
    ran = []
    monkeypatch.setattr(os, "system", lambda *a: ran.append(a) or 0)
    with pytest.raises(ProgramError) as info:
        parse(_body(line, "return x"))
    assert info.value.line == 2
    assert not ran
