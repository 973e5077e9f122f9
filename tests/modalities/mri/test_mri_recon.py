"""MRI encoding and reconstruction: FFT round trip, masks, coil maps, dot tests, CG-SENSE."""

from __future__ import annotations

import numpy as np
import pytest

from imagingsim.grid import ImageGrid
from imagingsim.modalities.mri.acquire import add_kspace_noise
from imagingsim.modalities.mri.recon import (
    CoilSensitivities,
    FourierTransform,
    SamplingMask,
    cg_sense,
    encoding_operator,
    zero_filled,
)
from imagingsim.modalities.mri.relaxometry import (
    BASELINE_VOID_DECAY,
    NOISE_REALISATIONS,
    R2STAR_RANGE_PER_S,
    fit_r2star,
    iron_estimate_mM,
    noise_statistics,
    signal_mask,
)
from imagingsim.modalities.mri.sampling import (
    calibration_size,
    coil_sensitivities,
    n_acquired,
    sampling_mask,
    to_centred,
    to_fft_order,
)
from imagingsim.operators import check_adjoint
from imagingsim.physics.metrics import nrmse

GRID = ImageGrid((12, 10, 14), (1.0, 1.0, 1.5), (-5.5, -4.5, -9.75))
PATTERNS = ("random", "variable_density", "poisson_disc")


def _complex(backend, rng, shape):
    xp = backend.xp
    return backend.asarray(rng.standard_normal(shape) + 1j * rng.standard_normal(shape), dtype=xp.complex128)


def test_fft_round_trip_is_exact(backend):
    x = _complex(backend, np.random.default_rng(0), (3,) + GRID.shape)
    for axes in ((-3, -2, -1), (-2, -1)):
        op = FourierTransform(tuple(x.shape), backend, axes=axes)
        back = backend.to_host(op.adjoint(op.apply(x)))
        # Orthonormal FFT and its inverse in complex128: rounding only (~1e-15 of max|x|).
        assert np.max(np.abs(back - backend.to_host(x))) < 1e-12 * np.max(np.abs(backend.to_host(x)))
    # Orthonormal: energy is preserved (Parseval), same float64 rounding.
    k = FourierTransform(tuple(x.shape), backend).apply(x)
    energy = [float(np.sum(np.abs(backend.to_host(a)) ** 2)) for a in (x, k)]
    assert energy[1] == pytest.approx(energy[0], rel=1e-12)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_masks_hit_the_acceleration_and_are_reproducible(backend, pattern):
    shape = (40, 56)
    cal = calibration_size(shape, 0.1)
    assert cal == (4, 6)
    for acceleration in (2.0, 3.0, 4.0, 6.0):
        mask = backend.to_host(sampling_mask(shape, pattern, acceleration, 0.1, backend.rng(5, 1), backend))
        achieved = mask.size / mask.sum()
        # Every pattern takes exactly round(N / R) encodes: only that rounding separates R from
        # the request (0.3 % here); the brief allows 5 %.
        assert mask.sum() == n_acquired(shape, acceleration)
        assert achieved == pytest.approx(acceleration, rel=0.05)
        # the calibration box at the centre (index n // 2) is fully sampled
        cy, cz = shape[0] // 2 - cal[0] // 2, shape[1] // 2 - cal[1] // 2
        assert mask[cy:cy + cal[0], cz:cz + cal[1]].all()
        same = backend.to_host(sampling_mask(shape, pattern, acceleration, 0.1, backend.rng(5, 1), backend))
        other = backend.to_host(sampling_mask(shape, pattern, acceleration, 0.1, backend.rng(6, 1), backend))
        np.testing.assert_array_equal(mask, same)
        assert (mask != other).sum() > 0.05 * mask.sum()
    print(f"{pattern}: acceleration 4 -> {shape[0] * shape[1] / n_acquired(shape, 4.0):.4f}")


