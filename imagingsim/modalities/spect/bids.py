"""Write a SPECT study: images with complete sidecars, raw projections in sourcedata, truth derivatives.

Each acquisition (one per schedule time from the tracer's injection on) is one BIDS session
``ses-<t>``. Layout (``<id>`` the subject, ``<t>`` the acquisition's schedule time as a session
label, e.g. ``24h``; ``<trc>`` the tracer agent's name, ``<rec>`` the reconstruction variant as a
BIDS label, :func:`recon_label`: ``acCdr``, ``ac``, ``cdr``, ``none``; ``<peak>`` a photopeak
label such as ``171keV``)::

    sub-<id>/ses-<t>/spect/sub-<id>_ses-<t>_trc-<trc>_rec-<rec>_spect.nii.gz (+ .json)   [x, y, z], Bq/mL
    sourcedata/sub-<id>/ses-<t>/spect/
      sub-<id>_ses-<t>_trc-<trc>_projections.nii.gz       [view, bin, row] counts
      sub-<id>_ses-<t>_trc-<trc>_background.nii.gz        scatter estimate used (counts)
      sub-<id>_ses-<t>_trc-<trc>_expectedprimary.nii.gz   expected unscattered counts
      sub-<id>_ses-<t>_trc-<trc>_expectedscatter.nii.gz   expected scattered counts
      sub-<id>_ses-<t>_trc-<trc>_tew{lower,upper}.nii.gz  side-window counts (TEW only)
      sub-<id>_ses-<t>_trc-<trc>_mu<peak>.nii.gz          [x, y, z] AC map, 1/mm
      sub-<id>_ses-<t>_trc-<trc>_geometry.json            geometry, model, calibration
    sourcedata/sub-<id>/spect/README
    derivatives/truth/sub-<id>/ses-<t>/spect/
      sub-<id>_ses-<t>_trc-<trc>_desc-expected_activity.nii.gz (+ .json)
      sub-<id>_ses-<t>_desc-mu<peak>_map.nii.gz (+ .json)

BIDS has no SPECT datatype: ``spect/`` is listed in ``.bidsignore``. The images and the
attenuation maps used for correction lie on the SPECT reconstruction grid
(``acquisition.grid``, ``voxel_binning`` times coarser than the phantom; their affine says
where it is in the shared world frame); the truth lies on the phantom grid. The attenuation
maps are per session because they hold the gold and iodine present at that time. Times count
from the tracer's injection (BIDS-PET's TimeZero), as in the PET sidecars; the per-acquisition
keys of the sidecars (``FrameTimesStart``, ``FrameDuration``, ``DecayCorrectionFactor``...) are
one-element lists, the session's acquisition.

The geometry JSON holds everything needed to rebuild the system model with other code:
``E[projections] = sum_p n_p * P_p(x) + scatter`` for the session's image ``x`` in Bq/mL, with
``P_p`` the attenuated, collimator-blurred projection (mm x Bq/mL) at photopeak ``p`` of the
stated geometry and ``n_p`` the counts per unit projection.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imagingsim.data.radionuclides import nuclide
from imagingsim.grid import ImageGrid
from imagingsim.io.atomic import atomic_write_text
from imagingsim.io.host import host_array
from imagingsim.io.nifti import write_nifti
from imagingsim.io.sidecars import TIME_REFERENCE, write_json
from imagingsim.modalities.base import WriteContext
from imagingsim.modalities.spect.acquire import SPECT_NOISE_STREAM, specific_activity_bq_per_ug
from imagingsim.modalities.spect.result import SPECTAcquisition

#: Essentials of :mod:`imagingsim.modalities.spect.projector`'s conventions, for the geometry JSON.
GEOMETRY_CONVENTIONS = (
    "Transaxial image = the (x, y) plane of the SPECT image grid (axis 0 = +x, axis 1 = +y); z slices are "
    "detector rows (row r lies at the z of SPECT slice r). The rotation axis is parallel to z through the "
    "centre of the transaxial image box (RotationAxis_mm); x and y below are in mm from it. View k has angle "
    "theta_k (angles_deg, over 360 degrees) measured from +x towards +y; its detector runs along "
    "s = x cos(theta) + y sin(theta) and it looks along u = -x sin(theta) + y cos(theta): the collimator face "
    "is the plane u = orbit_radius_mm = R (at theta = 0 the camera is anterior, at +y). Detector bin b is "
    "centred at s_b = (b - (n_bins - 1) / 2) * bin_size_mm. A voxel at depth u is attenuated by "
    "exp(-integral from u to R of mu du') along the path to the collimator (its own half-width included) "
    "and blurred on the detector, along bins and rows, by a Gaussian of sigma(d) at distance d = R - u from "
    "the collimator face (CollimatorResponseModel). Projections are line integrals in mm: the image is "
    "resampled bilinearly onto a rotated grid (depth u_j, bin s_b) with the bin size as spacing, and the "
    "depth planes are summed times the step. Projection arrays are [view, bin, row]."
)

COLLIMATOR_RESPONSE_MODEL = (
    "Gaussian collimator-detector response sigma(d) = sqrt((slope * d + offset_mm)^2 + intrinsic_sigma_mm^2), "
    "mm, at distance d (mm) from the collimator face; parallel hole: slope = D / L_eff, offset = D (both "
    "divided by 2 sqrt(2 ln 2) to turn a FWHM into a sigma), L_eff = L - 2 / mu_lead(E), intrinsic sigma = "
    "intrinsic FWHM / 2 sqrt(2 ln 2)"
)

_ATTENUATION_SOURCES = {
    "ct": (
        "the CT of the same time converted to mu at each photopeak energy with a bilinear HU -> mu map (break point "
        "at the HU the CT measures for cortical bone), resampled onto the SPECT grid by averaging over each SPECT "
        "voxel (imagingsim.io.resample.resample_to_grid, which keeps the mu integral; a point-sampling resampler "
        "such as SimpleITK's would alias), negative values clipped to 0 after resampling"
    ),
    "truth": (
        "the phantom's true mu map at each photopeak energy and acquisition (xraydb tables, voxel densities, plus "
        "the gold and iodine of the delivery maps), averaged over the voxel_binning^3 phantom voxels of each SPECT "
        "voxel (no CT was acquired)"
    ),
}


def recon_label(variant: str) -> str:
    """The BIDS ``rec`` value of a reconstruction variant: ``"ac_cdr"`` -> ``"acCdr"``.

    BIDS entity values are letters and digits only, so the underscore goes and the next
    word is capitalised.

    >>> [recon_label(v) for v in ("ac_cdr", "ac", "cdr", "none")]
    ['acCdr', 'ac', 'cdr', 'none']
    """
    first, *rest = variant.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


def write_spect(stage: Path, acquisition: SPECTAcquisition, ctx: WriteContext) -> None:
    """Write one SPECT study into a dataset being built at ``stage`` (see the module docstring).

    Acquisition ``k`` goes to the session of schedule time ``schedule.times_h[schedule_indices[k]]``
    as 3-D images, projections and truth; the README, the same for every session, goes once to the
    subject's sourcedata.

    Parameters
    ----------
    stage : Path
        Root of the dataset being built (the atomic staging directory).
    acquisition : SPECTAcquisition
        Images, projections and metadata (:func:`imagingsim.modalities.spect.acquire.acquire_spect`).
    ctx : WriteContext
        The subject's scenario (subject id, schedule), phantom (grid), backend (host copies) and folders.
    """
    for k, schedule_index in enumerate(acquisition.schedule_indices):
        _write_session(stage, acquisition.frame(k), ctx, ctx.scenario.schedule.times_h[schedule_index])
    if ctx.writes("raw"):
        atomic_write_text(ctx.sourcedata_dir(stage, "spect") / "README", _SOURCEDATA_README)


def _write_session(stage: Path, acq: SPECTAcquisition, ctx: WriteContext, time_h: float) -> None:
    """The images, raw data and truth of one acquisition (:meth:`SPECTAcquisition.frame`) in session ``ses-<time_h>``."""
    phantom, backend = ctx.phantom, ctx.backend
    sub = ctx.sub
    trc = acq.tracer.name
    base = f"{ctx.prefix(time_h)}_trc-{trc}"
    times = _since_injection(acq)

    if ctx.writes("images"):
        images = ctx.images_dir(stage, "spect", time_h)
        common = _image_fields(acq, phantom)
        for variant, image in acq.images_bq_per_ml.items():
            path = images / f"{base}_rec-{recon_label(variant)}_spect"
            data = host_array(backend, image, np.float32)
            write_nifti(f"{path}.nii.gz", data, acq.grid, description=f"imagingsim SPECT {trc} {variant}")
            write_json(f"{path}.json", {**common, **_recon_fields(acq, variant)})

    if ctx.writes("raw"):
        raw = ctx.sourcedata_dir(stage, "spect", time_h)
        projection_grid = _projection_grid(acq)
        for name, array, what in _raw_arrays(acq):
            data = host_array(backend, array, np.float32)
            write_nifti(raw / f"{base}_{name}.nii.gz", data, projection_grid, description=f"imagingsim SPECT {what}")
        for peak in acq.photopeaks:
            data = host_array(backend, acq.mu_recon_per_mm[peak.label], np.float32)
            write_nifti(raw / f"{base}_mu{peak.label}.nii.gz", data, acq.grid,
                        description=f"imagingsim SPECT AC mu at {peak.label} 1/mm")
        write_json(raw / f"{base}_geometry.json", _geometry_record(acq, base))

    if not ctx.writes("truth"):
        return
    truth = ctx.truth_dir(stage, "spect", time_h)
    spatial = f"bids:raw:{sub}/anat/{sub}_T1map.nii.gz"
    expected = host_array(backend, acq.expected_image_bq_per_ml, np.float32)
    write_nifti(truth / f"{base}_desc-expected_activity.nii.gz", expected, phantom.grid,
                description=f"imagingsim SPECT {trc} expected activity")
    session_images = ctx.images_relpath("spect", time_h)
    write_json(
        truth / f"{base}_desc-expected_activity.json",
        {
            "Description": (
                f"What an ideal camera (no blur, no noise, perfect corrections) would report in the convention of "
                f"the SPECT images of tracer {trc} of this session: its activity decay-corrected to the injection "
                "(ImageDecayCorrected true) or the mean activity during the acquisition (false). Other "
                "single-photon agents are not imaged. On the phantom grid: compare with the SPECT images after "
                "averaging blocks of VoxelBinning^3 voxels (the phantom grid zero-padded at its far end to a "
                "multiple of VoxelBinning), or resample the images."
            ),
            "Units": "Bq/mL",
            "Tracer": trc,
            "TracerRadionuclide": nuclide(acq.nuclide).bids_name,
            "AcquisitionStartAfterInjection_s": times,
            "AcquisitionStartAfterScenarioStart_s": list(acq.frame_start_s),
            "AcquisitionDuration_s": list(acq.frame_duration_s),
            "ImageDecayCorrected": acq.decay_corrected,
            "VoxelBinning": acq.params.voxel_binning,
            "Source": [f"{session_images}/{base}_rec-{recon_label(v)}_spect.nii.gz" for v in acq.images_bq_per_ml],
            "ReferenceTime": (
                f"AcquisitionStartAfterInjection_s counts from the tracer's injection; "
                f"AcquisitionStartAfterScenarioStart_s from {TIME_REFERENCE}"
            ),
            "SpatialReference": spatial,
        },
    )
    for peak in acq.photopeaks:
        mu = host_array(backend, acq.mu_true_per_mm[peak.label], np.float32)
        stem = truth / f"{ctx.prefix(time_h)}_desc-mu{peak.label}_map"
        write_nifti(f"{stem}.nii.gz", mu, phantom.grid, description=f"imagingsim mu at {peak.label} 1/mm")
        write_json(
            f"{stem}.json",
            {
                "Description": (
                    f"Linear attenuation coefficient at the {peak.energy_keV!r} keV photopeak of {acq.nuclide} "
                    "(xraydb Elam tables, ICRU compositions, voxel density, plus the gold and iodine of the delivery "
                    "maps at this session's acquisition): the attenuation the SPECT projections were simulated with."
                ),
                "Units": "1/mm",
                "PhotonEnergy_keV": peak.energy_keV,
                "SpatialReference": spatial,
            },
        )


def _since_injection(acq: SPECTAcquisition) -> list[float]:
    """Acquisition starts relative to the tracer's injection (BIDS TimeZero), s."""
    injection_s = float(acq.tracer.injection_time_h) * 3600.0
    return [t - injection_s for t in acq.frame_start_s]


