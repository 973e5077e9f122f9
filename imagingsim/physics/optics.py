"""Diffusion theory of light in tissue: the constants of a medium and the broad-beam fluence.

Shared by the NIRF modality (:mod:`imagingsim.modalities.nirf.optics`, where the theory and
its point-source results are described) and the light trigger of the delivery model
(:mod:`imagingsim.delivery.light`). Semi-infinite medium with an extrapolated boundary
(Haskell et al., JOSA A 1994;11:2727; Farrell et al., Med Phys 1992;19:879). With
``mu_t' = mu_a + mu_s'``: ``D = 1 / (3 mu_t')``, ``mu_eff = sqrt(3 mu_a mu_t')``,
``z0 = 1 / mu_t'``, ``zb = 2 A D``, ``A = (1 + R_eff) / (1 - R_eff)`` with ``R_eff(n)`` from
the fit of Groenhuis et al. (Appl Opt 1983;22:2456). A broad beam's transmitted irradiance
is an isotropic plane source of strength 1 at ``z0``; with its negative image at
``-(z0 + 2 zb)`` the fluence rate per unit transmitted irradiance is
``phi(z) = [exp(-mu_eff |z - z0|) - exp(-mu_eff (z + z0 + 2 zb))] / (2 D mu_eff)``, which
falls as ``exp(-mu_eff z)`` below a few ``z0``.

The tissue spectra (``data/optics.toml``): :func:`spectral_ratios` gives each tissue's
``mu_a`` and ``mu_s'`` at a wavelength relative to 810 nm, the wavelength of the phantom's
optical maps (log-linear interpolation of the tabulated absorption, Mie power law of the
scattering; the table's header gives the sources).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from imagingsim.data.tables import read_table

#: Wavelength of the phantom's optical property maps (tissues.toml), nm.
PHANTOM_WAVELENGTH_NM = 810.0


def effective_reflection(n: float) -> float:
    """Effective internal reflection coefficient of a tissue-air boundary (Groenhuis et al. 1983 fit)."""
    return -1.440 / n**2 + 0.710 / n + 0.668 + 0.0636 * n


def specular_reflection(n: float) -> float:
    """Fresnel reflectance at normal incidence from air, ``((n - 1) / (n + 1))^2``."""
    return ((n - 1.0) / (n + 1.0)) ** 2


@dataclass(frozen=True)
class Diffusion:
    """Diffusion-theory constants of a medium (floats or device arrays), mm and 1/mm."""

    D: Any
    mu_eff: Any
    z0: Any
    zb: Any
    A: float


def diffusion(mu_a, mu_s_prime, n: float, xp=math) -> Diffusion:
    """``D``, ``mu_eff``, ``z0`` and ``zb`` of a medium (module docstring); ``xp`` = math or an array namespace."""
    mu_t = mu_a + mu_s_prime
    D = 1.0 / (3.0 * mu_t)
    r = effective_reflection(n)
    A = (1.0 + r) / (1.0 - r)
    return Diffusion(D=D, mu_eff=xp.sqrt(3.0 * mu_a * mu_t), z0=1.0 / mu_t, zb=2.0 * A * D, A=A)


def plane_fluence(z_mm, m: Diffusion, xp=math):
    """Fluence rate at depth ``z`` per unit transmitted broad-beam irradiance (dimensionless; source strength 1)."""
    mu = m.mu_eff
    distance = abs(z_mm - m.z0) if xp is math else xp.abs(z_mm - m.z0)
    return (xp.exp(-mu * distance) - xp.exp(-mu * (z_mm + m.z0 + 2.0 * m.zb))) / (2.0 * m.D * mu)


def interp_log(xs: tuple[float, ...], ys: tuple[float, ...], x: float) -> float:
    """``y(x)`` interpolated linearly in ``log y`` (linearly where a neighbour is 0); no extrapolation.

    Raises
    ------
    ValueError
        ``x`` outside ``[xs[0], xs[-1]]`` (wavelengths in nm).
    """
    if not xs[0] <= x <= xs[-1]:
        raise ValueError(f"wavelength {x} nm is outside the optics table ({xs[0]}-{xs[-1]} nm)")
    for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:]):
        if x0 <= x <= x1:
            t = (x - x0) / (x1 - x0)
            if y0 > 0.0 and y1 > 0.0:
                return math.exp((1.0 - t) * math.log(y0) + t * math.log(y1))
            return (1.0 - t) * y0 + t * y1
    return ys[-1]


@functools.cache
def refractive_index() -> float:
    """Tissue refractive index of ``data/optics.toml`` (air outside)."""
    return float(read_table("optics.toml")["medium"]["refractive_index"])


@functools.cache
def spectral_ratios(wavelength_nm: float) -> dict[str, tuple[float, float]]:
    """Per tissue (``data/optics.toml`` name): ``(mu_a(lambda) / mu_a(810), mu_s'(lambda) / mu_s'(810))``.

    Absorption by log-linear interpolation of ``mu_a_per_mm`` (1 where the 810 nm value is
    0), scattering ``(lambda / 810)^-b`` with the tissue's ``scattering_power_b``.
    """
    raw = read_table("optics.toml")
    xs = tuple(float(w) for w in raw["wavelengths_nm"])
    out = {}
    for name, entry in raw["tissue"].items():
        values = tuple(float(v) for v in entry["mu_a_per_mm"])
        ref = interp_log(xs, values, PHANTOM_WAVELENGTH_NM)
        ratio_a = 1.0 if ref == 0.0 else interp_log(xs, values, wavelength_nm) / ref
        ratio_s = (wavelength_nm / PHANTOM_WAVELENGTH_NM) ** -float(entry["scattering_power_b"])
        out[name] = (ratio_a, ratio_s)
    return out


__all__ = [
    "PHANTOM_WAVELENGTH_NM",
    "Diffusion",
    "diffusion",
    "effective_reflection",
    "interp_log",
    "plane_fluence",
    "refractive_index",
    "spectral_ratios",
    "specular_reflection",
]
