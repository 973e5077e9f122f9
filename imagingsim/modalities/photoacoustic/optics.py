"""Light fluence in the slice: diffusion theory of a broad beam, per wavelength.

Each illuminating broad beam (radiant exposure ``F0`` on the skin, minus the specular
reflection) becomes an isotropic plane source at ``z0 = 1 / mu_t'`` below the surface of a
semi-infinite medium with an extrapolated boundary; with its negative image at
``-(z0 + 2 zb)`` the fluence per unit transmitted exposure is (Haskell et al. 1994; Farrell
et al. 1992; the same model as the NIRF excitation)

``phi(z) = [exp(-mu_eff |z - z0|) - exp(-mu_eff (z + z0 + 2 zb))] / (2 D mu_eff)``,

``D = 1 / (3 mu_t')``, ``mu_eff = sqrt(3 mu_a mu_t')``, ``zb = 2 A D``, ``A = (1 + R) / (1 - R)``
with ``R(n = 1.4) = 0.53`` (Groenhuis et al. 1983). Below ``z0 + 2 zb`` it decays as
``exp(-mu_eff z)``.

Geometry in the slice: a ring system illuminates the body from all around, modelled as
four beams along +x, -x, +y, -y, each of exposure ``F0`` on the surface facing it, their
fluences added; a linear array illuminates from its own side (one beam along y). For a beam,
a voxel's depth is the body path from the surface along the beam, ``z = (n - 1/2) dx`` for
its ``n``-th body voxel, and ``mu_a``, ``mu_s'`` are the means over those ``n`` voxels,
used in the homogeneous formula (exact for a homogeneous medium; layered and lateral
heterogeneity are approximated, as in the NIRF model). Limits: the slice is treated as part
of a body illuminated uniformly along z (no out-of-plane loss); four beams over-light 45
degree facets by up to sqrt(2); the diffuse source has strength 1 per transmitted photon
(fluence high by ``mu_a / mu_s'``, a few %).

The diffusion-theory kernel is the one NIRF and the delivery's light trigger use
(:mod:`imagingsim.physics.optics`); this module adds the slice's beams and path means.

References
----------
R. C. Haskell et al., JOSA A 1994;11:2727. T. J. Farrell et al., Med Phys 1992;19:879.
R. A. J. Groenhuis, H. A. Ferwerda, J. J. Ten Bosch, Appl Opt 1983;22:2456 (R_eff fit).
"""

from __future__ import annotations

import math

from imagingsim.backend import Backend
from imagingsim.physics.optics import Diffusion, plane_fluence, refractive_index, specular_reflection
from imagingsim.physics.optics import diffusion as shared_diffusion

#: Tissue refractive index (air outside), from ``data/optics.toml`` ``[medium]`` as in NIRF.
REFRACTIVE_INDEX = refractive_index()
#: Beams of each detector geometry: (array axis, +1 light travelling towards +axis / -1 towards -axis).
RING_BEAMS = ((0, 1), (0, -1), (1, 1), (1, -1))


def diffusion(mu_a, mu_s_prime, xp=math) -> Diffusion:
    """``D``, ``mu_eff``, ``z0``, ``zb`` of a medium of tissue's refractive index (:func:`imagingsim.physics.optics.diffusion`)."""
    return shared_diffusion(mu_a, mu_s_prime, REFRACTIVE_INDEX, xp)


def beams(detector: str, side: str) -> tuple[tuple[int, int], ...]:
    """The illuminating beams of a detector geometry: ring all around, linear array from its side."""
    if detector == "ring":
        return RING_BEAMS
    return ((1, 1),) if side == "dorsal" else ((1, -1),)


def _along(x, axis: int, direction: int, xp):
    """Cumulative sum of ``x (nx, ny, ...)`` along ``axis`` in the direction the light travels."""
    if direction > 0:
        return xp.cumulative_sum(x, axis=axis)
    return xp.flip(xp.cumulative_sum(xp.flip(x, axis=axis), axis=axis), axis=axis)


def fluence(body, mu_a, mu_s_prime, voxel_mm: float, exposure_mJ_per_cm2: float, beam_list, backend: Backend):
    """Fluence in the slice at every wavelength, mJ/cm^2 (module docstring).

    Parameters
    ----------
    body : device array ``(nx, ny)``, bool
        Non-air voxels.
    mu_a, mu_s_prime : device arrays ``(nx, ny, L)``
        Absorption and reduced scattering, 1/mm.
    voxel_mm : float
        In-plane voxel size (isotropic), mm.
    exposure_mJ_per_cm2 : float
        Radiant exposure of each beam on the skin, mJ/cm^2.
    beam_list : sequence of (axis, direction)
    backend : Backend

    Returns
    -------
    device array ``(nx, ny, L)``, float64
        0 outside the body.
    """
    xp = backend.xp
    inside = xp.astype(body, xp.float64)[:, :, None]
    transmitted = exposure_mJ_per_cm2 * (1.0 - specular_reflection(REFRACTIVE_INDEX))
    total = None
    for axis, direction in beam_list:
        count = _along(inside, axis, direction, xp)
        n = xp.where(count > 0, count, 1.0)
        mean_a = _along(mu_a * inside, axis, direction, xp) / n
        mean_s = _along(mu_s_prime * inside, axis, direction, xp) / n
        depth = (count - 0.5) * voxel_mm
        m = diffusion(xp.where(count > 0, mean_a, 1.0), xp.where(count > 0, mean_s, 1.0), xp)
        phi = transmitted * plane_fluence(depth, m, xp) * inside
        total = phi if total is None else total + phi
    return total


def path_depth(body, voxel_mm: float, beam_list, backend: Backend):
    """Depth of each body voxel below the skin along the nearest beam, ``min (n - 1/2) dx``, mm (inf outside)."""
    xp = backend.xp
    inside = xp.astype(body, xp.float64)
    depth = None
    for axis, direction in beam_list:
        count = _along(inside, axis, direction, xp)
        d = xp.where(body, (count - 0.5) * voxel_mm, xp.inf)
        depth = d if depth is None else xp.minimum(depth, d)
    return depth


def fluence_homogeneous(body, mu_a_per_mm, mu_s_prime_per_mm, voxel_mm: float, exposure_mJ_per_cm2: float, beam_list,
                        backend: Backend):
    """:func:`fluence` of the body filled with one tissue (``mu_a``, ``mu_s'`` sequences over wavelengths, 1/mm).

    The model a fluence compensation assumes when it knows the body outline but not the optics inside.
    """
    xp = backend.xp
    shape = (1, 1, len(mu_a_per_mm))
    a = xp.reshape(xp.asarray(mu_a_per_mm, dtype=xp.float64, device=backend.device), shape)
    s = xp.reshape(xp.asarray(mu_s_prime_per_mm, dtype=xp.float64, device=backend.device), shape)
    ones = xp.ones((*body.shape, 1), dtype=xp.float64, device=backend.device)
    return fluence(body, a * ones, s * ones, voxel_mm, exposure_mJ_per_cm2, beam_list, backend)


__all__ = [
    "REFRACTIVE_INDEX",
    "Diffusion",
    "beams",
    "diffusion",
    "fluence",
    "fluence_homogeneous",
    "path_depth",
    "plane_fluence",
    "specular_reflection",
]
