"""What a campaign keeps in its run directory, and how it reads it back.

    runs/NAME/
        .lock                held (flock) by the one process writing the run; holds its PID
        config.json          the resolved configuration (a resume must match it)
        evaluations.jsonl    one JSON object per training, flushed and fsynced before the
                             search uses the result: id, parent, program, fitness (null:
                             diverged), stage, and on the search stage ``proposed`` (see
                             symopt.search.steady); the source of truth for resume
        lineage.jsonl        every child that entered a population, trained or scored from
                             the cache: id, parent, program, fitness, cached, island, cached_from
        populations/N.json   snapshots of the islands after N trainings (ids, fitness, programs)
        hall_of_fame.json    the funnel's survivors, the start program's scores, statistics
        derived_rankN.json   ``symopt derive RUN --rank N``: the derivation of rank N's program as found

Only evaluations.jsonl is needed to resume; the lineage and the snapshots are
derived from it and written again by the replay. A resume with a larger budget
updates config.json; the log keeps the old run's funnel trainings, and the new
funnel reuses those of the same programs.

Every file is read back through this module's readers (``read_log``,
``read_lineage``, ``read_config``, ``read_hall_of_fame``,
``read_meta_validation``), which check what they read and answer bad content with
one :class:`RunError` line naming the file, the line or field, and the problem.
Writing goes through :mod:`symopt.search.durable` (lock, fsync, atomic replace).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import warnings
from collections import deque
from typing import Any, Callable, Mapping

from symopt.programs.errors import ProgramError
from symopt.programs.parse import parse
from symopt.programs.program import Program
from symopt.search import evolution
from symopt.search.durable import AppendLog, DirLock, atomic_write, write_error
from symopt.search.space import Config
from symopt.search.steady import Logged
from symopt.programs.liveness import eliminate_dead_code

LOG_NAME = "evaluations.jsonl"
CONFIG_NAME = "config.json"
LINEAGE_NAME = "lineage.jsonl"
SNAPSHOT_DIR = "populations"
HALL_OF_FAME_NAME = "hall_of_fame.json"
META_VALIDATION_NAME = "meta_validation.json"
DERIVED_NAME = "derived_rank{rank}.json"
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


class RunError(ValueError):
    """A run directory that is missing, or holds a file that is not what symopt writes: one line naming the
    file, the line or field, the problem and the fix."""


EXPECTED = "a run directory written by `symopt search ... --run-dir DIR`"


def run_file(run: str | os.PathLike, name: str) -> pathlib.Path:
    """``run/name``, checked to exist. Raises RunError."""
    path = pathlib.Path(run)
    expected = f"{EXPECTED} (holding {name})"
    if not path.exists():
        raise RunError(f"run directory {str(path)!r} does not exist; expected {expected}")
    if not path.is_dir():
        raise RunError(f"{str(path)!r} is not a directory; expected {expected}")
    if not (path / name).is_file():
        raise RunError(f"{str(path)!r} has no {name}; expected {expected}")
    return path / name


# -- checking what a file holds -------------------------------------------------------------------


class _Bad(ValueError):
    """A value of the wrong type; the reader adds the file and the fix."""


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "id": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "int": (_is_int, "an integer"),
    "number": (lambda v: _is_int(v) or isinstance(v, float), "a number"),
    "text": (lambda v: isinstance(v, str), "text"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "object": (lambda v: isinstance(v, dict), "an object"),
    "list": (lambda v: isinstance(v, list), "a list"),
}


def _show(v) -> str:
    text = repr(v)
    return f"{type(v).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _check(value, kind: str, field: str, null: bool = False):
    """``value`` if it is of ``kind`` (or None with ``null``); else _Bad naming ``field``."""
    ok, what = _KINDS[kind]
    if (value is None and null) or ok(value):
        return value
    where = f"field {field!r}" if field else "the document"
    raise _Bad(f"{where}: expected {what}{' or null' if null else ''}, got {_show(value)}")


def _get(obj: dict, key: str, kind: str, prefix: str = "", null: bool = False, optional: bool = False):
    """``obj[key]`` checked to be of ``kind``; ``prefix`` is the dotted path of ``obj`` in its file."""
    if key not in obj:
        if optional:
            return None
        raise _Bad(f"field {prefix + key!r} is missing")
    return _check(obj[key], kind, prefix + key, null)


def _program(text: str, field: str, parsed: dict[str, Program] | None = None) -> Program:
    """The program of a text field (``parsed``: a memo by text). Raises _Bad."""
    if parsed is not None and text in parsed:
        return parsed[text]
    try:
        program = parse(text)
    except ProgramError as e:
        raise _Bad(f"field {field!r}: not a program ({e})") from None
    if parsed is not None:
        parsed[text] = program
    return program


def _scores(obj: dict, key: str, prefix: str, optional: bool = False) -> None:
    """A ``{stage: fitness}`` object: text keys, number or null values."""
    scores = _get(obj, key, "object", prefix, optional=optional)
    for stage, value in (scores or {}).items():
        _check(value, "number", f"{prefix}{key}.{stage}", null=True)


# -- the append-only logs ---------------------------------------------------------------------------


def _read_jsonl(path: pathlib.Path, check: Callable[[Any], None], fix: str) -> tuple[list[dict], int]:
    """The objects of a JSON-lines file written by appends, each checked; the byte length of the good part.

    Only the last line may be torn (no newline, or not JSON: the writer died in the middle of it); it is
    left out with a warning. A bad line before it, or a last line of the wrong shape, is a RunError.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RunError(f"cannot read {path}: {e.strerror}") from None
    records, good, pos, n = [], 0, 0, 0
    while pos < len(data):
        n += 1
        end = data.find(b"\n", pos)
        last = end < 0 or end == len(data) - 1
        line = data[pos:] if end < 0 else data[pos:end]
        try:
            if end < 0:
                raise ValueError("no newline at its end")
            record = json.loads(line)
        except ValueError as e:
            if not last:
                raise RunError(f"{path}: line {n} is corrupt (not JSON: {e}); {fix}") from None
            warnings.warn(f"{path}: ignoring a torn last line ({len(line)} bytes; the writer was killed while "
                          f"writing it)", RuntimeWarning, stacklevel=3)
            break
        try:
            if not isinstance(record, dict):
                raise _Bad(f"expected an object, got {_show(record)}")
            check(record)
        except _Bad as e:
            raise RunError(f"{path}: line {n} is corrupt: {e}; {fix}") from None
        records.append(record)
        pos = end + 1
        good = pos
    return records, good


