"""SimpleITK conversion of imagingsim arrays and grids, for users who work in ITK.

Optional: SimpleITK is not a dependency of the pipeline (``pip install imagingsim[sitk]``).
Arrays are ``[x, y, z]`` in RAS+ (see :mod:`imagingsim.grid`); SimpleITK images are LPS with
arrays ``[z, y, x]``. :func:`to_sitk` and :func:`from_sitk` convert both ways, every voxel
keeping its world coordinate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from imagingsim.grid import ImageGrid

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["from_sitk", "to_sitk"]


def _sitk():
    try:
        import SimpleITK
    except ImportError as exc:  # an environment matter, not bad input
        raise ImportError("SimpleITK is optional and not installed: pip install 'imagingsim[sitk]'") from exc
    return SimpleITK


#: RAS <-> LPS: the sign flip of the world x and y axes (z is shared).
_LPS_FLIP = (-1.0, -1.0, 1.0)


def to_sitk(array: np.ndarray, grid: ImageGrid) -> sitk.Image:
    """A SimpleITK image of a host ``[x, y, z]`` array on ``grid`` (RAS+), in ITK's LPS frame.

    Parameters
    ----------
    array : numpy.ndarray, shape ``grid.shape``
        Values indexed ``[i, j, k]`` (axis 0 = +x). ``bool`` is stored as uint8.
    grid : ImageGrid
        Voxel size (mm) and origin (mm, RAS, centre of voxel 0).

    Returns
    -------
    SimpleITK.Image
        ``GetPixel((i, j, k)) == array[i, j, k]``; spacing = voxel size; origin = the grid's
        origin with x and y negated; direction ``diag(-1, -1, 1)``. So
        ``TransformIndexToPhysicalPoint((i, j, k))`` is ``grid.world_mm((i, j, k))`` in LPS.
    """
    array = np.asarray(array)
    if array.shape != tuple(grid.shape):
        raise ValueError(f"to_sitk: array shape {array.shape} does not match grid shape {grid.shape}")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    sitk = _sitk()
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (2, 1, 0))))
    image.SetSpacing(grid.voxel_size_mm)
    image.SetOrigin(tuple(f * o for f, o in zip(_LPS_FLIP, grid.origin_mm)))
    image.SetDirection((-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    return image


def from_sitk(image: sitk.Image) -> tuple[np.ndarray, ImageGrid]:
    """The host ``[x, y, z]`` array and RAS+ :class:`ImageGrid` of a 3-D scalar SimpleITK image.

    Axes whose direction points the other way (an LPS-positive or flipped image) are
    flipped so that the result is RAS+ with a diagonal, positive affine; every voxel keeps
    its world coordinate.

    Raises
    ------
    ValueError
        Not a 3-D scalar image, or its direction is not axis-aligned (a rotation or an axis
        permutation, which an :class:`ImageGrid` cannot represent).
    """
    sitk = _sitk()
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            f"from_sitk: need a 3-D scalar image, got {image.GetDimension()}-D with "
            f"{image.GetNumberOfComponentsPerPixel()} components"
        )
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    signs = np.sign(np.diag(direction))
    if not np.allclose(direction, np.diag(signs), atol=1e-6):
        raise ValueError(f"from_sitk: direction {image.GetDirection()} is not axis-aligned; reorient the image first")
    array = np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0))
    spacing = tuple(float(v) for v in image.GetSpacing())
    origin = [f * float(o) for f, o in zip(_LPS_FLIP, image.GetOrigin())]
    for axis in range(3):
        if signs[axis] * _LPS_FLIP[axis] < 0:  # world (RAS) coordinate decreases along this array axis
            origin[axis] -= spacing[axis] * (array.shape[axis] - 1)  # the last voxel becomes voxel 0
            array = np.flip(array, axis)
    return np.ascontiguousarray(array), ImageGrid(array.shape, spacing, tuple(origin))
