"""Test doubles: evaluators that behave as a cluster does, on the real NumPy toy tasks."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from symopt.programs.program import Program
from symopt.evaluation import Result
from symopt.evaluation.toy import evaluate


class Shuffled:
    """A toy-task evaluator that finishes its candidates in a seeded random order, as a cluster does.

    An asynchronous evaluator (:class:`symopt.evolve.steady.AsyncEvaluator`) with
    ``width`` candidates in flight, and a batch ``evaluate_fn`` (in order) for the
    funnel stages; ``backend=lambda t, s, n, grid: Shuffled(t, s, n)`` plugs it into a search.
    """

    def __init__(self, tasks: Sequence[str], seeds: Sequence[int] = (0,), steps: int | None = None,
                 width: int = 3, seed: int = 0):
        self.tasks, self.seeds, self.steps, self.width = list(tasks), list(seeds), steps, width
        self.running: list = []
        self.most = 0  # the most candidates in flight at once
        self.rng = np.random.default_rng(seed)

    def __call__(self, programs: Sequence[Program]) -> list[Result]:
        return evaluate(programs, self.tasks, self.seeds, self.steps)

    @property
    def capacity(self) -> int:
        return self.width - len(self.running)

    def submit(self, key, program: Program) -> None:
        self.running.append((key, program))
        self.most = max(self.most, len(self.running))

    def next_result(self):
        key, program = self.running.pop(int(self.rng.integers(len(self.running))))
        return key, self([program])[0]


# A campaign on the toy tasks as the command line reads it (symopt search FILE.toml --serial): two funnel
# stages and validation, trained in seconds.
TOY_TOML = """name = "tiny"
[space]
functions = ["+", "-", "*", "/", "sqrt", "square", "sign", "interpolate", "abs"]
max_length = 10
[campaign]
start = "sgd"
population = 12
tournament = 4
budget = 600
hall_of_fame = 3
validation = ["toy_quadratic_noisy"]
[[campaign.stages]]
name = "small"
tasks = ["toy_quadratic"]
[[campaign.stages]]
name = "large"
tasks = ["toy_quadratic_large"]
promote = 6
"""
