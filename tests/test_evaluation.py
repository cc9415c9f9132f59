"""The evaluation engine: the compile-once interpreter trains as optax does, and scores fairly.

Cheap proxy tasks and few steps keep this file fast; every test shares the compiled
interpreters (one per task, batch size and mode) through the engine's process-wide cache.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

import proxy_tasks
from proxy_tasks.task import adamw, training_run
from symopt.evaluation import Result, evaluate
from symopt.evaluation.evaluator import chunk_plan
from symopt.evaluation.fitness import WORST_FITNESS
from symopt.evaluation.lowering import Bucket, lower
from symopt.evaluation.compiles import count_compiles
from symopt.evaluation.evaluator import initial_eval_loss
from symopt.evaluation.fitness import BEST_SCORE, LOSS_FLOOR, Grid, score, task_score
from symopt.evaluation.opcodes import OPCODES
from symopt.export.optax_export import to_optax
from symopt.programs import Program, ProgramError, baselines, parse
from symopt.tools.compare import scale_lr

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


def _native(program: Program, task_name: str, steps: int = STEPS, seed: int = 0):
    task = proxy_tasks.get(task_name)
    losses, eval_loss = training_run(task, to_optax(program, task.schedule(steps=steps)), steps)(jax.random.PRNGKey(seed))
    return np.asarray(losses), float(eval_loss)


def _assert_matches_native(program: Program, task_name: str):
    [r] = evaluate([program], task_name, steps=STEPS, chunk=CHUNK)
    losses, eval_loss = _native(program, task_name)
    run = r.run(task_name)
    exploded = not np.all(np.isfinite(losses)) or np.any(losses > 10 * abs(losses[0])) or not math.isfinite(eval_loss)
    if exploded:
        assert run.diverged and r.fitness == WORST_FITNESS
        n = run.steps_run
        finite = np.isfinite(losses[:n]) & np.isfinite(run.losses)
        np.testing.assert_allclose(run.losses[finite], losses[:n][finite], rtol=RTOL, atol=1e-6)
        return
    assert not run.diverged and run.steps_run == STEPS
    np.testing.assert_allclose(run.losses, losses, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(run.eval_loss, eval_loss, rtol=RTOL, atol=1e-6)


# -- lowering ------------------------------------------------------------------------------------


def test_dead_statements_are_removed_and_constants_folded():
    lean = lower(parse("def f(g, m):\n    m = interpolate(m, g, 0.1)\n    return m * 2.0, m\n"))
    fat = lower(parse("def f(g, m, t):\n    unused = exp(g) * t\n    c = 1.0 - 0.9\n    k = 2.0\n"
                      "    m = interpolate(m, g, c)\n    m2 = m * k\n    return m2, m\n"))
    assert len(fat) == len(lean) == 2
    assert not fat.uniform  # 1.0 - 0.9 folded, not computed per step


def test_uniform_scalars_run_on_the_host_and_reductions_of_scalars_are_arithmetic():
    low = lower(parse("def f(g, t):\n    c = 1.0 - power(0.9, t)\n    return g / c + global_norm(c) * g\n"))
    assert [fn for fn, _, _ in low.uniform] == ["power", "-", "square", "sqrt"]
    assert {OPCODES[row[0]].fn for row in low.main} <= {"/", "+", "*", "axpy", "ypax", "mov"}  # mov: loads g
    table = low.scalars(0.1, 0, 3)
    np.testing.assert_allclose(table[:, 1], [1, 2, 3])  # t is 1-based
    reduced = lower(parse("def f(g):\n    return g * global_norm(g)\n"))
    assert "global_norm" in {OPCODES[row[0]].fn for row in reduced.main}


def test_moment_updates_are_superinstructions():
    low = lower(parse(CUSTOM["moments"]))
    fns = [OPCODES[row[0]].fn for row in low.main]
    assert fns[:3] == ["mov", "axpby", "sqaxpby"] and "sqrtadd" in fns  # g * g has no gradient form: g is loaded
    adam = lower(parse("def adam(g, m, v):\n    m = interpolate(m, g, 0.1)\n"
                       "    v = (1.0 - 0.999) * square(g) + 0.999 * v\n    return m / (sqrt(v) + 1e-8), m, v\n"))
    assert len(adam) == 5  # interpolate, sqaxpby, sqrt, +, /


def test_adam_and_lion_directions_are_superinstructions_and_decay_joins_the_weight_step():
    def fns(program):
        return [OPCODES[row[0]].fn for row in lower(program).main]

    assert fns(baselines.get("adam")) == ["axpby", "sqaxpby", "adamdir"]
    assert fns(baselines.get("adamw")) == ["axpby", "sqaxpby", "adamdir"]  # + wd * w: in the weight step
    assert fns(baselines.get("lion")) == ["signaxpby", "axpby"]
    assert "rsqrtdiv" in fns(baselines.get("nadam"))  # its numerator is a sum: no adamdir
    assert lower(baselines.get("adamw")).decay_slot is not None and lower(baselines.get("adam")).decay_slot is None
    directions = fns(parse(CUSTOM["directions"]))
    assert {"adamdir", "rsqrtdiv", "signaxpby"} <= set(directions) and "ypax" in directions  # 0.1 * b, 0.01 * c
    assert lower(parse(CUSTOM["decay_first"])).decay_slot is not None  # w * s + x, the axpy form
    assert fns(parse(CUSTOM["decay_first"])) == ["interpolate"]
    # A value read twice is computed once, so it is not folded into its reader.
    twice = parse("def f(g, m, v, t):\n    m = interpolate(m, g, 0.1)\n    v = interpolate(v, square(g), 0.001)\n"
                  "    mh = divide(m, 1.0 - power(0.9, t))\n    u = divide(mh, sqrt(v + 0.0) + 1e-8)\n"
                  "    return u + mh, m, v\n")
    assert "rsqrtdiv" in fns(twice) and "adamdir" not in fns(twice) and "divide" in fns(twice)
    kept = parse("def f(w, g, m):\n    u = g + 0.01 * w\n    return u, u\n")  # the update is also a state
    assert lower(kept).decay_slot is None and [OPCODES[r[0]].name for r in lower(kept).main] == ["mov(W)", "ypax(G,V,S)"]


def test_the_gradient_is_read_in_place_and_loaded_only_for_other_readers():
    def names(text):
        return [OPCODES[r[0]].name for r in lower(parse(text) if isinstance(text, str) else text).main]

    assert names(baselines.get("adamw")) == ["axpby(G,S,V,S)", "sqaxpby(G,S,V,S)", "adamdir(V,S,V,S,S,S)"]
    assert names(baselines.get("sgd")) == ["mov(G)"]  # the update is the gradient itself: a row
    # exp has no gradient form: g is loaded once, and then read from its row by every reader
    assert names("def f(g, m):\n    m = interpolate(m, g, 0.1)\n    return exp(g) + m, m\n") == [
        "mov(G)", "interpolate(V,V,S)", "exp(V)", "+(V,V)"]


def test_a_time_limit_calls_chunk_by_chunk_with_the_same_results():
    programs = [baselines.get("adamw"), baselines.get("lion"), NAN]
    whole = evaluate(programs, TASK, seeds=(0, 1), steps=STEPS, chunk=CHUNK)
    chunked = evaluate(programs, TASK, seeds=(0, 1), steps=STEPS, chunk=CHUNK, time_limit=1e9)
    for a, b in zip(whole, chunked):
        assert a.fitness == b.fitness or (math.isnan(a.fitness) and math.isnan(b.fitness))
        for x, y in zip(a.runs, b.runs):
            assert (x.steps_run, x.diverged) == (y.steps_run, y.diverged)
            np.testing.assert_array_equal(x.losses, y.losses)


def test_the_run_executable_takes_equal_chunks_then_one_shorter():
    from symopt.evaluation.evaluator import interpreter
    it = interpreter(proxy_tasks.get(TASK))
    for plan in [(20, 30), (20, 10, 10), (), (0,)]:
        with pytest.raises(ValueError, match="chunk plan"):
            it.run(Bucket(32, 4), plan, 1, "single")


def test_buckets():
    assert lower(baselines.get("adam")).bucket == Bucket(32, 4)
    body = "\n".join(f"    m = m * {i + 2}.0 + exp(g)" for i in range(40))  # exp(g) computed once
    big = lower(parse(f"def f(g, m):\n{body}\n    return m, m\n"))
    assert len(big) == 42 and big.bucket == Bucket(64, 4)  # and a load of g (exp has no gradient form)
    assert lower(parse("def f(g, a, b, c, d, e):\n    return g, a, b, c, d, e\n")).bucket == Bucket(32, 8)


def test_bad_program_raises():
    with pytest.raises(ProgramError):
        evaluate([Program(("g",), (), ())], TASK)


def test_chunk_plan():
    assert chunk_plan(200) == (50,) * 4
    assert chunk_plan(300, 50) == (50,) * 6
    assert chunk_plan(40, 50) == (40,)
    assert chunk_plan(60, 20) == (20,) * 3
    assert chunk_plan(130, 50) == (26,) * 5  # a divisor between 25 and 50
    assert chunk_plan(101, 50) == (50, 50, 1)  # none: one more, shorter chunk


# -- the interpreter trains as optax does ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", PROGRAM_BASELINES)
def test_baseline_matches_optax_training(name):
    _assert_matches_native(baselines.get(name), TASK)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["adam", "lookahead"])
def test_baseline_matches_optax_training_on_another_task(name):
    _assert_matches_native(baselines.get(name), OTHER)


@pytest.mark.slow
@pytest.mark.slow
def test_matrix_functions_train_as_optax_does():
    """Static loops over the layout's matrices (mlp_digits: kernels [64, 32], [32, 10] and bias vectors)."""
    _assert_matches_native(MATRICES, "mlp_digits")


