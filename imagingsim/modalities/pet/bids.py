"""Write a PET acquisition: BIDS-PET images, raw sinograms in sourcedata, truth derivatives.

Layout (``<id>`` the subject, ``<t>`` the session (the schedule time a frame starts at, e.g.
``24h``), ``<trc>`` the tracer agent's name, ``<rec>`` osem/mlem/fbp)::

    sub-<id>/ses-<t>/pet/sub-<id>_ses-<t>_trc-<trc>_rec-<rec>_pet.nii.gz (+ .json)   [x, y, z], Bq/mL
    sourcedata/sub-<id>/ses-<t>/pet/sub-<id>_ses-<t>_trc-<trc>_prompts.nii.gz      [view, bin, slice] counts
    sourcedata/sub-<id>/ses-<t>/pet/sub-<id>_ses-<t>_trc-<trc>_background.nii.gz   expected scatter + randoms
    sourcedata/sub-<id>/ses-<t>/pet/sub-<id>_ses-<t>_trc-<trc>_geometry.json       geometry, model, calibration
    sourcedata/sub-<id>/pet/sub-<id>_trc-<trc>_attenuation.nii.gz    [view, bin, slice] exp(-int mu), every session
    sourcedata/sub-<id>/pet/README
    derivatives/truth/sub-<id>/ses-<t>/pet/sub-<id>_ses-<t>_trc-<trc>_desc-expected_activity.nii.gz (+ .json)
    derivatives/truth/sub-<id>/pet/sub-<id>_desc-mu511keV_map.nii.gz (+ .json)

A frame is a static scan of its session: a mouse imaged at 1 h, 24 h and 48 h is three visits,
not one dynamic scan, so each is its own BIDS session with one-frame BIDS-PET timing keys
(``FrameTimesStart`` from the tracer's injection, ``TimeZero``).

The geometry JSON holds everything needed to rebuild the system model with other code:
``E[prompts] = n * a * P(x) + background`` for an image ``x`` in Bq/mL, with ``P`` the
parallel-beam line integrals (mm) of the stated geometry, ``a`` the attenuation factors and
``n`` the counts per unit projection of the session's frame.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from imagingsim.data.radionuclides import nuclide
from imagingsim.io.atomic import atomic_write_text
from imagingsim.io.host import host_array
from imagingsim.io.nifti import sinogram_grid, write_nifti
from imagingsim.io.sidecars import TIME_REFERENCE, version, write_json
from imagingsim.modalities.base import WriteContext
from imagingsim.modalities.pet.physics import range_scale_mm
from imagingsim.modalities.pet.result import PETAcquisition
from imagingsim.physics.decay import decay_integral_s
from imagingsim.projectors.geometry import sinogram_sidecar_fields

_RECON_CORRECTIONS = {
    "osem": "in the system model",
    "mlem": "in the system model",
    "fbp": "by precorrection of the sinogram before filtering",
}


def write_pet(stage: Path, acquisition: PETAcquisition, ctx: WriteContext) -> None:
    """Write one PET acquisition into a dataset being built at ``stage`` (see module docstring).

    Each frame is the static scan of one session (the schedule time it starts at); what no
    frame owns (the attenuation factors, the mu map) is written once at subject level.

    Parameters
    ----------
    stage : Path
        Root of the dataset being built (the atomic staging directory).
    acquisition : PETAcquisition
        Images, raw sinograms and metadata (:func:`imagingsim.modalities.pet.acquire.acquire_pet`).
    ctx : WriteContext
        The subject's scenario (subject id, schedule), phantom (grid), backend (host copies) and folders.
    """
    phantom, backend = ctx.phantom, ctx.backend
    sub = ctx.sub
    trc = acquisition.tracer.name
    attenuation = None
    if ctx.writes("raw"):
        raw = ctx.sourcedata_dir(stage, "pet")
        attenuation = raw / f"{sub}_trc-{trc}_attenuation.nii.gz"
        write_nifti(attenuation, host_array(backend, acquisition.attenuation_factors, np.float32),
                    sinogram_grid(acquisition.geometry, phantom.grid),
                    description="imagingsim PET attenuation factors exp(-line integral of mu_511)")
        atomic_write_text(raw / "README", _SOURCEDATA_README)
    for k in range(acquisition.n_frames):
        time_h = ctx.scenario.schedule.times_h[acquisition.schedule_indices[k]]
        _write_session(stage, acquisition.frame(k), ctx, time_h, attenuation)

    if not ctx.writes("truth"):
        return
    truth = ctx.truth_dir(stage, "pet")
    mu = host_array(backend, acquisition.mu_511_per_mm, np.float32)
    write_nifti(truth / f"{sub}_desc-mu511keV_map.nii.gz", mu, phantom.grid, description="imagingsim mu at 511 keV 1/mm")
    write_json(
        truth / f"{sub}_desc-mu511keV_map.json",
        {
            "Description": "Linear attenuation coefficient at 511 keV (xraydb Elam tables, ICRU compositions, voxel density).",
            "Units": "1/mm",
            "PhotonEnergy_keV": 511.0,
            "SpatialReference": f"bids:raw:{sub}/anat/{sub}_T1map.nii.gz",
        },
    )


def _write_session(stage: Path, frame: PETAcquisition, ctx: WriteContext, time_h: float,
                   attenuation: Path | None) -> None:
    """The images, raw sinograms and truth of one frame in its session ``ses-<time_h>``
    (``attenuation``: the subject's attenuation factors, when raw data is written)."""
    phantom, backend = ctx.phantom, ctx.backend
    trc = frame.tracer.name
    base = f"{ctx.prefix(time_h)}_trc-{trc}"

    if ctx.writes("images"):
        pet = ctx.images_dir(stage, "pet", time_h)
        common = _bids_pet_fields(frame, phantom)
        for method, image in frame.images_bq_per_ml.items():
            path = pet / f"{base}_rec-{method}_pet"
            data = host_array(backend, image, np.float32)
            write_nifti(f"{path}.nii.gz", data, phantom.grid, description=f"imagingsim PET {trc} {method}")
            write_json(f"{path}.json", {**common, **_recon_fields(frame, method)})

    if attenuation is not None:
        raw = ctx.sourcedata_dir(stage, "pet", time_h)
        sino_grid = sinogram_grid(frame.geometry, phantom.grid)
        for name, array, what in (
            ("prompts", frame.prompts, "prompt counts (trues + scatter + randoms, Poisson)"),
            ("background", frame.expected_background, "expected scatter + randoms counts"),
        ):
            write_nifti(raw / f"{base}_{name}.nii.gz", host_array(backend, array, np.float32), sino_grid,
                        description=f"imagingsim PET {what}")
        shared = Path(os.path.relpath(attenuation, raw)).as_posix()
        write_json(raw / f"{base}_geometry.json", _geometry_record(frame, phantom, base, shared))

    if not ctx.writes("truth"):
        return
    truth = ctx.truth_dir(stage, "pet", time_h)
    expected = host_array(backend, frame.expected_image_bq_per_ml, np.float32)
    write_nifti(truth / f"{base}_desc-expected_activity.nii.gz", expected, phantom.grid,
                description=f"imagingsim PET {trc} expected activity")
    write_json(
        truth / f"{base}_desc-expected_activity.json",
        {
            "Description": (
                "What an ideal scanner (no blur, no noise, perfect corrections) would report in the "
                "convention of the PET images: the sum over positron emitters of activity x positrons "
                "per decay x decay over the frame, divided by the tracer's positrons per decay and decay "
                "factor. Compare reconstructions with this, voxel by voxel."
            ),
            "Units": "Bq/mL",
            "FrameTimesStart_s": list(frame.frame_start_s),
            "FrameTimesStartAfterInjection_s": _since_injection(frame),
            "FrameDuration_s": list(frame.frame_duration_s),
            "ImageDecayCorrected": frame.decay_corrected,
            "Tracer": trc,
            "PositronEmitters": dict(frame.emitters),
            "ReferenceTime": TIME_REFERENCE,
            "SpatialReference": f"bids:raw:{ctx.sub}/anat/{ctx.sub}_T1map.nii.gz",
        },
    )


def _since_injection(acq: PETAcquisition) -> list[float]:
    """Frame starts relative to BIDS TimeZero, the tracer's injection, s."""
    injection_s = float(acq.tracer.injection_time_h) * 3600.0
    return [t - injection_s for t in acq.frame_start_s]


def _bids_pet_fields(acq: PETAcquisition, phantom) -> dict:
    """The BIDS-PET sidecar fields shared by every reconstruction of one acquisition."""
    injection_h = float(acq.tracer.injection_time_h)
    starts = _since_injection(acq)
    body_kg = float(phantom.body_mass_g) / 1000.0
    others = {a: n for a, n in acq.emitters.items() if a != acq.tracer.name}
    bids_nuclide = nuclide(acq.nuclide).bids_name
    scatter = acq.total_counts["scatter"]
    trues = acq.total_counts["trues"]
    payload = acq.tracer.payload
    # BIDS-PET's Pharmaceutical* keys describe a drug given with the tracer: the carrier's payload.
    pharmaceutical = {} if payload is None else {
        "PharmaceuticalName": payload.drug,
        "PharmaceuticalDoseAmount": acq.injected_mass_ug * payload.loading_mg_per_mg,
        "PharmaceuticalDoseUnits": "ug",
        "PharmaceuticalDoseRegimen": f"single bolus, encapsulated in the tracer's carrier ({acq.tracer.carrier})",
        "PharmaceuticalDoseTime": 0.0,
    }
    return {
        "Manufacturer": acq.scanner.manufacturer,
        "ManufacturersModelName": acq.scanner.model,
        "Units": "Bq/mL",
        "TracerName": f"{bids_nuclide}-{acq.tracer.name} ({acq.tracer.carrier})",
        "TracerRadionuclide": bids_nuclide,
        "InjectedRadioactivity": acq.injected_activity_bq / 1e6,
        "InjectedRadioactivityUnits": "MBq",
        "InjectedMass": acq.injected_mass_ug,
        "InjectedMassUnits": "ug",
        "InjectedMassPerWeight": acq.injected_mass_ug / body_kg,
        "InjectedMassPerWeightUnits": "ug/kg",
        "SpecificRadioactivity": acq.specific_activity_bq_per_ug / 1e6,
        "SpecificRadioactivityUnits": "MBq/ug",
        "SpecificRadioactivityMeasTime": "00:00:00",  # at the injection (TimeZero)
        "Purity": 100.0,  # a simulated tracer has no radiochemical impurity
        **pharmaceutical,
        "ModeOfAdministration": "bolus",
        "TimeZero": "00:00:00",
        "ScanStart": starts[0],
        "InjectionStart": 0.0,
        "InjectionEnd": 0.0,
        "FrameTimesStart": starts,
        "FrameDuration": list(acq.frame_duration_s),
        "AcquisitionMode": "2-D sinograms of direct planes (simulated)",
        "ImageDecayCorrected": acq.decay_corrected,
        "ImageDecayCorrectionTime": 0.0 if acq.decay_corrected else starts[0],
        "DecayCorrectionFactor": list(acq.decay_correction_factors),
        "ScaleFactor": [1.0] * len(starts),  # the stored values are the image: no rescaling
        "DoseCalibrationFactor": 1.0,  # the simulation knows the activity exactly
        "ScatterFraction": [100.0 * s / (t + s) if t + s > 0 else 0.0 for s, t in zip(scatter, trues, strict=True)],
        "BodyPart": "whole body" if phantom.species == "mouse" else phantom.spec.anatomy,
        "BodyWeight": body_kg,
        "BodyWeightUnits": "kg",
        "SUVScaleFactor": list(acq.suv_scale_g_per_bq),
        "SUVScaleFactorUnits": "g/Bq per frame (body-weight SUV = image in Bq/mL x factor, g/mL taken as 1)",
        "PositronEmitters": dict(acq.emitters),
        "ContaminatingPositronEmitters": (
            "none" if not others else
            f"{', '.join(f'{a} ({n})' for a, n in others.items())} also emit positrons: a scanner cannot tell "
            "them from the tracer, so their counts are in the image, scaled as if they were the tracer."
        ),
        "SimulationNotes": (
            "Simulated by imagingsim: 2-D direct-plane parallel-beam model (Joseph projector), positron "
            "range (water kernel per nuclide) and Gaussian scanner PSF, attenuation from the phantom at "
            "511 keV, smooth scatter and uniform randoms at the preset fractions, Poisson counts. Raw "
            "sinograms and the full system model are in sourcedata/."
        ),
        "TimeReference": (
            f"TimeZero 00:00:00 is the injection of the tracer, {injection_h!r} h after the scenario's t = 0 "
            f"(the time origin of the other files: {TIME_REFERENCE})"
        ),
    }


def _recon_fields(acq: PETAcquisition, method: str) -> dict:
    params = acq.recon_parameters[method]
    corrections = _RECON_CORRECTIONS.get(method, "")
    labels = list(params["labels"]) or ["none"]
    fields = {
        "ReconMethodName": params["method_name"],
        "ReconMethodImplementationVersion": f"imagingsim {version()}",
        "ReconMethodParameterLabels": labels,
        "ReconFilterType": params["filter_type"],
        "AttenuationCorrection": f"attenuation map of the phantom at 511 keV, {corrections}",
        "AttenuationCorrectionMethodReference": "the true mu at 511 keV (derivatives/truth .../*_desc-mu511keV_map)",
        "ScatterCorrectionMethod": f"expected scatter (known to the simulation), {corrections}",
        "RandomsCorrectionMethod": f"expected randoms (known to the simulation), {corrections}",
    }
    if labels != ["none"]:
        fields["ReconMethodParameterUnits"] = list(params["units"])
        fields["ReconMethodParameterValues"] = list(params["values"])
    if params["filter_type"] != "none":
        fields["ReconFilterSize"] = params["filter_size"]
        fields["ReconFilterSizeUnits"] = "mm"
    return fields


def _geometry_record(acq: PETAcquisition, phantom, base: str, attenuation: str) -> dict:
    """The system model of one frame; ``attenuation`` is the shared file's path from this folder."""
    grid = phantom.grid
    return {
        "Description": "Raw PET data of one simulated scan (one session) and the system model that produced it.",
        "Files": {
            f"{base}_prompts.nii.gz": "measured prompts (counts), [view, radial bin, slice]",
            f"{base}_background.nii.gz": "expected scatter + randoms (counts), [view, radial bin, slice]",
            attenuation: "attenuation factors exp(-line integral of mu_511), [view, radial bin, slice]: the same "
                         "for every session, so written once at subject level",
        },
        "SystemModel": (
            "E[prompts] = CountsPerUnitProjection[0] * attenuation * P(PSF(x)) + background, "
            "with x the image in Bq/mL (the tracer's convention; see ImageDecayCorrected) on the image grid, "
            "P the parallel-beam line integrals in mm (slices independent), and PSF the positron range of the "
            "tracer convolved with a Gaussian of ScannerFWHM_mm."
        ),
        **sinogram_sidecar_fields(acq.geometry, grid),
        "FrameTimesStart_s": _since_injection(acq),
        "FrameTimesStartAfterScenarioStart_s": list(acq.frame_start_s),
        "FrameDuration_s": list(acq.frame_duration_s),
        "TimeZero": "00:00:00",
        "TimeZeroReference": "the tracer's injection",
        "CountsPerUnitProjection": list(acq.counts_per_unit_projection),
        "CountsPerUnitProjectionUnits": "counts per (Bq/mL x mm) in each sinogram bin",
        "ExpectedTotalCounts": {k: list(acq.total_counts[k]) for k in ("trues", "scatter", "randoms")},
        "MeasuredTotalPrompts": list(acq.total_counts["prompts"]),
        "Scanner": {
            "Preset": acq.scanner.preset,
            "ScannerFWHM_mm": acq.scanner.fwhm_mm,
            "Sensitivity": acq.scanner.sensitivity,
            "ScatterFraction": acq.scanner.scatter_fraction,
            "RandomsFraction": acq.scanner.randoms_fraction,
        },
        "Tracer": acq.tracer.name,
        "TracerNuclide": acq.nuclide,
        "PositronEmitters": dict(acq.emitters),
        "ImageDecayCorrected": acq.decay_corrected,
        "ReferenceTime": f"FrameTimesStart_s counts from the tracer's injection; FrameTimesStartAfterScenarioStart_s from {TIME_REFERENCE}",
        **_resolution_record(acq),
        **_decay_record(acq),
    }


def _resolution_record(acq: PETAcquisition) -> dict:
    """The PSF term of the system model, complete enough to rebuild it with other code."""
    ranges = {}
    for name in sorted({acq.nuclide, *acq.emitters.values()}):
        data = nuclide(name)
        mean, longest = data.mean_positron_range_mm, data.max_positron_range_mm
        ranges[data.bids_name] = {
            "MeanRange_mm": mean,
            "MaxRange_mm": longest,
            "Scale_mm": range_scale_mm(mean, longest) if 0.0 < mean < 0.5 * longest else None,
        }
    return {
        "PositronRange": {
            "Model": (
                "3-D distance r from emission to annihilation exponential with scale Scale_mm, truncated at "
                "MaxRange_mm (Scale_mm chosen so that the truncated mean is MeanRange_mm): density in space "
                "p(r) = exp(-r/s) / (4 pi s r^2 (1 - exp(-R/s))) for r <= R, in water (not scaled by density). "
                "Integrated over each image voxel by the midpoint rule (sub-voxels as many as keep the kernel "
                "box within 128 samples per axis, at most 9 per voxel); the mass within half the smallest voxel "
                "edge of the source, (1 - exp(-rho/s)) / (1 - exp(-R/s)), goes to the central voxel; normalised "
                "to sum 1."
            ),
            "Reference": "ranges in water: J Nucl Med 2022;63:649, Table 3",
            "Nuclides": ranges,
            "AppliedFor": acq.nuclide and nuclide(acq.nuclide).bids_name,
        },
        "ResolutionKernel": (
            "the PositronRange kernel of the tracer's nuclide convolved with a Gaussian of ScannerFWHM_mm "
            "(truncated at 4 sigma or the image size), applied in image space before the projection (PSF in "
            "SystemModel)"
        ),
    }


def _decay_record(acq: PETAcquisition) -> dict:
    """Per frame and per emitter the factors folded into CountsPerUnitProjection, given apart."""
    injection_s = float(acq.tracer.injection_time_h) * 3600.0
    emitters = {}
    for agent, name in sorted(acq.emitters.items()):
        data = nuclide(name)
        emitters[agent] = {
            "Nuclide": data.bids_name,
            "HalfLife_s": data.half_life_s,
            "PositronsPerDecay": data.beta_plus_fraction,
        }
    tracer = nuclide(acq.nuclide)
    integrals = [decay_integral_s(tracer.half_life_s, start, start + length, injection_s=injection_s)
                 for start, length in zip(acq.frame_start_s, acq.frame_duration_s)]
    seconds = integrals if acq.decay_corrected else list(acq.frame_duration_s)
    return {
        "Emitters": emitters,
        "TracerDecayIntegral_s": integrals,
        # sensitivity x bin x slice x views: the same for every frame
        "CountsPerUnitProjectionPerPositron": acq.counts_per_unit_projection[0] / (tracer.beta_plus_fraction * seconds[0]),
        "CountsPerUnitProjectionFactors": (
            "CountsPerUnitProjection[k] = CountsPerUnitProjectionPerPositron x PositronsPerDecay of the tracer x "
            "(TracerDecayIntegral_s[k] if ImageDecayCorrected else FrameDuration_s[k]); TracerDecayIntegral_s[k] "
            "is the integral over frame k of 2^(-(t - injection) / HalfLife_s) dt, s"
        ),
    }


_SOURCEDATA_README = """\
Raw PET data of the simulated scans: for each PET tracer, the measured prompt sinograms, the expected background (scatter +
randoms), the attenuation factors and a *_geometry.json with the geometry (angles in degrees,
radial bins in mm, slices), conventions and the full system model, so that the images can be
reconstructed with any other code. Sinograms are NIfTI arrays [view, radial bin, slice]: one scan
per session (ses-<time>/pet/), the attenuation factors once here (the same body at every session).
"""
