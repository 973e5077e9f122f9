"""Filtered backprojection for parallel-beam sinograms: the ramp filter and the FBP sum.

References
----------
A. C. Kak and M. Slaney, *Principles of Computerized Tomographic Imaging*, IEEE Press
(1988), ch. 3.3 (eqs. 61-65: the band-limited spatial-domain ramp and why sampling it in
space, rather than sampling ``|f|`` in frequency, keeps the DC term right).
"""

from __future__ import annotations

import itertools
import math

from imagingsim.backend import Backend

FILTERS = ("ramp", "shepp-logan", "hann")

#: Tolerance on the view spacing, degrees: angles come from ``k * 180 / n`` in float64.
_ANGLE_TOL_DEG = 1e-6


#: Largest padded spectrum :func:`ramp_filter` makes at once, complex elements (2**22: 32 MiB
#: in complex64); more slices are filtered in groups.
MAX_FILTER_ELEMENTS = 2**22


def ramp_filter(sinogram, bin_size_mm: float, backend: Backend, *, filter_name: str = "ramp", cutoff: float = 1.0):
    """Filter every view of a sinogram along its radial bins with an (apodised) ramp.

    The kernel is the band-limited ramp sampled in space (Kak & Slaney):
    ``h[0] = 1 / (4 d^2)``, ``h[n] = -1 / (pi^2 n^2 d^2)`` for odd ``n`` and 0 for even
    ``n``, with ``d`` the bin size. Its discrete transform is ``|nu|`` (cycles/mm) up to
    Nyquist with the right (near zero) DC gain; sampling ``|nu|`` directly would zero the DC
    bin and leave a cupping offset. The convolution is done by FFT with zero padding to a
    power of two of at least ``2 * n_bins``, so it is linear (no wrap-around).

    Parameters
    ----------
    sinogram : device array, shape (n_views, n_bins, nz)
        Line integrals (mm x image units). Real floating dtypes are kept; others are
        filtered in float64.
    bin_size_mm : float
        Radial bin width ``d``, mm.
    backend : Backend
        Backend of ``sinogram``.
    filter_name : {"ramp", "shepp-logan", "hann"}
        Window multiplying the ramp: none, ``sinc(f / (2 f_c))`` or
        ``0.5 + 0.5 cos(pi f / f_c)``, with ``f_c`` the cutoff frequency.
    cutoff : float
        Cutoff ``f_c`` as a fraction of the Nyquist frequency ``1 / (2 d)``, in (0, 1];
        the response is zero above it.

    Returns
    -------
    device array, shape (n_views, n_bins, nz)
        The filtered sinogram in image units (input units / mm), dtype of the input.
    """
    xp = backend.xp
    if sinogram.ndim != 3:
        raise ValueError(f"ramp_filter: sinogram must be (n_views, n_bins, nz), got shape {tuple(sinogram.shape)}")
    if filter_name not in FILTERS:
        raise ValueError(f"ramp_filter: filter_name must be one of {', '.join(FILTERS)}; got {filter_name!r}")
    if not 0.0 < cutoff <= 1.0:
        raise ValueError(f"ramp_filter: cutoff must be in (0, 1] (fraction of Nyquist), got {cutoff}")
    if not bin_size_mm > 0:
        raise ValueError(f"ramp_filter: bin_size_mm must be > 0, got {bin_size_mm}")
    if not xp.isdtype(sinogram.dtype, "real floating"):
        sinogram = xp.astype(sinogram, xp.float64)
    n_bins = int(sinogram.shape[1])
    n_pad = max(64, 1 << (2 * n_bins - 1).bit_length())
    response = _frequency_response(n_pad, float(bin_size_mm), backend, filter_name, float(cutoff))
    response = xp.astype(response, sinogram.dtype)[None, :, None]

    def filtered(part):
        spectrum = backend.fft.rfft(part, n=n_pad, axis=1) * response
        return xp.astype(backend.fft.irfft(spectrum, n=n_pad, axis=1)[:, :n_bins, :], sinogram.dtype, copy=False)

    # Slices in groups: the padded spectra of a whole study (every slice of every frame) are
    # several times the sinogram. Each bin's column is transformed alone, so grouping does
    # not change a bit.
    nz = int(sinogram.shape[2])
    group = max(1, MAX_FILTER_ELEMENTS // (int(sinogram.shape[0]) * (n_pad // 2 + 1)))
    if nz <= group:
        return filtered(sinogram)
    return xp.concat([filtered(sinogram[:, :, lo:min(lo + group, nz)]) for lo in range(0, nz, group)], axis=2)


def _frequency_response(n_pad: int, bin_size_mm: float, backend: Backend, filter_name: str, cutoff: float):
    """Real response on the ``n_pad // 2 + 1`` rfft frequencies, 1/mm, float64."""
    xp, dev = backend.xp, backend.device
    index = xp.arange(n_pad, dtype=xp.int64, device=dev)
    lag = xp.where(index > n_pad // 2, index - n_pad, index)  # signed lag in bins, circular order
    lag_f = xp.astype(lag, xp.float64)
    odd = xp.remainder(lag, 2) != 0
    safe = xp.where(lag == 0, 1.0, lag_f)
    d2 = bin_size_mm * bin_size_mm
    kernel = xp.where(lag == 0, 1.0 / (4.0 * d2), xp.where(odd, -1.0 / (math.pi**2 * safe * safe * d2), 0.0))
    # The discrete convolution sum is an integral over s: it carries one factor of d.
    response = xp.real(backend.fft.rfft(kernel)) * bin_size_mm
    # Frequency over the cutoff frequency (f_c = cutoff * Nyquist = cutoff / 2 cycles per bin).
    ratio = xp.arange(n_pad // 2 + 1, dtype=xp.float64, device=dev) / n_pad / (0.5 * cutoff)
    if filter_name == "shepp-logan":
        omega = 0.5 * math.pi * ratio
        window = xp.where(omega > 0, xp.sin(omega) / xp.where(omega > 0, omega, 1.0), 1.0)
    elif filter_name == "hann":
        window = 0.5 + 0.5 * xp.cos(math.pi * ratio)
    else:
        window = xp.ones_like(ratio)
    return xp.where(ratio <= 1.0 + 1e-12, response * window, 0.0)


def fbp(sinogram, backprojector, *, filter_name: str = "ramp", cutoff: float = 1.0):
    """Filtered backprojection of a parallel-beam sinogram of line integrals.

    ``f(x, y) = pi / n_views * sum_k q_k(x cos(theta_k) + y sin(theta_k))`` with ``q_k`` the
    ramp-filtered view :func:`ramp_filter`: the Riemann sum of the inverse Radon transform
    over ``theta`` in [0, pi).

    Parameters
    ----------
    sinogram : device array, shape (n_views, n_bins, nz)
        Line integrals, mm x image units (e.g. mm x 1/mm for CT, mm x Bq/mL for PET).
    backprojector : PixelBackprojector
        Backprojector (no angular weight) of the same geometry; its ``geometry`` must have
        ``n_views`` views equally spaced over 180 degrees, in any order.
    filter_name, cutoff
        Passed to :func:`ramp_filter`.

    Returns
    -------
    device array, shape (nx, ny, nz)
        The image in image units, dtype of the backprojector.

    Raises
    ------
    ValueError
        When the views do not cover 180 degrees evenly or the shapes disagree.
    """
    geometry = getattr(backprojector, "geometry", None)
    if geometry is None:
        raise ValueError(f"fbp: the backprojector {backprojector!r} has no parallel-beam geometry")
    if tuple(sinogram.shape) != backprojector.in_shape:
        raise ValueError(f"fbp: sinogram has shape {tuple(sinogram.shape)}, {backprojector!r} expects {backprojector.in_shape}")
    _check_half_turn(geometry.angles_deg)
    filtered = ramp_filter(sinogram, geometry.bin_size_mm, backprojector.backend, filter_name=filter_name, cutoff=cutoff)
    return backprojector.apply(filtered) * (math.pi / geometry.n_angles)


def _check_half_turn(angles_deg) -> None:
    """Raise unless the views, folded into [0, 180), are spaced 180 / n degrees apart."""
    n = len(angles_deg)
    step = 180.0 / n
    folded = sorted(a % 180.0 for a in angles_deg)
    gaps = [b - a for a, b in itertools.pairwise(folded)] + [folded[0] + 180.0 - folded[-1]]
    if any(abs(gap - step) > _ANGLE_TOL_DEG for gap in gaps):
        raise ValueError(f"fbp needs {n} views equally spaced over 180 deg (step {step:g} deg); got gaps {min(gaps):g}..{max(gaps):g} deg")
