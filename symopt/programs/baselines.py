"""Hand-coded baseline optimizers that match optax step for step.

:func:`get` returns a baseline by name and :func:`names` lists them (sorted).
Most baselines are update-rule :class:`~symopt.programs.program.Program`\\ s,
written as text constants in the language of docs/design.md §2 and parsed once;
export them with ``symopt.export.to_optax(get(name), learning_rate, **overrides)``.
Their hyperparameters are the statements that assign a constant and carry
optax's argument names and defaults (``b1 = 0.9``), so
``to_optax(get("adam"), 1e-3, b1=0.95)`` is ``optax.adam(1e-3, b1=0.95)``.

Programs (16)::

    sgd        optax.sgd(lr)
    momentum   optax.sgd(lr, momentum=0.9)
    nesterov   optax.sgd(lr, momentum=0.9, nesterov=True)
    adagrad    optax.adagrad(lr)
    rmsprop    optax.rmsprop(lr)
    adadelta   optax.adadelta(lr)                       (its usual lr is 1.0)
    adam       optax.adam(lr)
    adamw      optax.adamw(lr)                          (weight_decay 1e-4, optax's)
    nadam      optax.nadam(lr)
    radam      optax.radam(lr)
    lion       optax.lion(lr)                           (b1 0.9, b2 0.99, weight_decay 1e-3)
    powersign  Bello et al. 2017; no optax twin
    addsign    Bello et al. 2017; no optax twin
    lookahead  optax.lookahead(optax.adam(lr), sync_period=6, slow_step_size=0.5)
    muon       optax.contrib.muon(lr)                   (orthogonalize on matrices, Adam elsewhere)
    adafactor  optax.adafactor(lr)                      (row_mean, col_mean: factored moments)

Muon and Adafactor read each leaf's matrix view (``symopt.programs.spaces.matrix_view``):
``is_matrix(g)`` is the 0/1 switch between their matrix and vector branches. Shape decides:
optax.contrib.muon's default orthogonalises 2-D leaves only (here every leaf of two or more axes,
seen as [all axes but the last, the last]), and optax.adafactor factors the two largest axes of a
leaf (here the matrix view's). On the 2-D and 1-D leaves of symopt's tasks the two agree.

:func:`kind` (``"program"`` or ``"optax"``) and :func:`is_program` tell programs from
optax-level baselines (:class:`OptaxBaseline`, built directly from optax; none is registered
now); both kinds go through ``symopt.export.to_optax``, which delegates to
:meth:`OptaxBaseline.to_optax`.

Lookahead is a program: a state slot ``k`` counts the steps since the last
synchronisation (exact small integers in float32) and ``1 - sign(sync_period - k)``
is the 0/1 switch for "synchronise now"; the slow weights are the slot ``slow``,
set to the weights at the first step. Unlike ``optax.lookahead``, which wants
``optax.LookaheadParams(fast, slow)`` as its params, the exported program takes
and updates the plain parameter tree: those are optax's *fast* weights, step for
step, and ``opt_state.slow`` holds optax's slow weights (the two coincide right
after every synchronisation; evaluate on either). Its fast optimizer is Adam with
optax's defaults; the cost is two extra parameter-sized slots (``slow``, ``k``).

How the programs reproduce optax (tests/programs/test_baselines.py compares the
parameters after each of 100 float32 steps):

* The language's ``x / y`` is hero's guarded ``x / (y + 1e-8)``; the programs
  write optax's plain division as ``divide(x, y)``, a library function outside
  hero's 45 (``x * reciprocal(y)`` would differ from ``x / y`` by one rounding,
  which is enough to fail 1e-5 on a parameter that passes near zero).
* ``sqrt`` takes ``|x|`` first; every argument here is already non-negative.
  ``reciprocal(sqrt(x))`` compiles to the same ``rsqrt`` that optax uses.
* Moments are written ``(1.0 - b) * g + b * m``, optax's order of operations
  (``interpolate(m, g, 1 - b)`` would round differently).
* There is no conditional: ``max``, ``min`` and ``sign`` make 0/1 switches
  (``max(2.0 - t, 0.0)`` is 1 at the first step only; radam's ``rho >= 5``;
  lookahead's period). A switch multiplies both branches, so the branch not
  taken must stay finite, which it does here.
* Where the textbook (seed) formula differs from optax, the program follows
  optax and its comment says so: adagrad's initial accumulator 0.1 and eps
  inside the square root; rmsprop's and adadelta's eps inside the root; Nesterov
  momentum in optax's ``g + mu * (g + mu * m)`` form; nadam's bias corrections;
  adamw's and lion's weight decay added to the direction and so multiplied by the
  learning rate (optax's convention, and the Lion paper's; Loshchilov & Hutter
  multiply it by the schedule multiplier only).

References: Kingma & Ba 2015 (Adam); Loshchilov & Hutter 2019 (AdamW); Dozat
2016 (Nadam); Liu et al. 2020 (RAdam); Duchi et al. 2011 (Adagrad); Zeiler 2012
(Adadelta); Tieleman & Hinton 2012 (RMSProp); Chen et al. 2023 (Lion); Bello et
al. 2017, "Neural Optimizer Search with Reinforcement Learning" (PowerSign,
AddSign); Zhang et al. 2019 (Lookahead); Shazeer & Stern 2018 (Adafactor).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from symopt.programs.execute import hyperparameters as _program_hyperparameters
from symopt.programs.hints import did_you_mean
from symopt.programs.optax_baselines import OptaxBaseline
from symopt.programs.parser import parse
from symopt.programs.program import Program

# --------------------------------------------------------------------------------------
# Program texts. Data, not code: each is only ever parsed. Comments in them are for the
# reader and do not survive printing (str(get(name)) is the canonical text).
# --------------------------------------------------------------------------------------

SGD = """
def sgd(g):
    return g
