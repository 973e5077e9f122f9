"""The report's shared figures: the overview grid of slices and the curves every modality adds to.

Each function takes the :class:`~imagingsim.report.dataset.DatasetView` (for ``figure`` and
``png``) and plain data, and returns a :class:`~imagingsim.modalities.sections.ReportFigure`.
Matplotlib's object API only (no pyplot state), so figures are made the same way in a thread,
a test or a headless machine.
"""

from __future__ import annotations

import numpy as np

from imagingsim.modalities.sections import Curve, ReportFigure, SlicePanel

#: Symmetric-log threshold of time axes, h: linear in the first hour, logarithmic after.
TIME_LINTHRESH_H = 1.0


def slice_grid(view, rows: list[tuple[str, list[SlicePanel]]], times_h, name: str, caption: str) -> ReportFigure:
    """A grid: one row per ``(label, panels)``, one column per session; one colour scale per row.

    Each row shares its colour range across the sessions (the 99.5th percentile of the row),
    so that a change over time is a change of colour; each row has its colour bar with units.
    """
    n_rows, n_cols = len(rows), len(times_h)
    fig = view.figure(1.55 * n_cols + 1.4, 1.45 * n_rows + 0.5)
    axes = np.atleast_2d(fig.subplots(n_rows, n_cols, squeeze=False))
    for r, (label, panels) in enumerate(rows):
        by_time = {round(p.time_h, 6): p for p in panels}
        finite = [p.image[np.isfinite(p.image)] for p in panels]
        values = np.concatenate(finite) if finite else np.zeros(1)
        low = float(min(0.0, np.percentile(values, 0.5))) if values.size else 0.0
        high = float(np.percentile(values, 99.5)) if values.size else 1.0
        high = high if high > low else low + 1.0
        if panels and panels[0].limits is not None:
            low, high = panels[0].limits
        image = None
        for c, t in enumerate(times_h):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            panel = by_time.get(round(float(t), 6))
            if r == 0:
                ax.set_title(f"{t:g} h", fontsize=9)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
            if panel is None:
                ax.set_facecolor("#eeeeee")
                ax.text(0.5, 0.5, "not imaged", ha="center", va="center", fontsize=7, transform=ax.transAxes)
                continue
            image = ax.imshow(np.asarray(panel.image, float).T, origin="lower", extent=panel.extent_mm,
                              cmap=panel.cmap, vmin=low, vmax=high, interpolation="nearest", aspect="equal")
        if image is not None:
            bar = fig.colorbar(image, ax=list(axes[r, :]), shrink=0.9, pad=0.01)
            bar.set_label(panels[0].units if panels else "", fontsize=7)
            bar.ax.tick_params(labelsize=6)
    return ReportFigure(name, view.png(fig), caption)


def curves_figure(view, curves: list[Curve], name: str, caption: str, *, xlabel: str, ylabel: str, title: str,
                  log_y: bool = False, time_axis: bool = False, reference: float | None = None) -> ReportFigure:
    """Measured curves on one axis (markers at the measured points)."""
    fig = view.figure(6.4, 3.2)
    ax = fig.add_subplot()
    for curve in curves:
        ax.plot(curve.x, curve.y, "o-", ms=4, label=curve.label)
    if reference is not None:
        ax.axhline(reference, color="grey", lw=0.8, ls=":")
    if time_axis:
        ax.set_xscale("symlog", linthresh=TIME_LINTHRESH_H)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if curves:
        ax.legend(fontsize=7)
    return ReportFigure(name, view.png(fig), caption)


def delivery_figure(view, agent: str, blood, uptake, ledger, times_h) -> ReportFigure:
    """Blood curve, %ID/g per organ and the mass ledger of one agent (tables of the truth)."""
    fig = view.figure(11.0, 3.4)
    left, middle, right = fig.subplots(1, 3)
    left.plot(blood["time_h"], blood["whole_blood_concentration"], "-")
    left.set_xscale("symlog", linthresh=TIME_LINTHRESH_H)
    left.set_xlabel("time after injection (h)")
    left.set_ylabel("whole blood (ug/mL)")
    left.set_title(f"{agent}: blood curve", fontsize=10)
    organs = [k for k in uptake if k not in ("time", "time_h")]
    for organ in organs:
        middle.plot(uptake["time_h"], uptake[organ], "o-", ms=3, label=organ)
    middle.set_xscale("symlog", linthresh=TIME_LINTHRESH_H)
    middle.set_yscale("log")
    middle.set_xlabel("time after injection (h)")
    middle.set_ylabel("%ID/g")
    middle.set_title("uptake per tissue", fontsize=10)
    middle.legend(fontsize=6, ncol=2)
    compartments = [k for k in ledger if k not in ("time", "time_h")]
    stacked = np.array([ledger[k] for k in compartments], float)
    positions = np.arange(len(ledger["time_h"]))
    bottom = np.zeros(positions.size)
    for label, row in zip(compartments, stacked):
        right.bar(positions, row, bottom=bottom, label=label)
        bottom += row
    right.set_xticks(positions, [f"{t:g}" for t in ledger["time_h"]], fontsize=7)
    right.set_xlabel("session (h)")
    right.set_ylabel("carrier (ug)")
    right.set_title("mass ledger: where the dose is", fontsize=10)
    right.legend(fontsize=6, ncol=2)
    return ReportFigure(f"delivery_{agent}", view.png(fig),
                        f"{agent}: blood concentration, uptake per tissue and the carrier's mass ledger (truth tables).")


def misses_figure(view, agent: str, times_h, regions: dict[str, dict[str, list[float]]]) -> ReportFigure:
    """Label (carrier) against released and bound drug, per region, over the sessions."""
    fig = view.figure(4.0 * len(regions) + 1.0, 3.2)
    axes = np.atleast_1d(fig.subplots(1, len(regions)))
    for ax, (region, series) in zip(axes, regions.items()):
        for label, values in series.items():
            ax.plot(times_h, values, "o-", ms=4, label=label)
        ax.set_xscale("symlog", linthresh=TIME_LINTHRESH_H)
        ax.set_yscale("log")
        ax.set_xlabel("time after injection (h)")
        ax.set_ylabel("ug/mL")
        ax.set_title(f"{agent}: {region}", fontsize=10)
        ax.legend(fontsize=7)
    return ReportFigure(f"misses_{agent}", view.png(fig),
                        f"{agent}: what the scanner sees (the label rides the carrier) against what treats "
                        "(released and bound drug), in the tumour and its hypoxic rim.")


__all__ = ["curves_figure", "delivery_figure", "misses_figure", "slice_grid"]
