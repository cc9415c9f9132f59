"""Writing a run directory so that nothing is lost or shared: one writer, durable files, one-line errors.

* :class:`DirLock` locks a directory for one process (``fcntl.flock`` on ``DIR/.lock``,
  released by the kernel when the process ends, SIGKILL included, so no stale lock
  is ever left); a second process gets :class:`Busy`, naming the holder's PID.
* :func:`atomic_write` replaces a file whole: a unique temporary file (created
  exclusively, never through a link), fsynced, renamed over the target, and the
  directory fsynced, so a crash leaves the old file or the new one.
* :class:`AppendLog` appends lines to a file, each written whole and fsynced before
  :meth:`~AppendLog.append` returns; a failed write is cut back off the file.

Every failure to write becomes :class:`WriteError`, one line naming the file and the cause.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pathlib
import tempfile
import threading

LOCK_NAME = ".lock"

_held: dict[str, list] = {}  # realpath -> [thread id, depth, fd]: locks this process holds
_held_guard = threading.Lock()


class Busy(RuntimeError):
    """The run directory is locked by another process (or another thread of this one)."""


class WriteError(OSError):
    """A run-directory file could not be written; ``str()`` is one line naming the file, the cause and the fix."""


def write_error(path: str | os.PathLike, e: OSError, resumable: bool = False) -> WriteError:
    """``e`` as a :class:`WriteError` naming ``path``; ``resumable``: what is written so far is kept."""
    if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        fix = "free disk space (or raise the file-size limit, ulimit -f)"
    elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "choose a writable run directory (--run-dir)"
    elif e.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        fix = "choose a run directory (--run-dir) that is a directory or does not exist yet"
    else:
        fix = "check the path"
    if resumable:
        fix += "; everything logged so far is kept: run the same command again with --resume"
    out = WriteError(f"cannot write {path}: {e.strerror or e}; {fix}")
    out.errno = e.errno
    return out


def fsync_dir(path: str | os.PathLike) -> None:
    """Make the directory's entries (a new or renamed file in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dir(path: pathlib.Path) -> None:
    """Create ``path`` (and its parents) unless it exists, durably. Raises WriteError."""
    if path.exists() and not path.is_dir():
        raise WriteError(f"run directory {path} is a file, not a directory; choose another --run-dir")
    if path.is_dir():
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
        fsync_dir(path.parent)
    except OSError as e:
        raise write_error(path, e) from None


class DirLock:
    """An exclusive lock on a directory (created if missing) for this process: ``with DirLock(d): ...``.

    ``fcntl.flock`` on ``d/.lock``, which holds the PID of the holder. Re-entrant within
    one thread (the command line locks the run directory before it starts Ray, and the
    campaign locks it again); any other holder is refused with :class:`Busy`.
    """

    def __init__(self, directory: str | os.PathLike):
        self.path = pathlib.Path(directory)
        self._key: str | None = None

    def acquire(self) -> "DirLock":
        """Take the lock. Raises Busy (someone else holds it) or WriteError (the directory cannot be made)."""
        make_dir(self.path)
        key = os.path.realpath(self.path)
        with _held_guard:
            mine = _held.get(key)
            if mine is not None and mine[0] != threading.get_ident():
                raise Busy(f"run directory {self.path} is in use by another thread of this process "
                           f"(pid {os.getpid()})")
            if mine is not None:
                mine[1] += 1
                self._key = key
                return self
        lock = self.path / LOCK_NAME
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise write_error(lock, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise Busy(f"run directory {self.path} is in use by another symopt process (pid {holder}, which "
                       f"holds {lock}); wait for it to end or stop it, or choose another --run-dir") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the lock holds without the PID note (a full disk): a second process then reads "pid unknown"
        with _held_guard:
            _held[key] = [threading.get_ident(), 1, fd]
        self._key = key
        return self

    def release(self) -> None:
        """Let go (the file stays; the kernel also lets go when the process ends, however it ends)."""
        if self._key is None:
            return
        with _held_guard:
            entry = _held[self._key]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[self._key]
                os.close(entry[2])
        self._key = None

    def __enter__(self) -> "DirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def atomic_write(path: pathlib.Path, text: str) -> None:
    """Replace ``path`` with ``text`` durably: temporary file, fsync, rename, fsync of the directory."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise write_error(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a run directory's files are as readable as the others
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise write_error(path, e, resumable=True) from None


class AppendLog:
    """A file that grows by whole lines, each fsynced before :meth:`append` returns (or, with
    ``sync=False``, at the next :meth:`sync`: a group commit, one fsync for many lines).

    A write that fails (a full disk) is cut back off the file, so the file always ends
    on a whole line; the error is a :class:`WriteError`.
    """

    def __init__(self, path: pathlib.Path, truncate_to: int | None = None):
        self.path = path
        try:
            new = not path.exists()
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
            if truncate_to is not None and truncate_to < os.fstat(self.fd).st_size:
                os.ftruncate(self.fd, truncate_to)
            os.fsync(self.fd)
            if new:
                fsync_dir(path.parent)
            self.size = self.synced = os.fstat(self.fd).st_size  # bytes written / bytes made durable
        except OSError as e:
            raise write_error(path, e) from None

    def append(self, line: str, sync: bool = True) -> None:
        data = (line + "\n").encode("utf-8")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)
            raise write_error(self.path, e, resumable=True) from None
        self.size += len(data)
        if sync:
            self.sync()

    def sync(self) -> None:
        """Make every line appended so far durable: one fsync (none when nothing is pending).

        When it fails, the lines since the last sync are cut back off the file."""
        if self.synced == self.size:
            return
        try:
            os.fsync(self.fd)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.synced)
            self.size = self.synced
            raise write_error(self.path, e, resumable=True) from None
        self.synced = self.size

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
