"""Assemble the teaching report of a written dataset: the common sections and one per modality.

The common sections (what each modality shows, when; resolution; sensitivity; depth; time
window; what imaging misses; delivery; the summary table) are drawn here from the truth
tables and from what the modalities measured; each enabled modality adds its own section
through :meth:`~imagingsim.modalities.base.Modality.report_section`, so a new modality
brings its own part and nothing here names one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from imagingsim.modalities import registry
from imagingsim.modalities.sections import SUMMARY_COLUMNS, ReportFigure, ReportSection, SlicePanel, ratio, shown
from imagingsim.report import figures
from imagingsim.report.dataset import DatasetView


@dataclass(frozen=True)
class Part:
    """One section of the HTML page: anchor id, heading, paragraphs, figures, an optional table."""

    anchor: str
    title: str
    paragraphs: tuple[str, ...] = ()
    figures: tuple[ReportFigure, ...] = ()
    table: tuple[tuple[str, ...], ...] = ()  # first row = header


@dataclass(frozen=True)
class Report:
    """The whole report: title, lead paragraph, parts in order, and each modality's section."""

    title: str
    lead: str
    parts: tuple[Part, ...]
    sections: dict[str, ReportSection] = field(default_factory=dict)

    @property
    def figures(self) -> tuple[ReportFigure, ...]:
        return tuple(f for part in self.parts for f in part.figures)


def build_report(view: DatasetView) -> Report:
    """Every section of the report of ``view``'s subject (figures as PNG bytes, nothing written)."""
    sections: dict[str, ReportSection] = {}
    for name in registry.acquisition_order(view.enabled):
        modality = registry.get(name)
        if modality.summary_needs_tumour and not view.has_tumour:
            continue
        section = modality.report_section(view)
        if section is not None:
            sections[name] = section
    agents = [a.name for a in view.scenario.agents]
    scenario = view.scenario
    lead = lead_text(view, agents)
    parts = [
        _overview(view, sections, agents),
        _resolution(view, sections),
        _sensitivity(sections),
        _depth(view, sections),
        _time_window(view, sections),
        *_misses(view, agents),
        *_delivery(view, agents),
        *[Part(f"modality-{name}", s.title, s.paragraphs, s.figures) for name, s in sections.items()],
        _summary(sections),
    ]
    return Report(title=f"imagingsim teaching report: {scenario.name}", lead=lead,
                  parts=tuple(p for p in parts if p is not None), sections=sections)


def lead_text(view: DatasetView, agents: list[str]) -> str:
    """The page's lead: scenario, subject (and which of several), agents, sessions, modalities."""
    scenario = view.scenario
    others = ("" if len(view.subjects) < 2 else
              f" The dataset holds {len(view.subjects)} subjects ({', '.join(view.subjects)}); this page reports "
              f"{view.sub} only{' (the first)' if view.sub == view.subjects[0] else ''}: choose another with --subject.")
    lead = (f"Scenario {scenario.name} (subject {view.sub}, seed {scenario.seed}): agents {', '.join(agents)}; "
            f"sessions at {', '.join(f'{t:g}' for t in view.times_h)} h; modalities "
            f"{', '.join(registry.get(m).title for m in view.enabled)}. Every number below is measured from the "
            "written images and truth of this dataset or from small simulations with the modalities' own system "
            "models; none is copied from a table." + others)
    return lead


def _truth_rows(view: DatasetView, agent: str) -> list[tuple[str, list[SlicePanel]]]:
    rows = []
    for quantity, label in (("Carrier", "carrier"), ("FreeDrug", "released drug"), ("BoundDrug", "bound drug")):
        panels = []
        for t in view.times_h:
            path = view.find(view.truth_dir("delivery", t), f"*_desc-{agent}{quantity}_conc.nii.gz")
            if path is None:
                continue
            array, affine = view.load(path)
            plane, extent = view.axial_plane(array, affine)
            panels.append(SlicePanel(t, plane, extent, "ug/mL", f"truth: {agent} {label}", "viridis"))
        if panels:
            rows.append((f"truth: {label}", panels))
    return rows


