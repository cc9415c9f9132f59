"""Toy tasks (tag "toy"): NumPy quadratics that train in milliseconds, for tests and debugging.

They are not JAX tasks (:class:`~proxy_tasks.task.Task`): symopt trains them with its
reference executor (:mod:`symopt.evaluation.toy`), and the JAX evaluator refuses them.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class ToyTask:
    """A quadratic 1/2 sum_i c_i (x_i - x*_i)^2, optionally with curvature-scaled gradient noise."""

    name: str
    tag: str = "toy"
    dim: int = 16
    condition: float = 100.0
    noise: float = 0.0
    steps: int = 60
    learning_rate: float = 0.1
    segments: tuple[int, ...] = (4, 12)
    description: str = ""


def problem(task: ToyTask, seed: int):
    """(curvatures, optimum, start, gradient noise per step) of one seed's run, in float64."""
    rng = np.random.default_rng([7, seed])
    curv = np.logspace(0.0, -math.log10(task.condition), task.dim)
    x_star = np.random.default_rng(11).standard_normal(task.dim)
    x0 = rng.standard_normal(task.dim)
    noise = task.noise * rng.standard_normal((task.steps, task.dim))
    return curv, x_star, x0, noise


def quadratic(name: str, tag: str = "toy", **kwargs) -> ToyTask:
    """A toy task (what the registry's factory is for the "toy" entries)."""
    return ToyTask(name, tag, **kwargs)