"""

MOMENTUM = """
def momentum(g, m):
    # optax.sgd(lr, momentum=0.9), i.e. optax.trace: m <- g + momentum * m (no dampening).
    momentum = 0.9
    m = g + momentum * m
    return m, m
"""

NESTEROV = """
def nesterov(g, m):
    # optax.sgd(lr, momentum=0.9, nesterov=True): the update is g + momentum * m_new
    # (Sutskever et al. 2013 as rewritten by Keras/PyTorch), not a gradient taken at a
    # look-ahead point.
    momentum = 0.9
    m = g + momentum * m
    update = g + momentum * m
    return update, m
"""

ADAGRAD = """
def adagrad(g, s, t):
    # optax.adagrad: the accumulator starts at initial_accumulator_value (0.1), not 0,
    # and eps is inside the square root. State slots start at zero, so the 0.1 is added
    # at the first step only (first is 1 at t = 1 and 0 after); s then holds optax's
    # sum_of_squares exactly.
    initial_accumulator_value = 0.1
    eps = 1e-07
    first = max(2.0 - t, 0.0)
    s = square(g) + (s + initial_accumulator_value * first)
    update = reciprocal(sqrt(s + eps)) * g
    return update, s
"""

RMSPROP = """
def rmsprop(g, v):
    # optax.rmsprop: eps inside the square root (eps_in_sqrt=True), no centering,
    # no momentum, initial_scale 0.
    decay = 0.9
    eps = 1e-08
    v = (1.0 - decay) * square(g) + decay * v
    update = reciprocal(sqrt(v + eps)) * g
    return update, v
"""

ADADELTA = """
def adadelta(w, g, e_g, e_x):
    # optax.adadelta: eps inside both square roots; optional weight decay added to the
    # gradient first (0 by default, which adds exactly nothing); the result is then
    # multiplied by the learning rate, usually 1.0.
    rho = 0.9
    eps = 1e-06
    weight_decay = 0.0
    g = g + weight_decay * w
    e_g = (1.0 - rho) * square(g) + rho * e_g
    update = sqrt(e_x + eps) * reciprocal(sqrt(e_g + eps)) * g
    e_x = (1.0 - rho) * square(update) + rho * e_x
    return update, e_g, e_x
