"""Tumour geometry: an irregular sphere with a necrotic core, a hypoxic shell and a viable rim.

The boundary radius is a smooth random function of direction ``u``:
``R(u) = R (1 + e f(u))`` with ``e = boundary_irregularity`` and
``f(u) = sqrt(2 / K) sum_k cos(kappa u . n_k + phi_k)``, K random unit vectors ``n_k``
and phases ``phi_k``. For any fixed ``u`` and random phases ``f`` has mean 0 and unit
variance, so ``e`` is the r.m.s. relative perturbation of the radius; ``kappa = 3`` gives
a few broad lobes. The zones are scaled copies of the boundary: with ``rho = r / R(u)``
the core is ``rho < necrotic_fraction``, the hypoxic shell extends
``hypoxic_shell_fraction`` further, and the viable rim reaches ``rho = 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from imagingsim.phantom.anatomy import VoxelCanvas
from imagingsim.phantom.model import Label
from imagingsim.scenario import TumourSpec

#: Random stream of the boundary perturbation; the key is (seed, stream, tumour index).
STREAM_TUMOUR_SHAPE = 1
N_LOBES = 12
LOBE_WAVENUMBER = 3.0  # rad per unit of u . n_k: about one oscillation across the sphere
#: |f| is clipped here, so the radius stays within R (1 +/- 1.8 e) and > 0 for e <= 0.5.
PERTURBATION_CLIP = 1.8


@dataclass(frozen=True, eq=False)
class TumourShape:
    """One tumour's geometry with its drawn boundary perturbation.

    Attributes
    ----------
    spec : TumourSpec
        Centre and radius (mm), zone fractions, irregularity.
    directions : device array, float64, (N_LOBES, 3)
        Unit vectors ``n_k``.
    phases : device array, float64, (N_LOBES,)
        Phases ``phi_k`` in rad.
    """

    spec: TumourSpec
    directions: Any
    phases: Any

    @classmethod
    def draw(cls, backend, spec: TumourSpec, seed: int, index: int) -> TumourShape:
        """Draw the perturbation of tumour number ``index`` from ``backend.rng(seed, 1, index)``."""
        xp = backend.xp
        rng = backend.rng(seed, STREAM_TUMOUR_SHAPE, index)
        normals = rng.standard_normal((N_LOBES, 3))
        directions = normals / xp.sqrt(xp.sum(normals * normals, axis=1, keepdims=True))
        return cls(spec, directions, rng.uniform((N_LOBES,), 0.0, 2.0 * math.pi))

    @property
    def max_radius_mm(self) -> float:
        """Largest possible boundary radius, mm."""
        return self.spec.radius_mm * (1.0 + PERTURBATION_CLIP * self.spec.boundary_irregularity)

    def bounds_mm(self):
        """Bounding box (lo, hi) in world mm."""
        r = self.max_radius_mm
        return tuple(c - r for c in self.spec.centre_mm), tuple(c + r for c in self.spec.centre_mm)

    def _radial(self, xp, x, y, z):
        """Distance from the centre and boundary radius in that direction, both mm."""
        cx, cy, cz = self.spec.centre_mm
        dx, dy, dz = x - cx, y - cy, z - cz
        r = xp.sqrt(dx * dx + dy * dy + dz * dz)
        irregularity = self.spec.boundary_irregularity
        if irregularity == 0.0:
            return r, self.spec.radius_mm
        inv = 1.0 / (r + 1e-12)  # the direction at the centre is arbitrary (r = 0 < R)
        ux, uy, uz = dx * inv, dy * inv, dz * inv
        f = None
        for k in range(N_LOBES):
            n = self.directions[k, :]
            term = xp.cos(LOBE_WAVENUMBER * (ux * n[0] + uy * n[1] + uz * n[2]) + self.phases[k])
            f = term if f is None else f + term
        f = xp.clip(f * math.sqrt(2.0 / N_LOBES), -PERTURBATION_CLIP, PERTURBATION_CLIP)
        return r, self.spec.radius_mm * (1.0 + irregularity * f)

    def signed_distance_mm(self, xp, x, y, z):
        """``r - R(u)``: negative inside, a distance estimate near the boundary (mm)."""
        r, boundary = self._radial(xp, x, y, z)
        return r - boundary

    def zone_labels(self, canvas: VoxelCanvas, block):
        """uint8 zone labels in ``block`` of ``canvas``: 0 outside, else a tumour :class:`Label`."""
        xp = canvas.xp
        r, boundary = self._radial(xp, *canvas.coordinates(block))
        rho = r / boundary
        core = self.spec.necrotic_fraction
        zones = xp.where(rho < 1.0, canvas.uint8(Label.TUMOUR_VIABLE), canvas.uint8(0))
        zones = xp.where(rho < core + self.spec.hypoxic_shell_fraction, canvas.uint8(Label.TUMOUR_HYPOXIC), zones)
        return xp.where(rho < core, canvas.uint8(Label.TUMOUR_NECROTIC), zones)


def draw_tumours(backend, tumours, seed: int) -> list[TumourShape]:
    """One :class:`TumourShape` per spec, each from its own random stream."""
    return [TumourShape.draw(backend, spec, seed, n) for n, spec in enumerate(tumours)]


def paint_tumours(canvas: VoxelCanvas, shapes) -> Any:
    """Paint tumour zones over the anatomy and return the tumour index volume.

    Tumours displace whatever tissue was there. Where tumours overlap, the later one wins.

    Returns
    -------
    device array, uint8, ``grid.shape``
        0 outside tumours, ``n + 1`` inside ``shapes[n]``.
    """
    xp = canvas.xp
    index = xp.zeros(canvas.grid.shape, dtype=xp.uint8, device=canvas.backend.device)
    for n, shape in enumerate(shapes):
        block = canvas.block(*shape.bounds_mm())
        if block is None:
            continue
        zones = shape.zone_labels(canvas, block)
        inside = zones > 0
        canvas.paint(zones, inside, block)
        index[block] = xp.where(inside, canvas.uint8(n + 1), index[block])
    return index


__all__ = ["STREAM_TUMOUR_SHAPE", "TumourShape", "draw_tumours", "paint_tumours"]
