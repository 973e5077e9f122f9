"""PET forward model: decay, positron range, attenuation, calibration, background, recon.

Physics is checked against physics (decay law, xraydb attenuation, sensitivity definition,
scatter/randoms fractions); each tolerance says why it is what it is.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from imagingsim.backend import get_backend
from imagingsim.data.radionuclides import nuclide
from imagingsim.modalities.base import acquisition_context
from imagingsim.modalities.pet.acquire import acquire_pet
from imagingsim.modalities.pet.physics import positron_range_kernel, truncated_exponential_mean_mm
from imagingsim.modalities.pet.scanner import scanner_params
from imagingsim.modalities.pet.spec import PETSpec
from imagingsim.modalities.pet.system import (
    PETSystem,
    counts_per_unit_projection,
    recon_parameters,
    reconstruct_pet,
    resolution_kernel,
)
from imagingsim.phantom import Label, build_phantom
from imagingsim.physics.attenuation import linear_attenuation_per_mm, mass_attenuation_cm2_per_g
from imagingsim.physics.decay import decay_integral_s
from imagingsim.pipeline import load_scenario

SMALL = ['phantom.voxel_size_mm=1.0', 'modalities.enabled=["pet"]', 'modalities.pet.recon=["fbp"]']


@dataclasses.dataclass
class _AgentDelivery:
    """The part of imagingsim.delivery.AgentDelivery that PET reads."""

    agent: object
    carrier_ug_per_ml: object
    injected_mass_ug: float
    times_h: tuple


@dataclasses.dataclass
class _Delivery:
    agents: tuple
    times_h: tuple

    def agent(self, name):
        return next(a for a in self.agents if a.agent.name == name)


def _static_case(backend, overrides=(), *, mu_zero=False, carrier_ug_per_ml=10.0, radius_mm=8.0):
    """Small mouse phantom (1 mm voxels) with a static carrier sphere, the scenario's first agent."""
    scenario = load_scenario(None, SMALL + list(overrides))
    phantom = build_phantom(scenario.phantom, backend, 1)
    xp = backend.xp
    if mu_zero:
        zeros = xp.zeros(phantom.grid.shape, dtype=xp.float64, device=backend.device)
        phantom = dataclasses.replace(phantom, properties={**phantom.properties, "density_g_per_ml": zeros})
    x, y, z = phantom.grid.axes_mm(backend)
    sphere = xp.astype(x * x + y * y + (z + 5.0) ** 2 < radius_mm**2, xp.float64) * carrier_ug_per_ml
    times = tuple(scenario.schedule.times_h)
    carrier = xp.stack([sphere] * len(times), axis=-1)
    mass = backend.scalar(xp.sum(sphere)) * phantom.grid.voxel_volume_ml
    delivery = _Delivery((_AgentDelivery(scenario.agents[0], carrier, mass, times),), times)
    return scenario, phantom, delivery, sphere


# --- decay ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["F18", "Zr89"])
def test_trues_between_frames_follow_the_decay_law(backend, name):
    overrides = [f'agents[0].labels[0].nuclide="{name}"', "schedule.times_h=[1.0, 3.0]"]
    scenario, phantom, delivery, _ = _static_case(backend, overrides)
    acq = acquire_pet(acquisition_context("pet", phantom, delivery, scenario, backend, 3))
    trues = acq.total_counts["trues"]
    expected = math.exp(-nuclide(name).decay_constant_per_s * 2 * 3600.0)
    # Equal frame lengths: the ratio is exact; 1e-3 leaves room for float32 projections.
    assert trues[1] / trues[0] == pytest.approx(expected, rel=1e-3)


def test_18F_is_gone_after_a_week_while_89Zr_still_counts():
    backend = get_backend("numpy")
    totals = {}
    for name in ("F18", "Zr89"):
        # Not decay-corrected: correcting 92 half-lives of 18F back to injection is refused.
        overrides = [
            f'agents[0].labels[0].nuclide="{name}"', "schedule.times_h=[168.0]", 'modalities.pet.decay_correction="none"'
        ]
        # 7.5 MBq injected (500 ug at 15 MBq/mg), all of it in the field of view.
        scenario, phantom, delivery, _ = _static_case(backend, overrides, carrier_ug_per_ml=500.0 / 2.14)
        acq = acquire_pet(acquisition_context("pet", phantom, delivery, scenario, backend, 1))
        assert 2e6 < acq.injected_activity_bq < 1e7
        totals[name] = acq.total_counts["trues"][0]
    assert totals["F18"] < 1.0  # 92 half-lives: ~1e-21 counts
    assert totals["Zr89"] > 1e6


