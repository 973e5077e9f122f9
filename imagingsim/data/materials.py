"""Elemental compositions of the phantom's materials (``data/materials.toml``, ICRU 44).

Used for photon attenuation (:mod:`imagingsim.physics.attenuation`) and the CT spectrum
calibration; the tissues of ``data/tissues.toml`` name their material here.
"""

from __future__ import annotations

import functools
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from imagingsim.data.tables import read_table


class MaterialComposition(BaseModel):
    """Elemental mass fractions of a material (ICRU 44), with its reference density (g/mL)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    description: str
    reference_density_g_per_ml: Annotated[float, Field(gt=0.0)]
    mass_fractions: dict[str, Annotated[float, Field(gt=0.0, le=1.0)]]

    @model_validator(mode="after")
    def _sums_to_one(self):
        total = sum(self.mass_fractions.values())
        if abs(total - 1.0) > 2e-3:  # tabulated to three decimals
            raise ValueError(f"mass fractions of {self.description!r} sum to {total:.4f}, not 1")
        return self


@functools.cache
def material_compositions() -> dict[str, MaterialComposition]:
    """Validated ``data/materials.toml``: material name -> elemental mass fractions."""
    return {name: MaterialComposition.model_validate(entry) for name, entry in read_table("materials.toml").items()}


__all__ = ["MaterialComposition", "material_compositions"]
