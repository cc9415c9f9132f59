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
:func:`symopt.evaluation.evaluate` for proxy tasks, :func:`symopt.search.toy.evaluate`
for the ``toy_*`` tasks) or a callable ``backend(tasks, seeds, steps) ->
evaluate_fn``, where ``evaluate_fn(programs)`` returns one result (a number or
an object with ``.fitness``) per program. With ``run_dir``, every training is
appended to ``run_dir/evaluations.jsonl`` (flushed and fsynced) as one JSON
object: ``id``, ``parent``, ``program`` (text), ``fitness``, ``stage``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import pathlib
import time
from typing import Any, Callable, Mapping, Sequence

from symopt.programs.program import Program
from symopt.search import evolution, funnel, toy
from symopt.search.dedup import Stats
from symopt.search.space import Config, load, stage_name, start_program
from symopt.symbolic.simplify import eliminate_dead_code, simplify

Backend = Callable[[Sequence[str], Sequence[int], int | None], Callable[[Sequence[Program]], Sequence[Any]]]


@dataclasses.dataclass
class HallOfFameEntry:
    """A program that survived the funnel: as found, simplified, and its fitness on each stage."""

    id: int
    program: Program
    simplified: Program
    fitness: dict[str, float]
    validation: float | None

    def as_json(self) -> dict:
        return {"id": self.id, "program": str(self.program), "simplified": str(self.simplified),
                "fitness": self.fitness, "validation": self.validation}


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
    run_dir: pathlib.Path | None = None

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


def _scores(e: HallOfFameEntry) -> str:
    parts = [f"{k} {v:+.3f}" for k, v in e.fitness.items()]
    if e.validation is not None:
        parts.append(f"validation {e.validation:+.3f}")
    return ", ".join(parts)


def serial_backend(tasks: Sequence[str], seeds: Sequence[int], steps: int | None):
    """Train in this process: the toy tasks with NumPy, the proxy tasks with symopt.evaluation."""
    tasks, seeds = list(tasks), tuple(seeds)
    is_toy = [t in toy.TASKS for t in tasks]
    if all(is_toy):
        return lambda programs: toy.evaluate(programs, tasks, seeds, steps)
    if any(is_toy):
        raise ValueError(f"tasks {tasks}: a stage cannot mix toy_* tasks with proxy tasks")
    from symopt.evaluation import evaluate

    kwargs = {}
    if steps:
        if "steps" not in inspect.signature(evaluate).parameters:
            raise ValueError("symopt.evaluation.evaluate takes no 'steps'; remove steps from the stage")
        kwargs["steps"] = steps

    def evaluate_fn(programs):
        programs = list(programs)
        # several candidates at once train together (the model's gradient batched over them)
        return evaluate(programs, tasks, seeds=seeds, batched=len(programs) if len(programs) > 1 else False,
                        **kwargs)

    return evaluate_fn


BACKENDS: dict[str, Backend] = {"serial": serial_backend}


class _Log:
    """Appends one JSON line per training to run_dir/evaluations.jsonl, flushed and fsynced."""

    def __init__(self, run_dir: pathlib.Path | None):
        self.file = None
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            self.file = open(run_dir / "evaluations.jsonl", "a", encoding="utf-8")

    def write(self, id: int, parent: int | None, program: Program | str, fitness: float, stage: str) -> None:
        if self.file is None:
            return
        record = {"id": id, "parent": parent, "program": str(program),
                  "fitness": fitness if math.isfinite(fitness) else None, "stage": stage}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def search(config: str | os.PathLike | Mapping | Config, *, budget: int | None = None, seed: int | None = None,
           backend: str | Backend = "serial", run_dir: str | os.PathLike | None = None) -> Campaign:
    """Search for an update rule; see the module docstring.

    Args:
        config: a TOML file, a name in ``search_spaces/`` (``"quick"``), a dict, or a Config.
        budget: candidates to train on the first stage (default: the config's).
        seed: seed of the search (default: the config's ``campaign.seed``).
        backend: ``"serial"`` or a callable ``backend(tasks, seeds, steps) -> evaluate_fn``.
        run_dir: where to append ``evaluations.jsonl``.
    """
    t0 = time.perf_counter()
    cfg = load(config)
    changes = {k: v for k, v in (("budget", budget), ("seed", seed)) if v is not None}
    cfg = cfg.replace_campaign(**changes)
    c = cfg.campaign
    make = BACKENDS.get(backend) if isinstance(backend, str) else backend
    if make is None:
        raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)} or a callable")
    names = [stage_name(c, i) for i in range(len(c.stages))]
    evaluators = [make(st.tasks, st.seeds or c.seeds, st.steps or None) for st in c.stages]
    validate = make(c.validation, c.seeds, None) if c.validation else None

    start = start_program(c.start, cfg.space)
    params = evolution.Params.from_config(cfg.space, c)
    log = _Log(pathlib.Path(run_dir) if run_dir is not None else None)
    try:
        def on_event(e: evolution.Event) -> None:
            log.write(e.id, e.parent, e.program, e.fitness, names[0])

        state = evolution.init(start, params, evaluators[0], c.seed, on_event)
        evolution.run(state, params, evaluators[0], c.budget, c.max_generated or None, on_event)

        def on_result(stage: str, entry: funnel.Entry, result) -> None:
            log.write(entry.id, None, entry.program, evolution.fitness_of(result), stage)

        def trimmed(evaluate):  # train the dead-code-free program: same behaviour, fewer statements
            return lambda programs: evaluate([eliminate_dead_code(p) for p in programs])

        entries = [funnel.Entry(r.id, r.program, {names[0]: r.fitness}) for r in state.records.values()]
        stages = [(names[i], st.promote, trimmed(evaluators[i])) for i, st in enumerate(c.stages[1:], 1)]
        hall, _ = funnel.run(entries, stages, c.hall_of_fame, trimmed(validate) if validate else None,
                             first=names[0], on_result=on_result)
        reference = funnel.Entry(0, start, {names[0]: state.start.fitness})
        for i in range(1, len(c.stages)):
            reference.fitness[names[i]] = evolution.fitness_of(evaluators[i]([start])[0])
        if validate:
            reference.validation = evolution.fitness_of(validate([start])[0])
    finally:
        log.close()
    hof = [HallOfFameEntry(e.id, e.program, simplify(e.program, c.simplify_timeout), dict(e.fitness), e.validation)
           for e in hall]
    ref = HallOfFameEntry(0, start, simplify(start, c.simplify_timeout), dict(reference.fitness), reference.validation)
    return Campaign(cfg, hof, ref, state.stats, state.history, state, time.perf_counter() - t0,
                    pathlib.Path(run_dir) if run_dir is not None else None)