@pytest.mark.parametrize("name", list(CUSTOM))
def test_program_matches_optax_training(name):
    _assert_matches_native(parse(CUSTOM[name]), TASK)


@pytest.mark.slow
def test_twenty_programs_compile_once():
    programs = [parse(f"def p{i}(g, m):\n    m = interpolate(m, g, {0.05 * (i + 1):.2f})\n"
                      f"    return {'sign(m)' if i % 2 else 'm'} * {1.0 + i / 10:.1f}, m\n") for i in range(20)]
    evaluate(programs[:1], TASK, steps=STEPS, chunk=CHUNK)  # may compile (first use)
    with count_compiles() as compiles:
        results = [evaluate([p], TASK, steps=STEPS, chunk=CHUNK)[0] for p in programs[1:]]
    assert compiles.count == 0, compiles.names
    assert len({round(r.run(TASK).eval_loss, 6) for r in results}) > 10  # different programs, different runs
    with count_compiles() as control:  # the counter does see an ahead-of-time compilation
        jax.jit(lambda x: x * 3.0 - 1.0).lower(np.zeros(7, np.float32)).compile()
    assert control.count == 1


# -- fitness -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_adamw_as_a_program_is_the_reference_and_scores_exactly_zero():
    task = proxy_tasks.get(TASK)
    assert task.weight_decay == 1e-4  # the adamw baseline's decay
    [r] = evaluate([baselines.get("adamw")], TASK, seeds=(0, 1), steps=STEPS, chunk=CHUNK, grid=Grid((1 / 3, 1, 3)))
    assert r.fitness == 0.0 and r.scores == {TASK: 0.0}
    assert all(run.eval_loss == run.reference_eval_loss for run in r.runs)
    ref_losses, ref_eval = training_run(task, adamw(task, steps=STEPS), STEPS)(jax.random.PRNGKey(0))
    np.testing.assert_allclose(r.run(TASK).losses, ref_losses, rtol=RTOL)  # and it is optax.adamw
    np.testing.assert_allclose(r.run(TASK).eval_loss, float(ref_eval), rtol=RTOL)


