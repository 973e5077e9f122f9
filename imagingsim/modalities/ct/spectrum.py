"""X-ray tube spectra and the spectral quantities of CT calibration (host-side, small tables).

Everything here works on a few hundred numbers (energy bins, water lengths), so it is plain
Python floats on the host; the device kernels of :mod:`imagingsim.modalities.ct.acquire` receive the
results as tables.

Spectrum model
--------------
- **Bremsstrahlung (Kramers).** A thick tungsten target emits ``dN/dE = k Z (E0 - E) / E``
  photons per keV at tube voltage ``E0 = kVp`` (Kramers 1923; Johns & Cunningham, *The Physics
  of Radiology*, 4th ed., ch. 2). It is sampled at the centres of 1 keV bins from
  :data:`E_MIN_KEV` to kVp. Below ~10 keV nothing survives the tube window and the
  filtration, so lower bins are left out. Tungsten characteristic K lines (58-69 keV, only
  above 69.5 kVp, a few % of the photons at 120 kVp) and the target's self-absorption (heel
  effect) are not modelled; the inherent filtration in mm Al stands in for the latter.
- **Filtration.** ``exp(-sum_f (mu/rho)_f(E) rho_f t_f)`` for each filter ``f`` (Al, Cu)
  with xraydb's Elam total mass attenuation and xraydb's elemental densities.
- **Calibration.** The preset states the fluence at isocentre for its own kVp and
  filtration; other settings scale it by the ratio of the filtered Kramers spectra with the
  same constant ``k Z`` (:func:`xray_spectrum`), so both the tube voltage and the filters
  change the photon output as Kramers' law says.

Calibration quantities
----------------------
- :func:`water_hardening_table` -- the polyenergetic line integral ``p_poly(L)`` of a water
  length ``L`` (the water pre-correction table).
- :func:`calibration_mu_water_per_mm` -- the mean attenuation a reconstruction shows inside
  a water cylinder of the calibration diameter.
- :func:`effective_energy_keV` -- the monoenergetic energy whose water attenuation equals a
  given value: the CT's reference energy ``E_ref``.
- :func:`measured_bone_hu` -- the CT number cortical bone reads through the same chain as the
  data (polyenergetic chord inside the calibration cylinder, then the water pre-correction or
  none): the break point of the bilinear HU -> mu conversion. :func:`bone_hu` is the
  monoenergetic value at ``E_ref``, which the scanner does not measure (bone hardens the beam
  beyond what the water pre-correction undoes: 20-30 % lower on the presets).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import xraydb

from imagingsim.data.materials import material_compositions
from imagingsim.physics.attenuation import element_mass_attenuation_cm2_per_g, material_mass_attenuation_cm2_per_g

#: Lowest photon energy of the spectra, keV (bins start here).
E_MIN_KEV = 10.0
#: Width of the energy bins, keV.
BIN_KEV = 1.0
#: Filter materials the spectra know (element symbols of xraydb).
FILTER_ELEMENTS = ("Al", "Cu")
#: Material whose reference density and composition define "bone" in HU conversions.
BONE_MATERIAL = "cortical_bone"
#: Cortical-bone chord of the bone calibration, as a fraction of the calibration cylinder's
#: diameter (:func:`measured_bone_hu`). A ray through the spine crosses about this much bone in
#: the built-in phantoms (a 2.6 mm spine in a 20-24 mm mouse, 40 mm in a 220-330 mm torso:
#: 0.11-0.18 of the body width); real skeletons vary (check). Bone's self-hardening makes its measured HU
#: fall with the chord: on the presets, +-0.05 D around 0.15 D moves it by ~+-4 %, i.e.
#: bone's mu at 140 keV from the bilinear conversion by ~+-2 %.
BONE_CHORD_FRACTION = 0.15


@dataclass(frozen=True)
class XraySpectrum:
    """A filtered tube spectrum at isocentre, per mAs.

    Attributes
    ----------
    kvp : float
        Tube voltage, kV (the spectrum ends at ``kvp`` keV).
    energies_keV : tuple of float
        Energy-bin centres, keV (bins :data:`BIN_KEV` wide from :data:`E_MIN_KEV`).
    photons_per_mAs_per_mm2 : tuple of float
        Photons per mAs per mm^2 at isocentre in each energy bin, after filtration.
    filtration_mm : dict of str -> float
        Total filtration by element (``"Al"``, ``"Cu"``), mm: inherent + added.
    """

    kvp: float
    energies_keV: tuple[float, ...]
    photons_per_mAs_per_mm2: tuple[float, ...]
    filtration_mm: dict[str, float]

    @property
    def total_photons_per_mAs_per_mm2(self) -> float:
        """Photons per mAs per mm^2 at isocentre, all energies."""
        return math.fsum(self.photons_per_mAs_per_mm2)

    @property
    def mean_energy_keV(self) -> float:
        """Photon-number-weighted mean energy, keV."""
        return spectrum_mean_keV(self.energies_keV, self.photons_per_mAs_per_mm2)

    @property
    def weights(self) -> tuple[float, ...]:
        """Fraction of the photons in each energy bin (sums to 1)."""
        total = self.total_photons_per_mAs_per_mm2
        return tuple(n / total for n in self.photons_per_mAs_per_mm2)

    def summary(self) -> dict:
        """JSON-ready description (units in the keys)."""
        return {
            "Model": "Kramers thick-target bremsstrahlung (E0 - E) / E, 1 keV bins, filtered with xraydb (Elam)",
            "TubeVoltage_kVp": self.kvp,
            "EnergyRange_keV": [self.energies_keV[0] - 0.5 * BIN_KEV, self.kvp],
            "EnergyBinWidth_keV": BIN_KEV,
            "MeanEnergy_keV": self.mean_energy_keV,
            "TotalFiltration_mm": dict(self.filtration_mm),
            "PhotonsPerMAsPerMM2AtIsocentre": self.total_photons_per_mAs_per_mm2,
            "EnergyBinCentres_keV": list(self.energies_keV),
            "PhotonsPerMAsPerMM2PerBin": list(self.photons_per_mAs_per_mm2),
        }


def spectrum_mean_keV(energies_keV: Sequence[float], photons: Sequence[float]) -> float:
    """Photon-number-weighted mean energy of a spectrum, keV."""
    total = math.fsum(photons)
    if not total > 0:
        raise ValueError("spectrum has no photons")
    return math.fsum(e * n for e, n in zip(energies_keV, photons, strict=True)) / total


def energy_bins_keV(kvp: float) -> tuple[float, ...]:
    """Centres of the 1 keV bins from :data:`E_MIN_KEV` up to ``kvp`` (the last bin may be cut).

    A last bin narrower than a full bin is centred on its own width, so the bins tile
    ``[E_MIN_KEV, kvp]`` exactly.
    """
    if not kvp > E_MIN_KEV + BIN_KEV:
        raise ValueError(f"kvp must exceed {E_MIN_KEV + BIN_KEV:g} kV, got {kvp:g}")
    n_full = math.floor((kvp - E_MIN_KEV) / BIN_KEV + 1e-9)
    centres = [E_MIN_KEV + (i + 0.5) * BIN_KEV for i in range(n_full)]
    top = E_MIN_KEV + n_full * BIN_KEV
    if kvp - top > 1e-9:
        centres.append(0.5 * (top + kvp))
    return tuple(centres)


def _bin_widths_keV(energies_keV: Sequence[float], kvp: float) -> list[float]:
    """Width of each bin of :func:`energy_bins_keV`, keV."""
    return [min(BIN_KEV, 2.0 * (kvp - e)) for e in energies_keV]


def kramers_photons(kvp: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Unfiltered thick-target bremsstrahlung, photons per bin in units of ``k Z``.

    ``dN/dE = (kVp - E) / E`` integrated over each bin by its midpoint value (the bins are
    narrow compared with the curvature except right at 10 keV, where the filters remove
    almost everything anyway).

    Returns
    -------
    energies_keV : tuple of float
        Bin centres, keV.
    photons : tuple of float
        Photons per bin (relative: the same unit for every kVp, so ratios are physical).
    """
    energies = energy_bins_keV(kvp)
    widths = _bin_widths_keV(energies, kvp)
    return energies, tuple((kvp - e) / e * w for e, w in zip(energies, widths, strict=True))


