"""Linear operators: the dot test, shape errors, composition order and the Gaussian blur's physics.

Every test runs on each backend of the matrix (``backend`` fixture in ``conftest.py``); values
are read back only through ``backend.to_host`` / ``backend.scalar``, so on ``strict`` any hidden
synchronisation in an operator fails the test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from imagingsim.backend import get_backend
from imagingsim.operators import (
    Blur,
    Composition,
    Diagonal,
    FrameWise,
    LinearOperator,
    Reshape,
    check_adjoint,
)
from imagingsim.operators.blur import FWHM_PER_SIGMA

SHAPE = (20, 17, 9)
VOXEL_MM = (0.8, 1.5, 2.0)  # anisotropic on purpose: FWHM in mm must become different widths in voxels


def _device(backend, host, dtype=None):
    return backend.from_host(np.asarray(host), dtype=dtype or backend.xp.float64)


def _skewed_kernel(backend, dtype=None):
    """A non-symmetric 3-D kernel (5, 3, 1): convolution and correlation differ with it."""
    host = np.random.default_rng(11).uniform(0.0, 1.0, (5, 3, 1))
    host[0] = 0.0  # one-sided along axis 0: a correlation in place of the convolution shifts
    return _device(backend, host / host.sum(), dtype)


def _operators(backend, dtype):
    """Diagonal, two Gaussian blurs, a skewed custom blur and compositions of them."""
    xp = backend.xp
    weights = backend.rng(5).uniform(SHAPE, 0.2, 3.0, dtype=dtype)
    diag = Diagonal(weights, backend)
    # Per-axis FWHM incl. a 0 axis (no blur along z) and one FWHM below a voxel.
    gauss = Blur.gaussian(SHAPE, VOXEL_MM, (3.0, 4.5, 0.0), backend, dtype=dtype)
    gauss_fine = Blur.gaussian(SHAPE, VOXEL_MM, (0.5, 2.0, 5.0), backend, dtype=dtype)
    skewed = Blur(_skewed_kernel(backend, dtype), SHAPE, backend)
    assert gauss.kernel.dtype == dtype and skewed.kernel.dtype == dtype and xp is backend.xp
    return {
        "diagonal": diag,
        "gaussian": gauss,
        "gaussian_fine": gauss_fine,
        "skewed": skewed,
        "diag@skewed": diag @ skewed,
        "skewed@gaussian@diag": skewed @ gauss @ diag,
        "framewise(skewed)": FrameWise(skewed, 3),
        "reshape@gaussian": Reshape(SHAPE, (SHAPE[0] * SHAPE[1], SHAPE[2]), backend) @ gauss,
    }


# --- the dot test -------------------------------------------------------------------------------


def test_dot_test_float64(backend):
    for name, op in _operators(backend, backend.xp.float64).items():
        # float64 rounding of sums of ~3e3 products is ~1e-16 of their typical size.
        value = check_adjoint(op)
        assert value < 1e-12, f"{name}: dot test {value:.2e}"


def test_dot_test_float32(backend):
    xp = backend.xp
    for name, op in _operators(backend, xp.float32).items():
        # float32 rounding (eps 6e-8) in FFTs and sums: ~1e-7, far below a wrong adjoint's O(1).
        value = check_adjoint(op, dtype=xp.float32)
        assert value < 1e-5, f"{name}: dot test {value:.2e}"


class _DoubledAdjoint(LinearOperator):
    """A deliberately broken pair: the adjoint is twice the true one."""

    def __init__(self, weights, backend):
        super().__init__(weights.shape, weights.shape, backend)
        self.weights = weights

    def _apply(self, x):
        return self.weights * x

    def _adjoint(self, y):
        return 2.0 * self.weights * y


class _ConvolutionAsAdjoint(Blur):
    """The classic slip: the convolution reused as its own adjoint (right only for even kernels)."""

    _adjoint = Blur._apply


@pytest.mark.parametrize("shape", [(12,), (40, 40, 40)])
def test_dot_test_catches_a_wrong_adjoint(backend, shape):
    weights = backend.rng(2).uniform(shape, 0.5, 2.0)
    kernel_host = np.zeros((5,) + (1,) * (len(shape) - 1))
    kernel_host[3:, ...] = 0.5  # one-sided: its correlation is its convolution mirrored
    broken = [
        _DoubledAdjoint(weights, backend),
        _ConvolutionAsAdjoint(_device(backend, kernel_host), shape, backend),
    ]
    for op in broken:
        # O(1) for every size: the scale is the typical size of <Ax, y>, not the Cauchy-Schwarz
        # bound (which would shrink a wrong adjoint's score like 1/sqrt(size), 4e-3 at 40^3).
        value = check_adjoint(op)
        assert value > 0.05, f"{op!r}: a wrong adjoint scored only {value:.2e}"


# --- shapes and composition ---------------------------------------------------------------------


def test_shape_errors_name_the_operator(backend):
    blur = Blur.gaussian(SHAPE, VOXEL_MM, 2.0, backend)
    wrong = backend.zeros((20, 17, 8))
    with pytest.raises(ValueError, match=r"Blur\(.*input has shape \(20, 17, 8\), expected \(20, 17, 9\)"):
        blur.apply(wrong)
    with pytest.raises(ValueError, match=r"Blur\(.*adjoint input has shape"):
        blur.adjoint(wrong)
    diag = Diagonal(backend.zeros((4, 5)), backend)
    with pytest.raises(ValueError, match=r"Diagonal\(\(4, 5\) -> \(4, 5\)\)"):
        diag @ backend.zeros((5, 4))
    chained = diag @ Diagonal(backend.zeros((4, 5)), backend)
    with pytest.raises(ValueError, match=r"Diagonal.*@ Diagonal.*input has shape \(4, 4\)"):
        chained.apply(backend.zeros((4, 4)))


def test_composing_mismatched_shapes_raises(backend):
    blur = Blur.gaussian(SHAPE, VOXEL_MM, 2.0, backend)
    diag = Diagonal(backend.zeros((4, 5)), backend)
    with pytest.raises(ValueError, match=r"cannot compose Blur.*after Diagonal.*\(4, 5\) does not match \(20, 17, 9\)"):
        blur @ diag
    other_name = "numpy" if backend.name != "numpy" else "strict"
    other = Diagonal(get_backend(other_name).zeros(SHAPE), get_backend(other_name))
    with pytest.raises(ValueError, match="cannot compose"):
        blur @ other


def test_composition_applies_inner_first(backend):
    xp = backend.xp
    diag = Diagonal(backend.rng(3).uniform(SHAPE, 0.0, 1.0), backend)
    skewed = Blur(_skewed_kernel(backend), SHAPE, backend)
    comp = skewed @ diag
    assert isinstance(comp, Composition) and comp.in_shape == SHAPE and comp.out_shape == SHAPE
    x = backend.rng(4).uniform(SHAPE, -1.0, 1.0)
    expected = backend.to_host(skewed.apply(diag.apply(x)))
    reversed_order = backend.to_host(diag.apply(skewed.apply(x)))
    got = backend.to_host(comp @ x)
    # Same arithmetic in the same order: equal to rounding (1e-12 of the O(1) values).
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert np.abs(reversed_order - expected).max() > 1e-2  # the order matters for this pair
    adj = backend.to_host(comp.adjoint(x))
    np.testing.assert_allclose(adj, backend.to_host(diag.adjoint(skewed.adjoint(x))), rtol=0, atol=1e-12)
    assert xp is backend.xp


# --- Blur conventions and physics ---------------------------------------------------------------


def test_blur_is_zero_padded_linear_convolution(backend):
    """``y[i] = sum_j h[i - j + c] x[j]``: scipy's constant-mode convolution, centred kernels."""
    skewed = Blur(_skewed_kernel(backend), SHAPE, backend)
    x_host = np.random.default_rng(0).uniform(-1.0, 1.0, SHAPE)
    got = backend.to_host(skewed.apply(_device(backend, x_host)))
    kernel = backend.to_host(skewed.kernel)
    expected = ndimage.convolve(x_host, kernel, mode="constant", cval=0.0)
    # FFT vs direct sums of O(1) values: rounding ~1e-16.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    adjoint = backend.to_host(skewed.adjoint(_device(backend, x_host)))
    np.testing.assert_allclose(adjoint, ndimage.correlate(x_host, kernel, mode="constant", cval=0.0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("fwhm_mm", [0.0, 0.3, 1.0, 3.0, 12.0])
def test_gaussian_kernel_sums_to_one(backend, fwhm_mm):
    blur = Blur.gaussian(SHAPE, VOXEL_MM, fwhm_mm, backend)
    total = backend.scalar(backend.xp.sum(blur.kernel))
    assert abs(total - 1.0) < 1e-12  # normalised explicitly; float64 rounding only
    shape = tuple(int(n) for n in blur.kernel.shape)
    assert all(k % 2 == 1 for k in shape)
    if fwhm_mm == 0.0:
        assert shape == (1, 1, 1)


@pytest.mark.parametrize(
    "fwhm_mm",
    [
        (3.0, 6.0, 0.0),  # 3.75, 4 voxels and no blur
        (1.6, 3.0, 4.0),  # exactly 2 voxels on every axis: the voxel-integration term is 5 % of FWHM here
        (8.0, 8.0, 8.0),
    ],
)
def test_gaussian_fwhm_from_second_moment(backend, fwhm_mm):
    """A centred point blurs to a profile whose FWHM is the configured one.

    The kernel is the Gaussian integrated over each voxel, i.e. the Gaussian convolved with a
    one-voxel box: its discrete variance is ``sigma^2 + voxel^2 / 12`` (Sheppard's correction),
    so ``FWHM = 2.3548 * sqrt(variance - voxel^2 / 12)``. A point-sampled kernel would miss
    the ``voxel^2/12`` term and fail the 2 % check on the 2-voxel case.
    """
    shape = (41, 33, 25)
    blur = Blur.gaussian(shape, VOXEL_MM, fwhm_mm, backend)
    point = np.zeros(shape)
    point[20, 16, 12] = 1.0
    image = backend.to_host(blur.apply(_device(backend, point)))
    for axis, (fwhm, voxel) in enumerate(zip(fwhm_mm, VOXEL_MM)):
        profile = image.sum(axis=tuple(a for a in range(3) if a != axis))
        coord = (np.arange(shape[axis]) - shape[axis] // 2) * voxel
        mean = (profile * coord).sum() / profile.sum()
        variance = (profile * (coord - mean) ** 2).sum() / profile.sum()
        assert abs(mean) < 1e-9 * voxel  # a centred kernel does not shift the point
        if fwhm == 0.0:
            assert variance < 1e-20  # no blur on this axis: the point stays one voxel wide
            continue
        measured = FWHM_PER_SIGMA * math.sqrt(variance - voxel**2 / 12.0)
        # 2 %: Sheppard's correction is exact to ~exp(-2 pi^2 sigma^2) (<1e-5 from 2 voxels up);
        # truncation at 4 sigma removes 6e-5 of the mass.
        assert abs(measured / fwhm - 1.0) < 0.02, f"axis {axis}: FWHM {measured:.4f} mm, configured {fwhm} mm"


def test_interior_blob_keeps_its_counts(backend):
    shape = (40, 36, 24)
    blur = Blur.gaussian(shape, VOXEL_MM, (3.0, 4.5, 6.0), backend)  # half-widths 8, 7, 6 voxels
    blob = np.zeros(shape)
    blob[14:26, 12:24, 8:16] = np.random.default_rng(1).uniform(0.5, 2.0, (12, 12, 8))
    x = _device(backend, blob)
    total_in = backend.scalar(backend.xp.sum(x))
    total_out = backend.scalar(backend.xp.sum(blur.apply(x)))
    # The support stays > 1 kernel half-width from every edge, so nothing leaves: rounding only.
    assert abs(total_out / total_in - 1.0) < 1e-10


def test_mass_at_the_edge_leaves_and_never_wraps(backend):
    n = 32
    voxel = (1.0, 1.0, 1.0)
    blur = Blur.gaussian((n, 1, 1), voxel, (10.0, 0.0, 0.0), backend)  # kernel wider than the image
    kernel = backend.to_host(blur.kernel)[:, 0, 0]
    centre = kernel.shape[0] // 2
    assert kernel.shape[0] > n  # a circular convolution would certainly wrap here
    for index, far in ((0, n - 1), (n - 1, 0)):
        point = np.zeros((n, 1, 1))
        point[index] = 1.0
        out = backend.to_host(blur.apply(_device(backend, point)))[:, 0, 0]
        back = backend.to_host(blur.adjoint(_device(backend, point)))[:, 0, 0]
        # y[i] = h[i - index + c] inside the box, nothing else: the part of the kernel that falls
        # outside the box is lost, not wrapped. FFT rounding is ~1e-17 of the peak.
        lags = np.arange(n) - index + centre
        expected = np.where((lags >= 0) & (lags < kernel.shape[0]), kernel[np.clip(lags, 0, kernel.shape[0] - 1)], 0.0)
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(back, expected, rtol=0, atol=1e-12)  # symmetric kernel: same
        # The far voxel is beyond the kernel's reach (31 > 17 voxels); a wrap would put
        # kernel[centre - 1] ~ 0.09 there.
        assert abs(out[far]) < 1e-12 and abs(back[far]) < 1e-12
        # About half the kernel (plus half its centre weight) stays; the rest left the field.
        assert 0.5 < out.sum() < 0.6


def test_gaussian_rejects_bad_parameters(backend):
    with pytest.raises(ValueError, match="fwhm_mm must be >= 0"):
        Blur.gaussian(SHAPE, VOXEL_MM, (1.0, -1.0, 0.0), backend)
    with pytest.raises(ValueError, match="needs 3 FWHM"):
        Blur.gaussian(SHAPE, VOXEL_MM, (1.0, 1.0), backend)
    with pytest.raises(ValueError, match="voxel_size_mm must be > 0"):
        Blur.gaussian(SHAPE, (1.0, 0.0, 1.0), 2.0, backend)
    with pytest.raises(ValueError, match="odd length per image axis"):
        Blur(backend.zeros((4, 3, 1)), SHAPE, backend)


def test_framewise_equals_the_operator_on_each_frame(backend):
    op = Blur(_skewed_kernel(backend), SHAPE, backend)
    stack = backend.rng(3).uniform(SHAPE + (2,), dtype=backend.xp.float64)
    out = backend.to_host(FrameWise(op, 2).apply(stack))
    for t in range(2):
        # Same arithmetic on the same frame: equal to rounding.
        np.testing.assert_allclose(out[..., t], backend.to_host(op.apply(stack[..., t])), rtol=0, atol=1e-15)


def test_framewise_frames_on_two_workers_are_the_same_bits_as_in_series():
    # The frames go to the workers (Backend.map_ordered); each is the same transform of the
    # same frame, stacked in order, so the worker count never changes a bit.
    import dataclasses

    serial = dataclasses.replace(get_backend("numpy"), workers=1)
    two = dataclasses.replace(serial, workers=2)
    kernel = _skewed_kernel(serial)
    stack = serial.rng(5).uniform(SHAPE + (5,), dtype=serial.xp.float64)
    for method in ("apply", "adjoint"):
        one_at_a_time = getattr(FrameWise(Blur(kernel, SHAPE, serial), 5), method)(stack)
        two_at_once = getattr(FrameWise(Blur(kernel, SHAPE, two), 5), method)(stack)
        np.testing.assert_array_equal(np.asarray(two_at_once), np.asarray(one_at_a_time), err_msg=method)


def test_reshape_refuses_a_different_size(backend):
    with pytest.raises(ValueError, match="different numbers of elements"):
        Reshape((4, 5), (3, 7), backend)


def test_complex_dot_test_uses_the_hermitian_adjoint(backend):
    xp = backend.xp
    rng = backend.rng(8)
    weights = xp.astype(rng.uniform(SHAPE, -1.0, 1.0), xp.complex128) + 1j * xp.astype(
        rng.uniform(SHAPE, -1.0, 1.0), xp.complex128
    )
    # Hermitian pair: rounding only (complex128 sums of ~3e3 products).
    assert check_adjoint(Diagonal(weights, backend), dtype=xp.complex128) < 1e-12

    class Unconjugated(Diagonal):
        def _adjoint(self, y):
            return self.weights * y  # the transpose, not the adjoint, of a complex diagonal

    # A missing conjugate is an O(1) mismatch for weights with O(1) imaginary parts.
    assert check_adjoint(Unconjugated(weights, backend), dtype=xp.complex128) > 0.1
