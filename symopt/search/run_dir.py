"""What a campaign keeps in its run directory, and how it reads it back.

    runs/NAME/
        config.json          the resolved configuration (a resume must match it)
        evaluations.jsonl    one JSON object per training, flushed and fsynced before the
                             search uses the result: id, parent, program, fitness (null:
                             diverged), stage, and on the search stage ``proposed`` (see
                             symopt.search.steady); the source of truth for resume
        lineage.jsonl        every child that entered a population, trained or scored from
                             the cache: id, parent, program, fitness, cached, island, cached_from
        populations/N.json   snapshots of the islands after N trainings (ids, fitness, programs)
        hall_of_fame.json    the funnel's survivors, the start program's scores, statistics

Only evaluations.jsonl is needed to resume; the lineage and the snapshots are
derived from it and written again by the replay. A resume with a larger budget
updates config.json; the log keeps the old run's funnel trainings, and the new
funnel reuses those of the same programs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import warnings
from collections import deque
from typing import Any

from symopt.programs.parse import parse
from symopt.programs.program import Program
from symopt.search import evolution
from symopt.search.space import Config
from symopt.search.steady import Logged
from symopt.symbolic.simplify import eliminate_dead_code

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


class Replayed(float):
    """A fitness taken from the log on resume (not trained again, so not logged again)."""


class Log:
    """Appends one JSON line per training to run_dir/evaluations.jsonl, flushed and fsynced; replays on resume.

    On resume the configuration must be the logged run's, except that the budget
    may grow (the campaign then goes on past its old end; config.json is updated).
    """

    def __init__(self, run_dir: pathlib.Path | None, config: dict, resume: bool):
        self.file = None
        self.replay: dict[str, list[dict]] = {}  # stage -> logged records, in log order
        self.replayed = 0
        self._by_text: dict[str, dict[str, deque]] = {}  # stage -> program text -> logged records not yet reused
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
            old = json.loads(saved.read_text())
            diff = _differences(_without_budget(old), _without_budget(config))
            old_budget, budget = _budget(old), _budget(config)
            if budget is not None and old_budget is not None and budget < old_budget:
                diff.append(f"campaign.budget: {old_budget} in the logged run, {budget} now (a budget can grow "
                            f"on resume, not shrink)")
            if diff:
                raise ValueError(f"{run_dir}: cannot resume with a different configuration than the logged run's "
                                 f"({'; '.join(diff)}); use the same configuration and seed (a larger budget "
                                 f"is allowed), or choose another run directory")
            records, good = read_log(log)
            if good < log.stat().st_size:  # cut the torn line so that appends start on a fresh line
                with open(log, "r+b") as f:
                    f.truncate(good)
                    os.fsync(f.fileno())
            for r in records:
                self.replay.setdefault(r["stage"], []).append(r)
            if budget != old_budget:
                _atomic_write(saved, json.dumps(config, indent=2) + "\n")
        else:
            _atomic_write(saved, json.dumps(config, indent=2) + "\n")
        self.file = open(log, "a", encoding="utf-8")

    def replaying(self, stage: str, evaluate, first: int | None = None):
        """``evaluate`` for a batch stage: a program trained there before (same text) takes its logged fitness.

        The fitness comes back as :class:`Replayed`, which :meth:`write` does not log again.
        ``first``: only the stage's first so many logged trainings can be reused.
        """
        if stage not in self._by_text:
            by_text: dict[str, deque] = {}
            for r in self.replay.get(stage, [])[:first]:
                by_text.setdefault(str(eliminate_dead_code(parse(r["program"]))), deque()).append(r)
            self._by_text[stage] = by_text
        by_text = self._by_text[stage]
        if not by_text:
            return evaluate

        def evaluate_fn(programs):
            programs = list(programs)
            out: list[Any] = [None] * len(programs)
            todo = []
            for i, p in enumerate(programs):
                logged = by_text.get(str(p))
                if logged:
                    out[i] = Replayed(_fitness(logged.popleft()))
                    self.replayed += 1
                else:
                    todo.append(i)
            if todo:
                for i, r in zip(todo, evaluate([programs[i] for i in todo])):
                    out[i] = r
            return out

        return evaluate_fn

    def take(self, stage: str) -> list[Logged]:
        """The logged trainings of a steady-state stage after its first (the start program's), to replay."""
        out = []
        for r in self.replay.get(stage, ())[1:]:
            if not isinstance(r.get("proposed"), int):
                raise ValueError(f"cannot resume: the log's id {r['id']} on stage {stage!r} has no 'proposed' count "
                                 f"(written by an older symopt); start a new run directory")
            out.append(Logged(int(r["id"]), r["program"], _fitness(r), r["proposed"]))
        self.replayed += len(out)
        return out

    def write(self, id: int, parent: int | None, program: Program | str, result: Any, stage: str,
              proposed: int | None = None) -> None:
        """Log one training (a :class:`Replayed` result is in the log already)."""
        if self.file is None or isinstance(result, Replayed):
            return
        fitness = evolution.fitness_of(result)
        record = {"id": id, "parent": parent, "program": str(program),
                  "fitness": fitness if math.isfinite(fitness) else None, "stage": stage}
        if proposed is not None:
            record["proposed"] = proposed
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def _budget(config: dict) -> int | None:
    return (config.get("campaign") or {}).get("budget")


def _without_budget(config: dict) -> dict:
    return {**config, "campaign": {k: v for k, v in (config.get("campaign") or {}).items() if k != "budget"}}


LINEAGE_NAME = "lineage.jsonl"
SNAPSHOT_DIR = "populations"
HALL_OF_FAME_NAME = "hall_of_fame.json"
META_VALIDATION_NAME = "meta_validation.json"
SNAPSHOTS = 20
"""Population snapshots per search stage (one every budget/20 trainings, and the last)."""


def _fitness(record: dict) -> float:
    return -math.inf if record["fitness"] is None else float(record["fitness"])


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _atomic_write(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class Lineage:
    """Writes lineage.jsonl (every child that entered a population) and the population snapshots.

    Both are rewritten from scratch by each run, a resumed one included: the replay
    produces the same events again.
    """

    def __init__(self, run_dir: pathlib.Path | None, budget: int):
        self.run_dir = run_dir
        self.every = max(1, budget // SNAPSHOTS)
        self.file = None
        self._last = -1
        if run_dir is None:
            return
        snapshots = run_dir / SNAPSHOT_DIR
        snapshots.mkdir(parents=True, exist_ok=True)
        for old in snapshots.glob("*.json"):
            old.unlink()
        self.file = open(run_dir / LINEAGE_NAME, "w", encoding="utf-8")

    def event(self, e: evolution.Event) -> None:
        if self.file is not None:
            self.file.write(json.dumps({**e.as_json(), "fitness": _finite(e.fitness)}) + "\n")

    def accepted(self, state: evolution.State, final: bool = False) -> None:
        """Snapshot the islands every ``every`` trainings (and at the end, with ``final``)."""
        n = state.stats.evaluated
        if self.run_dir is None or n == self._last or not (final or n % self.every == 0):
            return
        self._last = n
        _atomic_write(self.run_dir / SNAPSHOT_DIR / f"{n:07d}.json", json.dumps(snapshot(state)))

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def snapshot(state: evolution.State) -> dict:
    """The islands as plain data: member ids (oldest first) and fitness, each distinct program once."""
    programs = {ind.id: str(ind.program) for pop in state.islands for ind in pop}
    return {"evaluated": state.stats.evaluated, "generated": state.stats.generated,
            "best": {"id": state.best.id, "fitness": _finite(state.best.fitness)},
            "islands": [[[ind.id, _finite(ind.fitness)] for ind in pop] for pop in state.islands],
            "in_flight": sorted(p.id for p in state.inflight.values()),
            "programs": {str(k): v for k, v in sorted(programs.items())}}


def read_lineage(run_dir: str | os.PathLike) -> dict[int, dict]:
    """lineage.jsonl as ``{id: event}`` (a torn last line is skipped)."""
    out = {}
    path = pathlib.Path(run_dir) / LINEAGE_NAME
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        out[int(e["id"])] = e
    return out


def ancestry(lineage: dict[int, dict], id: int) -> list[int]:
    """The ids from the start program down to ``id`` (parents first)."""
    chain, seen = [], set()
    current: int | None = id
    while current is not None and current not in seen:
        seen.add(current)
        chain.append(current)
        current = lineage.get(current, {}).get("parent")
    return chain[::-1]


def write_meta_validation(run_dir: pathlib.Path, curve: list[dict]) -> pathlib.Path:
    """meta_validation.json: after each funnel check, the best so far on every stage and on validation."""
    path = run_dir / META_VALIDATION_NAME
    _atomic_write(path, json.dumps(curve, indent=1))
    return path


def write_hall_of_fame(run_dir: pathlib.Path, campaign: Any) -> pathlib.Path:
    """hall_of_fame.json: the survivors, the start program's scores and the campaign's statistics."""
    path = run_dir / HALL_OF_FAME_NAME
    _atomic_write(path, json.dumps(
        {"reference": campaign.reference.as_json(), "hall_of_fame": [e.as_json() for e in campaign.hall_of_fame],
         "stats": campaign.stats.as_dict(), "seconds": campaign.seconds, "replayed": campaign.replayed}, indent=2))
    return path
