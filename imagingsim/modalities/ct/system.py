"""The CT scanner: presets after the scenario's overrides, the spectrum at the detector, water calibration, and the checks made before any work (``data/ct_systems.toml``)."""

from __future__ import annotations

import functools
import math
from dataclasses import fields
from typing import Any

from imagingsim.data.tables import read_table
from imagingsim.modalities.ct.result import CTSystemParams, WaterCalibration
from imagingsim.modalities.ct.spec import CTSpec
from imagingsim.modalities.ct.spectrum import (
    BONE_CHORD_FRACTION,
    XraySpectrum,
    bone_hu,
    calibration_mu_water_per_mm,
    effective_energy_keV,
    filtered_kramers,
    kramers_photons,
    measured_bone_hu,
    water_hardening_table,
    water_mu_per_mm,
    xray_spectrum,
)
from imagingsim.modalities.settings import merged_preset
from imagingsim.scenario import Scenario

#: CTSystemParams fields a scenario may override (the CTSpec field of the same name).
OVERRIDABLE = (
    "kvp",
    "tube_current_time_mAs",
    "added_filtration_mm_Al",
    "added_filtration_mm_Cu",
    "n_views",
    "fbp_filter",
    "fbp_cutoff",
)


#: Fewest unattenuated photons per detector bin per view that check_ct accepts: below this
#: even air is Poisson-dominated and the log of a few counts is meaningless.
MIN_AIR_PHOTONS = 100.0


#: Below this fraction of the unfiltered photons surviving the filters, check_ct blames them.
MIN_FILTER_TRANSMISSION = 1e-4


@functools.cache
def ct_presets() -> dict[str, dict[str, Any]]:
    """The ``[ct.<name>]`` tables of ``data/ct_systems.toml``, by preset name."""
    return read_table("ct_systems.toml")["ct"]


def ct_system_params(spec: CTSpec) -> CTSystemParams:
    """The CT system of ``spec``: its preset, each field the scenario sets replacing the preset's.

    Raises
    ------
    ValueError
        One line: an unknown preset or a preset missing a field.
    """
    presets = ct_presets()
    if spec.system not in presets:
        raise ValueError(f"modalities.ct.system: no preset {spec.system!r}; presets: {', '.join(presets)}")
    preset = presets[spec.system]
    derived = {"preset", "fluence_kvp", "fluence_filtration_mm", "water_precorrection", "noise"}
    names = [f.name for f in fields(CTSystemParams) if f.name not in derived]
    values = merged_preset(spec, preset, names, OVERRIDABLE, table=f"data/ct_systems.toml [ct.{spec.system}]")
    for name in ("kvp", "tube_current_time_mAs", "inherent_filtration_mm_Al", "added_filtration_mm_Al",
                 "added_filtration_mm_Cu", "fluence_photons_per_mAs_per_mm2", "calibration_diameter_mm", "fbp_cutoff"):
        values[name] = float(values[name])
    values["n_views"] = int(values["n_views"])
    return CTSystemParams(
        preset=spec.system,
        fluence_kvp=float(preset["kvp"]),
        fluence_filtration_mm={
            "Al": float(preset["inherent_filtration_mm_Al"]) + float(preset["added_filtration_mm_Al"]),
            "Cu": float(preset["added_filtration_mm_Cu"]),
        },
        water_precorrection=bool(spec.water_precorrection),
        noise=bool(spec.noise),
        **values,
    )


def scan_spectrum(system: CTSystemParams) -> XraySpectrum:
    """The filtered spectrum at isocentre per mAs of a system's kVp and filtration."""
    return xray_spectrum(system.kvp, system.filtration_mm, system.fluence_photons_per_mAs_per_mm2,
                         system.fluence_kvp, system.fluence_filtration_mm)


def photons_per_detector_bin(spectrum: XraySpectrum, system: CTSystemParams, bin_mm: float, slice_mm: float
                             ) -> tuple[float, ...]:
    """``N0(E)``: unattenuated photons per detector bin per view in each energy bin.

    Fluence per mAs x mAs per view (the scan's mAs spread evenly over the views) x the
    detector element's area at isocentre (radial bin x slice thickness, mm^2).
    """
    per_view = system.tube_current_time_mAs / system.n_views * bin_mm * slice_mm
    return tuple(n * per_view for n in spectrum.photons_per_mAs_per_mm2)


