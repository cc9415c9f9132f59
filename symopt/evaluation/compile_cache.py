"""The persistent compilation cache: compiled executables on disk, shared by processes and Ray workers.

Every process that trains (the driver, each evaluator actor, ``symopt report``,
the tests) compiles the same interpreters. With this cache the first compiles
and every later one loads: JAX's own persistent cache, which keys each entry
by the computation's HLO, the compile options and the jax/jaxlib versions, so
a changed interpreter or a jax upgrade never loads a stale executable.

Where it lives: ``$SYMOPT_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/symopt``,
else ``~/.cache/symopt``; entries of one jaxlib version in ``jax-<version>/``,
at most :data:`MAX_BYTES` (least recently used out first). ``rm -rf`` the
directory clears it; ``SYMOPT_CACHE_DIR=off`` turns it off; a cache directory
that the user gave JAX itself (``JAX_COMPILATION_CACHE_DIR``) is left as it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import threading
from typing import Callable, Iterator, Sequence

import filelock
import jax
import jaxlib
from jax.experimental.compilation_cache import compilation_cache

ENV = "SYMOPT_CACHE_DIR"
OFF = ("", "0", "off", "false", "no", "none")
MAX_BYTES = 2 << 30
"""The cache's bound: past it, the least recently used entries go (this also makes JAX lock the
directory around reads and writes, so concurrent processes never read a half-written entry)."""
MIN_COMPILE_SECONDS = 0.2
"""Executables that compile faster than this are not written (the interpreters take seconds)."""

_lock = threading.Lock()
_enabled: list[pathlib.Path | None] = []  # the directory in use, once enable() ran


def cache_dir() -> pathlib.Path | None:
    """Where symopt keeps its cache (None: turned off by ``SYMOPT_CACHE_DIR``)."""
    given = os.environ.get(ENV)
    if given is not None:
        return None if given.strip().lower() in OFF else pathlib.Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "symopt"


def enable() -> pathlib.Path | None:
    """Turn the cache on in this process (idempotent); returns the entries' directory, or None when off.

    Called before an interpreter first compiles. A process that compiled something
    before still gets the cache: JAX decides once per process whether to use one,
    and this resets that decision.
    """
    with _lock:
        if _enabled:
            return _enabled[0]
        own = jax.config.jax_compilation_cache_dir
        base = None if own else cache_dir()
        path = pathlib.Path(own) if own else None if base is None else base / f"jax-{jaxlib.__version__}"
        if path is not None and not own:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OSError(f"cannot create symopt's compilation cache {path} ({e.strerror}): set {ENV} to a "
                              f"writable directory, or {ENV}=off") from e
            jax.config.update("jax_compilation_cache_dir", str(path))
            jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
            jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
            compilation_cache.reset_cache()
        _enabled.append(path)
        return path


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Nothing loads from or goes into the cache inside (benchmarks of what compiling costs)."""
    enable()
    with _lock:
        jax.config.update("jax_enable_compilation_cache", False)
        compilation_cache.reset_cache()  # JAX decided at its first compile: ask it again
    try:
        yield
    finally:
        with _lock:
            jax.config.update("jax_enable_compilation_cache", True)
            compilation_cache.reset_cache()


CLAIM_WAIT_SECONDS = 600.0
"""How long a process waits for another one's compile before it compiles the executable itself."""


def claim(key: str) -> filelock.FileLock:
    """The lock a process holds while it compiles what ``key`` names (in the cache's ``claims/``)."""
    path = enable()
    if path is None:
        raise RuntimeError(f"symopt's compilation cache is off ({ENV}): nothing to claim")
    (path / "claims").mkdir(exist_ok=True)
    return filelock.FileLock(path / "claims" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.lock")


def in_turn(builds: Sequence[tuple[str, Callable[[], object]]]) -> None:
    """Run each ``(key, build)`` once, first those that no other process is building now.

    With the cache on, two processes that need the same executables (a campaign's
    evaluators, each at the start of a stage) each compile what the other is not
    compiling and then load the rest from the cache, instead of both compiling
    everything. ``key`` names what a build compiles, the same in every process;
    a claim is a file lock, so it goes with a process that dies.
    """
    if enable() is None:
        for _, build in builds:
            build()
        return
    todo = list(builds)
    while todo:
        busy = [job for job in todo if not _built(*job, wait=0)]
        if busy and len(busy) == len(todo):  # all being compiled elsewhere: wait for the first, then load it
            _built(*busy.pop(0), wait=CLAIM_WAIT_SECONDS)
        todo = busy


def _built(key: str, build: Callable[[], object], wait: float) -> bool:
    """Build under the key's claim, waiting at most ``wait`` seconds for it; False if another process kept it
    (after a wait > 0, build anyway)."""
    lock = claim(key)
    try:
        lock.acquire(timeout=wait)
    except filelock.Timeout:
        if not wait:
            return False
        build()
        return True
    try:
        build()
    finally:
        lock.release()
    return True
