"""Light-triggered release: the fluence a broad beam delivers in the body, and the release it drives.

Fluence (:class:`~imagingsim.scenario.LightSpec`)
    A collimated flat-top beam of radius ``beam_radius_mm`` and irradiance ``E0`` enters the
    skin along a grid axis. The transmitted ``E0 (1 - R_sp)`` (Fresnel reflectance at normal
    incidence) feeds diffusion theory's broad-beam fluence (:mod:`imagingsim.physics.optics`),
    evaluated in each voxel with that voxel's constants and the optical depth travelled,
    ``tau(x) = integral of mu_eff along the beam from the skin``:
    ``phi(x) = plane_fluence(tau / mu_eff(x))``. In a homogeneous tissue this is exactly the
    semi-infinite solution, which falls as ``exp(-mu_eff d)`` below a few transport mean free
    paths; through layers it carries each layer's attenuation (the WKB-like layered
    approximation, no reflection at internal boundaries). The lateral spread of the diffuse
    light beyond the spot edge is neglected (a beam wider than the penetration depth).
    Over the window ``T`` the local fluence is ``H(x) = E0 (1 - R_sp) phi(x) T``, J/cm^2.
    Optical properties at the beam's wavelength are the phantom's 810 nm maps times each
    tissue's spectral ratios (``data/optics.toml``).
Release
    Photo-cleavable or photothermal carriers open at a rate proportional to the local
    fluence rate (a photochemical cross-section): ``k(x) = H(x) / (H_e T)`` while the light is
    on, with ``H_e = release_fluence_J_per_cm2`` the fluence per e-fold of release, so a
    carrier sitting in the beam releases ``1 - exp(-H / H_e)`` of its payload: proportional
    to ``H`` (and to ``exp(-mu_eff d)``) while ``H << H_e``, saturating near the skin. Below
    ``threshold_fluence_J_per_cm2`` nothing is released (a photothermal carrier that must be
    heated past its transition; 0 for a photochemical one).
"""

from __future__ import annotations

from imagingsim.phantom.model import Label, Phantom
from imagingsim.phantom.properties import lookup
from imagingsim.physics.optics import diffusion, plane_fluence, refractive_index, spectral_ratios, specular_reflection
from imagingsim.scenario import LightSpec

MW_PER_W = 1e3
S_PER_H = 3600.0


def _optical_maps(phantom: Phantom, wavelength_nm: float, backend):
    """``(mu_a, mu_s')`` of the phantom at ``wavelength_nm``, 1/mm (its 810 nm maps x spectral ratios)."""
    ratios = spectral_ratios(float(wavelength_nm))
    ratio_a = [ratios[label.bids_name][0] for label in Label]
    ratio_s = [ratios[label.bids_name][1] for label in Label]
    props = phantom.properties
    return (
        props["mu_a_810nm_per_mm"] * lookup(backend, phantom.labels, ratio_a),
        props["mu_s_prime_810nm_per_mm"] * lookup(backend, phantom.labels, ratio_s),
    )


def light_fluence_J_per_cm2(phantom: Phantom, light: LightSpec, backend):
    """Local fluence delivered over the illumination window, J/cm^2 (device, grid shape; 0 in air and outside the beam)."""
    xp = backend.xp
    grid = phantom.grid
    axis = "xyz".index(light.direction[1])
    forward = light.direction[0] == "+"
    mu_a, mu_s = _optical_maps(phantom, light.wavelength_nm, backend)
    tissue = phantom.labels != int(Label.AIR)
    zero = xp.zeros((), dtype=xp.float64, device=backend.device)
    m = diffusion(xp.where(tissue, mu_a, 1.0), xp.where(tissue, mu_s, 1.0), refractive_index(), xp)
    step_mm = grid.voxel_size_mm[axis]
    per_voxel = xp.where(tissue, m.mu_eff * step_mm, zero)
    # Optical depth at each voxel centre along the beam: everything before it plus half of it.
    along = per_voxel if forward else xp.flip(per_voxel, axis=axis)
    before = xp.cumulative_sum(along, axis=axis) - along
    before = before if forward else xp.flip(before, axis=axis)
    depth_tau = before + 0.5 * per_voxel
    phi = plane_fluence(depth_tau / m.mu_eff, m, xp)
    # Inside the spot: transverse distance from the beam axis.
    coords = grid.axes_mm(backend)
    transverse = [k for k in range(3) if k != axis]
    r2 = sum((coords[k] - light.centre_mm[k]) ** 2 for k in transverse)
    in_beam = (r2 <= light.beam_radius_mm**2) & tissue
    duration_s = (light.off_h - light.on_h) * S_PER_H
    incident_J_per_cm2 = light.irradiance_mW_per_cm2 / MW_PER_W * duration_s
    transmitted = incident_J_per_cm2 * (1.0 - specular_reflection(refractive_index()))
    return xp.where(in_beam, transmitted * phi, zero)


def light_release_rate_per_h(fluence_J_per_cm2, light: LightSpec, xp):
    """Release rate while the light is on, 1/h: ``H / (H_e T)`` where ``H >= threshold``, else 0."""
    duration_h = light.off_h - light.on_h
    rate = fluence_J_per_cm2 / (light.release_fluence_J_per_cm2 * duration_h)
    above = fluence_J_per_cm2 >= light.threshold_fluence_J_per_cm2
    return xp.where(above & (fluence_J_per_cm2 > 0.0), rate, xp.zeros_like(rate))


__all__ = ["light_fluence_J_per_cm2", "light_release_rate_per_h"]
