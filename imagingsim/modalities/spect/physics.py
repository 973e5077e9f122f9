"""SPECT physics and presets: photopeak windows, lead attenuation, collimator response.

Everything here is host-side scalar arithmetic on table values (``data/spect_systems.toml``,
``data/radionuclides.toml``, lead from xraydb); nothing touches a device.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import xraydb

from imagingsim.data.radionuclides import Nuclide
from imagingsim.data.tables import read_table
from imagingsim.modalities.spect.projector import FWHM_PER_SIGMA, CollimatorResponse
from imagingsim.modalities.spect.spec import SPECTSpec

#: Density of lead, g/cm^3 (collimator septa).
LEAD_DENSITY_G_PER_CM3 = 11.35


@dataclass(frozen=True)
class Collimator:
    """A parallel-hole collimator of ``data/spect_systems.toml`` (lengths in mm)."""

    name: str
    hole_diameter_mm: float
    hole_length_mm: float
    septal_thickness_mm: float
    efficiency: float
    max_energy_keV: float

    def response(self, energy_keV: float, intrinsic_fwhm_mm: float) -> CollimatorResponse:
        """The Gaussian collimator-detector response at ``energy_keV``."""
        return CollimatorResponse.parallel_hole(self.hole_diameter_mm, self.hole_length_mm, intrinsic_fwhm_mm,
                                                lead_attenuation_per_mm(energy_keV))


@dataclass(frozen=True)
class SPECTParams:
    """A SPECT system preset after the scenario's overrides (units in the names)."""

    preset: str
    manufacturer: str
    model: str
    collimator: Collimator
    n_heads: int
    n_views: int
    acquisition_time_s: float
    orbit_radius_mm: float | None
    intrinsic_fwhm_mm: float
    energy_resolution_percent: float
    scatter_fraction: float
    voxel_binning: int
    iterations: int
    subsets: int
    post_filter_fwhm_mm: float
    energy_window_percent: float
    tew_side_window_percent: float
    tew_scatter_tilt: float
    tew_filter_fwhm_mm: float

    @property
    def view_duration_s(self) -> float:
        """Time each view is acquired, s (heads acquire their views simultaneously)."""
        return self.acquisition_time_s * self.n_heads / self.n_views


@dataclass(frozen=True)
class Photopeak:
    """One photopeak of the imaged nuclide and its acquisition window.

    Attributes
    ----------
    energy_keV, yield_per_decay : float
        Gamma line and photons per decay.
    window_keV : (float, float)
        Window limits, keV.
    window_fraction : float
        Share of the photopeak's (Gaussian) energy spectrum inside the window.
    response : CollimatorResponse
        Collimator-detector response at this energy.
    """

    energy_keV: float
    yield_per_decay: float
    window_keV: tuple[float, float]
    window_fraction: float
    response: CollimatorResponse

    @property
    def label(self) -> str:
        """File label of the window, e.g. ``"140keV"``."""
        return f"{round(self.energy_keV)}keV"


@functools.lru_cache(maxsize=64)
def lead_attenuation_per_mm(energy_keV: float) -> float:
    """Linear attenuation coefficient of lead at ``energy_keV``, 1/mm (xraydb, total)."""
    return float(xraydb.material_mu("Pb", 1000.0 * energy_keV, density=LEAD_DENSITY_G_PER_CM3, kind="total")) / 10.0


@functools.cache
def spect_tables() -> dict[str, dict[str, Any]]:
    """The ``spect`` and ``collimator`` tables of ``data/spect_systems.toml``."""
    return read_table("spect_systems.toml")


def collimator(name: str) -> Collimator:
    """The collimator ``name``; a one-line ValueError lists the known ones."""
    table = spect_tables()["collimator"]
    if name not in table:
        raise ValueError(f"modalities.spect.collimator: no collimator {name!r}; known: {', '.join(table)}")
    row = table[name]
    return Collimator(name=name, **{k: float(v) for k, v in row.items()})


