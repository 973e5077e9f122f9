"""CT on disk: one BIDS session per schedule time with its HU image and complete sidecar, raw
counts per session and one model in sourcedata that reproduce the images' inputs, truth
derivatives at the reference energy per session."""

from __future__ import annotations

import json
import math
import re
import types

import nibabel as nib
import numpy as np
import pytest

from imagingsim.backend import get_backend
from imagingsim.grid import ImageGrid
from imagingsim.io.truth_files import TruthFile
from imagingsim.modalities.base import WriteContext, acquisition_context
from imagingsim.modalities.ct.acquire import acquire_ct
from imagingsim.modalities.ct.bids import write_ct
from imagingsim.modalities.ct.truth import TRUTH_FILES
from imagingsim.pipeline import load_scenario
from imagingsim.projectors import ParallelBeamGeometry
from imagingsim.scenario import AgentSpec

#: Sidecar keys every HU image carries (units in the key names where there are units).
CT_SIDECAR_KEYS = (
    "Modality", "Manufacturer", "ManufacturersModelName", "Units", "HUDefinition", "AcquisitionTime_h",
    "TubeVoltage_kVp", "TubeCurrentTimeProduct_mAs", "InherentFiltration_mmAl", "AddedFiltration_mmAl",
    "AddedFiltration_mmCu", "NumberOfViews", "ViewArc_deg", "BeamGeometry", "Detector", "DetectorBinSize_mm",
    "SliceThickness_mm", "SpectrumMeanEnergy_keV", "SpectrumEnergyRange_keV", "IncidentPhotonsPerDetectorBinPerView",
    "ReferenceEnergy_keV", "WaterAttenuationAtReferenceEnergy_per_mm", "CorticalBoneHU", "CorticalBoneHUMonoenergetic",
    "CorticalBoneCalibrationChord_mm", "CorticalBoneHUDefinition", "CalibrationWaterCylinderDiameter_mm", "WaterPrecorrection", "ReconMethodName", "ReconFilterType",
    "ReconFilterCutoff_fractionOfNyquist", "PhotonNoise", "ReferenceTime",
)  # fmt: skip

#: The truth-file patterns the CT writer must follow, one folder per session (documented in ct.truth).
CT_TRUTH_PATTERNS = (
    TruthFile("sub-<id>/ses-<time>/ct/sub-<id>_ses-<time>_desc-trueMu_map", (".nii.gz", ".json"), "true mu", "1/mm"),
    TruthFile("sub-<id>/ses-<time>/ct/sub-<id>_ses-<time>_desc-gold_conc", (".nii.gz", ".json"), "gold", "mg/mL"),
    TruthFile("sub-<id>/ses-<time>/ct/sub-<id>_ses-<time>_desc-iodine_conc", (".nii.gz", ".json"), "iodine", "mg/mL"),
)
TIMES_H = (1.0, 2.0)


def _gold_cylinder(backend, n=64, voxel_mm=0.5):
    """A 10 mm water cylinder in air with a 2.5 mm gold insert that appears at the second scan."""
    xp = backend.xp
    half = (n - 1) / 2 * voxel_mm
    grid = ImageGrid((n, n, 1), (voxel_mm,) * 3, (-half, -half, 0.0))
    x, y, z = grid.axes_mm(backend)
    labels = xp.astype(x * x + y * y + 0.0 * z < 100.0, xp.uint8)
    density = xp.where(labels == 1, xp.ones(labels.shape, dtype=xp.float64, device=backend.device), 0.0012)
    phantom = types.SimpleNamespace(grid=grid, labels=labels, materials={0: "air", 1: "water"},
                                    properties={"density_g_per_ml": density})
    agent = AgentSpec.model_validate({"name": "gold", "carrier": "peg_liposome", "dose_mg_per_kg": 10.0,
                                      "labels": [{"kind": "gold", "gold_mass_fraction": 0.5}]})
    insert = xp.astype((x - 4.0) ** 2 + y * y + 0.0 * z < 6.25, xp.float64)
    carrier = xp.stack([insert * 0.0, insert * 10000.0], axis=-1)  # ug/mL carrier -> 5 mg/mL Au
    delivery = types.SimpleNamespace(agents=(types.SimpleNamespace(agent=agent, carrier_ug_per_ml=carrier),),
                                     times_h=TIMES_H)
    return phantom, delivery


@pytest.fixture(scope="module")
def ct_dataset(tmp_path_factory):
    backend = get_backend("numpy")
    phantom, delivery = _gold_cylinder(backend)
    scenario = load_scenario(None, ["modalities.ct.n_views=120"])
    acq = acquire_ct(acquisition_context("ct", phantom, delivery, scenario, backend, 3))
    stage = tmp_path_factory.mktemp("ct")
    write_ct(stage, acq, WriteContext(scenario, phantom, backend))
    return stage, phantom, acq


def test_hu_images_and_sidecars(ct_dataset):
    stage, phantom, acq = ct_dataset
    for k, label in enumerate(("1h", "2h")):
        path = stage / "sub-01" / f"ses-{label}" / "ct" / f"sub-01_ses-{label}_ct.nii.gz"
        img = nib.load(path)
        assert img.shape == phantom.grid.shape and img.get_data_dtype() == np.float32
        np.testing.assert_array_equal(np.asarray(img.dataobj), np.asarray(acq.hu)[..., k])
        np.testing.assert_allclose(img.affine, np.asarray(phantom.grid.affine))
        sidecar = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
        assert [key for key in CT_SIDECAR_KEYS if key not in sidecar] == []
        assert sidecar["Units"] == "HU" and sidecar["AcquisitionTime_h"] == TIMES_H[k]
        assert sidecar["TubeVoltage_kVp"] == 50.0 and sidecar["NumberOfViews"] == 120
        assert sidecar["ReferenceEnergy_keV"] == pytest.approx(acq.effective_energy_keV, rel=1e-12)
        assert sidecar["ContrastElements"] == ["gold"] and sidecar["WaterPrecorrection"] is True
        # Both bone CT numbers: the measured one (the bilinear break point) and the monoenergetic one.
        assert sidecar["CorticalBoneHU"] == pytest.approx(acq.hu_bone, rel=1e-12)
        assert sidecar["CorticalBoneHUMonoenergetic"] == pytest.approx(acq.hu_bone_monoenergetic, rel=1e-12)
        assert sidecar["CorticalBoneHU"] < sidecar["CorticalBoneHUMonoenergetic"]


