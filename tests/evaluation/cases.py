"""The evaluation tests' shared tasks, step counts and programs: cheap proxy tasks and few steps, programs
that reach every part of lowering (reductions, moves, superinstructions, matrix functions), one that
diverges (NAN) and one that is much worse than AdamW (SLOW)."""

from __future__ import annotations

from symopt.programs import baselines, parse

TASK = "logreg_synthetic"  # two leaves (w [32], b [1]), minibatches, AdamW weight decay 1e-4
OTHER = "quadratic_noisy"  # one leaf, noisy gradients, no weight decay
STEPS = 60
CHUNK = 20  # three chunks: room to stop early
RTOL = 1e-4

PROGRAM_BASELINES = [n for n in baselines.names() if baselines.is_program(n)]

CUSTOM = {
    # reductions of tensors (per tensor and whole tree) and of scalars, mixed with elementwise math
    "reductions": """
def reductions(w, g, m):
    n = norm(g)
    gn = global_norm(g)
    m = interpolate(m, clip_by_global_norm(g, 0.5), 0.1)
    d = cosine_sim(g, m) + dot(w, g) * 0.001
    s = global_norm(d) + norm(gn) + dot(gn, gn) + cosine_sim(gn, 2.0)
    u = m / (n + 1.0) + g * gn * 0.01 + clip_by_global_norm(g, gn) * 0.1 + d * w * 0.01 + s * 0.001
    return u, m
""",
    # states that trade places, w kept as a state, the update an old state, scalar returns
    "moves": """
def moves(w, g, a, b, c, d, t, lr):
    return a * lr + g * lr, b + g, a, w, 0.5 * t
""",
    "old_state_update": """
def old_state_update(g, m):
    return m * 0.5 + g, g
""",
    # moment idioms in both orders (superinstructions), and sums that must not fuse
    "moments": """
def moments(g, m, v):
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + square(g) * 0.001
    s = sqrt(v + 1e-8)
    u = m / s + g * 0.01 + 0.5 * sqrt(0.25 + g * g)
    return u + square(m) * 0.1, m, v
""",
    # Adam's and Lion's directions (superinstructions), and weight decay left to the weight step
    "directions": """
def directions(w, g, m, v, t):
    m = interpolate(m, g, 0.1)
    v = 0.999 * v + 0.001 * square(g)
    mh = divide(m, 1.0 - power(0.9, t))
    vh = divide(v, 1.0 - power(0.999, t))
    a = divide(mh, sqrt(vh + 1e-16) + 1e-8)
    b = divide(g, sqrt(v + 0.0) + 1e-3)
    c = sign(0.9 * m + 0.1 * g)
    return a + 0.1 * b + 0.01 * c + 0.01 * w, m, v
""",
    "decay_first": """
def decay_first(w, g, m):
    m = interpolate(m, g, 0.1)
    return 0.01 * w + m, m
""",
    "scalar_update": """
def scalar_update(g, lr):
    return lr * 0.1
""",
    "uniform_scalars": """
def uniform_scalars(g, m, t):
    c = 1.0 - power(0.9, t)
    e = sqrt(exp(-t * 0.01)) + log(t) * get_pi()
    m = interpolate(m, g, 0.1)
    return m / c * e * 0.1 + arctan(g) * cbrt(t) * 0.01, m
""",
}

MATRICES = parse("""
def matrices(w, g, m, v_row, v_col, lr):
    m = interpolate(m, g, 0.1)
    v_row = interpolate(v_row, row_mean(square(g)), 0.2)
    v_col = interpolate(v_col, col_mean(square(g)), 0.2)
    vhat = divide(v_row * v_col, col_mean(v_row) + 1e-30)
    k = is_matrix(w)
    muon = orthogonalize(m) * sqrt(max(1.0, divide(cols(g), rows(g))))
    return (k * muon + (1.0 - k) * g / sqrt(vhat + 1e-30)) * lr, m, v_row, v_col
""")  # every matrix function: Muon on the matrices, a factored second moment on the biases' rows

NAN = parse("""
def nan(g):
    return log(g - g)
""")  # log(0) = -inf: the weights become infinite after the first step

SLOW = parse("""
def slow(g):
    return g * 0.001
""")  # a thousand times too small a step: much worse than AdamW
