"""Atomic file and directory writes.

A reader (or a crashed run) must never see a half-written output. Single files are written
to a temporary sibling and moved into place with :func:`os.replace` (atomic on POSIX and on
Windows within one file system). A whole output directory is built in a hidden staging
directory next to it and moved into place only when every writer has finished: an error or
Ctrl-C (``KeyboardInterrupt``) part-way leaves the old state exactly as it was, with no
staging directory behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "check_output_dir", "staged_directory"]


def _hidden_sibling(path: Path, tag: str) -> Path:
    """Create and return a new, empty, hidden directory ``.NAME.TAG-XXXXXXXX`` beside ``path``.

    ``os.mkdir`` (rather than :func:`tempfile.mkdtemp`, which forces mode 0700) so the final
    directory gets the ordinary permissions of the user's umask.
    """
    for _ in range(100):
        candidate = path.parent / f".{path.name}.{tag}-{secrets.token_hex(4)}"
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"could not create a staging directory next to {path}")


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
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{secrets.token_hex(4)}"
    try:
        with open(tmp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 with ``\\n`` line endings to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _is_nonempty_dir(path: Path) -> bool:
    with os.scandir(path) as entries:
        return any(True for _ in entries)


def check_output_dir(out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Refuse an output directory that a build would clobber, before any work is done.

    Parameters
    ----------
    out : path-like
        The intended output directory; it may be absent or an empty directory.
    overwrite : bool, keyword-only
        Accept a non-empty directory (it will be replaced).

    Returns
    -------
    Path
        ``out`` as an absolute, resolved :class:`~pathlib.Path`.

    Raises
    ------
    ValueError
        One line: ``out`` is a non-empty directory without ``overwrite``, is not a
        directory, is a filesystem root, or cannot be created (the nearest existing
        ancestor is a file or not writable).
    """
    given = out
    out = Path(out).resolve()  # '.', '..' and symlinked parents become a real, renamable path
    if out == out.parent:
        raise ValueError(f"--out {given}: cannot write a dataset over a filesystem root")
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise ValueError(f"--out {given}: exists and is not a directory")
        if not overwrite and _is_nonempty_dir(out):
            raise ValueError(f"--out {given}: directory is not empty; pass --overwrite to replace it")
    ancestor = out.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"--out {given}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"--out {given}: no permission to create files in {ancestor}")
    return out


@contextlib.contextmanager
def staged_directory(out: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Build an output directory in a hidden staging directory and move it into place on success.

    Parameters
    ----------
    out : path-like
        The final output directory. Its parent is created if missing.
    overwrite : bool, keyword-only
        Replace an existing non-empty ``out``. The old directory is removed only after the
        new one is complete and in place; until then it is untouched.

    Yields
    ------
    Path
        The staging directory (``OUT.parent/.OUT.tmp-XXXXXXXX``) to write into.

    Raises
    ------
    ValueError
        ``out`` is a non-empty directory and ``overwrite`` is false, or ``out`` exists and
        is not a directory. Raised before anything is created.

    Notes
    -----
    Any exception raised inside the ``with`` block, ``KeyboardInterrupt`` included, removes
    the staging directory and propagates; ``out`` is then exactly as before.
    """
    out = check_output_dir(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = _hidden_sibling(out, "tmp")
    try:
        yield staging
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
    old = _hidden_sibling(out, "old")
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