@pytest.mark.slow
def test_a_constant_rate_variant_shares_its_task_machine_and_trains_at_its_own_rates():
    from symopt.evaluation.evaluator import interpreter
    base, const = proxy_tasks.get("matrix_completion"), proxy_tasks.get("matrix_completion_const")
    assert interpreter(const) is interpreter(base)
    results = evaluate([baselines.get("adamw")], [base, const], steps=STEPS, chunk=CHUNK)[0]
    for task in (base, const):  # each as optax.adamw on its own rates
        _, ref_eval = training_run(task, adamw(task, steps=STEPS), STEPS)(jax.random.PRNGKey(0))
        np.testing.assert_allclose(results.run(task.name).eval_loss, float(ref_eval), rtol=RTOL)
    assert results.run(base.name).eval_loss != results.run(const.name).eval_loss


@pytest.mark.slow
def test_a_larger_or_smaller_step_gains_nothing_on_the_grid():
    """AdamW x3 is AdamW at the next factor: on the grid it can only tie or lose (no step-size exploit)."""
    grid = Grid((1 / 3, 1, 3))
    fast, slow = (scale_lr(baselines.get("adamw"), f) for f in (3.0, 1 / 3))
    [_, slow_one] = evaluate([fast, slow], TASK, steps=STEPS, chunk=CHUNK)  # factor 1 only: the step size counts
    [f, s] = evaluate([fast, slow], TASK, steps=STEPS, chunk=CHUNK, grid=grid)
    assert max(f.fitness, s.fitness) <= 1e-3 and slow_one.fitness < s.fitness - 0.01
    assert {run.factor for run in f.runs} == set(grid.factors)