def _overview(view: DatasetView, sections, agents) -> Part:
    rows = _truth_rows(view, agents[0]) if agents else []
    for section in sections.values():
        labels = dict.fromkeys(p.label for p in section.slices)
        rows += [(label, [p for p in section.slices if p.label == label]) for label in labels]
    z = view.tumour_centre_mm[2]
    grid = figures.slice_grid(
        view, rows, view.times_h, "overview",
        f"The axial slice through the tumour centre (z = {z:.1f} mm) for every session: the truth of "
        f"{agents[0] if agents else 'the agent'} (carrier, released drug, bound drug) and what each modality "
        "reconstructs. One colour scale per row, shared over time.")
    return Part("overview", "What each modality shows, when",
                (("Rows: the ground truth, then each modality's image of the same slice (a planar modality: its "
                 "image of the whole body seen from one side). Columns: the sessions."),), (grid,))


def _summary_column(sections, key: str) -> list[tuple[str, str]]:
    return [(s.title, s.summary.get(key, "n/a")) for s in sections.values()]


def _resolution(view, sections) -> Part:
    rows = [("modality", "measured resolution")] + _summary_column(sections, "resolution")
    curves = [s.recovery for s in sections.values() if s.recovery is not None]
    figs = ()
    if curves:
        figs = (figures.curves_figure(
            view, curves, "recovery",
            "Tumour value / true value per session (partial volume, corrections, calibration).",
            xlabel="time after injection (h)", ylabel="measured / true", title="Partial-volume recovery of the tumour",
            time_axis=True, reference=1.0),)
    return Part("resolution", "Resolution and partial volume",
                (("Each modality's FWHM is measured on a point or line source simulated with its own system model "
                 "(or from the PSF of its written sampling), and the tumour's recovery from its images against the "
                 "truth: what a few millimetres of blur do to a tumour a few millimetres across."),),
                figs, tuple(rows))


def _sensitivity(sections) -> Part:
    rows = [("modality", "smallest detectable concentration (3 noise sd)")] + _summary_column(sections, "sensitivity")
    return Part("sensitivity", "Sensitivity",
                (("Noise is measured in the images (the standard deviation over reference soft tissue, or the measured "
                 "minus the noise-free image), the signal per unit concentration from the tumour against the truth; "
                 "the smallest concentration that stands 3 noise sd above the background (Rose criterion) follows."),),
                (), tuple(rows))


def _depth(view, sections) -> Part | None:
    curves = [s.depth for s in sections.values() if s.depth is not None]
    if not curves:
        return None
    fig = figures.curves_figure(
        view, curves, "depth",
        "Relative signal of the same concentration against depth below the skin, each curve as its modality "
        "measures it (a point source in reference tissue for optical imaging; measured/true in soft tissue for "
        "the tomographic ones).",
        xlabel="depth below the surface (mm)", ylabel="relative signal", title="Depth: who cares?",
        log_y=True, reference=1.0)
    rows = [("modality", "depth limit")] + _summary_column(sections, "depth")
    return Part("depth", "Depth", (("Light is absorbed and scattered on its way in and out, so an optical "
                                   "signal falls exponentially with depth; a tomographic modality reconstructs a "
                                   "local quantity and does not care (it reads low within about one resolution "
                                   "width of the skin: partial volume with the air outside, not depth)."),), (fig,), tuple(rows))


def _time_window(view, sections) -> Part | None:
    curves = [s.tbr for s in sections.values() if s.tbr is not None]
    if not curves:
        return None
    fig = figures.curves_figure(view, curves, "tbr", "Tumour-to-background ratio per session, each modality's "
                                "own measure (image means over the tumour and the reference soft tissue).",
                                xlabel="time after injection (h)", ylabel="tumour / background",
                                title="Tumour-to-background ratio over time", time_axis=True, reference=1.0)
    rows = [("modality", "time window")] + _summary_column(sections, "time_window")
    return Part("time-window", "Time window",
                (("Radioactive labels decay (see each modality's section for counts against time), iron oxide and "
                 "gold stay; the tumour's contrast grows as the carrier accumulates and the blood clears."),),
                (fig,), tuple(rows))