"""

ADAM = """
def adam(g, mu, nu, t):
    # optax.adam. divide(x, y) is optax's plain x / y; the language's x / y is hero's
    # guarded x / (y + 1e-8).
    b1 = 0.9
    b2 = 0.999
    eps = 1e-08
    eps_root = 0.0
    mu = (1.0 - b1) * g + b1 * mu
    nu = (1.0 - b2) * square(g) + b2 * nu
    mu_hat = divide(mu, 1.0 - power(b1, t))
    nu_hat = divide(nu, 1.0 - power(b2, t))
    update = divide(mu_hat, sqrt(nu_hat + eps_root) + eps)
    return update, mu, nu
"""

ADAMW = """
def adamw(w, g, mu, nu, t):
    # optax.adamw: Adam's direction plus weight_decay * w, all multiplied by the
    # learning rate (decoupled weight decay scaled by lr, optax's convention).
    b1 = 0.9
    b2 = 0.999
    eps = 1e-08
    eps_root = 0.0
    weight_decay = 0.0001
    mu = (1.0 - b1) * g + b1 * mu
    nu = (1.0 - b2) * square(g) + b2 * nu
    mu_hat = divide(mu, 1.0 - power(b1, t))
    nu_hat = divide(nu, 1.0 - power(b2, t))
    update = divide(mu_hat, sqrt(nu_hat + eps_root) + eps) + weight_decay * w
    return update, mu, nu
"""

NADAM = """
def nadam(g, mu, nu, t):
    # optax.nadam (adam with nesterov=True): mu_hat = b1 * mu / (1 - b1^(t+1))
    # + (1 - b1) * g / (1 - b1^t), without Dozat's extra b2 factor and without his
    # momentum schedule.
    b1 = 0.9
    b2 = 0.999
    eps = 1e-08
    eps_root = 0.0
    mu = (1.0 - b1) * g + b1 * mu
    nu = (1.0 - b2) * square(g) + b2 * nu
    mu_hat = b1 * divide(mu, 1.0 - power(b1, t + 1.0)) + (1.0 - b1) * divide(g, 1.0 - power(b1, t))
    nu_hat = divide(nu, 1.0 - power(b2, t))
    update = divide(mu_hat, sqrt(nu_hat + eps_root) + eps)
    return update, mu, nu
"""

RADAM = """
def radam(g, mu, nu, t):
    # optax.radam: rectified Adam while rho >= threshold (5), else the bias-corrected
    # momentum alone. on is 1 when rho >= threshold, else 0 (sign gives -1, 0 or 1).
    b1 = 0.9
    b2 = 0.999
    eps = 1e-08
    eps_root = 0.0
    threshold = 5.0
    rho_inf = divide(2.0, 1.0 - b2) - 1.0
    b2t = power(b2, t)
    rho = rho_inf - divide(2.0 * t * b2t, 1.0 - b2t)
    mu = (1.0 - b1) * g + b1 * mu
    nu = (1.0 - b2) * square(g) + b2 * nu
    mu_hat = divide(mu, 1.0 - power(b1, t))
    nu_hat = divide(nu, 1.0 - b2t)
    r = sqrt(divide((rho - 4.0) * (rho - 2.0) * rho_inf, (rho_inf - 4.0) * (rho_inf - 2.0) * rho))
    rectified = divide(r * mu_hat, sqrt(nu_hat + eps_root) + eps)
    on = min(sign(rho - threshold) + 1.0, 1.0)
    update = on * rectified + (1.0 - on) * mu_hat
    return update, mu, nu
"""

LION = """
def lion(w, g, m):
    # optax.lion (Chen et al. 2023): sign of the b1 interpolation, momentum tracked
    # with b2; weight decay added to the direction, so multiplied by lr as in the paper.
    b1 = 0.9
    b2 = 0.99
    weight_decay = 0.001
    c = (1.0 - b1) * g + b1 * m
    update = sign(c) + weight_decay * w
    m = (1.0 - b2) * g + b2 * m
    return update, m
"""

POWERSIGN = """
def powersign(g, m):
    # Bello et al. 2017, PowerSign: update = alpha^(f(t) sign(g) sign(m)) * g with
    # alpha = e, no sign decay (f = 1), m an EMA of g with beta = 0.9, updated before use
    # (as tf.contrib.opt.PowerSignOptimizer, which writes it exp(log(alpha) * ...)).
    beta = 0.9
    alpha = 2.718281828459045
    m = (1.0 - beta) * g + beta * m
    update = power(alpha, sign(g) * sign(m)) * g
    return update, m
