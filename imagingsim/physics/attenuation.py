"""Photon attenuation of the phantom's materials, from xraydb (Elam tables) and ICRU compositions.

``mu(E) = density * sum_i w_i (mu/rho)_i(E)`` with the elemental mass fractions ``w_i`` of
``data/materials.toml`` and the phantom's per-voxel density map. Coherent scattering is
included (narrow-beam "total" attenuation, as in NIST XCOM's total with coherent): water
gives 0.0960 /cm at 511 keV and 0.1537 /cm at 140 keV (xraydb's Elam tables with ICRU compositions).
"""

from __future__ import annotations

import functools

import xraydb

from imagingsim.backend import Backend
from imagingsim.data.materials import material_compositions

#: Contrast labels of the scenario -> their element (xraydb symbol); K edges: I 33.17 keV, Au 80.72 keV.
CONTRAST_ELEMENTS = {"iodine": "I", "gold": "Au"}


@functools.cache
def element_mass_attenuation_cm2_per_g(symbol: str, energies_keV: tuple[float, ...]) -> tuple[float, ...]:
    """Total mass attenuation coefficient ``mu/rho`` of one element at each energy, cm^2/g.

    Parameters
    ----------
    symbol : str
        Element symbol of xraydb (``"H"``, ``"Au"``, ``"Cu"``...).
    energies_keV : tuple of float
        Photon energies, keV (xraydb's Elam tables cover the diagnostic, SPECT and PET range).

    Returns
    -------
    tuple of float
        ``mu/rho`` at each energy, cm^2/g (Elam total, coherent scattering included): one
        xraydb call for all energies.
    """
    values = xraydb.mu_elam(symbol, [1000.0 * e for e in energies_keV], kind="total")
    return tuple(float(v) for v in values)


@functools.cache
def material_mass_attenuation_cm2_per_g(material: str, energies_keV: tuple[float, ...]) -> tuple[float, ...]:
    """Total mass attenuation coefficient ``mu/rho`` of a material at each energy, cm^2/g.

    ``sum_i w_i (mu/rho)_i(E) / sum_i w_i``: the elements' Elam totals weighted by the mass
    fractions of ``data/materials.toml`` (renormalised to 1), one xraydb call per element.

    Parameters
    ----------
    material : str
        A key of ``data/materials.toml`` (``"water"``, ``"muscle"``, ``"cortical_bone"``...).
    energies_keV : tuple of float
        Photon energies, keV.

    Returns
    -------
    tuple of float
        ``mu/rho`` at each energy, cm^2/g.

    Raises
    ------
    ValueError
        One line naming the unknown material and the known ones.
    """
    compositions = material_compositions()
    if material not in compositions:
        raise ValueError(f"unknown material {material!r}; known: {', '.join(sorted(compositions))}")
    fractions = compositions[material].mass_fractions
    total = sum(fractions.values())
    out = [0.0] * len(energies_keV)
    for element, w in fractions.items():
        for i, mu in enumerate(element_mass_attenuation_cm2_per_g(element, tuple(energies_keV))):
            out[i] += w * mu
    return tuple(v / total for v in out)


def mass_attenuation_cm2_per_g(material: str, energy_keV: float) -> float:
    """Total mass attenuation coefficient ``mu/rho`` of a material at one energy, cm^2/g.

    :func:`material_mass_attenuation_cm2_per_g` at the single energy ``energy_keV`` (keV).
    """
    return material_mass_attenuation_cm2_per_g(material, (float(energy_keV),))[0]


def linear_attenuation_per_mm(phantom, energy_keV: float, backend: Backend):
    """Linear attenuation coefficient map of a phantom at ``energy_keV``, 1/mm (device, float64).

    Each voxel uses its label's material composition and its own density (g/mL = g/cm^3),
    so heterogeneous density (lung, bone) scales attenuation as it does in tissue.
    """
    xp = backend.xp
    n_labels = max(phantom.materials) + 1
    table_per_cm = [
        mass_attenuation_cm2_per_g(phantom.materials[v], float(energy_keV)) if v in phantom.materials else 0.0
        for v in range(n_labels)
    ]
    table = backend.asarray(table_per_cm, dtype=xp.float64)
    index = xp.reshape(xp.astype(phantom.labels, xp.int64), (-1,))
    mass_atten = xp.reshape(xp.take(table, index), phantom.labels.shape)
    return mass_atten * phantom.properties["density_g_per_ml"] / 10.0


def contrast_density_g_per_ml(delivery, backend: Backend) -> dict:
    """Density of each contrast element the agents carry, g/mL, ``(nx, ny, nz, T)`` (device).

    Sums over agents labelled with gold (or iodine): carrier ug/mL x the label's mass
    fraction x 1e-6 g/ug. Elements no agent carries are absent.
    """
    out: dict = {}
    for item in delivery.agents:
        for label in item.agent.labels:
            if label.kind not in CONTRAST_ELEMENTS:
                continue
            fraction = label.gold_mass_fraction if label.kind == "gold" else label.iodine_mass_fraction
            density = item.carrier_ug_per_ml * (fraction * 1e-6)
            out[label.kind] = out[label.kind] + density if label.kind in out else density
    return {kind: out[kind] for kind in CONTRAST_ELEMENTS if kind in out}


def contrast_attenuation_per_mm(densities: dict, energy_keV: float, backend: Backend):
    """Attenuation added by contrast elements at ``energy_keV``, 1/mm (None when there is no contrast).

    ``densities`` as returned by :func:`contrast_density_g_per_ml`: g/mL x (mu/rho) cm^2/g
    gives 1/cm, divided by 10 for 1/mm.
    """
    total = None
    for kind, density in densities.items():
        per_g = element_mass_attenuation_cm2_per_g(CONTRAST_ELEMENTS[kind], (float(energy_keV),))[0]
        term = density * (per_g / 10.0)
        total = term if total is None else total + term
    return total


__all__ = [
    "CONTRAST_ELEMENTS",
    "contrast_attenuation_per_mm",
    "contrast_density_g_per_ml",
    "element_mass_attenuation_cm2_per_g",
    "linear_attenuation_per_mm",
    "mass_attenuation_cm2_per_g",
    "material_mass_attenuation_cm2_per_g",
]
