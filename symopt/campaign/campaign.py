"""The search as one call: ``search(config) -> Campaign``.

    import symopt
    campaign = symopt.search("search_spaces/quick.toml", budget=200, seed=0)
    campaign.hall_of_fame[0].simplified      # the best program, simplified
    campaign.stats.cache_hits, campaign.stats.evaluated

The configuration (a TOML path, a name in ``search_spaces/``, or a dict) gives
the space and the campaign; ``budget`` and ``seed`` override it. The search
runs regularised evolution on the first funnel stage, pushes the leaders
through the later stages, ranks the hall of fame on the validation tasks and
simplifies it. The start program goes through the same stages as a reference.

``backend`` says how candidates are trained: ``"serial"`` (in this process:
:func:`symopt.evaluation.evaluate` for proxy tasks, :func:`symopt.evaluation.toy.evaluate`
for the ``toy_*`` tasks) or a callable ``backend(tasks, seeds, steps, grid, functions) ->
evaluate_fn`` (``grid``: the stage's learning-rate factors and hurdle; ``functions``: what
the campaign's programs can call, :func:`campaign_functions`, so that the executables
compile only those opcodes), where
``evaluate_fn(programs)`` returns one result (a number or an object with
``.fitness``) per program. The search stage runs steady-state
(:mod:`symopt.evolve.steady`): an ``evaluate_fn`` that is also an asynchronous
evaluator (``capacity``, ``submit``, ``next_result``; the Ray pool's
:meth:`~symopt.distributed.EvaluatorPool.backend`) gets a child whenever it has
room; a plain one trains ``batch`` children at a time.

With ``run_dir``, the campaign keeps its log, lineage, population snapshots and
hall of fame there (:mod:`symopt.storage.run_dir`). Resume by replay:
``search(..., run_dir=D, resume=True)`` on a run directory whose log exists
restarts the campaign with the same configuration and seed (a different one is
an error; a larger budget continues the campaign past its old end) and replays
the log (see :mod:`symopt.evolve.steady` for the search stage; on the funnel
stages and validation a program logged there takes its logged fitness); only
what is not logged is trained and appended. With a deterministic backend (the serial one) the resumed
campaign ends in the state of one never killed. A torn last line (a kill in the
middle of a write) is dropped with a warning. Without ``resume`` an existing
non-empty log is an error (it is never overwritten). A replayed candidate's
result (``state.records[id].result``, the funnel entries' ``results``) is its
logged fitness, a number, not the backend's result object.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import time
from typing import Any, Callable, Collection, Iterable, Mapping, Sequence

import jax

from symopt.evaluation.dispatch import check_grid, evaluate_tasks
from symopt.evaluation.evaluator import DEFAULT_BATCH
from symopt.evaluation.fitness import Grid, fitness_of
from symopt.programs.checker import calls
from symopt.programs.liveness import eliminate_dead_code
from symopt.programs.program import Program
from symopt.evolve import evolution, steady
from symopt.campaign import funnel
from symopt.evolve.dedup import Stats
from symopt.storage.records import CheckPoint, HallOfFameEntry
from symopt.storage.run_log import Lineage, Log, config_json, write_hall_of_fame, write_meta_validation
from symopt.config.space import Config, check_tasks, load, stage_name
from symopt.config.start import start_program
from symopt.symbolic.simplify import simplify

Backend = Callable[[Sequence[str], Sequence[int], int | None, Grid, Collection[str] | None],
                   Callable[[Sequence[Program]], Sequence[Any]]]


@dataclasses.dataclass
class Campaign:
    """The outcome of :func:`search`."""

    config: Config
    hall_of_fame: list[HallOfFameEntry]
    reference: HallOfFameEntry
    stats: Stats
    history: list[evolution.Event]
    state: evolution.State
    seconds: float
    """Wall time: this call's, and on resume that of the earlier calls on the run directory that finished
    (a call killed before writing hall_of_fame.json records none)."""
    run_dir: pathlib.Path | None = None
    replayed: int = 0
    """Trainings taken from the log of a resumed run instead of being run again."""

    @property
    def best(self) -> evolution.Individual:
        """The best individual of the search stage (before the funnel)."""
        return self.state.best

    def summary(self) -> str:
        s = self.stats
        lines = [f"campaign {self.config.name}: {s.evaluated} trained, {s.children} children, "
                 f"{s.generated} mutation steps ({s.invalid} invalid, {s.unchanged} unchanged), "
                 f"cache hits {s.cache_hits} ({s.cache_hit_rate:.0%} of children), "
                 f"dead statements {s.dead_fraction:.0%}, {self.seconds:.0f} s",
                 f"reference (start program): {_scores(self.reference)}"]
        for rank, e in enumerate(self.hall_of_fame, 1):
            lines.append(f"#{rank} id {e.id}: {_scores(e)}")
            lines += ["    " + line for line in str(e.simplified).splitlines()]
        return "\n".join(lines)


def meta_validation_point(trained: int, best: float, stages: Sequence[str], entries) -> CheckPoint:
    """One point of the meta-validation curve (the Lion paper's): after ``trained`` trainings, the best
    fitness on each stage so far, and on validation the funnel's pick (the best on the last stage that
    was validated) and the best of any candidate validated."""
    entries = list(entries)
    bests: dict[str, float | None] = {stages[0]: best}
    for stage in stages[1:]:
        bests[stage] = max((e.fitness[stage] for e in entries if stage in e.fitness), default=None)
    validated = [e for e in entries if e.validation is not None]
    pick = max(validated, key=lambda e: (e.score(stages[-1]), -e.id), default=None)
    return CheckPoint(trained, bests, pick.id if pick else None, pick.validation if pick else None,
                      max((e.validation for e in validated), default=None))


def _scores(e: HallOfFameEntry) -> str:
    parts = [f"{k} {v:+.3f}" for k, v in e.fitness.items()]
    if e.validation is not None:
        parts.append(f"validation {e.validation:+.3f}")
    return ", ".join(parts)


def serial_backend(tasks: Sequence[str], seeds: Sequence[int], steps: int | None, grid: Grid = Grid(),
                   functions: Sequence[str] | None = None):
    """Train in this process: the toy tasks with NumPy, the proxy tasks with symopt.evaluation (on the
    learning-rate grid, on executables of the instruction set of ``functions``)."""
    tasks, seeds = list(tasks), tuple(seeds)
    check_grid(tasks, grid)

    def evaluate_fn(programs):
        programs = list(programs)
        return evaluate_tasks(programs, tasks, seeds, steps or None, grid=grid, functions=functions,
                              batched=_batch(len(programs)))

    return evaluate_fn


def _batch(n: int) -> int | bool:
    """How the serial backend batches ``n`` candidates: on a CPU one at a time, on the executables that the
    search stage and the Ray evaluators train on (K programs in one call train no faster there, and each new K
    compiles every task again); elsewhere in batches of a fixed size."""
    if n < 2 or jax.default_backend() == "cpu":
        return False
    return DEFAULT_BATCH


BACKENDS: dict[str, Backend] = {"serial": serial_backend}


def resolve_backend(backend: str | Backend) -> Backend:
    """A backend by name (:data:`BACKENDS`), or the callable given."""
    make = BACKENDS.get(backend) if isinstance(backend, str) else backend
    if make is None:
        raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)} or a callable")
    return make


def stage_evaluator(campaign, stage, make: Backend, functions: Collection[str] | None = None):
    """The evaluator of one stage of a campaign configuration: its tasks, its seeds (else the campaign's), its
    steps (else each task's) and its learning-rate grid; programs that call only ``functions`` (None: any)."""
    return make(stage.tasks, stage.seeds or campaign.seeds, stage.steps or None, stage.grid, functions)


def validator(campaign, make: Backend, functions: Collection[str] | None = None):
    """The validation evaluator of a campaign configuration: its validation tasks, every seed, the first stage's
    learning-rate grid (no hurdle); None when it has no validation tasks."""
    if not campaign.validation:
        return None
    return make(campaign.validation, campaign.seeds, None, Grid(campaign.stages[0].lr_factors), functions)


def campaign_functions(cfg: Config, start: Program) -> frozenset[str] | None:
    """The functions whose opcodes a campaign's executables hold (:func:`executable_functions`): those its
    programs can call, its space's and its start's (mutation writes no others)."""
    return executable_functions(frozenset(cfg.space.functions) | calls(start))


@functools.lru_cache(maxsize=1)
def _quick_functions() -> frozenset[str]:
    space = load("quick").space
    return frozenset(space.functions) | calls(start_program(load("quick").campaign.start, space))


def programs_functions(programs: Iterable[Program]) -> frozenset[str] | None:
    """:func:`executable_functions` of what ``programs`` call: the ``functions=`` to train them together with."""
    return executable_functions(frozenset().union(*(calls(p) for p in programs)))


def executable_functions(functions: Collection[str]) -> frozenset[str] | None:
    """The ``functions=`` to train programs that call ``functions`` with: ``quick.toml``'s space and start when
    they hold them, else None (every opcode). Two sets, so that campaigns, reports and comparisons share their
    executables (in a process and in the compilation cache), each compiling a fraction of the opcodes."""
    return _quick_functions() if frozenset(functions) <= _quick_functions() else None


def search(config: str | os.PathLike | Mapping | Config, *, budget: int | None = None, seed: int | None = None,
           backend: str | Backend = "serial", run_dir: str | os.PathLike | None = None, resume: bool = False,
           progress: Callable[[evolution.State, int], None] | None = None,
           on_check: Callable[[CheckPoint], None] | None = None) -> Campaign:
    """Search for an update rule; see the module docstring.

    Args:
        config: a TOML file, a name in ``search_spaces/`` (``"quick"``), a dict, or a Config.
        budget: candidates to train on the first stage (default: the config's).
        seed: seed of the search (default: the config's ``campaign.seed``).
        backend: ``"serial"`` or a callable ``backend(tasks, seeds, steps, grid) -> evaluate_fn``.
        run_dir: the run directory (log, lineage, snapshots, hall of fame; :mod:`symopt.storage.run_dir`).
        resume: continue the run logged in ``run_dir`` by replaying it (see the module docstring).
        progress: called as ``progress(state, replayed)`` after each training accepted on the search stage.
        on_check: called with each point of the meta-validation curve (a
            :class:`~symopt.storage.records.CheckPoint`, :func:`meta_validation_point`) as the funnel check that
            made it ends: every ``campaign.check_interval`` trainings and at the end.
    """
    t0 = time.perf_counter()
    cfg = load(config)
    changes = {k: v for k, v in (("budget", budget), ("seed", seed)) if v is not None}
    cfg = cfg.replace_campaign(**changes)
    check_tasks(cfg)  # the user's own tasks train, before any worker is asked to
    make = resolve_backend(backend)
    run_path = pathlib.Path(run_dir) if run_dir is not None else None
    run = CampaignRun(cfg, run_path, progress, on_check)
    log = Log(run_path, config_json(cfg), resume)  # locks the run directory until log.close()
    lineage = None
    try:
        lineage = Lineage(run_path, cfg.campaign.budget)
        run.open(make, log, lineage)
        state = run.evolve()
        campaign = run.finish(state, t0)
    finally:
        if lineage is not None:
            lineage.close(check=False)  # closed already unless the campaign failed: its own error is reported
        log.close()
    return campaign


class CampaignRun:
    """The phases of one :func:`search` call, each a method: the stages' evaluators on the run's writers
    (:meth:`open`), the search stage (:meth:`evolve`, with a funnel check every ``check_interval`` trainings,
    :meth:`check`), then the funnel's last check, the reference and the simplified hall of fame
    (:meth:`finish`). It holds what they share: the configuration, the evaluators, the run's log and lineage,
    and everything the funnel has scored.

    Args:
        cfg: the configuration, overrides applied.
        run_path: the run directory, or None.
        progress, on_check: as :func:`search`'s.
    """

    def __init__(self, cfg: Config, run_path: pathlib.Path | None = None,
                 progress: Callable[[evolution.State, int], None] | None = None,
                 on_check: Callable[[CheckPoint], None] | None = None):
        c = cfg.campaign
        self.cfg, self.c, self.run_path = cfg, c, run_path
        self.progress, self.on_check = progress, on_check
        self.names = [stage_name(c, i) for i in range(len(c.stages))]
        self.start = start_program(c.start, cfg.space)
        self.params = evolution.Params.from_config(cfg.space, c)
        self.entries: dict[int, funnel.Entry] = {}  # everything the funnel has scored, kept across checks
        self.curve: list[CheckPoint] = []

    def open(self, make: Backend, log: Log, lineage: Lineage) -> None:
        """Each stage's evaluator and validation's on the backend ``make`` (:func:`resolve_backend`), replaying
        what ``log`` holds; ``log`` and ``lineage`` are the run's writers (:mod:`symopt.storage.run_log`), which
        the caller opens and closes."""
        c, self.log, self.lineage = self.c, log, lineage
        functions = campaign_functions(self.cfg, self.start)
        self.evaluators = [stage_evaluator(c, st, make, functions) for st in c.stages]
        self.validate = validator(c, make, functions)
        self.stages = [(self.names[i], st.promote, self._trimmed(log.replaying(self.names[i], self.evaluators[i])))
                       for i, st in enumerate(c.stages[1:], 1)]
        self.validate_fn = self._trimmed(log.replaying("validation", self.validate)) if self.validate else None

    @staticmethod
    def _trimmed(evaluate):
        """Train the dead-code-free program: same behaviour, fewer statements."""
        return lambda programs: evaluate([eliminate_dead_code(p) for p in programs])

    def on_result(self, stage: str, entry: funnel.Entry, result) -> None:
        """A funnel stage or validation trained ``entry``: logged."""
        self.log.write(entry.id, None, entry.program, result, stage)

    def check(self, state: evolution.State) -> list[funnel.Entry]:
        """The funnel on the leaders so far (what earlier checks scored is kept); a point of the curve."""
        return self._check(state, ())[0]

    def _check(self, state: evolution.State, riders: Sequence[Program]) -> tuple[list[funnel.Entry], dict[str, list]]:
        """:meth:`check`, with ``riders`` trained on each stage and on validation in the same call as the entries
        (so that the workers share them out); their results by stage, outside the funnel, come back beside the
        hall of fame (a stage that trained nothing at this check is missing)."""
        names = self.names
        for r in state.records.values():
            self.entries.setdefault(r.id, funnel.Entry(r.id, r.program, {names[0]: r.fitness}))
        ridden: dict[str, list] = {}

        def riding(stage: str, evaluate):
            if not riders:
                return evaluate

            def both(programs):
                results = evaluate(list(programs) + list(riders))
                ridden[stage] = results[len(programs):]
                return results[:len(programs)]
            return both

        stages = [(name, promote, riding(name, evaluate)) for name, promote, evaluate in self.stages]
        validate = self.validate_fn and riding("validation", self.validate_fn)
        hall, _ = funnel.run(list(self.entries.values()), stages, self.c.hall_of_fame, validate,
                             first=names[0], on_result=self.on_result)
        self.curve.append(meta_validation_point(state.stats.evaluated, state.best.fitness, names,
                                                self.entries.values()))
        if self.run_path is not None:
            write_meta_validation(self.run_path, self.curve)
        if self.on_check:
            self.on_check(self.curve[-1])
        return hall, ridden

    def on_accept(self, state: evolution.State) -> None:
        """A training accepted on the search stage: the lineage, a funnel check when one is due, progress."""
        self.lineage.accepted(state)
        n, c = state.stats.evaluated, self.c
        if c.check_interval and n % c.check_interval == 0 and n < c.budget:  # once: one call per accept
            self.check(state)
        if self.progress:
            self.progress(state, self.log.replayed)

    def on_trained(self, p: evolution.Proposal, result, proposed: int) -> None:
        """A child trained on the search stage: logged (fsynced with the others that arrived with it)."""
        self.log.write(p.id, p.parent.id, p.child.program, result, self.names[0], proposed, sync=False)

    def evolve(self) -> evolution.State:
        """The search stage, steady-state, to the budget: the start program first, then children."""
        c, log, names = self.c, self.log, self.names
        state = evolution.init(self.start, self.params, log.replaying(names[0], self.evaluators[0], first=1), c.seed,
                               self.lineage.event)
        log.write(0, None, self.start, state.records[0].result, names[0])
        max_generated = c.max_generated or 100 * c.budget  # as evolution.run
        steady.evolve(state, self.params, steady.as_async(self.evaluators[0], self.params.batch), c.budget,
                      max_generated, replay=log.take(names[0]), on_trained=self.on_trained,
                      on_event=self.lineage.event, on_accept=self.on_accept, on_arrived=log.sync)
        self.lineage.accepted(state, final=True)
        if self.progress:
            self.progress(state, log.replayed)
        return state

    def finish(self, state: evolution.State, t0: float) -> Campaign:
        """The funnel's last check, the start program through every stage, the hall of fame simplified and
        written: the campaign (its wall time from ``t0``, a ``time.perf_counter()``, and the earlier calls')."""
        c, names, start = self.c, self.names, self.start
        hall, done = self._check(state, [start])  # the reference rides along where the funnel trains
        reference = funnel.Entry(0, start, {names[0]: state.start.fitness})
        for i in range(1, len(c.stages)):
            reference.fitness[names[i]] = fitness_of((done.get(names[i]) or self.evaluators[i]([start]))[0])
        if self.validate:
            reference.validation = fitness_of((done.get("validation") or self.validate([start]))[0])
        self.lineage.close()
        hof = [HallOfFameEntry(e.id, e.program, simplify(e.program, c.simplify_timeout), dict(e.fitness),
                               e.validation) for e in hall]
        ref = HallOfFameEntry(0, start, simplify(start, c.simplify_timeout), dict(reference.fitness),
                              reference.validation)
        campaign = Campaign(self.cfg, hof, ref, state.stats, state.history, state,
                            self.log.earlier_seconds + time.perf_counter() - t0, self.run_path, self.log.replayed)
        if self.run_path is not None:
            write_hall_of_fame(self.run_path, campaign)
        return campaign
