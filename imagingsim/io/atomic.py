"""Atomic file and directory writes.

A reader (or a crashed run) must never see a half-written output. Single files are written
to a temporary sibling and moved into place with :func:`os.replace` (atomic on POSIX and on
Windows within one file system). A whole output directory is built in a hidden staging
directory next to it, under a lock on the output (one writer at a time), and moved into place
only when every writer has finished: an error, Ctrl-C (``KeyboardInterrupt``) or a SIGTERM /
SIGHUP turned into an exception by the CLI leaves the old state exactly as it was, with no
staging directory behind. A run killed outright (SIGKILL) cannot clean up; its work
directories carry its pid and are removed by the next run on the same output
(:mod:`imagingsim.io.outdir`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from imagingsim.io.lock import output_lock
from imagingsim.io.outdir import check_output_dir, make_work_dir, sweep_stale

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "check_output_dir", "staged_directory"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write, moved onto ``path`` when the block succeeds.

    For writers that need a file name rather than bytes (HDF5, say). On any exception the
    temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{secrets.token_hex(4)}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary sibling, fsync, then ``os.replace``).

    Parameters
    ----------
    path : path-like
        Destination file; its directory must exist.
    data : bytes
        The complete file content.

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.
    """
    with atomic_path(path) as tmp, open(tmp, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 with ``\\n`` line endings to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold back SIGINT, SIGTERM and SIGHUP for the ``with`` block (main thread, POSIX only).

    The swap of old and new dataset is two renames; a handler that raised between them would
    leave neither in place. A signal that arrives meanwhile is delivered when the block ends.
    """
    signals = {signal.SIGINT, signal.SIGTERM} | ({signal.SIGHUP} if hasattr(signal, "SIGHUP") else set())
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def staged_directory(out: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Build an output directory in a hidden staging directory and move it into place on success.

    Parameters
    ----------
    out : path-like
        The final output directory. Its parent is created if missing.
    overwrite : bool, keyword-only
        Replace an existing imagingsim dataset at ``out``. The old dataset is removed only
        after the new one is complete and in place; until then it is untouched.

    Yields
    ------
    Path
        The staging directory (``OUT.parent/.OUT.imagingsim-staging-PID-HOST-XXXXXXXX``).

    Raises
    ------
    ValueError
        ``out`` is refused by :func:`~imagingsim.io.outdir.check_output_dir`, or another run
        holds its lock (:class:`~imagingsim.io.lock.OutputBusy`). Raised before anything is
        created.

    Notes
    -----
    The output lock is held for the whole block (shared with an enclosing
    :func:`~imagingsim.io.lock.output_lock` of the same process), and work directories left
    by killed runs are swept first. Any exception raised inside the ``with`` block,
    ``KeyboardInterrupt`` included, removes the staging directory and propagates; ``out`` is
    then exactly as before.
    """
    out = check_output_dir(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(out):
        sweep_stale(out)
        staging = make_work_dir(out, "staging")
        try:
            yield staging
            with _signals_deferred():
                _move_into_place(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def _move_into_place(staging: Path, out: Path) -> None:
    """Rename ``staging`` to ``out``; an existing ``out`` is set aside first and removed after."""
    if not (out.exists() or out.is_symlink()):
        os.replace(staging, out)
        return
    # rename(2) cannot replace a non-empty directory: move the old one aside (same file
    # system, so atomic), put the new one in place, then delete the old one.
    old = make_work_dir(out, "old")
    os.rmdir(old)
    os.replace(out, old)
    try:
        os.replace(staging, out)
    except BaseException:
        os.replace(old, out)  # put the old directory back
        raise
    if old.is_symlink():  # OUT was a link to a directory: drop the link, never the target
        old.unlink()
    else:
        shutil.rmtree(old, ignore_errors=True)
