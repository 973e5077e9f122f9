"""The carrier library: validated kinetic defaults per carrier class (``data/carriers.toml``)."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

RENAL_CUTOFF_NM = 5.5  # glomerular filtration cut-off (Choi et al., Nat Biotechnol 2007)

Rate = Annotated[float, Field(ge=0.0, le=1000.0)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]


class HalfLives(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    mouse: Annotated[float, Field(gt=0.0, le=10000.0)]
    human: Annotated[float, Field(gt=0.0, le=10000.0)]


class CarrierParams(BaseModel):
    """Kinetic parameters of one carrier class (units in the names; rates are 1/h)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    description: str
    hydrodynamic_diameter_nm: Annotated[float, Field(gt=0.0, le=5000.0)]
    pegylated: bool
    transport: Literal["epr", "diffusible"]
    crosses_bbb: bool
    blood_half_life_h: HalfLives
    renal_share: Share
    liver_share: Share
    spleen_share: Share
    mps_degradation_per_h: Rate
    renal_transit_per_h: Rate
    extravasation_per_h: Rate
    washout_per_h: Rate
    cell_uptake_per_h: Rate
    cell_release_per_h: Rate
    cell_uptake_map: Literal["uniform", "glucose"]
    abc_factor: Annotated[float, Field(ge=1.0, le=100.0)]

    @model_validator(mode="after")
    def _shares(self):
        if self.liver_share + self.spleen_share > 1.0 + 1e-12:
            raise ValueError("liver_share + spleen_share must be <= 1")
        return self

    @property
    def renally_cleared(self) -> bool:
        """True when the carrier is small enough for glomerular filtration."""
        return self.hydrodynamic_diameter_nm < RENAL_CUTOFF_NM

    @property
    def effective_renal_share(self) -> float:
        """``renal_share`` below the cut-off, 0 above it (physics overrides the table)."""
        return self.renal_share if self.renally_cleared else 0.0

    def blood_half_life_for(self, species: str) -> float:
        """Elimination half-life from blood for ``species`` ("mouse" or "human"), h."""
        return getattr(self.blood_half_life_h, species)


def _load() -> dict[str, CarrierParams]:
    text = resources.files("imagingsim.data").joinpath("carriers.toml").read_text(encoding="utf-8")
    return {name: CarrierParams.model_validate(entry) for name, entry in tomllib.loads(text).items()}


CARRIERS: dict[str, CarrierParams] = _load()

#: Override keys: flat parameter names, plus ``blood_half_life_h_mouse`` / ``_human``.
OVERRIDE_KEYS = tuple(
    k for k in CarrierParams.model_fields if k not in ("description", "blood_half_life_h")
) + ("blood_half_life_h_mouse", "blood_half_life_h_human")


def carrier_parameters(name: str, overrides: dict[str, float] | None = None) -> CarrierParams:
    """The library entry ``name`` with numeric ``overrides`` applied and re-validated.

    Raises
    ------
    ValueError
        One line naming an unknown key or the out-of-range field.
    """
    base = CARRIERS[name].model_dump()
    for key, value in (overrides or {}).items():
        if key not in OVERRIDE_KEYS:
            raise ValueError(f"carrier_overrides.{key}: unknown parameter; allowed: {', '.join(OVERRIDE_KEYS)}")
        if key.startswith("blood_half_life_h_"):
            base["blood_half_life_h"][key.rsplit("_", 1)[1]] = value
        else:
            base[key] = value
    try:
        return CarrierParams.model_validate(base)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"carrier_overrides.{field}: {err['msg']}") from None
