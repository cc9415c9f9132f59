"""Fitness: a program against AdamW, each at its best learning rate, on comparable per-task scales.

One task's score, from the final eval losses of a grid of runs (learning-rate
factors x seeds; both sides train the same seeds, so seeds are paired):

* each side's factor is the one with the lowest mean log eval loss over the
  seeds (a factor where any seed diverged is never chosen), so a rule that only
  wants a larger or smaller step gains nothing: AdamW x5 is AdamW at another
  factor (:data:`DEFAULT_FACTORS`);
* the gain is the mean over seeds of ``log(L_adamw / L_program)`` at the chosen
  factors;
* the gain is divided by AdamW's own progress on the task, the mean over seeds
  of ``log(L_initial / L_adamw)``: +0.1 means the program went 10% further in
  log-loss than AdamW did from the initial parameters, -1 that it made no
  progress at all. This puts a quadratic (AdamW gains 20 nats) and a small
  network (3 nats) on one scale, so no task decides the mean;
* the score is clipped to ``[WORST_FITNESS, BEST_SCORE]`` = [-1, 1]; a task on
  which every factor diverged scores ``WORST_FITNESS``.

A program's fitness is the mean of its task scores: 0 is AdamW, the start
program of the search spaces (AdamW itself, :func:`symopt.programs.baselines`)
scores exactly 0. A stage may name some of its tasks *gates* (the quadratics of
the search stages): they are trained and scored like the others but left out of
the mean, and a program scoring below the gate on any of them gets
``WORST_FITNESS`` (why gates and not averaged terms: docs/design.md §8). Losses
are taken to be non-negative and raised to ``LOSS_FLOOR`` first (an exactly
solved quadratic has a loss of 0).

Divergence: a non-finite train loss, one above ``DIVERGENCE_FACTOR`` times the
loss at step 0, or a non-finite eval loss.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np

WORST_FITNESS = -1.0
"""The score of a task on which the program diverged everywhere (or made no progress), and the lowest."""
BEST_SCORE = 1.0
"""The highest score of a task."""
LOSS_FLOOR = 1e-10
"""Losses below this count as this (log ratios of exact zeros stay finite)."""
MIN_PROGRESS = 0.05
"""AdamW's progress on a task, ``log(L_initial / L_adamw)``, is taken to be at least this."""
DIVERGENCE_FACTOR = 10.0
"""A train loss above this many times the loss at step 0 (in absolute value) is divergence."""
DEFAULT_GATE = -0.9
"""A gate task's lowest passing score: a tenth of AdamW's progress (Lion, sign-SGD pass; no progress fails)."""
DEFAULT_FACTORS = (1 / 3, 1.0, 3.0)
"""The learning-rate grid of the search stages: factors of each task's AdamW peak learning rate."""


@dataclasses.dataclass(frozen=True)
class Grid:
    """How a candidate is trained on one stage: learning-rate factors, and the hurdle for its later seeds.

    Every candidate trains its first seed at every factor; the other seeds only when
    its fitness on the first one is at least ``hurdle`` (None: always). A candidate
    stopped at the hurdle keeps its one-seed fitness. ``gates`` name tasks that only
    gate the fitness (module docstring): scored, left out of the mean, and a score
    below ``gate`` on any of them fails the candidate.
    """

    factors: tuple[float, ...] = (1.0,)
    hurdle: float | None = None
    gates: tuple[str, ...] = ()
    gate: float = DEFAULT_GATE

    def __post_init__(self):
        factors = tuple(float(f) for f in self.factors)
        if not factors or any(not (math.isfinite(f) and f > 0) for f in factors):
            raise ValueError(f"learning-rate factors must be positive numbers, got {list(self.factors)}")
        if len(set(factors)) != len(factors):
            raise ValueError(f"learning-rate factors must differ, got {list(factors)}")
        object.__setattr__(self, "factors", factors)
        if self.hurdle is not None:
            object.__setattr__(self, "hurdle", float(self.hurdle))
        object.__setattr__(self, "gates", tuple(str(t) for t in self.gates))
        if not (math.isfinite(self.gate) and WORST_FITNESS <= self.gate <= BEST_SCORE):
            raise ValueError(f"the gate must lie in [{WORST_FITNESS}, {BEST_SCORE}], got {self.gate}")
        object.__setattr__(self, "gate", float(self.gate))

    def as_json(self) -> dict:
        return {"factors": list(self.factors), "hurdle": self.hurdle, "gates": list(self.gates), "gate": self.gate}

    def fitness(self, scores: Mapping[str, float]) -> float:
        """The fitness from per-task scores: the mean over the tasks that are not gates, or
        ``WORST_FITNESS`` when a gate scores below ``gate``."""
        if any(scores[t] < self.gate for t in self.gates if t in scores):
            return WORST_FITNESS
        return fitness(v for t, v in scores.items() if t not in self.gates)


