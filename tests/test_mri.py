"""MRI physics and acquisition: relaxivity tables, field scaling, iron, the spoiled-GRE signal,
the R2* fit, Rician noise, and backend independence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from imagingsim.backend import get_backend
from imagingsim.grid import ImageGrid
from imagingsim.modalities.mri import acquire_mri, add_kspace_noise
from imagingsim.modalities.mri_physics import (
    FE_MOLAR_MASS_G_PER_MOL,
    baseline_relaxation,
    field_model,
    iron_mM,
    relaxation_with_iron,
    relaxivity,
    spoiled_gre,
)
from imagingsim.modalities.mri_result import time_label
from imagingsim.phantom import Label
from imagingsim.pipeline import simulate
from imagingsim.recon.mri import encoding_operator, fit_r2star, zero_filled
from imagingsim.scenario import load_scenario

#: Coarse phantom (2 mm voxels, 15 x 15 x 35): every label but the kidney cortex is present.
BASE = ["phantom.voxel_size_mm=2.0", "modalities.enabled=[]", "schedule.times_h=[24.0]"]


def _scenario(*extra):
    return load_scenario("mouse_targeted_spion", BASE + list(extra))


@pytest.fixture(scope="module")
def subject():
    return simulate(_scenario(), backend="numpy")


# --- data tables -------------------------------------------------------------------------


def test_relaxivity_table_holds_the_cited_values():
    # Knobloch et al. 2018 (PHYSICS.md), plasma 37 C.
    for field, (r1, r2, r2s) in {1.5: (19.0, 64.9, 64.4), 3.0: (9.5, 65.2, 55.7)}.items():
        rel = relaxivity("ferumoxytol", field)
        assert (rel.r1_per_mM_s, rel.r2_per_mM_s, rel.r2star_per_mM_s) == (r1, r2, r2s)
        assert "Knobloch" in rel.source
    seven = relaxivity("ferumoxytol", 7.0)
    assert seven.r2star_per_mM_s == relaxivity("ferumoxytol", 3.0).r2star_per_mM_s  # saturated (inference)
    assert seven.r1_per_mM_s < relaxivity("ferumoxytol", 3.0).r1_per_mM_s  # r1 falls with field
    with pytest.raises(ValueError, match="field_T must be one of"):
        relaxivity("ferumoxytol", 9.4)


def test_baseline_is_the_phantom_at_3T_and_scales_with_field(subject):
    be = subject.backend
    props = subject.phantom.properties
    labels = np.asarray(subject.phantom.labels)
    r1_3, r2s_3 = (np.asarray(a) for a in baseline_relaxation(subject.phantom, 3.0, be))
    np.testing.assert_array_equal(r1_3, 1000.0 / np.asarray(props["t1_3T_ms"]))
    np.testing.assert_array_equal(r2s_3, 1000.0 / np.asarray(props["t2star_3T_ms"]))
    model = field_model()
    muscle = labels == Label.SOFT_TISSUE
    t2 = model.t2_3T_ms["soft_tissue"]
    beta = model.t1_exponent_by_tissue["soft_tissue"]
    for field in (1.5, 7.0):
        r1, r2s = (np.asarray(a) for a in baseline_relaxation(subject.phantom, field, be))
        b = field / 3.0
        # Documented models, muscle: T1 ~ B0^beta, R2* = R2 + R2'(3 T) (B0 / 3 T) (float64 rounding only).
        np.testing.assert_allclose(1.0 / r1[muscle], b**beta / r1_3[muscle], rtol=1e-12)
        expected = 1000.0 / t2 + (r2s_3[muscle] - 1000.0 / t2) * b
        np.testing.assert_allclose(r2s[muscle], expected, rtol=1e-12)
    # T1 lengthens and R2* grows with field in every tissue with signal.
    r1_15, r2s_15 = (np.asarray(a) for a in baseline_relaxation(subject.phantom, 1.5, be))
    r1_7, r2s_7 = (np.asarray(a) for a in baseline_relaxation(subject.phantom, 7.0, be))
    body = labels != Label.AIR
    assert np.all(r1_15[body] > r1_3[body]) and np.all(r1_3[body] > r1_7[body])
    assert np.all(r2s_15[body] <= r2s_3[body]) and np.all(r2s_3[body] <= r2s_7[body])


def test_time_labels_are_bids_values():
    assert [time_label(t) for t in (24.0, 0.5, 1.0, 0.25, 168.0, 0.0)] == ["24h", "0p5h", "1h", "0p25h", "168h", "0h"]


# --- iron ------------------------------------------------------------------------------------


def test_delta_r2star_is_linear_in_iron(backend):
    xp = backend.xp
    rel = relaxivity("ferumoxytol", 3.0)
    factor = 3.0
    carrier = backend.asarray([0.0, 1.0, 5.0, 20.0, 100.0, 400.0], dtype=xp.float64)  # ug/mL
    c = iron_mM(carrier, 0.5)
    zero = xp.zeros_like(c)
    r1_0 = xp.full_like(c, 1.0)
    r2s_0 = xp.full_like(c, 30.0)
    conc = backend.to_host(c)
    np.testing.assert_allclose(conc, backend.to_host(carrier) * 0.5 / FE_MOLAR_MASS_G_PER_MOL, rtol=1e-15)
    for bound_fraction, slope_expected in ((0.0, rel.r2star_per_mM_s), (1.0, factor * rel.r2star_per_mM_s),
                                           (0.4, (0.6 + 0.4 * factor) * rel.r2star_per_mM_s)):
        bound = c * bound_fraction
        r1, r2s, total, _ = relaxation_with_iron(r1_0, r2s_0, [(rel, c, bound if bound_fraction else zero)],
                                                         factor)
        delta = backend.to_host(r2s) - 30.0
        slope, intercept = np.polyfit(conc, delta, 1)
        # A straight line through 0 with slope r2* (x factor for bound iron): float64 rounding only.
        assert slope == pytest.approx(slope_expected, rel=1e-6)
        assert abs(intercept) < 1e-9 * slope_expected * conc.max()
        np.testing.assert_allclose(backend.to_host(r1) - 1.0, rel.r1_per_mM_s * conc, rtol=1e-12)
        np.testing.assert_allclose(backend.to_host(total), conc, rtol=0)


# --- signal ------------------------------------------------------------------------------------


def test_spoiled_gre_matches_the_analytic_equation(backend):
    xp = backend.xp
    rng = np.random.default_rng(3)
    shape = (4, 5, 6)
    m0, r1, r2s = rng.uniform(0.1, 1.0, shape), rng.uniform(0.3, 5.0, shape), rng.uniform(10.0, 300.0, shape)
    df = rng.normal(0.0, 40.0, shape)
    tr, tes, flip = 25.0, [1.5, 4.0, 9.0, 20.0], 12.0
    out = spoiled_gre(*(backend.asarray(a, dtype=xp.float64) for a in (m0, r1, r2s)), repetition_time_ms=tr,
                      echo_times_ms=tes, flip_angle_deg=flip, offresonance_hz=backend.asarray(df, dtype=xp.float64))
    a = math.radians(flip)
    e1 = np.exp(-tr * 1e-3 * r1)
    expected = np.stack([
        m0 * np.sin(a) * (1 - e1) / (1 - np.cos(a) * e1) * np.exp(-te * 1e-3 * r2s) * np.exp(2j * np.pi * df * te * 1e-3)
        for te in tes
    ])
    assert out.dtype == xp.complex128
    # Same float64 formula in another order: a few ulp.
    np.testing.assert_allclose(backend.to_host(out), expected, rtol=1e-10, atol=0)


def _analytic_magnitude(subject, spec):
    """The spoiled-GRE magnitude written out independently, in numpy, from the phantom and delivery."""
    props = {k: np.asarray(v) for k, v in subject.phantom.properties.items()}
    item = subject.delivery.agent("spion")
    total = np.asarray(item.carrier_ug_per_ml)[..., 0] * 0.5 / 55.845
    bound = np.asarray(item.bound_carrier_ug_per_ml)[..., 0] * 0.5 / 55.845
    r1 = 1000.0 / props["t1_3T_ms"] + 9.5 * total
    r2s = 1000.0 / props["t2star_3T_ms"] + 55.7 * (total - bound + spec.clustered_iron_r2star_factor * bound)
    a = math.radians(spec.flip_angle_deg)
    e1 = np.exp(-spec.repetition_time_ms * 1e-3 * r1)
    steady = props["proton_density"] * np.sin(a) * (1 - e1) / (1 - np.cos(a) * e1)
    return np.stack([steady * np.exp(-te * 1e-3 * r2s) for te in spec.echo_times_ms])


def test_noiseless_acquisition_matches_the_analytic_signal(subject):
    be = subject.backend
    scenario = _scenario("modalities.mri.noise_percent=0.0", "modalities.mri.b0_offresonance_hz=25.0")
    acq = acquire_mri(subject.phantom, subject.delivery, scenario, be, subject.seed, dtype=be.xp.complex128)
    got = np.asarray(acq.magnitude)[0]
    expected = _analytic_magnitude(subject, scenario.modalities.mri)
    assert got.dtype == np.float64
    # FFT there and back adds absolute errors ~1e-16 x max|S| (atol); off-resonance only rotates phase.
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14 * expected.max())


# --- R2* fit --------------------------------------------------------------------------------------


def test_r2star_fit_recovers_r2star_at_high_snr(subject):
    scenario = _scenario("modalities.mri.noise_percent=0.1")
    acq = acquire_mri(subject.phantom, subject.delivery, scenario, subject.backend, subject.seed)
    labels = np.asarray(subject.phantom.labels)
    fit, true, mask = (np.asarray(a)[0] for a in (acq.r2star_per_s, acq.true_r2star_per_s, acq.fit_mask))
    tissue = ~np.isin(labels, [Label.AIR, Label.BONE, Label.LUNG, Label.SPLEEN])
    # Tissue with measurable signal is fitted; air, bone and lung (T2* ~1 ms) and the iron-laden
    # spleen (R2* > 2000 1/s) are signal voids at TE 2 ms and are masked.
    assert np.all(mask[tissue]) and not np.any(mask[labels == Label.AIR])
    err = np.abs(fit[tissue] - true[tissue]) / true[tissue]
    print(f"R2* fit at 0.1 % noise: max relative error {err.max():.4f}, mean {err.mean():.5f}")
    # 2 %: at SNR 1000 the noise in log S is ~1e-3 per echo; the fit error is below that.
    assert err.max() < 0.02
    assert np.all(fit[~mask] == 0.0)


def test_r2star_fit_is_exact_without_noise(backend):
    xp = backend.xp
    tes = [2.0, 5.0, 9.0, 14.0]
    r2s = backend.asarray([[5.0, 50.0, 400.0]], dtype=xp.float64)
    mag = xp.stack([3.0 * xp.exp(-(te * 1e-3) * r2s) for te in tes])
    fit = fit_r2star(mag, tes, backend)
    np.testing.assert_allclose(backend.to_host(fit), backend.to_host(r2s), rtol=1e-10)  # log/exp rounding


# --- noise ------------------------------------------------------------------------------------


def test_magnitude_is_rician_at_low_snr(backend):
    # A constant object at SNR 1 through the real noise path: FFT, complex noise, inverse FFT,
    # magnitude. Mean |.| of a Rician variable: sigma sqrt(pi/2) L_1/2(-A^2 / (2 sigma^2)).
    xp = backend.xp
    shape = (24, 24, 24)
    amplitude, sigma = 1.0, 1.0
    image = xp.full((1,) + shape, amplitude, dtype=xp.complex128, device=backend.device)
    op = encoding_operator(shape, backend)
    kspace = add_kspace_noise(op.apply(image), sigma, backend.rng(11, 1), backend)
    magnitude = backend.to_host(zero_filled(kspace, backend))[0]
    x = -(amplitude**2) / (2 * sigma**2)
    laguerre = np.exp(x / 2) * ((1 - x) * special.i0(-x / 2) - x * special.i1(-x / 2))  # L_1/2(x)
    expected = sigma * np.sqrt(np.pi / 2) * laguerre
    mean = magnitude.mean()
    # Orthonormal FFT: image noise is iid with the same sigma, so the standard error of the mean
    # is sd/sqrt(N), with the Rician variance 2 sigma^2 + A^2 - mean^2; 5 standard errors.
    variance = 2 * sigma**2 + amplitude**2 - expected**2
    tolerance = 5 * np.sqrt(variance / magnitude.size)
    print(f"Rician check: mean {mean:.5f}, expected {expected:.5f}, tolerance {tolerance:.5f}")
    assert abs(mean - expected) < tolerance
    # and not Gaussian: the mean exceeds the true amplitude by ~25 % at SNR 1
    assert mean > 1.2 * amplitude
    # Noise sd per real/imaginary part in image space equals the k-space sd.
    residual = backend.to_host(backend.fft.ifftn(kspace, axes=(-3, -2, -1), norm="ortho"))[0] - amplitude
    assert np.std(residual.real) == pytest.approx(sigma, rel=0.03)  # 13824 samples: SE 0.6 %


def test_noise_is_brainweb_percent_of_muscle(subject):
    scenario = _scenario("modalities.mri.noise_percent=3.0")
    acq = acquire_mri(subject.phantom, subject.delivery, scenario, subject.backend, subject.seed)
    expected = _analytic_magnitude(subject, scenario.modalities.mri)[0]
    muscle = np.asarray(subject.phantom.labels) == Label.SOFT_TISSUE
    assert acq.muscle_signal[0] == pytest.approx(expected[muscle].mean(), rel=1e-6)  # float32 k-space
    assert acq.noise_sd[0] == pytest.approx(0.03 * acq.muscle_signal[0], rel=1e-12)


# --- whole acquisition: iron, backends, reproducibility ------------------------------------------


def test_tumour_iron_estimate_tracks_truth_and_clustering(subject):
    acq = acquire_mri(subject.phantom, subject.delivery, _scenario("modalities.mri.noise_percent=0.5"),
                      subject.backend, subject.seed)
    labels = np.asarray(subject.phantom.labels)
    tumour = np.isin(labels, [Label.TUMOUR_VIABLE, Label.TUMOUR_HYPOXIC])
    true = np.asarray(acq.true_iron_mM)[0][tumour].mean()
    bound = np.asarray(acq.true_bound_iron_mM)[0][tumour].mean()
    estimate = np.asarray(acq.iron_estimate_mM)[0][tumour].mean()
    effective = true + 2.0 * bound  # what R2* sees: free + 3 x bound (clustered factor 3)
    print(f"tumour iron at 24 h: true {true:.3f} mM (bound {bound:.3f}), estimate {estimate:.3f} mM")
    # The estimate uses the solution r2*: it finds the r2*-weighted iron, within 5 % at 0.5 % noise.
    assert estimate == pytest.approx(effective, rel=0.05)
    assert estimate > 2.0 * true


def test_acquisition_is_the_same_on_numpy_and_strict(subject):
    scenario = _scenario("modalities.mri.n_coils=3", 'modalities.mri.undersampling="random"',
                         "modalities.mri.acceleration=2.0", "modalities.mri.b0_offresonance_hz=20.0",
                         "modalities.mri.cg_iterations=5")
    strict = simulate(_scenario(), backend="strict")
    results = [acquire_mri(s.phantom, s.delivery, scenario, s.backend, s.seed) for s in (subject, strict)]
    a, b = results
    sb = get_backend("strict")
    assert a.acceleration == b.acceleration == pytest.approx(2.0, rel=0.01)
    np.testing.assert_array_equal(np.asarray(a.mask), sb.to_host(b.mask))  # same generator stream
    # Same arithmetic in complex64 on both: differences are float32 rounding.
    np.testing.assert_allclose(sb.to_host(b.kspace), np.asarray(a.kspace), rtol=0, atol=1e-6)
    np.testing.assert_allclose(sb.to_host(b.r2star_per_s), np.asarray(a.r2star_per_s), rtol=1e-3, atol=1e-2)
    again = acquire_mri(subject.phantom, subject.delivery, scenario, subject.backend, subject.seed)
    np.testing.assert_array_equal(np.asarray(again.kspace), np.asarray(a.kspace))  # seeded: bit-identical


def test_no_iron_agent_gives_no_estimate():
    scenario = load_scenario(None, ["phantom.voxel_size_mm=2.0", 'modalities.enabled=["mri"]', "schedule.times_h=[1.0]",
                                    "modalities.mri.echo_times_ms=[3.0]"])
    subject = simulate(scenario, backend="numpy")
    acq = subject.acquisitions["mri"]
    assert acq.iron_agents == () and acq.iron_estimate_mM is None and acq.r2star_per_s is None  # one echo: no fit
    assert np.all(np.asarray(acq.true_iron_mM) == 0.0)
    assert np.asarray(acq.magnitude).shape == (1, 1) + subject.phantom.grid.shape
    assert isinstance(subject.phantom.grid, ImageGrid)
