"""NIR fluorescence's section of the teaching report, measured from the written dataset.

- **Depth**: a point source of dye at each depth of a block of the reference tissue, imaged
  with NIRF's own image model (:class:`~imagingsim.modalities.nirf.surface.SurfaceModel`:
  excitation fluence, escape, the layer's PSF); the slope of ``ln(signal)`` beyond the first
  transport lengths is fitted and set beside diffusion theory's
  ``mu_eff(excitation) + mu_eff(emission)`` (epi-illumination: the light goes in and comes
  out). The written ``depthsensitivity`` table of the camera set-up is drawn beside it.
- **Noise and sensitivity**: noise = the measured image minus the noise-free image (both
  written) over the body; signal per nmol/mL of dye = the tumour footprint's excess over the
  rest of the body divided by the dye excess in the tumour (truth).
- **Resolution**: the surface PSF width of a source at 1 and 5 mm depth (from the same table).

References
----------
Diffusion theory of a semi-infinite medium: Haskell et al., JOSA A 1994;11:2727. Depth
limits of NIR fluorescence: Ntziachristos, Nat Methods 2010;7:603.
"""

from __future__ import annotations

import math

import numpy as np

from imagingsim.backend import get_backend
from imagingsim.modalities.nirf.optics import diffusion
from imagingsim.modalities.nirf.surface import VIEWS, SurfaceModel
from imagingsim.modalities.nirf.tables import fluorophore, optics_table, tissue_optics
from imagingsim.modalities.sections import Curve, ReportFigure, ReportSection, SlicePanel, ratio, shown

#: Fitted depths of the attenuation slope, mm: beyond the first transport lengths (z0, zb ~ 1-3 mm
#: in tissue), where diffusion theory's exponential holds, and above the camera's floor.
SLOPE_DEPTHS_MM = (4.0, 15.0)


def depth_slope_per_mm(depth_mm, signal) -> float:
    """``-d ln(signal) / d depth`` fitted (least squares) over :data:`SLOPE_DEPTHS_MM`, 1/mm."""
    d, s = np.asarray(depth_mm, float), np.asarray(signal, float)
    keep = (d >= SLOPE_DEPTHS_MM[0]) & (d <= SLOPE_DEPTHS_MM[1]) & (s > 0)
    return float(-np.polyfit(d[keep], np.log(s[keep]), 1)[0])


