"""Fuzzing the parser: any text gives a Program that round-trips or a ProgramError.

Three sources of input: arbitrary text, mutations of valid programs, and valid
programs generated from the library (which must print and parse back equal).
The long run through lowering and simplify too is ``symopt bench fuzz``
(:mod:`symopt.cli.bench_fuzz`), whose tokens and text edits these tests share.
"""

from __future__ import annotations

import keyword
import math

import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from symopt import Program, ProgramError, parse
from symopt.cli.bench_fuzz import INSERTS, TOKENS, edit
from symopt.programs import FUNCTIONS, Kind, check
from symopt.programs.functions import ShapeError
from symopt.programs.parser import MAX_DEPTH
from symopt.programs.program import ROLE_NAMES, Assign, Call, Const, Var
from tests.programs.test_parser import LION

FUZZ = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])


def _event(what: str) -> None:
    if currently_in_test_context():  # --hypothesis-show-statistics: how often each outcome occurs
        event(what)


def parses_or_program_error(text: str) -> Program | None:
    """The property every text must have. Any other exception fails the test."""
    try:
        program = parse(text)
    except ProgramError as e:
        _event("ProgramError")
        assert str(e), "a ProgramError must say what is wrong"
        assert e.line is None or (isinstance(e.line, int) and e.line >= 1)
        assert e.column is None or (isinstance(e.column, int) and e.column >= 1)
        return None
    _event("parsed")
    printed = str(program)
    again = parse(printed)
    assert again == program
    assert str(again) == printed
    assert hash(again) == hash(program)
    return program


# -- (a) arbitrary text ---------------------------------------------------------------------

python_ish = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)
program_ish = st.builds(
    lambda args, lines, ret: f"def train({args}):\n" + "".join(f"  {line}\n" for line in lines) + f"  return {ret}\n",
    st.lists(st.sampled_from(["g", "w", "m", "lr", "t", "v", "x"]), max_size=4).map(", ".join),
    st.lists(st.lists(st.sampled_from(TOKENS[16:]), max_size=8).map(" ".join).map(lambda s: "x = " + s),
             max_size=4),
    st.lists(st.sampled_from(["g", "m", "x", "v", "(g)", "g, m", "1.0"]), min_size=1, max_size=3).map(", ".join),
)


@pytest.mark.slow
@FUZZ
@given(st.text(max_size=200))
def test_arbitrary_text(text):
    parses_or_program_error(text)


@FUZZ
@given(python_ish)
def test_python_ish_token_soup(text):
    parses_or_program_error(text)


@FUZZ
@given(program_ish)
def test_program_shaped_token_soup(text):
    parses_or_program_error(text)


@settings(deadline=None, max_examples=30)
@given(st.sampled_from(["(", "-", "sqrt(", "[", "not ", "+", "lambda: ", "{'a': "]),
       st.integers(min_value=10, max_value=3000))
def test_deep_nesting_never_crashes(opener, depth):
    closer = {"(": ")", "sqrt(": ")", "[": "]", "{'a': ": "}"}.get(opener, "")
    text = f"def train(g):\n  x = {opener * depth}g{closer * depth}\n  return x\n"
    program = parses_or_program_error(text)
    if opener in ("-", "+", "sqrt(") and depth > MAX_DEPTH:
        assert program is None


# -- (b) mutations of valid programs ----------------------------------------------------------

SEEDS = [
    """\
def adam(g, m, v, t, lr):
    b1 = 0.9
    b2 = 0.999
    m = interpolate(g, m, b1)
    v = interpolate(square(g), v, b2)
    m_hat = m / (1.0 - power(b1, t))
    v_hat = v / (1.0 - power(b2, t))
    update = lr * m_hat / (sqrt(v_hat) + 1e-8)
    return update, m, v
""",
    LION,
    """\
def train(w: Params, g: Grads, m: Tensor):
  x: Tensor = clip_by_global_norm(g, 1.0)
  m = interpolate(m, x, 0.1)
  n = norm(m) + get_eps()
  update = m / n * cosine_sim(m, g) - -2.5 * dot(g, g) / global_norm(w)
  return (update, m)
""",
    """\
def sgd(g):
    return -(g * -0.5)
""",
]

mutation = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 5)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.sampled_from(INSERTS)),
    st.tuples(st.just("replace"), st.integers(0, 10**6), st.characters(codec="utf-8")),
    st.tuples(st.just("swap_lines"), st.integers(0, 10**6), st.integers(0, 10**6)),
    st.tuples(st.just("duplicate_token"), st.integers(0, 10**6), st.just(None)),
    st.tuples(st.just("duplicate_line"), st.integers(0, 10**6), st.just(None)),
)


@FUZZ
@given(st.sampled_from(SEEDS), st.lists(mutation, min_size=1, max_size=4))
def test_mutated_valid_programs(seed, ops):
    text = seed
    for op in ops:
        text = edit(text, op)
    parses_or_program_error(text)


