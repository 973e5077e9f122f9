"""Ray-driven (Joseph) parallel-beam projector and a pixel-driven backprojector, as SpMM.

Each 2-D system matrix is built once per geometry, backend and dtype (cached) and applied to
every slice of a volume in one sparse-times-dense product: the image ``(nx, ny, nz)`` is
viewed as ``(nx * ny, nz)``, so each stored weight multiplies ``nz`` contiguous values.
The adjoint is the stored transpose (CSR too), so it is exactly matched and as fast.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict

from imagingsim.backend import Backend
from imagingsim.operators import LinearOperator
from imagingsim.projectors.geometry import ParallelBeamGeometry


class ParallelProjector(LinearOperator):
    """Line integrals (mm x image units) of a stack of slices: ``(nx, ny, nz) -> (views, bins, nz)``.

    Joseph's method: each ray steps one pixel row (or column, whichever it crosses faster)
    at a time and interpolates linearly between the two nearest pixel centres of that row;
    each sample is weighted by the path length per step. The image is zero outside its box.
    See :mod:`imagingsim.projectors.geometry` for the angle, detector and axis conventions.

    Parameters
    ----------
    geometry : ParallelBeamGeometry
    n_slices : int
        Number of independent slices (axis 2 of the image).
    backend : Backend
    dtype : array dtype, optional
        float32 (default: half the memory traffic, about 4x faster SpMM on a CPU) or float64.

    Notes
    -----
    Each bin is one line integral at its centre, not an average over the bin width. A pixel's
    footprint in a view is a hat of half-width ``|cos| dx`` (or ``|sin| dy``) sampled at the
    bins, so the per-view total ``sum_b p_b * bin_size_mm`` equals the image integral exactly
    only where that width is a whole number of bins (0 and 90 degrees with bins as wide as the
    pixels). At oblique views the sampling aliases: at 45 degrees (square pixels, bins =
    pixels) one hot pixel's total is between ``2 sqrt(2) - 2 = 0.83`` and ``sqrt(2) = 1.41``
    times its integral, depending on where it falls between bin centres; for an image that is
    smooth over a few bins (Gaussian sigma 3 pixels) the error is about 1e-4
    (``tests/test_projectors.py`` checks both).
    """

    def __init__(self, geometry: ParallelBeamGeometry, n_slices: int, backend: Backend, *, dtype=None):
        nx, ny = geometry.image_shape
        super().__init__((nx, ny, n_slices), (geometry.n_angles, geometry.n_bins, n_slices), backend)
        self.geometry = geometry
        self.dtype = dtype or backend.xp.float32
        self.matrix = _system_matrix("joseph", geometry, backend, _dtype_name(backend, self.dtype))

    def subset(self, views) -> ParallelProjector:
        """The projector for some views only (OSEM subsets)."""
        return ParallelProjector(self.geometry.views(views), self.in_shape[2], self.backend, dtype=self.dtype)

    def _apply(self, x):
        xp = self.backend.xp
        nx, ny, nz = self.in_shape
        y = self.matrix.apply(xp.reshape(xp.astype(x, self.dtype, copy=False), (nx * ny, nz)))
        return xp.reshape(y, self.out_shape)

    def _adjoint(self, y):
        xp = self.backend.xp
        nz = self.in_shape[2]
        x = self.matrix.adjoint(xp.reshape(xp.astype(y, self.dtype, copy=False), (-1, nz)))
        return xp.reshape(x, self.in_shape)


class PixelBackprojector(LinearOperator):
    """Pixel-driven backprojection ``(views, bins, nz) -> (nx, ny, nz)`` for FBP.

    Each pixel centre is projected onto the detector of every view and the sinogram is
    interpolated linearly there; the views are summed (no angular weight: FBP applies
    ``d theta``). Unlike the transpose of the ray-driven projector, its interpolation
    width is one bin at every angle, so filtered backprojection of a uniform object has no
    angle-dependent ripple. Its adjoint (a pixel-driven projector) is the stored transpose.
    """

    def __init__(self, geometry: ParallelBeamGeometry, n_slices: int, backend: Backend, *, dtype=None):
        nx, ny = geometry.image_shape
        super().__init__((geometry.n_angles, geometry.n_bins, n_slices), (nx, ny, n_slices), backend)
        self.geometry = geometry
        self.dtype = dtype or backend.xp.float32
        self.matrix = _system_matrix("pixel", geometry, backend, _dtype_name(backend, self.dtype))

    def _apply(self, y):
        xp = self.backend.xp
        nz = self.in_shape[2]
        return xp.reshape(self.matrix.apply(xp.reshape(xp.astype(y, self.dtype, copy=False), (-1, nz))), self.out_shape)

    def _adjoint(self, x):
        xp = self.backend.xp
        nz = self.in_shape[2]
        return xp.reshape(self.matrix.adjoint(xp.reshape(xp.astype(x, self.dtype, copy=False), (-1, nz))), self.in_shape)


#: Bytes of system matrices kept for reuse (least recently used ones are dropped first);
#: ``IMAGINGSIM_MATRIX_CACHE_MB`` overrides it. A long run over many geometries (e.g. subjects
#: with different grids) thus holds at most this much, whatever the number of geometries.
DEFAULT_MATRIX_CACHE_MB = 2048


class _MatrixCache:
    """A least-recently-used cache of system matrices bounded by their size in bytes.

    Safe to share between threads (frames reconstructed at once): a matrix is built once,
    by the first thread that asks; the others wait for it.
    """

    def __init__(self):
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.RLock()

    def get(self, key, build, bytes_per_entry: int):
        """The matrix of ``key``, built by ``build()`` on a miss; old entries dropped to fit."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
            matrix = build()
            # Value + column index per stored entry, twice (the transpose, once built).
            self._entries[key] = (matrix, 2 * matrix.nnz * bytes_per_entry)
            while len(self._entries) > 1 and sum(size for _, size in self._entries.values()) > _cache_limit_bytes():
                self._entries.popitem(last=False)
            return matrix

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _cache_limit_bytes() -> int:
    configured = os.environ.get("IMAGINGSIM_MATRIX_CACHE_MB", "").strip()
    if configured and not configured.isdigit():
        raise ValueError(f"IMAGINGSIM_MATRIX_CACHE_MB: must be a whole number of MB >= 0, got {configured!r}")
    return int(configured or DEFAULT_MATRIX_CACHE_MB) * 2**20