LOG_FIX = "repair or remove that line, or start a new run directory"


def read_log(path: str | os.PathLike) -> tuple[list[dict], int]:
    """The records of an evaluations.jsonl, checked, and the byte length of its intact part.

    Each record has ``id`` (int >= 0), ``parent`` (int or null), ``program`` (text that
    parses), ``fitness`` (number or null: diverged), ``stage`` (text) and optionally
    ``proposed`` (int). A torn last line (the run was killed while writing it) is left
    out with a warning (that candidate is trained again on resume); a bad line before
    the last, or a record of the wrong types, is a RunError naming the line and field.
    """
    parsed: dict[str, Program] = {}

    def check(r: dict) -> None:
        _get(r, "id", "id")
        _get(r, "parent", "id", null=True, optional=True)
        _program(_get(r, "program", "text"), "program", parsed)
        _get(r, "fitness", "number", null=True)
        _get(r, "stage", "text")
        _get(r, "proposed", "id", optional=True)

    return _read_jsonl(pathlib.Path(path), check, LOG_FIX)


class Replayed(float):
    """A fitness taken from the log on resume (not trained again, so not logged again)."""


class Log:
    """Appends one JSON line per training to run_dir/evaluations.jsonl, fsynced; replays on resume.

    The run directory's writer: it locks the directory (:class:`~symopt.search.durable.DirLock`)
    until :meth:`close`, so a second campaign on it is refused (:class:`~symopt.search.durable.Busy`).
    On resume the configuration must be the logged run's, except that the budget
    may grow (the campaign then goes on past its old end; config.json is updated).
    """

    def __init__(self, run_dir: pathlib.Path | None, config: dict, resume: bool):
        self.file = None
        self.lock = None
        self.replay: dict[str, list[dict]] = {}  # stage -> logged records, in log order
        self.replayed = 0
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
            old = read_config(run_dir)
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
            for r in records:
                self.replay.setdefault(r["stage"], []).append(r)
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
        self.file.append(json.dumps(record))

    def close(self) -> None:
        """Close the log and unlock the run directory."""
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def _budget(config: dict) -> int | None:
    return (config.get("campaign") or {}).get("budget")


def _without_budget(config: dict) -> dict:
    return {**config, "campaign": {k: v for k, v in (config.get("campaign") or {}).items() if k != "budget"}}


def _fitness(record: dict) -> float:
    return -math.inf if record["fitness"] is None else float(record["fitness"])


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


def read_lineage(run_dir: str | os.PathLike) -> dict[int, dict]:
    """lineage.jsonl as ``{id: event}``, checked like :func:`read_log` (a torn last line is left out with a
    warning; a bad line before it is a RunError naming the line and field)."""

    def check(e: dict) -> None:
        _get(e, "id", "id")
        _get(e, "parent", "id", null=True)
        _get(e, "program", "text")
        _get(e, "fitness", "number", null=True)
        _get(e, "cached", "bool", optional=True)
        _get(e, "island", "id", optional=True)
        _get(e, "cached_from", "id", null=True, optional=True)

    fix = "lineage.jsonl is derived from the log: symopt search --resume on the run writes it again"
    records, _ = _read_jsonl(pathlib.Path(run_dir) / LINEAGE_NAME, check, fix)
    return {e["id"]: e for e in records}


