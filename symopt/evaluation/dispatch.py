"""Which evaluator trains a list of tasks: the NumPy one of the ``toy_*`` tasks, or the JAX one of the others.

The one place that decides it, for the serial backend (:func:`symopt.campaign.campaign.serial_backend`) and
the Ray evaluators (:func:`symopt.distributed.worker.evaluate_text`) alike.
"""

from __future__ import annotations

from typing import Sequence

from symopt.evaluation import toy
from symopt.evaluation.evaluator import Result, evaluate
from symopt.evaluation.fitness import Grid
from symopt.programs.program import Program


def check_grid(tasks: Sequence[str], grid: Grid) -> None:
    """A stage's grid must fit its tasks: the toy tasks score no gates."""
    if toy.all_toy(tasks) and grid.gates:
        raise ValueError(f"tasks {list(tasks)}: the NumPy toy tasks score no gates; remove gates from the stage")


def evaluate_tasks(programs: Sequence[Program], tasks: Sequence[str], seeds: Sequence[int], steps: int | None = None,
                   *, grid: Grid = Grid(), functions: Sequence[str] | None = None, time_limit: float | None = None,
                   batched: bool | int = False) -> list[Result]:
    """``programs`` trained on ``tasks``: with :func:`symopt.evaluation.toy.evaluate` when every task is a toy
    task (NumPy, no JAX; the grid, the instruction set, the time limit and batching do not apply), else with
    :func:`symopt.evaluation.evaluate` (which refuses a mix)."""
    if toy.all_toy(tasks):
        return toy.evaluate(programs, tasks, seeds, steps)
    return evaluate(programs, tasks, seeds=seeds, steps=steps, batched=batched, time_limit=time_limit, grid=grid,
                    functions=functions)
