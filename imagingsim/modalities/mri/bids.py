"""Write an MRI acquisition: BIDS multi-echo GRE and R2* maps, raw k-space in sourcedata,
truth derivatives, and the iron estimate as its own derivative.

Layout (``<id>`` the subject, ``<t>`` the session: the schedule time as a BIDS label, e.g.
``24h`` or ``0p5h`` (:func:`~imagingsim.io.sessions.session_label`), ``<n>`` the echo number
from 1)::

    sub-<id>/ses-<t>/anat/sub-<id>_ses-<t>_echo-<n>_part-mag_MEGRE.nii.gz (+ .json)  magnitude per echo
    sub-<id>/ses-<t>/anat/sub-<id>_ses-<t>_R2starmap.nii.gz (+ .json)                fitted R2*, 1/s
    sourcedata/sub-<id>/ses-<t>/mri/sub-<id>_ses-<t>_kspace.h5   ISMRMRD: one acquisition per phase encode and echo
    sourcedata/sub-<id>/mri/sub-<id>_samplingmask.npy        bool [ky, kz]
    sourcedata/sub-<id>/mri/sub-<id>_coilmaps.npy            complex64 [coil, x, y, z] (n_coils > 1)
    sourcedata/sub-<id>/mri/sub-<id>_kspace.json             axes, FFT convention, noise, protocol
    sourcedata/sub-<id>/mri/README
    derivatives/truth/sub-<id>/[ses-<t>/]mri/...             see MRI_TRUTH_FILES
    derivatives/mri-iron/                                    the iron estimate (a derivative)
      dataset_description.json  README
      sub-<id>/ses-<t>/anat/sub-<id>_ses-<t>_desc-ironEstimate_conc.nii.gz (+ .json)   mM
      sub-<id>/ses-<t>/anat/sub-<id>_ses-<t>_desc-r2starFit_mask.nii.gz (+ .json)      voxels fitted

The iron estimate is a measurement, not truth, so it is not in ``derivatives/truth``: it
lives in the derivative ``mri-iron`` (its own ``dataset_description.json``, linked to the raw
dataset), next to the mask of the voxels its R2* fit used. It is NaN (no estimate) outside
that mask, where the fit hit a clip limit, and where the baseline is already a void.

**Sessions.** Each schedule time is one BIDS session ``ses-<t>``, as a scanner images a
subject in separate visits; the sampling mask, the coil maps and the k-space record are the
same for every session and stay at subject level in ``sourcedata``, as do the pre-contrast
truth maps.

**Truth names.** The true R2* and R1 of a session are ``..._ses-<t>_desc-true_R2starmap``
and ``..._desc-true_R1map`` under ``derivatives/truth``: ``desc-true`` keeps them from
sharing a name with the raw fitted ``sub-<id>/ses-<t>/anat/..._ses-<t>_R2starmap``.

**Acceleration keys.** The (ky, kz) masks are two-dimensional and not separable into an
in-plane (ky) and an out-of-plane (kz) factor. ``ParallelReductionFactorInPlane`` is the
total reduction ``N_total / N_acquired``: the BIDS definition ("the denominator of the
fraction of k-space encoded for each slice") applied to the slices of the hybrid space
perpendicular to the fully sampled readout x, each of which is reconstructed from its own
(ky, kz) plane. ``ParallelReductionFactorOutOfPlane`` (the second phase-encode axis of a
separable 3-D pattern) is left out rather than invented; ``Acceleration``,
``UndersamplingPattern`` and the stored mask say the rest. ``CalibrationFraction`` and
``CalibrationEncodes`` report the box actually used (0 when fully sampled) in both the raw
sidecars and ``sourcedata/.../*_kspace.json``.

**ISMRMRD for k-space.** The field's raw-data standard (:mod:`~imagingsim.modalities.mri.ismrmrd_io`):
Gadgetron, BART, SigPy and the MRD tools read it; the header carries matrix, field of view
in mm, echo times, TR, flip angle and coil count, and the acquisitions the sampling pattern.
The JSON sidecar adds what ISMRMRD has no field for: the FFT convention, the noise and the
signal model.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from imagingsim.io.atomic import atomic_write_bytes, atomic_write_text
from imagingsim.io.host import host_array
from imagingsim.io.nifti import write_nifti
from imagingsim.io.sidecars import BIDS_VERSION, LICENSE, TIME_REFERENCE, generated_by, version, write_json
from imagingsim.modalities.base import WriteContext
from imagingsim.modalities.mri.ismrmrd_io import write_ismrmrd_session
from imagingsim.modalities.mri.relaxometry import (
    BASELINE_VOID_DECAY,
    NOISE_FLOOR_MULTIPLE,
    NOISE_NEIGHBOURHOOD,
    NOISE_REALISATIONS,
    R2STAR_RANGE_PER_S,
    SIGNAL_MASK_FRACTION,
    SIGNAL_MASK_NOISE_SDS,
)
from imagingsim.modalities.mri.result import MRIAcquisition
from imagingsim.modalities.mri.sampling import calibration_size

#: The derivative holding the iron estimate (not truth: a measurement from the R2* maps).
ESTIMATE_PIPELINE = "mri-iron"
MANUFACTURER = "imagingsim (simulated)"
MODEL_NAME = "imagingsim MRI forward model"


def write_mri(stage: Path, acquisition: MRIAcquisition, ctx: WriteContext) -> None:
    """Write one MRI acquisition into a dataset being built at ``stage`` (see module docstring)."""
    scenario, phantom, backend = ctx.scenario, ctx.phantom, ctx.backend
    sub = ctx.sub
    grid = phantom.grid
    acq = acquisition
    spec = acq.spec
    labels = list(acq.time_labels)
    if len(set(labels)) != len(labels):
        raise ValueError(f"MRI session labels collide: {labels} (schedule times closer than 1e-6 h)")

    spatial_reference = f"bids:raw:{sub}/anat/{sub}_T1map.nii.gz"
    has_fit = acq.r2star_per_s is not None
    has_estimate = acq.iron_estimate_mM is not None

    mask = np.fft.fftshift(host_array(backend, acq.mask, bool), axes=(0, 1))
    for k, (label, time_h) in enumerate(zip(labels, acq.times_h, strict=True)):
        base = ctx.prefix(time_h)
        session = _session_fields(acq, k)
        if ctx.writes("images"):
            anat = ctx.images_dir(stage, "anat", time_h)
            magnitude = host_array(backend, acq.magnitude[k, ...], np.float32)
            echo_files = []
            for e, te in enumerate(acq.echo_times_ms):
                name = f"{base}_echo-{e + 1}_part-mag_MEGRE"
                write_nifti(anat / f"{name}.nii.gz", magnitude[e], grid, description=f"imagingsim MEGRE {label} TE {te} ms")
                write_json(anat / f"{name}.json", {**_protocol_fields(acq), **session, "EchoTime": te * 1e-3})
                echo_files.append((anat / f"{name}.nii.gz").relative_to(stage).as_posix())
            if has_fit:
                write_nifti(anat / f"{base}_R2starmap.nii.gz", host_array(backend, acq.r2star_per_s[k, ...], np.float32),
                            grid, description=f"imagingsim fitted R2* {label} 1/s")
                write_json(anat / f"{base}_R2starmap.json", {**_r2star_fields(acq, echo_files), **session})
            if has_estimate:
                estimate = ctx.derivative_dir(stage, ESTIMATE_PIPELINE, "anat", time_h)
                r2star = f"bids:raw:{(anat / f'{base}_R2starmap.nii.gz').relative_to(stage).as_posix()}"
                _write_estimate(estimate, base, grid, acq, k, backend, {**session, "Sources": [r2star]})
        if ctx.writes("raw"):
            kspace = np.fft.fftshift(host_array(backend, acq.kspace[k, ...], np.complex64), axes=(-3, -2, -1))
            write_ismrmrd_session(ctx.sourcedata_dir(stage, "mri", time_h) / f"{base}_kspace.h5", kspace, mask,
                                  voxel_size_mm=grid.voxel_size_mm,
                                  field_t=spec.field_T, tr_ms=spec.repetition_time_ms, echo_times_ms=acq.echo_times_ms,
                                  flip_deg=spec.flip_angle_deg)
            del kspace
        if ctx.writes("truth"):
            _write_truth_session(ctx.truth_dir(stage, "mri", time_h), base, grid, acq, k, backend, spatial_reference)

    if ctx.writes("raw"):
        raw = ctx.sourcedata_dir(stage, "mri")
        _write_npy(raw / f"{sub}_samplingmask.npy", mask)
        if acq.coil_maps is not None:
            _write_npy(raw / f"{sub}_coilmaps.npy", host_array(backend, acq.coil_maps, np.complex64))
        write_json(raw / f"{sub}_kspace.json", _raw_record(acq, sub, grid, int(mask.sum())))
        atomic_write_text(raw / "README", _SOURCEDATA_README)
    if ctx.writes("truth"):
        _write_subject_truth(ctx.truth_dir(stage, "mri"), acq, sub, grid, backend, spatial_reference)
    if has_estimate and ctx.writes("images"):
        _write_estimate_dataset(stage / "derivatives" / ESTIMATE_PIPELINE, scenario, acq)


def _write_subject_truth(truth: Path, acq: MRIAcquisition, sub: str, grid, backend, spatial_reference: str) -> None:
    """The maps of no one session: the pre-contrast R2* and R1 and the B0 off-resonance."""
    spec = acq.spec
    for name, array, units, what in (
        ("baseline_R2starmap", acq.baseline_r2star_per_s, "1/s", "R2* before contrast"),
        ("baseline_R1map", acq.baseline_r1_per_s, "1/s", "R1 before contrast"),
    ):
        stem = f"{sub}_desc-{name}"
        write_nifti(truth / f"{stem}.nii.gz", host_array(backend, array, np.float32), grid, description=f"imagingsim {what}")
        write_json(truth / f"{stem}.json", {
            "Description": f"Pre-contrast {what} at {spec.field_T} T: the phantom's 3 T map carried to the field by "
                           "the field model of data/relaxivity.toml. The iron estimate subtracts this map, standing "
                           "in for the pre-contrast scan a real study would acquire.",
            "Units": units, "MagneticFieldStrength": spec.field_T, "SpatialReference": spatial_reference,
        })
    if acq.offresonance_hz is not None:
        stem = f"{sub}_desc-offresonance_fieldmap"
        write_nifti(truth / f"{stem}.nii.gz", host_array(backend, acq.offresonance_hz, np.float32), grid,
                    description="imagingsim B0 off-resonance Hz")
        write_json(truth / f"{stem}.json", {
            "Description": "B0 off-resonance map the simulation applied (phase 2 pi df TE at every echo): a smooth "
                           f"seeded Gaussian random field of sd {spec.b0_offresonance_hz} Hz.",
            "Units": "Hz", "SpatialReference": spatial_reference,
        })


def _write_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())


def _protocol_fields(acq: MRIAcquisition) -> dict:
    spec = acq.spec
    fields = {
        "Manufacturer": MANUFACTURER,
        "ManufacturersModelName": MODEL_NAME,
        "MagneticFieldStrength": spec.field_T,
        "MRAcquisitionType": "3D",
        "ScanningSequence": "GR",
        "SequenceVariant": "SP",
        "SequenceName": "imagingsim spoiled multi-echo GRE",
        "PulseSequenceType": "Spoiled multi-echo gradient echo",
        "RepetitionTime": spec.repetition_time_ms * 1e-3,
        "FlipAngle": spec.flip_angle_deg,
        "EchoTimes_s": [t * 1e-3 for t in acq.echo_times_ms],
        "NumberOfReceiveCoils": acq.n_coils,
        # Recommended BIDS keys that a simulation can answer truthfully (README: the ones it cannot).
        "SoftwareVersions": f"imagingsim {version()}",
        "PulseSequenceDetails": "imagingsim analytic spoiled-GRE signal model (SignalModel in sourcedata *_kspace.json)",
        "NonlinearGradientCorrection": False,
        "ReceiveCoilName": (f"simulated array of {acq.n_coils} smooth receive sensitivities" if acq.n_coils > 1
                            else "simulated uniform single coil"),
        "ReceiveCoilActiveElements": "all",
        "MatrixCoilMode": "none",
        "CoilCombinationMethod": ("SENSE (CG-SENSE reconstruction)" if acq.recon_method == "cg_sense" and acq.n_coils > 1
                                  else "root-sum-of-squares" if acq.n_coils > 1 else "none (single coil)"),
        "UndersamplingPattern": spec.undersampling,
        "Acceleration": acq.acceleration,
        "ParallelReductionFactorInPlane": acq.acceleration,
        **_calibration_fields(acq),
        "ReconstructionMethod": _RECON_NAMES[acq.recon_method].format(it=spec.cg_iterations, lam=spec.cg_regularization),
        "NoiseDefinition": "sd of each of the real and imaginary parts of the complex Gaussian k-space (and image) "
                           "noise, = noise_percent / 100 x the mean noiseless pre-contrast first-echo magnitude in "
                           "muscle (NoiseReferenceSignal): the same in every session",
        "NoisePercent": spec.noise_percent,
        "ContrastAgents": [
            {"Agent": a.name, "RelaxivityTable": a.table, "IronMassFraction": a.iron_mass_fraction,
             "r1_per_mM_s": a.relaxivity.r1_per_mM_s, "r2_per_mM_s": a.relaxivity.r2_per_mM_s,
             "r2star_per_mM_s": a.relaxivity.r2star_per_mM_s, "RelaxivitySource": a.relaxivity.source}
            for a in acq.iron_agents
        ],
        "ClusteredIronR2starFactor": spec.clustered_iron_r2star_factor,
        "SimulationNotes": (
            "Simulated by imagingsim: spoiled GRE signal per voxel (M0 = proton density, R1 and R2* from the "
            "baseline at this field plus iron relaxivity), optional smooth B0 off-resonance phase, coil "
            "sensitivities, orthonormal 3-D FFT, Cartesian (ky, kz) undersampling, complex Gaussian noise, "
            "reconstruction. Magnitude in arbitrary units (proton density relative to water scale). "
            "Raw k-space is in sourcedata/."
        ),
    }
    if acq.n_coils > 1 and acq.recon_method == "cg_sense":
        fields["ParallelAcquisitionTechnique"] = "SENSE"
    return fields


def _calibration_fields(acq: MRIAcquisition) -> dict:
    """The calibration box actually used: 0 (and a 0 x 0 box) when fully sampled."""
    spec = acq.spec
    if spec.undersampling == "none":
        return {"CalibrationFraction": 0.0, "CalibrationEncodes": [0, 0]}
    shape = tuple(int(n) for n in acq.mask.shape)
    return {"CalibrationFraction": spec.calibration_fraction,
            "CalibrationEncodes": list(calibration_size(shape, spec.calibration_fraction))}


_RECON_NAMES = {
    "zero_filled": "zero-filled inverse FFT, root-sum-of-squares coil combination",
    "cg_sense": "CG-SENSE, {it} conjugate-gradient iterations, Tikhonov lambda {lam} (relative to the largest "
                "eigenvalue of E^H E, 1), magnitude of the coil-combined image",
}


def _session_fields(acq: MRIAcquisition, k: int) -> dict:
    return {
        "SessionTime_s": acq.times_h[k] * 3600.0,
        "SessionTime_h": acq.times_h[k],
        "ReferenceTime": TIME_REFERENCE,
        "NoiseSD": acq.noise_sd[k],
        "NoiseReferenceSignal": acq.noise_reference_signal,
    }


def _r2star_fields(acq: MRIAcquisition, echo_files: list[str]) -> dict:
    protocol = _protocol_fields(acq)
    acquisition = ("MRAcquisitionType", "ScanningSequence", "SequenceVariant", "SequenceName", "PulseSequenceType",
                   "FlipAngle", "SoftwareVersions", "PulseSequenceDetails", "NonlinearGradientCorrection",
                   "ReceiveCoilName", "ReceiveCoilActiveElements", "MatrixCoilMode", "CoilCombinationMethod")
    return {
        "Description": "R2* fitted over the echoes of the magnitude images of this session.",
        "Units": "1/s",
        "MagneticFieldStrength": acq.spec.field_T,
        "Manufacturer": MANUFACTURER,
        "ManufacturersModelName": MODEL_NAME,
        **{key: protocol[key] for key in acquisition},
        "EchoTime": [t * 1e-3 for t in acq.echo_times_ms],  # the echoes the fit used, s
        "BasedOn": echo_files,
        "EstimationAlgorithm": (
            "log-linear weighted least squares of log|S| against TE. Noise floor: "
            f"{NOISE_REALISATIONS} noise-only k-spaces (same sigma, mask, coils and reconstruction) reconstructed, "
            "and the mean, sd and RMS of their magnitude taken per voxel over the realisations and the "
            f"{2 * NOISE_NEIGHBOURHOOD + 1}^3 neighbourhood. Root-sum-of-squares excess floor (1 - 1/C) RMS^2 "
            "subtracted from |S|^2 (C coils for zero-filled, 1 for CG-SENSE). Two passes: echoes after the second "
            "kept where |S| (first pass, weights |S|^2), then the first pass's predicted signal (second pass, "
            f"weights predicted^2) exceed {NOISE_FLOOR_MULTIPLE} x the noise RMS. Clipped to "
            f"[{R2STAR_RANGE_PER_S[0]}, {R2STAR_RANGE_PER_S[1]}] 1/s; 0 where the first-echo magnitude is below "
            f"max(noise mean + {SIGNAL_MASK_NOISE_SDS} noise sd, {SIGNAL_MASK_FRACTION} x its maximum) (air and "
            "signal voids, whose R2* exceeds what the echo train can measure)"
        ),
        "EchoTimes_s": [t * 1e-3 for t in acq.echo_times_ms],
    }


def _write_truth_session(truth: Path, base: str, grid, acq: MRIAcquisition, k: int, backend, spatial_reference) -> None:
    common = {"SessionTime_s": acq.times_h[k] * 3600.0, "SessionTime_h": acq.times_h[k],
              "ReferenceTime": TIME_REFERENCE, "MagneticFieldStrength": acq.spec.field_T,
              "SpatialReference": spatial_reference}
    agents = ", ".join(a.name for a in acq.iron_agents) or "none"
    for stem, array, units, description in (
        (f"{base}_desc-iron_conc", acq.true_iron_mM, "mM",
         f"Iron of all iron-oxide agents ({agents}) per voxel: carrier ug/mL x iron_mass_fraction / 55.845."),
        (f"{base}_desc-ironBound_conc", acq.true_bound_iron_mM, "mM",
         ("The cell-associated (receptor-bound, internalised, MPS-sequestered) part of the iron, whose effective "
          f"r2* is ClusteredIronR2starFactor = {acq.spec.clustered_iron_r2star_factor} times that in solution.")),
        (f"{base}_desc-true_R2starmap", acq.true_r2star_per_s, "1/s",
         "R2* the signal was computed from: baseline at the field + r2* (free + factor x bound iron)."),
        (f"{base}_desc-true_R1map", acq.true_r1_per_s, "1/s", "R1 the signal was computed from: baseline + r1 x iron."),
    ):
        write_nifti(truth / f"{stem}.nii.gz", host_array(backend, array[k, ...], np.float32), grid, description=f"imagingsim truth {stem}")
        write_json(truth / f"{stem}.json", {"Description": description, "Units": units, **common})


def _write_estimate(folder: Path, base: str, grid, acq: MRIAcquisition, k: int, backend, session: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    agent = acq.iron_agents[0]
    write_nifti(folder / f"{base}_desc-ironEstimate_conc.nii.gz", host_array(backend, acq.iron_estimate_mM[k, ...], np.float32), grid,
                description="imagingsim MRI iron estimate mM")
    write_json(folder / f"{base}_desc-ironEstimate_conc.json", {
        "Description": (
            "Iron estimated from the fitted R2* map: (R2* - R2*_0) / r2*, with R2*_0 the pre-contrast baseline at "
            "the field (which stands in for the pre-contrast scan a real study would acquire) and r2* the solution "
            f"relaxivity of {agent.name} ({agent.table}). Cell-associated, clustered iron has a higher effective "
            "r2*, so it is overestimated by up to ClusteredIronR2starFactor. NaN (no estimate) where the R2* fit "
            "was masked (desc-r2starFit_mask = 0), where the fit hit a clip limit of "
            f"[{R2STAR_RANGE_PER_S[0]}, {R2STAR_RANGE_PER_S[1]}] 1/s (a bound, not a value), and where the baseline "
            f"is already a void (R2*_0 x TE_1 >= {BASELINE_VOID_DECAY}: lung, cortical bone)."
        ),
        "Units": "mM",
        "NoEstimateValue": "NaN",
        "r2star_per_mM_s": agent.relaxivity.r2star_per_mM_s,
        "ClusteredIronR2starFactor": acq.spec.clustered_iron_r2star_factor,
        **session,
    })
    mask = host_array(backend, acq.fit_mask[k, ...]).astype(np.uint8)
    write_nifti(folder / f"{base}_desc-r2starFit_mask.nii.gz", mask, grid, description="imagingsim R2* fit mask")
    write_json(folder / f"{base}_desc-r2starFit_mask.json", {
        "Description": (
            "Voxels whose R2* was fitted (1): first-echo magnitude above the noise-floor detection threshold and "
            "the fraction of the maximum; 0 elsewhere (air and signal voids). The iron estimate is NaN where this "
            "is 0, and also where the fit is clipped or the baseline is a void."
        ),
        **session,
    })


def _write_estimate_dataset(root: Path, scenario, acq: MRIAcquisition) -> None:
    write_json(root / "dataset_description.json", {
        "Name": f"imagingsim MRI iron estimate: {scenario.name}",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": generated_by(scenario, ESTIMATE_PIPELINE),
        "DatasetLinks": {"raw": "../../"},
        "License": LICENSE,
    })
    atomic_write_text(root / "README", f"""# imagingsim MRI iron estimate