def _raw_arrays(acq: SPECTAcquisition):
    """``(file suffix, device array, description)`` of every projection-space array."""
    arrays = [
        ("projections", acq.projections, "measured counts in the photopeak windows (Poisson)"),
        ("background", acq.scatter_estimate, "scatter estimate used by the reconstructions (counts)"),
        ("expectedprimary", acq.expected_primary, "expected unscattered counts"),
        ("expectedscatter", acq.expected_scatter, "expected scattered counts"),
    ]
    for side in sorted(acq.side_window_counts):
        arrays.append((f"tew{side}", acq.side_window_counts[side], f"TEW {side} side-window counts"))
    return arrays


def _peak_record(peak, acq: SPECTAcquisition) -> dict:
    """One photopeak: line, window, share of the peak in it, and the collimator response at it."""
    record = {
        "Label": peak.label,
        "Energy_keV": peak.energy_keV,
        "PhotonsPerDecay": peak.yield_per_decay,
        "EnergyWindow_keV": list(peak.window_keV),
        "WindowFraction": peak.window_fraction,
        "WindowFractionDescription": "share of the photopeak's Gaussian energy spectrum inside the window",
        "CollimatorResponse": {
            "slope": peak.response.slope,
            "offset_mm": peak.response.offset_mm,
            "intrinsic_sigma_mm": peak.response.intrinsic_sigma_mm,
        },
        "SystemResolutionFWHMAtRotationAxis_mm": peak.response.fwhm_mm(acq.geometry.orbit_radius_mm),
    }
    if acq.side_window_counts:
        side = peak.energy_keV * acq.params.tew_side_window_percent / 100.0
        lo, hi = peak.window_keV
        record["TEWLowerWindow_keV"] = [lo - side, lo]
        record["TEWUpperWindow_keV"] = [hi, hi + side]
    return record


