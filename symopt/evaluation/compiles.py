"""Counting XLA compilations, through ``jax.monitoring``'s backend-compile event.

    with count_compiles() as c:
        evaluate(programs, "mlp_digits")
    c.count, c.seconds, c.names

Every backend compilation (``jax.jit`` on first call, ``.lower().compile()``,
eager operations on new shapes) records one event; a compilation served from
JAX's persistent cache records none.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from typing import Iterator

import jax

EVENT = "/jax/core/compile/backend_compile_duration"


@dataclasses.dataclass
class Compiles:
    """What a :func:`count_compiles` block compiled."""

    count: int = 0
    seconds: float = 0.0
    names: list[str] = dataclasses.field(default_factory=list)


_active: list[Compiles] = []
_lock = threading.Lock()
_registered = False


def _listener(event: str, duration: float, **kwargs) -> None:
    if event != EVENT:
        return
    with _lock:
        for c in _active:
            c.count += 1
            c.seconds += duration
            c.names.append(str(kwargs.get("fun_name", "?")))


@contextlib.contextmanager
def count_compiles() -> Iterator[Compiles]:
    """Count the XLA compilations in a block (all threads)."""
    global _registered
    with _lock:
        if not _registered:
            jax.monitoring.register_event_duration_secs_listener(_listener)
            _registered = True
        c = Compiles()
        _active.append(c)
    try:
        yield c
    finally:
        with _lock:
            _active.remove(c)