def _region_means(view, agent, quantity, region) -> list[float]:
    values = []
    for t in view.times_h:
        path = view.find(view.truth_dir("delivery", t), f"*_desc-{agent}{quantity}_conc.nii.gz")
        values.append(view.roi_mean(view.load(path)[0], region) if path is not None else math.nan)
    return values


def _misses(view, agents) -> list[Part]:
    parts = []
    if not view.has_tumour:
        return parts
    for agent in agents:
        regions = {}
        for region_name, mask in (("tumour", view.tumour), ("hypoxic rim", view.hypoxic_rim)):
            if not mask.any():
                continue
            series = {"label (carrier)": _region_means(view, agent, "Carrier", mask)}
            for quantity, label in (("FreeDrug", "released drug"), ("BoundDrug", "bound drug")):
                values = _region_means(view, agent, quantity, mask)
                if not all(math.isnan(v) for v in values):
                    series[label] = values
            regions[region_name] = series
        if not regions or all(len(s) == 1 for s in regions.values()):
            continue
        fig = figures.misses_figure(view, agent, view.times_h, regions)
        header = ("region", "quantity (ug/mL)") + tuple(f"{t:g} h" for t in view.times_h)
        rows = [header] + [(r, q) + tuple(f"{v:.3g}" for v in values)
                           for r, series in regions.items() for q, values in series.items()]
        tumour = regions.get("tumour", {})
        text = ("The scanner sees the label, which rides the carrier; the drug treats only once released, and "
                "acts where it binds.")
        if "released drug" in tumour:
            per_carrier = [ratio(d, c) for d, c in zip(tumour["released drug"], tumour["label (carrier)"])]
            text += (" Released drug per carrier in the tumour: "
                     + ", ".join(shown(r, ".2g", "no carrier in the tumour") for r in per_carrier)
                     + " ug/ug over the sessions: the image of the label overstates the drug that acts.")
        parts.append(Part(f"misses-{agent}", f"What imaging misses: {agent}", (text,), (fig,), tuple(rows)))
    return parts


def _delivery(view, agents) -> list[Part]:
    parts = []
    folder = view.truth_dir("delivery")
    for agent in agents:
        blood = view.find(folder, f"*_desc-{agent}Carrier_bloodcurve.tsv")
        uptake = view.find(folder, f"*_desc-{agent}Carrier_uptake.tsv")
        ledger = view.find(folder, f"*_desc-{agent}Carrier_ledger.tsv")
        if not (blood and uptake and ledger):
            continue
        tables = [view.table(p) for p in (blood, uptake, ledger)]
        fig = figures.delivery_figure(view, agent, *tables, view.times_h)
        last = tables[2]
        total = sum(last[k][-1] for k in last if k not in ("time", "time_h"))
        where = sorted(((last[k][-1], k) for k in last if k not in ("time", "time_h")), reverse=True)[:3]
        text = (f"At {last['time_h'][-1]:g} h the carrier's ledger holds {total:.4g} ug: "
                + ", ".join(f"{k} {shown(100 * ratio(v, total), '.1f', 'the ledger is empty', '%')}" for v, k in where)
                + ".")
        parts.append(Part(f"delivery-{agent}", f"Delivery: {agent}", (text,), (fig,)))
    return parts


def _summary(sections) -> Part:
    header = ("modality",) + tuple(SUMMARY_COLUMNS)
    rows = [header] + [(s.title,) + tuple(s.summary.get(k, "n/a") for k in SUMMARY_COLUMNS) for s in sections.values()]
    text = "; ".join(f"{k}: {v}" for k, v in SUMMARY_COLUMNS.items())
    return Part("summary", "Summary: modality trade-offs, measured", (text,), (), tuple(rows))


__all__ = ["Part", "Report", "build_report", "lead_text"]
