"""What the pool delivers: a candidate's :class:`Evaluation` and its runs' :class:`RunSummary`, plain data."""

from __future__ import annotations

import dataclasses
import math
from typing import Hashable, Mapping

LOST_WORKERS = "lost workers:"
"""How the error of a candidate that killed ``max_attempts`` workers begins."""


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """One (task, seed, lr factor) run of a candidate: plain numbers (loss curve only with ``curves=True``)."""

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
class Evaluation:
    """A candidate's result as delivered by the pool (``.fitness`` as symopt.search expects).

    ``program`` is the canonical text; ``seconds`` the training time on the worker
    (compilation excluded), ``wall_s`` the worker's whole call; ``attempts`` how many
    workers it was sent to (more than 1 after a worker died); ``error`` is set (and
    ``fitness`` NaN) when the evaluation raised or the candidate killed
    ``max_attempts`` workers.
    """

    id: Hashable
    program: str
    fitness: float
    runs: tuple[RunSummary, ...]
    seconds: float
    wall_s: float
    attempts: int
    worker: int | None
    pid: int | None
    error: str | None = None
    scores: dict = dataclasses.field(default_factory=dict)  # task -> score

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def diverged(self) -> bool:
        return any(r.diverged for r in self.runs)

    @property
    def timed_out(self) -> bool:
        return any(r.timed_out for r in self.runs)

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

