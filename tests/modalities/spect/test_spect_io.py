"""SPECT on disk: one BIDS session per acquisition with its 3-D images on the SPECT grid and complete
sidecars, raw projections that match the acquisition, truth derivatives on the phantom grid,
bit-identical rewrites, a validator-clean dataset."""

from __future__ import annotations

import itertools
import json

import nibabel as nib
import numpy as np
import pytest

from imagingsim.backend import get_backend
from imagingsim.data.radionuclides import nuclide
from imagingsim.dataset.layout import truth_files
from imagingsim.dataset.write import write_dataset
from imagingsim.delivery import simulate_delivery
from imagingsim.modalities.base import WriteContext, acquisition_context
from imagingsim.modalities.spect import truth as spect_truth
from imagingsim.modalities.spect.acquire import acquire_spect
from imagingsim.modalities.spect.bids import recon_label, write_spect
from imagingsim.phantom import build_phantom
from imagingsim.pipeline import load_scenario

TIMES_H = [1.0, 24.0]
#: The session label of each schedule time (the tracer is injected at t = 0: one acquisition per time).
SESSIONS = ["1h", "24h"]
VARIANTS = ["ac_cdr", "none"]
#: BIDS-PET keys reused in the SPECT sidecars, whose unit (s) the BIDS specification fixes.
BIDS_PET_SECONDS = {"ScanStart", "InjectionStart", "ImageDecayCorrectionTime"}
OVERRIDES = ['modalities.enabled=["spect"]', f"schedule.times_h={TIMES_H}"]


def _base(label: str) -> str:
    """The start of the SPECT file names of session ``ses-<label>``."""
    return f"sub-01_ses-{label}_trc-aunp"


def _write(out, scenario, phantom, delivery, acquisition, backend):
    write_dataset(out, scenario, phantom, delivery, backend,
                  extra_writers=[lambda stage: write_spect(stage, acquisition, WriteContext(scenario, phantom, backend))])
    return out


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    be = get_backend("numpy")
    scenario = load_scenario("mouse_gold_spect_ct", [*OVERRIDES, f"modalities.spect.recon={json.dumps(VARIANTS)}"])
    phantom = build_phantom(scenario.phantom, be, 1)
    delivery = simulate_delivery(phantom, list(scenario.agents), scenario.schedule.times_h, be)
    acq = acquire_spect(acquisition_context("spect", phantom, delivery, scenario, be, 1))
    root = tmp_path_factory.mktemp("spect")
    out = _write(root / "ds", scenario, phantom, delivery, acq, be)
    return {"out": out, "root": root, "scenario": scenario, "phantom": phantom, "delivery": delivery, "acq": acq,
            "backend": be}


def _sidecar(path):
    return json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())


def _files(out):
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def test_recon_labels_are_bids_values():
    assert [recon_label(v) for v in ("ac_cdr", "ac", "cdr", "none")] == ["acCdr", "ac", "cdr", "none"]


def test_expected_files(study):
    out, acq = study["out"], study["acq"]
    labels = [p.label for p in acq.photopeaks]
    assert labels == ["171keV", "245keV"]  # 111In
    spect = {p for p in _files(out) if "/spect/" in p}
    expected = {"sourcedata/sub-01/spect/README"}  # the same for every session: at subject level
    for session in SESSIONS:
        base = _base(session)
        images = f"sub-01/ses-{session}/spect"
        expected |= {f"{images}/{base}_rec-{recon_label(v)}_spect{ext}" for v in VARIANTS for ext in (".nii.gz", ".json")}
        raw = f"sourcedata/sub-01/ses-{session}/spect"
        expected |= {f"{raw}/{base}_{name}.nii.gz"
                     for name in ("projections", "background", "expectedprimary", "expectedscatter")}
        expected |= {f"{raw}/{base}_mu{label}.nii.gz" for label in labels}
        expected.add(f"{raw}/{base}_geometry.json")
        truth = f"derivatives/truth/sub-01/ses-{session}/spect"
        expected |= {f"{truth}/{base}_desc-expected_activity{ext}" for ext in (".nii.gz", ".json")}
        expected |= {f"{truth}/sub-01_ses-{session}_desc-mu{label}_map{ext}" for label in labels
                     for ext in (".nii.gz", ".json")}
    assert spect == expected
    assert "**/spect" in (out / ".bidsignore").read_text().splitlines()


