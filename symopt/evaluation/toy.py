"""Training on the toy tasks (proxy tasks tagged "toy", :mod:`proxy_tasks.toy`): a cheap, real evaluation
of update rules without JAX, for tests and debugging.

Each task trains a quadratic with the program run by the reference executor
(:func:`symopt.programs.execute.run` on a NumPy :class:`FlatSpace`), and scores
it the way the JAX evaluator does: ``log(L_adamw / L_program)`` of the final
loss, averaged over tasks and seeds, with a finite worst value for a run that
diverges.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Sequence

import numpy as np

import proxy_tasks
from proxy_tasks.toy import ToyTask, problem
from symopt.evaluation.evaluator import Result, Run
from symopt.programs.execute import bind, run
from symopt.programs.spaces import FlatSpace
from symopt.programs.parser import parse
from symopt.programs.program import Program

WORST = -10.0
"""Fitness of a run that diverges (finite, so averages stay finite)."""

BEST = 10.0
DIVERGENCE_FACTOR = 10.0
"""A loss above this many times the starting loss is divergence (as in symopt.evaluation)."""

ADAMW = parse("""def adamw(w, g, m, v, t, lr):
    m = interpolate(m, g, 0.1)
    v = interpolate(v, square(g), 0.001)
    mhat = m / (1.0 - power(0.9, t))
    vhat = v / (1.0 - power(0.999, t))
    update = lr * (mhat / (sqrt(vhat) + 1e-8) + 0.0001 * w)
    return update, m, v
""")


def all_toy(tasks: Sequence[str]) -> bool:
    """Whether a stage's tasks are all toy tasks (trained here with NumPy) rather than proxy tasks (JAX).

    >>> all_toy(["toy_quadratic"]), all_toy(["mlp_digits"])
    (True, False)

    Raises ValueError for a stage that mixes the two.
    """
    is_toy = [proxy_tasks.tag(t) == "toy" for t in tasks]
    if any(is_toy) and not all(is_toy):
        raise ValueError(f"tasks {list(tasks)}: a stage cannot mix toy_* tasks with proxy tasks")
    return bool(is_toy) and all(is_toy)


def train(program: Program, task: ToyTask, seed: int = 0) -> float:
    """Final loss of ``program`` on ``task``; ``inf`` when the run diverges."""
    losses, diverged = _losses(program, task, seed)
    return math.inf if diverged else losses[-1]


def _losses(program: Program, task: ToyTask, seed: int) -> tuple[list[float], bool]:
    """The loss after each step, up to the one that diverged, and whether one did."""
    losses = []
    curv, x_star, x, noise = problem(task, seed)
    segments = np.repeat(np.arange(len(task.segments)), task.segments)
    space = FlatSpace(np, segments, len(task.segments))
    state = {s: np.zeros(task.dim) for s in program.state_args}
    start = 0.5 * float(np.sum(curv * (x - x_star) ** 2))
    with np.errstate(all="ignore"):
        for i in range(task.steps):
            grad = curv * (x - x_star - noise[i])
            inputs = bind(program, state, weight=x, grad=grad, lr=np.float64(task.learning_rate),
                          step=np.float64(i + 1.0))
            update, *new_state = run(program, space, inputs)
            if not program.has_lr:
                update = update * task.learning_rate
            x = x - np.broadcast_to(update, x.shape)
            state = {s: np.broadcast_to(v, x.shape).astype(np.float64) for s, v in zip(program.state_args, new_state)}
            loss = 0.5 * float(np.sum(curv * (x - x_star) ** 2))
            losses.append(loss)
            if not math.isfinite(loss) or loss > DIVERGENCE_FACTOR * start:
                return losses, True
    return losses, False


@functools.cache
def reference_loss(task: str, seed: int) -> float:
    """The AdamW reference's final loss on a toy task."""
    return train(ADAMW, proxy_tasks.get(task), seed)


def evaluate(programs: Sequence[Program], tasks: Sequence[str], seeds: Sequence[int] = (0,),
             steps: int | None = None) -> list[Result]:
    """Score programs on toy tasks: mean over tasks and seeds of log(L_adamw / L), clipped to [-10, 10].

    The result is the JAX evaluator's :class:`~symopt.evaluation.Result`: one :class:`~symopt.evaluation.Run`
    per (task, seed) at factor 1, its losses taken after each step.
    """
    results = []
    for program in programs:
        t0 = time.perf_counter()
        scores, runs = [], []
        for name in tasks:
            task = proxy_tasks.get(name)
            if steps:
                task = dataclasses.replace(task, steps=int(steps))
            for seed in seeds:
                losses, diverged = _losses(program, task, seed)
                ref = reference_loss(name, seed) if not steps else train(ADAMW, task, seed)
                if diverged:
                    score = WORST
                else:
                    score = min(BEST, max(WORST, math.log(max(ref, 1e-30) / max(losses[-1], 1e-30))))
                scores.append(score)
                runs.append(Run(name, seed, task.steps, np.asarray(losses, np.float32),
                                math.nan if diverged else losses[-1], ref, score, diverged, False))
        per_task = {name: float(np.mean([r.score for r in runs if r.task == name])) for name in tasks}
        results.append(Result(program, float(np.mean(scores)), tuple(runs), time.perf_counter() - t0, per_task))
    return results


def campaign(budget: int = 40) -> dict:
    """A small campaign configuration on the toy tasks (seconds to run): two funnel stages and validation."""
    return {
        "name": "toy",
        "space": {"functions": ["+", "-", "*", "/", "sqrt", "square", "sign", "interpolate", "abs"], "max_length": 10},
        "campaign": {"start": "sgd", "population": 12, "tournament": 4, "budget": budget, "hall_of_fame": 3,
                     "stages": [{"name": "small", "tasks": ["toy_quadratic"]},
                                {"name": "large", "tasks": ["toy_quadratic_large"], "promote": 6}],
                     "validation": ["toy_quadratic_noisy"]},
    }
