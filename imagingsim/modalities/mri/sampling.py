"""Cartesian k-space sampling masks over the phase encodes (ky, kz) and coil sensitivity maps.

Conventions
-----------
- A mask is a ``(ny, nz)`` boolean array over the two phase-encode axes (the readout, x,
  is always fully sampled). Masks are built **centred**, k = 0 at index ``(ny // 2, nz // 2)``
  (``fftshift`` order); :func:`to_fft_order` moves one to the order of an unshifted FFT.
- ``acceleration = N_total / N_acquired`` with ``N_total = ny nz`` phase encodes. Every
  pattern acquires exactly ``round(N_total / R)`` of them for a requested ``R`` (so the
  achieved acceleration differs from the request only by that rounding), including a fully
  sampled calibration box at the centre of ``round(calibration_fraction x n)`` encodes per
  axis (at least 1 when the fraction is > 0).
- Patterns: ``random`` (uniform over the encodes outside the calibration box),
  ``variable_density`` (probability density ``(1 - r)^p`` with ``r`` the distance from the
  centre normalised to 1 at the corner of k-space and ``p`` = :data:`VD_POWER`), and
  ``poisson_disc`` (dart throwing in a random order: an encode is accepted when no accepted
  one lies within ``r0 (1 + POISSON_VD_SCALE r)`` grid steps; ``r0`` is bisected to the
  target count and the last accepted encodes are dropped to hit it exactly, which keeps the
  minimum-distance property). Random and variable-density masks draw ``N`` weighted keys
  without replacement (Efraimidis and Spirakis, Inf Process Lett 2006;97:181) on the device.
- All randomness comes from the generator passed in: the same seed gives the same mask.
"""

from __future__ import annotations

import math

from imagingsim.backend import Backend
from imagingsim.grid import ImageGrid

#: Exponent of the polynomial variable density ``(1 - r)^p``.
VD_POWER = 2.0
#: Growth of the Poisson-disc radius from the centre (r = 0) to the corner (r = 1) of k-space.
POISSON_VD_SCALE = 1.0
PATTERNS = ("random", "variable_density", "poisson_disc")
_BISECTIONS = 16


def calibration_size(shape: tuple[int, int], fraction: float) -> tuple[int, int]:
    """Encodes of the fully sampled calibration box along (ky, kz)."""
    if fraction <= 0:
        return (0, 0)
    return tuple(min(n, max(1, round(fraction * n))) for n in shape)


