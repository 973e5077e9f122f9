"""External fields acting on an agent: a focused heating field and an external magnet.

Heating field (trigger ``"heat"``, :class:`~imagingsim.scenario.HeatSpec`)
    While the source is on, the tissue temperature is
    ``T(x) = T_body + dT exp(-4 ln2 |x - x_f|^2 / FWHM^2)``: a Gaussian focus, the steady
    temperature rise of a focused ultrasound or RF source whose focus is larger than the
    thermal diffusion length (Pennes bioheat equation with a Gaussian source; the focus is
    taken isotropic). Lysolipid thermosensitive liposomes (LTSL, ThermoDox) release their
    payload within seconds above the lipid phase transition, 41-42 C, and barely below 39 C
    (Needham et al., Cancer Res 2000;60:1197; Mills & Needham, BBA 2004;1716:77). Release is
    switched on linearly across ``transition_width_K`` centred on ``transition_temperature_C``:
    ``a(x) = clip((T - T_m + w/2) / w, 0, 1)``; below ``T_m - w/2`` nothing happens, so no
    release beyond the baseline outside the heated region. The field acts on the carrier
    wherever it is in the voxel: the interstitium and cells, and the voxel's blood
    (intravascular release, the main route of LTSL; Manzoor et al., Cancer Res
    2012;72:5566; Gasselhuber et al., Int J Hyperthermia 2012;28:337). Intravascular release
    is taken in the well-mixed limit (release slower than the heated region's transit time),
    and the released drug joins the voxel's free drug.
External magnet (:class:`~imagingsim.scenario.MagnetSpec`)
    A dipole of surface field ``B0`` at distance ``r0`` from its centre has
    ``B(r) = B0 (r0 / r)^3`` (on-axis law taken for every direction: the dipole field's
    angular factor, 1-2, is left out), so ``r0 = 3 B0 / G`` from the surface gradient ``G``.
    The force on a superparamagnetic particle below saturation is
    ``F = (V chi / mu0) B dB/dr`` (Pankhurst et al., J Phys D 2003;36:R167), falling as
    ``(r0 / r)^7``; its magnetophoretic drift adds to the transport out of the vessels and
    opposes the washout back to them, so extravasation is multiplied and washout divided by
    ``1 + g (r0 / r)^7`` with ``g`` the enhancement at the surface (1 inside ``r0``).
    ``g`` is a phenomenological constant (magnetic targeting raised SPION tumour uptake 5x in
    Chertok et al., Biomaterials 2008;29:487; check).
"""

from __future__ import annotations

import math
from typing import Any

from imagingsim.grid import ImageGrid
from imagingsim.scenario import HeatSpec, MagnetSpec

BODY_TEMPERATURE_C = 37.0  # core body temperature, deg C
#: Exponent of the force of a dipole's field on a particle below saturation, B dB/dr ~ r^-7.
DIPOLE_FORCE_POWER = 7


def _distance_mm(grid: ImageGrid, centre_mm, backend):
    """Distance of every voxel centre from ``centre_mm``, mm (device, ``grid.shape``)."""
    xp = backend.xp
    x, y, z = grid.axes_mm(backend)
    cx, cy, cz = centre_mm
    return xp.sqrt((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2)


def heating_temperature_C(grid: ImageGrid, heat: HeatSpec, backend) -> Any:
    """Tissue temperature while the heating source is on, deg C (device, ``grid.shape``)."""
    r = _distance_mm(grid, heat.centre_mm, backend)
    xp = backend.xp
    shape = xp.exp((-4.0 * math.log(2.0) / heat.focal_fwhm_mm**2) * (r * r))
    return BODY_TEMPERATURE_C + heat.temperature_rise_K * shape


def heat_activation(temperature_C, heat: HeatSpec, xp) -> Any:
    """Fraction (0-1) of the triggered release switched on at ``temperature_C`` (linear switch)."""
    low = heat.transition_temperature_C - 0.5 * heat.transition_width_K
    return xp.clip((temperature_C - low) / heat.transition_width_K, 0.0, 1.0)


def magnet_radius_mm(magnet: MagnetSpec) -> float:
    """Dipole radius ``r0 = 3 B0 / G``, mm (where the configured surface field and gradient hold)."""
    return 3.0 * magnet.surface_field_T / magnet.surface_gradient_T_per_m * 1e3


def magnet_field_T(grid: ImageGrid, magnet: MagnetSpec, backend) -> Any:
    """Field magnitude of the magnet, T: ``B0 (r0 / r)^3``, ``B0`` within ``r0`` (device, ``grid.shape``)."""
    xp = backend.xp
    r0 = magnet_radius_mm(magnet)
    ratio = xp.minimum(r0 / xp.maximum(_distance_mm(grid, magnet.centre_mm, backend), 1e-9), 1.0)
    return magnet.surface_field_T * ratio**3


def magnet_force_fraction(grid: ImageGrid, magnet: MagnetSpec, backend) -> Any:
    """Magnetic force relative to its value at the surface, ``(r0 / r)^7`` capped at 1 (dimensionless)."""
    xp = backend.xp
    r0 = magnet_radius_mm(magnet)
    ratio = xp.minimum(r0 / xp.maximum(_distance_mm(grid, magnet.centre_mm, backend), 1e-9), 1.0)
    return ratio**DIPOLE_FORCE_POWER


__all__ = [
    "BODY_TEMPERATURE_C",
    "heat_activation",
    "heating_temperature_C",
    "magnet_field_T",
    "magnet_force_fraction",
    "magnet_radius_mm",
]