def test_decay_correcting_a_vanished_tracer_is_a_clear_error():
    backend = get_backend("numpy")
    overrides = ['agents[0].labels[0].nuclide="F18"', "schedule.times_h=[168.0]"]
    scenario, phantom, delivery, _ = _static_case(backend, overrides, carrier_ug_per_ml=100.0)
    with pytest.raises(ValueError, match=r"modalities.pet.decay_correction: at 168 h .*F18"):
        acquire_pet(acquisition_context("pet", phantom, delivery, scenario, backend, 1))


# --- positron range -----------------------------------------------------------------------


def _mean_radius_mm(kernel, voxel_mm):
    k = np.asarray(kernel)
    axes = [(np.arange(n) - n // 2) * voxel_mm for n in k.shape]
    r = np.sqrt(axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2)
    return float((k * r).sum())


def test_positron_range_kernel_sums_to_one_on_every_backend(backend):
    f18 = nuclide("F18")
    kernel = positron_range_kernel(f18.mean_positron_range_mm, f18.max_positron_range_mm, (0.5, 0.5, 0.5), backend)
    assert tuple(kernel.shape) == (11, 11, 11)  # every voxel the 2.4 mm sphere touches
    assert backend.scalar(backend.xp.sum(kernel)) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("name", ["F18", "Zr89", "Cu64", "Ga68"])
def test_positron_range_kernel_mean_matches_the_table(name):
    data = nuclide(name)
    kernel = positron_range_kernel(data.mean_positron_range_mm, data.max_positron_range_mm, (0.1,) * 3, get_backend("numpy"))
    # 3 %: on a 0.1 mm grid the voxel-centre distances and the midpoint rule near the 1/r^2
    # cusp bias the mean by ~2 % (the scale is fitted so the continuous mean is exact).
    assert _mean_radius_mm(kernel, 0.1) == pytest.approx(data.mean_positron_range_mm, rel=0.03)


def test_truncation_would_shorten_the_mean_without_the_fitted_scale():
    # Why the scale is fitted: exp(-r / 0.6 mm) cut at 2.4 mm has a 7 % smaller mean.
    assert truncated_exponential_mean_mm(0.6, 2.4) == pytest.approx(0.555, abs=1e-3)


def test_68Ga_range_is_wider_than_18F():
    be = get_backend("numpy")
    kernels = {n: positron_range_kernel(nuclide(n).mean_positron_range_mm, nuclide(n).max_positron_range_mm, (0.5,) * 3, be)
               for n in ("F18", "Ga68")}
    assert _mean_radius_mm(kernels["Ga68"], 0.5) > 3 * _mean_radius_mm(kernels["F18"], 0.5)
    assert np.asarray(kernels["Ga68"]).max() < 0.5 * np.asarray(kernels["F18"]).max()


# --- attenuation, sensitivity, background ------------------------------------------------


def test_central_ray_through_a_water_cylinder(backend):
    shape, radius = (60, 60, 4), 10.0
    phantom_grid = dataclasses.make_dataclass("G", ["shape"])(shape)
    x = (np.arange(60) - 29.5) * 0.5
    inside = (x[:, None] ** 2 + x[None, :] ** 2 <= radius**2)[..., None] * np.ones(shape)
    phantom = dataclasses.make_dataclass("P", ["grid", "labels", "materials", "properties"])(
        phantom_grid,
        backend.from_host(inside.astype(np.uint8)),
        {0: "air", 1: "water"},
        {"density_g_per_ml": backend.from_host(inside)},
    )
    mu = linear_attenuation_per_mm(phantom, 511.0, backend)
    mu_water = mass_attenuation_cm2_per_g("water", 511.0) / 10.0  # xraydb, 1/mm
    assert mu_water == pytest.approx(0.00960, rel=0.005)  # PHYSICS.md: 0.0960 /cm
    system = PETSystem.build(shape, (0.5, 0.5, 1.0), mu, 16, (1.0,), backend)
    a = backend.to_host(system.attenuation_factors)
    centre = system.geometry.n_bins // 2
    assert system.geometry.bin_centres_mm[centre] == 0.0
    expected = math.exp(-mu_water * 2 * radius)
    # 1 %: the pixelated disc's chord differs from 2R by at most a fraction of a pixel.
    for view in range(16):
        assert a[view, centre, 1] == pytest.approx(expected, rel=0.01), view


def test_trues_are_sensitivity_times_annihilations(backend):
    scenario, phantom, delivery, sphere = _static_case(backend, ["schedule.times_h=[1.0, 30.0]"], mu_zero=True)
    acq = acquire_pet(acquisition_context("pet", phantom, delivery, scenario, backend, 3))
    zr = nuclide("Zr89")
    activity_bq = backend.scalar(backend.xp.sum(sphere)) * phantom.grid.voxel_volume_ml * acq.specific_activity_bq_per_ug
    for k, start in enumerate(acq.frame_start_s):
        annihilations = activity_bq * zr.beta_plus_fraction * decay_integral_s(zr.half_life_s, start, start + 900.0)
        # 1 %: the Joseph projector conserves the in-plane integral only on average over views.
        assert acq.total_counts["trues"][k] == pytest.approx(acq.scanner.sensitivity * annihilations, rel=0.01)
    assert acq.counts_per_unit_projection[0] == pytest.approx(
        counts_per_unit_projection(0.093, 1.0, 1.0, 128, zr.beta_plus_fraction,
                                   decay_integral_s(zr.half_life_s, 3600.0, 4500.0)), rel=1e-12)


def test_a_long_frame_integrates_the_decay_over_the_frame():
    # A 2 h 18F frame spans more than one half-life: counting the start-of-frame activity for
    # the whole frame would overestimate the trues by 43 %; the decay integral is exact.
    be = get_backend("numpy")
    overrides = ['agents[0].labels[0].nuclide="F18"', "schedule.times_h=[1.0]", "modalities.pet.frame_duration_s=7200.0"]
    scenario, phantom, delivery, sphere = _static_case(be, overrides, mu_zero=True)
    acq = acquire_pet(acquisition_context("pet", phantom, delivery, scenario, be, 3))
    f18 = nuclide("F18")
    activity_bq = be.scalar(be.xp.sum(sphere)) * phantom.grid.voxel_volume_ml * acq.specific_activity_bq_per_ug
    lam = f18.decay_constant_per_s
    integral = (math.exp(-lam * 3600.0) - math.exp(-lam * 10800.0)) / lam
    expected = acq.scanner.sensitivity * f18.beta_plus_fraction * activity_bq * integral
    start_of_frame = acq.scanner.sensitivity * f18.beta_plus_fraction * activity_bq * math.exp(-lam * 3600.0) * 7200.0
    # 1 %: the Joseph projector conserves in-plane integrals only on average over views.
    assert acq.total_counts["trues"][0] == pytest.approx(expected, rel=0.01)
    assert start_of_frame > 1.4 * expected  # the start-of-frame model is off by far more than 1 %


def test_co_injected_positron_emitters_add_up():
    # 89Zr tracer plus an 18F agent in the same sphere: the scanner counts both, and the image
    # (in tracer units) holds the 18F positrons as if they were 89Zr ones.
    from imagingsim.scenario import RadionuclideLabel

    be = get_backend("numpy")
    scenario, phantom, delivery, sphere = _static_case(be, ["schedule.times_h=[2.0]"], mu_zero=True)
    first = scenario.agents[0]
    f18_label = RadionuclideLabel(kind="radionuclide", nuclide="F18", specific_activity_MBq_per_mg=40.0)
    second = first.model_copy(update={"name": "fluorine", "labels": [f18_label]})
    scenario = scenario.model_copy(update={"agents": [first, second]})
    carrier = delivery.agents[0].carrier_ug_per_ml
    delivery = _Delivery(
        (delivery.agents[0], _AgentDelivery(second, carrier, delivery.agents[0].injected_mass_ug, delivery.times_h)),
        delivery.times_h,
    )
    acq = acquire_pet(acquisition_context("pet", phantom, delivery, scenario, be, 3))
    assert acq.emitters == {first.name: "Zr89", "fluorine": "F18"}
    mass_ug = be.scalar(be.xp.sum(sphere)) * phantom.grid.voxel_volume_ml
    start, end = 7200.0, 7200.0 + acq.frame_duration_s[0]
    positrons = {}
    for name, sa_mbq_per_mg in (("Zr89", 15.0), ("F18", 40.0)):
        data = nuclide(name)
        positrons[name] = mass_ug * sa_mbq_per_mg * 1e3 * data.beta_plus_fraction * decay_integral_s(
            data.half_life_s, start, end
        )
    # 1 %: in-plane integrals are conserved on average over views (see above).
    assert acq.total_counts["trues"][0] == pytest.approx(acq.scanner.sensitivity * sum(positrons.values()), rel=0.01)
    zr = nuclide("Zr89")
    tracer_scale = zr.beta_plus_fraction * decay_integral_s(zr.half_life_s, start, end)
    inside = np.asarray(sphere) > 0
    expected = np.asarray(acq.expected_image_bq_per_ml)[..., 0][inside]
    value = np.asarray(sphere)[inside] * 15.0e3 + np.asarray(sphere)[inside] * 40.0e3 * (
        positrons["F18"] / (mass_ug * 40.0e3) / tracer_scale
    )
    # float32 storage of the truth: 1e-6.
    np.testing.assert_allclose(expected, value, rtol=1e-6)


def test_suv_scale_follows_the_declared_decay_correction():
    # SUV of the same subject must not depend on whether the images were decay-corrected.
    be = get_backend("numpy")
    suv = {}
    for mode in ("injection", "none"):
        overrides = ["schedule.times_h=[24.0, 168.0]", f'modalities.pet.decay_correction="{mode}"']
        scenario, phantom, delivery, _ = _static_case(be, overrides)
        acq = acquire_pet(acquisition_context("pet", phantom, delivery, scenario, be, 3))
        image = np.asarray(acq.expected_image_bq_per_ml)
        suv[mode] = image * np.asarray(acq.suv_scale_g_per_bq)
        assert acq.decay_corrected == (mode == "injection")
    # float32 images: 1e-6 relative.
    np.testing.assert_allclose(suv["none"], suv["injection"], rtol=1e-5, atol=1e-12)
    assert suv["injection"].max() > 0


def test_decay_correction_changes_the_image_scale_not_the_counts():
    be = get_backend("numpy")
    counts, images = {}, {}
    for mode in ("injection", "none"):
        scenario, phantom, delivery, _ = _static_case(be, ["schedule.times_h=[24.0]", f'modalities.pet.decay_correction="{mode}"'])
        acq = acquire_pet(acquisition_context("pet", phantom, delivery, scenario, be, 3))
        counts[mode] = acq.total_counts["trues"][0]
        images[mode] = float(np.asarray(acq.expected_image_bq_per_ml).max())
    assert counts["injection"] == pytest.approx(counts["none"], rel=1e-6)  # float32 sums of equal sinograms
    zr = nuclide("Zr89")
    mean_fraction = decay_integral_s(zr.half_life_s, 86400.0, 87300.0) / 900.0
    assert images["none"] / images["injection"] == pytest.approx(mean_fraction, rel=1e-6)


def test_scatter_and_randoms_follow_their_fractions(backend):
    scenario, phantom, delivery, _ = _static_case(backend, ["schedule.times_h=[1.0, 30.0]"])
    acq = acquire_pet(acquisition_context("pet", phantom, delivery, scenario, backend, 3))
    t, s, r = (np.array(acq.total_counts[k]) for k in ("trues", "scatter", "randoms"))
    sf, rf = acq.scanner.scatter_fraction, acq.scanner.randoms_fraction
    # 1e-6: the totals are float64 sums of float32 sinograms scaled to the fractions.
    np.testing.assert_allclose(s / (t + s), sf, rtol=1e-6)
    np.testing.assert_allclose(r / (t + s + r), rf, rtol=1e-6)
    background = backend.to_host(acq.expected_background).astype(np.float64).sum(axis=(0, 1, 2))
    np.testing.assert_allclose(background, s + r, rtol=1e-5)  # float32 entries, summed in float64
    prompts = np.array(acq.total_counts["prompts"])
    assert np.all(np.abs(prompts - (t + s + r)) < 5 * np.sqrt(t + s + r))  # Poisson total, 5 sigma


def test_noise_is_reproducible_per_seed_and_differs_between_seeds(backend):
    scenario, phantom, delivery, _ = _static_case(backend, ["schedule.times_h=[1.0, 1.5]"])
    first = acquire_pet(acquisition_context("pet", phantom, delivery, scenario, backend, 11))
    again = acquire_pet(acquisition_context("pet", phantom, delivery, scenario, backend, 11))
    other = acquire_pet(acquisition_context("pet", phantom, delivery, scenario, backend, 12))
    p1, p2, p3 = (backend.to_host(a.prompts) for a in (first, again, other))
    np.testing.assert_array_equal(p1, p2)
    assert np.any(p1 != p3)
    assert np.all(p1 == np.round(p1)) and p1.min() >= 0
    # Frames draw from their own streams: the two frames' noise is not the same draw.
    scale = backend.to_host(first.expected_background)
    assert not np.array_equal(p1[..., 0] - np.round(scale[..., 0]), p1[..., 1] - np.round(scale[..., 1]))


def test_scanner_preset_fills_only_unset_fields():
    params = scanner_params(PETSpec(fwhm_mm=2.5, subsets=4))
    assert (params.fwhm_mm, params.subsets, params.sensitivity, params.n_views) == (2.5, 4, 0.093, 128)
    assert scanner_params(PETSpec(scanner="clinical")).post_filter_fwhm_mm == 6.4
    with pytest.raises(ValueError, match="subsets"):
        scanner_params(PETSpec(n_views=8, subsets=16))


def test_recon_parameters_describe_the_method_for_bids():
    scanner = scanner_params(PETSpec())
    osem = recon_parameters("osem", scanner, True)
    assert osem["method_name"] == "OSEM 4i8s with attenuation, scatter, randoms and PSF modelling"
    assert (osem["labels"], osem["units"], osem["values"]) == (["subsets", "iterations"], ["none", "none"], [8, 4])
    assert (osem["filter_type"], osem["filter_size"]) == ("Gaussian", 1.0)
    assert recon_parameters("mlem", scanner, False)["values"] == [32]
    assert recon_parameters("fbp", scanner, True)["method_name"].startswith("FBP (Hann-windowed ramp filter, cut-off 1 x Nyquist)")


# --- the system model and reconstruction ---------------------------------------------------


def test_sinogram_resolution_model_equals_the_image_blur():
    be = get_backend("numpy")
    shape, voxel = (40, 40, 24), (0.5, 0.5, 0.5)
    kernel = resolution_kernel(nuclide("Zr89"), 1.6, voxel, shape, be)
    system = PETSystem.build(shape, voxel, be.xp.zeros(shape, dtype=be.xp.float64), 64, (1.0,), be, resolution_kernel=kernel)
    x = np.zeros(shape + (1,))
    i, j, k = np.meshgrid(*[np.arange(n) - n / 2 for n in shape], indexing="ij")
    x[(i**2 + j**2 < 15**2), 0] = 1.0
    x[((i - 5) ** 2 + (j + 4) ** 2 + k**2 < 4**2), 0] = 6.0
    image_form = np.asarray(system.model(space="image").apply(be.from_host(x, dtype=be.xp.float32)))
    sinogram_form = np.asarray(system.model(space="sinogram").apply(be.from_host(x, dtype=be.xp.float32)))
    # P R = H P for an isotropic kernel; the Joseph interpolation leaves ~0.1 % rms.
    assert np.linalg.norm(sinogram_form - image_form) / np.linalg.norm(image_form) < 0.005


def test_noiseless_osem_recovers_a_uniform_body():
    be = get_backend("numpy")
    scenario = load_scenario(None, SMALL)
    phantom = build_phantom(scenario.phantom, be, 1)
    scanner = scanner_params(scenario.modalities.pet)
    body = np.asarray(phantom.labels) != Label.AIR
    truth = np.where(body, 1e5, 0.0)[..., None]  # Bq/mL
    mu = linear_attenuation_per_mm(phantom, 511.0, be)
    kernel = resolution_kernel(nuclide("Zr89"), scanner.fwhm_mm, phantom.grid.voxel_size_mm, phantom.grid.shape, be)
    n_k = counts_per_unit_projection(scanner.sensitivity, 1.0, 1.0, scanner.n_views, 0.227, 900.0)
    system = PETSystem.build(phantom.grid.shape, phantom.grid.voxel_size_mm, mu, scanner.n_views, (n_k,), be,
                             resolution_kernel=kernel)
    trues = system.model().apply(be.from_host(truth, dtype=be.xp.float32))
    background = 0.1 * trues + 0.05 * be.xp.mean(trues)
    image = np.asarray(reconstruct_pet("osem", trues + background, background, system, scanner))[..., 0]
    from scipy.ndimage import binary_erosion

    interior = binary_erosion(body, iterations=4)
    assert interior.sum() > 2000
    # 5 %: 4 iterations x 8 subsets from a flat start have not fully converged at the edges.
    assert image[interior].mean() == pytest.approx(1e5, rel=0.05)


def test_tumour_is_visible_at_24h_in_the_default_89Zr_scenario():
    from imagingsim.pipeline import simulate

    scenario = load_scenario(None, ['modalities.enabled=["pet"]', "schedule.times_h=[24.0]"])
    subject = simulate(scenario, backend="numpy")
    acq = acquire_pet(acquisition_context("pet", subject.phantom, subject.delivery, scenario, subject.backend, subject.seed))
    labels = np.asarray(subject.phantom.labels)
    tumour = np.isin(labels, [Label.TUMOUR_VIABLE, Label.TUMOUR_HYPOXIC, Label.TUMOUR_NECROTIC])
    muscle = labels == Label.SOFT_TISSUE
    for method in ("osem", "fbp"):
        image = np.asarray(acq.images_bq_per_ml[method])[..., 0]
        assert image.dtype == np.float32
        assert image[tumour].mean() > 2 * image[muscle].mean(), method
    truth = np.asarray(acq.expected_image_bq_per_ml)[..., 0]
    osem = np.asarray(acq.images_bq_per_ml["osem"])[..., 0]
    # Partial volume and the necrotic core: recovery well below 1, but not absurd.
    assert 0.5 < osem[tumour].mean() / truth[tumour].mean() < 1.1
    assert acq.suv_scale_g_per_bq == pytest.approx((25.0 / acq.injected_activity_bq,))


def test_numpy_and_strict_give_the_same_expected_data(monkeypatch):
    from conftest import install_strict_guards

    results = {}
    for name in ("numpy", "strict"):
        be = get_backend(name)
        if name == "strict":
            install_strict_guards(monkeypatch)
        scenario, phantom, delivery, _ = _static_case(be, ["schedule.times_h=[1.0, 24.0]", 'modalities.pet.recon=["osem"]'])
        acq = acquire_pet(acquisition_context("pet", phantom, delivery, scenario, be, 5))
        results[name] = acq, be
    (a, na), (b, sb) = results["numpy"], results["strict"]
    for field in ("expected_background", "attenuation_factors", "expected_image_bq_per_ml", "mu_511_per_mm"):
        x, y = na.to_host(getattr(a, field)), sb.to_host(getattr(b, field))
        assert x.dtype == y.dtype == np.float32, field
        np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-6 * float(np.abs(x).max()), err_msg=field)  # float32
    for key in ("trues", "scatter", "randoms"):
        np.testing.assert_allclose(b.total_counts[key], a.total_counts[key], rtol=1e-6)
    x, y = na.to_host(a.images_bq_per_ml["osem"]), sb.to_host(b.images_bq_per_ml["osem"])
    np.testing.assert_allclose(y, x, rtol=1e-3, atol=1e-4 * float(x.max()))  # 32 float32 EM updates


@pytest.mark.parametrize("space", ["sinogram", "image"])
def test_system_model_adjoint(backend, space):
    from imagingsim.operators import check_adjoint

    shape, voxel = (16, 16, 6), (1.0, 1.0, 1.0)
    xp = backend.xp
    mu = xp.full(shape, 0.01, dtype=xp.float64, device=backend.device)
    kernel = resolution_kernel(nuclide("Ga68"), 1.6, voxel, shape, backend)
    system = PETSystem.build(shape, voxel, mu, 12, (1.0, 0.5), backend, resolution_kernel=kernel)
    # float32 operators: a matched adjoint leaves ~1e-6 of rounding (1e-7 per operation).
    assert check_adjoint(system.model([1, 4, 7, 10], space=space), dtype=xp.float32) < 1e-4


def test_no_scatter_no_randoms_still_gives_valid_counts(backend):
    overrides = ["schedule.times_h=[1.0]", "modalities.pet.scatter_fraction=0.0", "modalities.pet.randoms_fraction=0.0"]
    scenario, phantom, delivery, _ = _static_case(backend, overrides)
    acq = acquire_pet(acquisition_context("pet", phantom, delivery, scenario, backend, 2))
    assert backend.scalar(backend.xp.max(backend.xp.abs(acq.expected_background))) == 0.0
    assert acq.total_counts["scatter"] == (0.0,) and acq.total_counts["randoms"] == (0.0,)
    assert backend.scalar(backend.xp.min(acq.prompts)) == 0.0  # outside the body
