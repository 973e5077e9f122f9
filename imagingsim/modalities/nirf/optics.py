"""NIR light transport of the fluorescence model: diffusion theory and the layer PSFs.

The data (dyes, cameras, tissue optics, PSF parameters) are in
:mod:`imagingsim.modalities.nirf.tables`; the per-layer convolution is
:class:`imagingsim.modalities.nirf.layered_blur.LayeredBlur`.

Diffusion theory of a semi-infinite medium with an extrapolated boundary (Haskell et al.,
JOSA A 1994;11:2727; Boas et al., in Handbook of Biomedical Optics 2002; Farrell et al.,
Med Phys 1992;19:879). With ``mu_t' = mu_a + mu_s'``:

- ``D = 1 / (3 mu_t')``, ``mu_eff = sqrt(3 mu_a mu_t')``, ``z0 = 1 / mu_t'``,
  ``zb = 2 A D`` with ``A = (1 + R_eff) / (1 - R_eff)`` and ``R_eff(n)`` from the fit of
  Groenhuis et al. (Appl Opt 1983;22:2456), 0.53 for n = 1.4.
- Broad-beam excitation (:func:`plane_fluence`): the transmitted irradiance becomes an
  isotropic plane source of strength 1 at ``z0``; with its negative image at
  ``-(z0 + 2 zb)`` the fluence rate per unit transmitted irradiance is
  ``phi(z) = [exp(-mu_eff |z - z0|) - exp(-mu_eff (z + z0 + 2 zb))] / (2 D mu_eff)``.
  Strength 1 means every transmitted photon joins the diffuse field; the usual choice
  (Farrell et al. 1992) is the transport albedo ``mu_s' / mu_t'`` (the rest is absorbed at
  the first interaction), so the diffuse fluence here is high by ``mu_a / mu_s'``: 4 % in
  muscle at 810 nm (0.028 / 0.704), ~11 % at 1150 nm.
- A buried isotropic point source at depth ``d`` with its image at ``-(d + 2 zb)`` gives
  the surface fluence ``phi(rho, 0) = [exp(-mu_eff r1)/r1 - exp(-mu_eff r2)/r2] / (4 pi D)``,
  ``r1 = sqrt(rho^2 + d^2)``, ``r2 = sqrt(rho^2 + (d + 2 zb)^2)``; the exitance (what the
  camera sees) is ``phi(rho, 0) / (2 A)`` (:func:`surface_exitance`), the partial-current
  boundary condition. Its integral over the surface is closed-form,
  ``T(d) = exp(-mu_eff d) [1 - exp(-2 mu_eff zb)] / (4 A D mu_eff)`` (:func:`escape_fraction`),
  so the diffuse signal decays exactly as ``exp(-mu_eff d)``. Its FWHM reproduces the diffusion-theory widths (Haskell et al., JOSA A 1994; Boas 2002)
  (muscle, 810 nm: 2.63 / 4.45 / 8.33 / 12.87 mm at 1 / 2 / 5 / 10 mm; the Fick-flux form
  ``D dphi/dz`` would give 1.5 / 3.0 / 6.9 / 11.8 mm).

Weakly scattered light (hand-tuned, uncalibrated; check). Diffusion theory is not valid
within a few transport mean free paths of the source, where part of the light still
travels nearly straight ("snake" photons), most of all in NIR-II where scattering is
weaker. A phenomenological two-component model (:func:`weak_escape`, :func:`total_escape`,
parameters :class:`~imagingsim.modalities.nirf.tables.PSFParameters` in ``optics.toml``):
the fraction ``q(d) = f0 exp(-(mu_a + mu_s') d / k)`` of the photons emitted at depth ``d``
leaves the surface weakly scattered, in a Gaussian of FWHM ``c d`` centred above the
source; the other ``1 - q(d)`` are diffuse and escape with ``T(d)``. The escaping fraction
is ``E(d) = q(d) + (1 - q(d)) T(d)``. With ``k = 1`` the weak part falls as
``exp(-mu_t' d)``, faster than the diffuse ``exp(-mu_eff d)`` wherever ``mu_s' > 2 mu_a``
(all tissues here): a ballistic-like attenuation with the reduced coefficient, because
forward-peaked scattering keeps a photon's direction for about one transport mean free
path. ``f0`` (NIR-II: 0.15) is about the fraction of an isotropic source's photons inside
the escape cone of the tissue-air boundary, ``(1 - cos theta_c) / 2 = 0.150`` for
``n = 1.4`` (the photons that can leave unscattered); ``k`` and ``c`` are guesses. None of
the three is fitted to a measurement: the model only makes NIR-II images sharper than
NIR-I at a few mm depth, as reported qualitatively (Hong et al., Nat Photonics 2014;8:723;
Carr et al., PNAS 2018;115:4465). NIR-I uses ``f0 = 0`` (pure diffusion theory, which
reproduces the diffusion-theory widths); snake photons exist there too, so the NIR-I/NIR-II
contrast in sharpness is partly a modelling choice.
"""

