"""PET on disk: BIDS-PET images with every required sidecar field, raw sinograms that
reproduce the system model, truth derivatives, and a validator-clean dataset."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from imagingsim.pipeline import load_scenario, simulate, write_subject
from imagingsim.projectors import ParallelBeamGeometry, ParallelProjector

#: BIDS 1.9 PET sidecar fields that are REQUIRED (and conditionally required ones we trigger).
BIDS_PET_REQUIRED = (
    "Manufacturer", "ManufacturersModelName", "Units", "TracerName", "TracerRadionuclide",
    "InjectedRadioactivity", "InjectedRadioactivityUnits", "InjectedMass", "InjectedMassUnits",
    "SpecificRadioactivity", "SpecificRadioactivityUnits", "ModeOfAdministration", "TimeZero",
    "ScanStart", "InjectionStart", "FrameTimesStart", "FrameDuration", "AcquisitionMode",
    "ImageDecayCorrected", "ImageDecayCorrectionTime", "ReconMethodName",
    "ReconMethodParameterLabels", "ReconFilterType", "AttenuationCorrection",
)  # fmt: skip

TIMES_H = [1.0, 24.0, 168.0]
LABELS = ["1h", "24h", "168h"]  # one session per schedule time


@pytest.fixture(scope="module")
def pet_dataset(tmp_path_factory):
    scenario = load_scenario(
        None,
        [
            "phantom.voxel_size_mm=1.0",
            f"schedule.times_h={TIMES_H}",
            'modalities.enabled=["pet"]',
            'modalities.pet.recon=["osem", "fbp"]',
        ],
    )
    subject = simulate(scenario, backend="numpy")
    out = tmp_path_factory.mktemp("pet") / "ds"
    write_subject(subject, out)
    return out, subject


def test_pet_images_have_every_required_bids_field(pet_dataset):
    out, subject = pet_dataset
    acq = subject.acquisitions["pet"]
    for method in ("osem", "fbp"):
        for k, (time_h, label) in enumerate(zip(TIMES_H, LABELS)):
            path = out / "sub-01" / f"ses-{label}" / "pet" / f"sub-01_ses-{label}_trc-pegliposome_rec-{method}_pet.nii.gz"
            sidecar = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
            missing = [key for key in BIDS_PET_REQUIRED if key not in sidecar]
            assert missing == [], method
            img = nib.load(path)
            assert img.shape == subject.phantom.grid.shape  # a static scan per session
            assert img.header.get_xyzt_units() == ("mm", "sec")
            np.testing.assert_array_equal(img.get_fdata(), np.asarray(acq.images_bq_per_ml[method])[..., k])
            assert sidecar["Units"] == "Bq/mL" and sidecar["TracerRadionuclide"] == "89Zr"
            assert sidecar["FrameTimesStart"] == [time_h * 3600.0]
            assert sidecar["FrameDuration"] == [acq.frame_duration_s[k]]
            assert sidecar["ImageDecayCorrected"] is True and sidecar["ImageDecayCorrectionTime"] == 0.0
            assert sidecar["InjectionStart"] == 0.0 and sidecar["ScanStart"] == time_h * 3600.0  # TimeZero = injection
            assert sidecar["SUVScaleFactor"] == [acq.suv_scale_g_per_bq[k]]
            assert sidecar["DecayCorrectionFactor"] == [acq.decay_correction_factors[k]]
            assert sidecar["DecayCorrectionFactor"][0] > 1.0  # decay-corrected back to injection
            if sidecar["ReconMethodParameterLabels"] != ["none"]:
                assert len(sidecar["ReconMethodParameterValues"]) == len(sidecar["ReconMethodParameterLabels"])
            # Injected activity = mass x specific activity: 0.5 mg x 15 MBq/mg (scenario values).
            assert sidecar["InjectedRadioactivity"] == pytest.approx(
                sidecar["InjectedMass"] * sidecar["SpecificRadioactivity"], rel=1e-12
            )
            assert sidecar["InjectedRadioactivity"] == pytest.approx(7.5, rel=1e-9)


def test_raw_sinograms_reproduce_the_system_model(pet_dataset):
    # Anyone can rebuild E[prompts] from sourcedata: the mean of the drawn prompts over the
    # whole sinogram must match n_k * a * P(x_true-ish) + background only statistically, so
    # check the documented identity on totals: sum(prompts) ~ Poisson(sum(expected)), within
    # 5 sigma (sqrt of the total), with expected totals from the geometry JSON.
    out, subject = pet_dataset
    raw = out / "sourcedata" / "sub-01"
    attenuation = nib.load(raw / "pet" / "sub-01_trc-pegliposome_attenuation.nii.gz").get_fdata()
    assert 0 < attenuation.min() and attenuation.max() <= 1.0
    for label in LABELS:
        session = raw / f"ses-{label}" / "pet"
        base = f"sub-01_ses-{label}_trc-pegliposome"
        geometry = json.loads((session / f"{base}_geometry.json").read_text())
        assert all((session / name).is_file() for name in geometry["Files"])  # paths from the JSON's folder
        prompts = nib.load(session / f"{base}_prompts.nii.gz").get_fdata()
        background = nib.load(session / f"{base}_background.nii.gz").get_fdata()
        g = geometry["Geometry"]
        assert prompts.shape == attenuation.shape == (len(g["angles_deg"]), g["n_bins"], subject.phantom.grid.shape[2])
        assert np.all(prompts == np.round(prompts)) and prompts.min() >= 0
        (trues,), (scatter,), (randoms,) = (geometry["ExpectedTotalCounts"][key] for key in ("trues", "scatter", "randoms"))
        total = trues + scatter + randoms
        assert abs(prompts.sum() - total) < 5 * np.sqrt(total) + 1
        assert background.sum() == pytest.approx(scatter + randoms, rel=1e-4)
    # The geometry JSON rebuilds the projector: the attenuation factors are exp(-P mu).
    grid = subject.phantom.grid
    geom = ParallelBeamGeometry(tuple(g["image_shape"]), tuple(g["pixel_size_mm"]), tuple(g["angles_deg"]), g["n_bins"], g["bin_size_mm"])
    mu = nib.load(out / "derivatives" / "truth" / "sub-01" / "pet" / "sub-01_desc-mu511keV_map.nii.gz").get_fdata()
    from imagingsim.backend import get_backend

    be = get_backend("numpy")
    rebuilt = np.exp(-np.asarray(ParallelProjector(geom, grid.shape[2], be, dtype=be.xp.float64).apply(mu)))
    np.testing.assert_allclose(attenuation, rebuilt, rtol=1e-5, atol=1e-6)  # float32 files


def test_pet_truth_and_recovery(pet_dataset):
    out, _ = pet_dataset
    truth = out / "derivatives" / "truth" / "sub-01"
    osem = nib.load(out / "sub-01" / "ses-24h" / "pet" / "sub-01_ses-24h_trc-pegliposome_rec-osem_pet.nii.gz").get_fdata()
    tumour = np.asarray(nib.load(truth / "anat" / "sub-01_desc-tumours_dseg.nii.gz").dataobj) > 0
    labels = np.asarray(nib.load(truth / "anat" / "sub-01_dseg.nii.gz").dataobj)
    # The 89Zr tumour is visible at 24 h: tumour mean well above muscle (3x; %ID/g ratio ~20).
    assert osem[tumour].mean() > 3 * osem[labels == 1].mean()
    for label in LABELS:
        session = truth / f"ses-{label}"
        expected = nib.load(session / "pet" / f"sub-01_ses-{label}_trc-pegliposome_desc-expected_activity.nii.gz")
        carrier = nib.load(session / "delivery" / f"sub-01_ses-{label}_desc-pegliposomeCarrier_conc.nii.gz")
        # Decay-corrected to injection, the expected image is carrier x specific activity.
        np.testing.assert_allclose(expected.get_fdata(), carrier.get_fdata() * 15.0e3, rtol=2e-6, atol=1e-3)  # 15 MBq/mg


@pytest.mark.validator
def test_pet_dataset_passes_bids_validator(pet_dataset, bids_validator):
    out, _ = pet_dataset
    report = bids_validator(out)
    assert report["errors"] == []
    assert "pet" in [m.lower() for m in report["summary"]["modalities"]]


def test_the_geometry_json_gives_every_factor_of_the_resolution_and_count_model(pet_dataset):
    """An outside user rebuilds the positron-range kernel and n_k from the written JSON alone."""
    from scipy.integrate import trapezoid

    from imagingsim.backend import get_backend
    from imagingsim.modalities.pet.physics import positron_range_kernel

    out, _ = pet_dataset
    geometries = [json.loads((out / f"sourcedata/sub-01/ses-{label}/pet/sub-01_ses-{label}_trc-pegliposome_geometry.json")
                             .read_text()) for label in LABELS]
    geometry = geometries[0]
    rng = geometry["PositronRange"]["Nuclides"][geometry["PositronRange"]["AppliedFor"]]
    s, big_r = rng["Scale_mm"], rng["MaxRange_mm"]
    # The truncated exponential with this scale has the tabulated mean (integral by quadrature).
    r = np.linspace(0.0, big_r, 200_001)
    weights = np.exp(-r / s)
    assert trapezoid(r * weights, r) / trapezoid(weights, r) == pytest.approx(rng["MeanRange_mm"], rel=1e-6)
    # The kernel, following the JSON's recipe with independent code, on a 0.5 mm grid.
    voxel, n_sub = 0.5, 9
    half = int(np.ceil(big_r / voxel + 0.5)) - 1
    n = 2 * half + 1
    axis = ((np.arange(n * n_sub) + 0.5) / n_sub - 0.5 * n) * voxel
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    dist = np.sqrt(x * x + y * y + z * z)
    rho = 0.5 * voxel
    inside = (dist > rho) & (dist <= big_r)
    density = np.where(inside, np.exp(-dist / s) / (4 * np.pi * s * np.where(inside, dist, 1.0) ** 2
                                                     * -np.expm1(-big_r / s)), 0.0) * (voxel / n_sub) ** 3
    rebuilt = density.reshape(n, n_sub, n, n_sub, n, n_sub).sum(axis=(1, 3, 5))
    rebuilt[half, half, half] += -np.expm1(-rho / s) / -np.expm1(-big_r / s)
    rebuilt /= rebuilt.sum()
    ours = positron_range_kernel(rng["MeanRange_mm"], big_r, (voxel,) * 3, get_backend("numpy"), samples_per_axis=n_sub)
    np.testing.assert_allclose(rebuilt, np.asarray(ours), rtol=1e-9, atol=1e-15)
    # n_k factors: per positron x positrons per decay x decay integral (decay-corrected images).
    for time_h, geometry in zip(TIMES_H, geometries):
        tracer = geometry["Emitters"]["pegliposome"]
        assert geometry["ImageDecayCorrected"] is True
        (start,), (length,) = geometry["FrameTimesStart_s"], geometry["FrameDuration_s"]
        assert start == time_h * 3600.0  # the tracer is injected at t = 0
        lam = np.log(2.0) / tracer["HalfLife_s"]
        integral = (np.exp(-lam * start) - np.exp(-lam * (start + length))) / lam
        assert geometry["TracerDecayIntegral_s"] == [pytest.approx(integral, rel=1e-9)]
        n_k = geometry["CountsPerUnitProjectionPerPositron"] * tracer["PositronsPerDecay"] * integral
        assert geometry["CountsPerUnitProjection"] == [pytest.approx(n_k, rel=1e-9)]
