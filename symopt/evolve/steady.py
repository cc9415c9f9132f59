"""The steady-state search loop: propose a child whenever a worker is free, accept each result as it arrives.

No worker waits for a generation to end: the evaluator says how many more
candidates it would start now (``capacity``), the loop fills that with
:func:`symopt.evolve.evolution.propose`, and integrates results one by one, in
the order they finish, with :func:`symopt.evolve.evolution.accept`.

An evaluator is anything with ``capacity``, ``submit(key, program)`` and
``next_result() -> (key, result)`` (:class:`AsyncEvaluator`): the Ray pool's
stages are (:meth:`symopt.distributed.EvaluatorPool.backend`); a plain
``evaluate_fn(programs) -> results`` becomes one with :class:`Batches`, which
trains ``batch`` candidates together and then hands their results out in order,
exactly as :func:`symopt.evolve.evolution.step` does.

Replay (resume): every training is logged with ``proposed``, the number of
trainings proposed when its result was accepted. Proposing up to that count
before accepting each logged result rebuilds the campaign's state, whatever the
order in which a cluster finished them; the children proposed but not logged
(in flight when the driver died) are trained first, before anything new is
proposed, so a serial campaign resumes into the very state of one never killed.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any, Callable, Hashable, Iterable, Protocol, Sequence

from symopt.programs.program import Program
from symopt.evolve import evolution


class AsyncEvaluator(Protocol):
    """Trains candidates in the background; results come back in completion order."""

    @property
    def capacity(self) -> int:
        """How many more candidates would start right now."""

    def submit(self, key: Hashable, program: Program) -> None:
        """Start training ``program``; its result comes back under ``key``."""

    def next_result(self) -> tuple[Hashable, Any]:
        """Wait for the next finished candidate: ``(key, result)``."""

    # Optional: ``poll() -> (key, result) | None``, a finished candidate without waiting. The loop
    # takes every result that has arrived before it uses any, so they are logged with one fsync.


class Batches:
    """An :class:`AsyncEvaluator` over ``evaluate_fn(programs)``: ``batch`` candidates trained at once.

    Room for new candidates opens only when the previous batch's results have all
    been handed out, so the search sees exactly :func:`evolution.step`'s sequence.
    """

    def __init__(self, evaluate_fn: Callable[[Sequence[Program]], Sequence[Any]], batch: int = 1):
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        self.evaluate_fn, self.batch = evaluate_fn, int(batch)
        self._queue: list[tuple[Hashable, Program]] = []
        self._done: collections.deque = collections.deque()

    @property
    def capacity(self) -> int:
        return 0 if self._done else max(0, self.batch - len(self._queue))

    def submit(self, key: Hashable, program: Program) -> None:
        self._queue.append((key, program))

    def next_result(self) -> tuple[Hashable, Any]:
        if not self._done:
            if not self._queue:
                raise RuntimeError("next_result() with nothing submitted")
            keys, programs = zip(*self._queue)
            self._queue = []
            results = self.evaluate_fn(list(programs))
            if len(results) != len(keys):
                raise ValueError(f"evaluate_fn returned {len(results)} results for {len(keys)} programs")
            self._done.extend(zip(keys, results))
        return self._done.popleft()

    def poll(self) -> tuple[Hashable, Any] | None:
        """The rest of the batch trained last, one at a time; None when it has all been handed out."""
        return self._done.popleft() if self._done else None


def as_async(evaluate: Any, batch: int = 1) -> AsyncEvaluator:
    """``evaluate`` itself when it is an :class:`AsyncEvaluator`, else :class:`Batches` over it."""
    if all(hasattr(evaluate, name) for name in ("capacity", "submit", "next_result")):
        return evaluate
    return Batches(evaluate, batch)


@dataclasses.dataclass(frozen=True)
class Logged:
    """A training read back from a campaign's log, to be replayed."""

    id: int
    program: str
    fitness: float
    proposed: int


class ReplayError(ValueError):
    """The log does not match the campaign being resumed."""


def evolve(state: evolution.State, params: evolution.Params, evaluator: AsyncEvaluator, budget: int,
           max_generated: int, *, replay: Iterable[Logged] = (),
           on_trained: Callable[[evolution.Proposal, Any, int], None] | None = None,
           on_event: Callable[[evolution.Event], None] | None = None,
           on_accept: Callable[[evolution.State], None] | None = None,
           on_arrived: Callable[[], None] | None = None) -> evolution.State:
    """Evolve until ``budget`` candidates are trained (or ``max_generated`` mutation steps are spent).

    ``replay`` first (logged results, in log order, not trained again), then live.
    ``on_trained(proposal, result, proposed)`` sees each live result before the
    search uses it (the place to log it); the results that arrived together (one,
    or all that the evaluator's ``poll`` has ready) each go to ``on_trained``, then
    ``on_arrived()`` runs once (the place to make them durable: a group commit),
    then they are accepted. ``on_event`` sees every child that enters a population;
    ``on_accept(state)`` runs after each accepted result.
    """
    waiting: dict[int, evolution.Proposal] = {}

    def propose() -> evolution.Proposal | None:
        return evolution.propose(state, params, budget, max_generated, on_event)

    for record in replay:
        while evolution.proposed(state) < record.proposed:
            proposal = propose()
            if proposal is None:
                raise ReplayError(f"the log's training of id {record.id} came after {record.proposed} proposals, "
                                  f"but this campaign proposes only {evolution.proposed(state)}; the log belongs "
                                  f"to another run")
            waiting[proposal.id] = proposal
        proposal = waiting.pop(record.id, None)
        if proposal is None or str(proposal.child.program) != record.program:
            raise ReplayError(f"the log's id {record.id} is not a candidate this campaign has in flight at that "
                              f"point (or it is another program); the log belongs to another run")
        evolution.accept(state, params, proposal, record.fitness, on_event)
        if on_accept:
            on_accept(state)

    in_flight: dict[int, evolution.Proposal] = {}
    for proposal in sorted(waiting.values(), key=lambda p: p.id):  # lost with the driver: train them again
        evaluator.submit(proposal.id, proposal.program)
        in_flight[proposal.id] = proposal
    resuming = bool(in_flight)
    poll = getattr(evaluator, "poll", None)
    while True:
        while not resuming and evaluator.capacity > 0:
            proposal = propose()
            if proposal is None:
                break
            evaluator.submit(proposal.id, proposal.program)
            in_flight[proposal.id] = proposal
        if not in_flight:
            return state
        arrived = [evaluator.next_result()]
        while poll is not None and (more := poll()) is not None:
            arrived.append(more)
        arrived = [(in_flight.pop(key), result) for key, result in arrived]
        if on_trained:
            proposed = evolution.proposed(state)
            for proposal, result in arrived:
                on_trained(proposal, result, proposed)
        if on_arrived:
            on_arrived()
        for proposal, result in arrived:
            evolution.accept(state, params, proposal, result, on_event)
            if on_accept:
                on_accept(state)
        resuming = resuming and bool(in_flight)
