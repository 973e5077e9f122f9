"""A stack of layers, each convolved with its own kernel, summed into one image."""

from __future__ import annotations

from collections.abc import Sequence

from imagingsim.backend import Backend
from imagingsim.operators.base import LinearOperator
from imagingsim.operators.blur import fft_length


class LayeredBlur(LinearOperator):
    """Sum over layers of per-layer convolutions, ``y = sum_l k_l * x_l``, by real FFTs.

    Maps a stack of ``L`` layers ``(L, n_1, ..., n_d)`` to one image ``(n_1, ..., n_d)``;
    layer ``l`` is convolved with its own centred kernel ``k_l`` (linear, 'same' size, zero
    outside, exactly as :class:`imagingsim.operators.Blur` does for one image) and the
    spectra are summed before a single inverse transform. The adjoint correlates the image
    with each kernel and returns the stack. Depth-dependent blurs are the use: planar
    fluorescence imaging (one surface PSF per source depth), a depth-dependent collimator
    response, defocus by layer.

    Parameters
    ----------
    kernels : device array ``(L, k_1, ..., k_d)``
        One real kernel per layer, odd lengths, centred at ``k_i // 2``; same units as the
        mapping wants (e.g. fractions of a layer's light per pixel).
    in_shape : tuple of int
        ``(L, n_1, ..., n_d)``; the output shape is ``(n_1, ..., n_d)``.
    backend : Backend
        Where the kernels, inputs and outputs live.

    Notes
    -----
    Each padded length is the smallest 7-smooth integer ``>= n_i + k_i - 1``
    (:func:`imagingsim.operators.blur.fft_length`): no wrap-around, fast FFTs.
    """

    def __init__(self, kernels, in_shape: Sequence[int], backend: Backend):
        in_shape = tuple(int(n) for n in in_shape)
        super().__init__(in_shape, in_shape[1:], backend)
        kshape = tuple(int(k) for k in kernels.shape)
        if len(kshape) != len(in_shape) or kshape[0] != in_shape[0] or any(k % 2 == 0 for k in kshape[1:]):
            raise ValueError(
                f"LayeredBlur needs one kernel per layer with odd lengths, (L, odd, ...) for {in_shape}, got {kshape}"
            )
        self.kernels = kernels
        d = len(in_shape) - 1
        self._layer_axes = tuple(range(1, d + 1))
        self._image_axes = tuple(range(d))
        self._centre = tuple(k // 2 for k in kshape[1:])
        self._padded = tuple(fft_length(n + k - 1) for n, k in zip(in_shape[1:], kshape[1:]))
        self._kernel_ft = backend.fft.rfftn(kernels, s=self._padded, axes=self._layer_axes)

    def _apply(self, x):
        xp, fft = self.backend.xp, self.backend.fft
        spectrum = xp.sum(fft.rfftn(x, s=self._padded, axes=self._layer_axes) * self._kernel_ft, axis=0)
        full = fft.irfftn(spectrum, s=self._padded, axes=self._image_axes)
        return full[tuple(slice(c, c + n) for c, n in zip(self._centre, self.out_shape))]

    def _adjoint(self, y):
        xp, fft = self.backend.xp, self.backend.fft
        spectrum = fft.rfftn(y, s=self._padded, axes=self._image_axes)[None, ...] * xp.conj(self._kernel_ft)
        full = fft.irfftn(spectrum, s=self._padded, axes=self._layer_axes)
        # The correlation at lag j - c sits at index (j - c) mod P: roll it back into place.
        rolled = xp.roll(full, self._centre, axis=self._layer_axes)
        return rolled[(slice(None),) + tuple(slice(0, n) for n in self.out_shape)]


__all__ = ["LayeredBlur"]
