"""Fitness (symopt/evaluation/fitness.py): AdamW scores exactly zero, the learning-rate grid leaves no
step-size exploit, a bad or diverging program scores below zero or worst, and the score's guards."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

import proxy_tasks
from proxy_tasks.task import adamw, training_run
from symopt.evaluation import evaluate
from symopt.evaluation.fitness import BEST_SCORE, LOSS_FLOOR, WORST_FITNESS, Grid, score, task_score
from symopt.programs import baselines
from symopt.tools.compare import scale_lr
from tests.evaluation.cases import CHUNK, NAN, RTOL, SLOW, STEPS, TASK


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