def spect_params(spec: SPECTSpec, data: Nuclide) -> SPECTParams:
    """The system of ``spec`` for imaging ``data``: preset values, replaced where the scenario sets them.

    Raises
    ------
    ValueError
        One line naming the field: no collimator rated for the nuclide's energies, or
        subsets that do not divide the views.
    """
    presets = spect_tables()["spect"]
    preset = presets[spec.system]
    top = max(data.photon_energies_keV)
    if spec.collimator is not None:
        chosen = collimator(spec.collimator)
        if chosen.max_energy_keV < top:
            raise ValueError(
                f"modalities.spect.collimator: {chosen.name} is rated up to {chosen.max_energy_keV:g} keV, below "
                f"{data.name}'s {top:g} keV photopeak (its septa would be penetrated); choose one rated >= {top:g} keV"
            )
    else:
        rated = [collimator(n) for n in preset["collimators"] if collimator(n).max_energy_keV >= top]
        if not rated:
            raise ValueError(
                f"modalities.spect.collimator: no collimator of the {spec.system} preset is rated for "
                f"{data.name}'s {top:g} keV photopeak; name one explicitly"
            )
        chosen = rated[0]

    def pick(name: str):
        value = getattr(spec, name, None)
        return preset[name] if value is None else value

    params = SPECTParams(
        preset=spec.system,
        manufacturer=str(preset["manufacturer"]),
        model=str(preset["model"]),
        collimator=chosen,
        n_heads=int(preset["n_heads"]),
        n_views=int(pick("n_views")),
        acquisition_time_s=float(pick("acquisition_time_s")),
        orbit_radius_mm=spec.orbit_radius_mm,
        intrinsic_fwhm_mm=float(preset["intrinsic_fwhm_mm"]),
        energy_resolution_percent=float(preset["energy_resolution_percent"]),
        scatter_fraction=float(pick("scatter_fraction")),
        voxel_binning=int(pick("voxel_binning")),
        iterations=int(pick("iterations")),
        subsets=int(pick("subsets")),
        post_filter_fwhm_mm=float(pick("post_filter_fwhm_mm")),
        energy_window_percent=float(spec.energy_window_percent),
        tew_side_window_percent=float(preset["tew_side_window_percent"]),
        tew_scatter_tilt=float(preset["tew_scatter_tilt"]),
        tew_filter_fwhm_mm=float(preset["tew_filter_fwhm_mm"]),
    )
    if params.n_views % params.subsets:
        raise ValueError(
            f"modalities.spect.subsets: must divide n_views ({params.n_views}) so that every OSEM subset has as "
            f"many views; got {params.subsets}"
        )
    if params.n_views % params.n_heads:
        raise ValueError(
            f"modalities.spect.n_views: must be a multiple of the {params.n_heads} detector heads; got {params.n_views}"
        )
    return params


def window_fraction(energy_keV: float, window_percent: float, resolution_percent_at_140keV: float) -> float:
    """Share of a photopeak inside a symmetric window of ``window_percent`` (full width).

    The peak is Gaussian with FWHM ``resolution% x sqrt(140 keV / E)`` of ``E`` (Poisson
    statistics of the scintillation light).
    """
    fwhm_keV = energy_keV * resolution_percent_at_140keV / 100.0 * math.sqrt(140.0 / energy_keV)
    sigma = fwhm_keV / FWHM_PER_SIGMA
    half_width = 0.5 * energy_keV * window_percent / 100.0
    return math.erf(half_width / (sigma * math.sqrt(2.0)))


def photopeaks(data: Nuclide, params: SPECTParams) -> tuple[Photopeak, ...]:
    """One window per gamma line of ``data``, each with its share and collimator response."""
    if not data.photon_energies_keV:
        raise ValueError(f"{data.name} has no gamma lines in data/radionuclides.toml: it cannot be imaged by SPECT")
    peaks = []
    for energy, yield_per_decay in zip(data.photon_energies_keV, data.photon_yields, strict=True):
        half = 0.5 * energy * params.energy_window_percent / 100.0
        peaks.append(Photopeak(
            energy_keV=energy,
            yield_per_decay=yield_per_decay,
            window_keV=(energy - half, energy + half),
            window_fraction=window_fraction(energy, params.energy_window_percent, params.energy_resolution_percent),
            response=params.collimator.response(energy, params.intrinsic_fwhm_mm),
        ))
    return tuple(peaks)


__all__ = [
    "LEAD_DENSITY_G_PER_CM3",
    "Collimator",
    "Photopeak",
    "SPECTParams",
    "collimator",
    "lead_attenuation_per_mm",
    "photopeaks",
    "spect_params",
    "spect_tables",
    "window_fraction",
]
