"""One core per evaluator process: CPU affinity, and a lock file per core so that pools on one machine share out.

A process takes core ``slot % n`` of the cores it may use, or the next one that
no other symopt process on the machine holds: a ``flock`` on
``$TMPDIR/symopt-cores-UID/cpuK.lock``, released by the kernel when the process
dies, even by SIGKILL, so a replacement takes its predecessor's core.

The lock directory is shared state in a world-writable place, so it is trusted
only when this user made it: created 0700, refused when it is a symbolic link or
belongs to someone else (then the process pins to the slot's core without a
lock, and says why), tightened to 0700 when it is ours but open to others. Lock
files are opened relative to the directory's descriptor, never truncated, and
never through a symbolic link (``O_NOFOLLOW``).
"""

from __future__ import annotations

import fcntl
import os
import pathlib
import stat
import tempfile
from typing import Iterable

_held: int | None = None  # descriptor of the lock file of the core this process holds (released at exit)


class LockDirError(OSError):
    """The core-lock directory cannot be trusted or used (the message says why and what to do)."""


def lock_dir_path() -> pathlib.Path:
    """``$TMPDIR/symopt-cores-UID`` (``/tmp`` without ``TMPDIR``)."""
    return pathlib.Path(tempfile.gettempdir()) / f"symopt-cores-{os.getuid()}"


def open_lock_dir(path: pathlib.Path | None = None) -> int:
    """A descriptor of the lock directory, created 0700 if missing; raises :class:`LockDirError` if it is not ours."""
    path = lock_dir_path() if path is None else path
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise LockDirError(f"cannot create the core-lock directory {path}: {e.strerror}") from e
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise LockDirError(f"the core-lock directory {path} is not a directory (or is a symbolic link): "
                           f"remove it, or set TMPDIR elsewhere") from e
    st = os.fstat(fd)
    if st.st_uid != os.getuid():
        os.close(fd)
        raise LockDirError(f"the core-lock directory {path} belongs to uid {st.st_uid}, not to you "
                           f"(uid {os.getuid()}): refusing it; remove it, or set TMPDIR elsewhere")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.fchmod(fd, 0o700)
    return fd


def try_lock(dir_fd: int, core: int) -> int | None:
    """The descriptor of ``cpuK.lock`` locked for this process, or None when another process holds it."""
    fd = os.open(f"cpu{core}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def pin_to_core(slot: int, cores: Iterable[int] | None = None) -> tuple[int, str | None]:
    """Pin every thread of this process to one core: (the core, why it holds no lock or None).

    Call it before JAX starts: XLA sizes its thread pool from the affinity mask.
    """
    global _held
    cores = sorted(cores if cores is not None else os.sched_getaffinity(0))
    start = slot % len(cores)
    order = cores[start:] + cores[:start]
    chosen, problem = None, None
    try:
        dir_fd = open_lock_dir()
        try:
            for core in order:
                fd = try_lock(dir_fd, core)
                if fd is not None:
                    _held, chosen = fd, core
                    break
        finally:
            os.close(dir_fd)
    except OSError as e:  # the slot's core, unlocked
        problem = str(e) if isinstance(e, LockDirError) else f"core lock in {lock_dir_path()}: {e}"
    if chosen is None:  # no lock, or every core held by other symopt processes: share the slot's core
        chosen = order[0]
    for tid in os.listdir("/proc/self/task"):  # threads that exist now; later ones inherit the mask
        try:
            os.sched_setaffinity(int(tid), {chosen})
        except OSError:
            pass
    return chosen, problem
