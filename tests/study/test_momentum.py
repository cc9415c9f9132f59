"""The momentum detector of the study: judged by behaviour on two steps, not by text."""

import pytest

from symopt.programs import baselines, parse
from symopt.study.momentum import ema_slots, has_momentum, leaky_slots, momentum_found, sign_of_momentum


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


H = "def train(w, g, m, v, lr, t):\n"


@pytest.mark.parametrize("body, ema, leaky, found", [
    # plain EMA, dampened (optax.trace is undampened: the baselines above)
    ("m = interpolate(m, g, 0.1)\n    update = m * lr", ["m"], ["m"], True),
    # a clipped gradient into a leaky slot, read with the gradient (quasi-hyperbolic): found by study part d
    ("x1 = min(1.094, g)\n    update = 0.2 * x1 + 1.59 * v\n    v = 0.00022 * lr + 0.97 * v + 0.029 * x1",
     [], ["v"], True),
    # an EMA of the gradient times a scale held in another slot
    ("m = 28.6 * lr - 0.35 * m - 0.13\n    v = interpolate(v, g * m, 0.13)\n    update = v", [], ["v"], True),
    # leaky, but of g * g: RMSProp's second moment carries no direction
    ("v = interpolate(v, square(g), 0.1)\n    update = g / (sqrt(v) + 1e-8) * lr", [], ["v"], False),
    # a running sum does not forget (a = 1); a slot that oscillates (a < 0) does not trace g
    ("m = m + g\n    update = m * lr", [], [], False),
    ("m = 0.6 * tanh(g) - 0.6 * m\n    update = sign(g + m) * lr", [], [], False),
    # the input reads the slot itself: not of the form a * s + f(g)
    ("v = 0.6 * g + 0.6 * v + 0.4 * tanh(v)\n    update = v * lr", [], [], False),
])
def test_slots_that_trace_the_gradient(body, ema, leaky, found):
    program = parse(H + "    " + body + "\n    return update, m, v\n")
    assert ema_slots(program) == ema
    assert leaky_slots(program) == leaky
    assert momentum_found(program) is found


@pytest.mark.parametrize("name, expected", [
    ("lion", True),  # sign of the interpolation of g and the momentum
    ("addsign", True), ("powersign", True),  # g gated by sign(g) sign(m): Lion's predecessors (Bello et al.)
    ("adamw", False), ("momentum", False), ("sgd", False),  # momentum, no sign
])
def test_lion_family_baselines(name, expected):
    assert sign_of_momentum(baselines.get(name)) is expected


@pytest.mark.parametrize("body, expected", [
    # signum: the sign of the momentum itself, through a name computed from it
    ("m = interpolate(m, g, 0.1)\n    c = m * 2.0\n    update = sign(c) * lr", True),
    # the sign of the gradient before it enters the momentum: signed momentum, not the sign of momentum
    ("m = interpolate(m, sign(g), 0.1)\n    update = m * lr", False),
    # the sign of momentum, but only in a slot the update never reads
    ("m = interpolate(m, g, 0.1)\n    v = sign(m)\n    update = m * lr", False),
    # the sign of a slot that does not trace g (a running sum)
    ("m = m + g\n    update = sign(m) * lr", False),
    # a cube root writes sign(x) |x|^(1/3) in SymPy: the text has no sign() call
    ("m = interpolate(m, g, 0.1)\n    update = cbrt(m) * lr", False),
    # the sign of a second moment (always +1) beside a momentum: found in a hero run, not the Lion family
    ("v = interpolate(v, square(g), 0.05)\n    m = interpolate(m, g, 0.1)\n    update = (m + 0.01 * sign(v)) * lr",
     False),
    # the sign of a second moment of expm1(g), which is not symmetric in g but never negative (the same hero run)
    ("v = interpolate(v, square(expm1(g)), 0.05)\n    m = interpolate(m, g, 0.1)\n    update = (m + 0.01 * sign(v)) * lr",
     False),
    # a slot holding a constant that is not finite cannot be written in SymPy (it raised): it traces nothing
    ("m = 0.0 - exp(1000.0)\n    update = sign(m + g) * lr", False),
])
def test_sign_of_momentum(body, expected):
    assert sign_of_momentum(parse(H + "    " + body + "\n    return update, m, v\n")) is expected