def _read_json(path: pathlib.Path, check: Callable[[Any], None], fix: str):
    """The JSON document in ``path``, checked. Raises RunError naming the file and the fix."""
    try:
        value = json.loads(path.read_bytes())
    except OSError as e:
        raise RunError(f"cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise RunError(f"{path}: not valid JSON ({e}); {fix}") from None
    try:
        check(value)
    except _Bad as e:
        raise RunError(f"{path}: {e}; {fix}") from None
    return value


def read_config(run: str | os.PathLike) -> dict:
    """config.json of a run, checked where readers depend on it (campaign.budget, stage names, validation)."""

    def check(c) -> None:
        _check(c, "object", "")
        campaign = _get(c, "campaign", "object", optional=True) or {}
        _get(campaign, "budget", "id", "campaign.", optional=True)
        for i, stage in enumerate(_get(campaign, "stages", "list", "campaign.", optional=True) or []):
            _check(stage, "object", f"campaign.stages[{i}]")
            _get(stage, "name", "text", f"campaign.stages[{i}].", optional=True)
        for i, task in enumerate(_get(campaign, "validation", "list", "campaign.", optional=True) or []):
            _check(task, "text", f"campaign.validation[{i}]")

    return _read_json(run_file(run, CONFIG_NAME), check, "restore the run's configuration or start a new run")


def _entry(e, prefix: str) -> None:
    _check(e, "object", prefix)
    prefix += "."
    _get(e, "id", "id", prefix, optional=True)
    _program(_get(e, "program", "text", prefix), prefix + "program")
    if _get(e, "simplified", "text", prefix, null=True, optional=True):
        _program(e["simplified"], prefix + "simplified")
    _scores(e, "fitness", prefix)
    _get(e, "validation", "number", prefix, null=True, optional=True)


def read_hall_of_fame(run: str | os.PathLike) -> dict:
    """hall_of_fame.json of a run, checked: ``hall_of_fame`` (entries with ``program`` and ``simplified``
    texts that parse, ``fitness`` per stage, ``validation``), ``reference`` (one such entry), ``stats``."""

    def check(d) -> None:
        _check(d, "object", "")
        for i, e in enumerate(_get(d, "hall_of_fame", "list")):
            _entry(e, f"hall_of_fame[{i}]")
        if _get(d, "reference", "object", null=True, optional=True):
            _entry(d["reference"], "reference")
        _get(d, "stats", "object", optional=True)
        _get(d, "seconds", "number", optional=True)
        _get(d, "replayed", "id", optional=True)

    fix = "symopt search CONFIG --run-dir RUN --resume writes it again from the log"
    return _read_json(run_file(run, HALL_OF_FAME_NAME), check, fix)


def derived_path(run: str | os.PathLike, rank: int) -> pathlib.Path:
    """Where ``symopt derive RUN --rank N`` keeps its derivation."""
    return pathlib.Path(run) / DERIVED_NAME.format(rank=rank)


def write_derived(run: str | os.PathLike, rank: int, derivation: Mapping[str, Any]) -> pathlib.Path:
    """derived_rankN.json: a derivation's JSON (:meth:`symopt.search.derive.Derivation.as_json`) and its rank."""
    path = derived_path(run, rank)
    atomic_write(path, json.dumps(dict(derivation, rank=rank), indent=1) + "\n")
    return path


def read_derived(run: str | os.PathLike, rank: int) -> dict:
    """derived_rankN.json of a run, checked: ``start`` and ``derived`` program texts that parse, ``steps``."""

    def check(d) -> None:
        _check(d, "object", "")
        _program(_get(d, "start", "text"), "start")
        _program(_get(d, "derived", "text"), "derived")
        _get(d, "steps", "list")

    name = DERIVED_NAME.format(rank=rank)
    if not (pathlib.Path(run) / name).is_file() and pathlib.Path(run).is_dir():
        raise RunError(f"{str(run)!r} has no {name}; run `symopt derive {run} --rank {rank}` first")
    return _read_json(run_file(run, name), check, f"run `symopt derive {run} --rank {rank}` again")


def read_meta_validation(run: str | os.PathLike) -> list[dict]:
    """meta_validation.json of a run, checked: a list of points with ``trained`` and numbers (or null)."""

    def check(curve) -> None:
        _check(curve, "list", "")
        for i, point in enumerate(curve):
            _check(point, "object", f"[{i}]")
            _get(point, "trained", "id", f"[{i}].")
            _get(point, "pick", "id", f"[{i}].", null=True, optional=True)
            for key, value in point.items():
                if key not in ("trained", "pick"):
                    _check(value, "number", f"[{i}].{key}", null=True)

    fix = "fix or delete it (symopt search --resume writes it again)"
    return _read_json(run_file(run, META_VALIDATION_NAME), check, fix)


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
    atomic_write(path, json.dumps(curve, indent=1))
    return path


def write_hall_of_fame(run_dir: pathlib.Path, campaign: Any) -> pathlib.Path:
    """hall_of_fame.json: the survivors, the start program's scores and the campaign's statistics."""
    path = run_dir / HALL_OF_FAME_NAME
    atomic_write(path, json.dumps(
        {"reference": campaign.reference.as_json(), "hall_of_fame": [e.as_json() for e in campaign.hall_of_fame],
         "stats": campaign.stats.as_dict(), "seconds": campaign.seconds, "replayed": campaign.replayed}, indent=2))
    return path