def filter_transmission(energies_keV: Sequence[float], filtration_mm: Mapping[str, float]) -> tuple[float, ...]:
    """Fraction of photons at each energy that cross the filters, ``exp(-sum mu_f t_f)``.

    Parameters
    ----------
    energies_keV : sequence of float
        Photon energies, keV.
    filtration_mm : mapping of element symbol -> thickness, mm
        ``{"Al": 2.5, "Cu": 0.1}``; densities are xraydb's (Al 2.70, Cu 8.96 g/cm^3).
    """
    energies = tuple(float(e) for e in energies_keV)
    exponent = [0.0] * len(energies)
    for element, thickness_mm in filtration_mm.items():
        if element not in FILTER_ELEMENTS:
            raise ValueError(f"filter element must be one of {', '.join(FILTER_ELEMENTS)}; got {element!r}")
        if thickness_mm < 0:
            raise ValueError(f"filter thickness must be >= 0 mm, got {thickness_mm:g} mm {element}")
        mu_per_cm = [m * float(xraydb.atomic_density(element)) for m in element_mass_attenuation_cm2_per_g(element, energies)]
        for i, mu in enumerate(mu_per_cm):
            exponent[i] += mu * thickness_mm / 10.0
    return tuple(math.exp(-x) for x in exponent)