def test_mask_patterns_have_their_character(numpy_backend):
    be = numpy_backend
    shape = (48, 64)
    masks = {p: np.asarray(sampling_mask(shape, p, 4.0, 0.0, be.rng(2), be)) for p in PATTERNS}
    radius = np.hypot(*np.meshgrid((np.arange(48) - 24) / 24, (np.arange(64) - 32) / 32, indexing="ij"))
    centre, edge = radius < 0.4, radius > 0.8
    # Variable density samples the centre more densely than the edge; random is uniform
    # (fractions of ~400-800 encodes: sampling noise ~0.03).
    vd = masks["variable_density"]
    assert vd[centre].mean() > 2 * vd[edge].mean()
    assert abs(masks["random"][centre].mean() - masks["random"][edge].mean()) < 0.08

    def mean_nearest(mask):
        pts = np.argwhere(mask)
        d = np.hypot(*(pts[:, None, :] - pts[None, :, :]).transpose(2, 0, 1))
        np.fill_diagonal(d, np.inf)
        return d.min(axis=1)

    # Poisson disc keeps sampled encodes apart: hardly any has a direct neighbour (only near the
    # centre, where the variable radius drops below one step), unlike ~70 % of random ones.
    nearest = {p: mean_nearest(m) for p, m in masks.items()}
    assert (nearest["poisson_disc"] <= 1.0).mean() < 0.05
    assert (nearest["random"] <= 1.0).mean() > 0.5
    assert nearest["poisson_disc"].mean() > 1.3 * nearest["random"].mean()


def test_mask_orders_and_errors(backend):
    mask = sampling_mask((9, 12), "random", 3.0, 0.2, backend.rng(1), backend)
    fft_order = to_fft_order(mask, backend)
    np.testing.assert_array_equal(backend.to_host(fft_order), np.fft.ifftshift(backend.to_host(mask)))
    np.testing.assert_array_equal(backend.to_host(to_centred(fft_order, backend)), backend.to_host(mask))
    assert backend.to_host(fft_order)[0, 0]  # k = 0 is in the calibration box
    with pytest.raises(ValueError, match="calibration box"):
        sampling_mask((10, 10), "random", 8.0, 0.5, backend.rng(1), backend)
    with pytest.raises(ValueError, match="pattern must be one of"):
        sampling_mask((10, 10), "spiral", 2.0, 0.1, backend.rng(1), backend)


def test_coil_maps_are_normalised_and_distinct(backend):
    maps = backend.to_host(coil_sensitivities(GRID, 4, backend, dtype=backend.xp.complex128))
    assert maps.shape == (4,) + GRID.shape
    # sum_c |S_c|^2 = 1 everywhere, to float64 rounding
    np.testing.assert_allclose(np.sum(np.abs(maps) ** 2, axis=0), 1.0, rtol=1e-12)
    # each coil dominates near itself: the coils see different parts of the body
    strongest = np.argmax(np.abs(maps), axis=0)
    assert set(np.unique(strongest)) == {0, 1, 2, 3}
    # smooth: neighbouring voxels differ by far less than the map itself
    assert np.max(np.abs(np.diff(maps, axis=1))) < 0.5


def test_encoding_operators_pass_the_complex_dot_test(backend):
    maps = coil_sensitivities(GRID, 3, backend, dtype=backend.xp.complex128)
    mask = to_fft_order(sampling_mask(GRID.shape[1:], "variable_density", 2.0, 0.2, backend.rng(3), backend), backend)
    batch = (2,) + GRID.shape
    ops = [
        FourierTransform(batch, backend),
        FourierTransform(batch, backend, axes=(-2, -1)),
        CoilSensitivities(maps, 2, backend),
        SamplingMask(mask, (2, 3) + GRID.shape, backend),
        encoding_operator(GRID.shape, backend, mask=mask, coil_maps=maps, n_batch=2),
        encoding_operator(GRID.shape, backend, mask=mask, coil_maps=maps, n_batch=2, hybrid=True),
        encoding_operator(GRID.shape, backend, mask=mask, n_batch=2),
        encoding_operator(GRID.shape, backend),
    ]
    for op in ops:
        # complex128: a matched adjoint scores ~1e-16; a wrong one O(1).
        assert check_adjoint(op, dtype=backend.xp.complex128) < 1e-12, op


def _object(backend, grid):
    """A piecewise-constant test object with a smooth phase: ellipsoids of several intensities."""
    xp = backend.xp
    x, y, z = (np.arange(n) - (n - 1) / 2 for n in grid.shape)
    X, Y, Z = np.meshgrid(x / grid.shape[0], y / grid.shape[1], z / grid.shape[2], indexing="ij")
    image = 1.0 * ((X / 0.42) ** 2 + (Y / 0.36) ** 2 + (Z / 0.45) ** 2 < 1)
    image += 0.8 * (((X - 0.1) / 0.12) ** 2 + (Y / 0.15) ** 2 + ((Z + 0.1) / 0.2) ** 2 < 1)
    image -= 0.5 * (((X + 0.15) / 0.1) ** 2 + ((Y - 0.1) / 0.1) ** 2 + ((Z - 0.15) / 0.15) ** 2 < 1)
    phase = np.exp(1j * np.pi * 0.3 * (X + Y))
    return backend.asarray(image * phase, dtype=xp.complex128), backend.asarray(image > 0, dtype=xp.bool)


