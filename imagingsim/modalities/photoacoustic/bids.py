"""Write a photoacoustic acquisition: images, unmixed maps, raw signals with the geometry, truth.

Layout (``<id>`` the subject, ``<time>`` a session label, ``<rec>`` fbp or lsq, ``<label>``
an absorber)::

    sub-<id>/ses-<time>/pa/sub-<id>_ses-<time>_rec-<rec>_pa.nii.gz (+ .json)          p0 images, Pa, 4th axis wavelength
    sub-<id>/ses-<time>/pa/sub-<id>_ses-<time>_rec-<rec>_desc-unmixed_pa.nii.gz        concentrations, 4th axis endmember
    sub-<id>/ses-<time>/pa/sub-<id>_ses-<time>_rec-<rec>_desc-unmixedcomp_pa.nii.gz    the same, fluence-compensated
    sub-<id>/ses-<time>/pa/sub-<id>_ses-<time>_rec-<rec>_desc-sO2_pa.nii.gz            sO2 (and desc-sO2comp)
    sub-<id>/pa/sub-<id>_so2error.tsv (+ .json)          sO2 error by depth, without and with compensation
    sub-<id>/pa/sub-<id>_desc-fluencemodel_pa.nii.gz     the fluence the compensation assumes, mJ/cm^2
    sourcedata/sub-<id>/ses-<time>/pa/sub-<id>_ses-<time>_pa.nii.gz   signals [element, sample, 1, wavelength], Pa
    sourcedata/sub-<id>/pa/sub-<id>_geometry.json        elements, time axis, band-pass, speed of sound
    derivatives/truth/sub-<id>[/ses-<time>]/photoacoustic/...   see imagingsim.modalities.photoacoustic.truth

BIDS has no photoacoustic datatype: ``pa/`` is listed in ``.bidsignore``. Images are the
imaged axial slice as a one-voxel-thick 3-D grid (its affine places it in the world), with
the wavelengths (or endmembers) along the 4th axis, listed in the sidecar.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imagingsim.grid import ImageGrid
from imagingsim.io.host import host_array
from imagingsim.io.nifti import write_nifti
from imagingsim.io.sessions import session_label
from imagingsim.io.sidecars import TIME_REFERENCE, write_json, write_tsv
from imagingsim.modalities.base import WriteContext
from imagingsim.modalities.photoacoustic.acquire import PA_NOISE_STREAM
from imagingsim.modalities.photoacoustic.result import DEPTH_COLUMNS, PAAcquisition
from imagingsim.modalities.photoacoustic.unmixing import MIN_HAEMOGLOBIN_MM

#: The truth derivative's folder of a modality is named after the modality (its .bidsignore
#: lists modality names: imagingsim.dataset.layout.truth_bidsignore_patterns).
TRUTH_FOLDER = "photoacoustic"

MODEL = (
    "p0 = Grueneisen x mu_a x fluence (x 1e4: Pa from 1/mm and mJ/cm^2). mu_a: oxy/deoxy-haemoglobin (phantom blood "
    "volume fraction x 150 g/L, sO2 from the Severinghaus curve at the phantom pO2), water and lipid (per tissue), "
    "agents (dyes, gold) from data/photoacoustic.toml. Fluence: diffusion theory of broad beams (semi-infinite "
    "medium, extrapolated boundary, optics averaged along the light path; ring: four beams +-x, +-y; linear array: "
    "one beam from its side). Acoustics: thin-slice (elevation-focused) Poisson solution in a homogeneous lossless "
    "medium, exact pixel footprints per sample, point elements, Gaussian band-pass; white Gaussian noise. See "
    "imagingsim.modalities.photoacoustic."
)


def _volume(array: np.ndarray) -> np.ndarray:
    """``(nx, ny, N)`` as the one-voxel-thick 4-D array ``(nx, ny, 1, N)`` (``(nx, ny)`` -> ``(nx, ny, 1)``)."""
    array = np.asarray(array, dtype=np.float32)
    return array[:, :, None] if array.ndim == 2 else array[:, :, None, :]


def write_photoacoustic(stage: Path, acquisition: PAAcquisition, ctx: WriteContext) -> None:
    """Write one photoacoustic acquisition into a dataset being built at ``stage`` (module docstring)."""
    acq, backend, sub = acquisition, ctx.backend, ctx.sub
    labels = [session_label(t) for t in acq.times_h]
    if len(set(labels)) != len(labels):
        raise ValueError(f"photoacoustic: schedule times {acq.times_h} give duplicate file labels {labels}")
    grid = acq.slice_grid
    if ctx.writes("images"):
        _write_images(stage, acq, ctx)
    if ctx.writes("raw"):
        signals = host_array(backend, acq.signals, np.float32)
        g = acq.geometry
        signal_grid = ImageGrid((g.n_elements, g.n_t, 1), (1.0, g.dt_us, 1.0), (0.0, g.t0_us, 0.0))
        for k, t in enumerate(acq.times_h):
            base = ctx.sourcedata_dir(stage, "pa", t) / f"{ctx.prefix(t)}_pa"
            write_nifti(f"{base}.nii.gz", signals[:, :, None, :, k], signal_grid,
                        description=f"imagingsim PA signals {t:g} h")
            write_json(f"{base}.json", {
                "Description": "Measured detector signals (noise included) at each wavelength.",
                "Units": "Pa",
                "Axes": ["element", "sample", "singleton", "wavelength"],
                "AxesDescription": "NIfTI voxel size along axis 1 is the sampling interval in us (not mm); time of "
                "sample k = FirstSampleTime_us + k x SamplingInterval_us",
                "Wavelengths_nm": list(acq.wavelengths_nm),
                "NoiseSD_Pa": acq.noise_sd_Pa,
                "NoiseGenerator": f"backend.rng(subject seed, {PA_NOISE_STREAM:#x}, {k})",
                "Geometry": f"sourcedata/{sub}/pa/{sub}_geometry.json",
                "AcquisitionTime_h": t,
            })
        write_json(ctx.sourcedata_dir(stage, "pa") / f"{sub}_geometry.json", {
            **g.sidecar(),
            "SliceGrid": {"Shape": list(grid.shape), "VoxelSize_mm": list(grid.voxel_size_mm),
                          "Origin_mm": list(grid.origin_mm)},
            "ForwardModel": MODEL,
        })
    if ctx.writes("truth"):
        _write_truth(stage, acq, ctx)


def _write_images(stage: Path, acq: PAAcquisition, ctx: WriteContext) -> None:
    backend, sub, grid = ctx.backend, ctx.sub, acq.slice_grid
    common = _sidecar(acq, sub)
    members = [{"Name": e.key, "Units": e.unit, "Source": e.source} for e in acq.endmembers]
    images = {m: host_array(backend, a) for m, a in acq.images.items()}
    unmixed = {"unmixed": acq.unmixed, "unmixedcomp": acq.unmixed_compensated}
    so2 = {"sO2": acq.so2_estimate, "sO2comp": acq.so2_compensated}
    unmixed_host = {d: host_array(backend, a) for d, a in unmixed.items() if a is not None}
    so2_host = {d: host_array(backend, a) for d, a in so2.items() if a is not None}
    rec = acq.unmix_from
    for k, t in enumerate(acq.times_h):
        folder = ctx.images_dir(stage, "pa", t)
        for method, data in images.items():
            base = folder / f"{ctx.prefix(t)}_rec-{method}_pa"
            write_nifti(f"{base}.nii.gz", _volume(data[..., k]), grid, description=f"imagingsim PA {method} {t:g} h")
            write_json(f"{base}.json", {**common, "ReconMethod": method, "Units": "Pa",
                                        "FourthAxis": "wavelength", "AcquisitionTime_h": t})
        for desc, data in unmixed_host.items():
            base = folder / f"{ctx.prefix(t)}_rec-{rec}_desc-{desc}_pa"
            write_nifti(f"{base}.nii.gz", _volume(data[..., k]), grid, description=f"imagingsim PA {desc} {t:g} h")
            write_json(f"{base}.json", {
                **common, "ReconMethod": rec, "FourthAxis": "endmember", "Endmembers": members,
                "Units": "per endmember (Endmembers[].Units)",
                "FluenceCompensation": acq.fluence_compensation if desc == "unmixedcomp" else "none",
                "FluenceAssumed": _assumed(acq, desc == "unmixedcomp"),
                "AcquisitionTime_h": t,
            })
        for desc, data in so2_host.items():
            base = folder / f"{ctx.prefix(t)}_rec-{rec}_desc-{desc}_pa"
            write_nifti(f"{base}.nii.gz", _volume(data[..., k]), grid, description=f"imagingsim PA {desc} {t:g} h")
            write_json(f"{base}.json", {
                **common, "ReconMethod": rec, "Units": "dimensionless (0-1, not clipped)",
                "Description": f"HbO2 / (HbO2 + Hb) of the unmixed maps; NaN where total haemoglobin < "
                f"{MIN_HAEMOGLOBIN_MM} mM", "FluenceCompensation": acq.fluence_compensation if desc == "sO2comp" else "none",
                "FluenceAssumed": _assumed(acq, desc == "sO2comp"), "AcquisitionTime_h": t,
            })
    folder = ctx.images_dir(stage, "pa")
    base = folder / f"{sub}_desc-fluencemodel_pa"
    write_nifti(f"{base}.nii.gz", _volume(host_array(backend, acq.fluence_model)), grid,
                description="imagingsim PA compensation fluence")
    write_json(f"{base}.json", {"Description": "Fluence the compensation assumes: the body outline filled with "
                                "typical soft tissue (tables' blood, pO2, water, lipid, scattering), same beams.",
                                "Units": "mJ/cm^2", "FourthAxis": "wavelength",
                                "Wavelengths_nm": list(acq.wavelengths_nm)})
    columns = list(DEPTH_COLUMNS)
    base = folder / f"{sub}_so2error"
    write_tsv(f"{base}.tsv", columns, [[row[c] for c in columns] for row in acq.so2_error_by_depth])
    write_json(f"{base}.json", {
        "Description": (f"Mean sO2 error (estimate - truth) of the rec-{acq.unmix_from} unmixing over the body "
                        "pixels with blood, in bins of depth below the illuminated skin (nearest beam), without and "
                        "with fluence compensation; the true_p0 columns unmix the true p0 the same way, so they show "
                        "the spectral colouring of the light with depth alone, without the reconstruction's errors "
                        "(band-pass, limited view, noise). Uncompensated = divided by the pulse's skin exposure only."),
        **{c: {"Units": u} for c, u in DEPTH_COLUMNS.items()},
    })


def _assumed(acq: PAAcquisition, compensated: bool) -> str:
    """What fluence the unmixing divided by, for a sidecar."""
    if not compensated:
        return "the skin exposure FluencePerPulse_mJ_per_cm2 everywhere (apparent values)"
    if acq.fluence_compensation == "homogeneous":
        return "the homogeneous-tissue fluence model (sub-<id>/pa/sub-<id>_desc-fluencemodel_pa)"
    return "the true (simulated) fluence of the session: the upper bound of any compensation"


def _write_truth(stage: Path, acq: PAAcquisition, ctx: WriteContext) -> None:
    backend, sub, grid = ctx.backend, ctx.sub, acq.slice_grid
    spatial = f"bids:raw:{sub}/anat/{sub}_T1map.nii.gz"
    p0, fluence = host_array(backend, acq.p0), host_array(backend, acq.fluence)
    agents = {k: host_array(backend, v) for k, v in acq.agent_truth.items()}
    units = {e.key: e.unit for e in acq.endmembers}
    for k, t in enumerate(acq.times_h):
        folder = ctx.truth_dir(stage, TRUTH_FOLDER, t)
        for desc, data, unit, what in (("p0", p0, "Pa", "initial pressure"), ("fluence", fluence, "mJ/cm^2", "fluence")):
            base = folder / f"{ctx.prefix(t)}_desc-{desc}_pa"
            write_nifti(f"{base}.nii.gz", _volume(data[..., k]), grid, description=f"imagingsim PA true {desc}")
            write_json(f"{base}.json", {"Description": f"True {what} in the imaged slice at this session's time, "
                                        "one volume per wavelength (4th axis).", "Units": unit,
                                        "Wavelengths_nm": list(acq.wavelengths_nm), "SampleTime_h": t,
                                        "ReferenceTime": TIME_REFERENCE, "SpatialReference": spatial})
        for key, data in agents.items():
            base = folder / f"{ctx.prefix(t)}_desc-{key}_conc"
            write_nifti(f"{base}.nii.gz", _volume(data[..., k]), grid, description=f"imagingsim PA true {key}")
            write_json(f"{base}.json", {"Description": f"True concentration of absorber {key} in the imaged slice.",
                                        "Units": units[key], "Agents": list(acq.agent_names[key]),
                                        "SampleTime_h": t, "ReferenceTime": TIME_REFERENCE,
                                        "SpatialReference": spatial})
    folder = ctx.truth_dir(stage, TRUTH_FOLDER)
    base = folder / f"{sub}_desc-sO2_pa"
    write_nifti(f"{base}.nii.gz", _volume(host_array(backend, acq.so2_true)), grid, description="imagingsim PA true sO2")
    write_json(f"{base}.json", {"Description": "True haemoglobin oxygen saturation (Severinghaus at the phantom pO2); "
                                "NaN outside the body and without blood.", "Units": "dimensionless (0-1)",
                                "SpatialReference": spatial})
    for key, data in acq.static_truth.items():
        base = folder / f"{sub}_desc-{key}_conc"
        write_nifti(f"{base}.nii.gz", _volume(host_array(backend, data)), grid, description=f"imagingsim PA true {key}")
        write_json(f"{base}.json", {"Description": f"True {key} in the imaged slice (the same at every time).",
                                    "Units": units[key], "SpatialReference": spatial})


def _sidecar(acq: PAAcquisition, sub: str) -> dict:
    """Fields shared by every image of one acquisition (units in the key names)."""
    g = acq.geometry
    return {
        "Modality": "PA (multi-wavelength photoacoustic tomography of one axial slice, simulated)",
        "Wavelengths_nm": list(acq.wavelengths_nm),
        "SlicePosition_z_mm": acq.slice_grid.origin_mm[2],
        "PixelSize_mm": g.voxel_mm,
        "Detector": g.detector,
        "NumberOfElements": g.n_elements,
        "SpeedOfSound_m_per_s": g.speed_mm_per_us * 1000.0,
        "CenterFrequency_MHz": g.center_frequency_MHz,
        "Bandwidth_percent": g.bandwidth_percent,
        "SamplingRate_MHz": 1.0 / g.dt_us,
        "FluencePerPulse_mJ_per_cm2": acq.exposure_mJ_per_cm2,
        "Grueneisen": acq.grueneisen,
        "SNR_dB": acq.snr_db,
        "SNRDescription": "20 log10(largest noise-free signal of the study / noise sd)",
        "NoiseSD_Pa": acq.noise_sd_Pa,
        "UnmixingConditionNumber": acq.condition_number,
        "Geometry": f"sourcedata/{sub}/pa/{sub}_geometry.json",
        "ForwardModel": MODEL,
        "ReferenceTime": TIME_REFERENCE,
        "SpatialReference": f"bids:raw:{sub}/anat/{sub}_T1map.nii.gz",
    }


__all__ = ["write_photoacoustic"]
