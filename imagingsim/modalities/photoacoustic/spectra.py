"""Absorption spectra of the photoacoustic absorbers (``data/photoacoustic.toml``) and the
haemoglobin oxygen dissociation curve.

An *endmember* is one absorber with its spectrum in absorption-coefficient units per unit of
its concentration, so that ``mu_a(x, lambda) = sum_j E[lambda, j] c_j(x)``:

=============  =====================  ==========================================================
endmember      concentration unit     spectrum ``E``, 1/mm per unit
=============  =====================  ==========================================================
``HbO2``       mM (tissue average)    ``ln(10) eps_HbO2 / 10 / 1000`` (Prahl's molar extinction)
``Hb``         mM                     ``ln(10) eps_Hb / 10 / 1000``
``water``      volume fraction        absorption coefficient of pure water
``lipid``      volume fraction        absorption coefficient of lard
dye key        uM (= nmol/mL)         ``ln(10) eps_dye / 10 / 1e6``
``gold``       mg Au/mL               Lorentzian plasmon band per mg Au/mL
=============  =====================  ==========================================================

References
----------
S. Prahl, "Optical absorption of hemoglobin", omlc.org/spectra/hemoglobin (Gratzer; Kollias).
J. W. Severinghaus, "Simple, accurate equations for human blood O2 dissociation
computations", J Appl Physiol 1979;46:599-602.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from imagingsim.data.tables import read_table

TABLE = "photoacoustic.toml"
#: ln(10) / (10 mm per cm): decadic 1/(M cm) x M -> Napierian 1/mm.
_DECADIC_PER_CM_TO_PER_MM = math.log(10.0) / 10.0


@dataclass(frozen=True)
class Endmember:
    """One absorber of the unmixing model: its spectrum at the acquisition's wavelengths.

    Attributes
    ----------
    key : str
        ``HbO2``, ``Hb``, ``water``, ``lipid``, a dye key (``ICG``...) or ``gold``.
    unit : str
        Unit of its concentration maps.
    per_mm : tuple of float
        Absorption coefficient per unit concentration at each wavelength, 1/mm per ``unit``.
    source : str
        Where the spectrum comes from (data/photoacoustic.toml).
    """

    key: str
    unit: str
    per_mm: tuple[float, ...]
    source: str


@functools.cache
def table() -> dict[str, Any]:
    """The parsed ``data/photoacoustic.toml`` (checked: every curve has one value per wavelength)."""
    raw = read_table(TABLE)
    n = len(raw["wavelengths_nm"])
    curves = [raw["haemoglobin"]["oxy_M_per_cm"], raw["haemoglobin"]["deoxy_M_per_cm"],
              raw["water"]["absorption_per_mm"], raw["lipid"]["absorption_per_mm"],
              *(d["relative"] for d in raw["dye"].values())]
    if any(len(c) != n or min(c) < 0 for c in curves):
        raise ValueError(f"data/{TABLE}: every spectrum needs {n} values >= 0")
    return raw


def interpolate(values, wavelength_nm: float) -> float:
    """A tabulated curve at ``wavelength_nm`` (linear between the table's wavelengths)."""
    xs = table()["wavelengths_nm"]
    if not xs[0] <= wavelength_nm <= xs[-1]:
        raise ValueError(f"wavelength {wavelength_nm} nm is outside data/{TABLE} ({xs[0]:g}-{xs[-1]:g} nm)")
    for x0, x1, y0, y1 in zip(xs, xs[1:], values, values[1:]):
        if x0 <= wavelength_nm <= x1:
            t = (wavelength_nm - x0) / (x1 - x0)
            return (1.0 - t) * y0 + t * y1
    return float(values[-1])


def blood_haemoglobin_mM() -> float:
    """Haemoglobin (tetramer) concentration of whole blood, mM (150 g/L / 64 500 g/mol = 2.33 mM)."""
    hb = table()["haemoglobin"]
    return 1000.0 * hb["blood_haemoglobin_g_per_l"] / hb["haemoglobin_molar_mass_g_per_mol"]


def severinghaus_so2(po2_mmHg):
    """Haemoglobin oxygen saturation at ``po2_mmHg`` (Severinghaus 1979), dimensionless.

    ``S = 1 / (23400 / (pO2^3 + 150 pO2) + 1)``, of a float or a device array (arithmetic
    only). 0 at pO2 = 0 (the expression is evaluated in its regular form
    ``q / (23400 + q)``, ``q = pO2^3 + 150 pO2``).
    """
    c = table()["oxygen_dissociation"]
    q = po2_mmHg * po2_mmHg * po2_mmHg + c["b_mmHg2"] * po2_mmHg
    return q / (c["a_mmHg3"] + q)


def haemoglobin(wavelengths_nm) -> tuple[Endmember, Endmember]:
    """The ``HbO2`` and ``Hb`` endmembers, 1/mm per mM."""
    hb = table()["haemoglobin"]
    scale = _DECADIC_PER_CM_TO_PER_MM / 1000.0
    return tuple(
        Endmember(key, "mM", tuple(scale * interpolate(hb[column], w) for w in wavelengths_nm), hb["source"])
        for key, column in (("HbO2", "oxy_M_per_cm"), ("Hb", "deoxy_M_per_cm"))
    )  # type: ignore[return-value]


def water_lipid(wavelengths_nm) -> tuple[Endmember, Endmember]:
    """The ``water`` and ``lipid`` endmembers, 1/mm per unit volume fraction."""
    raw = table()
    return tuple(
        Endmember(key, "volume fraction", tuple(interpolate(raw[key]["absorption_per_mm"], w) for w in wavelengths_nm),
                  raw[key]["source"])
        for key in ("water", "lipid")
    )  # type: ignore[return-value]


def dye(key: str, wavelengths_nm) -> Endmember:
    """The endmember of dye ``key`` (a ``FluorophoreLabel.dye`` value), 1/mm per uM."""
    dyes = table()["dye"]
    if key not in dyes:
        raise ValueError(f"data/{TABLE} has no spectrum of dye {key!r}; dyes: {', '.join(dyes)}")
    entry = dyes[key]
    scale = _DECADIC_PER_CM_TO_PER_MM * entry["peak_M_per_cm"] / 1e6
    return Endmember(key, "uM", tuple(scale * interpolate(entry["relative"], w) for w in wavelengths_nm),
                     entry["source"])


def gold(form: str, wavelengths_nm, peak_nm: float | None = None) -> Endmember:
    """The ``gold`` endmember of particles of ``form`` (nanosphere, nanorod), 1/mm per mg Au/mL.

    A Lorentzian band ``a / (1 + ((lambda - peak) / (fwhm / 2))^2)``; ``peak_nm`` overrides the
    table's peak (a rod's plasmon follows its aspect ratio) at the same height and width.
    """
    entry = table()["gold"][form]
    peak = entry["peak_nm"] if peak_nm is None else peak_nm
    half = 0.5 * entry["fwhm_nm"]
    height = entry["peak_per_mm_per_mg_per_ml"]
    return Endmember("gold", "mg Au/mL", tuple(height / (1.0 + ((w - peak) / half) ** 2) for w in wavelengths_nm),
                     entry["source"])


__all__ = [
    "Endmember",
    "blood_haemoglobin_mM",
    "dye",
    "gold",
    "haemoglobin",
    "interpolate",
    "severinghaus_so2",
    "table",
    "water_lipid",
]