"""

ADDSIGN = """
def addsign(g, m):
    # Bello et al. 2017, AddSign: update = (alpha + f(t) sign(g) sign(m)) * g with
    # alpha = 1, no sign decay (f = 1), m an EMA of g with beta = 0.9, updated before
    # use (as tf.contrib.opt.AddSignOptimizer).
    beta = 0.9
    alpha = 1.0
    m = (1.0 - beta) * g + beta * m
    update = (alpha + sign(g) * sign(m)) * g
    return update, m
"""

LOOKAHEAD = """
def lookahead(w, g, mu, nu, slow, k, t, lr):
    # optax.lookahead(optax.adam(lr), sync_period=6, slow_step_size=0.5) on plain
    # parameters: w are the fast weights, the slot slow holds the slow weights (set to w
    # at the first step) and k counts the steps since the last synchronisation. At every
    # sync_period-th step the fast weights, after their Adam step, are pulled to
    # slow + slow_step_size * (fast - slow), which becomes the new slow and fast weights.
    b1 = 0.9
    b2 = 0.999
    eps = 1e-08
    eps_root = 0.0
    sync_period = 6.0
    slow_step_size = 0.5
    mu = (1.0 - b1) * g + b1 * mu
    nu = (1.0 - b2) * square(g) + b2 * nu
    mu_hat = divide(mu, 1.0 - power(b1, t))
    nu_hat = divide(nu, 1.0 - power(b2, t))
    fast = lr * divide(mu_hat, sqrt(nu_hat + eps_root) + eps)
    slow = slow + max(2.0 - t, 0.0) * w
    k = k + 1.0
    sync = 1.0 - sign(sync_period - k)
    diff = w - fast - slow
    update = fast + sync * (1.0 - slow_step_size) * diff
    slow = slow + slow_step_size * sync * diff
    k = k - sync * k
    return update, mu, nu, slow, k
"""

MUON = """
def muon(w, g, m, v, t, lr):
    # optax.contrib.muon with its defaults. On matrices (leaves of two or more axes): Nesterov
    # momentum (beta 0.95, bias-corrected), orthogonalised by Newton-Schulz (Keller Jordan's
    # five quintic steps) and scaled by sqrt(max(1, fan_out / fan_in)). On the other leaves,
    # optax's Adam branch at the same rate: adamw(nesterov=True), b1 0.9, b2 0.999. The two
    # share the slot m (each leaf is one or the other); v is the Adam branch's alone. The Adam branch's
    # bias-corrected momentum is g and m times scalars (one instruction in the interpreter); Muon's keeps
    # optax's order of rounding, which Newton-Schulz's steep slope near zero amplifies.
    beta = 0.95
    eps = 1e-08
    weight_decay = 0.0
    adam_b1 = 0.9
    adam_b2 = 0.999
    adam_eps_root = 0.0
    adam_weight_decay = 0.0
    matrix = is_matrix(w)
    m = matrix * ((1.0 - beta) * g + beta * m) + (1.0 - matrix) * ((1.0 - adam_b1) * g + adam_b1 * m)
    v = (1.0 - matrix) * ((1.0 - adam_b2) * square(g) + adam_b2 * v)
    m_hat = beta * divide(m, 1.0 - power(beta, t + 1.0)) + (1.0 - beta) * divide(g, 1.0 - power(beta, t))
    muon = orthogonalize(m_hat) * sqrt(max(1.0, divide(cols(w), rows(w)))) + weight_decay * w
    mu_hat = g * divide(1.0 - adam_b1, 1.0 - power(adam_b1, t)) + m * divide(adam_b1, 1.0 - power(adam_b1, t + 1.0))
    nu_hat = divide(v, 1.0 - power(adam_b2, t))
    adam = divide(mu_hat, sqrt(nu_hat + adam_eps_root) + eps) + adam_weight_decay * w
    update = (matrix * muon + (1.0 - matrix) * adam) * lr
    return update, m, v
