"""Regularised evolution (Real et al. 2019) over update-rule programs, with islands and restarts.

Each island holds a fixed-size population, oldest first. A step picks an
island (round robin), runs a tournament there (the best of ``tournament``
random members is the parent), mutates the parent into a child that behaves
differently (:func:`symopt.evolve.mutation.mutate`), and appends the child;
the oldest member dies. A child whose canonical hash or behaviour fingerprint
was trained before takes the cached fitness without training
(:class:`symopt.evolve.dedup.Cache`). The others need training, and the
algorithm is split at that point so that any evaluator can drive it:
:func:`propose` returns the next child to train (a :class:`Proposal`, in
flight until its result comes), :func:`accept` integrates a result. A
steady-state loop (:mod:`symopt.evolve.steady`) proposes whenever a worker is
free and accepts results in the order they finish; :func:`step` is the
batch-synchronous loop: ``batch`` proposals trained together by
``evaluate_fn(programs) -> results`` (each result a number or an object with
``.fitness``), then accepted in order.

Warm start: every island starts as ``population`` copies of the start program.
Restart: an island whose best has not improved for ``restart.patience``
children starts again from copies of the start program, the best program so
far, or each in turn. Migration: every ``migration_interval`` trained
candidates, each island's ``migrants`` best are copied into the next island.

The state (:class:`State`) is plain data and the randomness is one NumPy
Generator in it, so a seed and a deterministic ``evaluate_fn`` give the same
campaign, step for step.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from symopt.evaluation.fitness import fitness_of
from symopt.programs.liveness import dead_statements, eliminate_dead_code
from symopt.programs.program import Program
from symopt.evolve.dedup import Cache, CacheEntry, Stats
from symopt.evolve.mutation import Candidate, mutate
from symopt.config.space import CampaignConfig, SearchSpace

EvaluateFn = Callable[[Sequence[Program]], Sequence[Any]]


@dataclasses.dataclass(frozen=True)
class Individual:
    """A member of a population: a program with its fitness and lineage."""

    id: int
    candidate: Candidate
    fitness: float
    parent: int | None

    @property
    def program(self) -> Program:
        return self.candidate.program


@dataclasses.dataclass(frozen=True)
class Event:
    """One child that entered a population: trained (``cached`` False) or scored from the cache."""

    id: int
    parent: int | None
    program: str
    fitness: float
    cached: bool
    island: int
    cached_from: int | None = None

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Record:
    """A trained program: what the funnel ranks."""

    id: int
    program: Program
    fitness: float
    result: Any
    parent: int | None


@dataclasses.dataclass
class State:
    """Everything the algorithm knows; plain data."""

    islands: list[list[Individual]]
    rng: np.random.Generator
    cache: Cache
    stats: Stats
    start: Individual
    best: Individual
    next_id: int = 1
    turn: int = 0
    island_best: list[float] = dataclasses.field(default_factory=list)
    since_improvement: list[int] = dataclasses.field(default_factory=list)
    restarts: list[tuple[int, int, str]] = dataclasses.field(default_factory=list)  # (evaluated, island, source)
    migrations: int = 0
    history: list[Event] = dataclasses.field(default_factory=list)
    records: dict[int, Record] = dataclasses.field(default_factory=dict)
    inflight: dict[str, "Proposal"] = dataclasses.field(default_factory=dict)  # behaviour fingerprint -> proposal


@dataclasses.dataclass(frozen=True)
class Params:
    """The knobs of the algorithm (from the campaign configuration)."""

    space: SearchSpace
    population: int = 100
    tournament: int = 10
    islands: int = 1
    batch: int = 1
    migration_interval: int = 0
    migrants: int = 1
    restart_patience: int = 0
    restart_from: str = "alternate"

    @classmethod
    def from_config(cls, space: SearchSpace, campaign: CampaignConfig) -> "Params":
        return cls(space, campaign.population, campaign.tournament, campaign.islands, campaign.batch,
                   campaign.migration_interval, campaign.migrants, campaign.restart.patience,
                   campaign.restart.source)


def init(start: Program, params: Params, evaluate_fn: EvaluateFn, seed: int = 0,
         on_event: Callable[[Event], None] | None = None) -> State:
    """A state with every island full of copies of ``start``, which is trained once."""
    candidate = Candidate.of(start)
    (result,) = evaluate_fn([eliminate_dead_code(start)])
    fitness = fitness_of(result)
    first = Individual(0, candidate, fitness, None)
    cache, stats = Cache(), Stats(evaluated=1)
    cache.add(candidate.canonical, candidate.behaviour.fingerprint, CacheEntry(0, fitness, result))
    state = State([[first] * params.population for _ in range(params.islands)], np.random.default_rng(seed),
                  cache, stats, first, first, island_best=[fitness] * params.islands,
                  since_improvement=[0] * params.islands)
    state.records[0] = Record(0, start, fitness, result, None)
    event = Event(0, None, str(start), fitness, False, 0)
    state.history.append(event)
    if on_event:
        on_event(event)
    return state


def tournament(population: list[Individual], size: int, rng: np.random.Generator) -> Individual:
    """The fittest of ``size`` distinct random members (the first drawn wins a tie)."""
    picks = rng.choice(len(population), size=min(size, len(population)), replace=False)
    return max((population[i] for i in picks), key=lambda ind: ind.fitness)


def _add(state: State, params: Params, island: int, individual: Individual) -> None:
    population = state.islands[island]
    population.append(individual)
    del population[0]
    if individual.fitness > state.best.fitness:
        state.best = individual
    if individual.fitness > state.island_best[island]:
        state.island_best[island] = individual.fitness
        state.since_improvement[island] = 0
    else:
        state.since_improvement[island] += 1
    if params.restart_patience and state.since_improvement[island] >= params.restart_patience:
        _restart(state, params, island)


def _restart(state: State, params: Params, island: int) -> None:
    source = params.restart_from
    if source == "alternate":
        source = ("start", "best")[len(state.restarts) % 2]
    seed = state.start if source == "start" else state.best
    state.islands[island] = [seed] * params.population
    state.island_best[island] = seed.fitness
    state.since_improvement[island] = 0
    state.restarts.append((state.stats.evaluated, island, source))


def _migrate(state: State, params: Params) -> None:
    k = len(state.islands)
    leaders = [sorted(pop, key=lambda ind: -ind.fitness)[:params.migrants] for pop in state.islands]
    for i, movers in enumerate(leaders):
        target = state.islands[(i + 1) % k]
        for ind in movers:
            target.append(ind)
            del target[0]
    state.migrations += 1


@dataclasses.dataclass
class Proposal:
    """A child that needs training, with the children of the same behaviour waiting for its result."""

    island: int
    parent: Individual
    child: Candidate
    id: int
    twins: list = dataclasses.field(default_factory=list)  # (island, parent, child, id) of the waiting ones

    @property
    def program(self) -> Program:
        """What is trained: the child without its dead statements (same behaviour, less work)."""
        return eliminate_dead_code(self.child.program)


def proposed(state: State) -> int:
    """Trainings proposed so far: the trained ones plus those in flight."""
    return state.stats.evaluated + len(state.inflight)


def propose(state: State, params: Params, budget: int, max_generated: int,
            on_event: Callable[[Event], None] | None = None) -> Proposal | None:
    """The next child that needs training; None when the budget or ``max_generated`` is spent.

    Children scored from the cache (a canonical or behavioural twin of a trained one)
    enter their island at once; a twin of a child in flight waits for its result.
    The returned proposal is in flight until :func:`accept` gets its result.
    """
    stats = state.stats
    while proposed(state) < budget and stats.generated < max_generated:
        island = state.turn % len(state.islands)
        state.turn += 1
        parent = tournament(state.islands[island], params.tournament, state.rng)
        outcome = mutate(parent.candidate, params.space, state.rng)
        stats.generated += outcome.generated
        stats.invalid += outcome.invalid
        stats.unchanged += outcome.unchanged
        child = outcome.child
        if child is None:
            stats.failed += 1
            continue
        stats.children += 1
        stats.statements += len(child.program.body)
        stats.dead_statements += dead_statements(child.program)
        child_id = state.next_id
        state.next_id += 1
        hit = state.cache.lookup(child.canonical, child.behaviour.fingerprint)
        if hit is not None:
            stats.cache_hits += 1
            _enter(state, params, island, Individual(child_id, child, hit.fitness, parent.id), True, hit.id, on_event)
            continue
        twin = state.inflight.get(child.behaviour.fingerprint)
        if twin is not None:  # the same behaviour is already being trained
            stats.cache_hits += 1
            twin.twins.append((island, parent, child, child_id))
            continue
        proposal = Proposal(island, parent, child, child_id)
        state.inflight[child.behaviour.fingerprint] = proposal
        return proposal
    return None


def accept(state: State, params: Params, proposal: Proposal, result: Any,
           on_event: Callable[[Event], None] | None = None) -> None:
    """Integrate a proposal's training result: the child and its waiting twins enter their islands."""
    if state.inflight.get(proposal.child.behaviour.fingerprint) is not proposal:
        raise ValueError(f"candidate {proposal.id} is not in flight (accepted twice, or proposed by another state)")
    del state.inflight[proposal.child.behaviour.fingerprint]
    fitness = fitness_of(result)
    stats = state.stats
    stats.evaluated += 1
    child = proposal.child
    state.cache.add(child.canonical, child.behaviour.fingerprint, CacheEntry(proposal.id, fitness, result))
    state.records[proposal.id] = Record(proposal.id, child.program, fitness, result, proposal.parent.id)
    _enter(state, params, proposal.island, Individual(proposal.id, child, fitness, proposal.parent.id), False, None,
           on_event)
    for island, parent, twin, twin_id in proposal.twins:
        _enter(state, params, island, Individual(twin_id, twin, fitness, parent.id), True, proposal.id, on_event)
    if params.migration_interval and len(state.islands) > 1 and stats.evaluated % params.migration_interval == 0:
        _migrate(state, params)