Iron concentration (mM) estimated from the fitted R2* maps of the raw dataset
(`sub-*/ses-*/anat/*_R2starmap.nii.gz`): (R2* - R2*_0) / r2*, one map per MRI session
(`ses-<time>`, the schedule time), and the mask of voxels the R2* fit used. The estimate is NaN where there
is none: outside the fit mask, where the R2* fit hit a clip limit, and where the
pre-contrast signal is already a void (lung, cortical bone).

- R2*_0 is the pre-contrast R2* of the phantom at {acq.spec.field_T} T, which stands in for the
  pre-contrast scan a real study would acquire (`derivatives/truth/.../mri/*_desc-baseline_R2starmap`).
- r2* is the relaxivity in solution ({', '.join(f'{a.name}: {a.relaxivity.r2star_per_mM_s} /mM/s' for a in acq.iron_agents)}).
  Cell-associated iron dephases {acq.spec.clustered_iron_r2star_factor} times more strongly in this
  simulation, so where iron is bound the estimate exceeds the true iron by up to that factor.
- This is an estimate, not ground truth: compare it with `derivatives/truth/sub-*/ses-*/mri/*_desc-iron_conc`.

BIDS has no suffix for a concentration map: `_conc` is an imagingsim convention, listed in
this derivative's `.bidsignore`; the fit masks are BIDS-Derivatives `_mask` files.
""")
    atomic_write_text(root / ".bidsignore", "**/*_conc.*\n")


def _raw_record(acq: MRIAcquisition, sub: str, grid, n_sampled: int) -> dict:
    spec = acq.spec
    files = {
        f"../ses-<time>/mri/{sub}_ses-<time>_kspace.h5": (
            "ISMRMRD (HDF5), one file per session (ses-<time> as in the raw images): one acquisition data[coil, kx] "
            "per acquired phase encode (idx.kspace_encode_step_1 = ky, idx.kspace_encode_step_2 = kz) and echo "
            "(idx.contrast); encodes not acquired have no acquisition"
        ),
        f"{sub}_samplingmask.npy": (
            "bool [ky, kz]: acquired phase encodes (the same in every session; readout kx fully sampled)"
        ),
    }
    if acq.coil_maps is not None:
        files[f"{sub}_coilmaps.npy"] = "complex64 [coil, x, y, z]: receive sensitivities, sum_c |S_c|^2 = 1"
    return {
        "Description": "Raw k-space of the simulated multi-echo GRE sessions and everything needed to reconstruct them "
                       "(Files: paths relative to this file's folder).",
        "Files": files,
        "Sessions": {label: {"SessionTime_h": t, "SessionTime_s": t * 3600.0, "NoiseSD": sd}
                     for label, t, sd in zip(acq.time_labels, acq.times_h, acq.noise_sd)},
        "NoiseReferenceSignal": acq.noise_reference_signal,
        "Axes": "kspace[e, c, i, j, l] (e = idx.contrast, c the coil row of data, i the readout sample, j = "
                "kspace_encode_step_1, l = kspace_encode_step_2): echo e (EchoTimes_s[e]), coil c, and the k-space sample "
                "of spatial frequency (i - nx // 2, j - ny // 2, l - nz // 2) / FOV along x (readout), y and z (phase "
                "encodes): centred",
        "FFTConvention": (
            "orthonormal 3-D DFT, stored centred: kspace[e, c] = numpy.fft.fftshift(numpy.fft.fftn(S_c * m_e, "
            "norm='ortho')); so coil image = numpy.fft.ifftn(numpy.fft.ifftshift(kspace[e, c]), norm='ortho'). "
            "Image axes as the NIfTI files (RAS+, [x, y, z], the grid below)."
        ),
        "SignalModel": (
            "m_e = M0 sin(a) (1 - E1) / (1 - cos(a) E1) exp(-TE_e R2*) exp(i 2 pi df TE_e), E1 = exp(-TR R1); "
            "kspace = mask * (FFT(S_c m_e) + noise)"
        ),
        "Noise": "complex Gaussian, sd NoiseSD in each of the real and imaginary parts, at acquired encodes only; the "
                 "same sd per voxel in image space (orthonormal FFT). NoiseSD = NoisePercent / 100 x "
                 "NoiseReferenceSignal (mean pre-contrast first-echo magnitude in muscle): the same in every session",
        "NoiseSD": list(acq.noise_sd),
        "NoisePercent": spec.noise_percent,
        "EchoTimes_s": [t * 1e-3 for t in acq.echo_times_ms],
        "RepetitionTime_s": spec.repetition_time_ms * 1e-3,
        "FlipAngle_deg": spec.flip_angle_deg,
        "MagneticFieldStrength_T": spec.field_T,
        "NumberOfCoils": acq.n_coils,
        "CoilMaps": "uniform single coil (S = 1)" if acq.coil_maps is None else f"{sub}_coilmaps.npy",
        "UndersamplingPattern": spec.undersampling,
        "RequestedAcceleration": spec.acceleration,
        "Acceleration": acq.acceleration,
        "ParallelReductionFactorInPlane": acq.acceleration,
        "AcquiredPhaseEncodes": n_sampled,
        "TotalPhaseEncodes": int(grid.shape[1] * grid.shape[2]),
        **_calibration_fields(acq),
        "ReconstructionMethod": _RECON_NAMES[acq.recon_method].format(it=spec.cg_iterations, lam=spec.cg_regularization),
        "ImageGrid": {
            "shape": list(grid.shape),
            "voxel_size_mm": list(grid.voxel_size_mm),
            "affine_RAS_mm": [list(row) for row in grid.affine],
        },
        "ReferenceTime": TIME_REFERENCE,
    }


_SOURCEDATA_README = """\
Raw MRI data of the simulated multi-echo spoiled-GRE sessions (one per schedule time): complex
k-space per session as ISMRMRD (*_kspace.h5: one acquisition per acquired phase encode and
echo, k-space centred), the phase-encode sampling mask, the coil sensitivity maps when there is more than one
coil, and *_kspace.json with the axes, the FFT convention (orthonormal), the noise sd, the
protocol and the image grid, so the images can be reconstructed with any other code.
"""
