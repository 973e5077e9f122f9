"""The output directory: what may be replaced, and the hidden work directories beside it.

A run builds its dataset in a hidden *staging* directory next to ``--out`` and, with
``--overwrite``, sets the previous dataset aside as a hidden *old* directory during the swap
(:func:`imagingsim.io.atomic.staged_directory`). Both carry the owner's pid and a host tag in a
recognisable name, ``.OUT.imagingsim-staging-PID-HOST-XXXXXXXX``, so that a run killed
without a chance to clean up (SIGKILL, power loss, OOM killer) leaves debris the next run can
recognise and remove (:func:`sweep_stale`).
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import socket
import zlib
from dataclasses import dataclass
from pathlib import Path

from imagingsim.io.lock import holds_lock
from imagingsim.scenario import shorten

__all__ = [
    "StaleSweep",
    "check_output_dir",
    "is_imagingsim_dataset",
    "make_work_dir",
    "sweep_stale",
    "work_dir_pattern",
]

WORK_KINDS = ("staging", "old")
#: ``GeneratedBy`` name of a raw imagingsim dataset (:func:`is_imagingsim_dataset` looks for it;
#: :func:`imagingsim.io.sidecars.generated_by` writes it).
GENERATOR = "imagingsim"


def _host_tag() -> str:
    """Eight hex digits naming this host (hostnames can be long or contain dots)."""
    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def _work_dir_name(out: Path, kind: str) -> str:
    return f".{out.name}.imagingsim-{kind}-{os.getpid()}-{_host_tag()}-{secrets.token_hex(4)}"


#: Characters a work directory adds to the output's own name (see :func:`_work_dir_name`,
#: with a 7-digit pid): the output name must leave room for them within NAME_MAX.
WORK_NAME_OVERHEAD = len(".") + len(".imagingsim-staging-") + 7 + 1 + 8 + 1 + 8


def work_dir_pattern(out: Path) -> re.Pattern[str]:
    """Regular expression matching the work directories of output directory ``out``."""
    return re.compile(
        rf"^\.{re.escape(out.name)}\.imagingsim-(?P<kind>{'|'.join(WORK_KINDS)})"
        r"-(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-[0-9a-f]{8}$"
    )


def make_work_dir(out: Path, kind: str) -> Path:
    """Create and return a new, empty work directory of ``kind`` (staging or old) beside ``out``.

    ``os.mkdir`` (rather than :func:`tempfile.mkdtemp`, which forces mode 0700) so the final
    directory gets the ordinary permissions of the user's umask.
    """
    for _ in range(100):
        candidate = out.parent / _work_dir_name(out, kind)
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(errno.EEXIST, "could not create a work directory", str(out.parent))


def is_imagingsim_dataset(path: Path) -> bool:
    """Whether ``path`` holds a dataset this software wrote.

    Recognised by ``dataset_description.json`` whose ``GeneratedBy`` names imagingsim; a
    directory someone else made never carries that by accident.
    """
    try:
        description = json.loads((path / "dataset_description.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    generated = description.get("GeneratedBy") if isinstance(description, dict) else None
    return isinstance(generated, list) and any(
        isinstance(entry, dict) and entry.get("Name") == GENERATOR for entry in generated
    )


def _check_name_lengths(out: Path, shown: str) -> None:
    ancestor = out.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    try:
        name_max = os.pathconf(ancestor, "PC_NAME_MAX")
        path_max = os.pathconf(ancestor, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):  # pragma: no cover - no pathconf
        name_max, path_max = 255, 4096
    for part in out.parts[1:]:
        if len(os.fsencode(part)) > name_max:
            raise ValueError(f"--out {shown}: a name of {len(os.fsencode(part))} bytes; "
                             f"the file system allows {name_max}")
    if len(os.fsencode(out.name)) + WORK_NAME_OVERHEAD > name_max:
        raise ValueError(f"--out {shown}: the name must be at most {name_max - WORK_NAME_OVERHEAD} bytes "
                         f"(the staging directory beside it adds {WORK_NAME_OVERHEAD} to {name_max} allowed)")
    if len(os.fsencode(str(out))) + WORK_NAME_OVERHEAD + 256 > path_max:
        raise ValueError(f"--out {shown}: the path is {len(os.fsencode(str(out)))} bytes; "
                         f"at most {path_max - WORK_NAME_OVERHEAD - 256} leave room for the dataset's files")


def check_output_dir(out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Refuse an output directory that a build would clobber or could not create, before any work.

    Parameters
    ----------
    out : path-like
        The intended output directory; it may be absent or an empty directory, or with
        ``overwrite`` an imagingsim dataset.
    overwrite : bool, keyword-only
        Accept a directory holding an imagingsim dataset (it will be replaced). A non-empty
        directory that is not one is refused even then: it may hold the user's own files.

    Returns
    -------
    Path
        ``out`` as an absolute, resolved :class:`~pathlib.Path`.

    Raises
    ------
    ValueError
        One line: ``out`` is a symbolic-link loop, a name too long for the file system, not a
        directory, a filesystem root, a non-empty directory (without ``overwrite``, or not an
        imagingsim dataset), or cannot be created (the nearest existing ancestor is a file or
        not writable).
    """
    shown = shorten(os.fspath(out), quote=False)  # how messages echo the user's value
    try:
        out = Path(out).resolve()  # '.', '..' and symlinked parents become a real, renamable path
    except RuntimeError:  # Python < 3.13 reports a loop as RuntimeError
        raise ValueError(f"--out {shown}: a symbolic link loop") from None
    except OSError as exc:
        raise ValueError(f"--out {shown}: {exc.strerror or exc}") from None
    if out == out.parent:
        raise ValueError(f"--out {shown}: cannot write a dataset over a filesystem root")
    _check_name_lengths(out, shown)
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise ValueError(f"--out {shown}: exists and is not a directory")
        with os.scandir(out) as entries:
            empty = not any(True for _ in entries)
        if not empty and not overwrite:
            raise ValueError(f"--out {shown}: directory is not empty; pass --overwrite to replace it")
        if not empty and not is_imagingsim_dataset(out):
            raise ValueError(
                f"--out {shown}: not an imagingsim dataset (no dataset_description.json naming imagingsim); "
                "--overwrite replaces only an empty directory or an imagingsim dataset"
            )
    ancestor = out.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"--out {shown}: {shorten(str(ancestor), quote=False)} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"--out {shown}: no permission to create files in {shorten(str(ancestor), quote=False)}")
    return out


