"""CT reconstruction from counts: log, optional water pre-correction (beam-hardening linearisation) and FBP to mu; rerunnable on stored counts."""

from __future__ import annotations

import math

from imagingsim.backend import Backend
from imagingsim.modalities.ct.result import CTSystemParams, WaterCalibration
from imagingsim.projectors import ParallelBeamGeometry, PixelBackprojector
from imagingsim.recon import fbp


def line_integrals_from_counts(counts, i0_photons: float, backend: Backend):
    """``ln(I0 / max(counts, 1))``: the measured line integral (clipped: see the module notes)."""
    xp = backend.xp
    return xp.astype(math.log(i0_photons) - xp.log(xp.clip(counts, 1.0, None)), xp.float32)


def water_precorrect(line_integrals, calibration: WaterCalibration, backend: Backend):
    """Linearise measured line integrals for water: ``p -> mu_water(E_ref) L(p)``.

    ``L(p)`` inverts the table ``p_poly(L)`` by linear interpolation; outside the table
    (negative ``p`` from noise) the end segments are extended, so noise stays zero-mean
    around 0.

    Parameters
    ----------
    line_integrals : device array, any shape, float32
    calibration : WaterCalibration
    backend : Backend

    Returns
    -------
    device array, shape and dtype of ``line_integrals``
    """
    xp, dev = backend.xp, backend.device
    shape = line_integrals.shape
    p = xp.reshape(line_integrals, (-1,))
    table_p = xp.asarray(calibration.water_line_integrals, dtype=p.dtype, device=dev)
    table_l = xp.asarray(calibration.water_lengths_mm, dtype=p.dtype, device=dev)
    n = table_p.shape[0]
    upper = xp.clip(xp.searchsorted(table_p, p, side="right"), 1, n - 1)
    lower = upper - 1
    p0, p1 = xp.take(table_p, lower), xp.take(table_p, upper)
    l0, l1 = xp.take(table_l, lower), xp.take(table_l, upper)
    length = l0 + (p - p0) * (l1 - l0) / (p1 - p0)
    return xp.reshape(length * calibration.mu_water_per_mm, shape)


def reconstruct_ct(counts, i0_photons: float, calibration: WaterCalibration, geometry: ParallelBeamGeometry,
                   system: CTSystemParams, backend: Backend):
    """Log, optional water pre-correction and FBP of counts ``(n_views, n_bins, nz, T)`` -> mu ``(nx, ny, nz, T)``, 1/mm.

    All scans go through one FBP (scans stacked as extra slices).
    """
    xp = backend.xp
    n_views, n_bins, nz, t = counts.shape

    def linearised(k: int):
        # Scans are independent: the backend may take the logs of two at once.
        lines = line_integrals_from_counts(counts[..., k], i0_photons, backend)
        return water_precorrect(lines, calibration, backend) if system.water_precorrection else lines

    lines = xp.stack(backend.map_ordered(linearised, range(t)), axis=-1)
    flat = xp.reshape(lines, (n_views, n_bins, nz * t))
    image = fbp(flat, PixelBackprojector(geometry, nz * t, backend), filter_name=system.fbp_filter,
                cutoff=system.fbp_cutoff)
    nx, ny = geometry.image_shape
    return xp.astype(xp.reshape(image, (nx, ny, nz, t)), xp.float32)


def hu_from_mu(mu_per_mm, calibration: WaterCalibration, backend: Backend):
    """CT numbers of a reconstructed mu map: ``1000 (mu - mu_w) / mu_w`` with the calibration's water, HU (float32)."""
    xp = backend.xp
    mu_w = calibration.mu_water_per_mm
    return xp.astype((mu_per_mm - mu_w) * (1000.0 / mu_w), xp.float32)
