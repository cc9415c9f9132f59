"""What a campaign keeps in its run directory, and how it reads it back.

    runs/NAME/
        .lock                held (flock) by the one process writing the run; holds its PID
        config.json          the resolved configuration (a resume must match it)
        evaluations.jsonl    one JSON object per training, flushed and fsynced before the
                             search uses the result: id, parent, program, fitness (null:
                             diverged), stage, and on the search stage ``proposed`` (see
                             symopt.evolve.steady); the source of truth for resume
        lineage.jsonl        every child that entered a population, trained or scored from
                             the cache: id, parent, program, fitness, cached, island, cached_from
        populations/N.json   snapshots of the islands after N trainings (ids, fitness, programs)
        hall_of_fame.json    the funnel's survivors, the start program's scores, statistics
        derived_rankN.json   ``symopt derive RUN --rank N``: the derivation of rank N's program as found

Only evaluations.jsonl is needed to resume; the lineage and the snapshots are
derived from it and written again by the replay. A resume with a larger budget
updates config.json; the log keeps the old run's funnel trainings, and the new
funnel reuses those of the same programs.

Every file is read back through this module's readers, one per file kind (``read_run`` for the
whole directory; ``read_log``, ``read_lineage``, ``read_config``, ``read_hall_of_fame``,
``read_meta_validation``, ``read_derived``), which check what they read (with
:mod:`symopt.config.schema`'s kinds, as a configuration is checked), answer bad content with
one :class:`RunError` line naming the file, the line or field, and the problem, and return the
typed records of :mod:`symopt.storage.records`, each program parsed once.
A campaign writes them with :mod:`symopt.storage.run_log`, through :mod:`symopt.storage.durable`
(lock, fsync, atomic replace).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import stat
import warnings
from typing import Any, Callable, Mapping

from symopt.config.schema import Bad, check, get, show
from symopt.evaluation.fitness import fitness_of
from symopt.evolve.evolution import Event
from symopt.programs.errors import ProgramError
from symopt.programs.parser import parse
from symopt.programs.program import Program
from symopt.storage.durable import DirLock, atomic_write
from symopt.storage.records import CheckPoint, Derived, HallOfFame, HallOfFameEntry, LogRecord, RunConfig

LOG_NAME = "evaluations.jsonl"
CONFIG_NAME = "config.json"
LINEAGE_NAME = "lineage.jsonl"
SNAPSHOT_DIR = "populations"
HALL_OF_FAME_NAME = "hall_of_fame.json"
META_VALIDATION_NAME = "meta_validation.json"
DERIVED_NAME = "derived_rank{rank}.json"


class RunError(ValueError):
    """A run directory that is missing, or holds a file that is not what symopt writes: one line naming the
    file, the line or field, the problem and the fix."""


EXPECTED = "a run directory written by `symopt search ... --run-dir DIR`"


MAX_DOCUMENT_BYTES = 64 * 2**20
"""Largest JSON document a reader loads (config.json, hall_of_fame.json, ...): symopt writes a few KB to a
few MB (1,000 hall-of-fame entries at most); the append-only logs grow with the run and are not bounded."""


def _kind(path: pathlib.Path) -> str | None:
    """'file', 'dir', 'other', or None when nothing is there. A directory that cannot be searched (chmod 000)
    is a RunError naming it and the fix, not a PermissionError."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        where = path.parent if isinstance(e, PermissionError) and path.parent != path else path
        raise RunError(f"cannot read {str(where)!r}: {e.strerror}; give the user running symopt read access "
                       f"(chmod u+rx {str(where)!r}) or run as its owner") from None
    return "file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode) else "other"


def has_file(run: str | os.PathLike, name: str) -> bool:
    """Whether the run directory holds the regular file ``name``. Raises RunError when it cannot be read."""
    return _kind(pathlib.Path(run) / name) == "file"


def run_file(run: str | os.PathLike, name: str) -> pathlib.Path:
    """``run/name``, checked to exist. Raises RunError."""
    path = pathlib.Path(run)
    expected = f"{EXPECTED} (holding {name})"
    kind = _kind(path)
    if kind is None:
        raise RunError(f"run directory {str(path)!r} does not exist; expected {expected}")
    if kind != "dir":
        raise RunError(f"{str(path)!r} is not a directory; expected {expected}")
    if not has_file(path, name):
        raise RunError(f"{str(path)!r} has no {name}; expected {expected}")
    return path / name