def test_seed_programs_are_valid():
    for seed in SEEDS:
        assert parses_or_program_error(seed) is not None


@pytest.mark.slow
@FUZZ
@given(st.data())
def test_mutated_generated_programs(data):
    program = data.draw(programs())
    text = str(program)
    for op in data.draw(st.lists(mutation, min_size=1, max_size=3)):
        text = edit(text, op)
    parses_or_program_error(text)


# -- (c) generated valid programs ------------------------------------------------------------

NAMES = ["x", "y", "u", "tmp", "m_hat", "a1", "lambda_", "b1", "eps", "décay"]
STATE_NAMES = ["m", "v", "mom", "acc"]
CALLABLE = sorted(n for n in FUNCTIONS if n != "neg")
constants = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 1.0, -1.0, 0.1, -0.9, 1e-8, 1e16, -1e16, 5e-324, 1.7976931348623157e308, 2.5, 1e-3]),
).map(Const)  # a negative constant is Const(-c), as the parser builds it


@st.composite
def expressions(draw, env: dict[str, Kind], depth: int = 0):
    """(expression, kind) using the names in env; always well-shaped."""
    if depth >= 4 or draw(st.integers(0, 9)) < 3:
        if env and draw(st.booleans()):
            name = draw(st.sampled_from(sorted(env)))
            return Var(name), env[name]
        return draw(constants), Kind.SCALAR
    if draw(st.integers(0, 9)) == 0:
        inner, kind = draw(expressions(env, depth + 1))
        if isinstance(inner, Const) or (isinstance(inner, Call) and inner.fn == "neg"):
            return inner, kind  # -Const is a Const; keep the tree as the parser would build it
        return Call("neg", (inner,)), kind
    # operators half the time: their printing (precedence, associativity, signs) is where round trips break
    fn = draw(st.sampled_from(["+", "-", "*", "/"]) if draw(st.booleans()) else st.sampled_from(CALLABLE))
    args = [draw(expressions(env, depth + 1)) for _ in range(FUNCTIONS[fn].arity)]
    try:
        kind = FUNCTIONS[fn].shape(tuple(k for _, k in args))
    except ShapeError:
        return args[0] if args else (Const(1.0), Kind.SCALAR)
    return Call(fn, tuple(e for e, _ in args)), kind


@st.composite
def programs(draw):
    roles = {}
    for role, aliases in ROLE_NAMES.items():
        if role == "grad" or draw(st.booleans()):
            roles[role] = draw(st.sampled_from(aliases))
    states = draw(st.lists(st.sampled_from(STATE_NAMES), unique=True, max_size=3))
    args = draw(st.permutations(list(roles.values()) + states))
    kinds = {a: (Kind.SCALAR if a in (roles.get("lr"), roles.get("step")) else Kind.TENSOR) for a in args}
    body = []
    for _ in range(draw(st.integers(0, 6))):
        target = draw(st.sampled_from(NAMES + states))
        value, kind = draw(expressions(kinds))
        body.append(Assign(target, value))
        kinds[target] = kind
    returns = tuple(draw(expressions(kinds))[0] for _ in range(1 + len(states)))
    name = draw(st.sampled_from(["train", "adam_like", "f", "opt2"]))
    program = Program(tuple(args), tuple(body), returns, name)
    check(program)
    return program


@pytest.mark.slow
@settings(deadline=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_generated_programs_print_and_parse_back_equal(program):
    text = str(program)
    again = parse(text)
    assert again == program
    assert str(again) == text
    assert again.digest == program.digest and hash(again) == hash(program)
    assert again.state_args == program.state_args


def test_generator_names_are_legal():
    for name in NAMES + STATE_NAMES:
        assert name.isidentifier() and not keyword.iskeyword(name) and name not in FUNCTIONS


@pytest.mark.parametrize("value", [0.1, -0.1, 1e-8, -1e300, 5e-324, -5e-324, 1e16, 123456789012345.0, math.pi])
def test_constants_print_and_parse_back_exactly(value):
    p = Program(("g",), (Assign("c", Const(value)), Assign("d", Call("*", (Var("g"), Const(value))))),
                (Call("-", (Var("d"), Const(value))),))
    assert parse(str(p)) == p
    assert parse(str(p)).body[0].value.value == value


def test_neg_of_a_constant_is_the_one_tree_that_does_not_round_trip():
    """Documented: build -c as Const(-c); neg(Const(c)) prints as -(c) and parses to Const(-c)."""
    p = Program(("g",), (), (Call("*", (Var("g"), Call("neg", (Const(2.0),)))),))
    q = parse(str(p))
    assert q.returns == (Call("*", (Var("g"), Const(-2.0))),)
    assert q != p