def _scatter_fields(acq: SPECTAcquisition) -> dict:
    params = acq.params
    fields = {
        "ScatterFraction": params.scatter_fraction,
        "ScatterFractionDescription": (
            "simulated scatter / (primary + scatter) in each photopeak window (dimensionless); the scatter is the "
            "primary counts spread by a broad Gaussian (FWHM a quarter of the detector width), not Monte Carlo"
        ),
    }
    if acq.side_window_counts:
        fields.update({
            "ScatterEstimate": "tew",
            "ScatterCorrectionMethod": (
                "triple energy window: per photopeak (C_lower + C_upper) / W_side x W_peak / 2 from two side windows "
                "(TEWLowerWindow_keV, TEWUpperWindow_keV of each photopeak) in which the simulated scatter spectrum "
                "is linear, summed over photopeaks, smoothed by a Gaussian of TEWFilterFWHM_mm, and used as an "
                "additive background in the OSEM system model"
            ),
            "TEWSideWindow_percent": params.tew_side_window_percent,
            "TEWScatterTilt": params.tew_scatter_tilt,
            "TEWScatterTiltDescription": (
                "scatter spectral density at the lower / upper edge of a photopeak window is (1 +/- tilt) x its mean "
                "over the window (dimensionless)"
            ),
            "TEWFilterFWHM_mm": params.tew_filter_fwhm_mm,
        })
    else:
        fields.update({
            "ScatterEstimate": "fraction",
            "ScatterCorrectionMethod": (
                "expected scatter (known to the simulation) as an additive background in the OSEM system model"
            ),
        })
    return fields