"""

ADAFACTOR = """
def adafactor(w, g, v, v_row, v_col, t, lr):
    # optax.adafactor with its defaults (Shazeer & Stern 2018). A leaf whose matrix view has
    # at least min_dim_size_to_factor rows and columns keeps its second moment factored: the
    # mean of g^2 over each row (v_row) and over each column (v_col), and v_row v_col / mean(v_row)
    # as the estimate; the other leaves keep the full v. The decay is 1 - t^-0.8; the update
    # is clipped to RMS 1 per leaf, times lr, times the leaf's RMS (at least 1e-3), an RMS being
    # norm(x) / sqrt(rows(x) * cols(x)) (optax takes sqrt(mean(x^2)): the same up to rounding).
    min_dim_size_to_factor = 128.0
    decay_rate = 0.8
    eps = 1e-30
    clipping_threshold = 1.0
    min_scale = 0.001
    factored = is_matrix(g) * max(sign(min(rows(g), cols(g)) + 0.5 - min_dim_size_to_factor), 0.0)
    decay = 1.0 - power(t, -decay_rate)
    g2 = square(g) + eps
    v = decay * v + (1.0 - decay) * g2
    v_row = decay * v_row + (1.0 - decay) * row_mean(g2)
    v_col = decay * v_col + (1.0 - decay) * col_mean(g2)
    y_factored = g * power(divide(v_row, col_mean(v_row)), -0.5) * power(v_col, -0.5)
    y = factored * y_factored + (1.0 - factored) * (g * power(v, -0.5))
    y = divide(y, max(1.0, divide(divide(norm(y), sqrt(rows(y) * cols(y))), clipping_threshold)))
    update = y * lr * max(divide(norm(w), sqrt(rows(w) * cols(w))), min_scale)
    return update, v, v_row, v_col
