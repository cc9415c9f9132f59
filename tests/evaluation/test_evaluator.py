"""evaluate (symopt/evaluation/evaluator.py): chunked training with a time limit, the chunk plan, programs
checked first, tasks and seeds aggregated into a Result, the hurdle and the gates, toy tasks refused."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

import proxy_tasks
from proxy_tasks.task import adamw, training_run
from symopt.evaluation import Result, evaluate
from symopt.evaluation.evaluator import chunk_plan, initial_eval_loss
from symopt.evaluation.fitness import BEST_SCORE, WORST_FITNESS, Grid
from symopt.programs import Program, ProgramError, baselines, parse
from tests.evaluation.cases import CHUNK, NAN, OTHER, RTOL, SLOW, STEPS, TASK


def test_a_time_limit_calls_chunk_by_chunk_with_the_same_results():
    programs = [baselines.get("adamw"), baselines.get("lion"), NAN]
    whole = evaluate(programs, TASK, seeds=(0, 1), steps=STEPS, chunk=CHUNK)
    chunked = evaluate(programs, TASK, seeds=(0, 1), steps=STEPS, chunk=CHUNK, time_limit=1e9)
    for a, b in zip(whole, chunked):
        assert a.fitness == b.fitness or (math.isnan(a.fitness) and math.isnan(b.fitness))
        for x, y in zip(a.runs, b.runs):
            assert (x.steps_run, x.diverged) == (y.steps_run, y.diverged)
            np.testing.assert_array_equal(x.losses, y.losses)


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


def test_the_jax_evaluator_refuses_a_toy_task_by_its_tag():
    with pytest.raises(ValueError, match="'toy_quadratic' is a toy task"):
        evaluate([baselines.get("adamw")], ["quadratic_illcond", "toy_quadratic"])
