"""A campaign stage on the pool: what ``symopt.search`` calls a backend (:meth:`EvaluatorPool.backend`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Hashable, Sequence

from symopt.distributed.results import LOST_WORKERS, Evaluation
from symopt.programs.program import Program

if TYPE_CHECKING:
    from symopt.distributed.pool import EvaluatorPool
    from symopt.evaluation.fitness import Grid

logger = logging.getLogger(__name__)

class PoolStage:
    """One campaign stage on the pool: a batch ``evaluate_fn`` and a steady-state evaluator in one.

    ``stage(programs)`` trains a batch and returns its results in order (the funnel
    stages); ``capacity``/``submit``/``next_result`` are the asynchronous interface of
    :mod:`symopt.evolve.steady` (the search stage). ``steps=None`` means each task's
    own steps, never the pool's. A candidate that raised comes back as an error
    (RuntimeError, as the serial backend would raise); one that killed
    ``max_attempts`` workers is scored as diverged (NaN fitness), with a warning.
    """

    def __init__(self, pool: EvaluatorPool, tag: int, tasks: tuple[str, ...], seeds: tuple[int, ...],
                 steps: int | None, grid: Grid | None = None, functions: Sequence[str] | None = None):
        self.pool, self.tag, self.tasks, self.seeds, self.steps, self.grid = pool, tag, tasks, seeds, steps, grid
        self.functions = functions

    def __call__(self, programs: Sequence[Any]) -> list[Evaluation]:
        return self.pool.evaluate([program_text(p) for p in programs], self.tasks, self.seeds, self.steps,
                                  grid=self.grid, functions=self.functions)

    @property
    def capacity(self) -> int:
        return self.pool.capacity

    def submit(self, key: Hashable, program: Any) -> None:
        self.pool.submit(("symopt.distributed.stage", self.tag, key), program, tasks=self.tasks, seeds=self.seeds,
                         steps=self.steps, grid=self.grid, functions=self.functions)

    def next_result(self) -> tuple[Hashable, Evaluation]:
        ev = self.pool.next_result()
        if ev is None:
            raise RuntimeError("next_result() with nothing submitted to the pool")
        return self._delivered(ev)

    def poll(self) -> tuple[Hashable, Evaluation] | None:
        """A candidate that has finished already, or None (does not wait)."""
        ev = self.pool.next_result(timeout=0)
        return None if ev is None else self._delivered(ev)

    def _delivered(self, ev: Evaluation) -> tuple[Hashable, Evaluation]:
        kind, tag, key = ev.id if isinstance(ev.id, tuple) and len(ev.id) == 3 else (None, None, ev.id)
        if (kind, tag) != ("symopt.distributed.stage", self.tag):
            raise RuntimeError(f"the pool delivered {ev.id!r}, which this stage did not submit; run one stage "
                               f"at a time on a pool")
        if ev.error is not None:
            if not ev.error.startswith(LOST_WORKERS):
                raise RuntimeError(f"evaluation of candidate {key!r} failed:\n{ev.error}")
            logger.warning("candidate %r: %s; scored as diverged", key, ev.error)
        return key, ev


def program_text(program: Any) -> str:
    if isinstance(program, Program):
        return str(program)
    if isinstance(program, str):
        return program
    raise TypeError(f"a program is a Program or its text, got {type(program).__name__}")