def step(state: State, params: Params, evaluate_fn: EvaluateFn, budget: int, max_generated: int,
         on_event: Callable[[Event], None] | None = None) -> bool:
    """One batch: up to ``batch`` proposals, trained together, accepted in order. False when the budget is spent."""
    pending = []
    while len(pending) < params.batch:
        proposal = propose(state, params, budget, max_generated, on_event)
        if proposal is None:
            break
        pending.append(proposal)
    if pending:
        results = evaluate_fn([p.program for p in pending])
        if len(results) != len(pending):
            raise ValueError(f"evaluate_fn returned {len(results)} results for {len(pending)} programs")
        for p, result in zip(pending, results):
            accept(state, params, p, result, on_event)
    return state.stats.evaluated < budget and state.stats.generated < max_generated


def _enter(state: State, params: Params, island: int, ind: Individual, cached: bool, source: int | None,
           on_event) -> None:
    _add(state, params, island, ind)
    event = Event(ind.id, ind.parent, str(ind.program), ind.fitness, cached, island, source)
    state.history.append(event)
    if on_event:
        on_event(event)


def run(state: State, params: Params, evaluate_fn: EvaluateFn, budget: int, max_generated: int | None = None,
        on_event: Callable[[Event], None] | None = None) -> State:
    """Evolve until ``budget`` candidates have been trained (or ``max_generated`` mutation steps)."""
    max_generated = max_generated or 100 * budget
    while step(state, params, evaluate_fn, budget, max_generated, on_event):
        pass
    return state
