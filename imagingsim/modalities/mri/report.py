"""MRI's section of the teaching report (iron-oxide contrast), measured from the written dataset.

- **Resolution**: the point-spread function of the written k-space sampling mask
  (``sourcedata/.../samplingmask.npy``, ``[ky, kz]``): ``|IFFT(mask)|`` along y, its FWHM in mm
  (a fully sampled Cartesian acquisition gives one voxel; undersampling adds aliasing, not width).
- **Sensitivity**: noise = the standard deviation of the fitted R2* over the reference soft
  tissue; the tumour's measured relaxivity = (fitted R2* - true baseline R2*) / true iron; the
  smallest iron that raises R2* by 3 noise sd.
- **Persistence and accuracy**: tumour iron, true and estimated from R2* (the ``mri-iron``
  derivative), per session: iron oxide stays where it went, and clustered iron reads high.
- **Depth**: fitted / true R2* of soft tissue against depth below the skin (MRI does not care).

References
----------
Ferumoxytol relaxivities and clustering: Knobloch et al., Magn Reson Med 2018 (see
``data/relaxivity.toml``). Rose, JOSA 1948 (detectability at CNR 3).
"""

from __future__ import annotations

import numpy as np

from imagingsim.modalities.sections import Curve, ReportFigure, ReportSection, SlicePanel, fwhm, ratio, shown


