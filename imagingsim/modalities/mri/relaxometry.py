"""MRI relaxometry: the noise floor of a reconstruction, the signal mask, the R2* fit and the iron estimate.

- **Noise floor** (:func:`noise_statistics`). The magnitude noise of a reconstruction
  depends on the coils and the recon: one coil gives Rician magnitudes (a Rayleigh floor of
  mean square ``2 sigma^2``), root-sum-of-squares of ``C`` coils a chi floor with ``2 C``
  degrees of freedom (mean square ``2 C sigma^2``: the floor rises with the coil count),
  and CG-SENSE amplifies the noise by the spatially varying g-factor. The simulation
  therefore reconstructs a **noise-only** k-space (same sigma, mask, coils and recon, its
  own generator) and takes, per voxel, the mean ``mu_n``, the sd ``s_n`` and the root mean
  square ``rms_n`` of that noise magnitude over :data:`NOISE_REALISATIONS` realisations and
  the 3 x 3 x 3 neighbourhood (216 samples: the g-factor varies smoothly, and a per-voxel
  threshold from 8 samples would let the lowest of ~10^5 air voxels through). CG-SENSE
  with a fixed iteration count is not exactly linear in the data (its step sizes depend
  on them), so the noise-only run measures the noise propagation of the same iterations
  closely but not exactly.
- **Signal mask** (:func:`signal_mask`): first-echo magnitude above both
  ``mu_n + SIGNAL_MASK_NOISE_SDS s_n`` (a detection threshold: for the heaviest-tailed
  floor, Rayleigh, 7 sd above the mean is ``4.1 rms_n``, exceeded by noise with
  probability ``exp(-4.13^2) ~ 4e-8`` per voxel; chi floors of more coils are tighter) and
  :data:`SIGNAL_MASK_FRACTION` of the largest first-echo magnitude (residual aliasing of an
  undersampled recon is not noise, and the noise-only run does not see it).
- **R2\\*** (:func:`fit_r2star`): log-linear weighted least squares over the echoes of the
  magnitude. With a noise floor: the excess power of a root-sum-of-squares floor,
  ``(1 - 1/C) rms_n^2``, is subtracted from ``S^2`` (the log of one complex channel's
  magnitude is unbiased to second order; RSS adds the ``C - 1`` channels orthogonal to the
  signal), and the fit is done twice: echoes after the second enter where the magnitude
  (first pass, weights ``S^2``) and then the first pass's *predicted* signal (second pass,
  weights ``S_hat^2``) exceed :data:`NOISE_FLOOR_MULTIPLE` ``rms_n``; near that floor the
  magnitude stops decaying, and selecting or weighting echoes by their measured value
  favours those whose noise is high, both biasing R2* low. The fit is clipped to
  :data:`R2STAR_RANGE_PER_S` and set to 0 outside the signal mask (air, and signal voids
  where iron or bone leave too little signal at the first echo: their R2* is beyond what
  the echo train can measure).
- **Iron** (:func:`iron_estimate_mM`): ``(R2* - R2*_0) / r2*``, NaN (not a number: no
  estimate) outside the signal mask, where the fit hit either clip limit, and where the
  baseline is already a void (``R2*_0 TE_1 >=`` :data:`BASELINE_VOID_DECAY`: the
  pre-contrast signal is down to ``exp(-2) = 14 %`` at the first echo, so lung and
  cortical bone carry no measurable iron contrast).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from imagingsim.backend import Backend

#: Range the fitted R2* is clipped to, 1/s: 0 up to T2* = 0.5 ms.
R2STAR_RANGE_PER_S = (0.0, 2000.0)


#: A voxel enters the R2* fit when its first-echo magnitude exceeds both the noise-only
#: magnitude's local mean plus this many of its sd, and :data:`SIGNAL_MASK_FRACTION` of the
#: largest first-echo magnitude (see the module docstring).
SIGNAL_MASK_NOISE_SDS = 7.0


SIGNAL_MASK_FRACTION = 0.05


#: Echoes (after the second) below this multiple of the local RMS noise magnitude are left
#: out of the R2* fit: there the noise floor biases the magnitude by up to ~6 %.
NOISE_FLOOR_MULTIPLE = 3.0


#: Noise-only realisations reconstructed for the noise statistics (batched like echoes).
NOISE_REALISATIONS = 8


#: Half-width (voxels) of the cubic neighbourhood the noise statistics are averaged over.
NOISE_NEIGHBOURHOOD = 1


#: ``R2*_0 x TE_1`` at or above which the baseline is a void and gets no iron estimate.
BASELINE_VOID_DECAY = 2.0


@dataclass(frozen=True)
class NoiseStatistics:
    """Local statistics of the magnitude of a reconstructed noise-only k-space.

    Attributes
    ----------
    mean, sd, rms : device arrays ``(nx, ny, nz)``, float
        Mean, standard deviation and root mean square of the noise magnitude, in the
        units of the magnitude images, averaged over the realisations and the
        neighbourhood (:func:`noise_statistics`).
    """

    mean: Any
    sd: Any
    rms: Any


def _box_mean(a, backend: Backend, half_width: int):
    """Mean over the ``(2 h + 1)^3`` neighbourhood, edges replicated (separable, device-side)."""
    xp = backend.xp
    if half_width <= 0:
        return a
    h = int(half_width)
    for axis in range(a.ndim):
        n = int(a.shape[axis])
        first = xp.take(a, xp.asarray([0] * h, device=backend.device), axis=axis)
        last = xp.take(a, xp.asarray([n - 1] * h, device=backend.device), axis=axis)
        padded = xp.concat([first, a, last], axis=axis)
        total = None
        for shift in range(2 * h + 1):
            index = [slice(None)] * a.ndim
            index[axis] = slice(shift, shift + n)
            part = padded[tuple(index)]
            total = part if total is None else total + part
        a = total / float(2 * h + 1)
    return a


def noise_statistics(noise_magnitude, backend: Backend, *, half_width: int = NOISE_NEIGHBOURHOOD) -> NoiseStatistics:
    """Noise-floor statistics from reconstructed noise-only magnitudes.

    Parameters
    ----------
    noise_magnitude : device array ``(B, nx, ny, nz)``, real
        Magnitude reconstructions of ``B`` independent noise-only k-spaces (same sigma,
        mask, coils and reconstruction as the data).
    backend : Backend
    half_width : int, keyword-only
        The statistics are averaged over the ``(2 half_width + 1)^3`` neighbourhood
        (edges replicated) as well as over the ``B`` realisations.

    Returns
    -------
    NoiseStatistics
        float64 maps of the noise magnitude's mean, sd and RMS.
    """
    xp = backend.xp
    m = xp.astype(noise_magnitude, xp.float64)
    first = _box_mean(xp.mean(m, axis=0), backend, half_width)
    second = _box_mean(xp.mean(m * m, axis=0), backend, half_width)
    return NoiseStatistics(mean=first, sd=xp.sqrt(xp.clip(second - first * first, 0.0, None)), rms=xp.sqrt(second))


def signal_mask(first_echo, noise: NoiseStatistics | None, backend: Backend):
    """Voxels with enough signal for an R2* fit (see the module docstring).

    Parameters
    ----------
    first_echo : device array ``(nx, ny, nz)``, magnitude of the first echo
    noise : NoiseStatistics or None
        Local noise-floor statistics; None for noiseless data (the fraction rule only).
    backend : Backend

    Returns
    -------
    device array, bool
        ``first_echo > max(mean + SIGNAL_MASK_NOISE_SDS sd, SIGNAL_MASK_FRACTION max(first_echo))``.
    """
    xp = backend.xp
    threshold = SIGNAL_MASK_FRACTION * xp.max(first_echo)
    if noise is not None:
        threshold = xp.maximum(noise.mean + SIGNAL_MASK_NOISE_SDS * noise.sd, threshold)
    return first_echo > threshold


def _wls_line(xp, logs, w, te, tiny: float):
    """Weighted least-squares line ``log S = c - R te`` per voxel: ``(R, c, ok)``."""
    sw = xp.sum(w, axis=0)
    st = xp.sum(w * te, axis=0)
    stt = xp.sum(w * te * te, axis=0)
    sy = xp.sum(w * logs, axis=0)
    sty = xp.sum(w * te * logs, axis=0)
    det = sw * stt - st * st
    ok = det > tiny
    slope = (sw * sty - st * sy) / xp.where(ok, det, 1.0)
    intercept = (sy - slope * st) / xp.where(sw > 0, sw, 1.0)
    return -slope, intercept, ok


def fit_r2star(magnitude, echo_times_ms: Sequence[float], backend: Backend, *, mask=None, noise_floor=None,
               rss_channels: int = 1, r2star_range_per_s: tuple[float, float] = R2STAR_RANGE_PER_S):
    """R2* (1/s) by log-linear weighted least squares over echoes.

    Without ``noise_floor``: one fit of ``log S`` with weights ``S^2`` (the inverse variance
    of ``log S`` for Gaussian noise) over every echo. With it, a floor-aware fit:

    1. **RSS floor.** The magnitude of one complex channel (one coil, or the linear coil
       combination of CG-SENSE) has ``E[log |A + n|] = log A`` to second order in
       ``n / A``; a root-sum-of-squares of ``C`` channels adds the power of the ``C - 1``
       channels orthogonal to the signal, ``(1 - 1/C) rms_n^2``, which is subtracted from
       ``S^2`` (echoes left with ``S^2 <= 0`` get no weight).
    2. **First pass**: echoes after the second kept where ``S >`` :data:`NOISE_FLOOR_MULTIPLE`
       ``rms_n``, weights ``S^2``.
    3. **Second pass**: echoes after the second kept, and weighted by ``S_hat^2``, where the
       first pass's predicted signal ``S_hat(TE) >`` :data:`NOISE_FLOOR_MULTIPLE` ``rms_n``.
       Selecting or weighting on the *measured* magnitude keeps the late echoes whose noise
       happens to be high and biases R2* low (about -20 % in muscle at a first-echo SNR of
       6); the prediction does not depend on a late echo's own noise.

    Parameters
    ----------
    magnitude : device array ``(n_echoes, ...)``
        Magnitude images, echoes along axis 0 (>= 2 echoes).
    echo_times_ms : sequence of float
    backend : Backend
    mask : device bool array ``magnitude.shape[1:]``, optional
        Voxels to fit; the others get 0.
    noise_floor : float or device array ``magnitude.shape[1:]``, optional
        RMS magnitude ``rms_n`` of the noise alone (:attr:`NoiseStatistics.rms`;
        ``sqrt(2) sigma`` for one coil of complex noise sd ``sigma``), in the units of
        ``magnitude``.
    rss_channels : int
        Channels combined by root-sum-of-squares: the coil count for zero-filled
        multi-coil images, 1 for one coil or CG-SENSE.
    r2star_range_per_s : (float, float)
        Clip range of the fit.

    Returns
    -------
    device array, float64, ``magnitude.shape[1:]``
        ``R2*`` in 1/s. Exact for noiseless mono-exponential decay.
    """
    xp = backend.xp
    n = len(echo_times_ms)
    if n < 2 or magnitude.shape[0] != n:
        raise ValueError(f"fit_r2star needs >= 2 echoes matching magnitude's first axis, got {n} and {magnitude.shape}")
    if int(rss_channels) < 1:
        raise ValueError(f"rss_channels must be >= 1, got {rss_channels}")
    if mask is not None:
        # Only the masked voxels are fitted (air is most of a mouse grid). Every step is per
        # voxel and the sums run over the echo axis alone, so each fitted value is the same
        # number, bit for bit, as in a fit of the whole grid.
        compact = _Compaction(mask, backend)
        floor = noise_floor
        if floor is not None and not isinstance(floor, (int, float)):
            floor = compact.gather(xp.reshape(xp.broadcast_to(floor, magnitude.shape[1:]), (-1,)))
        fitted = fit_r2star(compact.gather(xp.reshape(magnitude, (n, -1))), echo_times_ms, backend,
                            noise_floor=floor, rss_channels=rss_channels, r2star_range_per_s=r2star_range_per_s)
        return xp.reshape(compact.scatter(fitted), mask.shape)
    s = xp.astype(magnitude, xp.float64)
    tiny = 1e-30
    shape = (n,) + (1,) * (s.ndim - 1)
    te = xp.reshape(xp.asarray([float(t) * 1e-3 for t in echo_times_ms], dtype=xp.float64, device=backend.device), shape)
    lo, hi = (float(v) for v in r2star_range_per_s)

    def normalised(w):
        # Weights relative to the voxel's largest: the determinant test then does not depend on units.
        return w / xp.maximum(xp.max(w, axis=0), tiny)

    if noise_floor is None:
        logs = xp.log(xp.clip(s, tiny, None))
        r2star, _, ok = _wls_line(xp, logs, normalised(s * s), te, tiny)
    else:
        power = s * s - (1.0 - 1.0 / int(rss_channels)) * (noise_floor * noise_floor)
        usable = power > 0.0
        logs = 0.5 * xp.log(xp.clip(power, tiny, None))
        first_two = xp.reshape(xp.arange(n, device=backend.device) < 2, shape)
        floor = NOISE_FLOOR_MULTIPLE * noise_floor
        w1 = xp.where(usable & (first_two | (s > floor)), power, 0.0)
        rate, intercept, _ = _wls_line(xp, logs, normalised(w1), te, tiny)
        predicted = xp.exp(intercept - xp.clip(rate, lo, hi) * te)
        w2 = xp.where(usable & (first_two | (predicted > floor)), predicted * predicted, 0.0)
        r2star, _, ok = _wls_line(xp, logs, normalised(w2), te, tiny)
    return xp.where(ok, xp.clip(r2star, lo, hi), 0.0)


class _Compaction:
    """The voxels of a boolean mask gathered into a vector, and scattered back (0 elsewhere).

    Index arithmetic only (``nonzero``, ``take``), so it runs on every backend; one host
    synchronisation (the voxel count, through ``nonzero``'s data-dependent shape).
    """

    def __init__(self, mask, backend: Backend):
        xp = backend.xp
        flat = xp.reshape(mask, (-1,))
        self._xp = xp
        self.index = xp.nonzero(flat)[0]
        n_kept = self.index.shape[0]
        # Where each grid voxel's value sits in the gathered vector; masked-out voxels point
        # at one zero appended to it.
        rank = xp.cumulative_sum(xp.astype(flat, xp.int64)) - 1
        self._inverse = xp.where(flat, rank, xp.asarray(n_kept, dtype=xp.int64, device=backend.device))

    def gather(self, values):
        """``values[..., mask]`` of ``values`` with the grid flattened on its last axis."""
        return self._xp.take(values, self.index, axis=values.ndim - 1)

    def scatter(self, vector):
        """The flattened grid holding ``vector`` on the mask and 0 elsewhere."""
        xp = self._xp
        padded = xp.concat([vector, xp.zeros((1,), dtype=vector.dtype, device=vector.device)])
        return xp.take(padded, self._inverse)


def iron_estimate_mM(r2star_per_s, baseline_r2star_per_s, r2star_per_mM_s: float, backend: Backend, *, mask=None,
                     first_echo_ms: float | None = None,
                     r2star_range_per_s: tuple[float, float] = R2STAR_RANGE_PER_S):
    """Iron from the R2* change: ``(R2* - R2*_0) / r2*``, mM; NaN where there is no estimate.

    A real study takes ``R2*_0`` from a pre-contrast scan; the simulation's baseline map at
    the field stands in for it. Negative values (noise where there is no iron) are kept so
    that the estimate is not biased upwards.

    Parameters
    ----------
    r2star_per_s : device array, 1/s
        Fitted R2* (:func:`fit_r2star`).
    baseline_r2star_per_s : device array, 1/s
        Pre-contrast R2* at the field.
    r2star_per_mM_s : float
        Relaxivity, 1/(mM s).
    backend : Backend
    mask : device bool array, optional
        Voxels fitted; NaN elsewhere.
    first_echo_ms : float, optional
        First echo time, ms: voxels with ``R2*_0 TE_1 >=`` :data:`BASELINE_VOID_DECAY`
        (a void before any iron) get NaN.
    r2star_range_per_s : (float, float)
        The fit's clip range: a fit at either limit is a bound, not a value, and gets NaN.

    Returns
    -------
    device array, float64, mM
    """
    xp = backend.xp
    estimate = (r2star_per_s - baseline_r2star_per_s) / float(r2star_per_mM_s)
    lo, hi = (float(v) for v in r2star_range_per_s)
    valid = (r2star_per_s > lo) & (r2star_per_s < hi)
    if mask is not None:
        valid = valid & mask
    if first_echo_ms is not None:
        valid = valid & (baseline_r2star_per_s * (float(first_echo_ms) * 1e-3) < BASELINE_VOID_DECAY)
    return xp.where(valid, xp.astype(estimate, xp.float64), xp.nan)
