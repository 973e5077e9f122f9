"""Photoacoustic physics against physics: the acoustic operator's adjoint on every backend,
arrival times and amplitudes of a point absorber, diffusion-theory fluence, p0 = Gamma mu_a
Phi, spectral unmixing, reconstruction of a point and a disc, the noise level, the tables."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from imagingsim.backend import get_backend
from imagingsim.data.tables import read_table
from imagingsim.modalities.photoacoustic import optics, spectra
from imagingsim.modalities.photoacoustic.acoustic import AcousticOperator
from imagingsim.modalities.photoacoustic.acquire import add_noise
from imagingsim.modalities.photoacoustic.geometry import acoustic_geometry
from imagingsim.modalities.photoacoustic.recon import cgls, filtered_backprojection
from imagingsim.modalities.photoacoustic.spec import PhotoacousticSpec
from imagingsim.modalities.photoacoustic.unmixing import initial_pressure, oxygen_saturation, unmix
from imagingsim.operators.base import check_adjoint

C_MM_PER_US = 1.54


def _geometry(n, h, **settings):
    """A square slice of n x n pixels of h mm centred on 0 and the settings' detectors."""
    spec = PhotoacousticSpec(**settings)
    return acoustic_geometry((n, n), h, (-(n - 1) / 2 * h,) * 2, h, spec)


def _coords(n, h):
    x = (np.arange(n) - (n - 1) / 2) * h
    return np.meshgrid(x, x, indexing="ij")


# --- the acoustic operator -------------------------------------------------------------------


@pytest.mark.parametrize("settings", [
    {"detector": "ring", "n_elements": 16},
    {"detector": "ring", "n_elements": 12, "bandwidth_percent": 0.0, "angular_coverage_deg": 270.0},
    {"detector": "linear", "n_elements": 16, "side": "ventral", "center_frequency_MHz": 4.0, "sampling_rate_MHz": 20.0},
])
def test_acoustic_operator_is_adjoint(backend, settings):
    """The dot test of the forward operator and its adjoint, two wavelengths at once (< 1e-12)."""
    geometry = _geometry(10, 1.0, **settings)
    op = AcousticOperator(geometry, 2, backend)
    assert op.in_shape == (10, 10, 2) and op.out_shape == (geometry.n_elements, geometry.n_t, 2)
    assert check_adjoint(op) < 1e-12


def test_a_wrong_adjoint_fails_the_dot_test(numpy_backend):
    """Guards the dot test: dropping the band-pass's conjugate breaks it."""
    op = AcousticOperator(_geometry(10, 1.0, n_elements=16), 1, numpy_backend)
    original = op._adjoint

    def wrong(y):
        xp = op.backend.xp
        g = op._filter(y, op.response) * op.time_weights  # not conj: a time reversal too many
        n_det, n_t, n = op.out_shape
        return xp.reshape(op.matrix.apply(xp.reshape(g, (n_det * n_t, n))), op.in_shape)

    op._adjoint = wrong
    assert check_adjoint(op) > 1e-2
    op._adjoint = original
    assert check_adjoint(op) < 1e-12


def test_point_absorber_arrives_at_distance_over_c_with_an_n_shape(numpy_backend):
    """One pixel of p0 (ideal broadband elements, 40 MHz): at every element the signal is an
    N (compression, then rarefaction) whose zero crossing is at r / c within one sample, and
    its first moment is the 3-D point-source value: -int t p dt = int g dt = p0 V / (4 pi c^2 r)."""
    n, h = 21, 0.5
    geometry = _geometry(n, h, n_elements=16, bandwidth_percent=0.0, sampling_rate_MHz=40.0)
    op = AcousticOperator(geometry, 1, numpy_backend)
    p0 = np.zeros((n, n, 1))
    i, j, amplitude = 14, 6, 1000.0
    p0[i, j, 0] = amplitude
    signals = np.asarray(op.apply(p0))[..., 0]
    x, y = (-(n - 1) / 2 + i) * h, (-(n - 1) / 2 + j) * h
    times = geometry.t0_us + geometry.dt_us * np.arange(geometry.n_t)
    volume = h * h * geometry.slice_thickness_mm
    for d, (ex, ey) in enumerate(geometry.elements_mm):
        r = math.hypot(x - ex, y - ey)
        s = signals[d]
        peak, trough = int(np.argmax(s)), int(np.argmin(s))
        assert peak < trough  # compression first
        # The pixel's footprint is a trapezoid in range, so the N has a flat middle: the arrival is
        # midway between the centroids of its positive and negative lobes.
        positive, negative = np.clip(s, 0, None), np.clip(-s, 0, None)
        t_arrival = 0.5 * (np.sum(times * positive) / positive.sum() + np.sum(times * negative) / negative.sum())
        assert abs(t_arrival - r / C_MM_PER_US) < geometry.dt_us
        moment = -np.sum(times * s) * geometry.dt_us
        expected = amplitude * volume / (4.0 * math.pi * C_MM_PER_US**2 * r)
        assert moment == pytest.approx(expected, rel=0.01)


