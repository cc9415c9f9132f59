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
object: ``id``, ``parent``, ``program`` (text), ``fitness``, ``stage``; the resolved
configuration is written to ``run_dir/config.json``.

Resume by replay: ``search(..., run_dir=D, resume=True)`` on a run directory whose
log exists restarts the campaign with the same configuration and seed (a different
one is an error) and replays it: each candidate whose training is in the log (same
stage, id and program text, in the log's order) takes its logged fitness instead of
being trained; the rest are trained and appended. With a deterministic backend (the
serial one) the resumed campaign ends in the state of one never killed. A torn last
line (a kill in the middle of a write) is dropped with a warning. Without ``resume``
an existing non-empty log is an error (it is never overwritten). A replayed
candidate's result (``state.records[id].result``, the funnel entries' ``results``)
is its logged fitness, a number, not the backend's result object.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import pathlib
import time
import warnings
from collections import deque
from typing import Any, Callable, Mapping, Sequence

from symopt.programs.parse import parse
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


LOG_NAME = "evaluations.jsonl"
CONFIG_NAME = "config.json"


def config_json(cfg: Config) -> dict:
    """The resolved configuration as JSON data (what ``run_dir/config.json`` holds)."""
    d = dataclasses.asdict(cfg)
    d.pop("source", None)
    return json.loads(json.dumps(d, default=str))


def _differences(old, new, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(k), new.get(k), f"{path}.{k}" if path else str(k))
        return out
    return [] if old == new else [f"{path}: {old!r} in the logged run, {new!r} now"]


def read_log(path: str | os.PathLike) -> tuple[list[dict], int]:
    """The records of an evaluations.jsonl and the byte length of its intact part.

    A last line that is torn (no newline or not JSON: the writer was killed in the
    middle) is left out with a warning; a bad line before the last is an error.
    """
    data = pathlib.Path(path).read_bytes()
    records, good, pos = [], 0, 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        last = end < 0 or end == len(data) - 1
        line = data[pos:] if end < 0 else data[pos:end]
        try:
            if end < 0:
                raise ValueError("no newline")
            record = json.loads(line)
            if not isinstance(record, dict) or not {"id", "program", "fitness", "stage"} <= set(record):
                raise ValueError("not an evaluation record")
        except ValueError as e:
            if not last:
                raise ValueError(f"{path}: line {len(records) + 1} is corrupt ({e}); cannot resume from it") from None
            warnings.warn(f"{path}: ignoring a torn last line ({len(line)} bytes; the run was killed while "
                          f"writing it): that candidate is trained again", RuntimeWarning, stacklevel=3)
            break
        records.append(record)
        pos = end + 1
        good = pos
    return records, good


