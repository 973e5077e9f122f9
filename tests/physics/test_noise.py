"""Noise draws: Poisson statistics, zeros, validation and reproducibility per key."""

from __future__ import annotations

import math

import numpy as np
import pytest

from imagingsim.physics.noise import check_nonnegative, gaussian_noise, poisson_counts


def test_poisson_mean_equals_variance(backend):
    xp = backend.xp
    n, lam = 200_000, 7.5
    counts = backend.to_host(poisson_counts(xp.full((n,), lam, dtype=xp.float64, device=backend.device), backend.rng(1, 2)))
    # 5 sigma of each estimator: sd(mean) = sqrt(lam / n); sd(variance) ~ sqrt((2 lam^2 + lam) / n).
    assert abs(counts.mean() - lam) < 5 * math.sqrt(lam / n)
    assert abs(counts.var(ddof=1) - lam) < 5 * math.sqrt((2 * lam**2 + lam) / n)


def test_zero_expected_gives_exactly_zero(backend):
    xp = backend.xp
    expected = xp.asarray([0.0, 0.0, 3.0, 0.0], dtype=xp.float32, device=backend.device)
    counts = backend.to_host(poisson_counts(expected, backend.rng(4)))
    assert counts[[0, 1, 3]].tolist() == [0.0, 0.0, 0.0]
    assert counts.dtype == np.float64 and counts[2] == round(counts[2])


def test_same_key_same_draws_other_key_other_draws(backend):
    xp = backend.xp
    expected = xp.full((1000,), 20.0, dtype=xp.float64, device=backend.device)
    a = backend.to_host(poisson_counts(expected, backend.rng(9, 0x9E7, 0)))
    b = backend.to_host(poisson_counts(expected, backend.rng(9, 0x9E7, 0)))
    c = backend.to_host(poisson_counts(expected, backend.rng(9, 0x9E7, 1)))
    np.testing.assert_array_equal(a, b)
    assert np.any(a != c)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_invalid_expected_counts_raise_one_line(backend, bad):
    xp = backend.xp
    expected = xp.asarray([1.0, bad, 2.0], dtype=xp.float64, device=backend.device)
    with pytest.raises(ValueError, match=r"finite and >= 0; 1 of 3 entries") as info:
        poisson_counts(expected, backend.rng(0))
    assert "\n" not in str(info.value)


def test_check_nonnegative_accepts_zeros_and_empty(backend):
    xp = backend.xp
    check_nonnegative(xp.zeros((3, 2), dtype=xp.float32, device=backend.device))
    check_nonnegative(xp.zeros((0,), dtype=xp.float32, device=backend.device))


def test_gaussian_noise_has_the_requested_spread(backend):
    xp = backend.xp
    n = 100_000
    mean = xp.full((n,), 3.0, dtype=xp.float32, device=backend.device)
    noisy = backend.to_host(gaussian_noise(mean, 0.5, backend.rng(2)))
    assert noisy.dtype == np.float32
    # 5 sigma: sd(mean) = 0.5 / sqrt(n), sd(sd) ~ 0.5 / sqrt(2 n).
    assert abs(noisy.mean() - 3.0) < 5 * 0.5 / math.sqrt(n)
    assert abs(noisy.std() - 0.5) < 5 * 0.5 / math.sqrt(2 * n)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_noise(mean, -1.0, backend.rng(2))