def water_calibration(spectrum: XraySpectrum, diameter_mm: float, i0_photons: float, *,
                      water_precorrection: bool = True, bone_mm: float | None = None) -> WaterCalibration:
    """Reference energy, mu_water, HU of bone and the pre-correction table of a spectrum.

    The table reaches ``ln(i0_photons)``, the largest line integral a measurement clipped at
    1 photon can report.

    Parameters
    ----------
    spectrum : XraySpectrum
    diameter_mm : float
        Calibration water cylinder diameter, mm.
    i0_photons : float
        Unattenuated photons per detector bin per view (the 1-photon clip caps ``p`` at ``ln I0``).
    water_precorrection : bool, keyword-only
        Whether the reconstruction pre-corrects for water: ``hu_bone`` is calibrated through
        the same processing (:func:`~imagingsim.modalities.ct.spectrum.measured_bone_hu`).
    bone_mm : float, keyword-only
        Cortical-bone chord of the bone calibration, mm; default
        :data:`~imagingsim.modalities.ct.spectrum.BONE_CHORD_FRACTION` x ``diameter_mm``.
    """
    mu_cal = calibration_mu_water_per_mm(spectrum, diameter_mm)
    energy = effective_energy_keV(mu_cal)
    max_p = math.log(max(i0_photons, math.e))
    lengths, integrals = water_hardening_table(spectrum, max_p)
    mu_w = water_mu_per_mm((energy,))[0]
    bone = BONE_CHORD_FRACTION * float(diameter_mm) if bone_mm is None else float(bone_mm)
    hu_bone = measured_bone_hu(spectrum, diameter_mm, bone, mu_w, max_line_integral=max_p,
                               water_table=(lengths, integrals) if water_precorrection else None)
    return WaterCalibration(
        effective_energy_keV=energy,
        mu_water_per_mm=mu_w,
        calibration_mu_water_per_mm=mu_cal,
        calibration_diameter_mm=float(diameter_mm),
        hu_bone=hu_bone,
        hu_bone_monoenergetic=bone_hu(energy),
        calibration_bone_mm=bone,
        water_precorrection=bool(water_precorrection),
        water_lengths_mm=lengths,
        water_line_integrals=integrals,
    )


def check_ct(spec: CTSpec, scenario: Scenario) -> None:
    """Fail fast, before any simulation, on CT settings that only the presets can check.

    Raises
    ------
    ValueError
        One line naming the field: filters that stop (almost) every photon at this kVp, or
        too few photons per detector bin per view in air (mAs over views too small for the
        voxel size).
    """
    system = ct_system_params(spec)
    _, unfiltered = kramers_photons(system.kvp)
    _, filtered = filtered_kramers(system.kvp, system.filtration_mm)
    transmission = math.fsum(filtered) / math.fsum(unfiltered)
    if transmission < MIN_FILTER_TRANSMISSION:
        field = "added_filtration_mm_Cu" if system.added_filtration_mm_Cu > 0 else "added_filtration_mm_Al"
        raise ValueError(
            f"modalities.ct.{field}: {system.added_filtration_mm_Cu:g} mm Cu + {system.filtration_mm['Al']:g} mm Al "
            f"transmits {transmission:.1e} of the {system.kvp:g} kVp photons (need >= {MIN_FILTER_TRANSMISSION:g}); "
            "use less filtration or a higher kvp"
        )
    voxel = scenario.phantom.voxel_size_mm
    i0 = math.fsum(photons_per_detector_bin(scan_spectrum(system), system, voxel, voxel))
    if i0 < MIN_AIR_PHOTONS:
        raise ValueError(
            f"modalities.ct.tube_current_time_mAs: {system.tube_current_time_mAs:g} mAs over {system.n_views} views "
            f"gives {i0:.3g} photons per {voxel:g} x {voxel:g} mm detector bin per view in air (need >= "
            f"{MIN_AIR_PHOTONS:g}); raise the mAs or lower n_views"
        )
