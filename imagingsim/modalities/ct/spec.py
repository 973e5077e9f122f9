"""The ``[modalities.ct]`` settings of a scenario (validated, frozen, units in the names)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from imagingsim.scenario import SpecModel


class CTSpec(SpecModel):
    """Polyenergetic parallel-beam CT, one scan per schedule time; unset fields from the preset.

    Presets and their sources: data/ct_systems.toml.
    """

    system: Literal["preclinical", "clinical"] = "preclinical"
    kvp: Annotated[float, Field(ge=20.0, le=150.0)] | None = Field(None, description="Tube voltage, kV.")
    tube_current_time_mAs: Annotated[float, Field(gt=0.0, le=5000.0)] | None = Field(
        None, description="Tube current-time product of the whole scan, mAs."
    )
    added_filtration_mm_Al: Annotated[float, Field(ge=0.0, le=20.0)] | None = None
    added_filtration_mm_Cu: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    n_views: Annotated[int, Field(ge=8, le=4096)] | None = Field(None, description="Views over 180 degrees.")
    water_precorrection: bool = Field(
        True, description="Linearise the projections for water before FBP (removes most beam-hardening cupping)."
    )
    fbp_filter: Literal["ramp", "shepp-logan", "hann"] | None = None
    fbp_cutoff: Annotated[float, Field(gt=0.0, le=1.0)] | None = Field(None, description="Fraction of Nyquist.")
    noise: bool = Field(True, description="Poisson photon noise (false: the expected counts).")