_CACHE = _MatrixCache()


def clear_matrix_cache() -> None:
    """Free the cached system matrices (they can take hundreds of MB for large geometries)."""
    _CACHE.clear()


def _dtype_name(backend: Backend, dtype) -> str:
    xp = backend.xp
    for name in ("float32", "float64"):
        if dtype == getattr(xp, name):
            return name
    raise ValueError(f"projector dtype must be float32 or float64, got {dtype}")


def _system_matrix(kind: str, geometry: ParallelBeamGeometry, backend: Backend, dtype_name: str):
    """The cached matrix of ``kind`` ("joseph" or "pixel"), built on first use."""
    return _CACHE.get(
        (kind, geometry, backend, dtype_name),
        lambda: _build_matrix(kind, geometry, backend, dtype_name),
        bytes_per_entry=(4 if dtype_name == "float32" else 8) + 4,
    )


def _build_matrix(kind: str, geometry: ParallelBeamGeometry, backend: Backend, dtype_name: str):
    xp = backend.xp
    builder = _joseph_rows if kind == "joseph" else _pixel_rows
    # Blocks are cast to the stored dtypes before they are joined: the joined arrays are the
    # largest allocation of the build.
    (nx, ny), n_views, n_bins = geometry.image_shape, geometry.n_angles, geometry.n_bins
    padded_entries = 2 * max(nx, ny) * n_views * n_bins if kind == "joseph" else 2 * n_views * nx * ny
    index_dtype = xp.int32 if padded_entries < 2**31 - 1 else xp.int64
    data, indices, n_rows, n_cols = builder(geometry, backend, getattr(xp, dtype_name), index_dtype)
    per_row = data.shape[0] // n_rows
    indptr = xp.arange(n_rows + 1, dtype=index_dtype, device=backend.device) * per_row
    return backend.sparse_csr(data, indices, indptr, (n_rows, n_cols))


def _linear_weights(xp, position, n: int, scale: float):
    """Indices and weights of linear interpolation at fractional ``position`` on ``0..n-1``.

    Neighbours outside ``0..n-1`` get weight 0 (the image is zero outside its box) and a
    clipped index, so every sample stores exactly two entries.
    """
    lower = xp.floor(position)
    frac = position - lower
    w0 = xp.where((lower >= 0) & (lower <= n - 1), (1.0 - frac) * scale, 0.0)
    w1 = xp.where((lower >= -1) & (lower <= n - 2), frac * scale, 0.0)
    k0 = xp.astype(xp.clip(lower, 0, n - 1), xp.int64)
    k1 = xp.astype(xp.clip(lower + 1, 0, n - 1), xp.int64)
    return (k0, w0), (k1, w1)