def test_cg_sense_beats_zero_filled_on_undersampled_multicoil_data(backend):
    xp = backend.xp
    grid = ImageGrid((32, 32, 32), (1.0, 1.0, 1.0))
    image, support = _object(backend, grid)
    maps = coil_sensitivities(grid, 4, backend, dtype=xp.complex128)
    centred = sampling_mask((32, 32), "variable_density", 3.0, 0.08, backend.rng(7), backend)
    mask = to_fft_order(centred, backend)
    kspace = encoding_operator(grid.shape, backend, mask=mask, coil_maps=maps).apply(image[None, ...])
    truth = xp.abs(image)
    zf = zero_filled(kspace, backend)[0, ...]
    cg = xp.abs(cg_sense(kspace, backend, mask=mask, coil_maps=maps, iterations=30, regularization=1e-4)[0, ...])
    errors = {name: nrmse(est, truth, backend, mask=support) for name, est in (("zero-filled", zf), ("CG-SENSE", cg))}
    print(f"4 coils, 3x variable density, noiseless: NRMSE {errors}")
    # SENSE unfolds the aliasing the zero-filled RSS image keeps (0.136 -> 0.057 here). Four smooth
    # coils cannot fill the large unsampled periphery of a variable-density mask, so CG converges
    # slowly (0.050 after 100 iterations): require a factor 2.
    assert errors["CG-SENSE"] < errors["zero-filled"] / 2


def test_single_coil_cg_sense_is_scaled_zero_filling(backend):
    # One uniform coil: E^H E is the projection onto the sampled encodes, so CG-SENSE converges
    # in one step to the zero-filled complex image divided by 1 + lambda (no de-aliasing).
    image, _ = _object(backend, GRID)
    mask = to_fft_order(sampling_mask(GRID.shape[1:], "random", 2.0, 0.2, backend.rng(4), backend), backend)
    kspace = encoding_operator(GRID.shape, backend, mask=mask).apply(image[None, ...])
    lam = 0.05
    cg = cg_sense(kspace, backend, mask=mask, iterations=3, regularization=lam)
    zf = backend.fft.ifftn(kspace[:, 0, ...], axes=(-3, -2, -1), norm="ortho") / (1 + lam)
    np.testing.assert_allclose(backend.to_host(cg), backend.to_host(zf), rtol=0, atol=1e-12)  # complex128 rounding


def test_iron_estimate_is_nan_where_there_is_no_estimate(backend):
    xp = backend.xp
    # voxels: ordinary, masked, fit at the lower clip, at the upper clip, baseline void (lung-like
    # R2*_0 = 1000 1/s at TE_1 = 2 ms: R2*_0 TE_1 = 2), just below the void limit.
    fit = backend.asarray([91.4, 91.4, 0.0, R2STAR_RANGE_PER_S[1], 1100.0, 1050.0], dtype=xp.float64)
    baseline = backend.asarray([35.7, 35.7, 35.7, 35.7, 1000.0, 995.0], dtype=xp.float64)
    mask = backend.asarray([True, False, True, True, True, True], dtype=xp.bool)
    got = backend.to_host(iron_estimate_mM(fit, baseline, 55.7, backend, mask=mask, first_echo_ms=2.0))
    expected = np.array([(91.4 - 35.7) / 55.7, np.nan, np.nan, np.nan, np.nan, 55.0 / 55.7])
    np.testing.assert_allclose(got, expected, rtol=1e-14, equal_nan=True)  # float64 division only
    assert BASELINE_VOID_DECAY == 2.0


