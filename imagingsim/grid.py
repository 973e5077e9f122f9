"""The voxel grid.

Axis convention (used everywhere, tested against nibabel and SimpleITK): arrays are indexed
``[i, j, k]`` with axis 0 along +x (Left -> Right), axis 1 along +y (Posterior -> Anterior),
axis 2 along +z (Inferior -> Superior), i.e. RAS+. The world coordinate of voxel centre
``(i, j, k)`` is ``origin_mm + voxel_size_mm * (i, j, k)``; the affine is diagonal.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageGrid:
    """A regular 3-D voxel grid in RAS+ world coordinates.

    Parameters
    ----------
    shape : tuple of 3 int
        Number of voxels along x, y, z.
    voxel_size_mm : tuple of 3 float
        Voxel edge lengths in mm, all > 0.
    origin_mm : tuple of 3 float
        World coordinate (mm) of the centre of voxel (0, 0, 0).
    """

    shape: tuple[int, int, int]
    voxel_size_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self):
        if len(self.shape) != 3 or any(int(n) < 1 for n in self.shape):
            raise ValueError(f"ImageGrid.shape must be 3 positive integers, got {self.shape}")
        if len(self.voxel_size_mm) != 3 or any(not v > 0 for v in self.voxel_size_mm):
            raise ValueError(f"ImageGrid.voxel_size_mm must be 3 values > 0, got {self.voxel_size_mm}")
        if len(self.origin_mm) != 3:
            raise ValueError(f"ImageGrid.origin_mm must have 3 values, got {self.origin_mm}")
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "voxel_size_mm", tuple(float(v) for v in self.voxel_size_mm))
        object.__setattr__(self, "origin_mm", tuple(float(v) for v in self.origin_mm))

    @classmethod
    def centred(cls, fov_mm: tuple[float, float, float], voxel_size_mm: float) -> ImageGrid:
        """An isotropic grid covering ``fov_mm`` (rounded up to whole voxels), centred on 0."""
        shape = tuple(max(1, int(-(-f // voxel_size_mm))) for f in fov_mm)
        origin = tuple(-0.5 * (n - 1) * voxel_size_mm for n in shape)
        return cls(shape, (voxel_size_mm,) * 3, origin)

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in mL (1 mL = 1000 mm^3)."""
        vx, vy, vz = self.voxel_size_mm
        return vx * vy * vz / 1000.0

    @property
    def n_voxels(self) -> int:
        nx, ny, nz = self.shape
        return nx * ny * nz

    @property
    def affine(self) -> tuple[tuple[float, ...], ...]:
        """The 4x4 voxel-index -> RAS mm affine, as nested tuples (host-side, no array library)."""
        (vx, vy, vz), (ox, oy, oz) = self.voxel_size_mm, self.origin_mm
        return ((vx, 0.0, 0.0, ox), (0.0, vy, 0.0, oy), (0.0, 0.0, vz, oz), (0.0, 0.0, 0.0, 1.0))

    def world_mm(self, index: tuple[float, float, float]) -> tuple[float, float, float]:
        """World coordinate (mm) of a (possibly fractional) voxel index."""
        return tuple(o + v * i for o, v, i in zip(self.origin_mm, self.voxel_size_mm, index))

    def axes_mm(self, backend):
        """Voxel-centre coordinates as three broadcastable device arrays (x, y, z) in mm.

        Shapes are ``(nx, 1, 1)``, ``(1, ny, 1)`` and ``(1, 1, nz)`` so that expressions such
        as ``x**2 + y**2`` build full volumes without materialising a mesh.
        """
        xp = backend.xp
        out = []
        for axis, (n, v, o) in enumerate(zip(self.shape, self.voxel_size_mm, self.origin_mm)):
            line = o + v * xp.arange(n, dtype=xp.float64, device=backend.device)
            shape = [1, 1, 1]
            shape[axis] = n
            out.append(xp.reshape(line, tuple(shape)))
        return tuple(out)