def test_band_pass_removes_the_low_frequencies(numpy_backend):
    """With the band-pass the signal has no DC and its spectrum peaks near the centre frequency
    for a small source; the broadband signal carries more low-frequency energy."""
    n, h = 21, 0.25
    p0 = np.zeros((n, n, 1))
    p0[10, 10, 0] = 1.0
    spectra_peak = {}
    for bw in (0.0, 60.0):
        geometry = _geometry(n, h, n_elements=8, bandwidth_percent=bw, center_frequency_MHz=3.0,
                             sampling_rate_MHz=40.0)
        s = np.asarray(AcousticOperator(geometry, 1, numpy_backend).apply(p0))[0, :, 0]
        power = np.abs(np.fft.rfft(s, 8 * s.size))
        f = np.fft.rfftfreq(8 * s.size, geometry.dt_us)
        spectra_peak[bw] = f[np.argmax(power)]
        assert abs(np.sum(s)) < 1e-6 * np.sum(np.abs(s))  # d/dt: no DC
    assert spectra_peak[60.0] == pytest.approx(3.0, abs=0.5)
    assert spectra_peak[0.0] > spectra_peak[60.0]  # a 0.25 mm source is broadband beyond 3 MHz


# --- reconstruction ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broadband_ring():
    backend = get_backend("numpy")
    n, h = 48, 0.5
    geometry = _geometry(n, h, n_elements=128, bandwidth_percent=0.0, sampling_rate_MHz=10.0)
    return AcousticOperator(geometry, 1, backend), n, h


@pytest.fixture(scope="module")
def broadband_linear():
    n, h = 48, 0.5
    geometry = _geometry(n, h, detector="linear", n_elements=128, pitch_mm=0.3, bandwidth_percent=0.0)
    return AcousticOperator(geometry, 1, get_backend("numpy")), n, h


@pytest.mark.parametrize("method", ["fbp", "lsq"])
@pytest.mark.parametrize("array", ["broadband_ring", "broadband_linear"])
@pytest.mark.parametrize("pixel", [(31, 17), (10, 40), (24, 5)])
def test_point_absorber_reconstructs_at_its_place(array, method, pixel, request):
    """The brightest pixel is the absorber's (within one voxel), for the full ring and for the
    limited view of a linear array below the slice (its back-projection keeps ~30 % of the peak)."""
    op, n, _ = request.getfixturevalue(array)
    p0 = np.zeros((n, n, 1))
    p0[pixel + (0,)] = 1000.0
    y = op.apply(p0)
    fbp = filtered_backprojection(op, y)
    image = np.asarray(fbp if method == "fbp" else cgls(op, y, 10, start=fbp))[..., 0]
    peak = np.unravel_index(np.argmax(image), image.shape)
    assert max(abs(peak[0] - pixel[0]), abs(peak[1] - pixel[1])) <= 1


