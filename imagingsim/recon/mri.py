"""MRI reconstruction: Cartesian encoding operators, zero-filled and CG-SENSE recon, R2* fit.

Conventions
-----------
- Images are stacks ``(B, nx, ny, nz)`` (``B`` echoes, reconstructed together); k-space is
  ``(B, C, nx, ny, nz)`` with ``C`` coils (1 without coil maps). The Fourier transform is
  the orthonormal FFT over the three spatial axes, **unshifted**: k = 0 at index 0 (numpy's
  ``fftn(x, norm="ortho")``). The readout (x) is fully sampled, the phase encodes (ky, kz)
  follow a ``(ny, nz)`` mask in the same order.
- The encoding operator is ``E = M F S``: coil maps ``S`` (``sum_c |S_c|^2 = 1``), FFT
  ``F``, mask ``M``. Every piece is a :class:`~imagingsim.operators.LinearOperator` with an
  exact adjoint (complex dot test in the tests).

Reconstructions
---------------
- **Zero-filled**: inverse FFT of each coil with the unsampled encodes left at 0, combined
  by root-sum-of-squares. Fully sampled, the RSS image of normalised maps is ``|m|``.
- **CG-SENSE** (Pruessmann et al., MRM 2001;46:638): conjugate gradients on
  ``(E^H E + lambda I) m = E^H y``, one independent system per echo, solved together with
  per-echo step sizes (no host synchronisation). Because the readout is fully sampled, the
  data are first inverse-transformed along x and the systems are solved in this hybrid
  space with 2-D FFTs over (ky, kz) only (the same solution, a third fewer FFT flops).
  ``lambda = regularization x lambda_max`` with ``lambda_max = 1``: for normalised maps and
  a 0/1 mask ``E^H E <= I``, an upper bound reached in the fully sampled limit.
  With a single coil CG-SENSE has no coil diversity to unfold aliasing: ``E^H E`` is then
  the projection onto the sampled encodes and the solution is the zero-filled image
  divided by ``1 + lambda`` (a Tikhonov least-squares fit, not a de-aliasing). It
  converges in one iteration in that case.
- **R2\\***: log-linear weighted least squares over the echoes of the magnitude, weights
  ``S^2`` (the inverse variance of ``log S`` for Gaussian noise), leaving out echoes after
  the second that lie below :data:`NOISE_FLOOR_MULTIPLE` noise sd (at the Rician floor the
  magnitude stops decaying and would bias R2* low). The fit is clipped to :data:`R2STAR_RANGE_PER_S` and
  set to 0 outside the signal mask (air, and signal voids where iron or bone leave too little
  signal at the first echo: their R2* is beyond what the echo train can measure).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from imagingsim.backend import Backend
from imagingsim.operators import LinearOperator, Reshape

#: Range the fitted R2* is clipped to, 1/s: 0 up to T2* = 0.5 ms.
R2STAR_RANGE_PER_S = (0.0, 2000.0)
#: A voxel enters the R2* fit when its first-echo magnitude exceeds both this multiple of
#: the noise sd and :data:`SIGNAL_MASK_FRACTION` of the largest first-echo magnitude.
SIGNAL_MASK_NOISE_MULTIPLE = 5.0
SIGNAL_MASK_FRACTION = 0.05
#: Echoes (after the second) below this multiple of the noise sd are left out of the R2* fit:
#: at 3 sd the Rician mean exceeds the true magnitude by 5 %.
NOISE_FLOOR_MULTIPLE = 3.0
SPATIAL_AXES = (-3, -2, -1)


class FourierTransform(LinearOperator):
    """Orthonormal FFT over ``axes`` (unshifted, k = 0 at index 0); the adjoint is the inverse.

    Parameters
    ----------
    shape : tuple of int
        Shape of the arrays transformed (leading axes are batches).
    backend : Backend
    axes : tuple of int
        Axes transformed, default the last three.
    """

    def __init__(self, shape, backend: Backend, axes: Sequence[int] = SPATIAL_AXES):
        super().__init__(shape, shape, backend)
        self.axes = tuple(axes)

    def _apply(self, x):
        return self.backend.fft.fftn(x, axes=self.axes, norm="ortho")

    def _adjoint(self, y):
        return self.backend.fft.ifftn(y, axes=self.axes, norm="ortho")


class CoilSensitivities(LinearOperator):
    """``(B, nx, ny, nz) -> (B, C, nx, ny, nz)``: each image times each coil map.

    The adjoint sums the coil images weighted by the conjugate maps.
    """

    def __init__(self, maps, n_batch: int, backend: Backend):
        spatial = tuple(int(n) for n in maps.shape[1:])
        super().__init__((int(n_batch),) + spatial, (int(n_batch), int(maps.shape[0])) + spatial, backend)
        self.maps = maps
        self._conj = backend.xp.conj(maps)

    def _apply(self, x):
        return x[:, None, ...] * self.maps[None, ...]

    def _adjoint(self, y):
        return self.backend.xp.sum(y * self._conj[None, ...], axis=1)


class SamplingMask(LinearOperator):
    """Multiplication by a 0/1 mask over the last two axes (ky, kz), broadcast over the rest.

    Real and 0/1, it is its own adjoint.
    """

    def __init__(self, mask, shape, backend: Backend):
        super().__init__(shape, shape, backend)
        if tuple(mask.shape) != self.in_shape[-2:]:
            raise ValueError(f"SamplingMask: mask {tuple(mask.shape)} does not match the last axes of {self.in_shape}")
        self.weights = backend.xp.astype(mask, backend.xp.float32)

    def _apply(self, x):
        return x * self.weights

    def _adjoint(self, y):
        return y * self.weights


def encoding_operator(image_shape, backend: Backend, *, mask=None, coil_maps=None, n_batch: int = 1,
                      hybrid: bool = False) -> LinearOperator:
    """``E = M F S`` from images ``(n_batch,) + image_shape`` to k-space ``(n_batch, C) + image_shape``.

    Parameters
    ----------
    image_shape : (nx, ny, nz)
    backend : Backend
    mask : device array ``(ny, nz)``, bool, FFT order, optional
        Acquired phase encodes; None for full sampling.
    coil_maps : device array ``(C, nx, ny, nz)``, optional
        None for one coil of uniform sensitivity (C = 1).
    n_batch : int
        Images transformed at once (echoes).
    hybrid : bool
        Transform only (ky, kz): the operator of data already inverse-transformed along the
        fully sampled readout x.
    """
    coils, fourier, sampling = _encoding_parts(image_shape, backend, mask, coil_maps, n_batch, hybrid=hybrid)
    op = fourier @ coils
    return op if sampling is None else sampling @ op


def _encoding_parts(image_shape, backend: Backend, mask, coil_maps, n_batch: int, *, hybrid: bool):
    """The three factors ``S``, ``F``, ``M`` of :func:`encoding_operator` (``M`` None without mask)."""
    image_shape = tuple(int(n) for n in image_shape)
    batch_shape = (int(n_batch),) + image_shape
    if coil_maps is None:
        coils = Reshape(batch_shape, (int(n_batch), 1) + image_shape, backend)
    else:
        coils = CoilSensitivities(coil_maps, n_batch, backend)
    fourier = FourierTransform(coils.out_shape, backend, axes=(-2, -1) if hybrid else SPATIAL_AXES)
    sampling = None if mask is None else SamplingMask(mask, fourier.out_shape, backend)
    return coils, fourier, sampling


def zero_filled(kspace, backend: Backend):
    """Root-sum-of-squares magnitude of the inverse FFT of each coil.

    Parameters
    ----------
    kspace : device array ``(B, C, nx, ny, nz)``, complex, FFT order, zeros where not sampled

    Returns
    -------
    device array ``(B, nx, ny, nz)``, real
    """
    xp = backend.xp
    coil_images = backend.fft.ifftn(kspace, axes=SPATIAL_AXES, norm="ortho")
    return xp.sqrt(xp.sum(xp.real(coil_images) ** 2 + xp.imag(coil_images) ** 2, axis=1))


def cg_sense(kspace, backend: Backend, *, mask=None, coil_maps=None, iterations: int = 30,
             regularization: float = 1e-3):
    """CG-SENSE: ``argmin ||E m - y||^2 + lambda ||m||^2`` by conjugate gradients, per echo.

    Parameters
    ----------
    kspace : device array ``(B, C, nx, ny, nz)``, complex, FFT order
        Measured data (0 where not sampled).
    backend : Backend
    mask : device array ``(ny, nz)``, bool, FFT order, optional
    coil_maps : device array ``(C, nx, ny, nz)``, optional
        Normalised (``sum_c |S_c|^2 = 1``); None for one uniform coil.
    iterations : int
        CG iterations (fixed: no convergence test, so no host synchronisation).
    regularization : float
        ``lambda`` relative to ``lambda_max = 1`` (see the module docstring).

    Returns
    -------
    device array ``(B, nx, ny, nz)``, complex, the dtype of ``kspace``
    """
    xp = backend.xp
    n_batch, _, *image_shape = (int(n) for n in kspace.shape)
    hybrid = backend.fft.ifft(kspace, axis=-3, norm="ortho")
    coils, fourier, sampling = _encoding_parts(image_shape, backend, mask, coil_maps, n_batch, hybrid=True)
    lam = float(regularization)

    def normal(v):
        # E^H E v + lambda v; the 0/1 mask is applied once, as M^H M = M.
        k = fourier.apply(coils.apply(v))
        if sampling is not None:
            k = sampling.apply(k)
        return coils.adjoint(fourier.adjoint(k)) + lam * v

    def dot(a, b):
        # sum(conj(a) b) over each image, as (B, 1, 1, 1) real (vecdot conjugates its first argument).
        flat = xp.vecdot(xp.reshape(a, (n_batch, -1)), xp.reshape(b, (n_batch, -1)), axis=-1)
        return xp.reshape(xp.real(flat), (n_batch, 1, 1, 1))

    rhs = coils.adjoint(fourier.adjoint(hybrid if sampling is None else sampling.apply(hybrid)))
    x = xp.zeros_like(rhs)
    r = rhs
    p = r
    rs = dot(r, r)
    for _ in range(int(iterations)):
        ap = normal(p)
        curvature = dot(p, ap)
        # A converged (or empty) echo has p = 0: keep it where it is instead of dividing 0/0.
        alpha = xp.where(curvature > 0, rs / xp.where(curvature > 0, curvature, 1.0), 0.0)
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = dot(r, r)
        beta = xp.where(rs > 0, rs_new / xp.where(rs > 0, rs, 1.0), 0.0)
        p = r + beta * p
        rs = rs_new
    return x


def signal_mask(first_echo, noise_sd, backend: Backend):
    """Voxels with enough signal for an R2* fit (see :data:`SIGNAL_MASK_NOISE_MULTIPLE`).

    Parameters
    ----------
    first_echo : device array, magnitude of the first echo
    noise_sd : float or device 0-d array
        Noise sd per real/imaginary component.
    """
    xp = backend.xp
    threshold = xp.maximum(SIGNAL_MASK_NOISE_MULTIPLE * noise_sd + 0.0 * xp.max(first_echo),
                           SIGNAL_MASK_FRACTION * xp.max(first_echo))
    return first_echo > threshold


def fit_r2star(magnitude, echo_times_ms: Sequence[float], backend: Backend, *, mask=None, noise_sd=None,
               r2star_range_per_s: tuple[float, float] = R2STAR_RANGE_PER_S):
    """R2* (1/s) by log-linear weighted least squares over echoes, weights ``S^2``.

    Parameters
    ----------
    magnitude : device array ``(n_echoes, ...)``
        Magnitude images, echoes along axis 0 (>= 2 echoes).
    echo_times_ms : sequence of float
    backend : Backend
    mask : device bool array ``magnitude.shape[1:]``, optional
        Voxels to fit; the others get 0.
    noise_sd : float or device 0-d array, optional
        Noise sd per real/imaginary component. Echoes after the second whose magnitude is
        below :data:`NOISE_FLOOR_MULTIPLE` times it get no weight: at the Rician noise floor
        the magnitude no longer decays and would bias R2* low (a truncation model).
    r2star_range_per_s : (float, float)
        Clip range of the fit.

    Returns
    -------
    device array, float64, ``magnitude.shape[1:]``
        ``-slope`` of ``log S`` against TE (s). Exact for noiseless mono-exponential decay.
    """
    xp = backend.xp
    n = len(echo_times_ms)
    if n < 2 or magnitude.shape[0] != n:
        raise ValueError(f"fit_r2star needs >= 2 echoes matching magnitude's first axis, got {n} and {magnitude.shape}")
    s = xp.astype(magnitude, xp.float64)
    tiny = 1e-30
    w = s * s
    if noise_sd is not None:
        first_two = xp.reshape(xp.arange(n, device=backend.device) < 2, (n,) + (1,) * (s.ndim - 1))
        w = xp.where(first_two | (s > NOISE_FLOOR_MULTIPLE * noise_sd), w, 0.0)
    logs = xp.log(xp.clip(s, tiny, None))
    shape = (n,) + (1,) * (s.ndim - 1)
    te = xp.reshape(xp.asarray([float(t) * 1e-3 for t in echo_times_ms], dtype=xp.float64, device=backend.device), shape)
    sw = xp.sum(w, axis=0)
    st = xp.sum(w * te, axis=0)
    stt = xp.sum(w * te * te, axis=0)
    sy = xp.sum(w * logs, axis=0)
    sty = xp.sum(w * te * logs, axis=0)
    det = sw * stt - st * st
    ok = det > tiny
    slope = (sw * sty - st * sy) / xp.where(ok, det, 1.0)
    r2star = xp.clip(-slope, r2star_range_per_s[0], r2star_range_per_s[1])
    keep = ok if mask is None else ok & mask
    return xp.where(keep, r2star, 0.0)


def iron_estimate_mM(r2star_per_s, baseline_r2star_per_s, r2star_per_mM_s: float, backend: Backend, *, mask=None):
    """Iron from the R2* change: ``(R2* - R2*_0) / r2*``, mM; 0 outside ``mask``.

    A real study takes ``R2*_0`` from a pre-contrast scan; the simulation's baseline map at
    the field stands in for it. Negative values (noise where there is no iron) are kept so
    that the estimate is not biased upwards.
    """
    xp = backend.xp
    estimate = (r2star_per_s - baseline_r2star_per_s) / float(r2star_per_mM_s)
    return estimate if mask is None else xp.where(mask, estimate, 0.0)


def nrmse(estimate, reference, backend: Backend, *, mask=None) -> float:
    """``||estimate - reference|| / ||reference||`` over ``mask`` (one host synchronisation)."""
    xp = backend.xp
    diff = xp.abs(estimate - reference) ** 2
    ref = xp.abs(reference) ** 2
    if mask is not None:
        diff, ref = xp.where(mask, diff, 0.0), xp.where(mask, ref, 0.0)
    value = backend.to_host(xp.stack([xp.sum(diff), xp.sum(ref)])).tolist()
    return math.sqrt(value[0] / value[1]) if value[1] > 0 else math.inf


__all__ = [
    "NOISE_FLOOR_MULTIPLE",
    "R2STAR_RANGE_PER_S",
    "SIGNAL_MASK_FRACTION",
    "SIGNAL_MASK_NOISE_MULTIPLE",
    "CoilSensitivities",
    "FourierTransform",
    "SamplingMask",
    "cg_sense",
    "encoding_operator",
    "fit_r2star",
    "iron_estimate_mM",
    "nrmse",
    "signal_mask",
    "zero_filled",
]
