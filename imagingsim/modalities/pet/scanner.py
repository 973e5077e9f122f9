"""PET scanner presets (``data/scanners.toml``) merged with a scenario's overrides."""

from __future__ import annotations

import functools
from dataclasses import fields
from typing import Any

from imagingsim.data.tables import read_table
from imagingsim.modalities.pet.result import ScannerParams
from imagingsim.modalities.pet.spec import PETSpec
from imagingsim.modalities.settings import merged_preset

#: ScannerParams fields that a scenario may override (the PETSpec field of the same name).
OVERRIDABLE = (
    "fwhm_mm",
    "sensitivity",
    "scatter_fraction",
    "randoms_fraction",
    "frame_duration_s",
    "n_views",
    "iterations",
    "subsets",
    "post_filter_fwhm_mm",
    "fbp_filter",
    "fbp_cutoff",
)


@functools.cache
def pet_presets() -> dict[str, dict[str, Any]]:
    """The ``[pet.<name>]`` tables of ``data/scanners.toml``, by preset name."""
    return read_table("scanners.toml")["pet"]


def scanner_params(spec: PETSpec) -> ScannerParams:
    """The scanner of ``spec``: its preset, each field the scenario sets replacing the preset's.

    Raises
    ------
    ValueError
        One line: an unknown preset, a preset missing a field, or subsets that do not divide
        the views evenly.
    """
    presets = pet_presets()
    if spec.scanner not in presets:
        raise ValueError(f"modalities.pet.scanner: no preset {spec.scanner!r}; presets: {', '.join(presets)}")
    preset = presets[spec.scanner]
    names = [f.name for f in fields(ScannerParams) if f.name != "preset"]
    values: dict[str, Any] = {"preset": spec.scanner, **merged_preset(
        spec, preset, names, OVERRIDABLE, table=f"data/scanners.toml [pet.{spec.scanner}]")}
    for name in ("n_views", "iterations", "subsets"):
        values[name] = int(values[name])
    for name in ("fwhm_mm", "sensitivity", "scatter_fraction", "randoms_fraction", "frame_duration_s",
                 "post_filter_fwhm_mm", "fbp_cutoff"):
        values[name] = float(values[name])
    if values["n_views"] % values["subsets"]:
        raise ValueError(
            f"modalities.pet.subsets: must divide n_views ({values['n_views']}) so that every OSEM subset "
            f"has as many views; got {values['subsets']}"
        )
    return ScannerParams(**values)


__all__ = ["OVERRIDABLE", "pet_presets", "scanner_params"]