@pytest.mark.parametrize("method", ["fbp", "lsq"])
def test_disc_reconstructs_with_its_amplitude_and_edge(broadband_ring, method):
    """A 6 mm-radius disc off centre, noiseless, broadband full ring: the exact circular-means
    inversion gives the interior within 2 % (measured 0.7 %), CGLS from it within 1 %
    (measured 0.3 %); the edge (half amplitude on the radial profile) within half a voxel."""
    op, n, h = broadband_ring
    X, Y = _coords(n, h)
    centre, radius, amplitude = (1.5, -2.0), 6.0, 1000.0
    rho = np.hypot(X - centre[0], Y - centre[1])
    p0 = np.where(rho <= radius, amplitude, 0.0)[..., None]
    y = op.apply(p0)
    fbp = filtered_backprojection(op, y)
    image = np.asarray(fbp if method == "fbp" else cgls(op, y, 20, start=fbp))[..., 0]
    interior = image[rho < radius - 2 * h].mean()
    assert interior == pytest.approx(amplitude, rel=0.02 if method == "fbp" else 0.01)
    # edge: mean image in 0.25 mm rings, first radius where it falls below half the interior
    edges = np.arange(radius - 3.0, radius + 3.0, 0.25)
    profile = [image[(rho >= a) & (rho < a + 0.25)].mean() for a in edges]
    below = next(k for k, v in enumerate(profile) if v < 0.5 * interior)
    a0, a1, v0, v1 = edges[below - 1] + 0.125, edges[below] + 0.125, profile[below - 1], profile[below]
    edge = a0 + (a1 - a0) * (v0 - 0.5 * interior) / (v0 - v1)
    assert abs(edge - radius) < 0.5 * h


# --- light ---------------------------------------------------------------------------------


def _slab(n=60, h=0.5, mu_a=0.02, mu_s=1.0, n_lambda=1):
    backend = get_backend("numpy")
    body = np.ones((n, n), dtype=bool)
    a = np.full((n, n, n_lambda), mu_a)
    s = np.full((n, n, n_lambda), mu_s)
    return backend, body, a, s


def test_fluence_falls_as_exp_minus_mu_eff_depth():
    """A homogeneous slab lit from one side: the log-fluence slope below the source equals
    -mu_eff = -sqrt(3 mu_a (mu_a + mu_s')) (exact in the model: source and image terms share it)."""
    backend, body, a, s = _slab()
    phi = np.asarray(optics.fluence(body, a, s, 0.5, 20.0, ((1, 1),), backend))[0, :, 0]
    depth = (np.arange(60) + 0.5) * 0.5
    deep = depth > 5.0
    slope = np.polyfit(depth[deep], np.log(phi[deep]), 1)[0]
    mu_eff = math.sqrt(3 * 0.02 * 1.02)
    assert slope == pytest.approx(-mu_eff, rel=1e-9)  # exact in the model (the issue asks for 2 %)
    peak = int(np.argmax(phi))
    assert peak < 4  # the maximum is near the skin, where the light enters
    assert np.all(np.diff(phi[peak:]) < 0)  # and the fluence falls monotonically beyond it


def test_fluence_and_p0_of_a_uniform_slab_match_the_textbook_formula():
    """p0 = Gamma mu_a Phi, Phi from the hand-written diffusion formula (Haskell 1994) at 3 mm."""
    backend, body, a, s = _slab(mu_a=0.03, mu_s=0.8)
    phi = np.asarray(optics.fluence(body, a, s, 0.5, 20.0, ((1, 1),), backend))[0, :, 0]
    mu_t = 0.83
    D = 1 / (3 * mu_t)
    mu_eff = math.sqrt(3 * 0.03 * mu_t)
    n = 1.4
    r_eff = -1.440 / n**2 + 0.710 / n + 0.668 + 0.0636 * n
    zb = 2 * (1 + r_eff) / (1 - r_eff) * D
    z0 = 1 / mu_t
    z = 2.75  # pixel 5 of 0.5 mm
    expected = 20.0 * (1 - ((n - 1) / (n + 1)) ** 2) * (
        math.exp(-mu_eff * abs(z - z0)) - math.exp(-mu_eff * (z + z0 + 2 * zb))) / (2 * D * mu_eff)
    assert phi[5] == pytest.approx(expected, rel=1e-12)
    p0 = initial_pressure(0.2, 0.03, phi[5])
    assert p0 == pytest.approx(0.2 * 0.03 * 1e3 * expected * 10.0, rel=1e-12)  # 1/mm -> 1/m, mJ/cm^2 -> J/m^2
    # linear in mu_a at fixed fluence and in the fluence at fixed mu_a
    assert initial_pressure(0.2, 0.06, phi[5]) == pytest.approx(2 * p0, rel=1e-15)
    assert initial_pressure(0.2, 0.03, 3 * phi[5]) == pytest.approx(3 * p0, rel=1e-15)


