"""NIRF on disk: one planar image per schedule time with complete sidecars, the set-up's
depth-sensitivity table, truth derivatives matching their documented patterns, and a
validator-clean dataset."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from imagingsim.dataset.layout import truth_files
from imagingsim.modalities.nirf.result import DEPTH_COLUMNS
from imagingsim.modalities.nirf.truth import TRUTH_FILES as NIRF_TRUTH_FILES
from imagingsim.pipeline import load_scenario, simulate, write_subject

LABELS = ["0p5h", "1h", "4h", "24h"]  # mouse_targeted_spion schedule: 0.5, 1, 4, 24 h


@pytest.fixture(scope="module")
def nirf_dataset(tmp_path_factory):
    scenario = load_scenario(
        "mouse_targeted_spion", ['modalities.nirf.view="dorsal"', "phantom.voxel_size_mm=1.0", 'modalities.enabled=["nirf"]']
    )
    subject = simulate(scenario, backend="numpy")
    out = tmp_path_factory.mktemp("nirf") / "ds"
    write_subject(subject, out)
    return out, subject


def _sidecar(path):
    return json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())


def test_images_and_sidecars(nirf_dataset):
    out, subject = nirf_dataset
    grid = subject.phantom.grid
    acq = subject.acquisitions["nirf"]
    for k, label in enumerate(LABELS):
        path = out / "sub-01" / f"ses-{label}" / "nirf" / f"sub-01_ses-{label}_nirf.nii.gz"
        img = nib.load(path)
        # Dorsal view: an x-z image one voxel thick along y, at the dorsal body surface.
        assert img.shape == (grid.shape[0], 1, grid.shape[2])
        assert img.header.get_xyzt_units() == ("mm", "sec")
        affine = img.affine
        np.testing.assert_allclose(np.diag(affine)[:3], grid.voxel_size_mm)
        np.testing.assert_allclose(affine[[0, 2], 3], np.array(grid.origin_mm)[[0, 2]])
        assert affine[1, 3] == pytest.approx(acq.image_grid.origin_mm[1])
        labels = np.asarray(subject.phantom.labels)
        first_tissue = np.argmax((labels != 0).any(axis=(0, 2)))
        assert affine[1, 3] == pytest.approx(grid.origin_mm[1] + first_tissue * grid.voxel_size_mm[1])
        np.testing.assert_allclose(img.get_fdata()[:, 0, :], np.asarray(acq.images_e)[..., k], rtol=1e-6)
        side = _sidecar(path)
        assert side["Units"] == "photoelectrons" and side["View"] == "dorsal" and side["Window"] == "NIR-I"
        assert side["AcquisitionTime_h"] == subject.delivery.times_h[k]
        assert side["AcquisitionTime_s"] == 3600.0 * subject.delivery.times_h[k]
        assert side["ExposureTime_s"] == 0.1 and side["ExcitationIrradiance_mW_per_cm2"] == 10.0
        assert side["ExcitationWavelength_nm"] == 785.0 and side["EmissionBand_nm"] == [810.0, 870.0]
        assert side["Dye"] == "ICG" and side["ImagedAgents"] == ["spion"] and side["ImageAxes"] == ["x", "z"]
        camera = side["Camera"]
        assert camera["Preset"] == "silicon_ccd" and camera["ReadNoisePerSensorPixel_e"] == 5.0
        # 1 mm voxels on 13 um pixels at M0 = 1/6: 12.8 -> 13 x 13 binned sensor pixels.
        assert camera["Binning"] == [13, 13] and camera["BinnedSensorPixels"] == 169
        assert camera["ReadNoise_e"] == pytest.approx(13 * 5.0)
        assert camera["SaturationLevel_e"] == side["SaturationLevel_e"] == pytest.approx(169 * camera["FullWellPerSensorPixel_e"])
        assert camera["ImageWithinFieldOfView"] is True
        # Nothing saturates with the defaults, and the sidecar says so.
        assert side["SaturatedPixels"] == acq.saturated_pixels[k] == 0
        assert side["PeakExpected_e"] < side["SaturationLevel_e"]
        # The NIR-I PSF is pure diffusion theory; the optical model says the NIR-II part is hand-tuned.
        assert side["PSFModel"]["f0_WeaklyScatteredFraction"] == 0.0
        assert "hand-tuned, uncalibrated" in side["OpticalModel"]
        assert set(side["ReferenceTissueOptics"]) >= {"excitation_mu_eff_per_mm", "emission_mu_eff_per_mm"}
        # Every numeric parameter carries its unit in its name (or a Units field says it).
        for key, value in side.items():
            if isinstance(value, float) and key not in ("DyeQuantumYield", "DyeInBandFraction", "AutofluorescenceScale"):
                assert "_" in key, key


def test_depth_sensitivity_table(nirf_dataset):
    out, _ = nirf_dataset
    base = out / "sub-01" / "nirf" / "sub-01_depthsensitivity"
    with open(f"{base}.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert list(rows[0]) == list(DEPTH_COLUMNS)
    meta = json.loads(base.with_suffix(".json").read_text())
    for column, units in DEPTH_COLUMNS.items():
        assert meta[column]["Units"] == units and meta[column]["Description"]
    depth = np.array([float(r["depth_mm"]) for r in rows])
    fwhm = np.array([float(r["psf_fwhm_mm"]) for r in rows])
    escape = np.array([float(r["escape_fraction"]) for r in rows])
    limit = np.array([float(r["detection_limit_fmol"]) for r in rows])
    assert np.all(np.diff(fwhm) > 0) and np.all(np.diff(escape) < 0) and np.all(np.diff(limit[3:]) > 0)
    # Deep in muscle the escaping light falls as exp(-mu_eff d) (1 % tolerance, the log slope
    # is exact for the closed form).
    deep = depth >= 3.0
    slope = np.polyfit(depth[deep], np.log(escape[deep]), 1)[0]
    assert slope == pytest.approx(-meta["ReferenceTissueOptics"]["emission_mu_eff_per_mm"], rel=0.01)


def test_truth_files(nirf_dataset):
    out, subject = nirf_dataset
    acq = subject.acquisitions["nirf"]
    truth = out / "derivatives" / "truth"
    folder = truth / "sub-01" / "nirf"
    written = sorted(p.relative_to(truth).as_posix() for p in (truth / "sub-01").glob("**/nirf/*"))
    assert len(written) == 2 * (2 * len(LABELS) + 1)  # per session noise-free image and dye map; background
    for rel in written:
        matches = [t.stem for t in truth_files() if t.regex().fullmatch(rel)]
        assert len(matches) == 1 and matches[0] in {t.stem for t in NIRF_TRUTH_FILES}, rel
    # Noise-free image = E[measured]; the measured one is within its Poisson + read noise.
    session = truth / "sub-01" / "ses-24h"
    measured = nib.load(out / "sub-01" / "ses-24h" / "nirf" / "sub-01_ses-24h_nirf.nii.gz").get_fdata()
    clean = nib.load(session / "nirf" / "sub-01_ses-24h_desc-noisefree_nirf.nii.gz").get_fdata()
    background = nib.load(folder / "sub-01_desc-background_nirf.nii.gz").get_fdata()
    sd = np.sqrt(clean + acq.setup.read_noise_e**2)
    assert np.all(np.abs(measured - clean) < 6 * sd)  # 6 sigma over ~2000 pixels
    assert np.all(clean >= background * (1 - 1e-6))  # dye only adds light
    # Dye concentration = carrier x dye_nmol_per_mg / 1000 (ICG, 5 nmol/mg).
    for time_h, label in zip(subject.delivery.times_h, LABELS):
        session = truth / "sub-01" / f"ses-{label}"
        dye = nib.load(session / "nirf" / f"sub-01_ses-{label}_desc-spionDye_conc.nii.gz")
        carrier = nib.load(session / "delivery" / f"sub-01_ses-{label}_desc-spionCarrier_conc.nii.gz").get_fdata()
        assert dye.shape == carrier.shape == subject.phantom.grid.shape
        np.testing.assert_allclose(dye.get_fdata(), carrier * 5.0 / 1000.0, rtol=1e-6, atol=1e-9)
        meta = json.loads((session / "nirf" / f"sub-01_ses-{label}_desc-spionDye_conc.json").read_text())
        assert meta["Units"] == "nmol/mL" and meta["SampleTime_h"] == time_h


def test_nir2_sidecar_carries_the_psf_parameters(tmp_path):
    scenario = load_scenario(
        "mouse_targeted_spion",
        ['modalities.nirf.view="dorsal"', 'modalities.nirf.window="NIR-II"', "phantom.voxel_size_mm=1.0",
         'modalities.enabled=["nirf"]', "schedule.times_h=[24.0]"],
    )
    subject = simulate(scenario, backend="numpy")
    write_subject(subject, tmp_path / "ds")
    side = json.loads((tmp_path / "ds" / "sub-01" / "ses-24h" / "nirf" / "sub-01_ses-24h_nirf.json").read_text())
    psf = side["PSFModel"]
    assert "uncalibrated" in psf["Status"]
    assert (psf["f0_WeaklyScatteredFraction"], psf["k_DecayLength_transport_mean_free_paths"],
            psf["c_ConeFWHMPerDepth_mm_per_mm"]) == (0.15, 1.0, 1.0)  # data/optics.toml [psf.NIR-II]
    assert side["Camera"]["Preset"] == "ingaas" and side["Camera"]["Binning"] == [8, 8]


@pytest.mark.validator
def test_nirf_dataset_passes_bids_validator(nirf_dataset, bids_validator):
    out, _ = nirf_dataset
    report = bids_validator(out)
    assert report["errors"] == []
