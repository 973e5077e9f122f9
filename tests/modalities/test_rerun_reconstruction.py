"""Each tomographic modality's reconstruction reruns on its stored raw data and gives its images.

The drivers are plan -> simulate -> reconstruct; the reconstruction step takes only what a
dataset stores (counts or k-space, the background, the system model the plan rebuilds), so a
benchmark can rerun it, or run another algorithm, on the same data. Equality is exact: the
same operations on the same arrays.
"""

from __future__ import annotations

import numpy as np
import pytest

from imagingsim.modalities.base import acquisition_context
from imagingsim.pipeline import load_scenario, simulate

SMALL = ["phantom.voxel_size_mm=2.0", "schedule.times_h=[4.0, 24.0]"]


@pytest.fixture(scope="module")
def default_subject():
    scenario = load_scenario(None, [*SMALL, 'modalities.enabled=["pet", "mri"]',
                                    'modalities.mri.undersampling="random"', "modalities.mri.acceleration=2.0",
                                    "modalities.mri.n_coils=4"])
    return simulate(scenario, backend="numpy")


@pytest.fixture(scope="module")
def spect_ct_subject():
    scenario = load_scenario("mouse_gold_spect_ct", [*SMALL, "modalities.spect.n_views=16", "modalities.ct.n_views=32"])
    return simulate(scenario, backend="numpy")


def _context(subject, name):
    inputs = {"ct": subject.acquisitions["ct"]} if name == "spect" else {}
    return acquisition_context(name, subject.phantom, subject.delivery, subject.scenario, subject.backend,
                               subject.seed, **inputs)


def _host(subject, array):
    return np.asarray(subject.backend.to_host(array))


def test_pet_osem_and_fbp_rerun_on_the_stored_prompts(default_subject):
    from imagingsim.modalities.pet.acquire import plan_pet
    from imagingsim.modalities.pet.system import reconstruct_pet

    acq = default_subject.acquisitions["pet"]
    plan = plan_pet(_context(default_subject, "pet"))
    for method, image in acq.images_bq_per_ml.items():
        again = reconstruct_pet(method, acq.prompts, acq.expected_background, plan.system, plan.scanner,
                                psf_in_model=default_subject.scenario.modalities.pet.psf_in_model)
        np.testing.assert_array_equal(_host(default_subject, again), _host(default_subject, image))


def test_mri_recon_reruns_on_the_stored_kspace(default_subject):
    from imagingsim.modalities.mri.acquire import plan_mri, reconstruct_mri

    acq = default_subject.acquisitions["mri"]
    assert acq.recon_method == "cg_sense"
    plan = plan_mri(_context(default_subject, "mri"))
    for k in range(len(acq.times_h)):
        again = reconstruct_mri(plan, acq.kspace[k], default_subject.backend)
        np.testing.assert_array_equal(_host(default_subject, again), _host(default_subject, acq.magnitude[k]))


def test_ct_recon_reruns_on_the_stored_counts(spect_ct_subject):
    from imagingsim.modalities.ct.recon import reconstruct_ct

    acq, be = spect_ct_subject.acquisitions["ct"], spect_ct_subject.backend
    again = reconstruct_ct(acq.measured_counts, acq.i0_photons, acq.calibration, acq.geometry, acq.system, be)
    np.testing.assert_array_equal(_host(spect_ct_subject, again), _host(spect_ct_subject, acq.mu_recon_per_mm))


def test_spect_variants_rerun_on_the_stored_projections(spect_ct_subject):
    from imagingsim.modalities.spect.acquire import plan_spect, reconstruct_spect_images

    acq, be = spect_ct_subject.acquisitions["spect"], spect_ct_subject.backend
    xp = be.xp
    plan = plan_spect(_context(spect_ct_subject, "spect"))
    n = acq.projections.shape[-1]
    measured = [acq.projections[..., k] for k in range(n)]
    estimates = [acq.scatter_estimate[..., k] for k in range(n)]
    again = reconstruct_spect_images(plan, measured, estimates, acq.mu_recon_per_mm, list(acq.images_bq_per_ml), be)
    assert set(again) == set(acq.images_bq_per_ml) and acq.attenuation_source == "ct"
    for variant, image in acq.images_bq_per_ml.items():
        np.testing.assert_array_equal(_host(spect_ct_subject, again[variant]), _host(spect_ct_subject, image))
    assert float(xp.max(acq.images_bq_per_ml["ac_cdr"])) > 0.0
