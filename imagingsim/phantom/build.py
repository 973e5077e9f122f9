"""Build a :class:`Phantom` from a validated :class:`PhantomSpec`: anatomy, tumours, maps."""

from __future__ import annotations

from imagingsim.grid import ImageGrid
from imagingsim.phantom.anatomy import Anatomy, VoxelCanvas, get_anatomy
from imagingsim.phantom.model import Phantom
from imagingsim.phantom.properties import label_materials, property_maps
from imagingsim.phantom.stroma import stroma_maps
from imagingsim.phantom.tumour import draw_tumours, paint_tumours
from imagingsim.scenario import PhantomSpec

#: Largest phantom built: 2^24 ~ 16.8 M voxels (mouse down to 0.16 mm, torso down to 1.35 mm).
#: A hard ceiling only: whether a grid fits the machine depends on the modalities and the
#: schedule, which :func:`imagingsim.resources.estimate_resources` weighs before any work
#: (the mouse at 0.16 mm with PET, MRI and NIRF would need over 20 GB).
MAX_VOXELS = 2**24


def build_phantom(spec: PhantomSpec, backend, seed: int) -> Phantom:
    """Build the voxel phantom described by ``spec``.

    Parameters
    ----------
    spec : PhantomSpec
        Anatomy, voxel size (mm), tumours and heterogeneity.
    backend : Backend
        Where every array lives; the build makes no host transfer.
    seed : int
        Scenario seed (>= 0). The same seed gives bit-identical labels and maps on the same
        backend; another seed changes the heterogeneity and the tumour boundaries.

    Returns
    -------
    Phantom
        Labels, tumour index, property maps, materials and whole-body constants.

    Raises
    ------
    ValueError
        One line naming the field: a tumour that does not fit in the field of view, or a
        voxel size that gives more than :data:`MAX_VOXELS` voxels.
    """
    anatomy = get_anatomy(spec.anatomy)
    grid = phantom_grid(spec)
    _check_tumours_inside(spec, anatomy, grid)
    shapes = draw_tumours(backend, spec.tumours, seed)
    canvas = VoxelCanvas(backend, grid)
    anatomy.paint(canvas, shapes)
    tumour_index = paint_tumours(canvas, shapes)
    properties = property_maps(
        backend, grid, canvas.labels, tumour_index, spec, seed,
        tumour_permeability_scale=anatomy.tumour_permeability_scale,
    )
    properties.update(stroma_maps(backend, grid, canvas.labels, tumour_index, spec, seed))  # optional maps
    return Phantom(
        spec=spec,
        grid=grid,
        labels=canvas.labels,
        tumour_index=tumour_index,
        properties=properties,
        materials=label_materials(),
        species=anatomy.species,
        body_mass_g=anatomy.body_mass_g,
        blood_volume_ml=anatomy.blood_volume_ml,
        seed=seed,
        backend=backend,
    )


def phantom_grid(spec: PhantomSpec) -> ImageGrid:
    """The voxel grid ``spec`` gives (cheap: no array is made).

    Raises
    ------
    ValueError
        One line naming ``phantom.voxel_size_mm`` when the grid has more than
        :data:`MAX_VOXELS` voxels.
    """
    anatomy = get_anatomy(spec.anatomy)
    grid = anatomy.grid(spec.voxel_size_mm)
    _check_size(spec, anatomy, grid)
    return grid


def fov_extent_mm(grid: ImageGrid) -> tuple[tuple[float, float], ...]:
    """(low, high) world extent in mm of the grid's voxels (outer faces) along x, y, z."""
    return tuple(
        (o - 0.5 * v, o + (n - 0.5) * v) for o, v, n in zip(grid.origin_mm, grid.voxel_size_mm, grid.shape)
    )


def _check_size(spec: PhantomSpec, anatomy: Anatomy, grid: ImageGrid) -> None:
    if grid.n_voxels > MAX_VOXELS:
        fx, fy, fz = anatomy.fov_mm
        smallest = (fx * fy * fz / MAX_VOXELS) ** (1.0 / 3.0)
        raise ValueError(
            f"phantom.voxel_size_mm: {spec.voxel_size_mm:g} mm gives {grid.n_voxels / 1e6:.0f} M voxels over the "
            f"{anatomy.name} field of view ({fx:g} x {fy:g} x {fz:g} mm); at most {MAX_VOXELS / 1e6:.0f} M "
            f"(voxel_size_mm >= {smallest:.2f})"
        )


def _check_tumours_inside(spec: PhantomSpec, anatomy: Anatomy, grid: ImageGrid) -> None:
    """Every tumour's nominal sphere (centre +/- radius) must lie inside the field of view."""
    extent = fov_extent_mm(grid)
    for n, tumour in enumerate(spec.tumours):
        r = tumour.radius_mm
        if all(lo <= c - r and c + r <= hi for c, (lo, hi) in zip(tumour.centre_mm, extent)):
            continue
        ranges = ", ".join(f"{axis} in [{lo:g}, {hi:g}] mm" for axis, (lo, hi) in zip("xyz", extent))
        centre = ", ".join(f"{c:g}" for c in tumour.centre_mm)
        raise ValueError(
            f"phantom.tumours[{n}].centre_mm: tumour (radius {r:g} mm) must lie inside the {anatomy.name} "
            f"field of view {ranges}; got centre ({centre}) mm"
        )


__all__ = ["MAX_VOXELS", "build_phantom", "fov_extent_mm"]
