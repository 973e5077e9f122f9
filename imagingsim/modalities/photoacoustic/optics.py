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

The kernel of the two modalities is the same formula; it is written here again (a few lines)
because a modality may not import another (ARCHITECTURE: modalities meet only through the
contract). Moving it to ``imagingsim.physics`` is the clean fix once both use it.

References
----------
R. C. Haskell et al., JOSA A 1994;11:2727. T. J. Farrell et al., Med Phys 1992;19:879.
R. A. J. Groenhuis, H. A. Ferwerda, J. J. Ten Bosch, Appl Opt 1983;22:2456 (R_eff fit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from imagingsim.backend import Backend

#: Tissue refractive index (air outside), as the NIRF model (data/optics.toml [medium]).
REFRACTIVE_INDEX = 1.4
#: Beams of each detector geometry: (array axis, +1 light travelling towards +axis / -1 towards -axis).
RING_BEAMS = ((0, 1), (0, -1), (1, 1), (1, -1))


def effective_reflection(n: float) -> float:
    """Effective internal reflection of a tissue-air boundary (Groenhuis et al. 1983 fit)."""
    return -1.440 / n**2 + 0.710 / n + 0.668 + 0.0636 * n


def specular_reflection(n: float) -> float:
    """Fresnel reflectance at normal incidence from air, ``((n - 1) / (n + 1))^2``."""
    return ((n - 1.0) / (n + 1.0)) ** 2


@dataclass(frozen=True)
class Diffusion:
    """Diffusion-theory constants (floats or device arrays), mm and 1/mm."""

    D: object
    mu_eff: object
    z0: object
    zb: object


def diffusion(mu_a, mu_s_prime, xp=math, n: float = REFRACTIVE_INDEX) -> Diffusion:
    """``D``, ``mu_eff``, ``z0``, ``zb`` of a medium (module docstring)."""
    mu_t = mu_a + mu_s_prime
    D = 1.0 / (3.0 * mu_t)
    r = effective_reflection(n)
    return Diffusion(D=D, mu_eff=xp.sqrt(3.0 * mu_a * mu_t), z0=1.0 / mu_t, zb=2.0 * (1.0 + r) / (1.0 - r) * D)


def plane_fluence(z_mm, m: Diffusion, xp=math):
    """Fluence at depth ``z`` per unit transmitted broad-beam exposure (dimensionless)."""
    distance = abs(z_mm - m.z0) if xp is math else xp.abs(z_mm - m.z0)
    return (xp.exp(-m.mu_eff * distance) - xp.exp(-m.mu_eff * (z_mm + m.z0 + 2.0 * m.zb))) / (2.0 * m.D * m.mu_eff)


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
    "effective_reflection",
    "fluence",
    "fluence_homogeneous",
    "path_depth",
    "plane_fluence",
    "specular_reflection",
]