def _calibration_ranges(shape, fraction):
    return tuple(range(n // 2 - c // 2, n // 2 - c // 2 + c) for n, c in zip(shape, calibration_size(shape, fraction)))


def n_acquired(shape: tuple[int, int], acceleration: float) -> int:
    """Phase encodes acquired for a requested acceleration: ``round(ny nz / R)``, at least 1."""
    return max(1, round(shape[0] * shape[1] / float(acceleration)))


def sampling_mask(shape: tuple[int, int], pattern: str, acceleration: float, calibration_fraction: float,
                  rng, backend: Backend):
    """A centred ``(ny, nz)`` boolean sampling mask (see the module docstring).

    Parameters
    ----------
    shape : (int, int)
        Phase encodes along ky and kz.
    pattern : {"random", "variable_density", "poisson_disc"}
    acceleration : float
        Requested ``N_total / N_acquired`` (>= 1).
    calibration_fraction : float
        Fully sampled centre, fraction of each axis.
    rng : Generator
        ``backend.rng(...)``; the mask depends only on it (and the arguments).
    backend : Backend

    Returns
    -------
    device array, bool, ``shape``, centred
        With exactly :func:`n_acquired` true entries.

    Raises
    ------
    ValueError
        Unknown pattern, or a calibration box larger than the encodes to acquire.
    """
    ny, nz = (int(n) for n in shape)
    if pattern not in PATTERNS:
        raise ValueError(f"undersampling pattern must be one of {', '.join(PATTERNS)}; got {pattern!r}")
    if not acceleration >= 1.0:
        raise ValueError(f"acceleration must be >= 1, got {acceleration}")
    target = n_acquired((ny, nz), acceleration)
    cy, cz = _calibration_ranges((ny, nz), calibration_fraction)
    if len(cy) * len(cz) > target:
        raise ValueError(
            f"calibration box {len(cy)}x{len(cz)} holds more than the {target} phase encodes of acceleration "
            f"{acceleration}: lower calibration_fraction or acceleration"
        )
    if pattern == "poisson_disc":
        return _poisson_disc((ny, nz), target, (cy, cz), rng, backend)
    xp = backend.xp
    radius = _radius(backend, ny, nz)
    weight = xp.ones_like(radius) if pattern == "random" else xp.clip(1.0 - radius, 0.0, 1.0) ** VD_POWER
    weight = xp.clip(weight, 1e-12, None)  # every encode stays possible (keys finite)
    u = rng.uniform((ny, nz), dtype=xp.float64)
    keys = xp.log(1.0 - u) / weight  # <= 0; the N largest form a weighted sample without replacement
    keys = xp.where(_box(backend, (ny, nz), cy, cz), 1.0, keys)  # calibration first
    threshold = xp.sort(xp.reshape(keys, (-1,)))[ny * nz - target]
    return keys >= threshold


def _radius(backend: Backend, ny: int, nz: int):
    """Distance from the k-space centre, 1 at the corner, ``(ny, nz)`` float64."""
    xp = backend.xp
    ky = (xp.arange(ny, dtype=xp.float64, device=backend.device) - ny // 2) / max(ny / 2, 0.5)
    kz = (xp.arange(nz, dtype=xp.float64, device=backend.device) - nz // 2) / max(nz / 2, 0.5)
    return xp.sqrt(ky[:, None] ** 2 + kz[None, :] ** 2) / math.sqrt(2.0)


def _box(backend: Backend, shape, cy: range, cz: range):
    xp = backend.xp
    iy = xp.arange(shape[0], device=backend.device)[:, None]
    iz = xp.arange(shape[1], device=backend.device)[None, :]
    inside_y = (iy >= cy.start) & (iy < cy.stop) if len(cy) else iy < 0
    inside_z = (iz >= cz.start) & (iz < cz.stop) if len(cz) else iz < 0
    return inside_y & inside_z


def _poisson_disc(shape, target: int, calibration, rng, backend: Backend):
    """Variable-radius Poisson-disc mask by dart throwing (host Python on a small 2-D grid)."""
    ny, nz = shape
    n = ny * nz
    # One explicit download of the random visiting order; the rest is plain Python.
    u = backend.to_host(rng.uniform((n,), dtype=backend.xp.float64)).tolist()
    order = sorted(range(n), key=u.__getitem__)
    calib = [iy * nz + iz for iy in calibration[0] for iz in calibration[1]]
    growth = [
        1.0 + POISSON_VD_SCALE * math.hypot((iy - ny // 2) / max(ny / 2, 0.5), (iz - nz // 2) / max(nz / 2, 0.5))
        / math.sqrt(2.0)
        for iy in range(ny) for iz in range(nz)
    ]
    hi = 2.0 * math.sqrt(n / target) + 1.0  # well above the spacing of `target` points
    reach = math.ceil(hi * (1.0 + POISSON_VD_SCALE))
    offsets = sorted(
        ((dy * dy + dz * dz, dy, dz) for dy in range(-reach, reach + 1) for dz in range(-reach, reach + 1)
         if (dy, dz) != (0, 0)),
    )

    def throw(r0: float) -> tuple[bytearray, list[int]]:
        taken = bytearray(n)
        for i in calib:
            taken[i] = 1
        accepted = []
        for i in order:
            if taken[i]:
                continue
            r2 = (r0 * growth[i]) ** 2
            iy, iz = divmod(i, nz)
            free = True
            for d2, dy, dz in offsets:
                if d2 >= r2:
                    break
                jy, jz = iy + dy, iz + dz
                if 0 <= jy < ny and 0 <= jz < nz and taken[jy * nz + jz]:
                    free = False
                    break
            if free:
                taken[i] = 1
                accepted.append(i)
        return taken, accepted

    lo = 0.5  # below one grid step nothing is rejected: every encode is taken
    best = throw(lo)
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        trial = throw(mid)
        count = len(calib) + len(trial[1])
        if count >= target:
            lo, best = mid, trial
            if count == target:
                break
        else:
            hi = mid
    taken, accepted = best
    for i in accepted[len(accepted) - (len(calib) + len(accepted) - target):]:
        taken[i] = 0  # the last darts thrown: dropping them keeps every distance >= r
    rows = [[bool(taken[iy * nz + iz]) for iz in range(nz)] for iy in range(ny)]
    return backend.asarray(rows, dtype=backend.xp.bool)


def to_fft_order(mask, backend: Backend):
    """A centred ``(ny, nz)`` mask in the order of an unshifted FFT (``ifftshift``)."""
    xp = backend.xp
    shifted = backend.fft.ifftshift(xp.astype(mask, xp.float32), axes=(0, 1))
    return shifted > 0.5


def to_centred(mask, backend: Backend):
    """The inverse of :func:`to_fft_order` (``fftshift``)."""
    xp = backend.xp
    return backend.fft.fftshift(xp.astype(mask, xp.float32), axes=(0, 1)) > 0.5


def coil_sensitivities(grid: ImageGrid, n_coils: int, backend: Backend, *, dtype=None):
    """Smooth complex receive sensitivities of ``n_coils`` loops around the body.

    Coil ``c`` is a loop on a helix around the z axis of the grid: azimuth ``2 pi c / C``,
    on a cylinder just outside the field of view (radius 1.05 x half its x-y diagonal) and
    at ``z = (c / (C - 1) - 1/2) x FOV_z / 2`` about the centre, so that the coils differ
    along z as well as around the body (both phase-encode axes can be accelerated). Its
    sensitivity is the on-axis field of a loop of radius ``a`` (0.3 x the larger x-y FOV),
    ``a^3 / (a^2 + d^2)^(3/2)`` at distance ``d`` (a Biot-Savart-like falloff), with the
    phase of the azimuth around the loop's position, ``atan2(y - y_c, x - x_c)``. The maps
    are then normalised so that ``sum_c |S_c|^2 = 1`` in every voxel (the body included),
    so the coil-combined image is the object itself.

    Parameters
    ----------
    grid : ImageGrid
    n_coils : int
        >= 1.
    backend : Backend
    dtype : complex dtype, optional
        complex64 unless given.

    Returns
    -------
    device array, ``(n_coils, nx, ny, nz)``
    """
    if n_coils < 1:
        raise ValueError(f"n_coils must be >= 1, got {n_coils}")
    xp = backend.xp
    dtype = dtype or xp.complex64
    x, y, z = grid.axes_mm(backend)
    fov = [n * v for n, v in zip(grid.shape, grid.voxel_size_mm)]
    centre = grid.world_mm(tuple(0.5 * (n - 1) for n in grid.shape))
    ring = 1.05 * 0.5 * math.hypot(fov[0], fov[1])
    loop = 0.3 * max(fov[0], fov[1])
    magnitudes, phases = [], []
    for c in range(n_coils):
        azimuth = 2.0 * math.pi * c / n_coils
        zc = centre[2] + ((c / (n_coils - 1) - 0.5) * 0.5 * fov[2] if n_coils > 1 else 0.0)
        dx = x - (centre[0] + ring * math.cos(azimuth))
        dy = y - (centre[1] + ring * math.sin(azimuth))
        dz = z - zc
        magnitudes.append(loop**3 / (loop**2 + dx * dx + dy * dy + dz * dz) ** 1.5)
        phases.append(xp.atan2(dy + 0.0 * dx, dx + 0.0 * dy))  # (nx, ny, 1): x-y azimuth about the coil
    norm = xp.sqrt(sum(m * m for m in magnitudes))
    maps = [
        xp.astype(m / norm * xp.cos(p), dtype) + 1j * xp.astype(m / norm * xp.sin(p), dtype)
        for m, p in zip(magnitudes, phases)
    ]
    return xp.stack(maps, axis=0)

__all__ = [
    "PATTERNS",
    "POISSON_VD_SCALE",
    "VD_POWER",
    "calibration_size",
    "coil_sensitivities",
    "n_acquired",
    "sampling_mask",
    "to_centred",
    "to_fft_order",
]
