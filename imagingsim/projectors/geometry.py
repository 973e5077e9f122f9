"""Parallel-beam acquisition geometry in mm, with its conventions stated once.

Conventions (tested in ``tests/test_projectors.py``):

- The transaxial image is the ``(x, y)`` plane of the :class:`~imagingsim.grid.ImageGrid`
  (axis 0 = +x, axis 1 = +y); slices along z are independent 2-D planes (direct planes).
- The rotation axis passes through the centre of the image box.
- View ``k`` has angle ``theta_k = arc_deg * k / n_angles`` measured from +x towards +y.
  It integrates along the lines ``x cos(theta) + y sin(theta) = s``: at ``theta = 0`` the
  detector coordinate ``s`` runs along +x and the rays run along y.
- Radial bin ``b`` is centred at ``s_b = (b - (n_bins - 1) / 2) * bin_size_mm``: the
  detector centre ``s = 0`` lies between two bins when ``n_bins`` is even.
- Sinograms are ``(n_angles, n_bins, n_slices)`` (view, radial bin, slice), C order.
  A point at ``(x0, y0)`` traces ``s(theta) = x0 cos(theta) + y0 sin(theta)``: a sinusoid of
  amplitude ``hypot(x0, y0)`` mm, a straight line for a point on the axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ParallelBeamGeometry:
    """Views, radial bins and the transaxial image they see.

    Parameters
    ----------
    image_shape : (int, int)
        Transaxial image size ``(nx, ny)``.
    pixel_size_mm : (float, float)
        Pixel size along x and y, mm.
    angles_deg : tuple of float
        View angles, degrees (see the module conventions).
    n_bins : int
        Number of radial bins.
    bin_size_mm : float
        Radial bin width, mm.
    """

    image_shape: tuple[int, int]
    pixel_size_mm: tuple[float, float]
    angles_deg: tuple[float, ...]
    n_bins: int
    bin_size_mm: float

    def __post_init__(self):
        if len(self.image_shape) != 2 or any(int(n) < 1 for n in self.image_shape):
            raise ValueError(f"image_shape must be 2 positive integers, got {self.image_shape}")
        if len(self.pixel_size_mm) != 2 or any(not p > 0 for p in self.pixel_size_mm):
            raise ValueError(f"pixel_size_mm must be 2 values > 0, got {self.pixel_size_mm}")
        if len(self.angles_deg) < 1:
            raise ValueError("angles_deg must hold at least one view")
        if int(self.n_bins) < 1:
            raise ValueError(f"n_bins must be >= 1, got {self.n_bins}")
        if not self.bin_size_mm > 0:
            raise ValueError(f"bin_size_mm must be > 0, got {self.bin_size_mm}")
        object.__setattr__(self, "image_shape", tuple(int(n) for n in self.image_shape))
        object.__setattr__(self, "pixel_size_mm", tuple(float(p) for p in self.pixel_size_mm))
        object.__setattr__(self, "angles_deg", tuple(float(a) for a in self.angles_deg))
        object.__setattr__(self, "n_bins", int(self.n_bins))
        object.__setattr__(self, "bin_size_mm", float(self.bin_size_mm))

    @classmethod
    def covering(
        cls,
        image_shape: Sequence[int],
        pixel_size_mm: Sequence[float],
        n_angles: int,
        *,
        arc_deg: float = 180.0,
        bin_size_mm: float | None = None,
        n_bins: int | None = None,
    ) -> ParallelBeamGeometry:
        """Equally spaced views over ``arc_deg`` and enough bins to see the whole image box.

        ``bin_size_mm`` defaults to the smaller pixel size; ``n_bins`` to the box diagonal
        in bins (every ray through the box is measured).
        """
        if int(n_angles) < 1:
            raise ValueError(f"n_angles must be >= 1, got {n_angles}")
        (nx, ny), (dx, dy) = image_shape, pixel_size_mm
        size = float(bin_size_mm) if bin_size_mm is not None else min(dx, dy)
        if n_bins is None:
            n_bins = math.ceil(math.hypot(nx * dx, ny * dy) / size)
        angles = tuple(arc_deg * k / int(n_angles) for k in range(int(n_angles)))
        return cls((nx, ny), (dx, dy), angles, n_bins, size)

    @property
    def n_angles(self) -> int:
        return len(self.angles_deg)

    @property
    def angles_rad(self) -> tuple[float, ...]:
        return tuple(math.radians(a) for a in self.angles_deg)

    @property
    def bin_centres_mm(self) -> tuple[float, ...]:
        """Radial coordinate ``s`` of each bin centre, mm."""
        half = (self.n_bins - 1) / 2.0
        return tuple((b - half) * self.bin_size_mm for b in range(self.n_bins))

    def views(self, indices: Sequence[int]) -> ParallelBeamGeometry:
        """The same scanner restricted to some views (an OSEM subset), in the given order."""
        return ParallelBeamGeometry(
            self.image_shape, self.pixel_size_mm, tuple(self.angles_deg[i] for i in indices), self.n_bins, self.bin_size_mm
        )

    def subset_views(self, n_subsets: int) -> list[list[int]]:
        """View indices of ``n_subsets`` interleaved subsets, in a well-spread processing order.

        View ``k`` goes to subset ``k mod n``. The subsets are returned in the order OSEM
        should visit them: each next subset is the one farthest in angle from all visited
        ones (ties: farthest from the previous one, then the lowest offset), which gives the
        bit-reversed order for powers of two (0, 4, 2, 6, 1, 5, 3, 7). Visiting neighbouring
        angles in turn converges worse (Hudson & Larkin 1994).
        """
        return interleaved_subsets(self.n_angles, n_subsets)

    def to_dict(self) -> dict:
        """JSON-ready description for raw-data sidecars (units in the keys)."""
        return {
            "image_shape": list(self.image_shape),
            "pixel_size_mm": list(self.pixel_size_mm),
            "angles_deg": list(self.angles_deg),
            "n_bins": self.n_bins,
            "bin_size_mm": self.bin_size_mm,
            "bin_centres_mm": list(self.bin_centres_mm),
        }


def interleaved_subsets(n_angles: int, n_subsets: int) -> list[list[int]]:
    """View indices of ``n_subsets`` interleaved subsets of ``n_angles`` views, well-spread order.

    See :meth:`ParallelBeamGeometry.subset_views` (SPECT geometries use the same rule).
    """
    n = int(n_subsets)
    if not 1 <= n <= n_angles:
        raise ValueError(f"n_subsets must be in [1, {n_angles}] (the number of views), got {n_subsets}")
    return [list(range(offset, n_angles, n)) for offset in _spread_order(n)]


def _spread_order(n: int) -> list[int]:
    """Subset offsets ``0..n-1`` ordered so that consecutive ones are far apart (circularly)."""

    def distance(a: int, b: int) -> int:
        return min((a - b) % n, (b - a) % n)

    order, remaining = [0], set(range(1, n))
    while remaining:
        best = max(remaining, key=lambda c: (min(distance(c, v) for v in order), distance(c, order[-1]), -c))
        order.append(best)
        remaining.remove(best)
    return order


#: The geometry conventions of :class:`ParallelBeamGeometry` sinograms, as written into the
#: raw-data sidecars (``Conventions``) of every modality that writes them.
SINOGRAM_CONVENTIONS = (
    "Transaxial image = the (x, y) plane of the image grid (axis 0 = +x, axis 1 = +y); z planes are "
    "independent 2-D sinograms. The rotation axis passes through the centre of the image box. View k has "
    "angle theta_k (angles_deg) measured from +x towards +y and integrates along the lines "
    "x cos(theta) + y sin(theta) = s, x and y in mm from the box centre. Radial bin b is centred at "
    "s_b = (b - (n_bins - 1) / 2) * bin_size_mm. Sinogram arrays are [view, radial bin, slice], one per scan (session). "
    "Line integrals are Joseph's (linear interpolation between pixel centres, path length per step)."
)


def sinogram_sidecar_fields(geometry: ParallelBeamGeometry, grid) -> dict:
    """The geometry fields of a raw-sinogram sidecar, so that any code can rebuild the projector.

    Parameters
    ----------
    geometry : ParallelBeamGeometry
        Views, bins and their sizes (mm, degrees).
    grid : ImageGrid
        The image grid the sinograms project (slices along z).

    Returns
    -------
    dict
        ``Conventions`` (:data:`SINOGRAM_CONVENTIONS`), ``Geometry``, ``SliceCentres_mm``,
        ``ImageGrid`` (shape, voxel size in mm, RAS affine in mm) and ``SinogramNIfTIHeader``.
    """
    return {
        "SinogramNIfTIHeader": "pixdim of the sinogram files = (view step in degrees, radial bin size mm, slice mm); "
        "their affine is not a spatial mapping",
        "Conventions": SINOGRAM_CONVENTIONS,
        "Geometry": geometry.to_dict(),
        "SliceCentres_mm": [grid.origin_mm[2] + k * grid.voxel_size_mm[2] for k in range(grid.shape[2])],
        "ImageGrid": {
            "shape": list(grid.shape),
            "voxel_size_mm": list(grid.voxel_size_mm),
            "affine_RAS_mm": [list(row) for row in grid.affine],
            "note": "rotation axis through the centre of the transaxial image box",
        },
    }
