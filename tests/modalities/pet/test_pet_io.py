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
    for method in ("osem", "fbp"):
        path = out / "sub-01" / "pet" / f"sub-01_trc-pegliposome_rec-{method}_pet.nii.gz"
        sidecar = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
        missing = [k for k in BIDS_PET_REQUIRED if k not in sidecar]
        assert missing == [], method
        img = nib.load(path)
        assert img.shape == subject.phantom.grid.shape + (len(TIMES_H),)
        assert img.header.get_xyzt_units() == ("mm", "sec")
        assert sidecar["Units"] == "Bq/mL" and sidecar["TracerRadionuclide"] == "89Zr"
        assert sidecar["FrameTimesStart"] == [t * 3600.0 for t in TIMES_H]
        assert len(sidecar["FrameDuration"]) == len(TIMES_H)
        assert sidecar["ImageDecayCorrected"] is True and sidecar["ImageDecayCorrectionTime"] == 0.0
        assert sidecar["InjectionStart"] == 0.0 and sidecar["ScanStart"] == TIMES_H[0] * 3600.0  # TimeZero = injection
        assert len(sidecar["SUVScaleFactor"]) == len(sidecar["DecayCorrectionFactor"]) == len(TIMES_H)
        assert all(f > 1.0 for f in sidecar["DecayCorrectionFactor"])  # decay-corrected back to injection
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
    raw = out / "sourcedata" / "sub-01" / "pet"
    geometry = json.loads((raw / "sub-01_trc-pegliposome_geometry.json").read_text())
    prompts = nib.load(raw / "sub-01_trc-pegliposome_prompts.nii.gz").get_fdata()
    background = nib.load(raw / "sub-01_trc-pegliposome_background.nii.gz").get_fdata()
    attenuation = nib.load(raw / "sub-01_trc-pegliposome_attenuation.nii.gz").get_fdata()
    g = geometry["Geometry"]
    assert prompts.shape == (len(g["angles_deg"]), g["n_bins"], subject.phantom.grid.shape[2], len(TIMES_H))
    assert attenuation.shape == prompts.shape[:3]
    assert np.all(prompts == np.round(prompts)) and prompts.min() >= 0
    assert 0 < attenuation.min() and attenuation.max() <= 1.0
    expected = geometry["ExpectedTotalCounts"]
    for k in range(len(TIMES_H)):
        total = expected["trues"][k] + expected["scatter"][k] + expected["randoms"][k]
        assert abs(prompts[..., k].sum() - total) < 5 * np.sqrt(total) + 1
        assert background[..., k].sum() == pytest.approx(expected["scatter"][k] + expected["randoms"][k], rel=1e-4)
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
    expected = nib.load(truth / "pet" / "sub-01_trc-pegliposome_desc-expected_activity.nii.gz").get_fdata()
    osem = nib.load(out / "sub-01" / "pet" / "sub-01_trc-pegliposome_rec-osem_pet.nii.gz").get_fdata()
    tumour = np.asarray(nib.load(truth / "anat" / "sub-01_desc-tumours_dseg.nii.gz").dataobj) > 0
    labels = np.asarray(nib.load(truth / "anat" / "sub-01_dseg.nii.gz").dataobj)
    day = TIMES_H.index(24.0)
    # The 89Zr tumour is visible at 24 h: tumour mean well above muscle (3x; %ID/g ratio ~20).
    assert osem[..., day][tumour].mean() > 3 * osem[..., day][labels == 1].mean()
    # Decay-corrected to injection, the expected image is carrier x specific activity.
    carrier = nib.load(truth / "delivery" / "sub-01_desc-pegliposomeCarrier_conc.nii.gz").get_fdata()
    np.testing.assert_allclose(expected, carrier * 15.0e3, rtol=2e-6, atol=1e-3)  # 15 MBq/mg = 15e3 Bq/ug


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
    geometry = json.loads((out / "sourcedata/sub-01/pet/sub-01_trc-pegliposome_geometry.json").read_text())
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
    tracer = geometry["Emitters"]["pegliposome"]
    assert geometry["ImageDecayCorrected"] is True
    for k, (start, length) in enumerate(zip(geometry["FrameTimesStart_s"], geometry["FrameDuration_s"])):
        lam = np.log(2.0) / tracer["HalfLife_s"]
        integral = (np.exp(-lam * start) - np.exp(-lam * (start + length))) / lam
        assert geometry["TracerDecayIntegral_s"][k] == pytest.approx(integral, rel=1e-9)
        n_k = geometry["CountsPerUnitProjectionPerPositron"] * tracer["PositronsPerDecay"] * integral
        assert geometry["CountsPerUnitProjection"][k] == pytest.approx(n_k, rel=1e-9)