def point_source_depth_curve(dye: str, window: str, *, voxel_mm: float = 0.5, max_depth_mm: float = 15.0,
                             step_mm: float = 1.0, width_mm: float = 60.0):
    """Detected light of a point source of dye against its depth, by NIRF's own image model.

    A homogeneous block of the reference tissue (its optics at the dye's excitation line and
    emission band), broad epi-illumination, a source of unit strength in one voxel under the
    centre of the image: the whole image's light per unit irradiance
    (:meth:`~imagingsim.modalities.nirf.surface.SurfaceModel.fluorescence`: excitation fluence
    x escape x the layer's PSF), every ``step_mm`` of depth. The image is ``width_mm`` wide, so
    that the light of the deepest source (FWHM ~20 mm at 15 mm) stays in it.

    Returns
    -------
    depths_mm : ndarray
    totals : ndarray
        Light leaving the surface (photons per unit transmitted irradiance, image sum).
    mu_eff_per_mm : (float, float)
        Diffusion theory's ``mu_eff`` at the excitation and emission wavelengths.
    """
    be = get_backend("numpy")
    xp = be.xp
    table = optics_table()
    data = fluorophore(dye)
    ex = tissue_optics(table.reference_tissue, data.excitation_nm)
    em = tissue_optics(table.reference_tissue, data.windows[window].centre_nm)
    layers = round(max_depth_mm / voxel_mm) + 1
    n = 2 * round(0.5 * width_mm / voxel_mm) + 1
    shape = (layers + 2, n, n)

    def const(value):
        return xp.full(shape, value, dtype=xp.float64, device=be.device)

    model = SurfaceModel.build(xp.ones(shape, dtype=xp.bool, device=be.device), tuple(map(const, ex)),
                               tuple(map(const, em)), (voxel_mm,) * 3, window, "epi", be)
    depths, totals = [], []
    for k in range(0, layers, max(1, round(step_mm / voxel_mm))):
        source = np.zeros(shape)
        source[k, n // 2, n // 2] = 1.0 / model.voxel_volume_mm3
        totals.append(be.scalar(xp.sum(model.fluorescence(be.from_host(source)))))
        depths.append((k + 0.5) * voxel_mm)
    index = table.refractive_index
    return np.asarray(depths), np.asarray(totals), (diffusion(*ex, index).mu_eff, diffusion(*em, index).mu_eff)


def _footprint(view, axis: int, shape2d) -> np.ndarray | None:
    mask = view.tumour.any(axis=axis)
    return mask if mask.shape == tuple(shape2d) else None


def report_section(view) -> ReportSection | None:
    """NIRF's section of the report (see the module docstring)."""
    sessions = [t for t in view.times_h if view.find(view.images_dir("nirf", t), "*_nirf.nii.gz") is not None]
    table_path = view.find(view.path(view.sub, "nirf"), "*_depthsensitivity.tsv")
    if not sessions:
        return None
    first = view.find(view.images_dir("nirf", sessions[0]), "*_nirf.nii.gz")
    sidecar = view.sidecar(first)
    axis = VIEWS[sidecar["View"]][0]
    body = (view.labels[0] > 0).any(axis=axis)

    slices, tbr, detect_nmol, detect_ug, noise_e = [], [], [], [], []
    for t in sessions:
        path = view.find(view.images_dir("nirf", t), "*_nirf.nii.gz")
        image3, affine = view.load(path)
        image = np.take(image3, 0, axis=axis)
        in_plane = [a for a in range(3) if a != axis]
        spacing = [affine[a, a] for a in in_plane]
        origin = [affine[a, 3] for a in in_plane]
        extent = (origin[0] - 0.5 * spacing[0], origin[0] + (image.shape[0] - 0.5) * spacing[0],
                  origin[1] - 0.5 * spacing[1], origin[1] + (image.shape[1] - 0.5) * spacing[1])
        slices.append(SlicePanel(t, image, extent, "photoelectrons", f"NIRF planar ({sidecar['View']} view)", "inferno"))
        foot = _footprint(view, axis, image.shape)
        if foot is None or not foot.any():
            continue
        rest = body & ~foot
        img_t, img_b = view.roi_mean(image, foot), view.roi_mean(image, rest)
        tbr.append((t, ratio(img_t, img_b)))
        clean_path = view.find(view.truth_dir("nirf", t), "*_desc-noisefree_nirf.nii.gz")
        dye_path = view.find(view.truth_dir("nirf", t), "*Dye_conc.nii.gz")
        if clean_path is None or dye_path is None:
            continue
        clean = np.take(view.load(clean_path)[0], 0, axis=axis)
        noise = view.roi_sd(image - clean, body)
        noise_e.append(noise)
        dye = view.load(dye_path)[0]
        dye_excess = view.roi_mean(dye, view.tumour) - view.roi_mean(dye, view.background)
        detect_nmol.append((t, view.detectable(noise, ratio(img_t - img_b, dye_excess))))
        agent = dye_path.name.split("desc-")[1].removesuffix("Dye_conc.nii.gz")
        carrier_path = view.find(view.truth_dir("delivery", t), f"*_desc-{agent}Carrier_conc.nii.gz")
        if carrier_path is not None:
            carrier = view.load(carrier_path)[0]
            excess = view.roi_mean(carrier, view.tumour) - view.roi_mean(carrier, view.background)
            detect_ug.append(view.detectable(noise, ratio(img_t - img_b, excess)))

    figures, depth_curve, measurements, paragraphs = [], None, {}, []
    summary = {"accuracy": "not quantitative: the signal depends on depth and optics (contrast only)"}
    if table_path is not None:
        table = view.table(table_path)
        optics = view.sidecar(table_path)["ReferenceTissueOptics"]
        depth, totals, (mu_ex, mu_em) = point_source_depth_curve(sidecar["Dye"], sidecar["Window"])
        mu_sum = mu_ex + mu_em
        slope = depth_slope_per_mm(depth, totals)
        relative = totals / totals.max()
        limit = _depth_at(depth, relative, 0.01)
        fwhm = dict(zip(table["depth_mm"], table["psf_fwhm_mm"]))
        depth_curve = Curve("NIRF point source (image model)", tuple(depth), tuple(relative))
        measurements.update(depth_slope_per_mm=slope, mu_eff_sum_per_mm=mu_sum, mu_eff_emission_per_mm=mu_em,
                            depth_limit_1pct_mm=limit,
                            depth_mm=tuple(depth), relative_signal=tuple(relative),
                            table_slope_per_mm=depth_slope_per_mm(table["depth_mm"], table["photoelectrons_per_fmol"]))
        figures.append(_depth_figure(view, depth, relative, table, slope, mu_sum, optics))
        summary["resolution"] = ("PSF " + ", ".join(f"{fwhm[d]:.1f} mm at {d:g} mm" for d in (1.0, 5.0) if d in fwhm)
                                 + " depth")
        summary["depth"] = f"signal at 1 % of its surface value at {limit:.1f} mm; slope {slope:.3f}/mm"
        paragraphs.append(
            "Depth: a point source of dye buried in the reference tissue and imaged with this modality's own image "
            f"model (excitation fluence x escape x the layer's blur) gives light falling by exp(-{slope:.3f} d) per mm "
            f"of depth d (fitted over {SLOPE_DEPTHS_MM[0]:g}-{SLOPE_DEPTHS_MM[1]:g} mm); diffusion theory "
            f"says mu_eff(excitation) + mu_eff(emission) = {optics['excitation_mu_eff_per_mm']:.3f} + "
            f"{optics['emission_mu_eff_per_mm']:.3f} = {mu_sum:.3f}/mm in {optics['tissue']} "
            f"({100 * (slope / mu_sum - 1):+.2f} %). The signal is at 1 % of its surface value by {limit:.1f} mm "
            "and the image of a source blurs as it deepens: fluorescence reflectance imaging sees the surface.")
    if tbr:
        measurements.update(tbr=tuple(v for _, v in tbr), noise_e=tuple(noise_e))
        paragraphs.append("Tumour footprint / rest of the body (measured images): "
                          + ", ".join(f"{shown(v, '.2f', 'no light from the body')} at {t:g} h" for t, v in tbr) + ".")
    if detect_nmol:
        best = int(np.argmin([v for _, v in detect_nmol]))
        t_best, v_best = detect_nmol[best]
        no_signal = "no tumour excess over the body in the image or the truth"
        summary["sensitivity"] = (shown(v_best, ".3g", no_signal, "nmol/mL dye")
                                  + (f" = {shown(detect_ug[best], '.3g', no_signal, 'ug/mL')} carrier"
                                     if len(detect_ug) == len(detect_nmol) else "") + f" in this tumour at {t_best:g} h")
        measurements["detectable_nmol_per_ml"] = tuple(v for _, v in detect_nmol)
        paragraphs.append(f"Noise (measured image minus the written noise-free image) {np.mean(noise_e):.3g} e- per "
                          "pixel; the smallest dye excess in this tumour that stands 3 sd above the body is "
                          f"{shown(v_best, '.3g', no_signal, 'nmol/mL')} (at {t_best:g} h): depth, not the camera, "
                          "sets the limit.")
    summary["time_window"] = ("footprint contrast " + ", ".join(shown(v, ".2f", "no light from the body") for _, v in tbr)
                              if tbr else "n/a")
    return ReportSection(
        modality="nirf", title="NIR fluorescence", paragraphs=tuple(paragraphs), figures=tuple(figures),
        slices=tuple(slices),
        tbr=Curve("NIRF footprint / body", tuple(t for t, _ in tbr), tuple(v for _, v in tbr)) if tbr else None,
        depth=depth_curve, recovery=None, summary=summary, measurements=measurements)


def _depth_at(depth, relative, level: float) -> float:
    """Depth (mm) where the relative signal falls through ``level`` (log-linear interpolation)."""
    for k in range(1, len(depth)):
        if relative[k] < level <= relative[k - 1]:
            a, b = math.log(relative[k - 1]), math.log(relative[k])
            return float(depth[k - 1] + (math.log(level) - a) / (b - a) * (depth[k] - depth[k - 1]))
    return math.inf


def _depth_figure(view, depth, relative, table, slope, mu_sum, optics) -> ReportFigure:
    fig = view.figure(8.0, 3.2)
    left, right = fig.subplots(1, 2)
    left.semilogy(depth, relative, "o", ms=3, label="point source, image model")
    written = np.asarray(table["photoelectrons_per_fmol"])
    left.semilogy(table["depth_mm"], written / written.max(), "s", ms=3, mfc="none",
                  label="camera set-up table (written)")
    fit = relative[np.argmin(np.abs(depth - SLOPE_DEPTHS_MM[0]))] * np.exp(-mu_sum * (depth - SLOPE_DEPTHS_MM[0]))
    left.semilogy(depth, fit, "-", lw=1, label=f"exp(-(mu_eff,ex + mu_eff,em) d), {mu_sum:.3f}/mm")
    left.set_xlabel("depth of a point source (mm)")
    left.set_ylabel("signal / maximum")
    left.set_title(f"NIRF signal against depth in {optics['tissue']}", fontsize=10)
    left.legend(fontsize=7)
    right.plot(table["depth_mm"], table["psf_fwhm_mm"], "o-", ms=3)
    right.set_xlabel("depth of a point source (mm)")
    right.set_ylabel("surface image FWHM (mm)")
    right.set_title("blur grows with depth", fontsize=10)
    return ReportFigure("nirf_depth", view.png(fig),
                        f"NIRF depth response of this set-up: fitted slope {slope:.3f}/mm against diffusion theory "
                        f"{mu_sum:.3f}/mm; right: the width of a buried point source's surface image.")