# -- checking what a file holds -------------------------------------------------------------------


def _program(text: str, field: str, parsed: dict[str, Program] | None = None) -> Program:
    """The program of a text field, parsed once (``parsed``: a memo by text). Raises Bad."""
    if parsed is not None and text in parsed:
        return parsed[text]
    try:
        program = parse(text)
    except ProgramError as e:
        raise Bad(f"field {field!r}: not a program ({e})") from None
    if parsed is not None:
        parsed[text] = program
    return program


def _scores(obj: dict, key: str, prefix: str, optional: bool = False) -> None:
    """A ``{stage: fitness}`` object: text keys, number or null values."""
    scores = get(obj, key, "object", prefix, optional=optional)
    for stage, value in (scores or {}).items():
        check(value, "number", f"{prefix}{key}.{stage}", null=True)


def _loads(data: bytes):
    """json.loads, with nesting too deep for Python's parser (``[`` 200,000 times) a ValueError like bad JSON."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("nested too deeply") from None


# -- the append-only logs ---------------------------------------------------------------------------


def _read_jsonl(path: pathlib.Path, shape: Callable[[Any], None], fix: str) -> tuple[list[dict], int]:
    """The objects of a JSON-lines file written by appends, each checked by ``shape``; the byte length of the
    good part.

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
            record = _loads(line)
        except ValueError as e:
            if not last:
                raise RunError(f"{path}: line {n} is corrupt (not JSON: {e}); {fix}") from None
            warnings.warn(f"{path}: ignoring a torn last line ({len(line)} bytes; the writer was killed while "
                          f"writing it)", RuntimeWarning, stacklevel=3)
            break
        try:
            if not isinstance(record, dict):
                raise Bad(f"expected an object, got {show(record)}")
            shape(record)
        except Bad as e:
            raise RunError(f"{path}: line {n} is corrupt: {e}; {fix}") from None
        records.append(record)
        pos = end + 1
        good = pos
    return records, good


LOG_FIX = "repair or remove that line, or start a new run directory"


def read_log(path: str | os.PathLike) -> tuple[list[LogRecord], int]:
    """The records of an evaluations.jsonl, checked and typed, and the byte length of its intact part.

    Each record has ``id`` (int >= 0), ``parent`` (int or null), ``program`` (text that
    parses; each distinct text parsed once), ``fitness`` (number or null: diverged), ``stage``
    (text) and optionally ``proposed`` (int). A torn last line (the run was killed while writing
    it) is left out with a warning (that candidate is trained again on resume); a bad line before
    the last, or a record of the wrong types, is a RunError naming the line and field.
    """
    parsed: dict[str, Program] = {}

    def shape(r: dict) -> None:
        get(r, "id", "id")
        get(r, "parent", "id", null=True, optional=True)
        _program(get(r, "program", "text"), "program", parsed)
        get(r, "fitness", "number", null=True)
        get(r, "stage", "text")
        get(r, "proposed", "id", optional=True)

    records, good = _read_jsonl(pathlib.Path(path), shape, LOG_FIX)
    return [LogRecord(r["id"], r.get("parent"), parsed[r["program"]], r["fitness"], r["stage"], r.get("proposed"))
            for r in records], good


def read_lineage(run_dir: str | os.PathLike) -> dict[int, Event]:
    """lineage.jsonl as ``{id: event}`` (the :class:`~symopt.evolve.evolution.Event` that wrote each line; a
    null fitness is DIVERGED; a line without ``cached`` or ``island`` reads as trained on island 0), checked
    like :func:`read_log` (a torn last line is left out with a warning; a bad line before it is a RunError
    naming the line and field)."""

    def shape(e: dict) -> None:
        get(e, "id", "id")
        get(e, "parent", "id", null=True)
        get(e, "program", "text")
        get(e, "fitness", "number", null=True)
        get(e, "cached", "bool", optional=True)
        get(e, "island", "id", optional=True)
        get(e, "cached_from", "id", null=True, optional=True)

    fix = "lineage.jsonl is derived from the log: symopt search --resume on the run writes it again"
    records, _ = _read_jsonl(pathlib.Path(run_dir) / LINEAGE_NAME, shape, fix)
    return {e["id"]: Event(e["id"], e["parent"], e["program"], fitness_of(e["fitness"]), e.get("cached", False),
                           e.get("island", 0), e.get("cached_from")) for e in records}