def test_a_bad_program_scores_below_zero():
    [r] = evaluate([SLOW], TASK, steps=STEPS, chunk=CHUNK)
    assert WORST_FITNESS < r.fitness < -0.1 and not r.diverged


def test_a_nan_program_gets_the_worst_fitness_and_stops_early():
    [r] = evaluate([NAN], TASK, steps=STEPS, chunk=CHUNK)
    run = r.run(TASK)
    assert r.fitness == WORST_FITNESS and r.diverged and run.diverged
    assert run.steps_run == CHUNK < STEPS  # stopped after the first chunk
    assert math.isnan(run.eval_loss) and not np.all(np.isfinite(run.losses))


def test_score_guards():
    assert score(0.5, 0.5) == 0.0
    assert score(0.0, 1e-12) == 0.0  # both below the floor
    assert score(float("nan"), 1.0) == -math.inf and math.isnan(score(1.0, float("nan")))
    assert score(LOSS_FLOOR, 1.0) == pytest.approx(math.log(1 / LOSS_FLOOR))


def test_task_score_takes_each_side_at_its_best_factor_and_normalises_by_adamw_progress():
    initial = {0: math.e ** 3, 1: math.e ** 3}
    ref = {(1.0, 0): 1.0, (1.0, 1): 1.0, (3.0, 0): 2.0, (3.0, 1): 2.0}  # AdamW best at x1, 3 nats of progress
    mine = {(1.0, 0): 5.0, (1.0, 1): 5.0, (3.0, 0): math.e ** -0.3, (3.0, 1): math.e ** -0.3}  # best at x3
    assert task_score(mine, ref, initial) == pytest.approx(0.1)
    diverged_at_3 = {**mine, (3.0, 1): float("nan")}  # a factor where any seed diverged is never chosen
    assert task_score(diverged_at_3, ref, initial) == pytest.approx(-math.log(5.0) / 3)
    nothing = {k: float("nan") for k in mine}
    assert task_score(nothing, ref, initial) == WORST_FITNESS
    assert task_score({(1.0, 0): 1e-30, (1.0, 1): 1e-30}, ref, initial) == BEST_SCORE  # clipped
    assert task_score({(1.0, 0): 1e30, (1.0, 1): 1e30}, ref, initial) == WORST_FITNESS
    one_seed = {(1.0, 0): math.e ** -0.3, (3.0, 0): 5.0}  # scored on its own seeds only: paired
    assert task_score(one_seed, ref, initial) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="AdamW reference diverged"):
        task_score(mine, {k: float("nan") for k in ref}, initial)


@pytest.mark.slow
def test_tasks_and_seeds_aggregate():
    program = baselines.get("rmsprop")
    seeds = (0, 3)
    [r] = evaluate([program], [TASK, OTHER], seeds=seeds, steps=STEPS, chunk=CHUNK)
    assert isinstance(r, Result) and [(x.task, x.seed) for x in r.runs] == [(t, s) for t in (TASK, OTHER) for s in seeds]
    adamw_runs = {t: training_run(proxy_tasks.get(t), adamw(proxy_tasks.get(t), steps=STEPS), STEPS)
                  for t in (TASK, OTHER)}
    for run in r.runs:
        _, ref = adamw_runs[run.task](jax.random.PRNGKey(run.seed))
        assert run.reference_eval_loss == pytest.approx(float(ref), rel=RTOL)
        assert run.score == pytest.approx(math.log(run.reference_eval_loss / run.eval_loss))
        [alone] = evaluate([program], run.task, seeds=run.seed, steps=STEPS, chunk=CHUNK)
        assert alone.run(run.task, run.seed).eval_loss == run.eval_loss
    for t in (TASK, OTHER):
        progress = np.mean([math.log(initial_eval_loss(proxy_tasks.get(t), s)) for s in seeds]) - np.mean(
            [math.log(x.reference_eval_loss) for x in r.runs if x.task == t])
        gain = np.mean([x.score for x in r.runs if x.task == t])
        assert r.scores[t] == pytest.approx(np.clip(gain / progress, WORST_FITNESS, BEST_SCORE))
    assert r.fitness == pytest.approx(np.mean(list(r.scores.values())))
    assert r.eval_losses[TASK, 3] == r.run(TASK, 3).eval_loss and r.losses[OTHER, 0].shape == (STEPS,)
    assert len({x.eval_loss for x in r.runs}) == 4  # seeds differ


