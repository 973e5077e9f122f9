"""Parallel-beam projectors: adjointness, conventions, analytic line integrals, cross-checks.

Conventions under test (stated once in :mod:`imagingsim.projectors.geometry`):

- The transaxial image is ``(nx, ny)`` with axis 0 = +x and axis 1 = +y; pixel ``(i, j)`` is
  centred at ``x_i = (i - (nx - 1) / 2) dx``, ``y_j = (j - (ny - 1) / 2) dy`` (mm): the rotation
  axis passes through the centre of the image box.
- View ``theta`` integrates along ``x cos(theta) + y sin(theta) = s``; radial bin ``b`` is centred
  at ``s_b = (b - (n_bins - 1) / 2) * bin_size_mm``. So a point at ``(x0, y0)`` traces
  ``s(theta) = x0 cos(theta) + y0 sin(theta)``: at 0 deg a point at +x lies at +s, at 90 deg a
  point at +y lies at +s.
- Sinograms are ``(view, bin, slice)``; slices are independent.

Mapping to ``skimage.transform.radon(image, theta)`` (used as an independent reference):
skimage indexes ``image[row, col]``, centres both at ``N // 2`` (= ``(N - 1) / 2`` for odd N,
so odd sizes are used), rotates the image and sums down the rows, so its detector coordinate
is ``s = X cos(theta) - Y sin(theta)`` with ``X`` = column offset and ``Y`` = row offset, in
pixels, and it returns ``(detector, angle)``. With columns = +x and rows = -y, i.e.
``sk_image[r, c] = image[c, N - 1 - r]`` (``image[:, ::-1].T``), its ``s`` is ours at the same
angle in degrees; ours = ``pixel_mm * radon(image[:, ::-1].T, theta).T``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.transform import radon

from imagingsim.backend import backend_of, get_backend
from imagingsim.operators import check_adjoint
from imagingsim.projectors import (
    ParallelBeamGeometry,
    ParallelProjector,
    PixelBackprojector,
    clear_matrix_cache,
)

# --- helpers ------------------------------------------------------------------------------------


def _centres_mm(geometry):
    (nx, ny), (dx, dy) = geometry.image_shape, geometry.pixel_size_mm
    return (np.arange(nx) - (nx - 1) / 2.0) * dx, (np.arange(ny) - (ny - 1) / 2.0) * dy


def _gaussian(geometry, x0, y0, sigma_x, sigma_y=None):
    """A smooth blob centred at (x0, y0) mm, sampled at the pixel centres."""
    xs, ys = _centres_mm(geometry)
    sigma_y = sigma_x if sigma_y is None else sigma_y
    return np.exp(-((xs[:, None] - x0) ** 2) / (2 * sigma_x**2) - (ys[None, :] - y0) ** 2 / (2 * sigma_y**2))


def _disc(geometry, radius_mm, supersample=16):
    """Partial-volume disc centred on the axis: each pixel holds the fraction of it inside."""
    (nx, ny), (dx, dy) = geometry.image_shape, geometry.pixel_size_mm
    sub_x = ((np.arange(nx * supersample) + 0.5) / supersample - nx / 2.0) * dx
    sub_y = ((np.arange(ny * supersample) + 0.5) / supersample - ny / 2.0) * dy
    inside = (sub_x[:, None] ** 2 + sub_y[None, :] ** 2 <= radius_mm**2).astype(np.float64)
    return inside.reshape(nx, supersample, ny, supersample).mean(axis=(1, 3))


def _project(backend, geometry, image2d, *, dtype=None):
    """The sinogram ``(views, bins)`` of one slice, on the host (float64)."""
    xp = backend.xp
    projector = ParallelProjector(geometry, 1, backend, dtype=dtype or xp.float64)
    x = backend.from_host(image2d[:, :, None], dtype=projector.dtype)
    return backend.to_host(projector.apply(x))[:, :, 0].astype(np.float64)


def _centre_of_mass(sinogram, geometry):
    s = np.asarray(geometry.bin_centres_mm)
    return (sinogram * s).sum(axis=1) / sinogram.sum(axis=1)


# --- the dot test -------------------------------------------------------------------------------

DOT_CASES = {
    # anisotropic pixels; odd and even bin counts; bins finer and coarser than the pixels
    "odd-bins": ParallelBeamGeometry.covering((32, 24), (1.0, 1.5), 20, n_bins=47),
    "even-bins": ParallelBeamGeometry.covering((23, 30), (1.3, 0.9), 17, arc_deg=360.0, n_bins=48, bin_size_mm=1.1),
}


@pytest.mark.parametrize("case", sorted(DOT_CASES))
@pytest.mark.parametrize("dtype_name, tolerance", [("float64", 1e-10), ("float32", 1e-5)])
def test_dot_test(backend, case, dtype_name, tolerance):
    dtype = getattr(backend.xp, dtype_name)
    geometry = DOT_CASES[case]
    projector = ParallelProjector(geometry, 3, backend, dtype=dtype)
    operators = {
        "projector": projector,
        "subset": projector.subset([5, 1, 13]),
        "backprojector": PixelBackprojector(geometry, 3, backend, dtype=dtype),
    }
    for name, op in operators.items():
        # Stored transposes: rounding only (~1e-16 in float64, ~1e-7 in float32), against O(1)
        # for a wrong adjoint (see test_operators.py).
        value = check_adjoint(op, dtype=dtype)
        assert value < tolerance, f"{case} {name} {dtype_name}: dot test {value:.2e}"


# --- conventions --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, n_bins", [((33, 25), 64), ((32, 24), 63)])
def test_point_on_the_axis_gives_a_straight_line(backend, shape, n_bins):
    geometry = ParallelBeamGeometry.covering(shape, (1.0, 1.5), 36, arc_deg=360.0, bin_size_mm=0.8, n_bins=n_bins)
    image = np.zeros(shape)
    nx, ny = shape
    # Odd size: the centre pixel; even size: the 2x2 block around the centre (no pixel is on it).
    image[(nx - 1) // 2 : nx // 2 + 1, (ny - 1) // 2 : ny // 2 + 1] = 1.0
    com = _centre_of_mass(_project(backend, geometry, image), geometry)
    # Symmetric footprints about s = 0: rounding only. A centre off by half a pixel would draw
    # a sinusoid of amplitude >= 0.5 pixel (0.6 bin).
    assert np.abs(com).max() < 0.01 * geometry.bin_size_mm


@pytest.mark.parametrize("x0, y0", [(5.3, -7.1), (-8.2, 6.4), (11.0, 0.0)])
def test_off_centre_point_traces_the_stated_sinusoid(backend, x0, y0):
    geometry = ParallelBeamGeometry.covering((33, 24), (1.0, 1.5), 37, arc_deg=360.0, bin_size_mm=0.75)
    # A "point" 1.5 mm wide: a single pixel is not band-limited, and sampling its hat-shaped
    # footprint at the bins moves its centre of mass by up to ~0.2 mm (aliasing, not geometry).
    image = _gaussian(geometry, x0, y0, 1.5)
    theta = np.asarray(geometry.angles_rad)
    expected = x0 * np.cos(theta) + y0 * np.sin(theta)
    # 0.05 mm: measured <= 0.021 mm; the residual is the bin sampling of a 1.5 mm wide footprint.
    assert np.abs(_centre_of_mass(_project(backend, geometry, image), geometry) - expected).max() < 0.05
    # The pixel-driven pair (the FBP backprojector's adjoint) follows the same conventions.
    pixel_driven = PixelBackprojector(geometry, 1, backend, dtype=backend.xp.float64)
    sinogram = backend.to_host(pixel_driven.adjoint(backend.from_host(image[:, :, None])))[:, :, 0]
    assert np.abs(_centre_of_mass(sinogram, geometry) - expected).max() < 0.05


def test_orientation_at_0_and_90_degrees(backend):
    geometry = ParallelBeamGeometry((31, 31), (1.0, 1.0), (0.0, 90.0), 31, 1.0)
    on_x, on_y = np.zeros((31, 31)), np.zeros((31, 31))
    on_x[15 + 6, 15] = 1.0  # x = +6 mm, y = 0
    on_y[15, 15 + 3] = 1.0  # x = 0, y = +3 mm
    com_x = _centre_of_mass(_project(backend, geometry, on_x), geometry)
    com_y = _centre_of_mass(_project(backend, geometry, on_y), geometry)
    # Bins coincide with pixel centres at 0 and 90 deg: exact up to rounding (cos 90 = 6e-17).
    np.testing.assert_allclose(com_x, [6.0, 0.0], rtol=0, atol=1e-9)  # theta = 0: s = +x
    np.testing.assert_allclose(com_y, [0.0, 3.0], rtol=0, atol=1e-9)  # theta = 90: s = +y (x towards y)


def test_slices_are_independent(backend):
    geometry = ParallelBeamGeometry.covering((20, 16), (1.0, 1.25), 12)
    projector = ParallelProjector(geometry, 4, backend)
    image = np.zeros((20, 16, 4))
    image[13, 4, 2] = 1.0
    sinogram = backend.to_host(projector.apply(backend.from_host(image, dtype=projector.dtype)))
    assert sinogram.shape == (12, geometry.n_bins, 4)
    assert np.count_nonzero(sinogram[:, :, [0, 1, 3]]) == 0  # exactly nothing leaks across slices
    alone = _project(backend, geometry, image[:, :, 2], dtype=projector.dtype)
    np.testing.assert_array_equal(sinogram[:, :, 2], alone)  # same rows, same arithmetic


# --- analytic line integrals --------------------------------------------------------------------

DISC_CASES = {
    "isotropic": ((64, 64), (1.0, 1.0)),
    "anisotropic": ((64, 44), (1.0, 1.5)),
}


@pytest.mark.parametrize("case", sorted(DISC_CASES))
def test_uniform_disc_chords(backend, case):
    shape, pixel = DISC_CASES[case]
    radius, value = 27.0, 2.5
    geometry = ParallelBeamGeometry(shape, pixel, (0.0, 30.0, 45.0, 90.0, 137.0), 95, min(pixel))
    disc = _disc(geometry, radius)
    area = disc.sum() * pixel[0] * pixel[1]
    assert abs(area / (math.pi * radius**2) - 1.0) < 1e-4  # 16x16 supersampling: area to ~1e-5
    sinogram = _project(backend, geometry, value * disc, dtype=backend.xp.float32)
    s = np.asarray(geometry.bin_centres_mm)
    inner = np.abs(s) < radius - 2 * max(pixel)
    chord = value * 2.0 * np.sqrt(radius**2 - s[inner] ** 2)
    error = np.abs(sinogram[:, inner] / chord - 1.0)
    # 1 %: measured <= 0.61 %; the error is the interpolated partial-volume rim (~0.1 mm of path
    # per crossing, growing near the tangent rays) over chords >= 20 mm.
    assert error.max() < 0.01, f"max relative error per view {error.max(axis=1)}"


def test_projected_mass_is_exact_where_the_footprint_tiles_the_bins(backend):
    """Per view, ``sum_b p_b * bin_size = sum(image) * dx * dy`` exactly when the Joseph
    footprint of a pixel (a hat of half-width ``|cos| dx`` or ``|sin| dy``) is a whole number
    of bins wide: then its samples at the bins sum to the same value wherever the pixel lands.
    This holds for any image, here a random one that fills the box up to the edges.
    """
    image = np.random.default_rng(3).uniform(0.0, 1.0, (40, 28))
    for pixel, angle, bin_size in [((1.0, 1.5), 0.0, 1.0), ((1.0, 1.5), 90.0, 1.5), ((1.2, 1.2), 90.0, 0.6)]:
        geometry = ParallelBeamGeometry((40, 28), pixel, (angle,), 120, bin_size)
        sinogram = _project(backend, geometry, image)
        mass = sinogram.sum() * bin_size
        # float64 sums of ~1e3 values: rounding ~1e-15.
        assert abs(mass / (image.sum() * pixel[0] * pixel[1]) - 1.0) < 1e-12, (pixel, angle, bin_size)


@pytest.mark.parametrize("pixel, bin_size", [((1.0, 1.0), 1.0), ((1.0, 1.5), 1.0), ((1.0, 1.5), 0.7)])
def test_projected_mass_of_a_smooth_image_at_every_view(backend, pixel, bin_size):
    """At oblique views the bins sample the hat footprints with an angle-dependent aliasing
    error (per pixel up to ~35 % at 45 deg); for an image smooth on the scale of a bin it
    averages out to the 1e-4 level, which is what the per-view total can promise.
    """
    geometry = ParallelBeamGeometry.covering((48, 32), pixel, 36, bin_size_mm=bin_size)
    image = _gaussian(geometry, 1.3, -2.1, 3.0, 3.6)  # zero (< 1e-9) at the box edges
    sinogram = _project(backend, geometry, image)
    mass = sinogram.sum(axis=1) * bin_size
    error = np.abs(mass / (image.sum() * pixel[0] * pixel[1]) - 1.0)
    # 1e-3: measured <= 4e-4 (worst at 1.0 x 1.5 mm pixels, 1 mm bins).
    assert error.max() < 1e-3, f"per-view mass error {error.max():.2e}"
    assert error[0] < 1e-3 and error.mean() < 2e-4  # no systematic loss


def test_single_pixel_mass_aliasing_at_45_degrees_is_as_documented(backend):
    """Pins the aliasing stated in ``ParallelProjector``'s notes (a property of sampling the
    line integrals at the bin centres, not a defect of the geometry): at 45 deg the footprint
    hat is 1/sqrt(2) bins wide, so a pixel on a bin centre sums to sqrt(2) and one a sqrt(2)/2
    bin away (its x-neighbour) to 2 sqrt(2) - 2."""
    geometry = ParallelBeamGeometry((31, 31), (1.0, 1.0), (45.0,), 45, 1.0)
    for pixel, expected in (((15, 15), math.sqrt(2.0)), ((16, 15), 2.0 * math.sqrt(2.0) - 2.0)):
        image = np.zeros((31, 31))
        image[pixel] = 1.0
        mass = _project(backend, geometry, image).sum() * geometry.bin_size_mm
        assert abs(mass - expected) < 1e-12, (pixel, mass)  # closed form; float64 rounding only


@pytest.mark.parametrize("blob", [(0.0, 0.0, 3.0, 3.0), (2.0, -3.0, 2.0, 3.5)])
def test_agrees_with_skimage_radon(backend, blob):
    n, pixel = 41, 0.8
    geometry = ParallelBeamGeometry((n, n), (pixel, pixel), tuple(np.arange(0.0, 180.0, 7.5)), n, pixel)
    x0, y0, sx, sy = blob
    image = _gaussian(geometry, x0 * pixel, y0 * pixel, sx * pixel, sy * pixel)
    xs, ys = _centres_mm(geometry)
    image *= xs[:, None] ** 2 + ys[None, :] ** 2 <= (n // 2 * pixel) ** 2  # skimage's circle=True
    ours = _project(backend, geometry, image)
    reference = pixel * radon(image[:, ::-1].T, theta=np.asarray(geometry.angles_deg), circle=True).T
    assert reference.shape == ours.shape
    # 2 % of the peak: both interpolate linearly (skimage rotates bilinearly, Joseph interpolates
    # per row); measured 0.9 % (centred) and 0.7 % (elongated).
    assert np.abs(ours - reference).max() < 0.02 * ours.max()
    if blob[0] != 0.0:
        # The mapping is not vacuous: without the y flip the elongated blob disagrees by ~50 %.
        naive = pixel * radon(image.T, theta=np.asarray(geometry.angles_deg), circle=True).T
        assert np.abs(ours - naive).max() > 0.3 * ours.max()


# --- subsets ------------------------------------------------------------------------------------


def test_subset_equals_rows_of_the_full_projector(backend):
    geometry = ParallelBeamGeometry.covering((24, 20), (1.0, 1.25), 18)
    projector = ParallelProjector(geometry, 2, backend)
    x = backend.rng(9).uniform((24, 20, 2), 0.0, 1.0, dtype=projector.dtype)
    full = backend.to_host(projector.apply(x))
    views = [7, 2, 11, 17]
    sub = projector.subset(views)
    assert sub.out_shape == (4, geometry.n_bins, 2) and sub.dtype == projector.dtype
    # The rows of a view are built from its angle alone, by the same arithmetic: bit-identical.
    np.testing.assert_array_equal(backend.to_host(sub.apply(x)), full[views])
    y = backend.rng(10).uniform(sub.out_shape, 0.0, 1.0, dtype=projector.dtype)
    padded = np.zeros(projector.out_shape, dtype=np.float32)
    padded[views] = backend.to_host(y)
    full_adjoint = backend.to_host(projector.adjoint(backend.from_host(padded, dtype=projector.dtype)))
    # float32 sums in a different grouping (zeros interleaved): rounding ~1e-7 of O(10) values.
    np.testing.assert_allclose(backend.to_host(sub.adjoint(y)), full_adjoint, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_subsets", [1, 4, 5, 18])
def test_subset_views_partition_all_views(n_subsets):
    geometry = ParallelBeamGeometry.covering((24, 20), (1.0, 1.25), 18)
    subsets = geometry.subset_views(n_subsets)
    assert len(subsets) == n_subsets and all(subsets)
    flat = [v for subset in subsets for v in subset]
    assert sorted(flat) == list(range(18))  # every view exactly once
    for subset in subsets:
        # interleaved: each subset spans the arc with a constant step
        assert np.all(np.diff(subset) == n_subsets)


@pytest.mark.parametrize(("n_subsets", "offsets"), [(4, [0, 2, 1, 3]), (8, [0, 4, 2, 6, 1, 5, 3, 7]), (3, [0, 1, 2])])
def test_subsets_are_visited_far_apart_in_angle(n_subsets, offsets):
    geometry = ParallelBeamGeometry.covering((24, 20), (1.0, 1.25), 24)
    assert [subset[0] for subset in geometry.subset_views(n_subsets)] == offsets


def test_subset_views_rejects_bad_counts():
    geometry = ParallelBeamGeometry.covering((24, 20), (1.0, 1.25), 18)
    for bad in (0, 19):
        with pytest.raises(ValueError, match="n_subsets must be in"):
            geometry.subset_views(bad)


# --- the pixel-driven backprojector -------------------------------------------------------------


def test_backprojector_weights_sum_to_one_per_view(backend):
    shape, pixel = (30, 22), (1.0, 1.4)
    geometry = ParallelBeamGeometry(shape, pixel, (0.0, 25.0, 45.0, 90.0, 150.0), 29, 1.0)  # corners fall off
    backprojector = PixelBackprojector(geometry, 1, backend, dtype=backend.xp.float64)
    xs, ys = _centres_mm(geometry)
    half = (geometry.n_bins - 1) / 2.0 * geometry.bin_size_mm
    for view, theta in enumerate(geometry.angles_rad):
        ones = np.zeros(backprojector.in_shape)
        ones[view] = 1.0
        weights = backend.to_host(backprojector.apply(backend.from_host(ones)))[:, :, 0]
        s = xs[:, None] * math.cos(theta) + ys[None, :] * math.sin(theta)
        inside = np.abs(s) <= half
        # Linear interpolation is a partition of unity: 1 up to rounding where both neighbours
        # are bins; beyond the last bin centre the missing neighbour's share is lost.
        np.testing.assert_allclose(weights[inside], 1.0, rtol=0, atol=1e-12)
        assert np.all(weights[~inside] < 1.0) and np.all(weights >= 0.0)
        assert inside.sum() > inside.size // 2 and (~inside).any()  # both regimes are exercised


def test_backprojector_adjoint_conserves_counts(backend):
    """The pixel-driven projector (the backprojector's adjoint) spreads each pixel over bins with
    weights that sum to 1, so every view holds exactly the image's total."""
    geometry = ParallelBeamGeometry.covering((26, 20), (1.0, 1.5), 13, bin_size_mm=0.7)
    backprojector = PixelBackprojector(geometry, 2, backend, dtype=backend.xp.float64)
    image = np.random.default_rng(4).uniform(0.0, 1.0, (26, 20, 2))
    sinogram = backend.to_host(backprojector.adjoint(backend.from_host(image)))
    # float64 sums of ~500 values: rounding ~1e-15.
    np.testing.assert_allclose(sinogram.sum(axis=1), np.broadcast_to(image.sum(axis=(0, 1)), (13, 2)), rtol=1e-12)


# --- the device contract ------------------------------------------------------------------------


def test_projectors_stay_on_the_device(backend):
    """Build and apply on the backend's device: outputs come back there, in the projector dtype.

    On ``strict`` the fixture's guards make any implicit device->host sync raise; the only host
    detours allowed are the counted sparse products (strict has no sparse arrays).
    """
    clear_matrix_cache()  # build the matrices here, under the guards
    geometry = ParallelBeamGeometry.covering((16, 12), (1.0, 1.5), 8)
    projector = ParallelProjector(geometry, 2, backend)
    backprojector = PixelBackprojector(geometry, 2, backend)
    backend.transfers.reset()
    x = backend.rng(1).uniform((16, 12, 2), 0.0, 1.0, dtype=backend.xp.float64)
    for out in (projector.apply(x), projector.adjoint(projector.apply(x)), backprojector.apply(projector.apply(x))):
        assert backend_of(out) is backend and out.device == backend.device
        assert out.dtype == backend.xp.float32  # the default projector dtype
    assert backend.transfers.downloads == 0 and backend.transfers.uploads == 0
    assert backend.transfers.round_trips == (5 if backend.name == "strict" else 0)


def test_matrix_cache_is_bounded_in_bytes(monkeypatch):
    from imagingsim.projectors import parallel

    backend = get_backend("numpy")
    parallel.clear_matrix_cache()
    small = [ParallelBeamGeometry.covering((16, 16), (1.0, 1.0), n) for n in (8, 9, 10)]
    first = ParallelProjector(small[0], 1, backend)
    assert ParallelProjector(small[0], 1, backend).matrix is first.matrix  # reused, not rebuilt
    # A limit of 0 MB keeps only the most recent matrix: memory stays bounded however many
    # geometries a long run meets.
    monkeypatch.setenv("IMAGINGSIM_MATRIX_CACHE_MB", "0")
    for geometry in small[1:]:
        ParallelProjector(geometry, 1, backend)
    assert len(parallel._CACHE) == 1
    assert ParallelProjector(small[0], 1, backend).matrix is not first.matrix  # evicted, rebuilt
    monkeypatch.setenv("IMAGINGSIM_MATRIX_CACHE_MB", "lots")
    with pytest.raises(ValueError, match="IMAGINGSIM_MATRIX_CACHE_MB"):
        ParallelProjector(small[1], 1, backend)
    parallel.clear_matrix_cache()
