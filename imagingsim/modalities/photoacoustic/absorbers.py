"""The absorbers of one axial slice: haemoglobin from the vascular fraction and pO2, water,
lipid and the agents, as concentration maps and absorption spectra.

- **Haemoglobin.** Blood volume fraction ``v(x)`` (the phantom's map) times whole-blood
  haemoglobin (2.33 mM tetramer) split by the oxygen saturation ``S(x)`` of the
  Severinghaus curve at the phantom's tissue pO2: ``c_HbO2 = v Hb_blood S``,
  ``c_Hb = v Hb_blood (1 - S)``. Using tissue pO2 for the blood in the voxel reads it as the
  capillary-venous average, which is what a voxel's blood holds; the human curve is used
  for mice (their P50 is higher, ~40 mmHg, check).
- **Water and lipid.** Volume fractions per tissue label from ``data/optics.toml``
  (``water_fraction``, ``lipid_fraction``).
- **Agents.** A fluorophore label adds its dye (uM = carrier ug/mL x dye_nmol_per_mg / 1000),
  a gold label gold (mg Au/mL = carrier ug/mL x gold_mass_fraction / 1000); agents with the
  same dye add into one endmember (one spectrum cannot be told apart from itself). Other
  labels (radionuclides, iron oxide, iodine) do not absorb in 680-950 nm here.
- **Scattering.** ``mu_s'(lambda) = mu_s'(810 nm) (lambda / 810)^-b`` with the phantom's
  810 nm map and each tissue's power ``b`` of ``data/optics.toml`` (Jacques 2013).

The absorption used for p0 and for the light fluence is this chromophore sum, so the light is
"spectrally coloured" by exactly the absorbers that make the signal. It is not the NIRF
modality's 810 nm map, which also holds non-haem absorbers of liver and spleen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imagingsim.backend import Backend
from imagingsim.data.tables import read_table
from imagingsim.modalities.photoacoustic.spectra import (
    Endmember,
    blood_haemoglobin_mM,
    dye,
    gold,
    haemoglobin,
    severinghaus_so2,
    water_lipid,
)
from imagingsim.phantom.model import Label
from imagingsim.phantom.properties import lookup

#: Wavelength of the phantom's scattering map, nm.
REFERENCE_NM = 810.0


@dataclass(frozen=True, eq=False)
class SliceAbsorbers:
    """The absorber model of one slice.

    Attributes
    ----------
    endmembers : tuple of Endmember
        ``HbO2``, ``Hb``, ``water``, ``lipid``, then each dye and gold present, in that order.
    static : dict of str -> device array ``(nx, ny)``
        Concentration maps that do not change with time (haemoglobin, water, lipid).
    agent_terms : dict of str -> tuple of (int, float)
        Per agent endmember: (agent index, factor) pairs; its map at time ``k`` is
        ``sum factor x carrier_ug_per_ml[:, :, iz, k]``.
    agent_names : dict of str -> tuple of str
        The agents behind each agent endmember.
    so2 : device array ``(nx, ny)``
        Haemoglobin oxygen saturation (dimensionless) at the local pO2, everywhere (it weighs the
        haemoglobin, which is 0 where there is no blood).
    body : device array ``(nx, ny)``, bool
        Non-air voxels of the slice.
    mu_s_prime_per_mm : device array ``(nx, ny, L)``
        Reduced scattering at each wavelength, 1/mm.
    slice_index : int
        Index along z of the slice in the phantom grid.
    """

    endmembers: tuple[Endmember, ...]
    static: dict[str, Any]
    agent_terms: dict[str, tuple[tuple[int, float], ...]]
    agent_names: dict[str, tuple[str, ...]]
    so2: Any
    body: Any
    mu_s_prime_per_mm: Any
    slice_index: int

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(e.key for e in self.endmembers)


def agent_endmembers(agents, wavelengths_nm, gold_form: str, gold_peak_nm: float | None):
    """The agent endmembers and their terms: ``(endmembers, terms, names)`` (see :class:`SliceAbsorbers`).

    Parameters
    ----------
    agents : sequence of AgentSpec
    wavelengths_nm : sequence of float
    gold_form : {"nanosphere", "nanorod"}
    gold_peak_nm : float or None
    """
    members: dict[str, Endmember] = {}
    terms: dict[str, list[tuple[int, float]]] = {}
    names: dict[str, list[str]] = {}
    for index, agent in enumerate(agents):
        for label in agent.labels:
            if label.kind == "fluorophore":
                key, member, factor = label.dye, None, label.dye_nmol_per_mg / 1000.0
                if key not in members:
                    member = dye(key, wavelengths_nm)
            elif label.kind == "gold":
                key, member, factor = "gold", None, label.gold_mass_fraction / 1000.0
                if key not in members:
                    member = gold(gold_form, wavelengths_nm, gold_peak_nm)
            else:
                continue
            if member is not None:
                members[key] = member
            terms.setdefault(key, []).append((index, factor))
            names.setdefault(key, []).append(agent.name)
    return (tuple(members.values()), {k: tuple(v) for k, v in terms.items()}, {k: tuple(v) for k, v in names.items()})


def _label_column(name: str) -> list[float]:
    tissues = read_table("optics.toml")["tissue"]
    return [float(tissues[label.bids_name][name]) for label in Label]


def slice_absorbers(phantom, agents, slice_index: int, wavelengths_nm, gold_form: str, gold_peak_nm: float | None,
                    backend: Backend) -> SliceAbsorbers:
    """The absorber model of the axial slice ``slice_index`` of ``phantom`` (module docstring).

    Parameters
    ----------
    phantom : imagingsim.phantom.Phantom
    agents : sequence of AgentSpec
    slice_index : int
        Index along z.
    wavelengths_nm : sequence of float
    gold_form, gold_peak_nm
        Optical form of gold labels and an optional plasmon peak, nm.
    backend : Backend

    Returns
    -------
    SliceAbsorbers
    """
    xp = backend.xp
    labels = phantom.labels[:, :, slice_index]
    props = phantom.properties
    blood = props["blood_volume_fraction"][:, :, slice_index] * blood_haemoglobin_mM()
    so2 = severinghaus_so2(props["po2_mmHg"][:, :, slice_index])
    static = {
        "HbO2": blood * so2,
        "Hb": blood * (1.0 - so2),
        "water": lookup(backend, labels, _label_column("water_fraction")),
        "lipid": lookup(backend, labels, _label_column("lipid_fraction")),
    }
    members, terms, names = agent_endmembers(agents, wavelengths_nm, gold_form, gold_peak_nm)
    powers = lookup(backend, labels, _label_column("scattering_power_b"))
    ratio = xp.asarray([w / REFERENCE_NM for w in wavelengths_nm], dtype=xp.float64, device=backend.device)
    mu_s = props["mu_s_prime_810nm_per_mm"][:, :, slice_index][:, :, None] * xp.exp(
        -powers[:, :, None] * xp.log(ratio)[None, None, :])
    return SliceAbsorbers(
        endmembers=(*haemoglobin(wavelengths_nm), *water_lipid(wavelengths_nm), *members),
        static=static,
        agent_terms=terms,
        agent_names=names,
        so2=so2,
        body=labels != int(Label.AIR),
        mu_s_prime_per_mm=mu_s,
        slice_index=slice_index,
    )


def concentrations(model: SliceAbsorbers, delivery, k: int) -> dict[str, Any]:
    """Every endmember's concentration map ``(nx, ny)`` at schedule time ``k`` (units of its endmember)."""
    maps = dict(model.static)
    for key, terms in model.agent_terms.items():
        total = None
        for index, factor in terms:
            part = delivery.agents[index].carrier_ug_per_ml[:, :, model.slice_index, k] * factor
            total = part if total is None else total + part
        maps[key] = total
    return maps


def absorption(model: SliceAbsorbers, maps: dict[str, Any], backend: Backend):
    """``mu_a(x, lambda) = sum_j E[lambda, j] c_j(x)``, device ``(nx, ny, L)``, 1/mm."""
    xp = backend.xp
    total = None
    for member in model.endmembers:
        spectrum = xp.asarray(member.per_mm, dtype=xp.float64, device=backend.device)
        term = maps[member.key][:, :, None] * spectrum[None, None, :]
        total = term if total is None else total + term
    return total


__all__ = ["REFERENCE_NM", "SliceAbsorbers", "absorption", "agent_endmembers", "concentrations", "slice_absorbers"]