@dataclass(frozen=True)
class StaleSweep:
    """What :func:`sweep_stale` did: work directories removed, and an old dataset put back."""

    removed: tuple[Path, ...] = ()
    pids: tuple[int, ...] = ()
    restored: Path | None = None

    def message(self, out: Path) -> str | None:
        """One line for the user, or None when there was nothing to clean."""
        if not self.removed and self.restored is None:
            return None
        parts = []
        if self.restored is not None:
            parts.append(f"put back the previous dataset at {out} (a run was killed while replacing it)")
        if self.removed:
            pids = ", ".join(str(p) for p in sorted(set(self.pids)))
            parts.append(f"removed {len(self.removed)} work director{'y' if len(self.removed) == 1 else 'ies'} "
                         f"left beside it by killed runs (pid {pids})")
        return "cleaned up: " + "; ".join(parts)


def sweep_stale(out: Path) -> StaleSweep:
    """Remove the work directories that dead runs left beside ``out``; call with its lock held.

    Under the lock (:func:`imagingsim.io.lock.output_lock`) no other run can be writing
    ``out``, so every staging or old directory of ``out`` that this process did not make was
    left by a run that died without cleaning up (SIGKILL, OOM killer, power loss); pids are
    recorded only to name them. One exception is kept safe: a run killed between setting the
    previous dataset aside and moving the new one in leaves ``out`` missing and the previous
    dataset in an old directory, which is put back rather than deleted.

    Parameters
    ----------
    out : Path
        The absolute output directory.

    Returns
    -------
    StaleSweep
        What was removed or restored.
    """
    if not holds_lock(out):
        raise RuntimeError(f"sweep_stale({out}) needs the output lock held")
    pattern = work_dir_pattern(out)
    found = []
    with os.scandir(out.parent) as entries:
        for entry in entries:
            match = pattern.match(entry.name)
            if match and int(match["pid"]) != os.getpid() and (entry.is_dir(follow_symlinks=False) or entry.is_symlink()):
                found.append((match["kind"], int(match["pid"]), Path(entry.path)))
    restored = None
    if not (out.exists() or out.is_symlink()):
        olds = sorted((p for kind, _, p in found if kind == "old"), key=lambda p: p.stat().st_mtime)
        if olds:
            os.replace(olds[-1], out)
            restored = olds[-1]
    removed, pids = [], []
    for _, pid, path in found:
        if path == restored:
            continue
        if path.is_symlink():  # an output that was a link was set aside as the link itself
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
        pids.append(pid)
    return StaleSweep(tuple(removed), tuple(pids), out if restored is not None else None)