def _read_json(path: pathlib.Path, shape: Callable[[Any], None], fix: str):
    """The JSON document in ``path``, checked by ``shape``. Raises RunError naming the file and the fix."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as e:
        raise RunError(f"cannot read {path}: {e.strerror}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise RunError(f"{path}: larger than {MAX_DOCUMENT_BYTES // 2**20} MiB, far past what symopt writes; {fix}")
    try:
        value = _loads(data)
    except ValueError as e:
        raise RunError(f"{path}: not valid JSON ({e}); {fix}") from None
    try:
        shape(value)
    except Bad as e:
        raise RunError(f"{path}: {e}; {fix}") from None
    return value


def read_config(run: str | os.PathLike) -> RunConfig:
    """config.json of a run, checked where readers depend on it (campaign.budget, stage names, validation)."""

    def shape(c) -> None:
        check(c, "object", "")
        campaign = get(c, "campaign", "object", optional=True) or {}
        get(campaign, "budget", "id", "campaign.", optional=True)
        for i, stage in enumerate(get(campaign, "stages", "list", "campaign.", optional=True) or []):
            check(stage, "object", f"campaign.stages[{i}]")
            get(stage, "name", "text", f"campaign.stages[{i}].", optional=True)
        for i, task in enumerate(get(campaign, "validation", "list", "campaign.", optional=True) or []):
            check(task, "text", f"campaign.validation[{i}]")

    data = _read_json(run_file(run, CONFIG_NAME), shape, "restore the run's configuration or start a new run")
    campaign = data.get("campaign") or {}
    return RunConfig(data, campaign.get("budget"), tuple(campaign.get("stages") or ()),
                     tuple(campaign.get("validation") or ()))


def _entry(e, prefix: str, parsed: dict[str, Program]) -> None:
    check(e, "object", prefix)
    prefix += "."
    get(e, "id", "id", prefix, optional=True)
    _program(get(e, "program", "text", prefix), prefix + "program", parsed)
    if get(e, "simplified", "text", prefix, null=True, optional=True):
        _program(e["simplified"], prefix + "simplified", parsed)
    _scores(e, "fitness", prefix)
    get(e, "validation", "number", prefix, null=True, optional=True)


def _hall_entry(e: dict, parsed: dict[str, Program]) -> HallOfFameEntry:
    """A checked entry as the dataclass, its programs those the check parsed."""
    simplified = e.get("simplified")
    return HallOfFameEntry(e.get("id"), parsed[e["program"]], parsed[simplified] if simplified else None,
                           dict(e["fitness"]), e.get("validation"))


def read_hall_of_fame(run: str | os.PathLike) -> HallOfFame:
    """hall_of_fame.json of a run, checked and typed: ``hall_of_fame`` (entries with ``program`` and
    ``simplified`` texts that parse, each parsed once, ``fitness`` per stage, ``validation``), ``reference``
    (one such entry), ``stats``, ``seconds``, ``replayed``."""
    parsed: dict[str, Program] = {}

    def shape(d) -> None:
        check(d, "object", "")
        for i, e in enumerate(get(d, "hall_of_fame", "list")):
            _entry(e, f"hall_of_fame[{i}]", parsed)
        if get(d, "reference", "object", null=True, optional=True):
            _entry(d["reference"], "reference", parsed)
        get(d, "stats", "object", optional=True)
        get(d, "seconds", "number", optional=True)
        get(d, "replayed", "id", optional=True)

    fix = "symopt search CONFIG --run-dir RUN --resume writes it again from the log"
    d = _read_json(run_file(run, HALL_OF_FAME_NAME), shape, fix)
    return HallOfFame([_hall_entry(e, parsed) for e in d["hall_of_fame"]],
                      _hall_entry(d["reference"], parsed) if d.get("reference") else None,
                      d.get("stats"), d.get("seconds"), d.get("replayed"))


def derived_path(run: str | os.PathLike, rank: int) -> pathlib.Path:
    """Where ``symopt derive RUN --rank N`` keeps its derivation."""
    return pathlib.Path(run) / DERIVED_NAME.format(rank=rank)


def write_derived(run: str | os.PathLike, rank: int, derivation: Mapping[str, Any]) -> pathlib.Path:
    """derived_rankN.json: a derivation's JSON (:meth:`symopt.tools.derive.Derivation.as_json`) and its rank,
    written under the run directory's lock (Busy while a search or another derive holds it)."""
    path = derived_path(run, rank)
    with DirLock(run):
        atomic_write(path, json.dumps(dict(derivation, rank=rank), indent=1) + "\n")
    return path


