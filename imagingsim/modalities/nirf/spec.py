"""The ``[modalities.nirf]`` settings of a scenario (validated, frozen, units in the names)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from imagingsim.scenario import SpecModel


class NIRFSpec(SpecModel):
    """Planar NIR fluorescence imaging of the body surface, one image per schedule time."""

    view: Literal["dorsal", "ventral", "left", "right"] = Field(
        "dorsal", description="Body surface facing the camera (dorsal = posterior, -y; left = -x)."
    )
    mode: Literal["epi", "trans"] = Field(
        "epi", description="Epi-illumination (light and camera on the same side) or transillumination."
    )
    window: Literal["auto", "NIR-I", "NIR-II"] = Field(
        "auto", description="Emission window; auto: the dye's own (NIR-II dyes in NIR-II, others in NIR-I)."
    )
    exposure_s: Annotated[float, Field(gt=0.0, le=600.0)] = 0.1
    irradiance_mW_per_cm2: Annotated[float, Field(gt=0.0, le=1000.0)] = Field(
        10.0, description="Excitation irradiance at the skin, mW/cm^2."
    )
    autofluorescence: Annotated[float, Field(ge=0.0, le=100.0)] = Field(
        1.0, description="Multiplier of the tabulated tissue autofluorescence (0: none)."
    )