def filtered_kramers(kvp: float, filtration_mm: Mapping[str, float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Kramers spectrum (units of ``k Z``) after the filters: ``(energies_keV, photons)``."""
    energies, photons = kramers_photons(kvp)
    transmission = filter_transmission(energies, filtration_mm)
    return energies, tuple(n * t for n, t in zip(photons, transmission, strict=True))


def xray_spectrum(kvp: float, filtration_mm: Mapping[str, float], fluence_photons_per_mAs_per_mm2: float,
                  reference_kvp: float, reference_filtration_mm: Mapping[str, float]) -> XraySpectrum:
    """The spectrum at isocentre per mAs, calibrated by a stated fluence.

    Parameters
    ----------
    kvp : float
        Tube voltage, kV.
    filtration_mm : mapping of element -> mm
        Total filtration (inherent + added) of this scan.
    fluence_photons_per_mAs_per_mm2 : float
        Photons per mAs per mm^2 at isocentre, all energies, at ``reference_kvp`` behind
        ``reference_filtration_mm`` (the preset's own settings).
    reference_kvp, reference_filtration_mm
        The settings the fluence is stated for.

    Returns
    -------
    XraySpectrum
        ``N(E) = fluence * S(E; kvp, filters) / sum_E S(E; reference)`` with ``S`` the filtered
        Kramers spectrum: the reference setting reproduces the stated fluence, and other
        settings change the output as Kramers' law and the filters' attenuation say.
    """
    energies, shape = filtered_kramers(kvp, filtration_mm)
    _, reference = filtered_kramers(reference_kvp, reference_filtration_mm)
    scale = fluence_photons_per_mAs_per_mm2 / math.fsum(reference)
    return XraySpectrum(
        kvp=float(kvp),
        energies_keV=energies,
        photons_per_mAs_per_mm2=tuple(scale * n for n in shape),
        filtration_mm={k: float(v) for k, v in filtration_mm.items()},
    )


# --- water calibration -------------------------------------------------------------------


def water_mu_per_mm(energies_keV: Sequence[float]) -> tuple[float, ...]:
    """Linear attenuation of water (1.00 g/mL) at each energy, 1/mm."""
    density = material_compositions()["water"].reference_density_g_per_ml
    return tuple(m * density / 10.0 for m in material_mass_attenuation_cm2_per_g("water", tuple(energies_keV)))


def polyenergetic_line_integral(weights: Sequence[float], mu_per_mm: Sequence[float], length_mm: float) -> float:
    """``-ln(sum_E w(E) exp(-mu(E) L))``: what a photon-counting detector's log reports, mm x 1/mm."""
    transmitted = math.fsum(w * math.exp(-m * length_mm) for w, m in zip(weights, mu_per_mm, strict=True))
    return -math.log(transmitted) if transmitted > 0 else math.inf


def water_hardening_table(spectrum: XraySpectrum, max_line_integral: float, *, n_points: int = 2048
                          ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``p_poly(L)`` for water lengths ``L`` from 0 until ``p_poly`` exceeds ``max_line_integral``.

    Parameters
    ----------
    spectrum : XraySpectrum
        Detected spectrum shape (photon-counting: every photon counts 1).
    max_line_integral : float
        Largest measured line integral to cover (the log of the unattenuated counts, since
        counts are clipped at 1 photon).
    n_points : int
        Table length; the lengths are uniform in ``sqrt(L)``, denser near 0 where the
        spectrum hardens fastest.

    Returns
    -------
    lengths_mm, line_integrals : tuple of float
        Increasing water lengths (mm) and their polyenergetic line integrals (increasing,
        concave: beam hardening).
    """
    weights = spectrum.weights
    mu = water_mu_per_mm(spectrum.energies_keV)
    # Longest water path needed: the hardest photons (lowest mu) set how far p keeps rising.
    length = max(1.0, max_line_integral / max(mu))
    while polyenergetic_line_integral(weights, mu, length) < max_line_integral and length < 1e5:
        length *= 1.5
    lengths = tuple(length * (i / (n_points - 1)) ** 2 for i in range(n_points))
    return lengths, tuple(polyenergetic_line_integral(weights, mu, L) for L in lengths)


def calibration_mu_water_per_mm(spectrum: XraySpectrum, diameter_mm: float, *, n_chords: int = 4000) -> float:
    """Mean attenuation a reconstruction shows inside a water cylinder of ``diameter_mm``, 1/mm.

    FBP keeps each view's integral ``int p(s) ds`` equal to the integral of the image, so
    without pre-correction the mean reconstructed mu over the cylinder's disc is
    ``int p_poly(2 sqrt(R^2 - s^2)) ds / (pi R^2)``: the polyenergetic line integrals of all
    chords, divided by the area. Using it as ``mu_water`` makes that water cylinder read
    0 HU on average (its centre lower, its rim higher: cupping).
    """
    if not diameter_mm > 0:
        raise ValueError(f"calibration diameter must be > 0 mm, got {diameter_mm:g}")
    weights = spectrum.weights
    mu = water_mu_per_mm(spectrum.energies_keV)
    radius = 0.5 * diameter_mm
    ds = diameter_mm / n_chords
    total = 0.0
    for i in range(n_chords):  # midpoint rule over s in (-R, R)
        s = -radius + (i + 0.5) * ds
        total += polyenergetic_line_integral(weights, mu, 2.0 * math.sqrt(radius * radius - s * s)) * ds
    return total / (math.pi * radius * radius)


def effective_energy_keV(mu_water_per_mm: float, *, low_keV: float = 1.0 + E_MIN_KEV, high_keV: float = 500.0) -> float:
    """The photon energy at which water (1.00 g/mL) attenuates ``mu_water_per_mm``, keV.

    Water has no absorption edge between 10 and 500 keV, so ``mu_water(E)`` is strictly
    decreasing there and bisection finds the one root (to 1e-6 keV).
    """

    def mu(e: float) -> float:
        return water_mu_per_mm((e,))[0]

    if not mu(high_keV) <= mu_water_per_mm <= mu(low_keV):
        raise ValueError(f"mu_water {mu_water_per_mm:g}/mm is outside water's range over {low_keV:g}-{high_keV:g} keV")
    lo, hi = low_keV, high_keV
    while hi - lo > 1e-6:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if mu(mid) > mu_water_per_mm else (lo, mid)
    return 0.5 * (lo + hi)


def material_mu_per_mm(material: str, energy_keV: float, density_g_per_ml: float | None = None) -> float:
    """Linear attenuation of a material at one energy, 1/mm (reference density unless given)."""
    density = material_compositions()[material].reference_density_g_per_ml if density_g_per_ml is None else density_g_per_ml
    return material_mass_attenuation_cm2_per_g(material, (float(energy_keV),))[0] * density / 10.0


def bone_hu(energy_keV: float) -> float:
    """HU of cortical bone (ICRU 44, 1.92 g/mL) at a monoenergetic ``energy_keV``.

    Not what a polyenergetic CT reads for bone (see :func:`measured_bone_hu`).
    """
    water = material_mu_per_mm("water", energy_keV)
    return 1000.0 * (material_mu_per_mm(BONE_MATERIAL, energy_keV) - water) / water


def interpolate_water_length_mm(water_lengths_mm: Sequence[float], water_line_integrals: Sequence[float],
                                line_integral: float) -> float:
    """``L(p)`` of the pre-correction table by linear interpolation, end segments extended.

    The host-side, float64 twin of the device kernel
    :func:`imagingsim.modalities.ct.acquire.water_precorrect` (same segments, same extrapolation).
    """
    n = len(water_line_integrals)
    upper = min(max(bisect.bisect_right(water_line_integrals, line_integral), 1), n - 1)
    p0, p1 = water_line_integrals[upper - 1], water_line_integrals[upper]
    l0, l1 = water_lengths_mm[upper - 1], water_lengths_mm[upper]
    return l0 + (line_integral - p0) * (l1 - l0) / (p1 - p0)


def measured_bone_hu(spectrum: XraySpectrum, diameter_mm: float, bone_mm: float, mu_water_per_mm: float, *,
                     water_table: tuple[Sequence[float], Sequence[float]] | None = None,
                     max_line_integral: float = math.inf) -> float:
    """The CT number of cortical bone as this CT measures it: the bilinear conversion's break point.

    A central chord of ``bone_mm`` of cortical bone (ICRU 44, 1.92 g/mL) inside a water
    cylinder of ``diameter_mm`` (the rest of the chord water) is compared with the all-water
    chord of the same length, both through the chain the data go through: polyenergetic line
    integral ``p`` (photon counting), clipped at ``max_line_integral`` (``ln I0``: the 1-photon
    clip), then the water pre-correction ``p -> mu_w L(p)`` when ``water_table`` (lengths,
    line integrals) is given, else nothing (the uncorrected calibration). The bone's effective
    attenuation is the water's plus the difference of the two over ``bone_mm``, so

    ``HU_bone = 1000 (P(bone chord) - P(water chord)) / (bone_mm mu_w)``, ``P`` the processed line integral.

    Bone hardens the beam more than the same water attenuation would, so this is below the
    monoenergetic :func:`bone_hu` at ``E_ref`` and falls with ``bone_mm`` (self-hardening).

    Parameters
    ----------
    spectrum : XraySpectrum
        Detected spectrum shape.
    diameter_mm : float
        Calibration water cylinder diameter, mm.
    bone_mm : float
        Cortical bone on the central chord, mm (``0 < bone_mm <= diameter_mm``).
    mu_water_per_mm : float
        ``mu_water(E_ref)``, 1/mm: the HU denominator and the pre-correction's slope.
    water_table : (lengths_mm, line_integrals), optional
        The pre-correction table (:func:`water_hardening_table`); None: no pre-correction.
    max_line_integral : float
        Largest measurable line integral (``ln I0``), inf for none.
    """
    if not 0.0 < bone_mm <= diameter_mm:
        raise ValueError(f"bone chord must be in (0, {diameter_mm:g}] mm, got {bone_mm:g}")
    weights = spectrum.weights
    energies = tuple(spectrum.energies_keV)
    mu_w = water_mu_per_mm(energies)
    density = material_compositions()[BONE_MATERIAL].reference_density_g_per_ml
    mu_b = [m * density / 10.0 for m in material_mass_attenuation_cm2_per_g(BONE_MATERIAL, energies)]

    def processed(bone: float) -> float:
        chord = [w * (diameter_mm - bone) + b * bone for w, b in zip(mu_w, mu_b, strict=True)]
        p = min(polyenergetic_line_integral(weights, chord, 1.0), max_line_integral)
        if water_table is None:
            return p
        return mu_water_per_mm * interpolate_water_length_mm(*water_table, p)

    return 1000.0 * (processed(bone_mm) - processed(0.0)) / (bone_mm * mu_water_per_mm)


__all__ = [
    "BIN_KEV",
    "BONE_CHORD_FRACTION",
    "BONE_MATERIAL",
    "E_MIN_KEV",
    "FILTER_ELEMENTS",
    "XraySpectrum",
    "bone_hu",
    "calibration_mu_water_per_mm",
    "effective_energy_keV",
    "energy_bins_keV",
    "filter_transmission",
    "filtered_kramers",
    "interpolate_water_length_mm",
    "kramers_photons",
    "material_mu_per_mm",
    "measured_bone_hu",
    "polyenergetic_line_integral",
    "spectrum_mean_keV",
    "water_hardening_table",
    "water_mu_per_mm",
    "xray_spectrum",
]