def _joseph_rows(geometry: ParallelBeamGeometry, backend: Backend, dtype, index_dtype):
    """Row-major entries of the Joseph matrix: ``2 * max(nx, ny)`` per ray (zeros pad)."""
    xp, dev = backend.xp, backend.device
    (nx, ny), (dx, dy) = geometry.image_shape, geometry.pixel_size_mm
    per_ray = max(nx, ny)
    s = (xp.arange(geometry.n_bins, dtype=xp.float64, device=dev) - (geometry.n_bins - 1) / 2.0) * geometry.bin_size_mm
    s = s[:, None]
    xs = (xp.arange(nx, dtype=xp.float64, device=dev) - (nx - 1) / 2.0) * dx
    ys = (xp.arange(ny, dtype=xp.float64, device=dev) - (ny - 1) / 2.0) * dy
    data_blocks, index_blocks = [], []
    for theta in geometry.angles_rad:
        cos, sin = math.cos(theta), math.sin(theta)
        if abs(cos) / dy >= abs(sin) / dx:
            # Crosses rows of constant y faster: one sample per y_j, interpolate along x.
            position = (s - ys[None, :] * sin) / cos / dx + (nx - 1) / 2.0
            (k0, w0), (k1, w1) = _linear_weights(xp, position, nx, dy / abs(cos))
            drive = xp.arange(ny, dtype=xp.int64, device=dev)[None, :]
            idx0, idx1 = k0 * ny + drive, k1 * ny + drive
            n_drive = ny
        else:
            # Crosses columns of constant x faster: one sample per x_i, interpolate along y.
            position = (s - xs[None, :] * cos) / sin / dy + (ny - 1) / 2.0
            (k0, w0), (k1, w1) = _linear_weights(xp, position, ny, dx / abs(sin))
            drive = xp.arange(nx, dtype=xp.int64, device=dev)[:, None].T
            idx0, idx1 = drive * ny + k0, drive * ny + k1
            n_drive = nx
        data = xp.reshape(xp.stack((w0, w1), axis=-1), (geometry.n_bins, 2 * n_drive))
        index = xp.reshape(xp.stack((idx0, idx1), axis=-1), (geometry.n_bins, 2 * n_drive))
        if n_drive < per_ray:
            pad = 2 * (per_ray - n_drive)
            data = xp.concat((data, xp.zeros((geometry.n_bins, pad), dtype=data.dtype, device=dev)), axis=1)
            index = xp.concat((index, xp.zeros((geometry.n_bins, pad), dtype=index.dtype, device=dev)), axis=1)
        data_blocks.append(xp.astype(xp.reshape(data, (-1,)), dtype))
        index_blocks.append(xp.astype(xp.reshape(index, (-1,)), index_dtype))
    n_rows = geometry.n_angles * geometry.n_bins
    return xp.concat(data_blocks), xp.concat(index_blocks), n_rows, nx * ny


def _pixel_rows(geometry: ParallelBeamGeometry, backend: Backend, dtype, index_dtype):
    """Row-major entries of the pixel-driven backprojector: 2 per view for each pixel."""
    xp, dev = backend.xp, backend.device
    (nx, ny), (dx, dy) = geometry.image_shape, geometry.pixel_size_mm
    theta = xp.asarray(geometry.angles_rad, dtype=xp.float64, device=dev)
    cos, sin = xp.cos(theta)[None, :], xp.sin(theta)[None, :]
    ys = ((xp.arange(ny, dtype=xp.float64, device=dev) - (ny - 1) / 2.0) * dy)[:, None]
    view_offset = xp.arange(geometry.n_angles, dtype=xp.int64, device=dev)[None, :] * geometry.n_bins
    data_blocks, index_blocks = [], []
    for i in range(nx):
        x = (i - (nx - 1) / 2.0) * dx
        position = (x * cos + ys * sin) / geometry.bin_size_mm + (geometry.n_bins - 1) / 2.0  # (ny, views)
        (k0, w0), (k1, w1) = _linear_weights(xp, position, geometry.n_bins, 1.0)
        data_blocks.append(xp.astype(xp.reshape(xp.stack((w0, w1), axis=-1), (-1,)), dtype))
        index = xp.stack((view_offset + k0, view_offset + k1), axis=-1)
        index_blocks.append(xp.astype(xp.reshape(index, (-1,)), index_dtype))
    return xp.concat(data_blocks), xp.concat(index_blocks), nx * ny, geometry.n_angles * geometry.n_bins