from __future__ import annotations

import math

from imagingsim.backend import Backend
from imagingsim.modalities.nirf.tables import PSFParameters, optics_table
from imagingsim.operators.blur import FWHM_PER_SIGMA
from imagingsim.physics.optics import (
    Diffusion,
    diffusion,
    effective_reflection,
    plane_fluence,
    specular_reflection,
)

# --- diffusion theory ----------------------------------------------------------------------
# The generic part (D, mu_eff, z0, zb, the broad-beam fluence) is shared with the light
# trigger of the delivery model, so it lives in imagingsim.physics.optics.


def surface_exitance(rho_mm, depth_mm, m: Diffusion, xp=math):
    """Exitance at surface distance ``rho`` from a unit isotropic point source at ``depth``, 1/mm^2."""
    r1 = xp.sqrt(rho_mm * rho_mm + depth_mm * depth_mm)
    image = depth_mm + 2.0 * m.zb
    r2 = xp.sqrt(rho_mm * rho_mm + image * image)
    mu = m.mu_eff
    return (xp.exp(-mu * r1) / r1 - xp.exp(-mu * r2) / r2) / (4.0 * math.pi * m.D * 2.0 * m.A)


def escape_within(depth_mm, radius_mm, m: Diffusion, xp=math):
    """Fraction of a point source's diffuse photons leaving the surface within ``radius`` of its foot."""
    mu = m.mu_eff
    image = depth_mm + 2.0 * m.zb
    r1 = xp.sqrt(radius_mm * radius_mm + depth_mm * depth_mm)
    r2 = xp.sqrt(radius_mm * radius_mm + image * image)
    inner = xp.exp(-mu * depth_mm) - xp.exp(-mu * r1) - xp.exp(-mu * image) + xp.exp(-mu * r2)
    return inner / (4.0 * m.A * m.D * mu)


def escape_fraction(depth_mm, m: Diffusion, xp=math):
    """Fraction of a point source's diffuse photons leaving the surface, ``T(d)`` (module docstring)."""
    return (xp.exp(-m.mu_eff * depth_mm) - xp.exp(-m.mu_eff * (depth_mm + 2.0 * m.zb))) / (4.0 * m.A * m.D * m.mu_eff)


# --- weakly scattered light (hand-tuned, uncalibrated) ---------------------------------------


def weak_escape(depth_mm, mu_a, mu_s_prime, params: PSFParameters, xp=math):
    """``q(d) = f0 exp(-(mu_a + mu_s') d / k)``: photons leaving weakly scattered, per photon emitted.

    Floats with ``xp = math``, device arrays with an array namespace (dimensionless).
    """
    return params.weakly_scattered_fraction * xp.exp(-(mu_a + mu_s_prime) * depth_mm / params.decay_transport_mfp)


