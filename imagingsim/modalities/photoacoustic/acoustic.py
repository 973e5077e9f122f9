"""The acoustic forward operator: initial pressure of a slice -> detector signals.

Model (homogeneous, lossless medium, speed of sound ``c``). In 3-D the pressure at a point
detector ``r_d`` is the time derivative of the spherical integral of ``p0`` (Poisson's
solution of the wave equation with ``p(t=0) = p0``, ``dp/dt(0) = 0``):

``p(r_d, t) = d/dt [ 1 / (4 pi c^2 t)  \\int_{|r - r_d| = ct} p0(r) dS ]``.

The slice is a sheet of thickness ``h_z`` (the elements are focused on it in elevation), so
the sphere cuts it in a band of height ``h_z`` along the circle ``|r - r_d| = ct``:
``\\int dS = h_z \\oint p0 dl`` and

``g(t) = h_z / (4 pi c^2 t) \\oint_{|r - r_d| = ct} p0 dl``,  ``p = dg/dt``.

Discretisation. A pixel is a uniform square of side ``h``; the length of the circle of
radius ``R`` inside it is, to order ``h^2 / R``, the pixel's projection on the line to the
detector: a trapezoid in ``R - r`` with half-widths ``a = h (|u_x| + |u_y|) / 2`` and
``b = h ||u_x| - |u_y|| / 2`` and area ``h^2`` (the separable footprint of a square, ``u``
the unit vector from detector to pixel). Each sample ``k`` averages it over its range bin
``[R_k - c dt / 2, R_k + c dt / 2]`` in closed form, so the model is exact in the
footprint approximation at any sampling rate, without sub-pixel sampling or aliasing. The
(pixel x bin) weights form a sparse matrix on the backend, built once; the ``1 / t`` factor
is applied per sample; the time derivative (central difference, ``i sin(2 pi f dt) / dt``)
and the detectors' band-pass are one filter ``H(f) = i sin(2 pi f dt) / dt G(f)``, ``G(f) = exp(-(|f| - f_c)^2 / (2 sigma^2))`` (``G = 1`` without a
band-pass), applied by real FFTs along time on a window padded to twice its length (no wrap).

The adjoint runs the same steps backwards (``conj(H)``, the weights, the transposed matrix):
the dot test passes to rounding on every backend.

Not modelled: acoustic attenuation and dispersion, speed-of-sound heterogeneity, element
size (point elements), electrical noise colour (noise is white, added after the filter).

References
----------
M. Xu, L. V. Wang, "Photoacoustic imaging in biomedicine", Rev Sci Instrum 2006;77:041101.
B. E. Treeby, B. T. Cox, "k-Wave", J Biomed Opt 2010;15:021314 (the band-pass convention).
"""

from __future__ import annotations

import math

from imagingsim.backend import Backend
from imagingsim.modalities.photoacoustic.geometry import AcousticGeometry
from imagingsim.operators.base import LinearOperator

#: Entries per sparse-matrix build block (bounds the temporaries of the build).
_BLOCK_ENTRIES = 2_000_000


