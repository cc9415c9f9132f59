"""Counting XLA compilations, through ``jax.monitoring``'s backend-compile event.

    with count_compiles() as c:
        evaluate(programs, "mlp_digits")
    c.count, c.seconds, c.names

Every backend compilation (``jax.jit`` on first call, ``.lower().compile()``,
eager operations on new shapes) records one event; an executable loaded from the
persistent cache (:mod:`symopt.evaluation.compile_cache`) counts in ``c.loaded``
instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from typing import Iterator

import jax

EVENT = "/jax/core/compile/backend_compile_duration"
LOADED = "/jax/compilation_cache/cache_retrieval_time_sec"


@dataclasses.dataclass
class Compiles:
    """What a :func:`count_compiles` block compiled."""

    count: int = 0
    seconds: float = 0.0
    names: list[str] = dataclasses.field(default_factory=list)
    loaded: int = 0  # executables loaded from the persistent cache instead
    loaded_seconds: float = 0.0


_active: list[Compiles] = []
_lock = threading.Lock()
_registered = False
_thread = threading.local()  # .loaded: this thread's last compile request was served by the cache


def _listener(event: str, duration: float, **kwargs) -> None:
    if event == LOADED:  # recorded inside the request, whose own event follows in the same thread
        _thread.loaded = True
        return
    if event != EVENT:
        return
    loaded, _thread.loaded = getattr(_thread, "loaded", False), False
    with _lock:
        for c in _active:
            if loaded:
                c.loaded += 1
                c.loaded_seconds += duration
            else:
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