def test_raw_counts_and_geometry_reproduce_the_model_inputs(ct_dataset):
    stage, _, acq = ct_dataset
    raw = stage / "sourcedata" / "sub-01" / "ct"
    record = json.loads((raw / "sub-01_ct_geometry.json").read_text())
    g = record["Geometry"]
    geometry = ParallelBeamGeometry(tuple(g["image_shape"]), tuple(g["pixel_size_mm"]), tuple(g["angles_deg"]),
                                    g["n_bins"], g["bin_size_mm"])
    assert geometry == acq.geometry  # the JSON rebuilds the projector's geometry exactly
    assert math.fsum(record["I0PerEnergyBin"]) == pytest.approx(record["IncidentPhotonsPerDetectorBinPerView"], rel=1e-12)
    hu_scale = record["HU"]
    assert hu_scale["WaterAttenuationAtReferenceEnergy_per_mm"] == pytest.approx(acq.mu_water_per_mm, rel=1e-12)
    assert hu_scale["CorticalBoneHU"] == pytest.approx(acq.hu_bone, rel=1e-12)
    assert hu_scale["CorticalBoneHUMonoenergetic"] == pytest.approx(acq.hu_bone_monoenergetic, rel=1e-12)
    assert hu_scale["CorticalBoneCalibrationChord_mm"] == pytest.approx(acq.calibration.calibration_bone_mm)
    table_p = np.asarray(record["WaterPrecorrection"]["PolyenergeticLineIntegral"])
    assert np.all(np.diff(table_p) > 0)  # invertible
    assert (raw / "README").exists()
    assert sorted(p.name for p in raw.iterdir()) == ["README", "sub-01_ct_geometry.json"]  # the rest per session
    for k, label in enumerate(("1h", "2h")):
        # The Files entry is a pattern of paths from the geometry JSON's folder to each session's counts.
        (pattern,) = record["Files"]
        counts_path = (raw / pattern.replace("<t>", label)).resolve()
        session = stage / "sourcedata" / "sub-01" / f"ses-{label}" / "ct"
        assert counts_path == (session / f"sub-01_ses-{label}_counts.nii.gz").resolve()
        counts = np.asarray(nib.load(counts_path).dataobj)
        assert counts.shape == (120, geometry.n_bins, 1)
        np.testing.assert_array_equal(counts, np.asarray(acq.measured_counts)[..., k])
        # Rays that miss the 32 mm image box see the flood: their mean is I0 within 5 standard errors.
        theta = np.radians(np.asarray(geometry.angles_deg))[:, None]
        reach = 16.0 * (np.abs(np.cos(theta)) + np.abs(np.sin(theta))) + 0.5
        outside = np.abs(np.asarray(geometry.bin_centres_mm))[None, :] > reach
        i0 = record["IncidentPhotonsPerDetectorBinPerView"]
        flood = counts[..., 0][outside]
        assert flood.size > 100
        assert abs(flood.mean() - i0) < 5 * math.sqrt(i0 / flood.size)


def test_truth_files_match_documented_patterns_and_the_acquisition(ct_dataset):
    stage, _, acq = ct_dataset
    truth = stage / "derivatives" / "truth"
    files = sorted(p.relative_to(truth).as_posix() for p in truth.rglob("*") if p.is_file())
    assert files  # written
    assert {t.stem for t in CT_TRUTH_PATTERNS} == {t.stem for t in TRUTH_FILES}  # documented as written
    for rel in files:
        assert sum(bool(t.regex().fullmatch(rel)) for t in CT_TRUTH_PATTERNS) == 1, rel
    session = {label: truth / "sub-01" / f"ses-{label}" / "ct" for label in ("1h", "2h")}
    mu = np.asarray(nib.load(session["2h"] / "sub-01_ses-2h_desc-trueMu_map.nii.gz").dataobj)
    np.testing.assert_array_equal(mu, np.asarray(acq.mu_true_per_mm)[..., 1])
    sidecar = json.loads((session["2h"] / "sub-01_ses-2h_desc-trueMu_map.json").read_text())
    assert sidecar["Units"] == "1/mm" and sidecar["PhotonEnergy_keV"] == pytest.approx(acq.effective_energy_keV)
    # One key name for mu_water across the CT files (the HU image sidecar uses the same).
    assert sidecar["WaterAttenuationAtReferenceEnergy_per_mm"] == pytest.approx(acq.mu_water_per_mm, rel=1e-12)
    assert "WaterAttenuation_per_mm" not in sidecar
    gold = np.asarray(nib.load(session["2h"] / "sub-01_ses-2h_desc-gold_conc.nii.gz").dataobj)
    assert gold.max() == pytest.approx(5.0, rel=1e-6)  # mg/mL
    assert json.loads((session["1h"] / "sub-01_ses-1h_desc-gold_conc.json").read_text())["Units"] == "mg/mL"
    assert not any(re.search(r"iodine", f) for f in files)  # no iodine agent, no iodine map
