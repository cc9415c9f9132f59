"""The momentum detector of the study: judged by behaviour on two steps, not by text."""

import pytest

from symopt.programs import baselines, parse
from symopt.search.momentum import ema_slots, has_momentum, momentum_found


@pytest.mark.parametrize("name, expected", [
    ("sgd", False), ("rmsprop", False), ("adagrad", False),  # no memory, or memory of g * g only
    ("momentum", True), ("nesterov", True), ("adam", True), ("adamw", True), ("lion", True),
])
def test_baselines(name, expected):
    assert has_momentum(baselines.get(name)) is expected


def test_memory_that_is_not_momentum():
    # the state remembers the gradient but the update moves against it: not momentum
    assert not has_momentum(parse("def f(g, m):\n    update = g - 0.5 * m\n    m = g\n    return update, m\n"))
    assert has_momentum(parse("def f(g, m):\n    update = g + 0.5 * m\n    m = g\n    return update, m\n"))


def test_ema_of_the_gradient():
    assert ema_slots(baselines.get("momentum")) == ["m"] and momentum_found(baselines.get("adamw"))
    assert ema_slots(baselines.get("rmsprop")) == []  # an EMA of g * g is not one of g
    accumulator = parse("def f(g, m):\n    m = m - g\n    update = g * max(0.5, m)\n    return update, m\n")
    assert has_momentum(accumulator) and not momentum_found(accumulator)  # a running sum, not an EMA


def test_a_max_sympy_cannot_compare_is_no_ema_and_no_error():
    # SymPy's simplify of this program's new m meets Max(nan, ...) and raised "not comparable"
    program = parse("""def train(w, g, m, v, lr, t):
    v = interpolate(v, v, 0.01275)
    m = interpolate(m, v, 0.564)
    v = interpolate(v, m, 0.8991)
    v = sign(v)
    v = interpolate(v, v, 0.0142)
    v = max(v, m)
    m = interpolate(m, g, 0.1399)
    v = interpolate(v, v, 0.02994)
    update = min(m, lr)
    return update, m, v
""")
    assert ema_slots(program) == []
