"""The drug table: kinetics of a payload once released from its carrier (``data/drugs.toml``).

The release itself (trigger maps, rates) is in :mod:`imagingsim.delivery.release`.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from imagingsim.data.tables import read_table

Rate = Annotated[float, Field(ge=0.0, le=1000.0)]


class DrugParams(BaseModel):
    """Kinetics of a released drug (rates 1/h, half-life h); see ``data/drugs.toml``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    description: str
    free_to_bound_per_h: Rate
    bound_to_free_per_h: Rate
    tissue_to_blood_per_h: Rate
    blood_half_life_h: Annotated[float, Field(gt=0.0, le=10000.0)]

    @property
    def blood_elimination_per_h(self) -> float:
        """First-order elimination rate of free drug from blood, ln2 / half-life, 1/h."""
        return math.log(2.0) / self.blood_half_life_h


def _load() -> dict[str, DrugParams]:
    return {name: DrugParams.model_validate(entry) for name, entry in read_table("drugs.toml").items()}


DRUGS: dict[str, DrugParams] = _load()


def drug_parameters(name: str) -> DrugParams:
    """The drug table entry ``name``.

    Raises
    ------
    ValueError
        One line naming the unknown drug and the known ones.
    """
    if name not in DRUGS:
        raise ValueError(f"payload.drug {name!r} is not in the drug table; known: {', '.join(sorted(DRUGS))}")
    return DRUGS[name]


__all__ = ["DRUGS", "DrugParams", "drug_parameters"]