"""

_PROGRAM_TEXTS: dict[str, str] = {
    "sgd": SGD, "momentum": MOMENTUM, "nesterov": NESTEROV, "adagrad": ADAGRAD,
    "rmsprop": RMSPROP, "adadelta": ADADELTA, "adam": ADAM, "adamw": ADAMW,
    "nadam": NADAM, "radam": RADAM, "lion": LION, "powersign": POWERSIGN,
    "addsign": ADDSIGN, "lookahead": LOOKAHEAD, "muon": MUON, "adafactor": ADAFACTOR,
}

_DOCS: dict[str, str] = {
    "sgd": "Plain gradient descent; optax.sgd(lr).",
    "momentum": "Heavy-ball momentum m <- g + 0.9 m; optax.sgd(lr, momentum=0.9).",
    "nesterov": "Nesterov momentum in optax's form g + 0.9 (g + 0.9 m); "
                "optax.sgd(lr, momentum=0.9, nesterov=True).",
    "adagrad": "Adagrad with optax's initial accumulator 0.1 and eps 1e-7 inside the root; optax.adagrad(lr).",
    "rmsprop": "RMSProp with eps inside the root; optax.rmsprop(lr).",
    "adadelta": "Adadelta (usual learning rate 1.0); optax.adadelta(lr).",
    "adam": "Adam; optax.adam(lr).",
    "adamw": "AdamW, weight decay 1e-4 multiplied by lr; optax.adamw(lr).",
    "nadam": "Nadam as optax writes it (adam with nesterov=True); optax.nadam(lr).",
    "radam": "Rectified Adam, rectification once rho >= 5; optax.radam(lr).",
    "lion": "Lion, b1 0.9, b2 0.99, weight decay 1e-3 multiplied by lr; optax.lion(lr).",
    "powersign": "PowerSign (Bello et al. 2017): e^(sign(g) sign(m)) g, m an EMA of g (beta 0.9); "
                 "no optax twin.",
    "addsign": "AddSign (Bello et al. 2017): (1 + sign(g) sign(m)) g, m an EMA of g (beta 0.9); "
               "no optax twin.",
    "lookahead": "Lookahead over Adam, sync_period 6, slow_step_size 0.5, as a program on plain "
                 "parameters (the fast weights; the slow weights are the state slot 'slow'); "
                 "optax.lookahead(optax.adam(lr), 6, 0.5) on LookaheadParams.",
    "muon": "Muon (Keller Jordan): orthogonalised Nesterov momentum (beta 0.95) on matrices, "
            "optax's Nadam-style Adam branch on the other leaves; optax.contrib.muon(lr).",
    "adafactor": "Adafactor: factored second moments (row and column means) on matrices of at least "
                 "128 x 128, update clipping and parameter-scale; optax.adafactor(lr).",
}

_OPTAX_TWINS: dict[str, str] = {
    "sgd": "optax.sgd(learning_rate)",
    "momentum": "optax.sgd(learning_rate, momentum=0.9)",
    "nesterov": "optax.sgd(learning_rate, momentum=0.9, nesterov=True)",
    "adagrad": "optax.adagrad(learning_rate)",
    "rmsprop": "optax.rmsprop(learning_rate)",
    "adadelta": "optax.adadelta(learning_rate)",
    "adam": "optax.adam(learning_rate)",
    "adamw": "optax.adamw(learning_rate)",
    "nadam": "optax.nadam(learning_rate)",
    "radam": "optax.radam(learning_rate)",
    "lion": "optax.lion(learning_rate)",
    "lookahead": "optax.lookahead(optax.adam(learning_rate), sync_period=6, slow_step_size=0.5)",
    "muon": "optax.contrib.muon(learning_rate)",
    "adafactor": "optax.adafactor(learning_rate)",
}


_OPTAX_BUILDERS: dict[str, Callable[[], OptaxBaseline]] = {}

_NAMES = tuple(sorted([*_PROGRAM_TEXTS, *_OPTAX_BUILDERS]))


# --------------------------------------------------------------------------------------
# Public interface
# --------------------------------------------------------------------------------------


def names() -> list[str]:
    """Every baseline name, sorted alphabetically."""
    return list(_NAMES)


def get(name: str) -> Program | OptaxBaseline:
    """The baseline called ``name`` (case-insensitive): a Program or an OptaxBaseline.

    The result is parsed or built once and cached; both kinds are immutable.

    Raises:
        ValueError: unknown name; the message lists the names and suggests a close one.
    """
    return _get(_canonical(name))


def kind(baseline: str | Program | OptaxBaseline) -> str:
    """``"program"`` or ``"optax"``, for a baseline or its name."""
    if isinstance(baseline, str):
        baseline = get(baseline)
    if isinstance(baseline, Program):
        return "program"
    if isinstance(baseline, OptaxBaseline):
        return "optax"
    raise TypeError(f"not a baseline: {type(baseline).__name__}")


def is_program(baseline: str | Program | OptaxBaseline) -> bool:
    """Whether a baseline (or the baseline called so) is an update-rule program."""
    return kind(baseline) == "program"


def hyperparameters(name: str) -> dict[str, Any]:
    """A baseline's overridable hyperparameters and their defaults."""
    baseline = get(name)
    if isinstance(baseline, Program):
        return _program_hyperparameters(baseline)
    return baseline.hyperparameters


def doc(name: str) -> str:
    """One paragraph on the baseline: what it is and which optax optimizer it equals."""
    name = _canonical(name)
    if name in _OPTAX_BUILDERS:
        return _get(name).doc
    return _DOCS[name]


def optax_twin(name: str) -> str | None:
    """The optax call that a baseline matches step for step, or None (powersign, addsign)."""
    return _OPTAX_TWINS.get(_canonical(name))


def source(name: str) -> str | None:
    """The program text constant (with its comments), or None for an optax-level baseline."""
    return _PROGRAM_TEXTS.get(_canonical(name))


def _canonical(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"a baseline name must be a str, got {type(name).__name__}")
    key = name.strip().lower()
    if key not in _NAMES:
        raise ValueError(f"unknown baseline {name!r}{did_you_mean(key, _NAMES)}; "
                         f"the baselines are: {', '.join(_NAMES)}")
    return key


@functools.cache
def _get(name: str) -> Program | OptaxBaseline:
    if name in _OPTAX_BUILDERS:
        return _OPTAX_BUILDERS[name]()
    return parse(_PROGRAM_TEXTS[name], source=f"<baseline {name}>")


__all__ = ["OptaxBaseline", "doc", "get", "hyperparameters", "is_program", "kind", "names",
           "optax_twin", "source"]