def read_derived(run: str | os.PathLike, rank: int) -> Derived:
    """derived_rankN.json of a run, checked and typed: ``start`` and ``derived`` program texts that parse
    (each parsed once), ``steps``."""
    parsed: dict[str, Program] = {}

    def shape(d) -> None:
        check(d, "object", "")
        _program(get(d, "start", "text"), "start", parsed)
        _program(get(d, "derived", "text"), "derived", parsed)
        get(d, "steps", "list")

    name = DERIVED_NAME.format(rank=rank)
    if _kind(pathlib.Path(run)) == "dir" and not has_file(run, name):
        raise RunError(f"{str(run)!r} has no {name}; run `symopt derive {run} --rank {rank}` first")
    d = _read_json(run_file(run, name), shape, f"run `symopt derive {run} --rank {rank}` again")
    return Derived(parsed[d["start"]], parsed[d["derived"]], d["steps"])


def read_meta_validation(run: str | os.PathLike) -> list[CheckPoint]:
    """meta_validation.json of a run, checked and typed: a list of points with ``trained`` and numbers (or
    null) by stage and for validation."""

    def shape(curve) -> None:
        check(curve, "list", "")
        for i, point in enumerate(curve):
            check(point, "object", f"[{i}]")
            get(point, "trained", "id", f"[{i}].")
            get(point, "pick", "id", f"[{i}].", null=True, optional=True)
            for key, value in point.items():
                if key not in ("trained", "pick"):
                    check(value, "number", f"[{i}].{key}", null=True)

    fix = "fix or delete it (symopt search --resume writes it again)"
    return [CheckPoint.from_json(p) for p in _read_json(run_file(run, META_VALIDATION_NAME), shape, fix)]


def ancestry(lineage: dict[int, Event], id: int) -> list[int]:
    """The ids from the start program down to ``id`` (parents first)."""
    chain, seen = [], set()
    current: int | None = id
    while current is not None and current not in seen:
        seen.add(current)
        chain.append(current)
        current = lineage[current].parent if current in lineage else None
    return chain[::-1]


@dataclasses.dataclass(frozen=True)
class RunData:
    """What a run directory holds: its log records, config (or None) and hall of fame (or None)."""

    path: pathlib.Path
    records: list[LogRecord]
    config: RunConfig | None
    hall_of_fame: HallOfFame | None
    meta_validation: list[CheckPoint] | None = None  # meta_validation.json: the funnel checks, in order


def read_run(run: str | pathlib.Path) -> RunData:
    """The run directory: ``evaluations.jsonl``, and ``config.json``, ``hall_of_fame.json`` and
    ``meta_validation.json`` where present, each through its checked reader. Raises RunError."""
    log = run_file(run, LOG_NAME)
    path = log.parent
    records, _ = read_log(log)
    if not records:
        raise RunError(f"{log} is empty: the search trained nothing yet")
    config = read_config(path) if has_file(path, CONFIG_NAME) else None
    hof = read_hall_of_fame(path) if has_file(path, HALL_OF_FAME_NAME) else None
    curve = read_meta_validation(path) if has_file(path, META_VALIDATION_NAME) else None
    return RunData(path, records, config, hof, curve)