def mask_psf_fwhm_voxels(mask: np.ndarray) -> float:
    """FWHM in voxels along the first phase-encode axis of the PSF of a ``[ky, kz]`` sampling mask.

    ``|IFFT(mask)|``, centred, through its peak along ky; the width by the report's one FWHM
    rule (:func:`~imagingsim.modalities.sections.fwhm`: parabolic peak, linearly interpolated
    half-maximum crossings; NaN when the PSF does not fall to half inside the field).
    """
    psf = np.abs(np.fft.fftshift(np.fft.ifft2(np.asarray(mask, float))))
    return fwhm(psf[:, psf.shape[1] // 2])


def report_section(view) -> ReportSection | None:
    """MRI's section of the report (see the module docstring)."""
    sessions = [t for t in view.times_h if view.find(view.images_dir("anat", t), "*_R2starmap.nii.gz") is not None]
    if not sessions:
        return None
    baseline_path = view.find(view.truth_dir("mri"), "*_desc-baseline_R2starmap.nii.gz")
    baseline = view.load(baseline_path)[0] if baseline_path is not None else None
    slices, tbr, true_iron, est_iron, detect_mm, detect_ug, noise_sd = [], [], [], [], [], [], []
    last_fit = last_true = None
    for t in sessions:
        path = view.find(view.images_dir("anat", t), "*_R2starmap.nii.gz")
        r2s, affine = view.load(path)
        plane, extent = view.axial_plane(r2s, affine)
        fit_t, fit_b = view.roi_mean(r2s, view.tumour), view.roi_mean(r2s, view.background)
        # The scale of the tissue, not of fat and voids at the fit limits (they would flatten it).
        limits = (0.0, 3.0 * fit_b) if np.isfinite(fit_b) and fit_b > 0 else None
        slices.append(SlicePanel(t, plane, extent, "R2* (1/s)", "MRI R2*", "viridis", limits))
        tbr.append(ratio(fit_t, fit_b))
        iron_path = view.find(view.truth_dir("mri", t), "*_desc-iron_conc.nii.gz")
        estimate_path = view.find(view.path("derivatives", "mri-iron", view.sub, view.session(t), "anat"),
                                  "*_desc-ironEstimate_conc.nii.gz")
        true_r2s_path = view.find(view.truth_dir("mri", t), "*_desc-true_R2starmap.nii.gz")
        if iron_path is None:
            continue
        iron = view.load(iron_path)[0]
        true_iron.append(view.roi_mean(iron, view.tumour))
        est_iron.append(view.roi_mean(view.load(estimate_path)[0], view.tumour) if estimate_path else np.nan)
        noise = view.roi_sd(r2s, view.background)
        noise_sd.append(noise)
        if baseline is not None and true_iron[-1] > 0:
            slope = (fit_t - view.roi_mean(baseline, view.tumour)) / true_iron[-1]  # 1/s per mM, measured
            detect_mm.append(view.detectable(noise, slope))
            agent_carrier = sorted(view.truth_dir("delivery", t).glob("*Carrier_conc.nii.gz"))
            if agent_carrier:
                carrier = view.roi_mean(view.load(agent_carrier[0])[0], view.tumour)
                detect_ug.append(view.detectable(noise, ratio(fit_t - view.roi_mean(baseline, view.tumour), carrier)))
        if true_r2s_path is not None:
            last_fit, last_true = r2s, view.load(true_r2s_path)[0]

    mask_path = view.find(view.path("sourcedata", view.sub, "mri"), "*_samplingmask.npy")
    voxel_y = float(abs(view.labels[1][1, 1]))
    if mask_path is not None:
        fwhm_vox = mask_psf_fwhm_voxels(np.load(mask_path))
        resolution = f"{fwhm_vox * voxel_y:.2f} mm (PSF of the written k-space mask: {fwhm_vox:.2f} voxel)"
    else:
        fwhm_vox = np.nan
        resolution = f"{voxel_y:g} mm voxel (no raw data written: mask PSF not measured)"
    depth = view.depth_response(last_fit, last_true, view.tissue("soft_tissue")) if last_true is not None else ((), ())
    recovery = [ratio(e, t) for e, t in zip(est_iron, true_iron)]
    figures = (_iron_figure(view, sessions[: len(true_iron)], true_iron, est_iron),) if true_iron else ()
    best = int(np.argmin(detect_mm)) if detect_mm else None  # detectable() gives inf, never NaN
    no_signal = "no R2* rise with the true iron"
    summary = {
        "resolution": resolution,
        "sensitivity": (shown(detect_mm[best], ".3g", no_signal, "mM Fe")
                        + (f" = {shown(detect_ug[best], '.3g', no_signal, 'ug/mL')} carrier"
                           if len(detect_ug) == len(detect_mm) else "") + f" at {sessions[best]:g} h")
        if best is not None else "n/a",
        "depth": "none: R2* is a local property (fitted/true flat with depth)",
        "time_window": ("tumour iron " + ", ".join(f"{v:.3g}" for v in true_iron) + " mM: persists") if true_iron
        else "n/a",
        "accuracy": "iron from R2* / true " + ", ".join(shown(r, ".2f", "no true tumour iron") for r in recovery),
    }
    paragraphs = (
        "R2* rises with the iron of the SPION label; the fitted R2* map is what the scanner gives, the iron estimate "
        "(delta R2* / r2*) is what the scanner claims. Tumour R2* / soft tissue R2*: "
        + ", ".join(shown(v, ".2f", "no soft-tissue R2*") for v in tbr) + " at " + ", ".join(f"{t:g}" for t in sessions) + " h.",
        "Iron estimated from R2* / true iron in the tumour: "
        + ", ".join(shown(r, ".2f", "no true tumour iron") for r in recovery)
        + ". Cell-bound, clustered iron relaxes more strongly per mM than free iron, so the estimate reads high as "
        "more of the iron is taken up into cells: a relaxation measurement is not an iron assay.",
        (f"Noise: fitted R2* varies by {np.nanmean(noise_sd):.3g} 1/s (sd) over the reference soft tissue; the "
        "smallest tumour iron that raises R2* by 3 sd is the sensitivity in the summary."),
    )
    return ReportSection(
        modality="mri", title="MRI (iron oxide, R2*)", paragraphs=paragraphs, figures=figures, slices=tuple(slices),
        tbr=Curve("MRI R2* ratio", tuple(sessions), tuple(tbr)),
        depth=Curve("MRI R2* fitted / true, soft tissue", *depth) if depth[0] else None,
        recovery=Curve("MRI iron from R2*", tuple(sessions[: len(recovery)]), tuple(recovery)) if recovery else None,
        summary=summary,
        measurements={"tbr": tuple(tbr), "true_iron_mM": tuple(true_iron), "estimated_iron_mM": tuple(est_iron),
                      "detectable_mM": tuple(detect_mm), "mask_psf_fwhm_voxels": fwhm_vox},
    )


def _iron_figure(view, sessions, true_iron, est_iron) -> ReportFigure:
    fig = view.figure(6.0, 3.0)
    ax = fig.add_subplot()
    ax.plot(sessions, true_iron, "o-", label="true iron (truth)")
    ax.plot(sessions, est_iron, "s--", label="estimated from R2* (mri-iron)")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("time after injection (h)")
    ax.set_ylabel("tumour iron (mM Fe)")
    ax.set_title("SPION persistence in the tumour", fontsize=10)
    ax.legend(fontsize=8)
    return ReportFigure("mri_iron", view.png(fig), "Tumour iron over time: the truth and what R2* says.")
