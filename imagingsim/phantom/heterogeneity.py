"""Seeded Gaussian random fields that modulate the property maps.

A field is white noise filtered in Fourier space so that its covariance is Gaussian,
``C(r) = exp(-r^2 / (2 l^2))``. The log-normal multiplier built from it has mean 1, so it
changes the texture of a map without changing its expected value.
"""

from __future__ import annotations

import math

from imagingsim.backend import backend_of
from imagingsim.grid import ImageGrid

#: Pad each axis by this many correlation lengths before the (periodic) FFT, so opposite
#: faces of the grid are decorrelated: C(3 l) = exp(-4.5) ~ 0.01.
PAD_CORRELATION_LENGTHS = 3.0


def _fast_length(n: int) -> int:
    """The smallest 2-3-5-smooth integer >= ``n`` (fast FFT length for pocketfft and cuFFT)."""
    m = n
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def _padded_length(n: int, voxel_mm: float, correlation_length_mm: float) -> int:
    # Padding is capped at half the axis: for l comparable to the field of view a weak
    # correlation between opposite faces remains, which a smooth field hardly shows.
    pad = min(math.ceil(PAD_CORRELATION_LENGTHS * correlation_length_mm / voxel_mm), n // 2)
    return _fast_length(n + pad)


def gaussian_random_field(backend, grid: ImageGrid, correlation_length_mm: float, rng):
    """Zero-mean, unit-variance Gaussian random field with a Gaussian covariance.

    White noise on a padded grid is multiplied in Fourier space by
    ``A(k) = exp(-|k|^2 l^2 / 4)`` (the square root of the covariance's spectrum,
    ``k`` in rad/mm from each axis's own voxel size) and cropped back to ``grid.shape``.
    The covariance of the result is ``exp(-r^2 / (2 l^2))`` with ``r`` in mm, so anisotropic
    voxels give an isotropic field in world space.

    Parameters
    ----------
    backend : Backend
        Array backend; the field lives on ``backend.device``.
    grid : ImageGrid
        Voxel grid (shape and voxel size in mm).
    correlation_length_mm : float
        Correlation length ``l`` in mm (> 0).
    rng : Generator
        From ``backend.rng(...)``; the only source of randomness.

    Returns
    -------
    device array, float64, ``grid.shape``
        The field (dimensionless).

    Notes
    -----
    The field is divided by the exact theoretical standard deviation of the discrete
    periodic filter, ``sqrt(mean_k A(k)^2)`` (Parseval), not by its sample standard
    deviation. Each voxel then has variance exactly 1 in expectation whatever the grid or
    ``l``; sample normalisation would instead force every realisation to sd 1 and couple
    the amplitude to the field of view (a field with ``l`` near the FOV is nearly constant
    and must keep the N(0, 1) spread of that constant). The separable filter makes the
    normaliser a product of 1-D means, computed on the device without a host transfer.
    """
    if not correlation_length_mm > 0:
        raise ValueError(f"correlation_length_mm must be > 0, got {correlation_length_mm}")
    xp = backend.xp
    lsq = correlation_length_mm**2
    padded = tuple(
        _padded_length(n, v, correlation_length_mm) for n, v in zip(grid.shape, grid.voxel_size_mm)
    )
    amplitude = None
    variance = None
    for axis, (m, v) in enumerate(zip(padded, grid.voxel_size_mm)):
        full = _axis_amplitude(xp, _frequencies_per_mm(backend, m, v, half=False), lsq)
        # rfftn keeps only the non-negative frequencies of the last axis.
        half = full if axis < 2 else _axis_amplitude(xp, _frequencies_per_mm(backend, m, v, half=True), lsq)
        shape = [1, 1, 1]
        shape[axis] = half.shape[0]
        factor = xp.reshape(half, tuple(shape))
        amplitude = factor if amplitude is None else amplitude * factor
        axis_variance = xp.mean(full * full)
        variance = axis_variance if variance is None else variance * axis_variance
    noise = rng.standard_normal(padded)
    axes = (0, 1, 2)
    field = xp.fft.irfftn(xp.fft.rfftn(noise, axes=axes) * amplitude, s=padded, axes=axes)
    field = field[: grid.shape[0], : grid.shape[1], : grid.shape[2]]
    return field / xp.sqrt(variance)


def _frequencies_per_mm(backend, n: int, spacing_mm: float, *, half: bool):
    """``fftfreq`` (or ``rfftfreq`` when ``half``) built from ``arange`` on the device.

    array_api_compat's ``fftfreq(..., device=...)`` accepts only the CPU device, so it cannot
    serve the CuPy backend; this is the same formula, valid on every backend.
    """
    xp = backend.xp
    count = n // 2 + 1 if half else n
    index = xp.arange(count, dtype=xp.float64, device=backend.device)
    if not half:
        index = xp.where(index < (n + 1) // 2, index, index - n)  # 0..ceil(n/2)-1, then negatives
    return index * (1.0 / (n * spacing_mm))  # as numpy computes it, to the last bit


def _axis_amplitude(xp, frequency_per_mm, lsq: float):
    """``exp(-k^2 l^2 / 4)`` for cyclic frequencies (1/mm) of one axis, k = 2 pi f."""
    k = (2.0 * math.pi) * frequency_per_mm
    return xp.exp(-0.25 * lsq * (k * k))


def lognormal_multiplier(field, relative_sd: float):
    """Log-normal multiplier ``exp(s g - s^2 / 2)`` with mean 1.

    Parameters
    ----------
    field : device array
        Standard normal field ``g`` (e.g. from :func:`gaussian_random_field`).
    relative_sd : float
        ``s``, the standard deviation of the multiplier's logarithm (dimensionless, >= 0).
        The multiplier's own coefficient of variation is ``sqrt(exp(s^2) - 1)`` (~ s).

    Returns
    -------
    device array
        Same shape, dtype and device as ``field``; exactly 1 where ``s`` is 0.
    """
    if relative_sd < 0:
        raise ValueError(f"relative_sd must be >= 0, got {relative_sd}")
    xp = backend_of(field).xp
    s = float(relative_sd)
    return xp.exp(s * field - 0.5 * s * s)


__all__ = ["gaussian_random_field", "lognormal_multiplier"]
