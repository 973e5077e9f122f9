"""Photoacoustic on disk and through the pipeline: images with sidecars in units, raw signals
with the geometry, truth matching its patterns and p0 = Gamma mu_a Phi, bad input refused in
one line, the gold-nanorod scenario, bit-identical reruns and a validator-clean dataset."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from imagingsim.dataset.layout import truth_files
from imagingsim.modalities.base import acquisition_context
from imagingsim.modalities.photoacoustic import spectra
from imagingsim.modalities.photoacoustic.acquire import plan_photoacoustic, reconstruct, reference_optics
from imagingsim.modalities.photoacoustic.geometry import geometry_from_sidecar
from imagingsim.modalities.photoacoustic.result import DEPTH_COLUMNS
from imagingsim.modalities.photoacoustic.truth import TRUTH_FILES
from imagingsim.pipeline import load_scenario, simulate, write_subject
from imagingsim.scenario import ScenarioError

#: Coarse: 2 mm voxels, two times, 64 elements, 8 CGLS iterations (the layout and the
#: relations between files are checked here; the physics in test_photoacoustic.py).
COARSE = ['modalities.enabled=["photoacoustic"]', "phantom.voxel_size_mm=2.0", "schedule.times_h=[1.0, 24.0]",
          "modalities.photoacoustic.n_elements=64", "modalities.photoacoustic.lsq_iterations=8"]
WAVELENGTHS = [700.0, 730.0, 760.0, 800.0, 850.0, 900.0, 930.0]


@pytest.fixture(scope="module")
def pa_dataset(tmp_path_factory):
    scenario = load_scenario("mouse_targeted_spion", COARSE)
    subject = simulate(scenario, backend="numpy")
    out = tmp_path_factory.mktemp("pa") / "ds"
    write_subject(subject, out)
    return out, subject


def _json(path: Path) -> dict:
    return json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())


def test_images_and_sidecars(pa_dataset):
    out, subject = pa_dataset
    acq = subject.acquisitions["photoacoustic"]
    for label in ("1h", "24h"):
        folder = out / "sub-01" / f"ses-{label}" / "pa"
        for rec in ("fbp", "lsq"):
            path = folder / f"sub-01_ses-{label}_rec-{rec}_pa.nii.gz"
            img = nib.load(path)
            assert img.shape == (*acq.slice_grid.shape, len(WAVELENGTHS))
            side = _json(path)
            assert side["Units"] == "Pa" and side["Wavelengths_nm"] == WAVELENGTHS
            assert side["SpeedOfSound_m_per_s"] == 1540.0 and side["FluencePerPulse_mJ_per_cm2"] == 20.0
            assert np.allclose(img.affine[2, 3], acq.slice_grid.origin_mm[2])
        unmixed = folder / f"sub-01_ses-{label}_rec-lsq_desc-unmixed_pa.nii.gz"
        side = _json(unmixed)
        assert [e["Name"] for e in side["Endmembers"]] == ["HbO2", "Hb", "water", "lipid", "ICG"]
        assert [e["Units"] for e in side["Endmembers"]] == ["mM", "mM", "volume fraction", "volume fraction", "uM"]
        assert nib.load(unmixed).shape[-1] == 5
        for desc in ("sO2", "sO2comp", "unmixedcomp"):
            assert (folder / f"sub-01_ses-{label}_rec-lsq_desc-{desc}_pa.nii.gz").exists()
    with open(out / "sub-01" / "pa" / "sub-01_so2error.tsv") as table:
        rows = list(csv.DictReader(table, delimiter="\t"))
    assert rows and list(rows[0]) == list(DEPTH_COLUMNS)
    assert "**/pa" in (out / ".bidsignore").read_text().splitlines()


def test_raw_signals_and_geometry(pa_dataset):
    out, subject = pa_dataset
    acq = subject.acquisitions["photoacoustic"]
    geometry = json.loads((out / "sourcedata" / "sub-01" / "pa" / "sub-01_geometry.json").read_text())
    assert geometry["NumberOfElements"] == 64 and len(geometry["ElementPositions_mm"]) == 64
    signals = nib.load(out / "sourcedata" / "sub-01" / "ses-24h" / "pa" / "sub-01_ses-24h_pa.nii.gz").get_fdata()
    assert signals.shape == (64, geometry["SamplesPerElement"], 1, len(WAVELENGTHS))
    assert np.array_equal(signals[:, :, 0, :].astype(np.float32), np.asarray(acq.signals)[..., 1])
    side = json.loads((out / "sourcedata" / "sub-01" / "ses-24h" / "pa" / "sub-01_ses-24h_pa.json").read_text())
    assert side["Units"] == "Pa" and side["NoiseSD_Pa"] == pytest.approx(acq.noise_sd_Pa)


def test_reconstruction_reruns_exactly_on_the_stored_signals(pa_dataset):
    """The plan rebuilds the operator; the stored float32 signals give the written images bit for bit."""
    out, subject = pa_dataset
    acq = subject.acquisitions["photoacoustic"]
    ctx = acquisition_context("photoacoustic", subject.phantom, subject.delivery, subject.scenario, subject.backend,
                              subject.seed)
    plan = plan_photoacoustic(ctx)
    stored = nib.load(out / "sourcedata" / "sub-01" / "ses-24h" / "pa" / "sub-01_ses-24h_pa.nii.gz").get_fdata()
    images = reconstruct(plan, np.asarray(stored[:, :, 0, :], dtype=np.float32).astype(np.float64))
    for method, image in images.items():
        assert np.array_equal(np.asarray(image).astype(np.float32), np.asarray(acq.images[method])[..., 1]), method


def test_truth_matches_its_patterns_and_p0_is_gamma_mu_a_fluence(pa_dataset):
    """Every truth file matches exactly one documented pattern; the written p0 equals
    Gamma x sum_j E_j c_j x fluence x 1e4 recomputed from the written concentration and
    fluence truth and the tabulated spectra."""
    out, _ = pa_dataset
    truth = out / "derivatives" / "truth"
    patterns = truth_files()
    own = {t.stem for t in TRUTH_FILES}
    seen = set()
    for path in truth.rglob("*"):
        rel = path.relative_to(truth).as_posix()
        if path.is_dir() or rel.count("/") == 0:
            continue
        matches = [t.stem for t in patterns if t.regex().fullmatch(rel)]
        assert len(matches) == 1, (rel, matches)
        seen |= own & set(matches)
    assert seen == own
    sub = truth / "sub-01"
    ses = sub / "ses-24h" / "photoacoustic"

    def load(path):
        return nib.load(path).get_fdata()

    conc = {k: load(sub / "photoacoustic" / f"sub-01_desc-{k}_conc.nii.gz") for k in ("HbO2", "Hb", "water", "lipid")}
    conc["ICG"] = load(ses / "sub-01_ses-24h_desc-ICG_conc.nii.gz")
    members = (*spectra.haemoglobin(WAVELENGTHS), *spectra.water_lipid(WAVELENGTHS), spectra.dye("ICG", WAVELENGTHS))
    mu_a = sum(conc[m.key][..., None] * np.array(m.per_mm) for m in members)
    fluence = load(ses / "sub-01_ses-24h_desc-fluence_pa.nii.gz")
    p0 = load(ses / "sub-01_ses-24h_desc-p0_pa.nii.gz")
    assert np.allclose(p0, 0.2 * 1e4 * mu_a * fluence, rtol=1e-5, atol=1e-6 * p0.max())
    assert p0.max() > 0 and _json(ses / "sub-01_ses-24h_desc-p0_pa.nii.gz")["Units"] == "Pa"
    so2 = load(sub / "photoacoustic" / "sub-01_desc-sO2_pa.nii.gz")
    inside = ~np.isnan(so2)
    total = conc["HbO2"] + conc["Hb"]
    assert np.allclose(so2[inside], conc["HbO2"][inside] / total[inside], atol=1e-6)
    assert 0.0 <= so2[inside].min() and so2[inside].max() <= 1.0


def test_noiseless_broadband_pipeline_recovers_p0_so2_and_agent():
    """Through the whole pipeline, at SNR 200 dB with ideal detectors and compensation by the
    true fluence: the CGLS image is p0 within 1 % (rms over the slice; measured 4e-4 at 0.5 mm),
    better than the back-projection, and the tumour's sO2 and ICG are recovered (sO2 within
    0.01, ICG within 2 %); uncompensated, the colouring of the light leaves both far off."""
    scenario = load_scenario("mouse_targeted_spion", [*COARSE, "modalities.photoacoustic.snr_db=200",
                                                      "modalities.photoacoustic.bandwidth_percent=0",
                                                      "modalities.photoacoustic.n_elements=128",
                                                      "modalities.photoacoustic.lsq_iterations=20",
                                                      'modalities.photoacoustic.fluence_compensation="true"',
                                                      "schedule.times_h=[24.0]"])
    acq = simulate(scenario, backend="numpy").acquisitions["photoacoustic"]
    p0, lsq, fbp = (np.asarray(a, dtype=np.float64) for a in (acq.p0, acq.images["lsq"], acq.images["fbp"]))
    rel = np.sqrt(np.mean((lsq - p0) ** 2) / np.mean(p0**2))
    assert rel < 0.01
    assert rel < np.sqrt(np.mean((fbp - p0) ** 2) / np.mean(p0**2))
    (row,) = acq.tumour_summary
    assert row["pixels"] > 0
    assert row["so2_compensated"] == pytest.approx(row["so2_true"], abs=0.01)
    assert row["ICG_compensated"] == pytest.approx(row["ICG_true"], rel=0.02)
    assert abs(row["so2_estimate"] - row["so2_true"]) > 0.05  # the teaching point: colour without compensation


def test_reruns_are_bit_identical():
    scenario = load_scenario("mouse_targeted_spion", [*COARSE, "schedule.times_h=[24.0]"])
    first, second = (simulate(scenario, backend="numpy").acquisitions["photoacoustic"] for _ in range(2))
    assert np.asarray(first.signals).tobytes() == np.asarray(second.signals).tobytes()
    assert np.asarray(first.images["lsq"]).tobytes() == np.asarray(second.images["lsq"]).tobytes()


@pytest.mark.parametrize("override, field", [
    ("modalities.photoacoustic.wavelengths_nm=[700, 800, 900]", "modalities.photoacoustic.wavelengths_nm"),
    ("modalities.photoacoustic.wavelengths_nm=[700, 1200]", "modalities.photoacoustic.wavelengths_nm"),
    ("modalities.photoacoustic.snr_db=1000", "modalities.photoacoustic.snr_db"),
    ('modalities.photoacoustic.unmix_from="fbp"', "modalities.photoacoustic"),
    ("modalities.photoacoustic.sampling_rate_MHz=5", "modalities.photoacoustic"),
    ("modalities.photoacoustic.slice_z_mm=1000", "modalities.photoacoustic.slice_z_mm"),
])
def test_bad_settings_are_refused_in_one_line(override, field):
    overrides = [*COARSE, 'modalities.photoacoustic.recon=["lsq"]'] if "unmix_from" in override else COARSE
    with pytest.raises(ScenarioError) as info:
        load_scenario("mouse_targeted_spion", [*overrides, override])
    message = str(info.value)
    assert field in message and "\n" not in message


def test_gold_nanorods_in_the_gold_scenario():
    """mouse_gold_spect_ct with photoacoustic and nanorods: gold is an endmember, its truth is
    written, and with spheres (the scenario's 15 nm particles) it absorbs far less in the NIR."""
    base = ["phantom.voxel_size_mm=2.0", "schedule.times_h=[24.0]", 'modalities.enabled=["photoacoustic"]',
            "modalities.photoacoustic.n_elements=64", "modalities.photoacoustic.lsq_iterations=4"]
    peaks = {}
    for form in ("nanorod", "nanosphere"):
        scenario = load_scenario("mouse_gold_spect_ct", [*base, f'modalities.photoacoustic.gold_form="{form}"'])
        acq = simulate(scenario, backend="numpy").acquisitions["photoacoustic"]
        assert [e.key for e in acq.endmembers][-1] == "gold"
        assert np.asarray(acq.agent_truth["gold"]).max() > 0
        peaks[form] = max(acq.endmembers[-1].per_mm)
    assert peaks["nanosphere"] < 0.1 * peaks["nanorod"]


def _deno() -> str:
    found = shutil.which("bids-validator-deno") or shutil.which("bids-validator-deno", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("bids-validator-deno is not installed: pip install -e '.[test]'")
    return found


def test_the_current_validator_reports_no_errors(pa_dataset):
    """The raw dataset and the truth derivative (validated on its own, as tests/dataset does)."""
    out, _ = pa_dataset
    for folder in (out, out / "derivatives" / "truth"):
        proc = subprocess.run([_deno(), str(folder), "--format", "json"], capture_output=True, text=True,
                              timeout=600, check=False)
        issues = json.loads(proc.stdout)["issues"]["issues"]
        errors = [(i["code"], i.get("location")) for i in issues if i["severity"] == "error"]
        assert errors == [], (folder.name, errors[:10])


def test_measured_optics_recovers_a_known_tissue():
    """The fit behind the report's depth curve, on a fluence made by the forward model of a
    homogeneous body with known optics (ring: four beams): mu_eff recovered to 1 %, and a
    tissue with twice the absorption is told apart."""
    from imagingsim.backend import get_backend
    from imagingsim.modalities.photoacoustic.optics import RING_BEAMS, diffusion, fluence_homogeneous
    from imagingsim.modalities.photoacoustic.report import measured_optics

    be = get_backend("numpy")
    yy, xx = np.mgrid[:21, :21]
    body = (xx - 10) ** 2 / 81 + (yy - 10) ** 2 / 49 <= 1.0
    for mu_a in ((0.02, 0.01), (0.04, 0.02)):
        mu_s = (1.0, 0.8)
        written = np.asarray(fluence_homogeneous(body, mu_a, mu_s, 1.0, 20.0, RING_BEAMS, be))
        fit_a, fit_s, depths, values = measured_optics(written, body, 1.0, 20.0, RING_BEAMS)
        assert values.shape[0] == body.sum() and depths.shape == (4, body.sum())
        truth = [diffusion(a, s).mu_eff for a, s in zip(mu_a, mu_s)]
        np.testing.assert_allclose([diffusion(a, s).mu_eff for a, s in zip(fit_a, fit_s)], truth, rtol=0.01)
    # too few qualifying voxels: not measurable (NaN), never an exception
    assert np.isnan(measured_optics(written, np.zeros_like(body), 1.0, 20.0, RING_BEAMS)[0]).all()


def test_the_geometry_file_rebuilds_the_geometry(pa_dataset):
    out, subject = pa_dataset
    side = json.loads((out / "sourcedata" / "sub-01" / "pa" / "sub-01_geometry.json").read_text())
    assert geometry_from_sidecar(side) == subject.acquisitions["photoacoustic"].geometry


def test_report_section_is_measured_from_the_dataset(pa_dataset):
    """The teaching report builds a photoacoustic section with no change to the report code: the
    soft tissue's mu_eff measured from the written true fluence (the diffusion model fitted to
    the voxels whose light paths cross soft tissue only) is the tables' within 5 % at the depth
    curve's wavelength (800 nm) and within 10 % at every other (the agent's absorption and the
    tissue's texture, which vary with the wavelength, are the difference); the point
    response is about a pixel wide, the figure is a PNG, two rows per session."""
    from imagingsim.modalities.photoacoustic.optics import diffusion
    from imagingsim.report.build import build_report
    from imagingsim.report.dataset import DatasetView

    out, _ = pa_dataset
    section = build_report(DatasetView(out)).sections["photoacoustic"]
    m = section.measurements
    measured, table = np.asarray(m["measured_mu_eff_per_mm"]), np.asarray(m["table_mu_eff_per_mm"])
    assert m["fitted_voxels"] >= 5
    k800 = WAVELENGTHS.index(800.0)
    assert measured[k800] == pytest.approx(table[k800], rel=0.05)
    np.testing.assert_allclose(measured, table, rtol=0.10)
    # the tables' values, independently: typical soft tissue of reference_optics through diffusion theory
    mu_a, mu_s = reference_optics(WAVELENGTHS)
    np.testing.assert_allclose(table, [diffusion(a, s).mu_eff for a, s in zip(mu_a, mu_s)], rtol=1e-12)
    # the check can fail: across the band mu_eff changes by more than the tolerance, and the measurement follows it
    assert table.max() / table.min() > 1.2 and np.corrcoef(measured, table)[0, 1] > 0.9
    # one beam with the measured optics falls as exp(-mu_eff d) beyond the first transport lengths
    assert m["fluence_slope_per_mm"] == pytest.approx(measured[k800], rel=0.01)
    assert 10.0 < m["depth_limit_1pct_mm"] < 40.0
    assert 0.5 * 2.0 <= m["point_fwhm_mm"] < 3 * 2.0  # 2 mm pixels: the grid sets it
    assert len(section.slices) == 4 and section.figures[0].png.startswith(b"\x89PNG\r\n\x1a\n")
    assert set(section.summary) <= {"resolution", "sensitivity", "depth", "time_window", "accuracy"}
