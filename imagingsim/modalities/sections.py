"""What a modality contributes to the teaching report (:meth:`Modality.report_section`).

The report (:mod:`imagingsim.report`) reads a written dataset and hands each enabled modality a
*dataset view*: the files, sessions, masks and measuring helpers of that dataset, with no
modality named. The modality answers with a :class:`ReportSection`: its own figures (PNG bytes,
drawn from written data or from small simulations with its own system model), the slices it
adds to the report's overview grid, the curves it adds to the common time and depth figures,
and its row of the summary table. Every number in a section is measured, none copied from a
table.

Only plain data live here (no array library, no plotting), so the contract stays below the
report layer: the modality's ``report.py`` does the plotting and measuring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: Columns of the summary table, in order, with what each holds.
SUMMARY_COLUMNS: dict[str, str] = {
    "resolution": "measured FWHM (mm) of the modality's system response",
    "sensitivity": "smallest tumour concentration above 3 noise sd of the images (measured noise)",
    "depth": "depth limit: where the signal of the same concentration falls to 1 %",
    "time_window": "when the label is still seen (decay, persistence), measured",
    "accuracy": "tumour value against the truth (recovery), at each session",
}


def peak_value(profile) -> float:
    """Maximum of a sampled single-peaked profile: the vertex of the parabola through the highest
    sample and its two neighbours (NEMA NU 4-2008, section 3); the highest sample itself at
    an end of the profile or where the three samples do not bend down."""
    p = [float(v) for v in profile]
    k = max(range(len(p)), key=p.__getitem__)
    if 0 < k < len(p) - 1:
        a, b, c = p[k - 1], p[k], p[k + 1]
        bend = a - 2.0 * b + c
        if bend < 0.0:
            return b - (a - c) ** 2 / (8.0 * bend)
    return p[k]


def fwhm(profile, spacing_mm: float = 1.0) -> float:
    """Full width at half maximum of a single-peaked sampled profile, mm (NaN when a side of the
    peak never falls to half).

    As NEMA NU 4-2008 (section 3) prescribes: the maximum is the vertex of a parabola fitted
    through the highest sample and its two neighbours (:func:`peak_value`: the highest sample
    alone reads low when the peak falls between samples, and the width then reads wide), and
    the half-maximum crossings on either side are found by linear interpolation between the
    samples that straddle them.

    References
    ----------
    NEMA Standards Publication NU 4-2008, Performance measurements of small animal positron
    emission tomographs, section 3 (spatial resolution).
    """
    p = [float(v) for v in profile]
    k = max(range(len(p)), key=p.__getitem__)
    half = 0.5 * peak_value(p)
    left, right = k, k
    while left > 0 and p[left - 1] > half:
        left -= 1
    while right < len(p) - 1 and p[right + 1] > half:
        right += 1
    if left == 0 or right == len(p) - 1:
        return float("nan")
    x_left = left - (p[left] - half) / (p[left] - p[left - 1])
    x_right = right + (p[right] - half) / (p[right] - p[right + 1])
    return (x_right - x_left) * spacing_mm


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when that measurement cannot be made (a zero or
    non-finite denominator: an empty or signal-free region), never a ZeroDivisionError."""
    n, d = float(numerator), float(denominator)
    if d == 0.0 or not (math.isfinite(n) and math.isfinite(d)):
        return math.nan
    return n / d


def shown(value: float, spec: str, why: str, unit: str = "") -> str:
    """``value`` formatted with ``spec`` (and `` unit``), or ``"not measurable (why)"`` when it is
    NaN or infinite: the page says which measurement could not be made and why."""
    value = float(value)
    if not math.isfinite(value):
        return f"not measurable ({why})"
    return format(value, spec) + (f" {unit}" if unit else "")


class DatasetError(ValueError):
    """The dataset cannot be read or measured as written (bad input): a one-line message that
    starts with ``DATASET:``. Raised by the report's reader and by a modality's section."""


@dataclass(frozen=True)
class ReportFigure:
    """One figure: ``name`` (file-name stem, letters, digits, ``-`` and ``_``), PNG bytes, caption."""

    name: str
    png: bytes
    caption: str


@dataclass(frozen=True)
class SlicePanel:
    """A 2-D image of one session for the overview grid (the slice through the tumour).

    Attributes
    ----------
    time_h : float
        The session's schedule time, h.
    image : 2-D host array ``[u, v]``
        Shown with ``u`` horizontal and ``v`` vertical (origin lower left).
    extent_mm : (float, float, float, float)
        ``(u_min, u_max, v_min, v_max)`` in world mm (voxel edges).
    units : str
        Colour-bar label.
    label : str
        Row label (``"PET OSEM"``).
    cmap : str
        A matplotlib colour map name.
    limits : (float, float) or None
        Colour range; None: the row's 0.5th to 99.5th percentile.
    """

    time_h: float
    image: Any
    extent_mm: tuple[float, float, float, float]
    units: str
    label: str
    cmap: str = "magma"
    limits: tuple[float, float] | None = None


@dataclass(frozen=True)
class Curve:
    """A measured curve for a figure shared by all modalities (x and y as lists of floats)."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]


@dataclass(frozen=True)
class ReportSection:
    """One modality's part of the teaching report.

    Attributes
    ----------
    modality : str
        The registered name.
    title : str
        Section heading.
    paragraphs : tuple of str
        Plain-text paragraphs (escaped when rendered): what was measured and how.
    figures : tuple of ReportFigure
    slices : tuple of SlicePanel
        This modality's rows of the overview grid (one panel per session and row label).
    tbr : Curve or None
        Tumour-to-background ratio against time, h.
    depth : Curve or None
        Relative signal of the same concentration against depth below the surface, mm.
    recovery : Curve or None
        Tumour value / true value against time, h (quantitative accuracy).
    summary : dict of str to str
        The modality's row of the summary table, keys of :data:`SUMMARY_COLUMNS`.
    measurements : dict of str to float
        The numbers behind the texts, by name with units (tests check them against physics).
    """

    modality: str
    title: str
    paragraphs: tuple[str, ...] = ()
    figures: tuple[ReportFigure, ...] = ()
    slices: tuple[SlicePanel, ...] = ()
    tbr: Curve | None = None
    depth: Curve | None = None
    recovery: Curve | None = None
    summary: dict[str, str] = field(default_factory=dict)
    measurements: dict[str, Any] = field(default_factory=dict)


__all__ = ["SUMMARY_COLUMNS", "Curve", "DatasetError", "ReportFigure", "ReportSection", "SlicePanel", "fwhm",
           "peak_value", "ratio", "shown"]
