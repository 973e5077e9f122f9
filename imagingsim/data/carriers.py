"""The carrier library: validated kinetic defaults per carrier class (``data/carriers.toml``).

Pore restriction of EPR extravasation
    Nanoparticles leave tumour vessels through inter-endothelial gaps and fenestrae. Their
    transvascular rate falls with size as the Renkin hindrance of a sphere of diameter d in a
    cylindrical pore of diameter d_pore (Renkin, J Gen Physiol 1954;38:225),
    ``Phi(l) = (1 - l)^2 (1 - 2.104 l + 2.09 l^3 - 0.95 l^5)``, ``l = d / d_pore`` (0 for
    ``l >= 1``): steric exclusion at the pore mouth times hindered diffusion inside. The tumour
    pore cut-off is 380-780 nm across the tumours of Hobbs et al. (PNAS 1998;95:4607); we take
    :data:`TUMOUR_PORE_DIAMETER_NM` = 500 nm. ``extravasation_per_h`` of an "epr" carrier is
    the rate at :data:`REFERENCE_DIAMETER_NM` = 100 nm, so the factor is normalised to 1
    there (:attr:`CarrierParams.epr_size_factor`). One pore size serves every tissue: normal
    tissue differs through the vessel-permeability map, not through a smaller pore.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from imagingsim.data.tables import read_table

RENAL_CUTOFF_NM = 5.5  # glomerular filtration cut-off (Choi et al., Nat Biotechnol 2007)
TUMOUR_PORE_DIAMETER_NM = 500.0  # Hobbs et al. PNAS 1998;95:4607: cut-off 380-780 nm
REFERENCE_DIAMETER_NM = 100.0  # extravasation_per_h of "epr" carriers is given at this size

Rate = Annotated[float, Field(ge=0.0, le=1000.0)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]


def renkin_hindrance(diameter_nm: float, pore_diameter_nm: float = TUMOUR_PORE_DIAMETER_NM) -> float:
    """Renkin hindrance factor of a sphere in a cylindrical pore (dimensionless, 0-1).

    Parameters
    ----------
    diameter_nm : float
        Hydrodynamic diameter of the particle, nm.
    pore_diameter_nm : float
        Pore diameter, nm.

    Returns
    -------
    float
        ``(1 - l)^2 (1 - 2.104 l + 2.09 l^3 - 0.95 l^5)`` with ``l = d / d_pore``; 0 when the
        particle does not fit (``l >= 1``).
    """
    lam = diameter_nm / pore_diameter_nm
    if lam >= 1.0:
        return 0.0
    return (1.0 - lam) ** 2 * (1.0 - 2.104 * lam + 2.09 * lam**3 - 0.95 * lam**5)


class HalfLives(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    mouse: Annotated[float, Field(gt=0.0, le=10000.0)]
    human: Annotated[float, Field(gt=0.0, le=10000.0)]


class CarrierParams(BaseModel):
    """Kinetic parameters of one carrier class (units in the names; rates are 1/h).

    The meaning of each field is documented in the header of ``data/carriers.toml``; the
    model using them in :mod:`imagingsim.delivery.kinetics`.
    """

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
    marrow_share: Share
    mps_degradation_per_h: Rate
    renal_transit_per_h: Rate
    extravasation_per_h: Rate
    washout_per_h: Rate
    cell_uptake_per_h: Rate
    cell_release_per_h: Rate
    cell_uptake_map: Literal["uniform", "glucose", "macrophage"]
    abc_factor: Annotated[float, Field(ge=1.0, le=100.0)]

    @model_validator(mode="after")
    def _shares(self):
        total = self.liver_share + self.spleen_share + self.marrow_share
        if total > 1.0 + 1e-12:
            raise ValueError(f"liver_share + spleen_share + marrow_share must be <= 1, got {total:.6g}")
        return self

    @property
    def renally_cleared(self) -> bool:
        """True when the carrier is small enough for glomerular filtration."""
        return self.hydrodynamic_diameter_nm < RENAL_CUTOFF_NM

    @property
    def effective_renal_share(self) -> float:
        """``renal_share`` below the cut-off, 0 above it (physics overrides the table)."""
        return self.renal_share if self.renally_cleared else 0.0

    @property
    def rest_share(self) -> float:
        """Share of the non-renal elimination taken by the rest of the body's macrophages.

        ``1 - liver_share - spleen_share - marrow_share`` (skin, lung, muscle: the "other
        tissue" voxels and the lumped body outside the field of view).
        """
        return max(0.0, 1.0 - self.liver_share - self.spleen_share - self.marrow_share)

    @property
    def epr_size_factor(self) -> float:
        """Pore restriction of extravasation relative to a 100 nm particle (dimensionless).

        ``Phi(d / 500 nm) / Phi(100 nm / 500 nm)`` (Renkin hindrance, see the module
        docstring) for transport "epr"; 1 for "diffusible" (small molecules are not
        pore-restricted); 0 at or above the pore diameter.
        """
        if self.transport != "epr":
            return 1.0
        return renkin_hindrance(self.hydrodynamic_diameter_nm) / renkin_hindrance(REFERENCE_DIAMETER_NM)

    def blood_half_life_for(self, species: str) -> float:
        """Configured blood half-life for ``species`` ("mouse" or "human"), h.

        For transport "epr" it is the observed initial half-life of the blood curve (all
        first-order loss, extravasation included); for "diffusible" it is the elimination
        half-life (see ``data/carriers.toml``).
        """
        return getattr(self.blood_half_life_h, species)


def _load() -> dict[str, CarrierParams]:
    return {name: CarrierParams.model_validate(entry) for name, entry in read_table("carriers.toml").items()}


CARRIERS: dict[str, CarrierParams] = _load()

#: Fields that cannot be overridden by a number: the description, and the categorical
#: properties of a carrier class (transport route, uptake map, PEG coating, BBB crossing).
#: Flipping ``pegylated`` or ``crosses_bbb`` alone would not make another carrier (the
#: half-life and MPS shares come with the coating), so pick another carrier instead.
NON_NUMERIC_FIELDS = ("description", "transport", "cell_uptake_map", "pegylated", "crosses_bbb")

#: Override keys: the numeric parameters, plus ``blood_half_life_h_mouse`` / ``_human``.
OVERRIDE_KEYS = tuple(
    k for k in CarrierParams.model_fields if k not in NON_NUMERIC_FIELDS + ("blood_half_life_h",)
) + ("blood_half_life_h_mouse", "blood_half_life_h_human")


def carrier_parameters(name: str, overrides: dict[str, float] | None = None) -> CarrierParams:
    """The library entry ``name`` with numeric ``overrides`` applied and re-validated.

    Parameters
    ----------
    name : str
        Key of :data:`CARRIERS`.
    overrides : dict of str -> float, optional
        Values for keys of :data:`OVERRIDE_KEYS` (units as in the field names).

    Raises
    ------
    ValueError
        One line naming a non-numeric or unknown key, or the out-of-range field.
    """
    base = CARRIERS[name].model_dump()
    for key, value in (overrides or {}).items():
        if key in NON_NUMERIC_FIELDS:
            raise ValueError(
                f"carrier_overrides.{key}: not a numeric parameter and cannot be overridden; "
                "choose another carrier"
            )
        if key not in OVERRIDE_KEYS:
            raise ValueError(f"carrier_overrides.{key}: unknown parameter; allowed: {', '.join(OVERRIDE_KEYS)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"carrier_overrides.{key}: must be finite, got {value}")
        if key.startswith("blood_half_life_h_"):
            base["blood_half_life_h"][key.rsplit("_", 1)[1]] = value
        else:
            base[key] = value
    try:
        return CarrierParams.model_validate(base)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        where = f"carrier_overrides.{field}" if field else f"carrier_overrides of {name}"
        raise ValueError(f"{where}: {err['msg']}") from None
