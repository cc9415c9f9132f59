"""The one schema helper, for configurations and run files: the kinds of value a field holds (:data:`KINDS`,
:func:`expected`), and, for configurations, dataclass fields with a range, choices or a plain-name rule,
built from TOML-shaped tables and checked. Every error is one line naming the source, the dotted key, the
problem and what is allowed (with "did you mean" for an unknown key).

:mod:`symopt.config.space` declares the configuration's dataclasses with :func:`field`; :func:`build`
reads a table into them, :func:`check_values` checks a dataclass built in code the same way.
:mod:`symopt.storage.run_dir` checks the JSON it reads back with :func:`check` and :func:`get`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from typing import Any, Callable, Mapping

from symopt.programs.functions import HERO_FUNCTIONS
from symopt.programs.hints import did_you_mean


def field(default, doc: str, **kw):
    return dataclasses.field(default=default, metadata={"doc": doc, **kw})


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a numeric key (or each item of a list of numbers) may take: ``low`` to ``high``
    inclusive, or strictly above ``low`` with ``above``. Checked before anything runs or is written."""

    low: float
    high: float
    above: bool = False

    def __contains__(self, x) -> bool:
        return (x > self.low if self.above else x >= self.low) and x <= self.high

    def describe(self, integer: bool) -> str:
        if integer:
            return f"an integer from {self.low:,} to {self.high:,}"
        if (self.low, self.high, self.above) == (0, 1, False):
            return "a probability in [0, 1]"
        return f"a number {'>' if self.above else '>='} {self.low:g} and <= {self.high:g}"


NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
"""A configuration name: it names the default run directory runs/NAME, so no path separators or dots first."""


def keyed(cls, data):
    if not isinstance(data, Mapping):
        return data
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    out = {}
    for name, value in data.items():
        f = fields.get(name)
        if f is None:
            out[name] = value  # left for from_dict to report
            continue
        hint, (item, *_) = hints[name], typing.get_args(hints[name]) or (None,)
        if dataclasses.is_dataclass(hint):
            value = keyed(hint, value)
        elif dataclasses.is_dataclass(item) and isinstance(value, list):
            value = [keyed(item, v) for v in value]
        out[key_of(f)] = value
    return out


def error(source: str, path: str, message: str) -> ValueError:
    return ValueError(f"{source}: {path or 'top level'}: {message}")


def key_of(f: dataclasses.Field) -> str:
    return f.metadata.get("key", f.name)


