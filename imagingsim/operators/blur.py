"""Convolution with a compact kernel (PSF, positron range, detector blur) and its adjoint."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from imagingsim.backend import Backend
from imagingsim.operators.base import LinearOperator

#: FWHM of a Gaussian in units of its standard deviation, 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


class Blur(LinearOperator):
    """Linear ('same'-size, zero outside) convolution with a centred kernel, via real FFTs.

    ``y[i] = sum_j h[i - j + c] x[j]`` with ``c = k // 2`` on each axis: the image is zero
    outside its box, so nothing wraps around and activity blurred over the edge leaves the
    field of view (as it does in a scanner). The adjoint is the matching correlation. Only
    axes where the kernel is longer than 1 are transformed.

    Parameters
    ----------
    kernel : device array
        Real kernel with one odd length per axis of ``in_shape`` (1 where there is no blur),
        centred at ``k // 2``. Normalise it to sum 1 to conserve counts.
    in_shape : tuple of int
        Shape of the images it blurs.
    backend : Backend
    """

    def __init__(self, kernel, in_shape: Sequence[int], backend: Backend):
        super().__init__(in_shape, in_shape, backend)
        kshape = tuple(int(k) for k in kernel.shape)
        if len(kshape) != len(self.in_shape) or any(k % 2 == 0 for k in kshape):
            raise ValueError(f"Blur kernel must have one odd length per image axis, got {kshape} for {self.in_shape}")
        self.kernel = kernel
        self._axes = tuple(a for a, k in enumerate(kshape) if k > 1)
        self._centre = tuple(kshape[a] // 2 for a in self._axes)
        # Any length >= n + k - 1 avoids wrap-around; a 7-smooth one keeps the FFT fast (a
        # 113-point transform costs several times a 120-point one).
        self._padded = tuple(fft_length(self.in_shape[a] + kshape[a] - 1) for a in self._axes)
        self._crop = tuple(slice(None) if a not in self._axes else slice(0, n) for a, n in enumerate(self.in_shape))
        if self._axes:
            self._kernel_ft = backend.fft.rfftn(kernel, s=self._padded, axes=self._axes)

    @classmethod
    def gaussian(
        cls,
        in_shape: Sequence[int],
        voxel_size_mm: Sequence[float],
        fwhm_mm: float | Sequence[float],
        backend: Backend,
        *,
        truncate: float = 4.0,
        dtype=None,
    ) -> Blur:
        """A Gaussian blur of ``fwhm_mm`` (one value, or one per axis; 0 = none).

        The kernel is the Gaussian integrated over each voxel (differences of erf), so a
        blur much narrower than a voxel tends to the identity and the kernel sums to 1 for
        any width; it is truncated at ``truncate`` standard deviations.
        """
        ndim = len(in_shape)
        fwhms = (float(fwhm_mm),) * ndim if isinstance(fwhm_mm, (int, float)) else tuple(float(f) for f in fwhm_mm)
        if len(fwhms) != ndim or len(voxel_size_mm) != ndim:
            raise ValueError(f"Blur.gaussian needs {ndim} FWHM and voxel sizes, got {fwhms} and {tuple(voxel_size_mm)}")
        if any(f < 0 for f in fwhms):
            raise ValueError(f"Blur.gaussian: fwhm_mm must be >= 0, got {fwhms}")
        if any(not float(v) > 0 for v in voxel_size_mm):
            raise ValueError(f"Blur.gaussian: voxel_size_mm must be > 0, got {tuple(voxel_size_mm)}")
        xp = backend.xp
        kernel = None
        for axis, (fwhm, voxel, n) in enumerate(zip(fwhms, voxel_size_mm, in_shape)):
            weights = _gaussian_weights(fwhm / FWHM_PER_SIGMA / float(voxel), truncate, int(n))
            shape = [1] * ndim
            shape[axis] = len(weights)
            line = xp.reshape(backend.asarray(weights, dtype=dtype or xp.float64), tuple(shape))
            kernel = line if kernel is None else kernel * line
        return cls(kernel, in_shape, backend)

    def _apply(self, x):
        if not self._axes:
            return self.kernel[(0,) * x.ndim] * x
        fft = self.backend.fft
        full = fft.irfftn(fft.rfftn(x, s=self._padded, axes=self._axes) * self._kernel_ft, s=self._padded, axes=self._axes)
        start = dict(zip(self._axes, self._centre))
        return full[tuple(slice(start[a], start[a] + n) if a in start else slice(None) for a, n in enumerate(self.in_shape))]

    def _adjoint(self, y):
        if not self._axes:
            return self.kernel[(0,) * y.ndim] * y
        xp, fft = self.backend.xp, self.backend.fft
        spectrum = fft.rfftn(y, s=self._padded, axes=self._axes) * xp.conj(self._kernel_ft)
        full = fft.irfftn(spectrum, s=self._padded, axes=self._axes)
        # The correlation at lag j - c sits at index (j - c) mod L: roll it back into place.
        return xp.roll(full, self._centre, axis=self._axes)[self._crop]


def fft_length(n: int) -> int:
    """The smallest integer >= ``n`` with no prime factor above 7."""
    while True:
        m = n
        for p in (2, 3, 5, 7):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _gaussian_weights(sigma_vox: float, truncate: float, n: int) -> list[float]:
    """Voxel-integrated weights of a unit-area Gaussian of ``sigma_vox`` voxels, centred."""
    if sigma_vox < 1e-3:
        return [1.0]
    half = min(n - 1, max(1, math.ceil(truncate * sigma_vox)))
    scale = 1.0 / (math.sqrt(2.0) * sigma_vox)
    cdf = [0.5 * math.erf((k + 0.5) * scale) for k in range(-half - 1, half + 1)]
    weights = [hi - lo for lo, hi in itertools.pairwise(cdf)]
    total = sum(weights)
    return [w / total for w in weights]