def total_escape(depth_mm, mu_a, mu_s_prime, m: Diffusion, params: PSFParameters, xp=math):
    """Escaping fraction ``E(d) = q(d) + (1 - q(d)) T(d)`` of the photons emitted at ``depth`` (dimensionless)."""
    q = weak_escape(depth_mm, mu_a, mu_s_prime, params, xp)
    return q + (1.0 - q) * escape_fraction(depth_mm, m, xp)


def weak_share(depth_mm, mu_a, mu_s_prime, m: Diffusion, params: PSFParameters, xp=math):
    """Share of the escaping light that is weakly scattered, ``q / E`` (dimensionless)."""
    q = weak_escape(depth_mm, mu_a, mu_s_prime, params, xp)
    return q / (q + (1.0 - q) * escape_fraction(depth_mm, m, xp))


def cone_sigma_mm(depth_mm, params: PSFParameters, xp=math):
    """Standard deviation of the weakly scattered Gaussian, ``c d / FWHM_PER_SIGMA`` (floored at 1 um), mm."""
    width = params.cone_fwhm_per_depth * depth_mm
    floor = 1e-3 * FWHM_PER_SIGMA
    return (max(width, floor) if xp is math else xp.clip(width, floor, None)) / FWHM_PER_SIGMA


def psf_profile(rho_mm: float, depth_mm: float, mu_a: float, mu_s_prime: float, window: str) -> float:
    """Surface profile of a point source at ``depth``, normalised to unit integral, 1/mm^2 (host floats)."""
    table = optics_table()
    m = diffusion(mu_a, mu_s_prime, table.refractive_index)
    params = table.psf[window]
    diffuse = surface_exitance(rho_mm, depth_mm, m) / escape_fraction(depth_mm, m)
    if params.weakly_scattered_fraction == 0.0:
        return diffuse
    f_w = weak_share(depth_mm, mu_a, mu_s_prime, m, params)
    sigma = cone_sigma_mm(depth_mm, params)
    gauss = math.exp(-0.5 * (rho_mm / sigma) ** 2) / (2.0 * math.pi * sigma * sigma)
    return (1.0 - f_w) * diffuse + f_w * gauss


def psf_fwhm_mm(depth_mm: float, mu_a: float, mu_s_prime: float, window: str) -> float:
    """FWHM of :func:`psf_profile` (bisection on the monotonically falling profile), mm."""
    peak = psf_profile(0.0, depth_mm, mu_a, mu_s_prime, window)
    lo, hi = 0.0, 1.0
    while psf_profile(hi, depth_mm, mu_a, mu_s_prime, window) > 0.5 * peak:
        hi *= 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if psf_profile(mid, depth_mm, mu_a, mu_s_prime, window) > 0.5 * peak else (lo, mid)
    return lo + hi  # 2 x the half-width


def peak_pixel_fraction(depth_mm: float, mu_a: float, mu_s_prime: float, pixel_area_mm2: float, window: str) -> float:
    """Fraction of a point source's escaping light in the pixel above it (disc of equal area; host floats)."""
    table = optics_table()
    m = diffusion(mu_a, mu_s_prime, table.refractive_index)
    params = table.psf[window]
    disc = math.sqrt(pixel_area_mm2 / math.pi)
    diffuse = escape_within(depth_mm, disc, m) / escape_fraction(depth_mm, m)
    if params.weakly_scattered_fraction == 0.0:
        return diffuse
    f_w = weak_share(depth_mm, mu_a, mu_s_prime, m, params)
    sigma = cone_sigma_mm(depth_mm, params)
    return (1.0 - f_w) * diffuse + f_w * (1.0 - math.exp(-0.5 * (disc / sigma) ** 2))


# --- the layer kernels ---------------------------------------------------------------------

#: Pixels (each side of the centre) of the sub-sampled central patch, and sub-samples per pixel.
_PATCH_PIXELS = 2
_SUBSAMPLES = 5


