"""Radionuclide decay data (``data/radionuclides.toml``, sources there), used by PET and SPECT.

:data:`NUCLIDE_NAMES` lists every nuclide of the table in table order. They split into
:data:`POSITRON_EMITTERS` (a positron branching ``beta_plus_fraction > 0``: imaged by PET)
and :data:`SINGLE_PHOTON_EMITTERS` (no positrons, photopeaks listed in
``photon_energies_keV``: imaged by SPECT).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from imagingsim.data.tables import read_table


@dataclass(frozen=True)
class Nuclide:
    """Decay data of one radionuclide (``data/radionuclides.toml``, sources there).

    Attributes
    ----------
    name : str
        Table key (``"F18"``, ``"Zr89"``...).
    bids_name : str
        BIDS ``TracerRadionuclide`` spelling (``"18F"``).
    half_life_s : float
        Physical half-life, s.
    beta_plus_fraction : float
        Positrons per decay.
    mean_positron_range_mm, max_positron_range_mm : float
        Mean 3-D distance from emission to annihilation in water, and its maximum, mm
        (0 for nuclides that emit no positron).
    photon_energies_keV, photon_yields : tuple of float
        Main gamma lines (SPECT photopeaks) and photons per decay; empty for pure positron
        emitters.
    """

    name: str
    bids_name: str
    half_life_s: float
    beta_plus_fraction: float
    mean_positron_range_mm: float = 0.0
    max_positron_range_mm: float = 0.0
    photon_energies_keV: tuple[float, ...] = ()
    photon_yields: tuple[float, ...] = ()

    @property
    def decay_constant_per_s(self) -> float:
        """``lambda = ln 2 / half-life``, 1/s."""
        return math.log(2.0) / self.half_life_s


@functools.cache
def nuclide_table() -> dict[str, Nuclide]:
    """Every nuclide of ``data/radionuclides.toml``, by name (table order)."""
    table = read_table("radionuclides.toml")
    return {
        name: Nuclide(
            name=name,
            bids_name=str(row["bids_name"]),
            half_life_s=float(row["half_life_s"]),
            beta_plus_fraction=float(row["beta_plus_fraction"]),
            mean_positron_range_mm=float(row.get("mean_positron_range_mm", 0.0)),
            max_positron_range_mm=float(row.get("max_positron_range_mm", 0.0)),
            photon_energies_keV=tuple(float(e) for e in row.get("photon_energies_keV", ())),
            photon_yields=tuple(float(y) for y in row.get("photon_yields", ())),
        )
        for name, row in table.items()
    }


def nuclide(name: str) -> Nuclide:
    """The decay data of ``name``; a one-line ValueError lists the known nuclides."""
    table = nuclide_table()
    if name not in table:
        raise ValueError(f"unknown radionuclide {name!r}; known: {', '.join(table)}")
    return table[name]


#: Every nuclide of the table, in table order.
NUCLIDE_NAMES: tuple[str, ...] = tuple(nuclide_table())
#: Nuclides that emit positrons (``beta_plus_fraction > 0``), in table order: PET tracers.
POSITRON_EMITTERS: tuple[str, ...] = tuple(n for n, d in nuclide_table().items() if d.beta_plus_fraction > 0.0)
#: Nuclides without positrons whose photopeaks are listed, in table order: SPECT tracers.
SINGLE_PHOTON_EMITTERS: tuple[str, ...] = tuple(
    n for n, d in nuclide_table().items() if d.beta_plus_fraction == 0.0 and d.photon_energies_keV
)

__all__ = [
    "NUCLIDE_NAMES",
    "POSITRON_EMITTERS",
    "SINGLE_PHOTON_EMITTERS",
    "Nuclide",
    "nuclide",
    "nuclide_table",
]
