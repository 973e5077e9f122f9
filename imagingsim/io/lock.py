"""One writer per output directory: a lock file beside ``--out`` naming its owner.

Two runs writing the same ``--out`` would both build a complete dataset and the second swap
would silently discard the first. The lock is a hidden file ``.OUT.imagingsim-lock`` next to
the output directory (not inside it: the directory itself is replaced when a run finishes).
Exclusion comes from :func:`fcntl.flock`, which the kernel releases when its owner dies,
however it dies (SIGKILL included), so a lock left by a dead run is taken over without any
guessing from pids; the file's content (pid, host, start time) only serves the messages.

On a system without :mod:`fcntl` the file is created exclusively and a lock whose owner pid is
no longer alive on this host is taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["LOCK_SUFFIX", "OutputBusy", "OutputLock", "holds_lock", "lock_path", "output_lock", "pid_alive"]

LOCK_SUFFIX = ".imagingsim-lock"

#: Output directories locked by this process, so nested users (the CLI, then the dataset
#: writer) share one lock instead of refusing each other.
_HELD: dict[Path, OutputLock] = {}


class OutputBusy(ValueError):
    """Another live run holds the lock on this output directory (one-line message)."""


@dataclass
class OutputLock:
    """A held lock on one output directory.

    Attributes
    ----------
    path : Path
        The lock file.
    fd : int
        Its open descriptor (the flock lives on it).
    previous_owner : dict or None
        The pid/host/start time recorded by a run that died holding this lock (taken over),
        else None.
    """

    path: Path
    fd: int
    previous_owner: dict | None = None


def lock_path(out: Path) -> Path:
    """The lock file of output directory ``out`` (an absolute path)."""
    return out.parent / f".{out.name}{LOCK_SUFFIX}"


def holds_lock(out: str | os.PathLike) -> bool:
    """Whether this process holds the lock on output directory ``out``."""
    return Path(os.path.abspath(out)) in _HELD


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (signal 0 probes without signalling)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _owner_record() -> bytes:
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    return (json.dumps(record) + "\n").encode()


def _read_owner(fd: int) -> dict | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        owner = json.loads(raw)
    except ValueError:
        return None
    return owner if isinstance(owner, dict) else None


def _describe(owner: dict | None) -> str:
    if not owner:
        return "another imagingsim run"
    return f"another imagingsim run (pid {owner.get('pid')} on {owner.get('host')}, started {owner.get('started')})"


def _acquire_flock(path: Path, out: Path) -> OutputLock:
    for _ in range(100):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputBusy(f"--out {out}: {_describe(_read_owner(fd))} is writing it; "
                                 "wait for it to finish or choose another --out") from None
            # The owner before us may have unlinked the file between our open and our flock:
            # then we hold a lock on a file nobody else can see. Only the file at `path` counts.
            try:
                current = os.stat(path)
            except FileNotFoundError:
                os.close(fd)
                continue
            if current.st_ino != os.fstat(fd).st_ino:
                os.close(fd)
                continue
            previous = _read_owner(fd)  # a live owner would hold the flock: this one died
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, _owner_record())
            return OutputLock(path, fd, previous)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
    raise OutputBusy(f"--out {out}: its lock file {path} keeps changing; another run is starting and stopping")


def _acquire_exclusive(path: Path, out: Path) -> OutputLock:  # pragma: no cover - Windows
    previous = None
    for _ in range(100):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            with open(path, "rb") as handle:
                owner = _read_owner(handle.fileno())
            if owner and owner.get("host") == socket.gethostname() and not pid_alive(int(owner.get("pid", 0))):
                previous = owner
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                continue
            raise OutputBusy(f"--out {out}: {_describe(owner)} is writing it; "
                             "wait for it to finish or choose another --out") from None
        os.write(fd, _owner_record())
        return OutputLock(path, fd, previous)
    raise OutputBusy(f"--out {out}: could not take its lock file {path}")


@contextlib.contextmanager
def output_lock(out: str | os.PathLike) -> Iterator[OutputLock]:
    """Hold the lock on output directory ``out`` for the ``with`` block.

    Re-entrant within one process: a nested ``output_lock`` on the same directory shares the
    outer lock. The lock file is removed on exit.

    Parameters
    ----------
    out : path-like
        The output directory (need not exist; its parent must).

    Yields
    ------
    OutputLock
        ``previous_owner`` says whether a dead run's lock was taken over.

    Raises
    ------
    OutputBusy
        A live run holds the lock (one line naming its pid, host and start time).
    """
    out = Path(os.path.abspath(out))
    held = _HELD.get(out)
    if held is not None:  # the outer block of this process owns it and releases it
        yield held
        return
    path = lock_path(out)
    lock = _acquire_flock(path, out) if fcntl is not None else _acquire_exclusive(path, out)
    _HELD[out] = lock
    try:
        yield lock
    finally:
        del _HELD[out]
        # Unlink while still holding the flock: a waiter that opened the old file sees the
        # inode change and retries on a fresh one (see _acquire_flock).
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(lock.fd)
