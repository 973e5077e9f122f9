"""CT's section of the teaching report (gold / iodine contrast in HU), measured from the written dataset.

- **Resolution**: a line source projected by CT's parallel-beam projector (the geometry of the
  written sidecar: views, bins) and reconstructed with CT's own FBP filter and cut-off; the
  FWHM of its profile (the linear part of the CT chain: the spectrum changes the contrast,
  not the width).
- **Sensitivity**: noise = the HU standard deviation over the reference soft tissue; the gold
  (or iodine) contrast per mg/mL is measured from the tumour's HU against the true contrast
  concentration (between the first and the other sessions, so the tissue's own HU cancels).
- **Time window**: tumour HU over the sessions (metal nanoparticles persist; no decay).

References
----------
Gold nanoparticle CT contrast: Hainfeld et al., Br J Radiol 2006;79:248. NEMA/IEC line-source
resolution, FWHM by interpolation.
"""

from __future__ import annotations

import math

import numpy as np

from imagingsim.backend import get_backend
from imagingsim.modalities.sections import Curve, ReportFigure, ReportSection, SlicePanel, fwhm, ratio, shown
from imagingsim.projectors import ParallelBeamGeometry, ParallelProjector, PixelBackprojector
from imagingsim.recon import fbp


def line_source_fwhm_mm(pixel_mm: float, n_views: int, filter_name: str, cutoff: float, *, n_pixels: int = 64) -> float:
    """FWHM (mm) of a line source (one pixel, off-axis) through CT's projector and FBP."""
    be = get_backend("numpy")
    xp = be.xp
    geometry = ParallelBeamGeometry.covering((n_pixels, n_pixels), (pixel_mm, pixel_mm), n_views)
    image = np.zeros((n_pixels, n_pixels, 1), np.float32)
    i0 = n_pixels // 2 + 3
    image[i0, n_pixels // 2, 0] = 1.0
    sinogram = ParallelProjector(geometry, 1, be).apply(xp.asarray(image, device=be.device))
    recon = be.to_host(fbp(sinogram, PixelBackprojector(geometry, 1, be), filter_name=filter_name, cutoff=cutoff))[..., 0]
    return 0.5 * (fwhm(recon[:, n_pixels // 2]) + fwhm(recon[i0, :])) * pixel_mm


def report_section(view) -> ReportSection | None:
    """CT's section of the report (see the module docstring)."""
    sessions = [t for t in view.times_h if view.find(view.images_dir("ct", t), "*_ct.nii.gz") is not None]
    if not sessions:
        return None
    slices, hu_t, hu_b, noise, mu_ratio = [], [], [], [], []
    contrast = {}  # session time (h) -> true contrast in the tumour, mg/mL: only sessions with a truth file
    element = None
    for t in sessions:
        path = view.find(view.images_dir("ct", t), "*_ct.nii.gz")
        hu, affine = view.load(path)
        plane, extent = view.axial_plane(hu, affine)
        # A soft-tissue window, where tens of HU of gold show (bone saturates, as on a scanner).
        slices.append(SlicePanel(t, plane, extent, "HU (window -200..400)", "CT", "gray", (-200.0, 400.0)))
        hu_t.append(view.roi_mean(hu, view.tumour))
        hu_b.append(view.roi_mean(hu, view.background))
        noise.append(view.roi_sd(hu, view.background))
        mu_ratio.append(ratio(1000.0 + hu_t[-1], 1000.0 + hu_b[-1]))
        conc = view.find(view.truth_dir("ct", t), "*_desc-*_conc.nii.gz")
        if conc is not None:
            element = conc.name.split("desc-")[1].split("_")[0]
            contrast[t] = view.roi_mean(view.load(conc)[0], view.tumour)
    sidecar = view.sidecar(view.find(view.images_dir("ct", sessions[0]), "*_ct.nii.gz"))
    pixel = float(abs(view.labels[1][0, 0]))
    measured_fwhm = line_source_fwhm_mm(pixel, int(sidecar.get("NumberOfViews", 360)), sidecar.get("ReconFilterType", "ramp"),
                               float(sidecar.get("ReconFilterCutoff_fractionOfNyquist", 1.0)))
    # HU per mg/mL: tumour HU against the true concentration over the sessions (least squares),
    # so that the tissue's own HU drops out; one session: against the reference tissue instead.
    # Paired by session, so that a session without a truth file does not shift the pairs.
    hu_of, background_of = dict(zip(sessions, hu_t)), dict(zip(sessions, hu_b))
    paired = [(t, c, hu_of[t]) for t, c in contrast.items() if math.isfinite(c) and math.isfinite(hu_of[t])]
    slope = math.nan
    if len(paired) >= 2 and np.ptp([c for _, c, _ in paired]) > 0:
        slope = float(np.polyfit([c for _, c, _ in paired], [h for _, _, h in paired], 1)[0])
    elif paired and paired[0][1] > 0:
        t, c, h = paired[0]
        slope = ratio(h - background_of[t], c)
    detect = view.detectable(float(np.mean(noise)), slope)
    summary = {
        "resolution": f"{measured_fwhm:.2f} mm (line source, {sidecar.get('ReconFilterType', 'ramp')} FBP, {pixel:g} mm pixel)",
        "sensitivity": shown(detect, ".3g", "no HU rise with the true contrast", f"mg/mL {element}") if element else "n/a",
        "depth": "none: transmission through the whole body, reconstructed",
        "time_window": "no decay: tumour HU " + ", ".join(f"{v:.0f}" for v in hu_t),
        "accuracy": (shown(slope, ".1f", "the true contrast does not vary", f"HU per mg/mL {element} measured")
                     if element else "n/a"),
    }
    paragraphs = (
        (f"Tumour HU {', '.join(f'{v:.0f}' for v in hu_t)} against soft tissue {', '.join(f'{v:.0f}' for v in hu_b)} "
        f"at {', '.join(f'{t:g}' for t in sessions)} h; noise {np.mean(noise):.1f} HU (sd over soft tissue)."),
        (f"True {element} in the tumour " + ", ".join(f"{v:.3g} at {t:g} h" for t, v in contrast.items())
         + f" (mg/mL): {shown(slope, '.1f', 'the true contrast does not vary', 'HU per mg/mL')} measured, so the "
         f"smallest excess CT sees at 3 noise sd is {shown(detect, '.3g', 'no HU rise measured', 'mg/mL')}. "
         "CT needs milligrams per mL "
         "where the nuclear modalities need nanograms: it shows anatomy and a lot of metal.") if element else
        "No contrast element in this scenario.",
    )
    figures = (_hu_figure(view, sessions, hu_t, hu_b, contrast, element),)
    return ReportSection(
        modality="ct", title="CT", paragraphs=paragraphs, figures=figures, slices=tuple(slices),
        tbr=Curve("CT mu ratio (HU+1000)", tuple(sessions), tuple(mu_ratio)), depth=None, recovery=None,
        summary=summary, measurements={"fwhm_mm": measured_fwhm, "hu_tumour": tuple(hu_t), "hu_background": tuple(hu_b),
                                       "hu_per_mg_per_ml": slope,
                                       "detectable_mg_per_ml": detect, "noise_hu": tuple(noise),
                                       "contrast_mg_per_ml": dict(contrast)})


def _hu_figure(view, sessions, hu_t, hu_b, contrast, element) -> ReportFigure:
    fig = view.figure(6.0, 3.0)
    ax = fig.add_subplot()
    ax.plot(sessions, hu_t, "o-", label="tumour")
    ax.plot(sessions, hu_b, "s--", label="soft tissue")
    ax.set_xlabel("time after injection (h)")
    ax.set_ylabel("mean HU")
    if contrast:
        twin = ax.twinx()
        twin.plot(list(contrast), list(contrast.values()), "^:", color="goldenrod", label=f"true {element}")
        twin.set_ylabel(f"true {element} in tumour (mg/mL)")
        twin.legend(fontsize=8, loc="lower right")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("CT contrast over time", fontsize=10)
    return ReportFigure("ct_contrast", view.png(fig), "Tumour and soft-tissue HU per session beside the true contrast.")
