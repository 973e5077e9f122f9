"""Photoacoustic tomography's section of the teaching report, measured from the written dataset.

- **Images**: the reconstructed slice at the wavelength nearest 800 nm and the unmixed sO2 of
  every session (overview rows); tumour / soft-tissue background of the image per session.
- **Resolution**: a point absorber at the slice centre reconstructed (filtered
  back-projection) with the written acquisition geometry (elements, time axis, band-pass):
  FWHM of its profile along x.
- **Depth**: measured from the written true fluence (``desc-fluence_pa``, first session): the
  soft-tissue voxels whose light paths (along every illuminating beam of the acquisition:
  four for a ring, one for a linear array) cross soft tissue only, each with its depth along
  each beam; the diffusion model's sum of beams is fitted (least squares on ``ln(fluence)``)
  for the tissue's ``mu_a`` and ``mu_s'``, per wavelength, which gives the measured
  ``mu_eff``, the attenuation the light met, set beside ``mu_eff`` of the tables' typical soft
  tissue (they differ by the agent's absorption and the tissue's texture). The depth curve
  is one beam's fluence with the measured optics (p0 of the same absorber follows it).
- **Sensitivity and accuracy**: the agent's unmixed map (fluence-compensated when written)
  against its truth in the tumour; noise = its standard deviation over soft tissue.
- **sO2 against depth**: the written error table, with and without compensation, from the
  images and from the true p0 (the colouring of the light alone).

References
----------
B. Cox et al., "Quantitative spectroscopic photoacoustic imaging: a review", J Biomed Opt
2012;17:061202 (spectral colouring); Haskell et al., JOSA A 1994;11:2727 (diffusion theory).
"""

from __future__ import annotations

import math

import numpy as np

from imagingsim.backend import get_backend
from imagingsim.modalities.photoacoustic.acoustic import AcousticOperator
from imagingsim.modalities.photoacoustic.acquire import reference_optics
from imagingsim.modalities.photoacoustic.geometry import geometry_from_sidecar
from imagingsim.modalities.photoacoustic.optics import (
    REFRACTIVE_INDEX,
    beams,
    diffusion,
    plane_fluence,
    specular_reflection,
)
from imagingsim.modalities.photoacoustic.recon import filtered_backprojection
from imagingsim.modalities.sections import Curve, ReportFigure, ReportSection, SlicePanel, fwhm, ratio, shown

#: Depths over which the slope of a fluence curve is fitted, mm: beyond the source depth and the
#: extrapolated boundary (z0 + 2 zb ~ 3-4 mm in soft tissue), where diffusion theory decays as exp(-mu_eff z).
SLOPE_DEPTHS_MM = (6.0, 20.0)
#: Fewest voxels with soft-tissue-only light paths for the optics to be fitted (two unknowns).
MIN_FIT_VOXELS = 5
STATIC = ("HbO2", "Hb", "water", "lipid")