def test_images_lie_on_the_spect_grid(study):
    out, acq, phantom = study["out"], study["acq"], study["phantom"]
    for k, session in enumerate(SESSIONS):
        for variant in VARIANTS:
            path = out / "sub-01" / f"ses-{session}" / "spect" / f"{_base(session)}_rec-{recon_label(variant)}_spect.nii.gz"
            img = nib.load(path)
            assert img.shape == acq.grid.shape  # one acquisition per session: no time axis
            np.testing.assert_array_equal(img.affine, np.array(acq.grid.affine))
            assert img.header.get_zooms() == (1.0, 1.0, 1.0)  # 0.5 mm mouse phantom, voxel_binning 2
            assert not np.allclose(img.affine, np.array(phantom.grid.affine))
            assert img.header.get_xyzt_units() == ("mm", "sec")
            np.testing.assert_array_equal(img.get_fdata(dtype=np.float32),
                                          np.asarray(acq.images_bq_per_ml[variant])[..., k])


def test_sidecars_match_the_acquisition(study):
    out, acq = study["out"], study["acq"]
    params = acq.params
    for (k, session), variant in itertools.product(enumerate(SESSIONS), VARIANTS):
        path = out / "sub-01" / f"ses-{session}" / "spect" / f"{_base(session)}_rec-{recon_label(variant)}_spect.nii.gz"
        side = _sidecar(path)
        assert side["Units"] == "Bq/mL"
        assert side["TracerRadionuclide"] == nuclide("In111").bids_name == "111In"
        assert side["TracerName"].startswith("111In-aunp")
        assert side["InjectedRadioactivity"] == pytest.approx(acq.injected_activity_bq / 1e6, rel=1e-12)
        assert side["InjectedRadioactivityUnits"] == "MBq"
        assert side["NumberOfViews"] == params.n_views == 64
        assert side["NumberOfDetectorHeads"] == params.n_heads
        assert side["ViewDuration_s"] == params.view_duration_s
        assert side["AcquisitionDuration_s"] == params.acquisition_time_s
        assert side["OrbitRadius_mm"] == acq.geometry.orbit_radius_mm
        assert side["VoxelBinning"] == 2 and side["VoxelSize_mm"] == [1.0, 1.0, 1.0]
        assert side["PixelSize_mm"] == [acq.geometry.pixel_size_mm, acq.grid.voxel_size_mm[2]]
        collimator = side["Collimator"]
        assert collimator["Name"] == params.collimator.name == "UHR_preclinical"
        assert collimator["HoleDiameter_mm"] == params.collimator.hole_diameter_mm
        assert collimator["Efficiency"] == params.collimator.efficiency
        assert side["IntrinsicResolutionFWHM_mm"] == params.intrinsic_fwhm_mm
        assert side["EnergyResolutionAt140keV_percent"] == params.energy_resolution_percent
        for record, peak in zip(side["Photopeaks"], acq.photopeaks, strict=True):
            assert record["Label"] == peak.label and record["Energy_keV"] == peak.energy_keV
            assert record["EnergyWindow_keV"] == list(peak.window_keV)
            assert record["WindowFraction"] == peak.window_fraction
            assert record["CollimatorResponse"]["slope"] == peak.response.slope
        # TimeZero = the tracer's injection (at the scenario's t = 0 here); the per-acquisition keys
        # hold the session's one acquisition.
        assert side["TimeZero"] == "00:00:00" and side["InjectionStart"] == 0.0
        assert side["FrameTimesStart"] == [TIMES_H[k] * 3600.0]
        assert side["ScanStart"] == TIMES_H[k] * 3600.0
        assert side["FrameDuration"] == [acq.frame_duration_s[k]]
        assert side["ScheduleIndices"] == [acq.schedule_indices[k]] == [k]
        assert side["ImageDecayCorrected"] is True and side["ImageDecayCorrectionTime"] == 0.0
        assert side["DecayCorrectionFactor"] == [acq.decay_correction_factors[k]]
        assert side["DecayCorrectionFactor"][0] > 1.0
        assert side["ScatterEstimate"] == "fraction" and side["ScatterFraction"] == params.scatter_fraction
        assert side["AttenuationMapSource"] == acq.attenuation_source == "truth"
        assert side["ReconVariant"] == variant
        assert side["ReconMethodName"] == acq.recon_parameters[variant]["method_name"]
        assert side["ReconMethodParameterValues"] == [params.iterations, params.subsets]
        assert len(side["ReconMethodParameterLabels"]) == len(side["ReconMethodParameterUnits"]) == 2
        if variant == "none":
            assert side["AttenuationCorrection"] == "none" and side["ReconModelsCollimatorResponse"] is False
        else:
            assert "truth" in side["AttenuationCorrection"] and side["ReconModelsAttenuation"] is True
        # Numbers carry their unit in the key name, or a *Units / *Description field says what they are
        # (BIDS-PET's time keys are defined in seconds).
        for key, value in side.items():
            if isinstance(value, float) and "_" not in key and key not in BIDS_PET_SECONDS:
                assert any(other.startswith(key) and other != key for other in side), key