def _image_fields(acq: SPECTAcquisition, phantom) -> dict:
    """The sidecar fields shared by every reconstruction of one study (units in the key names)."""
    params, col, geom = acq.params, acq.params.collimator, acq.geometry
    data = nuclide(acq.nuclide)
    starts = _since_injection(acq)
    injection_h = float(acq.tracer.injection_time_h)
    specific = specific_activity_bq_per_ug(acq.tracer)
    body_kg = float(phantom.body_mass_g) / 1000.0
    return {
        "Modality": "SPECT (simulated)",
        "Manufacturer": params.manufacturer,
        "ManufacturersModelName": params.model,
        "SystemPreset": params.preset,
        "Units": "Bq/mL",
        "TracerName": f"{data.bids_name}-{acq.tracer.name} ({acq.tracer.carrier})",
        "TracerRadionuclide": data.bids_name,
        "RadionuclideHalfLife_s": data.half_life_s,
        "InjectedRadioactivity": acq.injected_activity_bq / 1e6,
        "InjectedRadioactivityUnits": "MBq",
        "InjectedMass": acq.injected_activity_bq / specific,
        "InjectedMassUnits": "ug",
        "SpecificRadioactivity": specific / 1e6,
        "SpecificRadioactivityUnits": "MBq/ug",
        "ModeOfAdministration": "bolus",
        "BodyWeight": body_kg,
        "BodyWeightUnits": "kg",
        "Photopeaks": [_peak_record(p, acq) for p in acq.photopeaks],
        "PhotopeaksDescription": "the counts of all photopeak windows are added into one projection set",
        "EnergyWindowWidth_percent": params.energy_window_percent,
        "EnergyResolutionAt140keV_percent": params.energy_resolution_percent,
        "EnergyResolutionDescription": "FWHM of a photopeak, percent of its energy, at 140 keV; scales as 1/sqrt(E)",
        "Collimator": {
            "Name": col.name,
            "Type": "parallel hole",
            "HoleDiameter_mm": col.hole_diameter_mm,
            "HoleLength_mm": col.hole_length_mm,
            "SeptalThickness_mm": col.septal_thickness_mm,
            "Efficiency": col.efficiency,
            "EfficiencyDescription": "photons passing the collimator and absorbed in the crystal per emitted photon, "
                                     "per head, source in air, before the energy window (dimensionless; each "
                                     "window's share of its photopeak multiplies it)",
            "MaxEnergy_keV": col.max_energy_keV,
        },
        "IntrinsicResolutionFWHM_mm": params.intrinsic_fwhm_mm,
        "NumberOfDetectorHeads": params.n_heads,
        "NumberOfViews": params.n_views,
        "AngularRange_deg": 360.0,
        "OrbitType": "circular",
        "OrbitRadius_mm": geom.orbit_radius_mm,
        "OrbitRadiusDescription": "rotation axis to collimator face",
        "ViewDuration_s": params.view_duration_s,
        "AcquisitionDuration_s": params.acquisition_time_s,
        "DetectorBins": geom.n_bins,
        "DetectorRows": acq.grid.shape[2],
        "PixelSize_mm": [geom.pixel_size_mm, acq.grid.voxel_size_mm[2]],
        "PixelSizeDescription": "detector pixel (bin, row) of the projections in sourcedata",
        "VoxelBinning": params.voxel_binning,
        "VoxelBinningDescription": (
            "projections were simulated on the phantom grid and VoxelBinning x VoxelBinning detector pixels summed; "
            "images are reconstructed on a grid VoxelBinning times coarser than the phantom's"
        ),
        "VoxelSize_mm": list(acq.grid.voxel_size_mm),
        "TimeZero": "00:00:00",
        "ScanStart": starts[0],
        "InjectionStart": 0.0,
        "FrameTimesStart": starts,
        "FrameDuration": list(acq.frame_duration_s),
        "FrameTimesDescription": (
            "the session's acquisition (one volume): its start after the injection, s, and its duration, s, as "
            "one-element lists"
        ),
        "ScheduleIndices": list(acq.schedule_indices),
        "ImageDecayCorrected": acq.decay_corrected,
        "ImageDecayCorrectionTime": 0.0 if acq.decay_corrected else starts[0],
        "DecayCorrectionFactor": list(acq.decay_correction_factors),
        "DecayCorrectionDescription": (
            "of the session's acquisition, duration / integral of the decay over it (1 when not decay-corrected); "
            "the image is then the activity at injection, else the mean activity during the acquisition"
        ),
        "AttenuationMapSource": acq.attenuation_source,
        "AttenuationMapDescription": _ATTENUATION_SOURCES[acq.attenuation_source],
        **_scatter_fields(acq),
        "SimulationNotes": (
            "Simulated by imagingsim: rotation-based projector on the phantom grid with the true attenuation at "
            "each photopeak and a depth-dependent Gaussian collimator-detector response, detector pixels binned, "
            "smooth scatter at the preset fraction, Poisson counts. Septal penetration, cross-talk between windows "
            "and decay within an acquisition (averaged) are not modelled. Raw projections, attenuation maps and the "
            "full system model are in sourcedata/."
        ),
        "TimeReference": (
            f"TimeZero 00:00:00 is the injection of the tracer, {injection_h!r} h after the scenario's t = 0 "
            f"(the time origin of the other files: {TIME_REFERENCE})"
        ),
    }