def _next_fast_length(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (FFT-friendly)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            value = p35
            while value < n:
                value *= 2
            best = min(best, value)
            p35 *= 3
        p5 *= 5
    return best


def _half_cumulative(u, a, b, height, xp):
    """``\\int_0^u`` of the symmetric trapezoid (flat top ``|s| <= b``, zero beyond ``a``), ``u >= 0``."""
    slope_width = xp.where(a - b > 0, a - b, 1.0)
    ramp = u - b
    on_ramp = height * b + height * (ramp - ramp * ramp / (2.0 * slope_width))
    full = 0.5 * height * (a + b)
    return xp.where(u <= b, height * u, xp.where(u < a, on_ramp, full))


def _cumulative(s, a, b, height, xp):
    """``\\int_{-inf}^s`` of the trapezoid centred on 0 (its total is the pixel area ``h^2``)."""
    full = 0.5 * height * (a + b)
    half = _half_cumulative(xp.abs(s), a, b, height, xp)
    return xp.where(s >= 0, full + half, full - half)


def footprint_matrix(geometry: AcousticGeometry, backend: Backend):
    """The sparse (pixel x element-sample) matrix of mean arc lengths per range bin, mm.

    Row ``i * ny + j`` (pixel ``(i, j)``) holds, at column ``d * n_t + k``, the mean over
    sample ``k``'s range bin of the length of the circle around element ``d`` inside the
    pixel (module docstring); each row sums over ``k`` to ``h^2 / (c dt)`` per element.

    Returns
    -------
    imagingsim.backend.SparseMatrix
        Shape ``(nx ny, n_elements n_t)``.
    """
    xp, dev = backend.xp, backend.device
    (nx, ny), h = geometry.shape, geometry.voxel_mm
    n_det, n_t, step = geometry.n_elements, geometry.n_t, geometry.range_step_mm
    start = geometry.speed_mm_per_us * geometry.t0_us
    per_pixel = math.ceil(math.sqrt(2.0) * h / step) + 2
    ex = xp.asarray([p[0] for p in geometry.elements_mm], dtype=xp.float64, device=dev)[None, :, None]
    ey = xp.asarray([p[1] for p in geometry.elements_mm], dtype=xp.float64, device=dev)[None, :, None]
    offsets = xp.arange(per_pixel, dtype=xp.float64, device=dev)[None, None, :]
    block = max(1, _BLOCK_ENTRIES // (n_det * per_pixel))
    n_pix = nx * ny
    index_dtype = xp.int32 if n_det * n_t < 2**31 - 1 else xp.int64
    data, indices = [], []
    for first in range(0, n_pix, block):
        flat = xp.arange(first, min(first + block, n_pix), dtype=xp.int64, device=dev)
        px = geometry.origin_mm[0] + h * xp.astype(flat // ny, xp.float64)
        py = geometry.origin_mm[1] + h * xp.astype(flat % ny, xp.float64)
        dx, dy = px[:, None, None] - ex, py[:, None, None] - ey
        r = xp.sqrt(dx * dx + dy * dy)
        ux, uy = xp.abs(dx) / r, xp.abs(dy) / r
        a = 0.5 * h * (ux + uy)
        b = 0.5 * h * xp.abs(ux - uy)
        height = h / xp.maximum(ux, uy)
        lowest = xp.floor((r - a - start) / step + 0.5)
        k = lowest + offsets
        centre = start + k * step
        w = (_cumulative(centre + 0.5 * step - r, a, b, height, xp)
             - _cumulative(centre - 0.5 * step - r, a, b, height, xp)) / step
        inside = (k >= 0) & (k < n_t)
        w = xp.where(inside, w, 0.0)
        k = xp.where(inside, k, 0.0)
        column = xp.astype(k, xp.int64) + n_t * xp.arange(n_det, dtype=xp.int64, device=dev)[None, :, None]
        data.append(xp.reshape(w, (-1,)))
        indices.append(xp.astype(xp.reshape(column, (-1,)), index_dtype))
    per_row = n_det * per_pixel
    indptr = xp.arange(n_pix + 1, dtype=index_dtype, device=dev) * per_row
    return backend.sparse_csr(xp.concat(data), xp.concat(indices), indptr, (n_pix, n_det * n_t))


def central_difference(f_MHz, dt_us: float, xp):
    """The spectrum of the central difference ``(g[k+1] - g[k-1]) / (2 dt)``: ``i sin(2 pi f dt) / dt``, 1/us.

    The time derivative of sampled signals: ``2 pi i f`` at low frequencies, falling to 0 at
    Nyquist, so a pixel's kinked footprint does not ring over the window as the ideal spectral
    derivative would. Shape ``(1, F, 1)``, complex.
    """
    return xp.astype(xp.sin((2.0 * math.pi * dt_us) * f_MHz) / dt_us, xp.complex128)[None, :, None] * 1j


class AcousticOperator(LinearOperator):
    """``p0 (nx, ny, L)`` [Pa] -> detector pressure ``(n_elements, n_t, L)`` [Pa] (module docstring).

    ``L`` images (wavelengths) are propagated at once; each is independent.

    Parameters
    ----------
    geometry : AcousticGeometry
    n_stack : int
        ``L``, the number of images per call.
    backend : Backend
    matrix : SparseMatrix, optional
        A :func:`footprint_matrix` of ``geometry`` already built (shared between stacks).
    """

    def __init__(self, geometry: AcousticGeometry, n_stack: int, backend: Backend, matrix=None):
        nx, ny = geometry.shape
        super().__init__((nx, ny, n_stack), (geometry.n_elements, geometry.n_t, n_stack), backend)
        xp, dev = backend.xp, backend.device
        self.geometry = geometry
        self.matrix = footprint_matrix(geometry, backend) if matrix is None else matrix
        c, n_t = geometry.speed_mm_per_us, geometry.n_t
        times = geometry.t0_us + geometry.dt_us * xp.arange(n_t, dtype=xp.float64, device=dev)
        # g = h_z / (4 pi c^2 t) x arc integral: mm / (mm^2/us^2 us) x (mm Pa) = Pa us.
        self.time_weights = (geometry.slice_thickness_mm / (4.0 * math.pi * c * c) / times)[None, :, None]
        self.n_fft = _next_fast_length(2 * n_t)
        f = xp.arange(self.n_fft // 2 + 1, dtype=xp.float64, device=dev) / (self.n_fft * geometry.dt_us)
        sigma = geometry.sigma_MHz
        gain = xp.exp(-((f - geometry.center_frequency_MHz) ** 2) / (2.0 * sigma * sigma)) if sigma > 0 else f * 0.0 + 1.0
        self.response = central_difference(f, geometry.dt_us, xp) * xp.astype(gain, xp.complex128)[None, :, None]

    def _filter(self, signal, response):
        fft = self.backend.fft
        spectrum = fft.rfft(signal, n=self.n_fft, axis=1)
        return fft.irfft(spectrum * response, n=self.n_fft, axis=1)[:, : self.geometry.n_t, :]

    def _apply(self, x):
        xp = self.backend.xp
        nx, ny, n = self.in_shape
        g = self.matrix.adjoint(xp.reshape(x, (nx * ny, n)))
        g = xp.reshape(g, self.out_shape) * self.time_weights
        return self._filter(g, self.response)

    def _adjoint(self, y):
        xp = self.backend.xp
        g = self._filter(y, xp.conj(self.response)) * self.time_weights
        n_det, n_t, n = self.out_shape
        return xp.reshape(self.matrix.apply(xp.reshape(g, (n_det * n_t, n))), self.in_shape)


__all__ = ["AcousticOperator", "central_difference", "footprint_matrix"]
