"""``imagingsim report DATASET --out report.html``: check the input, build, write atomically.

Writes the HTML page (figures embedded) and, beside it, ``<stem>_figures/<name>.png``: the
same figures as files for slides. Everything is built in memory first. Then the page is
written (and fsynced) to a hidden temporary file beside ``--out`` and the figures to a hidden
staging folder beside their folder; only when both are complete is the old figure folder set
aside, the new one renamed into place and the page moved onto ``--out`` with
:func:`os.replace`. A failure in any of these steps removes the new files and renames the old
figure folder back, so the previous report (page and figures) survives intact, or nothing is
left where there was none; the old folder is deleted only once the new page is in place.
(Between the two final renames a reader can see the new figures beside the old page for an
instant: two paths cannot be swapped in one atomic step.)

A bad ``DATASET`` or ``--out`` raises ``ValueError`` (one line naming it: exit 2 in the CLI);
a measurement that fails for another reason (a bug, not the input) raises
:class:`ReportFailed`, one line naming ``DATASET`` (exit 1).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from pathlib import Path

from imagingsim.io.atomic import atomic_write_bytes
from imagingsim.report.dataset import DatasetError, DatasetView


class ReportFailed(RuntimeError):
    """The report of a readable dataset could not be measured (an internal error, not bad
    input): a one-line message naming ``DATASET`` and the failure."""


def figures_dir(html_path: Path) -> Path:
    """The folder of PNG quick-looks next to ``html_path``: ``<stem>_figures``."""
    return html_path.with_name(html_path.stem + "_figures")


def default_report_path(dataset_dir: Path) -> Path:
    """Where ``simulate --report`` writes: ``<dataset>_report.html`` beside the dataset (inside
    it the page would be a file BIDS does not define)."""
    dataset_dir = Path(dataset_dir)
    return dataset_dir.with_name(dataset_dir.name + "_report.html")


def check_report_path(out: Path, *, need_folder: bool = True) -> Path:
    """``--out`` as an absolute path; ValueError (one line naming ``--out``) when it cannot be one.

    It must end in ``.html``, not be a directory, and (``need_folder``) its folder must exist.
    """
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"--out: must be an .html file; got {str(out)!r}")
    if out.is_dir():
        raise ValueError(f"--out: {out} is a directory; give an .html file path")
    parent = out.resolve().parent
    if need_folder and not parent.is_dir():
        raise ValueError(f"--out: folder {parent} does not exist")
    if figures_dir(out).exists() and not figures_dir(out).is_dir():
        raise ValueError(f"--out: {figures_dir(out)} (the figure folder) exists and is not a folder")
    return out.resolve()


def write_report(dataset: Path, out: Path, subject: str | None = None) -> tuple[Path, list[Path], float]:
    """Build the report of ``dataset`` and write it to ``out`` (see the module docstring).

    Returns
    -------
    html : Path
    pngs : list of Path
        The quick-looks, one per figure.
    seconds : float
        Wall time of the whole build.

    Raises
    ------
    ValueError
        One line naming ``DATASET``, ``--subject`` or ``--out`` for bad input (nothing written).
    ReportFailed
        One line naming ``DATASET`` when a measurement fails for another reason (nothing written).
    """
    from imagingsim import __version__
    from imagingsim.report.build import build_report
    from imagingsim.report.html import render_html

    started = time.perf_counter()
    out = check_report_path(out)
    view = DatasetView(dataset, subject)
    try:
        report = build_report(view)
    except DatasetError:
        raise
    except FileNotFoundError as exc:  # a file the dataset should hold: the input is incomplete
        raise DatasetError(f"DATASET: {exc.filename or exc} is missing (the dataset is incomplete)") from None
    except Exception as exc:  # a bug, not the input: one line, no traceback, nothing written
        message = " ".join(str(exc).split()) or "no message"
        raise ReportFailed(f"DATASET: the report of {view.root} ({view.sub}) could not be measured: "
                           f"{type(exc).__name__}: {message}") from exc
    # No clock time in the page: the same dataset gives the same bytes.
    footer = (f"imagingsim {__version__}; dataset {Path(dataset).resolve().name}, {view.sub}. "
              f"PNG copies of the figures: {figures_dir(out).name}/")
    page = render_html(report, footer)
    pngs = _write_page_and_figures(out, page.encode("utf-8"), report.figures)
    return out, pngs, time.perf_counter() - started


def _write_page_and_figures(out: Path, page: bytes, figures) -> list[Path]:
    """Write the page and the figure folder (module docstring: temp page, staged folder, swap)."""
    target = figures_dir(out)
    tag = f"{os.getpid()}-{secrets.token_hex(4)}"
    page_tmp = out.with_name(f".{out.name}.tmp-{tag}")
    staging = target.with_name(f".{target.name}.staging-{tag}")
    old = target.with_name(f".{target.name}.old-{tag}")
    swapped = False
    try:
        with open(page_tmp, "xb") as handle:
            handle.write(page)
            handle.flush()
            os.fsync(handle.fileno())
        staging.mkdir()
        for fig in figures:
            atomic_write_bytes(staging / f"{fig.name}.png", fig.png)
        if target.exists():
            os.replace(target, old)
        swapped = True
        os.replace(staging, target)
        os.replace(page_tmp, out)
    except BaseException:
        if swapped:  # put the previous figures back (or leave none where there were none)
            if target.exists() and not staging.exists():
                shutil.rmtree(target, ignore_errors=True)
            if old.exists():
                os.replace(old, target)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(page_tmp)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return [target / f"{fig.name}.png" for fig in figures]


def report_command(dataset: Path, out: Path, subject: str | None = None) -> str:
    """The CLI's work: write the report, return the summary line (naming the subject reported)."""
    html, pngs, seconds = write_report(dataset, out, subject)
    view = DatasetView(dataset, subject)  # reads two small files: which subject was reported
    which = view.sub
    if len(view.subjects) > 1:
        which += (f", {'the first ' if view.sub == view.subjects[0] else ''}of {len(view.subjects)} subjects; "
                  "--subject picks another")
    return f"wrote {html} ({which}) and {len(pngs)} figures in {figures_dir(html).name}/ ({seconds:.1f} s)"


__all__ = ["ReportFailed", "check_report_path", "default_report_path", "figures_dir", "report_command",
           "write_report"]
