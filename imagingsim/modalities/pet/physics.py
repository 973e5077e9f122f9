"""PET physics: positron-range kernels.

Everything here is either host-side scalar arithmetic or builds a small device kernel once
per acquisition (positron range); nothing draws. Radionuclide data are in
:mod:`imagingsim.data.radionuclides`, decay over a frame in :mod:`imagingsim.physics.decay`.

References
----------
Positron ranges in water: J Nucl Med 2022;63:649 (Table 3), via ``data/radionuclides.toml``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from imagingsim.backend import Backend


def truncated_exponential_mean_mm(scale_mm: float, max_mm: float) -> float:
    """Mean of ``exp(-r / scale)`` restricted to ``[0, max]``: ``scale - max / (exp(max / scale) - 1)``."""
    ratio = max_mm / scale_mm
    return scale_mm - (max_mm / math.expm1(ratio) if ratio < 700.0 else 0.0)


def range_scale_mm(mean_mm: float, max_mm: float) -> float:
    """Scale of the exponential range distribution, truncated at ``max_mm``, with mean ``mean_mm``.

    A plain ``exp(-r / mean)`` cut at the maximum range would lose its tail and have a
    smaller mean (7 % for 18F, 18 % for 68Ga); the scale is raised until the truncated
    distribution has the tabulated mean (bisection; the truncated mean grows monotonically
    from 0 to ``max / 2`` with the scale).
    """
    if not 0.0 < mean_mm < 0.5 * max_mm:
        raise ValueError(
            f"positron range: need 0 < mean ({mean_mm} mm) < max / 2 ({0.5 * max_mm} mm) for a truncated exponential"
        )
    lo, hi = 1e-6 * max_mm, 1e6 * max_mm
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if truncated_exponential_mean_mm(mid, max_mm) < mean_mm:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1.0 + 1e-13:
            break
    return math.sqrt(lo * hi)


def positron_range_kernel(
    mean_mm: float,
    max_mm: float,
    voxel_size_mm: Sequence[float],
    backend: Backend,
    *,
    samples_per_axis: int | None = None,
    dtype=None,
):
    """Annihilation density around a point source in water, integrated over each voxel.

    The 3-D distance ``r`` from emission to annihilation is exponential, truncated at the
    maximum range, with the tabulated mean (:func:`range_scale_mm`); the density in space
    is therefore ``p(r) = exp(-r / s) / (4 pi s r^2 (1 - exp(-R / s)))`` for ``r <= R``.
    Each voxel's weight is ``p`` integrated over the voxel by the midpoint rule on
    ``samples_per_axis^3`` sub-voxels, except inside the sphere of radius half the smallest
    voxel edge around the source, where the ``1 / r^2`` singularity is integrated
    analytically (mass ``(1 - exp(-rho / s)) / (1 - exp(-R / s))``) and put in the central
    voxel. The kernel is normalised to sum 1.

    The medium is water: in lung the true range is about 3-4 times longer and in bone
    shorter; this kernel is not density-scaled.

    Parameters
    ----------
    mean_mm, max_mm : float
        Mean and maximum 3-D positron range, mm. ``mean_mm == 0`` gives the identity ``[[[1]]]``.
    voxel_size_mm : sequence of 3 float
        Voxel edges along x, y, z, mm.
    backend : Backend
    samples_per_axis : int, optional
        Sub-voxel samples per axis; default as many as keep the sampled box within 128
        points per axis (at most 9).
    dtype : array dtype, optional
        float64 unless given.

    Returns
    -------
    device array, shape ``(2 hx + 1, 2 hy + 1, 2 hz + 1)``
        Centred kernel, ``h = ceil(R / voxel + 1/2) - 1`` voxels on each side (every voxel
        that the range sphere touches).
    """
    xp = backend.xp
    dtype = dtype or xp.float64
    sizes = tuple(float(v) for v in voxel_size_mm)
    rho = 0.5 * min(sizes)
    if mean_mm <= 0.0 or max_mm <= rho:
        return xp.ones((1, 1, 1), dtype=dtype, device=backend.device)
    scale = range_scale_mm(mean_mm, max_mm)
    halves = tuple(max(0, math.ceil(max_mm / v + 0.5) - 1) for v in sizes)
    counts = tuple(2 * h + 1 for h in halves)
    n_sub = samples_per_axis or max(1, min(9, 128 // max(counts)))
    coords = []
    for axis, (n, v) in enumerate(zip(counts, sizes)):
        line = ((xp.arange(n * n_sub, dtype=xp.float64, device=backend.device) + 0.5) / n_sub - 0.5 * n) * v
        shape = [1, 1, 1]
        shape[axis] = n * n_sub
        coords.append(xp.reshape(line, tuple(shape)))
    r = xp.sqrt(coords[0] ** 2 + coords[1] ** 2 + coords[2] ** 2)
    norm = 4.0 * math.pi * scale * -math.expm1(-max_mm / scale)
    sub_volume = sizes[0] * sizes[1] * sizes[2] / n_sub**3
    inside = (r > rho) & (r <= max_mm)
    safe_r = xp.where(inside, r, 1.0)
    density = xp.where(inside, xp.exp(-safe_r / scale) / (norm * safe_r * safe_r), 0.0) * sub_volume
    nx, ny, nz = counts
    weights = xp.sum(xp.reshape(density, (nx, n_sub, ny, n_sub, nz, n_sub)), axis=(1, 3, 5))
    central_mass = -math.expm1(-rho / scale) / -math.expm1(-max_mm / scale)
    centre = None
    for axis, (n, h) in enumerate(zip(counts, halves)):
        shape = [1, 1, 1]
        shape[axis] = n
        hit = xp.reshape(xp.arange(n, dtype=xp.int64, device=backend.device) == h, tuple(shape))
        centre = hit if centre is None else centre & hit
    weights = xp.where(centre, weights + central_mass, weights)
    return xp.astype(weights / xp.sum(weights), dtype)


__all__ = [
    "positron_range_kernel",
    "range_scale_mm",
    "truncated_exponential_mean_mm",
]