def test_ring_illumination_is_symmetric():
    backend, body, a, s = _slab(n=20)
    phi = np.asarray(optics.fluence(body, a, s, 0.5, 20.0, optics.beams("ring", "dorsal"), backend))[..., 0]
    assert np.allclose(phi, phi.T) and np.allclose(phi, phi[::-1, :]) and np.allclose(phi, phi[:, ::-1])
    assert phi[10, 10] < phi[0, 10]  # darker in the middle


# --- spectra, oxygen, unmixing -------------------------------------------------------------


def test_severinghaus_curve():
    """S(P50 = 26.8 mmHg) = 0.5; arterial 100 mmHg ~0.977; 0 at 0; monotone."""
    assert spectra.severinghaus_so2(26.8) == pytest.approx(0.5, abs=0.005)
    assert spectra.severinghaus_so2(100.0) == pytest.approx(0.977, abs=0.002)
    assert spectra.severinghaus_so2(0.0) == 0.0
    values = [spectra.severinghaus_so2(p) for p in range(0, 160, 5)]
    assert all(b > a for a, b in itertools.pairwise(values))


def test_haemoglobin_table_matches_the_nirf_optics_anchors():
    """Whole-blood mu_a of data/photoacoustic.toml equals data/optics.toml's chromophore columns
    at 780, 810 and 850 nm (the same Prahl values, within their 3-digit rounding)."""
    chrom = read_table("optics.toml")
    waves = chrom["wavelengths_nm"]
    oxy, deoxy = spectra.haemoglobin([780.0, 810.0, 850.0])
    blood = spectra.blood_haemoglobin_mM()
    for k, w in enumerate((780.0, 810.0, 850.0)):
        col = waves.index(w)
        assert blood * oxy.per_mm[k] == pytest.approx(chrom["chromophores"]["oxy_blood"][col], rel=0.01)
        assert blood * deoxy.per_mm[k] == pytest.approx(chrom["chromophores"]["deoxy_blood"][col], rel=0.01)
    water, _ = spectra.water_lipid([780.0, 810.0, 850.0])
    assert water.per_mm == pytest.approx([chrom["chromophores"]["water"][waves.index(w)] for w in (780.0, 810.0, 850.0)])


def test_gold_plasmon_peak_and_dye_peaks():
    waves = [700.0 + 10 * k for k in range(21)]
    rod = spectra.gold("nanorod", waves)
    assert waves[int(np.argmax(rod.per_mm))] == 800.0
    assert waves[int(np.argmax(spectra.gold("nanorod", waves, peak_nm=750.0).per_mm))] == 750.0
    sphere = spectra.gold("nanosphere", waves)
    assert max(sphere.per_mm) < 0.1 * max(rod.per_mm)  # 520 nm spheres barely absorb in the NIR
    assert waves[int(np.argmax(spectra.dye("ICG", waves).per_mm))] == 800.0
    with pytest.raises(ValueError, match="outside"):
        spectra.dye("ICG", [1000.0])


def test_unmixing_recovers_two_known_absorbers_without_noise():
    backend = get_backend("numpy")
    waves = [700.0, 750.0, 800.0, 850.0, 900.0]
    members = (*spectra.haemoglobin(waves), spectra.dye("ICG", waves))
    truth = np.array([0.05, 0.0, 2.0])  # mM HbO2, mM Hb (absent), uM ICG: "two known absorbers"
    mu_a = np.array(members[0].per_mm) * truth[0] + np.array(members[2].per_mm) * truth[2]
    phi = np.linspace(3.0, 9.0, len(waves))  # a known, wavelength-dependent fluence
    image = initial_pressure(0.2, mu_a, phi)[None, None, :]
    c = np.asarray(unmix(image, members, 0.2, phi[None, None, :], backend))[0, 0]
    assert c == pytest.approx(truth, abs=0.01 * truth.max())
    assert c[0] == pytest.approx(truth[0], rel=0.01) and c[2] == pytest.approx(truth[2], rel=0.01)


