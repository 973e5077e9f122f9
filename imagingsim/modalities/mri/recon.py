"""MRI reconstruction: Cartesian encoding operators, zero-filled and CG-SENSE recon.

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

The noise floor, R2* fit and iron estimate are :mod:`imagingsim.modalities.mri.relaxometry`.
"""

from __future__ import annotations

from collections.abc import Sequence

from imagingsim.backend import Backend
from imagingsim.operators import LinearOperator, Reshape

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