def test_the_hurdle_trains_later_seeds_only_for_promising_candidates():
    grid = Grid((1 / 3, 1, 3), hurdle=-0.05)
    [good, bad] = evaluate([baselines.get("adam"), SLOW], TASK, seeds=(0, 1), steps=STEPS, chunk=CHUNK, grid=grid)
    assert good.seeds == (0, 1) and bad.seeds == (0,)
    [bad_alone] = evaluate([SLOW], TASK, seeds=(0,), steps=STEPS, chunk=CHUNK, grid=Grid((1 / 3, 1, 3)))
    assert bad.fitness == bad_alone.fitness < -0.05  # its one-seed fitness, against AdamW on that seed
    [good_all] = evaluate([baselines.get("adam")], TASK, seeds=(0, 1), steps=STEPS, chunk=CHUNK,
                          grid=Grid((1 / 3, 1, 3)))
    assert good.fitness == good_all.fitness


@pytest.mark.slow
def test_gates_are_scored_but_only_gate_the_fitness():
    sign_sgd = parse("def sign_sgd(g):\n    return sign(g)\n")
    grid = Grid((1 / 3, 1, 3), gates=(OTHER,), gate=-0.9)
    [slow, sign, adam] = evaluate([SLOW, sign_sgd, baselines.get("adam")], [OTHER, TASK], seeds=(0,), steps=STEPS,
                                  chunk=CHUNK, grid=grid)
    assert set(slow.scores) == {OTHER, TASK}
    assert slow.scores[OTHER] < -0.9 and slow.fitness == WORST_FITNESS  # no progress on the gate: fails
    for r in (sign, adam):  # past the gate: the fitness is the other task's score alone
        assert r.scores[OTHER] >= -0.9 and r.fitness == r.scores[TASK] != np.mean(list(r.scores.values()))
    with pytest.raises(ValueError, match="gates"):
        evaluate([SLOW], [OTHER], steps=STEPS, grid=Grid(gates=(OTHER,)))


def test_time_limit_stops_a_candidate_between_chunks():
    [r] = evaluate([baselines.get("adam")], TASK, seeds=(0, 1), steps=STEPS, chunk=CHUNK, time_limit=1e-9)
    first, second = r.runs
    assert r.timed_out and first.timed_out and second.timed_out and not r.diverged
    assert first.steps_run == CHUNK and second.steps_run == 0
    assert r.fitness == WORST_FITNESS
    [fine] = evaluate([baselines.get("adam")], TASK, steps=STEPS, chunk=CHUNK, time_limit=60.0)
    assert not fine.timed_out and fine.run(TASK).steps_run == STEPS


# -- batched mode --------------------------------------------------------------------------------------


def _assert_same(a: Result, b: Result):
    assert a.fitness == pytest.approx(b.fitness, abs=1e-5)
    for x, y in zip(a.runs, b.runs):
        assert (x.diverged, x.timed_out, x.steps_run) == (y.diverged, y.timed_out, y.steps_run)
        np.testing.assert_allclose(x.losses, y.losses, rtol=1e-5, atol=1e-7)
        if not x.diverged:
            np.testing.assert_allclose(x.eval_loss, y.eval_loss, rtol=1e-5)


@pytest.mark.slow
def test_batched_equals_unbatched():
    programs = [baselines.get(n) for n in ("adam", "lion", "momentum")] + [NAN, parse(CUSTOM["moves"]), SLOW]
    one = evaluate(programs, TASK, steps=STEPS, chunk=CHUNK)
    with count_compiles() as compiles:
        many = evaluate(programs, TASK, steps=STEPS, chunk=CHUNK, batched=4)  # groups of 4 and 2 (+2 idle)
    assert compiles.count + compiles.loaded == 1  # one run executable (training and eval) for K = 4 (or its cached copy)
    for a, b in zip(one, many):
        assert a.program == b.program
        _assert_same(a, b)


@pytest.mark.slow
def test_select_mode_equals_unbatched():
    programs = [baselines.get("adamw"), parse(CUSTOM["reductions"])]
    one = evaluate(programs, TASK, steps=STEPS, chunk=CHUNK)
    many = evaluate(programs, TASK, steps=STEPS, chunk=CHUNK, batched=2, batch_mode="select")
    for a, b in zip(one, many):
        _assert_same(a, b)


# -- command line ----------------------------------------------------------------------------------------


def test_bench_eval_is_a_bench_subcommand():
    from symopt.cli import build_parser

    args = build_parser().parse_args(["bench", "eval", "--json", "--task", "rosenbrock"])
    assert args.json and args.task == "rosenbrock" and callable(args.func)


def test_the_jax_evaluator_refuses_a_toy_task_by_its_tag():
    with pytest.raises(ValueError, match="'toy_quadratic' is a toy task"):
        evaluate([baselines.get("adamw")], ["quadratic_illcond", "toy_quadratic"])