def test_raw_projections_and_geometry(study):
    out, acq, be = study["out"], study["acq"], study["backend"]
    counts = np.asarray(be.to_host(acq.projections))
    for k, session in enumerate(SESSIONS):
        raw, base = out / "sourcedata" / "sub-01" / f"ses-{session}" / "spect", _base(session)
        projections = nib.load(raw / f"{base}_projections.nii.gz").get_fdata()
        assert projections.shape == (64, acq.geometry.n_bins, acq.grid.shape[2])
        assert np.all(projections == np.round(projections)) and projections.min() >= 0
        np.testing.assert_array_equal(projections, counts[..., k])
        for name, array in (("background", acq.scatter_estimate), ("expectedprimary", acq.expected_primary),
                            ("expectedscatter", acq.expected_scatter)):
            data = nib.load(raw / f"{base}_{name}.nii.gz").get_fdata(dtype=np.float32)
            np.testing.assert_array_equal(data, np.asarray(be.to_host(array))[..., k])
        for peak in acq.photopeaks:
            img = nib.load(raw / f"{base}_mu{peak.label}.nii.gz")
            assert img.shape == acq.grid.shape
            np.testing.assert_array_equal(img.affine, np.array(acq.grid.affine))
            np.testing.assert_array_equal(img.get_fdata(dtype=np.float32),
                                          np.asarray(acq.mu_recon_per_mm[peak.label])[..., k])
        geometry = json.loads((raw / f"{base}_geometry.json").read_text())
        assert geometry["Geometry"] == acq.geometry.to_dict()
        assert geometry["CountsPerUnitProjection"] == [list(acq.counts_per_unit_projection[k])]
        assert [p["Label"] for p in geometry["Photopeaks"]] == ["171keV", "245keV"]
        assert geometry["MeasuredTotalCounts"] == [acq.total_counts["measured"][k]]
        assert geometry["AcquisitionStart_s"] == [TIMES_H[k] * 3600.0] and geometry["ScheduleIndices"] == [k]
        assert geometry["RotationAxis_mm"] == pytest.approx([0.0, 0.0], abs=1e-9)  # mouse grid centred on 0
        assert "u = orbit_radius_mm" in geometry["Conventions"]
        assert "k]" not in geometry["SystemModel"]  # no frame axis left to index
        assert sorted(geometry["Files"]) == sorted(p.name for p in raw.glob("*.nii.gz"))
        # The expected counts of the acquisition are Poisson-consistent with the measured total.
        total = geometry["ExpectedTotalCounts"]["primary"][0] + geometry["ExpectedTotalCounts"]["scatter"][0]
        assert abs(projections.sum() - total) < 5 * np.sqrt(total)


