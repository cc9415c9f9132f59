"""The pool's bookkeeping: jobs, actor slots, counters, and what counts as a lost worker (plain data)."""

from __future__ import annotations

import dataclasses
from typing import Any, Hashable


class _PoolDefault:
    def __repr__(self) -> str:
        return "POOL_DEFAULT"


POOL_DEFAULT: Any = _PoolDefault()
"""Default of the per-candidate settings: the pool's own (``steps=None`` means the task's)."""


@dataclasses.dataclass
class Job:
    """One candidate to train: its text, tasks, seeds and settings, and how many workers it was sent to."""

    id: Hashable
    program: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    steps: int | None
    time_limit: float | None
    grid: dict | None = None  # Grid.as_json(): learning-rate factors and hurdle
    functions: tuple[str, ...] | None = None  # what the stage's programs may call (None: any function)
    attempts: int = 0  # workers it has been sent to

    def args(self, curves: bool) -> tuple:
        return (self.program, self.tasks, self.seeds, self.steps, self.time_limit, curves, self.grid, self.functions)


@dataclasses.dataclass
class Slot:
    """One actor slot of the pool: the actor now in it, its jobs in flight, its restarts."""

    index: int
    actor: Any = None
    ready_ref: Any = None  # the info() call of a starting actor
    info: dict | None = None
    inflight: dict = dataclasses.field(default_factory=dict)  # ref -> Job
    started_at: float = 0.0
    generation: int = 0
    start_failures: int = 0

    @property
    def ready(self) -> bool:
        return self.actor is not None and self.info is not None


@dataclasses.dataclass
class PoolStats:
    """Counters: candidates submitted and delivered, workers lost and started, candidates re-sent."""

    submitted: int = 0
    delivered: int = 0
    errors: int = 0
    worker_deaths: int = 0
    workers_started: int = 0
    resubmitted: int = 0
    duplicates_dropped: int = 0
    recovered: int = 0  # finished on a worker that then died, delivered without re-running


def is_worker_loss(exc: BaseException) -> bool:
    """Whether a task failed because its worker (actor, process or node) is gone, not because it raised."""
    from ray import exceptions as rx

    lost = (rx.RayActorError, rx.WorkerCrashedError, rx.NodeDiedError, rx.ObjectLostError, rx.OutOfMemoryError,
            rx.ActorPlacementGroupRemoved)
    return isinstance(exc, lost)


def task_names(tasks) -> tuple[str, ...]:
    """Tasks as a tuple of names (they travel by name)."""
    if isinstance(tasks, str):
        return (tasks,)
    out = tuple(tasks)
    if not all(isinstance(t, str) for t in out):
        raise TypeError("tasks travel by name: give proxy-task names")
    return out


def seed_tuple(seeds) -> tuple[int, ...]:
    """Seeds as a non-empty tuple of ints."""
    if isinstance(seeds, int):
        return (seeds,)
    out = tuple(int(s) for s in seeds)
    if not out:
        raise ValueError("no seeds")
    return out


def ray_api():
    """Ray, imported when first needed: importing symopt.distributed does not import it."""
    import ray

    return ray
