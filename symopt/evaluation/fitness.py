"""Fitness: a program's final eval loss against the AdamW reference, on a log scale.

For one task and seed the score is ``log(L_adamw / L_program)`` on the final
eval loss of the same task, seed and number of steps: 0 is as good as AdamW,
+1 is e times lower loss, -1 e times higher. A program's fitness is the mean
score over its tasks and seeds (higher is better).

Guards:

* losses are taken to be non-negative (every proxy task's eval loss is a
  cross-entropy, a squared error or an optimality gap); both losses are raised
  to ``LOSS_FLOOR`` first, so a loss of 0 (an exactly solved quadratic) or
  below scores as ``LOSS_FLOOR`` and the ratio stays finite;
* a score is clipped to ``[WORST_FITNESS, BEST_SCORE]`` (e^-10 to e^10 times
  AdamW's loss), so no single task dominates the mean;
* a run that diverges (a non-finite train loss, or one above
  ``DIVERGENCE_FACTOR`` times the loss at step 0, or a non-finite eval loss)
  or that the time limit cut short scores ``WORST_FITNESS``: never better than
  any finished run.
"""

from __future__ import annotations

import math

import numpy as np

WORST_FITNESS = -10.0
"""The score of a diverged or cut-short run, and the lowest score of any run."""
BEST_SCORE = 10.0
"""The highest score of a run."""
LOSS_FLOOR = 1e-10
"""Losses below this count as this (log ratios of exact zeros stay finite)."""
DIVERGENCE_FACTOR = 10.0
"""A train loss above this many times the loss at step 0 (in absolute value) is divergence."""


def diverged(losses: np.ndarray, initial: float) -> bool:
    """Whether a stretch of train losses shows divergence, given the loss at step 0."""
    losses = np.asarray(losses, np.float64)
    if not np.all(np.isfinite(losses)) or not math.isfinite(initial):
        return True
    return bool(np.any(losses > DIVERGENCE_FACTOR * abs(initial)))


def score(eval_loss: float, reference: float) -> float:
    """The score of one finished run: ``log(reference / eval_loss)``, floored and clipped."""
    if not math.isfinite(reference):
        raise ValueError(f"the AdamW reference eval loss is {reference}: the task is broken")
    if not math.isfinite(eval_loss):
        return WORST_FITNESS
    value = math.log(max(reference, LOSS_FLOOR) / max(eval_loss, LOSS_FLOOR))
    return float(min(max(value, WORST_FITNESS), BEST_SCORE))


def fitness(scores) -> float:
    """The mean of the per-task, per-seed scores."""
    scores = list(scores)
    if not scores:
        raise ValueError("no runs to score")
    return float(np.mean(scores))