class _Log:
    """Appends one JSON line per training to run_dir/evaluations.jsonl, flushed and fsynced; replays on resume."""

    def __init__(self, run_dir: pathlib.Path | None, config: dict, resume: bool):
        self.file = None
        self.replay: dict[str, deque] = {}  # stage -> logged records not yet replayed
        self.expected: dict[str, deque] = {}  # stage -> replayed records whose event is still to come
        self.replayed = 0
        if run_dir is None:
            if resume:
                raise ValueError("resume needs a run directory (run_dir / --run-dir) holding the run's log")
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        log, saved = run_dir / LOG_NAME, run_dir / CONFIG_NAME
        has_log = log.exists() and log.stat().st_size > 0
        if has_log and not resume:
            raise FileExistsError(f"{log} already holds evaluations of a run: pass --resume (resume=True) to "
                                  f"continue it, or choose another run directory")
        if has_log:
            if not saved.exists():
                raise ValueError(f"{run_dir}: cannot resume: {CONFIG_NAME} is missing, so the logged run's "
                                 f"configuration cannot be checked")
            diff = _differences(json.loads(saved.read_text()), config)
            if diff:
                raise ValueError(f"{run_dir}: cannot resume with a different configuration than the logged run's "
                                 f"({'; '.join(diff)}); use the same configuration, budget and seed, or choose "
                                 f"another run directory")
            records, good = read_log(log)
            if good < log.stat().st_size:  # cut the torn line so that appends start on a fresh line
                with open(log, "r+b") as f:
                    f.truncate(good)
                    os.fsync(f.fileno())
            for r in records:
                self.replay.setdefault(r["stage"], deque()).append(r)
        else:
            tmp = saved.with_name(saved.name + ".tmp")
            tmp.write_text(json.dumps(config, indent=2) + "\n")
            os.replace(tmp, saved)
        self.file = open(log, "a", encoding="utf-8")

    def replaying(self, stage: str, evaluate):
        """``evaluate`` for ``stage``, with the candidates logged there taking their logged fitness."""
        queue = self.replay.get(stage)
        if not queue:
            return evaluate
        expected = self.expected.setdefault(stage, deque())

        def evaluate_fn(programs):
            programs = list(programs)
            out, todo = [], []
            for i, p in enumerate(programs):
                if queue:
                    record = queue.popleft()
                    if str(eliminate_dead_code(parse(record["program"]))) != str(p):
                        raise ValueError(f"cannot resume: the log's training {len(expected) + self.replayed + 1} "
                                           f"on stage {stage!r} (id {record['id']}) is not the program this "
                                           f"campaign trains there; the log belongs to another run")
                    expected.append(record)
                    self.replayed += 1
                    out.append(-math.inf if record["fitness"] is None else float(record["fitness"]))
                else:
                    todo.append(i)
                    out.append(None)
            if todo:
                results = evaluate([programs[i] for i in todo])
                for i, r in zip(todo, results):
                    out[i] = r
            return out

        return evaluate_fn

    def write(self, id: int, parent: int | None, program: Program | str, fitness: float, stage: str) -> None:
        if self.file is None:
            return
        expected = self.expected.get(stage)
        if expected:  # a replayed training: already in the log
            record = expected.popleft()
            if record["id"] != id or record["program"] != str(program):
                raise ValueError(f"cannot resume: the log's id {record['id']} on stage {stage!r} is id {id} "
                                   f"(or another program) in this campaign; the log belongs to another run")
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
           backend: str | Backend = "serial", run_dir: str | os.PathLike | None = None, resume: bool = False,
           progress: Callable[[evolution.State, int], None] | None = None) -> Campaign:
    """Search for an update rule; see the module docstring.

    Args:
        config: a TOML file, a name in ``search_spaces/`` (``"quick"``), a dict, or a Config.
        budget: candidates to train on the first stage (default: the config's).
        seed: seed of the search (default: the config's ``campaign.seed``).
        backend: ``"serial"`` or a callable ``backend(tasks, seeds, steps) -> evaluate_fn``.
        run_dir: where to append ``evaluations.jsonl`` (and write ``config.json``).
        resume: continue the run logged in ``run_dir`` by replaying it (see the module docstring).
        progress: called as ``progress(state, replayed)`` after each batch of the search stage.
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
    start = start_program(c.start, cfg.space)
    params = evolution.Params.from_config(cfg.space, c)
    log = _Log(pathlib.Path(run_dir) if run_dir is not None else None, config_json(cfg), resume)
    try:
        evaluators = [make(st.tasks, st.seeds or c.seeds, st.steps or None) for st in c.stages]
        validate = make(c.validation, c.seeds, None) if c.validation else None
        search_fn = log.replaying(names[0], evaluators[0])

        def on_event(e: evolution.Event) -> None:
            log.write(e.id, e.parent, e.program, e.fitness, names[0])

        state = evolution.init(start, params, search_fn, c.seed, on_event)
        max_generated = c.max_generated or 100 * c.budget  # as evolution.run
        while evolution.step(state, params, search_fn, c.budget, max_generated, on_event):
            if progress:
                progress(state, log.replayed)
        if progress:
            progress(state, log.replayed)

        def on_result(stage: str, entry: funnel.Entry, result) -> None:
            log.write(entry.id, None, entry.program, evolution.fitness_of(result), stage)

        def trimmed(evaluate):  # train the dead-code-free program: same behaviour, fewer statements
            return lambda programs: evaluate([eliminate_dead_code(p) for p in programs])

        entries = [funnel.Entry(r.id, r.program, {names[0]: r.fitness}) for r in state.records.values()]
        stages = [(names[i], st.promote, trimmed(log.replaying(names[i], evaluators[i])))
                  for i, st in enumerate(c.stages[1:], 1)]
        hall, _ = funnel.run(entries, stages, c.hall_of_fame,
                             trimmed(log.replaying("validation", validate)) if validate else None,
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
                    pathlib.Path(run_dir) if run_dir is not None else None, log.replayed)