def point_response_fwhm_mm(geometry) -> float:
    """FWHM (mm) along x of a one-pixel absorber at the slice centre, back-projected with ``geometry``."""
    backend = get_backend("numpy")
    op = AcousticOperator(geometry, 1, backend)
    nx, ny = geometry.shape
    p0 = np.zeros((nx, ny, 1))
    p0[nx // 2, ny // 2, 0] = 1.0
    image = np.asarray(filtered_backprojection(op, op.apply(p0)))[:, ny // 2, 0]
    return fwhm(image, geometry.voxel_mm)


def _along(x: np.ndarray, axis: int, direction: int) -> np.ndarray:
    """Cumulative sum along ``axis`` in the direction the light travels (as the fluence model)."""
    if direction > 0:
        return np.cumsum(x, axis=axis)
    return np.flip(np.cumsum(np.flip(x, axis=axis), axis=axis), axis=axis)


def measured_optics(fluence: np.ndarray, soft: np.ndarray, voxel_mm: float, exposure_mJ_per_cm2: float,
                    beam_list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The soft tissue's ``mu_a``, ``mu_s'`` (1/mm) per wavelength, fitted to a written fluence.

    Parameters
    ----------
    fluence : ``(nx, ny, L)`` array
        The true fluence of the slice, mJ/cm^2 (0 outside the body).
    soft : ``(nx, ny)`` bool
        Soft-tissue voxels on the same grid.
    voxel_mm, exposure_mJ_per_cm2, beam_list
        The slice's pixel, each beam's exposure on the skin and the beams (``optics.beams``).

    Returns
    -------
    mu_a, mu_s_prime : ``(L,)`` arrays
        NaN where fewer than :data:`MIN_FIT_VOXELS` voxels qualify.
    depths : ``(B, n)`` array
        Depth (mm) of each fitted voxel along each beam.
    values : ``(n, L)`` array
        The written fluence of those voxels.

    Notes
    -----
    A voxel qualifies when it and every voxel on its path from the skin, along every beam, is
    soft tissue (so the model's path-averaged optics are the tissue's own). Its fluence is
    ``T F0 sum_b phi(d_b; mu_a, mu_s')`` (:func:`~imagingsim.modalities.photoacoustic.optics.plane_fluence`,
    ``T`` the specular transmission); ``ln`` of it is fitted in ``ln mu_a``, ``ln mu_s'`` from
    a start that knows nothing of the tissue (0.01 and 1 per mm).
    """
    from scipy.optimize import least_squares

    body = fluence[..., 0] > 0
    soft = soft & body
    clean = soft.copy()
    depth_maps = []
    for axis, direction in beam_list:
        depth_maps.append((_along(body.astype(float), axis, direction) - 0.5) * voxel_mm)
        clean &= _along((body & ~soft).astype(float), axis, direction) == 0
    depths = np.asarray([d[clean] for d in depth_maps])
    values = fluence[clean]
    n_waves = fluence.shape[-1]
    mu_a, mu_s = np.full(n_waves, np.nan), np.full(n_waves, np.nan)
    if values.shape[0] < MIN_FIT_VOXELS:
        return mu_a, mu_s, depths, values
    transmitted = exposure_mJ_per_cm2 * (1.0 - specular_reflection(REFRACTIVE_INDEX))
    for k in range(n_waves):
        target = np.log(values[:, k])

        def residual(p, target=target):
            m = diffusion(math.exp(p[0]), math.exp(p[1]))
            return np.log(transmitted * sum(plane_fluence(d, m, np) for d in depths)) - target

        fit = least_squares(residual, [math.log(0.01), 0.0])
        if fit.success:
            mu_a[k], mu_s[k] = math.exp(fit.x[0]), math.exp(fit.x[1])
    return mu_a, mu_s, depths, values


def fluence_against_depth(mu_a_per_mm, mu_s_prime_per_mm, exposure_mJ_per_cm2: float, max_depth_mm: float = 40.0,
                          step_mm: float = 0.25):
    """One broad beam's fluence (mJ/cm^2) against depth in one tissue, per wavelength: ``(depths, (L, D) array)``."""
    depth = np.arange(0.5 * step_mm, max_depth_mm, step_mm)
    rows = []
    for a, s in zip(mu_a_per_mm, mu_s_prime_per_mm, strict=True):
        m = diffusion(a, s)
        rows.append([exposure_mJ_per_cm2 * (1 - specular_reflection(REFRACTIVE_INDEX)) * plane_fluence(z, m) for z in depth])
    return depth, np.asarray(rows)


def slope_per_mm(depth, values) -> float:
    """``-d ln(values) / d depth`` over :data:`SLOPE_DEPTHS_MM` (least squares), 1/mm."""
    keep = (depth >= SLOPE_DEPTHS_MM[0]) & (depth <= SLOPE_DEPTHS_MM[1]) & (values > 0)
    return float(-np.polyfit(depth[keep], np.log(values[keep]), 1)[0])


def report_section(view) -> ReportSection | None:
    """The photoacoustic section of the report (module docstring); None without written images."""
    sessions = [t for t in view.times_h if view.find(view.images_dir("pa", t), "*_rec-*_pa.nii.gz") is not None]
    if not sessions:
        return None
    first = view.find(view.images_dir("pa", sessions[0]), "*_rec-lsq_pa.nii.gz") or view.find(
        view.images_dir("pa", sessions[0]), "*_rec-fbp_pa.nii.gz")
    rec = "lsq" if "_rec-lsq_" in first.name else "fbp"
    side = view.sidecar(first)
    waves = side["Wavelengths_nm"]
    iw = int(np.argmin([abs(w - 800.0) for w in waves]))
    slices, tbr, recovery, so2_rows = [], [], [], []
    noise, agent_key, unit = [], None, ""
    for t in sessions:
        folder = view.images_dir("pa", t)
        path = view.find(folder, f"*_rec-{rec}_pa.nii.gz")
        image4, affine = view.load(path)
        image = image4[:, :, 0, iw]
        extent = view.extent_xy(affine, image4.shape)
        slices.append(SlicePanel(t, image, extent, "Pa", f"PA rec-{rec} {waves[iw]:g} nm", "inferno"))
        tumour = view.mask_on(view.tumour, affine, image4.shape[:3])[:, :, 0]
        background = view.mask_on(view.background, affine, image4.shape[:3])[:, :, 0]
        so2_path = view.find(folder, "*_desc-sO2comp_pa.nii.gz") or view.find(folder, "*_desc-sO2_pa.nii.gz")
        if so2_path is not None:
            so2 = view.load(so2_path)[0][:, :, 0]
            slices.append(SlicePanel(t, so2, extent, "sO2", "PA sO2 (unmixed)", "RdBu_r", (0.0, 1.0)))
        if tumour.any() and background.any():
            tbr.append((t, ratio(view.roi_mean(image, tumour), view.roi_mean(image, background))))
        unmixed_path = view.find(folder, "*_desc-unmixedcomp_pa.nii.gz") or view.find(folder, "*_desc-unmixed_pa.nii.gz")
        if unmixed_path is None:
            continue
        members = view.sidecar(unmixed_path)["Endmembers"]
        agents = [(k, m) for k, m in enumerate(members) if m["Name"] not in STATIC]
        unmixed = view.load(unmixed_path)[0][:, :, 0, :]
        truth_sO2 = view.find(view.truth_dir("photoacoustic"), "*_desc-sO2_pa.nii.gz")
        if so2_path is not None and truth_sO2 is not None and tumour.any():
            so2_rows.append((t, view.roi_mean(so2, tumour), view.roi_mean(view.load(truth_sO2)[0][:, :, 0], tumour)))
        if not agents:
            continue
        k, member = agents[0]
        agent_key, unit = member["Name"], member["Units"]
        truth_path = view.find(view.truth_dir("photoacoustic", t), f"*_desc-{agent_key}_conc.nii.gz")
        if background.any():
            noise.append(view.roi_sd(unmixed[..., k], background))
        if truth_path is not None and tumour.any():
            true = view.roi_mean(view.load(truth_path)[0][:, :, 0], tumour)
            if true > 0:
                recovery.append((t, view.roi_mean(unmixed[..., k], tumour) / true))

    measurements: dict = {}
    paragraphs, figures = [], []
    summary = {}
    geometry_path = view.path("sourcedata", view.sub, "pa", f"{view.sub}_geometry.json")
    if geometry_path.exists():
        geometry = geometry_from_sidecar(view.sidecar(geometry_path))
        width = point_response_fwhm_mm(geometry)
        measurements["point_fwhm_mm"] = width
        summary["resolution"] = (f"{width:.2f} mm FWHM (point, back-projection; {geometry.center_frequency_MHz:g} MHz, "
                                 f"{geometry.voxel_mm:g} mm pixels)")
        paragraphs.append(
            f"Resolution: a one-pixel absorber at the slice centre, propagated to the {geometry.n_elements} "
            f"{geometry.detector} elements of this acquisition and back-projected, is {width:.2f} mm wide (FWHM); "
            "the band-pass and the pixel grid set it.")
    table_a, table_s = reference_optics(waves)
    table_mu_eff = np.asarray([diffusion(a, s).mu_eff for a, s in zip(table_a, table_s)])
    depth = phi = fit = None
    fluence_path = view.find(view.truth_dir("photoacoustic", sessions[0]), "*_desc-fluence_pa.nii.gz")
    spec = getattr(view.scenario.modalities, "photoacoustic", None)
    if fluence_path is not None and spec is not None:
        fluence4, f_affine = view.load(fluence_path)
        soft = view.mask_on(view.tissue("soft_tissue"), f_affine, fluence4.shape[:3])[:, :, 0]
        fit = measured_optics(fluence4[:, :, 0, :], soft, float(abs(f_affine[0, 0])), side["FluencePerPulse_mJ_per_cm2"],
                              beams(spec.detector, spec.side))
    why = (f"fewer than {MIN_FIT_VOXELS} soft-tissue voxels whose light paths cross soft tissue only, or no written "
           "fluence")
    if fit is not None and np.isfinite(fit[0][iw]):
        mu_a, mu_s, _, fit_values = fit
        measured_mu_eff = np.asarray([diffusion(a, s).mu_eff for a, s in zip(mu_a, mu_s)])
        depth, phi = fluence_against_depth(mu_a, mu_s, side["FluencePerPulse_mJ_per_cm2"])
        relative = phi[iw] / phi[iw].max()
        slope = slope_per_mm(depth, phi[iw])
        limit = next((float(d) for d, r in zip(depth, relative) if r < 0.01 and d > depth[int(np.argmax(relative))]),
                     math.inf)
        measurements.update(fluence_slope_per_mm=slope, measured_mu_eff_per_mm=tuple(measured_mu_eff),
                            table_mu_eff_per_mm=tuple(table_mu_eff), mu_eff_per_mm=float(table_mu_eff[iw]),
                            fitted_voxels=int(fit_values.shape[0]), depth_limit_1pct_mm=limit,
                            depth_mm=tuple(depth), relative_fluence=tuple(relative))
        summary["depth"] = (f"p0 of the same absorber at 1 % of its peak at {shown(limit, '.1f', 'beyond 40 mm', 'mm')} "
                            f"({waves[iw]:g} nm, soft tissue, measured mu_eff {measured_mu_eff[iw]:.3f}/mm)")
        paragraphs.append(
            f"Depth: p0 of a fixed absorber follows the fluence. Fitting the diffusion model to the written true "
            f"fluence of {fit_values.shape[0]} soft-tissue voxels (light paths through soft tissue only) measures "
            f"mu_eff = {measured_mu_eff[iw]:.3f}/mm at {waves[iw]:g} nm ({100 * (measured_mu_eff[iw] / table_mu_eff[iw] - 1):+.1f} % "
            f"against the tables' typical soft tissue, {table_mu_eff[iw]:.3f}/mm: the agent's absorption and the "
            f"tissue's texture); one beam's fluence then falls as exp(-{slope:.3f} d) beyond "
            f"{SLOPE_DEPTHS_MM[0]:g} mm, to 1 % of its peak by {shown(limit, '.1f', 'beyond 40 mm', 'mm')} (extrapolated "
            "beyond the body): deeper than fluorescence, whose light must also come back out, but the fluence is "
            "coloured by the tissue on the way.")
    else:
        summary["depth"] = f"not measurable ({why})"
        paragraphs.append(f"Depth: not measurable ({why}).")
    error_path = view.find(view.images_dir("pa"), "*_so2error.tsv")
    if error_path is not None:
        figures.append(_figure(view, view.table(error_path), depth, phi, waves,
                               fit[2:] if fit is not None and depth is not None else None))
    if so2_rows:
        measurements["tumour_so2"] = tuple((e, tr) for _, e, tr in so2_rows)
        summary["accuracy"] = "tumour sO2 " + ", ".join(f"{e:.2f} (true {tr:.2f}) at {t:g} h" for t, e, tr in so2_rows)
    if recovery:
        measurements["recovery"] = tuple(r for _, r in recovery)
        summary["accuracy"] = (summary.get("accuracy", "") + f"; {agent_key} recovered "
                               + ", ".join(f"{r:.2f}" for _, r in recovery)).lstrip("; ")
    if noise and agent_key is not None:
        detectable = view.detectable(float(np.median(noise)), 1.0)
        measurements["detectable"] = detectable
        summary["sensitivity"] = f"{detectable:.3g} {unit} {agent_key} (3 sd of its unmixed map over soft tissue)"
        paragraphs.append(f"Sensitivity: the unmixed {agent_key} map varies by {np.median(noise):.3g} {unit} (sd) over "
                          f"soft tissue, so {detectable:.3g} {unit} stands 3 sd above it.")
    if tbr:
        measurements["tbr"] = tuple(v for _, v in tbr)
        summary["time_window"] = "tumour/background " + ", ".join(shown(v, ".2f", "no background signal") for _, v in tbr)
    return ReportSection(
        modality="photoacoustic", title="Photoacoustic tomography", paragraphs=tuple(paragraphs),
        figures=tuple(figures), slices=tuple(slices),
        tbr=Curve("PA image tumour / background", tuple(t for t, _ in tbr), tuple(v for _, v in tbr)) if tbr else None,
        depth=(Curve(f"PA fluence {waves[iw]:g} nm (soft tissue, optics measured)", tuple(depth),
                     tuple(measurements["relative_fluence"])) if depth is not None else None),
        recovery=(Curve(f"PA {agent_key} unmixed / true", tuple(t for t, _ in recovery), tuple(r for _, r in recovery))
                  if recovery else None),
        summary=summary, measurements=measurements)


def _figure(view, table, depth, phi, waves, points) -> ReportFigure:
    fig = view.figure(8.0, 3.2)
    left, right = fig.subplots(1, 2)
    first = min(table["time_h"])
    rows = [k for k, t in enumerate(table["time_h"]) if t == first]
    d = [table["depth_mm"][k] for k in rows]
    for column, style in (("so2_error_true_p0_uncompensated", "o-"), ("so2_error_true_p0_compensated", "s-"),
                          ("so2_error_uncompensated", "o:"), ("so2_error_compensated", "s:")):
        values = [table[column][k] for k in rows]
        if any(isinstance(v, float) and math.isfinite(v) for v in values):
            left.plot(d, values, style, ms=3, label=column.removeprefix("so2_error_").replace("_", " "))
    left.axhline(0.0, color="k", lw=0.5)
    left.set_xlabel("depth below the illuminated skin (mm)")
    left.set_ylabel("sO2 estimate - truth")
    left.set_title(f"sO2 error at {first:g} h", fontsize=10)
    left.legend(fontsize=7)
    if depth is not None:
        for k, w in enumerate(waves):
            right.semilogy(depth, phi[k] / phi[k].max(), label=f"{w:g} nm")
    if points is not None:
        near, values = np.min(points[0], axis=0), points[1]
        for k in range(len(waves)):
            right.semilogy(near, values[:, k] / phi[k].max(), ".", ms=3, color=f"C{k}")
    right.set_xlabel("depth (mm)")
    right.set_ylabel("fluence / maximum")
    right.set_title("light is coloured with depth (soft tissue)", fontsize=10)
    right.legend(fontsize=6, ncol=2)
    return ReportFigure("photoacoustic_so2_depth", view.png(fig),
                        "Left: sO2 error against depth, unmixing the true p0 (the colouring of the light alone) and "
                        "the reconstructed images, with and without fluence compensation. Right: one beam's fluence "
                        "against depth per wavelength with the soft-tissue optics measured from the written fluence; "
                        "dots: the written fluence of the fitted voxels (all beams added) at their nearest beam's depth.")