def test_fit_r2star_floor_aware_fit_is_exact_without_noise(backend):
    # With a noise floor the fit subtracts the RSS excess power (1 - 1/C) rms^2 from S^2: on a
    # noiseless RSS-like magnitude sqrt(S^2 + (1 - 1/C) rms^2) it recovers R2* exactly, while the
    # plain fit of that magnitude is biased low by the floor.
    xp = backend.xp
    tes = [2.0, 5.0, 8.0, 11.0, 14.0, 17.0, 20.0, 23.0]
    r2s = np.array([30.0, 120.0, 300.0])
    rms, channels = 0.01, 8
    signal = 1.0 * np.exp(-np.outer(np.array(tes) * 1e-3, r2s))
    floored = np.sqrt(signal**2 + (1 - 1 / channels) * rms**2)
    mag = backend.asarray(floored, dtype=xp.float64)
    aware = backend.to_host(fit_r2star(mag, tes, backend, noise_floor=rms, rss_channels=channels))
    plain = backend.to_host(fit_r2star(mag, tes, backend))
    # Echoes kept: predicted S > 3 rms = 0.03, i.e. TE < ln(33) / R2* (all for 30 and 120 1/s,
    # up to 11 ms for 300 1/s): exact to float64 rounding of log/exp.
    np.testing.assert_allclose(aware, r2s, rtol=1e-9)
    assert np.all(plain[1:] < r2s[1:] * (1 - 1e-3))  # 120 and 300 1/s: -0.13 % and -3 % (30 1/s: -0.02 %)


def test_fit_r2star_of_the_masked_voxels_alone_is_the_whole_grid_fit_bit_for_bit(backend):
    # The masked fit gathers the masked voxels and fits only them; every step is per voxel and
    # sums over echoes only, so each value must equal the whole-grid fit's, and the rest be 0.
    xp = backend.xp
    rng = np.random.default_rng(5)
    tes = [2.0, 5.0, 8.0, 11.0, 14.0, 17.0]
    shape = (7, 6, 5)
    r2s = rng.uniform(10.0, 400.0, shape)
    noisy = np.abs(np.exp(-np.multiply.outer(np.array(tes) * 1e-3, r2s)) + rng.normal(0.0, 0.02, (len(tes),) + shape))
    mag = backend.asarray(noisy.astype(np.float32), dtype=xp.float32)
    mask_host = rng.random(shape) < 0.4
    mask = backend.asarray(mask_host, dtype=xp.bool)
    floor = backend.asarray(rng.uniform(0.01, 0.03, shape), dtype=xp.float64)
    for kwargs in ({}, {"noise_floor": 0.02, "rss_channels": 4}, {"noise_floor": floor}):
        whole = backend.to_host(fit_r2star(mag, tes, backend, **kwargs))
        masked = backend.to_host(fit_r2star(mag, tes, backend, mask=mask, **kwargs))
        assert np.array_equal(masked[mask_host], whole[mask_host]), kwargs
        assert np.all(masked[~mask_host] == 0.0) and np.any(whole[~mask_host] != 0.0)


def test_noise_statistics_of_one_channel_are_rayleigh_and_keep_noise_out_of_the_mask(backend):
    # Noise alone through one coil and the zero-filled recon: each magnitude is Rayleigh with
    # mean sigma sqrt(pi/2), sd sigma sqrt(2 - pi/2) and RMS sigma sqrt(2).
    xp = backend.xp
    sigma, shape = 2.0, (12, 12, 12)
    zeros = xp.zeros((NOISE_REALISATIONS, 1) + shape, dtype=xp.complex128, device=backend.device)
    noise = noise_statistics(zero_filled(add_kspace_noise(zeros, sigma, backend.rng(3, 1), backend), backend), backend)
    mean, sd, rms = (backend.to_host(a) for a in (noise.mean, noise.sd, noise.rms))
    # 8 x 1728 samples: the grid averages have SEs of 0.3-0.5 %; 2 % leaves room for the edge
    # voxels' heavier weight. Local (216-sample) maps vary by ~4 % (mean) about them.
    assert mean.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.02)
    assert rms.mean() == pytest.approx(sigma * np.sqrt(2.0), rel=0.02)
    assert sd.mean() == pytest.approx(sigma * np.sqrt(2 - np.pi / 2), rel=0.03)
    assert np.std(mean) < 0.1 * mean.mean()
    # Another noise image is never detected as signal (Rayleigh tail at mean + 7 sd: ~4e-8 per
    # voxel); a voxel at 10 sigma is.
    other = zero_filled(add_kspace_noise(zeros[:1, ...], sigma, backend.rng(3, 2), backend), backend)[0, ...]
    spot = np.zeros(shape)
    spot[5, 0, 0] = 10.0 * sigma
    detected = backend.to_host(signal_mask(other + backend.asarray(spot, dtype=xp.float64), noise, backend))
    assert detected[5, 0, 0] and detected.sum() == 1