def layer_kernels(depth_mm, mu_a, mu_s_prime, pixel_mm: tuple[float, float], half: tuple[int, int],
                  window: str, backend: Backend):
    """Pixel-integrated surface PSF of each layer, as fractions of its escaping light.

    Parameters
    ----------
    depth_mm, mu_a, mu_s_prime : device arrays ``(L,)``
        Source depth of each layer and the (layer-averaged) optics of the emitted light, mm, 1/mm.
    pixel_mm : (du, dv)
        Image pixel size, mm.
    half : (hu, hv)
        Kernel half-widths in pixels; the kernels are ``(2 hu + 1, 2 hv + 1)``.
    window : {"NIR-I", "NIR-II"}
        Selects the weakly scattered part (:class:`~imagingsim.modalities.nirf.tables.PSFParameters`).
    backend : Backend

    Returns
    -------
    device array, float64, ``(L, 2 hu + 1, 2 hv + 1)``
        Kernel ``l`` sums to the fraction of the PSF inside the kernel (<= 1): the diffuse part
        is the exitance integrated over each pixel (5 x 5 sub-samples in the central 5 x 5
        pixels, the centre pixel replaced by the closed-form integral over the disc of equal
        area, pixel centres elsewhere) divided by the closed-form total ``T(d)``; the weakly
        scattered Gaussian (sampled the same way, normalised to the kernel) is mixed in with
        the weight ``q / E`` (:func:`weak_share`).
    """
    xp, dev = backend.xp, backend.device
    table = optics_table()
    params = table.psf[window]
    (du, dv), (hu, hv) = pixel_mm, half
    a, s = mu_a[:, None, None], mu_s_prime[:, None, None]
    m = diffusion(a, s, table.refractive_index, xp)
    d = depth_mm[:, None, None]
    total = escape_fraction(d, m, xp)

    def grid(step: float, h: int, sub: int):
        """Sample positions (mm) of pixels -h..h, ``sub`` per pixel at their sub-pixel centres."""
        k = xp.arange((2 * h + 1) * sub, dtype=xp.float64, device=dev)
        return ((k + 0.5) / sub - (h + 0.5)) * step

    def evaluate(profile, sub: int, h_u: int, h_v: int):
        u, v = grid(du, h_u, sub), grid(dv, h_v, sub)
        rho = xp.sqrt(u[:, None] ** 2 + v[None, :] ** 2)[None, :, :]
        values = profile(rho)
        if sub == 1:
            return values
        shape = (values.shape[0], 2 * h_u + 1, sub, 2 * h_v + 1, sub)
        return xp.mean(xp.reshape(values, shape), axis=(2, 4))

    def with_patch(profile):
        kernel = evaluate(profile, 1, hu, hv)
        pu, pv = min(_PATCH_PIXELS, hu), min(_PATCH_PIXELS, hv)
        kernel[:, hu - pu:hu + pu + 1, hv - pv:hv + pv + 1] = evaluate(profile, _SUBSAMPLES, pu, pv)
        return kernel

    diffuse = with_patch(lambda rho: surface_exitance(rho, d, m, xp)) * (du * dv)
    disc = math.sqrt(du * dv / math.pi)
    diffuse[:, hu, hv] = escape_within(d, disc, m, xp)[:, 0, 0]
    diffuse = diffuse / total
    if params.weakly_scattered_fraction == 0.0:
        return diffuse
    sigma = cone_sigma_mm(d, params, xp)
    gauss = with_patch(lambda rho: xp.exp(-0.5 * (rho / sigma) ** 2))
    gauss = gauss / xp.sum(gauss, axis=(1, 2), keepdims=True)
    f_w = weak_share(d, a, s, m, params, xp)
    return (1.0 - f_w) * diffuse + f_w * gauss


__all__ = [
    "Diffusion",
    "cone_sigma_mm",
    "diffusion",
    "effective_reflection",
    "escape_fraction",
    "escape_within",
    "layer_kernels",
    "peak_pixel_fraction",
    "plane_fluence",
    "psf_fwhm_mm",
    "psf_profile",
    "specular_reflection",
    "surface_exitance",
    "total_escape",
    "weak_escape",
    "weak_share",
]