def diverged(losses, initial, xp=np):
    """Whether each stretch of train losses (the last axis) shows divergence, given the loss at step 0.

    ``xp`` is the array module: NumPy, or ``jax.numpy`` inside the interpreter's compiled run.
    """
    finite = xp.all(xp.isfinite(losses), axis=-1) & xp.isfinite(initial)
    return ~finite | xp.any(losses > DIVERGENCE_FACTOR * xp.abs(xp.asarray(initial))[..., None], axis=-1)


def _log(loss: float) -> float:
    return math.log(max(loss, LOSS_FLOOR)) if math.isfinite(loss) else math.inf


def best_factor(losses: Mapping[tuple[float, int], float], seeds) -> tuple[float, float]:
    """(factor, mean log eval loss over ``seeds``) of the best factor; (NaN, inf) if every factor diverged.

    ``losses`` maps (factor, seed) to a final eval loss (NaN: diverged). Ties go to the
    factor listed first.
    """
    best = (math.nan, math.inf)
    for factor in dict.fromkeys(f for f, _ in losses):
        logs = [_log(losses[factor, s]) for s in seeds]
        mean = math.inf if math.inf in logs else float(np.mean(logs))
        if mean < best[1]:
            best = (factor, mean)
    return best


def task_score(losses: Mapping[tuple[float, int], float], reference: Mapping[tuple[float, int], float],
               initial: Mapping[int, float]) -> float:
    """One task's score (module docstring): the program and AdamW each at their best factor, on the
    program's seeds; ``initial`` maps a seed to the eval loss at the initial parameters."""
    seeds = sorted({s for _, s in losses})
    _, mine = best_factor(losses, seeds)
    _, theirs = best_factor(reference, seeds)
    if not math.isfinite(theirs):
        raise ValueError("the AdamW reference diverged at every learning-rate factor: the task is broken")
    if not math.isfinite(mine):
        return WORST_FITNESS
    progress = max(float(np.mean([_log(initial[s]) for s in seeds])) - theirs, MIN_PROGRESS)
    return float(min(max((theirs - mine) / progress, WORST_FITNESS), BEST_SCORE))


DIVERGED = -math.inf
"""The fitness of a result that is not a number (its evaluation failed, or a log holds ``null``):
below every finite fitness, so selection never keeps it. The one rule is :func:`fitness_of`."""


def fitness_of(result: Any) -> float:
    """A result's fitness: a :class:`~symopt.evaluation.Result`'s ``.fitness`` (the pool's and the replay's
    results are Results too), or a number a backend returned; NaN and ``None`` (a logged null) are
    :data:`DIVERGED`.

    >>> fitness_of(0.5), fitness_of(float("nan")), fitness_of(None)
    (0.5, -inf, -inf)
    """
    if result is None:
        return DIVERGED
    value = float(result if isinstance(result, (int, float)) else result.fitness)
    return DIVERGED if math.isnan(value) else value


def score(eval_loss: float, reference: float) -> float:
    """The log ratio ``log(reference / eval_loss)`` of one run (``-inf`` when it diverged, NaN when AdamW
    diverged at that factor)."""
    if not math.isfinite(reference):
        return math.nan
    if not math.isfinite(eval_loss):
        return -math.inf
    return math.log(max(reference, LOSS_FLOOR) / max(eval_loss, LOSS_FLOOR))


def fitness(scores) -> float:
    """The mean of the per-task scores."""
    scores = list(scores)
    if not scores:
        raise ValueError("no tasks to score")
    return float(np.mean(scores))