def test_truth_round_trips(study):
    out, acq, phantom, be = study["out"], study["acq"], study["phantom"], study["backend"]
    expected = np.asarray(be.to_host(acq.expected_image_bq_per_ml))
    for k, session in enumerate(SESSIONS):
        truth, base = out / "derivatives" / "truth" / "sub-01" / f"ses-{session}" / "spect", _base(session)
        img = nib.load(truth / f"{base}_desc-expected_activity.nii.gz")
        assert img.shape == phantom.grid.shape
        np.testing.assert_array_equal(img.affine, np.array(phantom.grid.affine))
        np.testing.assert_array_equal(img.get_fdata(dtype=np.float32), expected[..., k])
        meta = _sidecar(truth / f"{base}_desc-expected_activity.nii.gz")
        assert meta["Units"] == "Bq/mL" and meta["ImageDecayCorrected"] is True
        assert meta["AcquisitionStartAfterInjection_s"] == [TIMES_H[k] * 3600.0]
        assert not {"TimeZero", "FrameDuration", "FrameTimesStart"} & set(meta)  # no PET keys in the derivative
        for source in meta["Source"]:  # the session's images, as paths from the raw dataset's root
            assert (out / source).is_file(), source
        for peak in acq.photopeaks:
            path = truth / f"sub-01_ses-{session}_desc-mu{peak.label}_map.nii.gz"
            mu = nib.load(path)
            np.testing.assert_array_equal(mu.affine, np.array(phantom.grid.affine))
            np.testing.assert_array_equal(mu.get_fdata(dtype=np.float32),
                                          np.asarray(acq.mu_true_per_mm[peak.label])[..., k])
            assert _sidecar(path)["Units"] == "1/mm" and _sidecar(path)["PhotonEnergy_keV"] == peak.energy_keV


def test_truth_files_match_documented_patterns(study):
    truth = study["out"] / "derivatives" / "truth"
    spect_stems = {t.stem for t in spect_truth.TRUTH_FILES}
    paths = sorted(truth.glob("sub-01/ses-*/spect/*"))
    assert len(paths) == 2 * 3 * len(SESSIONS)  # expected activity and two mu maps, each with a sidecar
    assert not (truth / "sub-01" / "spect").exists()  # every SPECT truth file belongs to one session
    for path in paths:
        rel = path.relative_to(truth).as_posix()
        matches = [t.stem for t in truth_files() if t.regex().fullmatch(rel)]
        assert len(matches) == 1 and matches[0] in spect_stems, rel


def test_same_inputs_give_identical_files(study):
    s = study
    again = _write(s["root"] / "again", s["scenario"], s["phantom"], s["delivery"], s["acq"], s["backend"])
    files = _files(s["out"])
    assert files == _files(again)
    for rel in files:
        assert (s["out"] / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_tew_side_windows_are_written(study, tmp_path):
    s, be = study, study["backend"]
    scenario = load_scenario("mouse_gold_spect_ct", [*OVERRIDES, 'modalities.spect.recon=["none"]',
                                                     'modalities.spect.scatter="tew"', "modalities.spect.n_views=32",
                                                     "modalities.spect.subsets=4"])
    acq = acquire_spect(acquisition_context("spect", s["phantom"], s["delivery"], scenario, be, 1))
    out = _write(tmp_path / "ds", scenario, s["phantom"], s["delivery"], acq, be)
    session, base = SESSIONS[-1], _base(SESSIONS[-1])
    raw = out / "sourcedata" / "sub-01" / f"ses-{session}" / "spect"
    for side in ("lower", "upper"):
        data = nib.load(raw / f"{base}_tew{side}.nii.gz").get_fdata(dtype=np.float32)
        np.testing.assert_array_equal(data, np.asarray(be.to_host(acq.side_window_counts[side]))[..., -1])
    meta = _sidecar(out / "sub-01" / f"ses-{session}" / "spect" / f"{base}_rec-none_spect.nii.gz")
    assert meta["ScatterEstimate"] == "tew" and meta["NumberOfViews"] == 32
    assert meta["TEWSideWindow_percent"] == acq.params.tew_side_window_percent
    peak = acq.photopeaks[0]
    side_keV = peak.energy_keV * acq.params.tew_side_window_percent / 100.0
    assert meta["Photopeaks"][0]["TEWLowerWindow_keV"] == [peak.window_keV[0] - side_keV, peak.window_keV[0]]
    geometry = json.loads((raw / f"{base}_geometry.json").read_text())
    assert f"{base}_tewlower.nii.gz" in geometry["Files"] and geometry["ScatterEstimate"] == "tew"


@pytest.mark.validator
def test_spect_dataset_passes_bids_validator(study, bids_validator):
    report = bids_validator(study["out"])
    assert report["errors"] == []