def build(cls, table, path: str, source: str):
    if not isinstance(table, Mapping):
        raise error(source, path, f"expected a table, got {type(table).__name__} {table!r}")
    fields = [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]
    by_key = {key_of(f): f for f in fields}
    for key in table:
        if key not in by_key:
            hint = did_you_mean(str(key), by_key, n=1) if len(str(key)) <= 100 else ""
            raise error(source, join(path, clip(str(key))), f"unknown key{hint}; allowed keys here: "
                         f"{', '.join(by_key)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for key, f in by_key.items():
        if key in table:
            values[f.name] = convert(hints[f.name], table[key], join(path, key), source, f)
    return cls(**values)


def join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def convert(hint, value, path: str, source: str, f: dataclasses.Field):
    meta = f.metadata
    if dataclasses.is_dataclass(hint):
        return build(hint, value, path, source)
    origin = typing.get_origin(hint)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        if f.name == "functions" and value == "hero":
            return HERO_FUNCTIONS
        problem = expected(value, "list")
        if problem:
            raise error(source, path, problem)
        if len(value) > meta.get("max_items", len(value)):
            raise error(source, path, f"{len(value):,} items; allowed: at most {meta['max_items']}")
        if dataclasses.is_dataclass(item):
            return tuple(build(item, v, f"{path}[{i}]", source) for i, v in enumerate(value))
        out = tuple(in_range(scalar(item, v, f"{path}[{i}]", source), meta, f"{path}[{i}]", source)
                    for i, v in enumerate(value))
        if meta.get("nonempty") and not out:
            raise error(source, path, "must not be empty")
        return out
    out = scalar(hint, value, path, source)
    choices = meta.get("choices")
    if choices and out not in choices:
        hint_ = did_you_mean(str(out), choices, n=1) if len(str(out)) <= 100 else ""
        raise error(source, path, f"{clip(repr(out))} is not allowed{hint_}; use one of: "
                     f"{', '.join(map(repr, choices))}")
    if meta.get("plain") and not NAME.fullmatch(out):
        raise error(source, path, f"{clip(repr(out))} is not a plain name; allowed: letters, digits, _ . - "
                     "(not starting with . or -), at most 100 characters")
    return in_range(out, meta, path, source)


def in_range(value, meta: Mapping, path: str, source: str):
    """``value`` if it lies in the field's :class:`Range` (when it has one)."""
    allowed = meta.get("range")
    if allowed is None or value in allowed:
        return value
    side = "small" if value < allowed.high else "large"
    raise error(source, path, f"{value!r} is too {side}; allowed: {allowed.describe(isinstance(value, int))}")


def check_values(obj, prefix: str, source: str) -> None:
    """Every field of a dataclass built in code, checked as a file's value would be (type, choices, range)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        if f.metadata.get("internal"):
            continue
        value, path = getattr(obj, f.name), join(prefix, key_of(f))
        if dataclasses.is_dataclass(value):
            check_values(value, path, source)
        elif isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            for i, item in enumerate(value):
                check_values(item, f"{path}[{i}]", source)
        else:
            convert(hints[f.name], list(value) if isinstance(value, tuple) else value, path, source, f)


def show(value) -> str:
    """A value's type and (clipped) text for an error line."""
    try:
        text = repr(value)
    except RecursionError:  # a list nested nearly as deep as json.loads allows
        text = "[[[...]]]" if isinstance(value, list) else "{...}"
    return f"{type(value).__name__} {clip(text)}"


def clip(text: str, most: int = 60) -> str:
    """``text``, or its start and length when longer than ``most`` (an error line stays a line to read)."""
    return text if len(text) <= most else f"{text[:most - 20]}... ({len(text):,} characters)"


_HINT_KINDS = {bool: "bool", int: "int", float: "finite", str: "string"}


def scalar(hint, value, path: str, source: str):
    """A configuration's scalar of type ``hint`` (an int stays an int; a float field takes either)."""
    if hint not in _HINT_KINDS:
        raise TypeError(f"unsupported config type {hint}")  # pragma: no cover - schema bug
    problem = expected(value, _HINT_KINDS[hint])
    if problem:
        raise error(source, path, problem)
    return float(value) if hint is float else value


# -- the kinds of value a field holds: one table for configurations and run files ------------------


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return _is_int(v) or isinstance(v, float)


KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "id": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "int": (_is_int, "an integer"),
    "number": (_is_number, "a number"),
    "finite": (lambda v: _is_number(v) and math.isfinite(v), "a finite number"),
    "text": (lambda v: isinstance(v, str), "text"),
    "string": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "object": (lambda v: isinstance(v, dict), "an object"),
    "list": (lambda v: isinstance(v, list), "a list"),
}
"""Each kind's test and its name in an error ("expected an integer >= 0, got str '1'")."""


def expected(value, kind: str, null: bool = False) -> str | None:
    """None when ``value`` is of ``kind`` (or None, with ``null``); else the problem, as "expected ..., got ..."."""
    ok, what = KINDS[kind]
    if (value is None and null) or ok(value):
        return None
    return f"expected {what}{' or null' if null else ''}, got {show(value)}"


class Bad(ValueError):
    """A value of the wrong kind in a document read back (a run file): the field and the problem; the reader
    adds the file, the line and the fix."""


def check(value, kind: str, field: str, null: bool = False):
    """``value`` if it is of ``kind`` (or None with ``null``); else :class:`Bad` naming ``field`` (the dotted
    path in its document; '' for the document itself)."""
    problem = expected(value, kind, null)
    if problem:
        raise Bad(f"{f'field {field!r}' if field else 'the document'}: {problem}")
    return value


def get(obj: dict, key: str, kind: str, prefix: str = "", null: bool = False, optional: bool = False):
    """``obj[key]`` checked to be of ``kind``; ``prefix`` is the dotted path of ``obj`` in its document.
    A missing key is :class:`Bad`, or None with ``optional``."""
    if key not in obj:
        if optional:
            return None
        raise Bad(f"field {prefix + key!r} is missing")
    return check(obj[key], kind, prefix + key, null)