def _recon_fields(acq: SPECTAcquisition, variant: str) -> dict:
    params = acq.recon_parameters[variant]
    attenuation = bool(params["attenuation_correction"])
    collimator = bool(params["collimator_response_modelling"])
    fwhm = float(params["post_filter_fwhm_mm"])
    label = recon_label(variant)
    if attenuation:
        correction = (
            f"modelled in the OSEM system model with mu maps from {acq.attenuation_source!r}: "
            f"{_ATTENUATION_SOURCES[acq.attenuation_source]} (sourcedata/.../*_mu<peak>.nii.gz)"
        )
    else:
        correction = "none"
    fields = {
        "ReconVariant": variant,
        "ReconMethodName": params["method_name"],
        "ReconMethodParameterLabels": ["iterations", "subsets"],
        "ReconMethodParameterUnits": ["none", "none"],
        "ReconMethodParameterValues": [int(params["iterations"]), int(params["subsets"])],
        "ReconModelsAttenuation": attenuation,
        "ReconModelsCollimatorResponse": collimator,
        "ReconModelDescription": (
            f"rec-{label}: OSEM with the system model sum_p n_p P_p(x) + background, P_p including "
            + (" and ".join(w for w, on in (("attenuation", attenuation), ("the collimator-detector response",
                                                                             collimator)) if on)
               or "neither attenuation nor the collimator-detector response (pure line integrals)")
            + "; scatter enters as the additive background"
        ),
        "ReconFilterType": "Gaussian" if fwhm > 0 else "none",
        "AttenuationCorrection": correction,
    }
    if fwhm > 0:
        fields["ReconFilterSize"] = fwhm
        fields["ReconFilterSizeUnits"] = "mm"
    return fields


