"""Write a CT acquisition: HU images (one per schedule time), raw counts in sourcedata, truth derivatives.

BIDS has no CT datatype: ``ct/`` is listed in ``.bidsignore``. Each scan is one BIDS session,
``ses-<t>`` (``<id>`` the subject, ``<t>`` the scan's schedule time as a session label, e.g.
``24h`` or ``0p5h``; ``<element>`` ``gold`` or ``iodine``). Layout::

    sub-<id>/ses-<t>/ct/sub-<id>_ses-<t>_ct.nii.gz (+ .json)                    HU, float32, phantom grid
    sourcedata/sub-<id>/ses-<t>/ct/sub-<id>_ses-<t>_counts.nii.gz               [view, bin, slice] photons
    sourcedata/sub-<id>/ct/sub-<id>_ct_geometry.json                            geometry, spectrum, I0, calibration
    sourcedata/sub-<id>/ct/README
    derivatives/truth/sub-<id>/ses-<t>/ct/sub-<id>_ses-<t>_desc-trueMu_map.nii.gz (+ .json)      1/mm at E_ref
    derivatives/truth/sub-<id>/ses-<t>/ct/sub-<id>_ses-<t>_desc-<element>_conc.nii.gz (+ .json)  mg/mL

The geometry JSON and the README stay at subject level: one scanner, spectrum and calibration
serve every session. The geometry JSON holds what is needed to redo the reconstruction with
other code: ``p = ln(I0 / max(counts, 1))``, the water pre-correction table, the parallel-beam
geometry and the HU scale (``mu_water`` at the reference energy).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imagingsim.grid import ImageGrid
from imagingsim.io.atomic import atomic_write_text
from imagingsim.io.host import host_array
from imagingsim.io.nifti import sinogram_grid, write_nifti
from imagingsim.io.sidecars import TIME_REFERENCE, write_json
from imagingsim.modalities.base import WriteContext
from imagingsim.modalities.ct.result import CTAcquisition
from imagingsim.projectors.geometry import sinogram_sidecar_fields

_BONE_HU_DEFINITION = (
    "CorticalBoneHU: HU that cortical bone (ICRU 44, 1.92 g/mL) reads on this CT, the break point of the bilinear "
    "HU -> mu conversion for attenuation correction: a central chord of CorticalBoneCalibrationChord_mm of bone in the "
    "calibration water cylinder, polyenergetic line integral clipped at 1 photon, water pre-correction when "
    "WaterPrecorrection, HU = 1000 (P(bone chord) - P(water chord)) / (chord x WaterAttenuationAtReferenceEnergy_per_mm). "
    "CorticalBoneHUMonoenergetic: bone's HU at the monoenergetic ReferenceEnergy_keV (higher: the water pre-correction "
    "does not undo bone's beam hardening)."
)
_FBP_FILTER_NAMES = {"ramp": "ramp filter", "shepp-logan": "Shepp-Logan filter", "hann": "Hann-windowed ramp filter"}
_ELEMENT_NAMES = {"gold": "Au", "iodine": "I"}


def write_ct(stage: Path, acquisition: CTAcquisition, ctx: WriteContext) -> None:
    """Write one CT acquisition into a dataset being built at ``stage`` (see module docstring).

    Each scan goes to the session of its schedule time; the geometry JSON and README, the same
    for every scan, go once to the subject's sourcedata.

    Parameters
    ----------
    stage : Path
        Root of the dataset being built (the atomic staging directory).
    acquisition : CTAcquisition
        HU images, raw counts and metadata (:func:`imagingsim.modalities.ct.acquire.acquire_ct`).
    ctx : WriteContext
        The subject's scenario (subject id), phantom (grid), backend (host copies) and folders.
    """
    phantom, backend = ctx.phantom, ctx.backend
    sub = ctx.sub
    acq = acquisition
    spatial_reference = f"bids:raw:{sub}/anat/{sub}_T1map.nii.gz"
    common = _sidecar_fields(acq, phantom.grid.voxel_size_mm[2])
    sino_grid = sinogram_grid(acq.geometry, phantom.grid)
    # one download per array, of the kinds written
    hu = host_array(backend, acq.hu, np.float32) if ctx.writes("images") else None
    counts = host_array(backend, acq.measured_counts, np.float32) if ctx.writes("raw") else None
    if ctx.writes("truth"):
        mu_true = host_array(backend, acq.mu_true_per_mm, np.float32)
        contrast = {e: host_array(backend, a, np.float32) for e, a in acq.contrast_mg_per_ml.items()}
    for k, time_h in enumerate(acq.times_h):
        base = ctx.prefix(time_h)
        if hu is not None:
            ct_dir = ctx.images_dir(stage, "ct", time_h)
            write_nifti(ct_dir / f"{base}_ct.nii.gz", hu[..., k], phantom.grid, description=f"imagingsim CT HU {time_h:g} h")
            write_json(ct_dir / f"{base}_ct.json", {**common, "AcquisitionTime_h": time_h,
                                                    "SpatialReference": spatial_reference})
        if counts is not None:
            write_nifti(ctx.sourcedata_dir(stage, "ct", time_h) / f"{base}_counts.nii.gz", counts[..., k], sino_grid,
                        description="imagingsim CT photon counts")
        if ctx.writes("truth"):
            _write_truth(ctx.truth_dir(stage, "ct", time_h), base, acq, time_h, mu_true[..., k],
                         {e: a[..., k] for e, a in contrast.items()}, phantom.grid, spatial_reference)
    if ctx.writes("raw"):
        raw = ctx.sourcedata_dir(stage, "ct")
        write_json(raw / f"{sub}_ct_geometry.json", _geometry_record(acq, phantom, sub))
        atomic_write_text(raw / "README", _SOURCEDATA_README)


def recon_method_name(acq: CTAcquisition) -> str:
    """A one-line description of the reconstruction (filter, cut-off, pre-correction)."""
    system = acq.system
    correction = "water beam-hardening pre-correction" if system.water_precorrection else "no beam-hardening correction"
    return (f"FBP ({_FBP_FILTER_NAMES.get(system.fbp_filter, system.fbp_filter)}, cut-off {system.fbp_cutoff:g} x "
            f"Nyquist) of ln(I0 / counts), {correction}")


def _sidecar_fields(acq: CTAcquisition, slice_mm: float) -> dict:
    """The sidecar of every HU image: acquisition parameters with units in the key names."""
    system, cal, spectrum = acq.system, acq.calibration, acq.spectrum
    return {
        "Modality": "CT",
        "Manufacturer": system.manufacturer,
        "ManufacturersModelName": system.model,
        "Units": "HU",
        "HUDefinition": "HU = 1000 (mu - mu_water) / mu_water, mu_water = water at ReferenceEnergy_keV",
        "SystemPreset": system.preset,
        "TubeVoltage_kVp": system.kvp,
        "TubeCurrentTimeProduct_mAs": system.tube_current_time_mAs,
        "TubeCurrentTimeProductPerView_mAs": system.tube_current_time_mAs / system.n_views,
        "InherentFiltration_mmAl": system.inherent_filtration_mm_Al,
        "AddedFiltration_mmAl": system.added_filtration_mm_Al,
        "AddedFiltration_mmCu": system.added_filtration_mm_Cu,
        "NumberOfViews": system.n_views,
        "ViewArc_deg": 180.0,
        "BeamGeometry": "parallel beam, one detector row per z plane (fan- and cone-beam geometry not modelled)",
        "Detector": "ideal photon counting (every photon counts 1; no energy weighting, scatter or electronic noise)",
        "DetectorBinSize_mm": acq.geometry.bin_size_mm,
        "SliceThickness_mm": slice_mm,
        "SpectrumModel": "Kramers thick-target bremsstrahlung, filtered (xraydb Elam attenuation)",
        "SpectrumMeanEnergy_keV": spectrum.mean_energy_keV,
        "SpectrumEnergyRange_keV": [spectrum.energies_keV[0] - 0.5, spectrum.kvp],
        "FluenceAtIsocentre_photonsPerMAsPerMM2": spectrum.total_photons_per_mAs_per_mm2,
        "IncidentPhotonsPerDetectorBinPerView": acq.i0_photons,
        "ReferenceEnergy_keV": cal.effective_energy_keV,
        "WaterAttenuationAtReferenceEnergy_per_mm": cal.mu_water_per_mm,
        "CorticalBoneHU": cal.hu_bone,
        "CorticalBoneHUMonoenergetic": cal.hu_bone_monoenergetic,
        "CorticalBoneCalibrationChord_mm": cal.calibration_bone_mm,
        "CorticalBoneHUDefinition": _BONE_HU_DEFINITION,
        "CalibrationWaterCylinderDiameter_mm": cal.calibration_diameter_mm,
        "WaterPrecorrection": system.water_precorrection,
        "ReconMethodName": recon_method_name(acq),
        "ReconFilterType": system.fbp_filter,
        "ReconFilterCutoff_fractionOfNyquist": system.fbp_cutoff,
        "PhotonNoise": system.noise,
        "ContrastElements": list(acq.contrast_elements),
        "ReferenceTime": TIME_REFERENCE,
        "SimulationNotes": (
            "Simulated by imagingsim: polyenergetic Beer-Lambert projection of material and contrast-element "
            "basis maps (ICRU compositions, xraydb), Poisson counts, log clipped at 1 photon, FBP. The reference "
            "energy is where water attenuates as much as the mean uncorrected reconstruction of a water cylinder "
            "of CalibrationWaterCylinderDiameter_mm; CorticalBoneHU is bone's CT number through the same chain (see "
            "CorticalBoneHUDefinition). Raw counts and the full model are in sourcedata/."
        ),
    }


def _write_truth(truth: Path, base: str, acq: CTAcquisition, time_h: float, mu, contrast: dict, grid: ImageGrid,
                 spatial_reference: str) -> None:
    energy = acq.calibration.effective_energy_keV
    write_nifti(truth / f"{base}_desc-trueMu_map.nii.gz", mu, grid, description=f"imagingsim true mu at {energy:.1f} keV")
    write_json(truth / f"{base}_desc-trueMu_map.json", {
        "Description": (
            "True linear attenuation coefficient at the CT reference energy (tissues with ICRU compositions and "
            "voxel density, plus contrast elements), the quantity the CT reconstruction estimates; true HU = "
            "1000 (mu - WaterAttenuationAtReferenceEnergy_per_mm) / WaterAttenuationAtReferenceEnergy_per_mm."
        ),
        "Units": "1/mm",
        "PhotonEnergy_keV": energy,
        "WaterAttenuationAtReferenceEnergy_per_mm": acq.calibration.mu_water_per_mm,
        "AcquisitionTime_h": time_h,
        "ReferenceTime": TIME_REFERENCE,
        "SpatialReference": spatial_reference,
    })
    for element, data in contrast.items():
        write_nifti(truth / f"{base}_desc-{element}_conc.nii.gz", data, grid, description=f"imagingsim CT {element} mg/mL")
        write_json(truth / f"{base}_desc-{element}_conc.json", {
            "Description": (
                f"Concentration of {element} ({_ELEMENT_NAMES[element]}) that the CT forward model used: carrier of every "
                f"agent labelled with {element} x its mass fraction."
            ),
            "Units": "mg/mL",
            "AcquisitionTime_h": time_h,
            "ReferenceTime": TIME_REFERENCE,
            "SpatialReference": spatial_reference,
        })


def _geometry_record(acq: CTAcquisition, phantom, sub: str) -> dict:
    grid = phantom.grid
    cal, system = acq.calibration, acq.system
    return {
        "Description": "Raw CT data of the simulated scans and the model that produced and reconstructs them.",
        "Files": {
            f"../ses-<t>/ct/{sub}_ses-<t>_counts.nii.gz": "measured photon counts per detector bin, [view, radial "
            "bin, slice], one file per session ses-<t> (the scan's schedule time), path from this folder",
        },
        "ForwardModel": (
            "E[counts] = sum_E I0PerEnergyBin[E] exp(-p(E)), p(E) = sum_m (mu/rho)_m(E) P rho_m: P the parallel-beam "
            "line integrals in mm of the basis density maps rho_m (g/mL) of the materials and contrast elements, "
            "(mu/rho) from xraydb (Elam). Counts are Poisson (PhotonNoise) or the expectation."
        ),
        "LineIntegral": "p = ln(I0 / max(counts, 1)), I0 = IncidentPhotonsPerDetectorBinPerView (a 0-count ray is "
                        "clipped at 1 photon so its log stays finite)",
        "WaterPrecorrection": {
            "Applied": system.water_precorrection,
            "Rule": "p -> WaterAttenuationAtReferenceEnergy_per_mm x L(p), L(p) by linear interpolation in the table "
                    "below (end segments extended)",
            "WaterLength_mm": list(cal.water_lengths_mm),
            "PolyenergeticLineIntegral": list(cal.water_line_integrals),
        },
        "Reconstruction": recon_method_name(acq),
        "HU": {
            "ReferenceEnergy_keV": cal.effective_energy_keV,
            "WaterAttenuationAtReferenceEnergy_per_mm": cal.mu_water_per_mm,
            "CalibrationMuWater_per_mm": cal.calibration_mu_water_per_mm,
            "CalibrationWaterCylinderDiameter_mm": cal.calibration_diameter_mm,
            "CorticalBoneHU": cal.hu_bone,
            "CorticalBoneHUMonoenergetic": cal.hu_bone_monoenergetic,
            "CorticalBoneCalibrationChord_mm": cal.calibration_bone_mm,
            "CorticalBoneHUDefinition": _BONE_HU_DEFINITION,
            "Definition": "HU = 1000 (mu - WaterAttenuationAtReferenceEnergy_per_mm) / "
                          "WaterAttenuationAtReferenceEnergy_per_mm",
        },
        "Spectrum": acq.spectrum.summary(),
        "I0PerEnergyBin": list(acq.i0_photons_per_energy),
        "IncidentPhotonsPerDetectorBinPerView": acq.i0_photons,
        "TubeVoltage_kVp": system.kvp,
        "TubeCurrentTimeProduct_mAs": system.tube_current_time_mAs,
        "FilterMaterials": {"InherentAl_mm": system.inherent_filtration_mm_Al, "AddedAl_mm": system.added_filtration_mm_Al,
                            "AddedCu_mm": system.added_filtration_mm_Cu},
        "BasisMaterials": list(acq.materials),
        "ContrastElements": list(acq.contrast_elements),
        **sinogram_sidecar_fields(acq.geometry, grid),
        "ScanTimes_h": list(acq.times_h),
        "ReferenceTime": TIME_REFERENCE,
    }


_SOURCEDATA_README = """\
Raw CT data of the simulated scans: for each schedule time, in its session folder
(../ses-<time>/ct/), the measured photon counts per detector bin ([view, radial bin, slice]
NIfTI arrays); here, one *_ct_geometry.json for every session with the geometry (angles in
degrees, radial bins in mm, slices), the X-ray spectrum, the unattenuated counts I0 per energy
bin, the water pre-correction table and the HU scale, so that the images can be reconstructed
with any other code.
"""
