"""Write a NIRF acquisition: planar images with sidecars, the set-up's depth response, truth.

Layout (``<id>`` the subject, ``<time>`` a schedule time as letters and digits, 24 h ->
``24h``, 0.5 h -> ``0p5h``; ``<agent>`` a fluorophore agent)::

    sub-<id>/ses-<time>/nirf/sub-<id>_ses-<time>_nirf.nii.gz (+ .json)   measured image, photoelectrons
    sub-<id>/nirf/sub-<id>_depthsensitivity.tsv (+ .json)                point-source response vs depth
    derivatives/truth/sub-<id>/ses-<time>/nirf/sub-<id>_ses-<time>_desc-noisefree_nirf.nii.gz (+ .json)
    derivatives/truth/sub-<id>/ses-<time>/nirf/sub-<id>_ses-<time>_desc-<agent>Dye_conc.nii.gz (+ .json)  nmol/mL
    derivatives/truth/sub-<id>/nirf/sub-<id>_desc-background_nirf.nii.gz (+ .json)

One session per schedule time (``ses-<time>``); the depth response of the set-up and the
background, the same at every time, are at subject level.

BIDS has no fluorescence datatype: ``nirf/`` is listed in ``.bidsignore``. Each image is a
3-D NIfTI one voxel thick along the view axis, placed at the body surface facing the camera,
so its affine maps pixels to world (RAS mm) coordinates of the image plane.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imagingsim.io.host import host_array
from imagingsim.io.nifti import write_nifti
from imagingsim.io.sessions import session_label
from imagingsim.io.sidecars import TIME_REFERENCE, write_json, write_tsv
from imagingsim.modalities.base import WriteContext
from imagingsim.modalities.nirf.camera import NIRF_NOISE_STREAM
from imagingsim.modalities.nirf.result import DEPTH_COLUMNS, NIRFAcquisition
from imagingsim.modalities.nirf.surface import AXIS_NAMES, VIEWS
from imagingsim.modalities.nirf.tables import optics_table

IMAGE_UNITS = "photoelectrons"


def _plane(image: np.ndarray, acq: NIRFAcquisition) -> np.ndarray:
    """A 2-D ``[u, v]`` image as the one-voxel-thick 3-D array of ``acq.image_grid``."""
    return np.reshape(np.asarray(image, dtype=np.float32), acq.image_grid.shape)


def write_nirf(stage: Path, acquisition: NIRFAcquisition, ctx: WriteContext) -> None:
    """Write one NIRF acquisition into a dataset being built at ``stage`` (see the module docstring).

    Parameters
    ----------
    stage : Path
        Root of the dataset being built.
    acquisition : NIRFAcquisition
    ctx : WriteContext
        The subject (``ctx.sub``), the phantom grid of the dye truth and the backend of the
        device -> host copies.

    Raises
    ------
    ValueError
        When two schedule times give the same file label.
    """
    acq, backend, sub = acquisition, ctx.backend, ctx.sub
    labels = [session_label(t) for t in acq.times_h]
    if len(set(labels)) != len(labels):
        raise ValueError(f"NIRF: schedule times {acq.times_h} give duplicate file labels {labels}")
    if ctx.writes("images"):
        images = host_array(backend, acq.images_e)
        common = _sidecar(acq, ctx.phantom, sub)
        for k, t in enumerate(acq.times_h):
            base = ctx.images_dir(stage, "nirf", t) / f"{ctx.prefix(t)}_nirf"
            write_nifti(f"{base}.nii.gz", _plane(images[..., k], acq), acq.image_grid,
                        description=f"imagingsim NIRF {acq.dye.key} {acq.window} {t:g} h")
            write_json(f"{base}.json", {
                **common,
                "AcquisitionTime_h": t,
                "AcquisitionTime_s": 3600.0 * t,
                "NoiseGenerator": f"backend.rng(subject seed, {NIRF_NOISE_STREAM:#x}, {k})",
                "SaturatedPixels": acq.saturated_pixels[k],
                "SaturatedPixelsDescription": (
                    "pixels of this image clipped at SaturationLevel_e (0: none saturated); the noise-free truth is "
                    "not clipped"
                ),
                "PeakExpected_e": acq.peak_expected_e[k],
            })
        _write_depth_table(ctx.images_dir(stage, "nirf") / f"{sub}_depthsensitivity", acq)

    if not ctx.writes("truth"):
        return
    expected = host_array(backend, acq.expected_e)
    truth = ctx.truth_dir(stage, "nirf")
    spatial = f"bids:raw:{sub}/anat/{sub}_T1map.nii.gz"
    for k, t in enumerate(acq.times_h):
        session = ctx.truth_dir(stage, "nirf", t)
        base = session / f"{ctx.prefix(t)}_desc-noisefree_nirf"
        write_nifti(f"{base}.nii.gz", _plane(expected[..., k], acq), acq.image_grid,
                    description=f"imagingsim NIRF expected {t:g} h")
        write_json(f"{base}.json", {
            "Description": (
                "Noise-free expected value of the measured NIRF image at this time: dye fluorescence + "
                "tissue autofluorescence + dark current, before Poisson and read noise and not clipped at the "
                "camera's saturation level."
            ),
            "Units": IMAGE_UNITS,
            "AcquisitionTime_h": t,
            "Source": f"{sub}/{session.parent.name}/nirf/{ctx.prefix(t)}_nirf.nii.gz",
            "ReferenceTime": TIME_REFERENCE,
        })
    base = truth / f"{sub}_desc-background_nirf"
    write_nifti(f"{base}.nii.gz", _plane(host_array(backend, acq.background_e), acq), acq.image_grid,
                description="imagingsim NIRF autofluorescence + dark current")
    write_json(f"{base}.json", {
        "Description": (
            "The expected autofluorescence + dark-current part of every NIRF image (the same at all times); "
            "the dye's own signal is the noise-free image minus this."
        ),
        "Units": IMAGE_UNITS,
        "AutofluorescenceScale": acq.autofluorescence_scale,
        "DarkCurrent_e": acq.setup.dark_current_e_per_s * acq.exposure_s,
    })
    for name, conc in acq.dye_nmol_per_ml.items():
        dye = host_array(backend, conc, np.float32)
        for k, t in enumerate(acq.times_h):
            base = ctx.truth_dir(stage, "nirf", t) / f"{ctx.prefix(t)}_desc-{name}Dye_conc"
            write_nifti(f"{base}.nii.gz", dye[..., k], ctx.phantom.grid, description=f"imagingsim {name} dye nmol/mL")
            write_json(f"{base}.json", {
                "Description": (
                    f"Ground truth at this session's time: concentration of the {acq.dye_agents[name]} dye of agent "
                    f"{name}, carrier ug/mL x dye_nmol_per_mg / 1000, the instantaneous value at SampleTime_s."
                ),
                "Units": "nmol/mL",
                "Dye": acq.dye_agents[name],
                "Imaged": name in acq.imaged_agents,
                "SampleTime_s": 3600.0 * t,
                "SampleTime_h": t,
                "ReferenceTime": TIME_REFERENCE,
                "SpatialReference": spatial,
            })


def _sidecar(acq: NIRFAcquisition, phantom, sub: str) -> dict:
    """The sidecar fields shared by every image of one acquisition (units in the key names)."""
    view_axis, far_side = VIEWS[acq.view]
    cam, setup = acq.camera, acq.setup
    pixel_mm = [phantom.grid.voxel_size_mm[a] for a in range(3) if a != view_axis]
    extent_mm = [n * d for n, d in zip((phantom.grid.shape[a] for a in range(3) if a != view_axis), pixel_mm)]
    psf = optics_table().psf[acq.window]
    dye, band = acq.dye, acq.band
    others = {a: d for a, d in acq.dye_agents.items() if a not in acq.imaged_agents}
    return {
        "Modality": "NIRF (planar near-infrared fluorescence imaging, simulated)",
        "Units": IMAGE_UNITS,
        "UnitsDescription": (
            "photoelectrons per image pixel (Camera.Binning sensor pixels summed): a Poisson draw of the expected "
            "photoelectrons (signal + dark current) plus Gaussian read noise (values may be < 0), clipped at "
            "SaturationLevel_e"
        ),
        "Manufacturer": cam.manufacturer,
        "ManufacturersModelName": cam.model,
        "View": acq.view,
        "ViewDescription": (
            f"camera facing the {acq.view} body surface, looking along "
            f"{'-' if far_side else '+'}{AXIS_NAMES[view_axis]}"
        ),
        "IlluminationMode": acq.mode,
        "IlluminationModeDescription": (
            "epi-illumination: excitation and camera on the same side" if acq.mode == "epi"
            else "transillumination: excitation on the opposite surface"
        ),
        "Window": acq.window,
        "ImageAxes": list(acq.image_axes),
        "ImageAxesDescription": "array axes i, j of the one-voxel-thick NIfTI follow these world axes, increasing",
        "PixelSize_mm": pixel_mm,
        "ImagePlanePosition_mm": acq.image_grid.origin_mm[view_axis],
        "ImagePlaneDescription": (
            f"the NIfTI is one voxel thick along {AXIS_NAMES[view_axis]}, at the outermost body voxel facing the camera"
        ),
        "Dye": dye.key,
        "DyeName": dye.name,
        "DyeAbsorptionPeak_nm": dye.absorption_peak_nm,
        "DyeEmissionPeak_nm": dye.emission_peak_nm,
        "DyeExtinctionAtExcitation_per_M_per_cm": dye.extinction_M_per_cm,
        "DyeQuantumYield": dye.quantum_yield,
        "DyeInBandFraction": band.in_band_fraction,
        "DyeSource": dye.source,
        "ImagedAgents": list(acq.imaged_agents),
        "OtherFluorophoreAgents": others or "none",
        "ExcitationWavelength_nm": acq.excitation_nm,
        "ExcitationBand_nm": list(dye.excitation_band_nm),
        "EmissionBand_nm": list(band.band_nm),
        "EmissionWavelength_nm": acq.emission_nm,
        "EmissionWavelengthDescription": "band centre, where the emitted light's tissue optics are evaluated",
        "ExposureTime_s": acq.exposure_s,
        "ExcitationIrradiance_mW_per_cm2": acq.irradiance_mW_per_cm2,
        "TransmittedPhotonIrradiance_photons_per_s_per_mm2": acq.photons_per_s_per_mm2,
        "AutofluorescenceScale": acq.autofluorescence_scale,
        "SaturationLevel_e": setup.saturation_e,
        "Camera": {
            "Preset": cam.preset,
            "Description": cam.description,
            "Source": cam.source,
            "QuantumEfficiencyAtEmission": cam.qe(acq.emission_nm),
            "SensorPixel_um": cam.sensor_pixel_um,
            "SensorFormat_px": list(cam.sensor_format_px),
            "FullWellPerSensorPixel_e": cam.full_well_e,
            "ADCBitDepth": cam.adc_bits,
            "ADCGain_e_per_ADU": cam.adc_gain_e_per_adu,
            "ReadNoisePerSensorPixel_e": cam.read_noise_e,
            "DarkCurrentPerSensorPixel_e_per_s": cam.dark_current_e_per_s,
            "Binning": list(setup.binning),
            "BinningDescription": (
                "sensor pixels per image pixel along ImageAxes (software binning: every sensor pixel is read out)"
            ),
            "BinnedSensorPixels": setup.n_binned,
            "ReadNoise_e": setup.read_noise_e,
            "ReadNoiseDescription": "per image pixel: sqrt(BinnedSensorPixels) x ReadNoisePerSensorPixel_e",
            "DarkCurrent_e_per_s": setup.dark_current_e_per_s,
            "SaturationLevel_e": setup.saturation_e,
            "SaturationDescription": (
                "per image pixel: BinnedSensorPixels x min(full well, (2^ADCBitDepth - 1) x ADCGain_e_per_ADU)"
            ),
            "Magnification": setup.magnification,
            "LensFocalLength_mm": cam.lens_focal_length_mm,
            "LensFNumber": cam.lens_f_number,
            "NominalWorkingDistance_mm": cam.working_distance_mm,
            "WorkingDistance_mm": setup.working_distance_mm,
            "WorkingDistanceDescription": "thin-lens object distance at which Binning sensor pixels span one voxel",
            "FieldOfView_mm": list(setup.field_of_view_mm),
            "ImageExtent_mm": extent_mm,
            "ImageWithinFieldOfView": setup.covers(tuple(extent_mm)),
            "CollectionEfficiency": setup.collection_efficiency,
            "OpticsTransmission": cam.optics_transmission,
            "PhotoelectronsPerExitingPhoton": acq.photoelectrons_per_photon,
        },
        "ReferenceTissueOptics": dict(acq.reference_optics),
        "BackgroundNoiseOfReferenceTissue_e": acq.background_noise_e,
        "DepthSensitivityTable": f"{sub}_depthsensitivity.tsv",
        "OpticalModel": (
            "Diffusion theory, semi-infinite medium with extrapolated boundary (refractive index 1.4): broad-beam "
            "excitation fluence vs depth; fluorescence source = fluence x ln(10) x extinction x concentration x "
            "quantum yield x in-band fraction (+ tissue autofluorescence); emitted light reaches the surface with the "
            "exitance profile of a buried point source (image source at -(z + 2 zb)); optics averaged along each "
            "column, one PSF per depth layer (FFT convolution). The diffuse excitation source has strength 1 per "
            "transmitted photon (not the albedo mu_s'/mu_t': fluence high by mu_a/mu_s', 4 % in muscle at 810 nm); "
            "autofluorescence depends on tissue and emission window, not on the excitation wavelength. NIR-II adds "
            "a hand-tuned, uncalibrated (check) component of weakly scattered light (PSFModel), not fitted to any "
            "measurement. See imagingsim.modalities.nirf."
        ),
        "PSFModel": psf.sidecar() if psf.weakly_scattered_fraction > 0 else {
            "Status": "pure diffusion theory (no weakly scattered component)",
            "f0_WeaklyScatteredFraction": 0.0,
        },
        "NoiseModel": (
            "min(Poisson(expected photoelectrons, dark current included) + sqrt(N) x read noise x N(0, 1), "
            "SaturationLevel_e), N = Camera.BinnedSensorPixels; no blooming, no ADC quantisation noise"
        ),
        "ReferenceTime": TIME_REFERENCE,
        "SpatialReference": f"bids:raw:{sub}/anat/{sub}_T1map.nii.gz",
    }


def _write_depth_table(base: Path, acq: NIRFAcquisition) -> None:
    columns = list(DEPTH_COLUMNS)
    write_tsv(f"{base}.tsv", columns, [[row[c] for c in columns] for row in acq.depth_sensitivity])
    meaning = {
        "depth_mm": "depth of a point source below the surface facing the camera (transillumination: only depths "
        "inside the slab)",
        "excitation_fluence_per_irradiance": "excitation fluence rate at that depth per incident irradiance (epi: from "
        "the camera side; trans: from the opposite side of a slab of the mean body thickness)",
        "escape_fraction": "fraction of the photons emitted at that depth that leave the surface (all directions; "
        "NIR-II includes the weakly scattered part)",
        "psf_fwhm_mm": "FWHM of the surface image of the point source",
        "peak_pixel_fraction": "fraction of the escaping light that falls in the pixel above the source",
        "photoelectrons_per_emitted_photon": "detected photoelectrons per photon emitted at that depth",
        "photoelectrons_per_fmol": "whole-image photoelectrons from 1 fmol of the dye at that depth in one exposure",
        "detection_limit_fmol": "dye amount whose peak pixel equals 3 background noise sd (reference tissue "
        "autofluorescence, dark current, binned read noise)",
    }
    write_json(f"{base}.json", {
        "Description": (
            "Depth response of this NIRF set-up (dye, window, camera, exposure, irradiance) for a point source in "
            f"homogeneous {acq.reference_optics['tissue']} (optics in ReferenceTissueOptics)."
        ),
        **{c: {"Description": meaning[c], "Units": DEPTH_COLUMNS[c]} for c in columns},
        "ReferenceTissueOptics": dict(acq.reference_optics),
        "BackgroundNoise_e": acq.background_noise_e,
        "Window": acq.window,
        "Dye": acq.dye.key,
    })


__all__ = ["IMAGE_UNITS", "write_nirf"]