@pytest.mark.parametrize("name, so2", [("arterial blood", 0.98), ("hypoxic tumour", 0.2)])
def test_so2_at_the_surface_and_its_error_with_depth(name, so2):
    """Blood-perfused tissue (5 % blood, 75 % water, 5 % lipid) lit from one side, unmixed
    from p0 at 7 wavelengths without depth compensation.

    Normalised by the fluence spectrum at the skin (a surface calibration), sO2 is within 0.05
    at the surface and drifts with depth as the light is coloured (the teaching table is
    printed). Normalised by the pulse energy alone (the acquisition's "uncompensated"), even
    the surface is off by 0.1-0.2: the diffuse fluence at the skin already depends on the
    tissue's absorption spectrum (diffusion theory; 930 nm water and the haemoglobin slope).
    Compensated with the true fluence, the unmixing is exact at every depth."""
    backend = get_backend("numpy")
    waves = [700.0, 730.0, 760.0, 800.0, 850.0, 900.0, 930.0]
    members = (*spectra.haemoglobin(waves), *spectra.water_lipid(waves))
    hb = 0.05 * spectra.blood_haemoglobin_mM()
    conc = np.array([hb * so2, hb * (1 - so2), 0.75, 0.05])
    mu_a = sum(np.array(m.per_mm) * c for m, c in zip(members, conc))
    mu_s = np.array([1.0 * (w / 810.0) ** -1.286 for w in waves])
    n, h = 40, 0.5
    body = np.ones((n, 1), dtype=bool)
    a = np.broadcast_to(mu_a, (n, 1, len(waves))).copy()
    s = np.broadcast_to(mu_s, (n, 1, len(waves))).copy()
    phi = np.asarray(optics.fluence(body, a, s, h, 20.0, ((0, 1),), backend))
    p0 = initial_pressure(0.2, a, phi)
    skin = 20.0 * (1 - optics.specular_reflection(1.4)) * optics.plane_fluence(0.0, optics.diffusion(mu_a, mu_s, np), np)

    def so2_of(fluence):
        c = np.asarray(unmix(p0, members, 0.2, fluence, backend))
        return np.asarray(oxygen_saturation(c[..., 0], c[..., 1], backend))[:, 0]

    calibrated, pulse_only = so2_of(skin[None, None, :]), so2_of(20.0)
    depth = (np.arange(n) + 0.5) * h
    print(f"\n{name}: true sO2 {so2}; depth mm, error (skin-calibrated), error (pulse energy only)")
    for k in range(0, n, 4):
        print(f"  {depth[k]:5.2f}  {calibrated[k] - so2:+.3f}  {pulse_only[k] - so2:+.3f}")
    assert abs(calibrated[0] - so2) < 0.05
    assert abs(calibrated[19] - so2) > 2 * abs(calibrated[0] - so2)  # 10 mm deep: coloured light
    assert abs(pulse_only[0] - so2) > abs(calibrated[0] - so2)
    exact = np.asarray(unmix(p0, members, 0.2, phi, backend))
    assert exact[:, 0, :] == pytest.approx(np.broadcast_to(conc, (n, 4)), rel=1e-9)


def test_noise_has_the_stated_snr():
    backend = get_backend("numpy")
    clean = [np.zeros((64, 512, 2)), np.zeros((64, 512, 2))]
    clean[0][3, 100, 1] = 250.0
    noisy, sigma = add_noise(clean, 40.0, backend, seed=7)
    assert float(sigma) == pytest.approx(250.0 / 100.0)
    measured = np.std(np.asarray(noisy[1]) - clean[1])
    assert measured == pytest.approx(2.5, rel=0.02)
    again, _ = add_noise(clean, 40.0, backend, seed=7)
    assert all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(noisy, again))
