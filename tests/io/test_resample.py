"""Resampling between grids: RAS <-> LPS with SimpleITK, exact identity, kept totals, labels.

Why 1 % for the totals: it is issue 5's acceptance bound, below the few-percent calibration
uncertainty of a PET scanner (so resampling adds no bias a reader could see) and far below
what plain point sampling does on the same cases (it loses up to 100 % of a hot spot,
:func:`test_point_sampling_loses_a_hot_spot`). The resampler itself is exact to float32
rounding (about 1e-6); the tests keep the 1 % bound as the contract and the point-sampling
test shows the bound can fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from imagingsim.grid import ImageGrid
from imagingsim.io.nifti import write_nifti
from imagingsim.io.resample import resample_frames, resample_to_grid, support_margin_mm, volume_integral
from imagingsim.io.sitk_bridge import from_sitk, to_sitk

SOURCE = ImageGrid((48, 44, 40), (0.5, 0.5, 0.5), (-11.3, -10.1, -9.7))  # off-origin, like a phantom
ANISO = ImageGrid((7, 5, 4), (0.4, 0.75, 1.3), (-12.5, 3.25, -40.0))
TOLERANCE = 0.01


def _axes(grid: ImageGrid):
    return [
        (o + v * np.arange(n)).reshape([n if a == axis else 1 for a in range(3)])
        for axis, (n, v, o) in enumerate(zip(grid.shape, grid.voxel_size_mm, grid.origin_mm))
    ]


def _phantoms() -> dict[str, np.ndarray]:
    x, y, z = _axes(SOURCE)
    blob = (  # smooth organs on a sharp-edged body, Bq/mL
        1000.0 * np.exp(-((x - 1) ** 2 / 8 + (y + 2) ** 2 / 4.5 + z**2 / 12))
        + 400.0 * np.exp(-((x + 4) ** 2 + (y - 3) ** 2 + (z - 2) ** 2) / 3)
        + 50.0 * (((x / 8) ** 2 + (y / 7) ** 2 + (z / 6) ** 2) < 1)
    )
    sphere = 1000.0 * (((x - 0.37) ** 2 + (y + 0.81) ** 2 + (z - 0.23) ** 2) < 2.6**2)
    hot = np.zeros(SOURCE.shape)
    hot[23, 21, 19] = 5e4  # one hot voxel: the worst case for aliasing
    return {"blob": blob, "sphere": sphere, "hotspot": hot}


PHANTOMS = _phantoms()


def _covering_target(voxel_mm: float, shift_mm) -> ImageGrid:
    """An isotropic grid whose box covers the source box (plus the upsampling margin), shifted."""
    margin = max(support_margin_mm(SOURCE, ImageGrid((1, 1, 1), (voxel_mm,) * 3)))
    shape, origin = [], []
    for n, v, o, shift in zip(SOURCE.shape, SOURCE.voxel_size_mm, SOURCE.origin_mm, shift_mm):
        start = o - v / 2 - margin - voxel_mm + shift  # |shift| < voxel_mm, so the start is outside
        shape.append(math.ceil((o + (n - 0.5) * v + margin - start) / voxel_mm) + 1)
        origin.append(start + voxel_mm / 2)
    return ImageGrid(tuple(shape), (voxel_mm,) * 3, tuple(origin))


# --- SimpleITK conversion -------------------------------------------------------------------


def test_to_sitk_puts_every_voxel_at_its_ras_world_coordinate():
    data = np.arange(np.prod(ANISO.shape), dtype=np.float32).reshape(ANISO.shape)
    image = to_sitk(data, ANISO)
    assert image.GetSize() == ANISO.shape
    assert image.GetDirection() == (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    for index in [(0, 0, 0), (6, 4, 3), (3, 1, 2), (5, 2, 0)]:
        lps = image.TransformIndexToPhysicalPoint(index)
        ras = (-lps[0], -lps[1], lps[2])
        np.testing.assert_allclose(ras, ANISO.world_mm(index), atol=1e-9)
        assert image.GetPixel(index) == data[index]
        # and back: the world point finds the same voxel
        assert image.TransformPhysicalPointToIndex(lps) == index


def test_from_sitk_round_trip_is_exact():
    data = np.random.default_rng(3).random(ANISO.shape).astype(np.float32)
    back, grid = from_sitk(to_sitk(data, ANISO))
    assert grid == ANISO
    np.testing.assert_array_equal(back, data)


def test_from_sitk_reads_a_nifti_written_by_imagingsim(tmp_path):
    data = np.arange(np.prod(ANISO.shape), dtype=np.float32).reshape(ANISO.shape)
    path = write_nifti(tmp_path / "map.nii.gz", data, ANISO)
    back, grid = from_sitk(sitk.ReadImage(str(path)))
    np.testing.assert_array_equal(back, data)
    np.testing.assert_allclose(grid.origin_mm, ANISO.origin_mm, atol=1e-5)  # NIfTI stores float32
    np.testing.assert_allclose(grid.voxel_size_mm, ANISO.voxel_size_mm, rtol=1e-6)


def test_from_sitk_flips_an_lps_positive_image_into_ras():
    data = np.random.default_rng(4).random((4, 3, 2))
    image = sitk.GetImageFromArray(np.transpose(data, (2, 1, 0)))  # direction identity: +x is Left
    image.SetSpacing((0.5, 0.7, 1.1))
    image.SetOrigin((2.0, -3.0, 5.0))
    back, grid = from_sitk(image)
    for index in [(0, 0, 0), (3, 2, 1), (1, 0, 1)]:
        lps = image.TransformIndexToPhysicalPoint(index)
        ras = (-lps[0], -lps[1], lps[2])
        ras_index = tuple(round((w - o) / v) for w, o, v in zip(ras, grid.origin_mm, grid.voxel_size_mm))
        np.testing.assert_allclose(grid.world_mm(ras_index), ras, atol=1e-9)
        assert back[ras_index] == data[index]


def test_from_sitk_refuses_a_rotated_image():
    image = sitk.Image(3, 3, 3, sitk.sitkFloat32)
    image.SetDirection((0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="not axis-aligned"):
        from_sitk(image)


# --- identity and geometry ---------------------------------------------------------------


@pytest.mark.parametrize("quantity", ["concentration", "intensity"])
def test_identity_is_exact(quantity):
    data = PHANTOMS["blob"].astype(np.float32)
    np.testing.assert_array_equal(resample_to_grid(data, SOURCE, SOURCE, quantity=quantity), data)


def test_whole_voxel_shift_is_an_exact_copy():
    # not the same grid, so this goes through the weights: they must be exactly 0 and 1
    data = PHANTOMS["blob"].astype(np.float32)
    target = ImageGrid((40, 40, 36), SOURCE.voxel_size_mm, SOURCE.world_mm((3, 2, 1)))
    out = resample_to_grid(data, SOURCE, target, quantity="concentration")
    np.testing.assert_array_equal(out, data[3:43, 2:42, 1:37])


def test_upsampling_a_smooth_image_agrees_with_simpleitk_linear():
    # the world-coordinate handling matches ITK's: a sign or half-voxel slip would show as a
    # gradient-sized difference, far above the second-order difference between the methods
    x, y, z = _axes(SOURCE)
    data = np.exp(-((x - 1) ** 2 + (y + 2) ** 2 + z**2) / 18.0)
    # (upsampling by >= 2 on every axis: there the density is the linear interpolant itself)
    target = ImageGrid((60, 70, 55), (0.25, 0.2, 0.24), (-7.13, -8.77, -6.91))
    ours = resample_to_grid(data, SOURCE, target, quantity="intensity")
    reference = sitk.Resample(to_sitk(data, SOURCE), to_sitk(np.zeros(target.shape), target), sitk.Transform(),
                              sitk.sitkLinear, 0.0, sitk.sitkFloat64)
    itk, _ = from_sitk(reference)
    # peak 1: the methods differ by the mean over the small target box (f'' t^2 / 24 per axis,
    # about 2e-3 here); a 0.1 mm slip alone would give 2e-2
    assert np.max(np.abs(ours - itk)) < 5e-3


def test_intensity_keeps_its_level_at_the_edge_and_fills_outside():
    data = np.full(SOURCE.shape, 7.0)
    target = _covering_target(1.5, (0.3, -0.2, 0.1))
    out = resample_to_grid(data, SOURCE, target, quantity="intensity", fill_value=-1000.0)
    assert set(np.unique(out).tolist()) == {-1000.0, 7.0}


# --- totals --------------------------------------------------------------------------------


SHIFTS = [(0.0, 0.0, 0.0), (0.13, -0.29, 0.41), (-0.47, 0.61, -0.05)]


@pytest.mark.parametrize("name", sorted(PHANTOMS))
@pytest.mark.parametrize("voxel_mm", [1.0, 1.5, 0.85, 0.3, 0.25], ids=["down2", "down3", "down1.7", "up1.7", "up2"])
@pytest.mark.parametrize("shift", SHIFTS, ids=["aligned", "shiftA", "shiftB"])
def test_total_activity_is_kept(name, voxel_mm, shift):
    data = PHANTOMS[name].astype(np.float32)
    target = _covering_target(voxel_mm, [s * voxel_mm for s in shift])
    out = resample_to_grid(data, SOURCE, target, quantity="concentration")
    ratio = volume_integral(out, target) / volume_integral(data, SOURCE)
    assert abs(ratio - 1.0) < TOLERANCE, ratio


def test_total_is_kept_on_anisotropic_grids():
    data = np.random.default_rng(5).random(ANISO.shape) * 100.0
    target = ImageGrid((5, 8, 13), (0.9, 0.6, 0.55), (-13.1, 2.5, -41.2))  # covers ANISO's box and margin
    out = resample_to_grid(data, ANISO, target, quantity="concentration")
    assert abs(volume_integral(out, target) / volume_integral(data, ANISO) - 1.0) < TOLERANCE


def test_point_sampling_loses_a_hot_spot():
    # what the smoothing is for: SimpleITK's linear resampling of the same case misses the spot
    data = PHANTOMS["hotspot"]
    target = _covering_target(1.5, (0.0, 0.0, 0.0))
    plain = sitk.Resample(to_sitk(data, SOURCE), to_sitk(np.zeros(target.shape), target), sitk.Transform(),
                          sitk.sitkLinear, 0.0, sitk.sitkFloat64)
    before = volume_integral(data, SOURCE)
    lost = 1.0 - volume_integral(from_sitk(plain)[0], target) / before
    assert lost > TOLERANCE, lost
    kept = volume_integral(resample_to_grid(data, SOURCE, target, quantity="concentration"), target) / before
    assert abs(kept - 1.0) < TOLERANCE


def test_content_outside_the_target_box_is_left_out():
    data = np.zeros(SOURCE.shape)
    data[:24] = 1.0  # left half
    target = ImageGrid((12, 22, 20), (1.0, 1.0, 1.0), (SOURCE.origin_mm[0] + 12.25, -9.85, -9.45))  # right half
    out = resample_to_grid(data, SOURCE, target, quantity="concentration")
    assert volume_integral(out, target) < 1e-9


def test_a_target_that_misses_the_source_is_empty():
    far = ImageGrid((4, 4, 4), (1.0, 1.0, 1.0), (100.0, 0.0, 0.0))
    assert not resample_to_grid(PHANTOMS["blob"], SOURCE, far, quantity="concentration").any()
    assert (resample_to_grid(PHANTOMS["blob"], SOURCE, far, quantity="intensity", fill_value=-1000.0) == -1000).all()
    assert not resample_to_grid(PHANTOMS["blob"] > 60, SOURCE, far, quantity="labels").any()


# --- labels, frames, determinism, errors -------------------------------------------------------


def test_labels_stay_labels():
    labels = (PHANTOMS["sphere"] > 0).astype(np.uint8) * 11 + (PHANTOMS["blob"] > 60).astype(np.uint8)
    target = _covering_target(0.85, (0.11, -0.23, 0.37))
    out = resample_to_grid(labels, SOURCE, target, quantity="labels")
    assert out.dtype == np.uint8
    assert set(np.unique(out).tolist()) <= set(np.unique(labels).tolist())
    reference = sitk.Resample(to_sitk(labels, SOURCE), to_sitk(np.zeros(target.shape, np.uint8), target),
                              sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    np.testing.assert_array_equal(out, from_sitk(reference)[0])  # no ties at this shift


def test_frames_are_resampled_one_by_one():
    frames = np.stack([PHANTOMS["blob"], PHANTOMS["sphere"]], axis=-1)
    target = _covering_target(1.5, (0.2, 0.1, -0.3))
    out = resample_frames(frames, SOURCE, target, quantity="concentration")
    assert out.shape == target.shape + (2,) and out.dtype == np.float32
    for n in range(2):
        np.testing.assert_array_equal(out[..., n], resample_to_grid(frames[..., n], SOURCE, target,
                                                                     quantity="concentration"))


def test_results_are_bit_identical_between_runs():
    target = _covering_target(0.85, (0.13, -0.29, 0.41))
    first = resample_to_grid(PHANTOMS["blob"], SOURCE, target, quantity="concentration")
    second = resample_to_grid(PHANTOMS["blob"].copy(), SOURCE, target, quantity="concentration")
    assert first.tobytes() == second.tobytes()


def test_bad_quantity_is_a_one_line_error():
    with pytest.raises(ValueError) as info:
        resample_to_grid(PHANTOMS["blob"], SOURCE, SOURCE, quantity="activity")
    message = str(info.value)
    assert "\n" not in message and "concentration" in message and "'activity'" in message


def test_concentration_refuses_a_fill_value():
    with pytest.raises(ValueError, match="fill_value"):
        resample_to_grid(PHANTOMS["blob"], SOURCE, ANISO, quantity="concentration", fill_value=1.0)