def _projection_grid(acq: SPECTAcquisition) -> ImageGrid:
    """A NIfTI grid for projections: pixdim = (view step in degrees, bin size mm, row mm)."""
    geom, grid = acq.geometry, acq.grid
    angles = geom.angles_deg
    step = angles[1] - angles[0] if len(angles) > 1 else 360.0
    first_bin = -(geom.n_bins - 1) / 2.0 * geom.pixel_size_mm
    return ImageGrid(
        (geom.n_angles, geom.n_bins, grid.shape[2]),
        (step, geom.pixel_size_mm, grid.voxel_size_mm[2]),
        (angles[0], first_bin, grid.origin_mm[2]),
    )


def _rotation_axis_mm(grid: ImageGrid) -> list[float]:
    """World (x, y) of the rotation axis: the centre of the transaxial image box, mm."""
    return [grid.origin_mm[a] + 0.5 * (grid.shape[a] - 1) * grid.voxel_size_mm[a] for a in (0, 1)]


def _geometry_record(acq: SPECTAcquisition, base: str) -> dict:
    grid, geom, params = acq.grid, acq.geometry, acq.params
    labels = [p.label for p in acq.photopeaks]
    files = {
        f"{base}_projections.nii.gz": "measured counts in the photopeak windows (all peaks added), [view, bin, row]",
        f"{base}_background.nii.gz": "scatter estimate the reconstructions used as background (counts), "
        "[view, bin, row]",
        f"{base}_expectedprimary.nii.gz": "expected unscattered counts, [view, bin, row]",
        f"{base}_expectedscatter.nii.gz": "expected scattered counts, [view, bin, row]",
        **{
            f"{base}_mu{label}.nii.gz": f"attenuation map used for attenuation correction at {label} on the SPECT "
            "image grid (a spatial NIfTI), [x, y, z], 1/mm"
            for label in labels
        },
    }
    for side in sorted(acq.side_window_counts):
        files[f"{base}_tew{side}.nii.gz"] = (
            f"measured counts in the {side} TEW side windows (summed over photopeaks), [view, bin, row]"
        )
    return {
        "Description": (
            "Raw SPECT data of one simulated acquisition (this session) and the system model that produced it."
        ),
        "Files": files,
        "SystemModel": (
            "E[projections] = sum_p CountsPerUnitProjection[0][p] * P_p(x) + expectedscatter; "
            "projections ~ Poisson(expectedprimary + expectedscatter), with expectedprimary = sum_p "
            "CountsPerUnitProjection[0][p] * P_p(x). x is the session's activity image in Bq/mL (the "
            "images' convention, see ImageDecayCorrected), P_p the projection (mm x Bq/mL) of the stated geometry "
            "with the attenuation mu(E_p) and the collimator-detector response of photopeak p (Photopeaks). The "
            "data were simulated on the phantom grid (pixel size / VoxelBinning) with the true mu maps "
            "(derivatives/truth/.../*_desc-mu<peak>_map) and VoxelBinning x VoxelBinning detector pixels summed, "
            "so the model on this coarser grid is close to, not exactly, the one that made the data."
        ),
        "ScatterModel": (
            f"expectedscatter = SF / (1 - SF) x the expected primary counts of each window, spread over bins and rows "
            f"by a Gaussian of FWHM a quarter of the detector width (SF = {params.scatter_fraction!r}). "
            + ("The background is the smoothed triple-energy-window estimate from the tew side-window counts."
               if acq.side_window_counts else "The background is the expected scatter itself.")
        ),
        "ReconstructionModel": (
            "each rec variant runs OSEM with background = the background file and the model of SystemModel on "
            "this geometry, with or without attenuation (the *_mu<peak> maps) and the collimator response"
        ),
        "Noise": (
            f"Poisson draws from backend.rng(subject seed, {SPECT_NOISE_STREAM:#x}, schedule index, window), "
            "window 0 = photopeaks, 1 + 2 p (+ 1) = lower (upper) side window of peak p"
        ),
        "ProjectionNIfTIHeader": (
            "pixdim of the projection files = (view step in degrees, bin size mm, row mm); their affine is not a "
            "spatial mapping"
        ),
        "Conventions": GEOMETRY_CONVENTIONS,
        "Geometry": geom.to_dict(),
        "RotationAxis_mm": _rotation_axis_mm(grid),
        "RowCentres_mm": [grid.origin_mm[2] + k * grid.voxel_size_mm[2] for k in range(grid.shape[2])],
        "ImageGrid": {
            "shape": list(grid.shape),
            "voxel_size_mm": list(grid.voxel_size_mm),
            "origin_mm": list(grid.origin_mm),
            "affine_RAS_mm": [list(row) for row in grid.affine],
            "note": "the SPECT reconstruction grid (images and *_mu<peak> maps); rotation axis through the centre of "
            "its transaxial box",
        },
        "VoxelBinning": params.voxel_binning,
        "CollimatorResponseModel": COLLIMATOR_RESPONSE_MODEL,
        "Photopeaks": [_peak_record(p, acq) for p in acq.photopeaks],
        "CountsPerUnitProjection": [list(row) for row in acq.counts_per_unit_projection],
        "CountsPerUnitProjectionAxes": ["acquisition", "photopeak (order of Photopeaks)"],
        "CountsPerUnitProjectionUnits": (
            "expected counts per detector pixel per (Bq/mL x mm) of attenuated, collimator-blurred projection of "
            "the image: efficiency x photons per decay x window fraction x view duration x pixel area / 1000, "
            "times the acquisition's activity factor (1 / DecayCorrectionFactor when decay-corrected)"
        ),
        "Collimator": {
            "Name": params.collimator.name,
            "HoleDiameter_mm": params.collimator.hole_diameter_mm,
            "HoleLength_mm": params.collimator.hole_length_mm,
            "SeptalThickness_mm": params.collimator.septal_thickness_mm,
            "Efficiency": params.collimator.efficiency,
        },
        "ViewDuration_s": params.view_duration_s,
        "NumberOfDetectorHeads": params.n_heads,
        "AttenuationMapSource": acq.attenuation_source,
        "AttenuationMapDescription": _ATTENUATION_SOURCES[acq.attenuation_source],
        "ScatterFraction": params.scatter_fraction,
        "ScatterEstimate": "tew" if acq.side_window_counts else "fraction",
        "ExpectedTotalCounts": {k: list(acq.total_counts[k]) for k in ("primary", "scatter")},
        "MeasuredTotalCounts": list(acq.total_counts["measured"]),
        "AcquisitionStart_s": _since_injection(acq),
        "AcquisitionStartAfterScenarioStart_s": list(acq.frame_start_s),
        "AcquisitionDuration_s": list(acq.frame_duration_s),
        "ScheduleIndices": list(acq.schedule_indices),
        "TimeZero": "00:00:00",
        "TimeZeroReference": "the tracer's injection",
        "ImageDecayCorrected": acq.decay_corrected,
        "DecayCorrectionFactor": list(acq.decay_correction_factors),
        "Tracer": acq.tracer.name,
        "TracerNuclide": acq.nuclide,
        "ReferenceTime": (
            f"AcquisitionStart_s counts from the tracer's injection; AcquisitionStartAfterScenarioStart_s from "
            f"{TIME_REFERENCE}"
        ),
    }


_SOURCEDATA_README = """\
Raw SPECT data of the simulated study, one acquisition per session (../ses-<time>/spect/): for the
SPECT tracer, the measured projections (counts in the photopeak windows), the scatter estimate the
reconstructions used as background, the expected primary and scatter counts, the
triple-energy-window side-window counts (scatter = "tew" only), the attenuation maps used for
attenuation correction (on the SPECT image grid, one per photopeak), and a *_geometry.json with the
geometry (angles in degrees over 360, bins in mm, orbit radius), the conventions, the collimator
response of each photopeak, the counts per unit projection and the full system model, so that the
images can be reconstructed with any other code. Projections are NIfTI arrays [view, bin, row];
their header is not a spatial mapping.
"""


__all__ = ["COLLIMATOR_RESPONSE_MODEL", "GEOMETRY_CONVENTIONS", "recon_label", "write_spect"]
