"""The compile-once interpreter (symopt/evaluation/interpreter.py): a task's flat layout, its compiled
executables built once and kept, and programs trained on it as optax trains them (single, batched and
select modes).

Cheap proxy tasks and few steps keep this file fast; every test shares the compiled interpreters (one per
task, batch size and mode) through the engine's process-wide cache.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

import proxy_tasks
from proxy_tasks.task import adamw, training_run
from symopt.evaluation import Result, evaluate
from symopt.evaluation.compiles import count_compiles
from symopt.evaluation.evaluator import interpreter
from symopt.evaluation.interpreter import Interpreter, layout_of
from symopt.evaluation.fitness import WORST_FITNESS
from symopt.evaluation.lowering import Bucket
from symopt.export.optax_export import to_optax
from symopt.programs import Program, baselines, parse
from tests.evaluation.cases import CHUNK, CUSTOM, MATRICES, NAN, OTHER, PROGRAM_BASELINES, RTOL, SLOW, STEPS, TASK


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


# -- the interpreter alone --------------------------------------------------------------------------


def test_a_task_s_layout_is_its_leaves_end_to_end_in_tree_order():
    task = proxy_tasks.get(TASK)
    layout = layout_of(task)
    params = task.init(jax.random.PRNGKey(0))
    leaves = jax.tree_util.tree_leaves(params)
    assert layout.shapes == tuple(x.shape for x in leaves) and layout.n_segments == len(leaves)
    assert layout.size == sum(x.size for x in leaves)
    assert np.array_equal(layout.segments, np.repeat(np.arange(len(leaves)), [x.size for x in leaves]))
    flat = layout.ravel(params)
    for a, b in zip(jax.tree_util.tree_leaves(layout.unravel(flat)), leaves):
        np.testing.assert_array_equal(a, b)


def test_executables_are_built_once_and_seeds_initialise_as_the_task_does():
    it = Interpreter(proxy_tasks.get(TASK))
    assert it.compiled_keys() == []
    flat, key = it.init(0)
    assert it.init(0)[0] is flat and it.compiled_keys() == [("init",)]  # one init executable, each seed once
    eager = it.layout.ravel(proxy_tasks.get(TASK).init(jax.random.split(jax.random.PRNGKey(0))[0]))
    np.testing.assert_allclose(flat, eager, rtol=1e-6, atol=1e-9)  # compiled, so to rounding
    assert key.dtype == np.uint32 and key.shape == (2,)
    assert not it.has_run(Bucket(32, 4), (20,), 1, "single")
    with pytest.raises(ValueError, match="unknown mode"):
        it.run(Bucket(32, 4), (20,), 1, "fast")
    with pytest.raises(ValueError, match="mode 'single' runs one program"):
        it.run(Bucket(32, 4), (20,), 2, "single")
    state = it.start(Bucket(32, 4), 20, np.zeros((3, it.layout.size)), n_active=2)
    assert state.rf.shape == (3, Bucket(32, 4).rows, it.layout.size) and state.active.tolist() == [True, True, False]


def test_the_run_executable_takes_equal_chunks_then_one_shorter():
    it = interpreter(proxy_tasks.get(TASK))
    for plan in [(20, 30), (20, 10, 10), (), (0,)]:
        with pytest.raises(ValueError, match="chunk plan"):
            it.run(Bucket(32, 4), plan, 1, "single")


@pytest.mark.slow
def test_a_constant_rate_variant_shares_its_task_machine_and_trains_at_its_own_rates():
    base, const = proxy_tasks.get("matrix_completion"), proxy_tasks.get("matrix_completion_const")
    assert interpreter(const) is interpreter(base)
    results = evaluate([baselines.get("adamw")], [base, const], steps=STEPS, chunk=CHUNK)[0]
    for task in (base, const):  # each as optax.adamw on its own rates
        _, ref_eval = training_run(task, adamw(task, steps=STEPS), STEPS)(jax.random.PRNGKey(0))
        np.testing.assert_allclose(results.run(task.name).eval_loss, float(ref_eval), rtol=RTOL)
    assert results.run(base.name).eval_loss != results.run(const.name).eval_loss


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
