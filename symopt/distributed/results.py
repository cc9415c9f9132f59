"""What the pool delivers: the evaluator's :class:`~symopt.evaluation.Result` as :class:`Evaluation`, with the
pool's own record of the candidate (id, worker, attempts, error); its runs as plain :class:`RunSummary` data."""

from __future__ import annotations

import dataclasses
import math
from typing import Hashable, Mapping

from symopt.evaluation import Result

LOST_WORKERS = "lost workers:"
"""How the error of a candidate that killed ``max_attempts`` workers begins."""


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """A :class:`~symopt.evaluation.Run` as plain numbers, as it travels from a worker (its loss curve
    only with ``curves=True``)."""

    task: str
    seed: int
    factor: float
    steps: int | None
    steps_run: int | None
    eval_loss: float
    reference_eval_loss: float
    score: float
    diverged: bool
    timed_out: bool
    losses: tuple[float, ...] | None = None


@dataclasses.dataclass(frozen=True)
class Evaluation(Result):
    """A candidate's :class:`~symopt.evaluation.Result` as delivered by the pool.

    ``program`` is the canonical text and ``runs`` are :class:`RunSummary`; ``seconds``
    the training time on the worker (compilation excluded), ``wall_s`` the worker's
    whole call; ``attempts`` how many workers it was sent to (more than 1 after a
    worker died); ``error`` is set (and ``fitness`` NaN) when the evaluation raised
    or the candidate killed ``max_attempts`` workers.
    """

    id: Hashable = None
    wall_s: float = math.nan
    attempts: int = 0
    worker: int | None = None
    pid: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["fitness"] = self.fitness if math.isfinite(self.fitness) else None
        return d


def evaluation(job, out: Mapping) -> Evaluation:
    runs = tuple(RunSummary(**{**r, "losses": tuple(r["losses"]) if r.get("losses") is not None else None})
                 for r in out.get("runs", ()))
    return Evaluation(id=job.id, program=out.get("program", job.program), fitness=float(out["fitness"]), runs=runs,
                      seconds=float(out.get("seconds", math.nan)), wall_s=float(out.get("wall_s", math.nan)),
                      attempts=job.attempts, worker=out.get("slot"), pid=out.get("pid"), error=out.get("error"),
                      scores=dict(out.get("scores") or {}))

