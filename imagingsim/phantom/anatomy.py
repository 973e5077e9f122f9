"""Analytic anatomies: organs as ellipsoids and capsules on an :class:`ImageGrid`.

Every shape is a signed-distance-style function of world coordinates in mm (negative
inside), evaluated on ``grid.axes_mm(backend)``, so any voxel size works and no array
leaves the device. Each shape is evaluated only inside its bounding box (a slice of the
grid), which keeps a 10 M voxel torso cheap.

Orientation is RAS+ (see :mod:`imagingsim.grid`): +x towards the subject's right, +y
anterior, +z superior. The liver therefore sits mostly at +x, the spleen at -x, the spine
and kidneys dorsally (-y) and the lungs superiorly (+z).

Registry: :data:`ANATOMIES` maps ``PhantomSpec.anatomy`` to an :class:`Anatomy` holding the
species constants, the field of view and the painter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from imagingsim.grid import ImageGrid
from imagingsim.phantom.model import Label

# --- distance primitives ---------------------------------------------------------------


def _ellipsoidal_distance(xp, offsets, semi_axes):
    """First-order (Newton) signed distance to an axis-aligned ellipse or ellipsoid, mm.

    With ``k0 = |p / a|`` and ``k1 = |p / a^2|`` the estimate ``(k0 - 1) k0 / k1`` is
    ``(k0 - 1) / |grad k0|``: exact on the axes and to first order near the surface, which
    is where layers (fat, skull) are cut. ``k0 / k1`` is a mean of the semi-axes; clipping
    it to their range only matters at the centre, where it is 0 / 0.
    """
    k0sq = None
    k1sq = None
    for p, a in zip(offsets, semi_axes):
        q = p / a
        k0sq = q * q if k0sq is None else k0sq + q * q
        k1sq = (q / a) ** 2 if k1sq is None else k1sq + (q / a) ** 2
    k0 = xp.sqrt(k0sq)
    scale = xp.clip(k0 / (xp.sqrt(k1sq) + 1e-30), min(semi_axes), max(semi_axes))
    return (k0 - 1.0) * scale


def smooth_union(xp, a, b, k_mm: float):
    """Smooth minimum of two distances (quadratic blend of width ``k_mm``); exact min beyond it."""
    h = xp.clip(k_mm - xp.abs(a - b), 0.0, None) / k_mm
    return xp.minimum(a, b) - (0.25 * k_mm) * (h * h)


@dataclass(frozen=True)
class Ellipsoid:
    """Axis-aligned ellipsoid: centre and semi-axes in mm."""

    centre_mm: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]

    def distance_mm(self, xp, x, y, z):
        offsets = (x - self.centre_mm[0], y - self.centre_mm[1], z - self.centre_mm[2])
        return _ellipsoidal_distance(xp, offsets, self.semi_axes_mm)

    def bounds_mm(self):
        lo = tuple(c - a for c, a in zip(self.centre_mm, self.semi_axes_mm))
        hi = tuple(c + a for c, a in zip(self.centre_mm, self.semi_axes_mm))
        return lo, hi

    def shrunk(self, by_mm: float) -> Ellipsoid:
        """The ellipsoid with every semi-axis reduced by ``by_mm`` (an inner wall)."""
        return Ellipsoid(self.centre_mm, tuple(a - by_mm for a in self.semi_axes_mm))


@dataclass(frozen=True)
class ZCapsule:
    """Elliptic cylinder along z with rounded ends (trunk, spine, great vessels).

    Parameters
    ----------
    centre_mm : (x, y, z) of the centre, mm.
    semi_xy_mm : semi-axes of the elliptic cross-section, mm.
    half_length_mm : half the length along z including the rounded ends, mm.
    rounding_mm : radius of the rounded edges at both ends, mm (0 for flat ends).
    """

    centre_mm: tuple[float, float, float]
    semi_xy_mm: tuple[float, float]
    half_length_mm: float
    rounding_mm: float = 0.0

    def distance_mm(self, xp, x, y, z):
        # Exact extrusion of a 2-D distance (Quilez), rounded by offsetting both parts.
        cx, cy, cz = self.centre_mm
        r = self.rounding_mm
        qxy = _ellipsoidal_distance(xp, (x - cx, y - cy), self.semi_xy_mm) + r
        qz = xp.abs(z - cz) - self.half_length_mm + r
        outside = xp.sqrt(xp.clip(qxy, 0.0, None) ** 2 + xp.clip(qz, 0.0, None) ** 2)
        return outside + xp.clip(xp.maximum(qxy, qz), None, 0.0) - r

    def bounds_mm(self):
        (cx, cy, cz), (a, b), h = self.centre_mm, self.semi_xy_mm, self.half_length_mm
        return (cx - a, cy - b, cz - h), (cx + a, cy + b, cz + h)


def vessel(centre_xy_mm, radius_mm: float, z_range_mm) -> ZCapsule:
    """A round capsule along z from ``z_range_mm[0]`` to ``z_range_mm[1]`` (mm)."""
    z0, z1 = z_range_mm
    return ZCapsule((centre_xy_mm[0], centre_xy_mm[1], 0.5 * (z0 + z1)), (radius_mm, radius_mm), 0.5 * (z1 - z0), radius_mm)


class Shape(Protocol):
    def distance_mm(self, xp, x, y, z): ...

    def bounds_mm(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]: ...


# --- canvas ----------------------------------------------------------------------------


class VoxelCanvas:
    """A uint8 label volume on a grid, painted shape by shape inside bounding boxes.

    Parameters
    ----------
    backend : Backend
    grid : ImageGrid

    Attributes
    ----------
    labels : device array, uint8, ``grid.shape``
        :class:`Label` values, all ``AIR`` at first.
    axes : tuple of 3 device arrays
        ``grid.axes_mm(backend)``: broadcastable voxel-centre coordinates, mm.
    """

    def __init__(self, backend, grid: ImageGrid):
        self.backend = backend
        self.grid = grid
        self.xp = backend.xp
        self.axes = grid.axes_mm(backend)
        self.labels = self.xp.zeros(grid.shape, dtype=self.xp.uint8, device=backend.device)

    def block(self, lo_mm, hi_mm) -> tuple[slice, slice, slice] | None:
        """Index slices of the voxels whose centres lie in the box [lo, hi] (mm), or None."""
        slices = []
        for lo, hi, origin, v, n in zip(lo_mm, hi_mm, self.grid.origin_mm, self.grid.voxel_size_mm, self.grid.shape):
            first = max(0, math.ceil((lo - origin) / v - 1e-9))
            stop = min(n, math.floor((hi - origin) / v + 1e-9) + 1)
            if first >= stop:
                return None
            slices.append(slice(first, stop))
        return tuple(slices)

    def coordinates(self, block):
        """Broadcastable (x, y, z) voxel-centre coordinates (mm) of ``block``."""
        x, y, z = self.axes
        return x[block[0], :, :], y[:, block[1], :], z[:, :, block[2]]

    def uint8(self, value: int):
        """A 0-d uint8 device array (keeps ``where`` from promoting the label volume)."""
        return self.xp.asarray(int(value), dtype=self.xp.uint8, device=self.backend.device)

    def paint(self, value, inside, block=None) -> None:
        """Set labels to ``value`` (an int or uint8 array) where ``inside`` within ``block``."""
        block = block or (slice(None),) * 3
        if isinstance(value, int):
            value = self.uint8(value)
        self.labels[block] = self.xp.where(inside, value, self.labels[block])

    def paint_shape(self, value: int, shape: Shape, *, within=None) -> None:
        """Paint ``value`` inside ``shape``; ``within`` (full-grid bool) restricts it further."""
        block = self.block(*shape.bounds_mm())
        if block is None:
            return
        inside = shape.distance_mm(self.xp, *self.coordinates(block)) < 0.0
        if within is not None:
            inside = self.xp.logical_and(inside, within[block])
        self.paint(value, inside, block)


class TumourBoundary(Protocol):
    """What an anatomy needs from a tumour to let the body outline cover it."""

    def signed_distance_mm(self, xp, x, y, z): ...

    def bounds_mm(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]: ...


def cover_tumours(canvas: VoxelCanvas, outline, tumours: Sequence[TumourBoundary], cover_mm: float, blend_mm: float):
    """Grow a body outline distance (in place) so each tumour lies ``cover_mm`` inside it.

    A flank tumour that bulges out of the trunk displaces air, not tissue: the skin/fat
    layer then wraps it. Only each tumour's box (grown by the cover and blend widths) is
    touched, because the smooth union is an exact minimum beyond the blend width.
    """
    xp = canvas.xp
    margin = cover_mm + blend_mm
    for tumour in tumours:
        lo, hi = tumour.bounds_mm()
        block = canvas.block(tuple(v - margin for v in lo), tuple(v + margin for v in hi))
        if block is None:
            continue
        grown = tumour.signed_distance_mm(xp, *canvas.coordinates(block)) - cover_mm
        outline[block] = smooth_union(xp, outline[block], grown, blend_mm)
    return outline


# --- anatomy description -----------------------------------------------------------------


@dataclass(frozen=True)
class Organ:
    """A named organ: its label and shape (painted in list order, later wins)."""

    name: str
    label: Label
    shape: Any


@dataclass(frozen=True)
class RibCage:
    """Ribs as bands of a shell under the body wall, periodic along z (all in mm).

    Bone where ``depth < -(distance to the body surface) - fat < depth + thickness``, in
    bands of ``thickness`` every ``period`` along z within ``z_range``, except for an
    anterior sternal gap of half-width ``sternal_gap`` (costal cartilage, soft tissue).
    """

    z_range_mm: tuple[float, float]
    depth_mm: float
    thickness_mm: float
    period_mm: float
    sternal_gap_mm: float


@dataclass(frozen=True)
class TrunkGeometry:
    """Dimensions (mm) of a trunk anatomy: body, subcutaneous fat, ribs, organs."""

    body: ZCapsule
    fat_mm: float
    ribs: RibCage | None
    organs: tuple[Organ, ...]


@dataclass(frozen=True)
class HeadGeometry:
    """Dimensions (mm) of a head: scalp, skull, brain and the superior sagittal sinus."""

    head: Ellipsoid
    scalp_mm: float
    skull_mm: float
    sinus_radius_mm: float
    sinus_min_z_mm: float


@dataclass(frozen=True)
class AnatomyGeometry:
    """Geometry helpers returned by an anatomy painter.

    Attributes
    ----------
    body_distance_mm : device array, float64, ``grid.shape``
        Signed distance (mm, first-order estimate) to the skin surface after tumour cover;
        negative inside the body. Useful for depth (optical) and body masks.
    landmarks_mm : dict of str -> (x, y, z)
        Organ centres in world mm.
    """

    body_distance_mm: Any
    landmarks_mm: dict[str, tuple[float, float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Anatomy:
    """One entry of the anatomy registry.

    Attributes
    ----------
    name : str
        ``PhantomSpec.anatomy`` value.
    species : {"mouse", "human"}
    body_mass_g : float
        Whole-body mass, g (includes parts outside the field of view).
    blood_volume_ml : float
        Whole-body blood volume, mL.
    fov_mm : (x, y, z)
        Field of view, mm; the grid is centred on the origin.
    tumour_permeability_scale : float
        Factor on every tumour's vessel permeability (0.3 in the brain: a partially
        disrupted blood-brain barrier leaks less than a peripheral tumour).
    labels : frozenset of Label
        Labels the painter produces (tumour labels come from the tumours).
    painter : callable (VoxelCanvas, tumours) -> AnatomyGeometry
    """

    name: str
    species: str
    body_mass_g: float
    blood_volume_ml: float
    fov_mm: tuple[float, float, float]
    tumour_permeability_scale: float
    labels: frozenset
    painter: Callable[[VoxelCanvas, Sequence[TumourBoundary]], AnatomyGeometry] = field(repr=False)

    def grid(self, voxel_size_mm: float) -> ImageGrid:
        """The isotropic grid covering :attr:`fov_mm` at ``voxel_size_mm`` (mm)."""
        return ImageGrid.centred(self.fov_mm, voxel_size_mm)

    def paint(self, canvas: VoxelCanvas, tumours: Sequence[TumourBoundary] = ()) -> AnatomyGeometry:
        """Paint the anatomy into ``canvas.labels`` (tumours only shape the outline here)."""
        return self.painter(canvas, tumours)

    def build(self, backend, voxel_size_mm: float, tumours: Sequence[TumourBoundary] = ()):
        """Labels (uint8 device array) and geometry of this anatomy without tumour labels."""
        canvas = VoxelCanvas(backend, self.grid(voxel_size_mm))
        geometry = self.paint(canvas, tumours)
        return canvas.labels, geometry


# --- painters --------------------------------------------------------------------------


def _layers(canvas: VoxelCanvas, outline, depths_mm: Sequence[float], labels: Sequence[Label]) -> None:
    """Label by depth below the outline: ``labels[i]`` where ``depth > depths_mm[i]`` (increasing)."""
    xp = canvas.xp
    result = canvas.uint8(Label.AIR)
    # Shallowest first: each deeper layer overwrites the core of the one above it.
    for depth, label in zip(depths_mm, labels):
        result = xp.where(outline < -depth, canvas.uint8(label), result)
    canvas.labels = result


def _paint_ribs(canvas: VoxelCanvas, body: ZCapsule, fat_mm: float, ribs: RibCage, within) -> None:
    xp = canvas.xp
    lo, hi = body.bounds_mm()
    block = canvas.block((lo[0], lo[1], ribs.z_range_mm[0]), (hi[0], hi[1], ribs.z_range_mm[1]))
    if block is None:
        return
    x, y, z = canvas.coordinates(block)
    depth = -body.distance_mm(xp, x, y, z) - fat_mm
    shell = xp.logical_and(depth > ribs.depth_mm, depth < ribs.depth_mm + ribs.thickness_mm)
    # |(z - z0) mod period| < thickness / 2, written with a cosine to stay elementwise.
    phase = (2.0 * math.pi / ribs.period_mm) * (z - ribs.z_range_mm[0])
    band = xp.cos(phase) > math.cos(math.pi * ribs.thickness_mm / ribs.period_mm)
    gap = xp.logical_and(xp.abs(x) < ribs.sternal_gap_mm, y > 0.0)
    inside = xp.logical_and(xp.logical_and(shell, band), xp.logical_not(gap))
    canvas.paint(Label.BONE, xp.logical_and(inside, within[block]), block)


def paint_trunk(geometry: TrunkGeometry, canvas: VoxelCanvas, tumours: Sequence[TumourBoundary]) -> AnatomyGeometry:
    """Paint a trunk (mouse or human torso) described by ``geometry``."""
    xp = canvas.xp
    outline = geometry.body.distance_mm(xp, *canvas.axes)
    outline = cover_tumours(canvas, outline, tumours, geometry.fat_mm, blend_mm=2.0 * geometry.fat_mm)
    _layers(canvas, outline, (0.0, geometry.fat_mm), (Label.FAT, Label.SOFT_TISSUE))
    # Organs stay inside the fat layer; ribs come last so the cage encloses the organs.
    interior = outline < -geometry.fat_mm
    for organ in geometry.organs:
        canvas.paint_shape(organ.label, organ.shape, within=interior)
    if geometry.ribs is not None:
        _paint_ribs(canvas, geometry.body, geometry.fat_mm, geometry.ribs, interior)
    landmarks = {organ.name: _centre(organ.shape) for organ in geometry.organs}
    return AnatomyGeometry(outline, landmarks)


def paint_head(geometry: HeadGeometry, canvas: VoxelCanvas, tumours: Sequence[TumourBoundary]) -> AnatomyGeometry:
    """Paint a head: scalp (soft tissue), skull (bone), brain, superior sagittal sinus."""
    xp = canvas.xp
    outline = geometry.head.distance_mm(xp, *canvas.axes)
    outline = cover_tumours(canvas, outline, tumours, geometry.scalp_mm, blend_mm=2.0 * geometry.scalp_mm)
    inner = geometry.scalp_mm + geometry.skull_mm
    _layers(canvas, outline, (0.0, geometry.scalp_mm, inner), (Label.SOFT_TISSUE, Label.BONE, Label.BRAIN))
    # The sinus runs in the midline just under the skull vault: a tube around the curve
    # {x = 0, depth = inner + r}, kept above sinus_min_z (it drains to the occiput).
    r = geometry.sinus_radius_mm
    lo, hi = geometry.head.bounds_mm()
    block = canvas.block((-r, lo[1], geometry.sinus_min_z_mm), (r, hi[1], hi[2]))
    if block is not None:
        x, y, z = canvas.coordinates(block)
        offset = geometry.head.distance_mm(xp, x, y, z) + (inner + r)
        canvas.paint(Label.BLOOD_POOL, x * x + offset * offset < r * r, block)
    landmarks = {"head": geometry.head.centre_mm}
    return AnatomyGeometry(outline, landmarks)


def _centre(shape) -> tuple[float, float, float]:
    lo, hi = shape.bounds_mm()
    return tuple(0.5 * (a + b) for a, b in zip(lo, hi))


# --- the anatomies ---------------------------------------------------------------------

#: Mouse trunk (25 g): 24 x 20 mm elliptical body, 60 mm long, head towards +z.
#: Organ sizes follow typical 25 g mouse organ masses (liver ~1.2 g, kidneys ~0.15 g each,
#: spleen ~0.08 g, heart ~0.15 g) *(check)*; positions are schematic.
MOUSE = TrunkGeometry(
    body=ZCapsule((0.0, 0.0, 0.0), (12.0, 10.0), 30.0, rounding_mm=6.0),
    fat_mm=0.8,
    ribs=RibCage(z_range_mm=(7.0, 25.0), depth_mm=0.4, thickness_mm=0.6, period_mm=2.5, sternal_gap_mm=1.5),
    organs=(
        Organ("right_lung", Label.LUNG, Ellipsoid((4.5, 0.5, 16.0), (3.8, 5.5, 7.5))),
        Organ("left_lung", Label.LUNG, Ellipsoid((-4.5, 0.5, 16.0), (3.8, 5.5, 7.5))),
        Organ("liver", Label.LIVER, Ellipsoid((2.0, 1.0, 3.5), (9.0, 6.0, 5.5))),
        Organ("spleen", Label.SPLEEN, Ellipsoid((-8.0, -1.5, -1.0), (1.3, 2.2, 6.5))),
        Organ("right_kidney", Label.KIDNEY, Ellipsoid((4.8, -4.2, -3.5), (2.8, 2.2, 5.0))),
        Organ("left_kidney", Label.KIDNEY, Ellipsoid((-4.8, -4.2, -5.0), (2.8, 2.2, 5.0))),
        Organ("heart", Label.SOFT_TISSUE, Ellipsoid((-1.0, 2.0, 13.0), (3.2, 3.0, 4.0))),
        Organ("heart_chambers", Label.BLOOD_POOL, Ellipsoid((-1.0, 2.0, 13.0), (3.2, 3.0, 4.0)).shrunk(0.9)),
        Organ("aorta", Label.BLOOD_POOL, vessel((-0.9, -4.4), 0.6, (-26.0, 13.0))),
        Organ("vena_cava", Label.BLOOD_POOL, vessel((1.2, -4.2), 0.75, (-26.0, 12.0))),
        Organ("spine", Label.BONE, vessel((0.0, -6.5), 1.3, (-28.0, 28.0))),
    ),
)

#: Human torso section (70 kg adult), chest and upper abdomen; the trunk continues past
#: the field of view along z. Organ volumes: liver ~1.5 L, spleen ~0.16 L, kidneys
#: ~0.17 L each, heart ~0.6 L with ~0.33 L of chamber blood *(check)*.
TORSO = TrunkGeometry(
    body=ZCapsule((0.0, 0.0, 0.0), (165.0, 110.0), 1.0e4, rounding_mm=0.0),
    fat_mm=12.0,
    ribs=RibCage(z_range_mm=(-40.0, 160.0), depth_mm=8.0, thickness_mm=10.0, period_mm=30.0, sternal_gap_mm=25.0),
    organs=(
        Organ("right_lung", Label.LUNG, Ellipsoid((75.0, 0.0, 80.0), (60.0, 75.0, 110.0))),
        Organ("left_lung", Label.LUNG, Ellipsoid((-75.0, 0.0, 80.0), (60.0, 75.0, 110.0))),
        Organ("liver", Label.LIVER, Ellipsoid((55.0, 5.0, -45.0), (95.0, 70.0, 55.0))),
        Organ("spleen", Label.SPLEEN, Ellipsoid((-95.0, -45.0, -35.0), (25.0, 35.0, 45.0))),
        Organ("right_kidney", Label.KIDNEY, Ellipsoid((70.0, -55.0, -110.0), (30.0, 25.0, 55.0))),
        Organ("left_kidney", Label.KIDNEY, Ellipsoid((-70.0, -55.0, -95.0), (30.0, 25.0, 55.0))),
        Organ("heart", Label.SOFT_TISSUE, Ellipsoid((-25.0, 35.0, 40.0), (55.0, 45.0, 60.0))),
        Organ("heart_chambers", Label.BLOOD_POOL, Ellipsoid((-25.0, 35.0, 40.0), (55.0, 45.0, 60.0)).shrunk(10.0)),
        Organ("aorta", Label.BLOOD_POOL, vessel((-25.0, -33.0), 12.0, (-300.0, 40.0))),
        Organ("vena_cava", Label.BLOOD_POOL, vessel((25.0, -30.0), 11.0, (-300.0, 30.0))),
        Organ("spine", Label.BONE, vessel((0.0, -65.0), 20.0, (-1.0e4, 1.0e4))),
    ),
)

#: Adult head: 144 x 184 x 168 mm, 6 mm scalp, 7 mm skull, brain ~1.4 L.
HEAD = HeadGeometry(
    head=Ellipsoid((0.0, 0.0, 0.0), (72.0, 92.0, 84.0)),
    scalp_mm=6.0,
    skull_mm=7.0,
    sinus_radius_mm=4.0,
    sinus_min_z_mm=-20.0,
)

_TRUNK_LABELS = frozenset(
    {Label.AIR, Label.SOFT_TISSUE, Label.FAT, Label.BONE, Label.BLOOD_POOL, Label.LIVER, Label.SPLEEN, Label.KIDNEY, Label.LUNG}
)

#: Anatomy registry: ``PhantomSpec.anatomy`` -> :class:`Anatomy`.
ANATOMIES: dict[str, Anatomy] = {
    "mouse": Anatomy(
        name="mouse",
        species="mouse",
        body_mass_g=25.0,
        # 72 mL/kg x 25 g = 1.8 mL (Diehl et al., J Appl Toxicol 2001;21:15).
        blood_volume_ml=1.8,
        fov_mm=(30.0, 30.0, 70.0),
        tumour_permeability_scale=1.0,
        labels=_TRUNK_LABELS,
        painter=lambda canvas, tumours: paint_trunk(MOUSE, canvas, tumours),
    ),
    "torso": Anatomy(
        name="torso",
        species="human",
        # Adult reference human: 70 kg, ~5 L of blood (ICRP Publication 89, 2002).
        body_mass_g=70_000.0,
        blood_volume_ml=5000.0,
        fov_mm=(400.0, 300.0, 300.0),
        tumour_permeability_scale=1.0,
        labels=_TRUNK_LABELS,
        painter=lambda canvas, tumours: paint_trunk(TORSO, canvas, tumours),
    ),
    "brain": Anatomy(
        name="brain",
        species="human",
        body_mass_g=70_000.0,
        blood_volume_ml=5000.0,
        fov_mm=(200.0, 240.0, 200.0),
        # Intact BBB in brain (permeability 0 in tissues.toml); a glioma's rim leaks, but
        # less than a peripheral tumour's: x0.3 of the spec's permeability *(check)*.
        tumour_permeability_scale=0.3,
        labels=frozenset({Label.AIR, Label.SOFT_TISSUE, Label.BONE, Label.BLOOD_POOL, Label.BRAIN}),
        painter=lambda canvas, tumours: paint_head(HEAD, canvas, tumours),
    ),
}


def get_anatomy(name: str) -> Anatomy:
    """The registry entry called ``name`` (ValueError naming the allowed ones otherwise)."""
    try:
        return ANATOMIES[name]
    except KeyError:
        raise ValueError(f"unknown anatomy {name!r}; allowed: {', '.join(ANATOMIES)}") from None


__all__ = [
    "ANATOMIES",
    "Anatomy",
    "AnatomyGeometry",
    "Ellipsoid",
    "HeadGeometry",
    "Organ",
    "RibCage",
    "TrunkGeometry",
    "VoxelCanvas",
    "ZCapsule",
    "cover_tumours",
    "get_anatomy",
    "paint_head",
    "paint_trunk",
    "smooth_union",
    "vessel",
]
