"""What a campaign writes into its run directory as it runs: the log, the lineage, the snapshots, the results.

The layout and the readers are :mod:`symopt.storage.run_dir`'s; :class:`Log` is
the one writer (it locks the directory), and on resume it replays the log.
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

from symopt.evaluation import Result
from symopt.evaluation.fitness import fitness_of
from symopt.programs.liveness import eliminate_dead_code
from symopt.programs.program import Program
from symopt.evolve import evolution
from symopt.storage.durable import AppendLog, DirLock, atomic_write, write_error
from symopt.storage.run_dir import (
    CONFIG_NAME,
    HALL_OF_FAME_NAME,
    LINEAGE_NAME,
    LOG_NAME,
    META_VALIDATION_NAME,
    SNAPSHOT_DIR,
    RunError,
    read_config,
    read_hall_of_fame,
    read_log,
)
from symopt.storage.records import CheckPoint, LogRecord
from symopt.config.space import Config
from symopt.evolve.steady import Logged

SNAPSHOTS = 20
"""Population snapshots per search stage (one every budget/20 trainings, and the last)."""


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


@dataclasses.dataclass(frozen=True, eq=False)
class Replayed(Result):
    """A result taken from the log on resume: its fitness, no runs (not trained again, so not logged again)."""


class Log:
    """Appends one JSON line per training to run_dir/evaluations.jsonl, fsynced (alone, or with the others
    that arrived together); replays on resume.

    The run directory's writer: it locks the directory (:class:`~symopt.storage.durable.DirLock`)
    until :meth:`close`, so a second campaign on it is refused (:class:`~symopt.storage.durable.Busy`).
    On resume the configuration must be the logged run's, except that the budget
    may grow (the campaign then goes on past its old end; config.json is updated).
    """

    def __init__(self, run_dir: pathlib.Path | None, config: dict, resume: bool):
        self.file = None
        self.lock = None
        self.replay: dict[str, list[LogRecord]] = {}  # stage -> logged records, in log order
        self.replayed = 0
        self.earlier_seconds = 0.0  # wall time of the earlier calls on this run that finished (hall_of_fame.json)
        self._by_text: dict[str, dict[str, deque]] = {}  # stage -> program text -> logged records not yet reused
        if run_dir is None:
            if resume:
                raise ValueError("resume needs a run directory (run_dir / --run-dir) holding the run's log")
            return
        self.lock = DirLock(run_dir).acquire()
        try:
            self._open(run_dir, config, resume)
        except BaseException:
            self.close()
            raise

    def _open(self, run_dir: pathlib.Path, config: dict, resume: bool) -> None:
        log, saved = run_dir / LOG_NAME, run_dir / CONFIG_NAME
        has_log = log.exists() and log.stat().st_size > 0
        if has_log and not resume:
            raise FileExistsError(f"{log} already holds evaluations of a run: pass --resume (resume=True) to "
                                  f"continue it, or choose another run directory")
        good = None
        if has_log:
            if not saved.exists():
                raise ValueError(f"{run_dir}: cannot resume: {CONFIG_NAME} is missing, so the logged run's "
                                 f"configuration cannot be checked")
            old = read_config(run_dir).data
            diff = _differences(_without_budget(old), _without_budget(config))
            old_budget, budget = _budget(old), _budget(config)
            if budget is not None and old_budget is not None and budget < old_budget:
                diff.append(f"campaign.budget: {old_budget} in the logged run, {budget} now (a budget can grow "
                            f"on resume, not shrink)")
            if diff:
                raise ValueError(f"{run_dir}: cannot resume with a different configuration than the logged run's "
                                 f"({'; '.join(diff)}); use the same configuration and seed (a larger budget "
                                 f"is allowed), or choose another run directory")
            records, good = read_log(log)  # a torn last line is cut below, so that appends start on a fresh line
            self.earlier_seconds = _earlier_seconds(run_dir)
            for r in records:
                self.replay.setdefault(r.stage, []).append(r)
            if budget != old_budget:
                atomic_write(saved, json.dumps(config, indent=2) + "\n")
        else:
            atomic_write(saved, json.dumps(config, indent=2) + "\n")
        self.file = AppendLog(log, truncate_to=good)

    def replaying(self, stage: str, evaluate, first: int | None = None):
        """``evaluate`` for a batch stage: a program trained there before (same text) takes its logged fitness.

        The fitness comes back as :class:`Replayed`, which :meth:`write` does not log again.
        ``first``: only the stage's first so many logged trainings can be reused.
        """
        if stage not in self._by_text:
            by_text: dict[str, deque] = {}
            for r in self.replay.get(stage, [])[:first]:
                by_text.setdefault(str(eliminate_dead_code(r.program)), deque()).append(r)
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
                    out[i] = Replayed(p, logged.popleft().score, runs=(), seconds=0.0)
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
            if r.proposed is None:
                raise ValueError(f"cannot resume: the log's id {r.id} on stage {stage!r} has no 'proposed' count "
                                 f"(written by an older symopt); start a new run directory")
            out.append(Logged(r.id, str(r.program), r.score, r.proposed))
        self.replayed += len(out)
        return out

    def write(self, id: int, parent: int | None, program: Program, result: Any, stage: str,
              proposed: int | None = None, sync: bool = True) -> None:
        """Log one training as a :class:`~symopt.storage.records.LogRecord` (a :class:`Replayed` result is in
        the log already); fsynced now, or with ``sync=False`` at the next :meth:`sync` (a group commit)."""
        if self.file is None or isinstance(result, Replayed):
            return
        record = LogRecord(id, parent, program, _finite(fitness_of(result)), stage, proposed)
        self.file.append(json.dumps(record.as_json()), sync)

    def sync(self) -> None:
        """Make the trainings logged with ``sync=False`` durable (one fsync)."""
        if self.file is not None:
            self.file.sync()

    def close(self) -> None:
        """Close the log and unlock the run directory."""
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def _earlier_seconds(run_dir: pathlib.Path) -> float:
    """The wall seconds hall_of_fame.json records for the run so far (0 without one: a call killed before it
    finished records none)."""
    if not (run_dir / HALL_OF_FAME_NAME).exists():
        return 0.0
    try:
        return float(read_hall_of_fame(run_dir).seconds or 0.0)
    except RunError as e:  # an output, written again at the end: the run resumes without the earlier time
        warnings.warn(f"{e}; the earlier calls' wall time is not counted", RuntimeWarning, stacklevel=2)
        return 0.0


def _budget(config: dict) -> int | None:
    return (config.get("campaign") or {}).get("budget")


def _without_budget(config: dict) -> dict:
    return {**config, "campaign": {k: v for k, v in (config.get("campaign") or {}).items() if k != "budget"}}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


class Lineage:
    """Writes lineage.jsonl (every child that entered a population) and the population snapshots.

    Both are rewritten from scratch by each run, a resumed one included: the replay
    produces the same events again. The lineage is buffered (it is derived, not the
    source of truth) and fsynced when it is closed.
    """

    def __init__(self, run_dir: pathlib.Path | None, budget: int):
        self.run_dir = run_dir
        self.every = max(1, budget // SNAPSHOTS)
        self.file = None
        self._last = -1
        if run_dir is None:
            return
        snapshots = run_dir / SNAPSHOT_DIR
        path = run_dir / LINEAGE_NAME
        try:
            snapshots.mkdir(parents=True, exist_ok=True)
            for old in snapshots.glob("*.json"):
                old.unlink()
            self.file = open(path, "w", encoding="utf-8")
        except OSError as e:
            raise write_error(path, e) from None

    def event(self, e: evolution.Event) -> None:
        if self.file is not None:
            try:
                self.file.write(json.dumps({**e.as_json(), "fitness": _finite(e.fitness)}) + "\n")
            except OSError as err:
                raise write_error(self.run_dir / LINEAGE_NAME, err, resumable=True) from None

    def accepted(self, state: evolution.State, final: bool = False) -> None:
        """Snapshot the islands every ``every`` trainings (and at the end, with ``final``)."""
        n = state.stats.evaluated
        if self.run_dir is None or n == self._last or not (final or n % self.every == 0):
            return
        self._last = n
        atomic_write(self.run_dir / SNAPSHOT_DIR / f"{n:07d}.json", json.dumps(snapshot(state)))

    def close(self, check: bool = True) -> None:
        """Flush, fsync and close; ``check=False`` (the campaign failed already) ignores a failure to write."""
        if self.file is None:
            return
        file, self.file = self.file, None
        try:
            file.flush()
            os.fsync(file.fileno())
        except OSError as e:
            if check:
                raise write_error(self.run_dir / LINEAGE_NAME, e, resumable=True) from None
        finally:
            try:
                file.close()
            except OSError:
                pass  # the flush above failed already


def snapshot(state: evolution.State) -> dict:
    """The islands as plain data: member ids (oldest first) and fitness, each distinct program once."""
    programs = {ind.id: str(ind.program) for pop in state.islands for ind in pop}
    return {"evaluated": state.stats.evaluated, "generated": state.stats.generated,
            "best": {"id": state.best.id, "fitness": _finite(state.best.fitness)},
            "islands": [[[ind.id, _finite(ind.fitness)] for ind in pop] for pop in state.islands],
            "in_flight": sorted(p.id for p in state.inflight.values()),
            "programs": {str(k): v for k, v in sorted(programs.items())}}


def write_meta_validation(run_dir: pathlib.Path, curve: list[CheckPoint]) -> pathlib.Path:
    """meta_validation.json: after each funnel check, the best so far on every stage and on validation."""
    path = run_dir / META_VALIDATION_NAME
    atomic_write(path, json.dumps([point.as_json() for point in curve], indent=1))
    return path


def write_hall_of_fame(run_dir: pathlib.Path, campaign: Any) -> pathlib.Path:
    """hall_of_fame.json: the survivors, the start program's scores and the campaign's statistics."""
    path = run_dir / HALL_OF_FAME_NAME
    atomic_write(path, json.dumps(
        {"reference": campaign.reference.as_json(), "hall_of_fame": [e.as_json() for e in campaign.hall_of_fame],
         "stats": campaign.stats.as_dict(), "seconds": campaign.seconds, "replayed": campaign.replayed}, indent=2))
    return path

