"""What delivery hands to the modalities: concentration maps, blood curves and mass ledgers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imagingsim.data.carriers import CarrierParams
from imagingsim.scenario import AgentSpec

#: Extravascular regions of the carrier ledger, in ledger order. The part of a clearance organ
#: outside the field of view (all of it when the organ has no voxel) is a lumped compartment
#: counted under its organ; "outside_fov" is the rest of the body outside the field of view.
REGIONS: tuple[str, ...] = ("liver", "spleen", "kidneys", "marrow", "tumour", "other_tissue", "outside_fov")

#: Keys of :attr:`AgentDelivery.ledger_ug`, in order. Blood is counted once (whole body);
#: organ entries are extravascular carrier (free, cell-associated and renal transit).
LEDGER_KEYS: tuple[str, ...] = ("blood",) + REGIONS + ("excreted_urine", "excreted_feces")

#: Keys of :attr:`AgentDelivery.drug_ledger_ug`, in order; they sum to the loaded drug mass.
DRUG_LEDGER_KEYS: tuple[str, ...] = (
    "encapsulated_blood",  # drug inside circulating carrier
    "encapsulated_tissue",  # drug inside extravascular, cell-associated and renal carrier
    "encapsulated_excreted",  # drug excreted inside its carrier (urine, feces)
    "free_blood",  # released drug in blood
    "free_tissue",  # released drug in the interstitium
    "bound_tissue",  # released drug bound in cells
    "eliminated",  # free drug eliminated from blood
)


@dataclass(frozen=True, eq=False)
class FieldMap:
    """One external field acting on an agent, as written to the truth: values, units, meaning."""

    values: Any = field(repr=False)  # device array, float64, the phantom grid's shape
    units: str
    what: str


@dataclass(frozen=True, eq=False)
class AgentDelivery:
    """Delivery of one agent: the ground truth the modalities image.

    Attributes
    ----------
    agent : AgentSpec
        The injected agent.
    carrier : CarrierParams
        Carrier parameters after ``agent.carrier_overrides``.
    times_h : tuple of float
        Output times, hours after t = 0 (the scenario schedule). Everything is 0 before
        ``agent.injection_time_h``.
    injected_mass_ug : float
        Injected carrier mass, ug.
    injected_drug_ug : float
        Loaded drug mass, ug (0 without payload).
    carrier_ug_per_ml : device array, float64, shape ``(nx, ny, nz, T)``
        Total carrier a label sees per mL of voxel: ``v_b * C_blood + (E + B + K) / V``
        (intravascular + extravascular free + cell-associated + renal transit). 0 in air.
    bound_carrier_ug_per_ml : device array, float64, shape ``(nx, ny, nz, T)``
        The cell-associated part ``B / V`` (receptor-bound, internalised, MPS-sequestered):
        clustered particles that e.g. have a higher effective r2* than free ones.
    free_drug_ug_per_ml : device array or None
        Released, unbound drug per mL: ``v_b * C_free,blood + F / V``.
    bound_drug_ug_per_ml : device array or None
        Released drug bound in cells per mL, ``G / V``.
    encapsulated_drug_ug_per_ml : device array or None
        Drug still inside its carrier per mL, ``v_b * C_enc,blood + (PE + PB + PK) / V``
        (circulating carrier in the voxel's blood plus extravascular, cell-associated and
        renal-transit carrier). Free + bound + encapsulated, times the voxel volume and summed
        over voxels, plus the blood outside the voxels, :attr:`lumped_drug_ug`, the excreted
        and the eliminated drug, is the drug ledger total.
    blood_ug_per_ml : tuple of float
        Carrier concentration in whole blood at ``times_h``, ug/mL.
    blood_curve_h, blood_curve_ug_per_ml : tuple of float
        The blood curve at the solver steps, thinned to at most ~2000 points (every output
        time, and steps at least 2 % of the time since injection or 1/1000 of the simulated
        span apart), for plotting input functions, h and ug/mL.
    ledger_ug : dict of str -> tuple of float
        Carrier mass per :data:`LEDGER_KEYS` entry at ``times_h``; sums to
        ``injected_mass_ug`` after injection.
    drug_ledger_ug : dict of str -> tuple of float, or None
        Drug mass per :data:`DRUG_LEDGER_KEYS` entry; sums to ``injected_drug_ug``.
    region_mass_g : dict of str -> float
        Tissue mass of each region (including its blood), g; ``"blood"`` is the whole-body
        blood mass.
    region_blood_ml : dict of str -> float
        Blood volume inside each region, mL (0 for ``"blood"``).
    blood_volume_ml : float
        Whole-body blood volume, mL.
    label_extravascular_ug : dict of int -> tuple of float
        Extravascular carrier (E + B + K) in the voxels of each segmentation label, ug.
    label_mass_g, label_blood_ml : dict of int -> float
        Tissue mass (g) and blood volume (mL) of each label's voxels.
    lumped_drug_ug : tuple of float or None
        Extravascular drug (encapsulated, free and bound) in the lumped compartments at
        ``times_h``: organ remainders outside the field of view and the rest of the body, ug.
    field_maps : dict of str -> FieldMap
        The external fields that acted on this agent (a heating field's temperature, a light's
        fluence, a magnet's field and force), by name (letters and digits, appended to the
        agent's name in the truth file's desc); empty when none acted.
        Part of the drug ledger's tissue entries, but in no voxel.
    """

    agent: AgentSpec
    carrier: CarrierParams
    times_h: tuple[float, ...]
    injected_mass_ug: float
    injected_drug_ug: float
    carrier_ug_per_ml: Any = field(repr=False)
    bound_carrier_ug_per_ml: Any = field(repr=False)
    free_drug_ug_per_ml: Any = field(repr=False)
    bound_drug_ug_per_ml: Any = field(repr=False)
    blood_ug_per_ml: tuple[float, ...]
    blood_curve_h: tuple[float, ...] = field(repr=False)
    blood_curve_ug_per_ml: tuple[float, ...] = field(repr=False)
    ledger_ug: dict[str, tuple[float, ...]] = field(repr=False)
    drug_ledger_ug: dict[str, tuple[float, ...]] | None = field(repr=False)
    region_mass_g: dict[str, float] = field(repr=False)
    region_blood_ml: dict[str, float] = field(repr=False)
    blood_volume_ml: float = 0.0
    label_extravascular_ug: dict[int, tuple[float, ...]] = field(default_factory=dict, repr=False)
    label_mass_g: dict[int, float] = field(default_factory=dict, repr=False)
    label_blood_ml: dict[int, float] = field(default_factory=dict, repr=False)
    encapsulated_drug_ug_per_ml: Any = field(default=None, repr=False)
    lumped_drug_ug: tuple[float, ...] | None = field(default=None, repr=False)
    field_maps: dict[str, FieldMap] = field(default_factory=dict, repr=False)

    def region_mass_ug(self, region: str | int) -> tuple[float, ...]:
        """Total carrier in ``region`` (its extravascular carrier plus the blood inside it), ug.

        ``region`` is one of :data:`REGIONS`, ``"blood"`` (the whole circulating pool), or a
        segmentation label (:class:`imagingsim.phantom.Label` or its int value).
        """
        if region == "blood":
            return self.ledger_ug["blood"]
        if isinstance(region, int) and region in self.label_extravascular_ug:
            tissue, blood_ml = self.label_extravascular_ug[region], self.label_blood_ml[region]
        elif isinstance(region, str) and region in REGIONS:
            tissue, blood_ml = self.ledger_ug[region], self.region_blood_ml[region]
        else:
            allowed = f"blood, {', '.join(REGIONS)} or a non-air label value"
            raise ValueError(f"region must be one of {allowed}; got {region!r}")
        return tuple(t + blood_ml * cb for t, cb in zip(tissue, self.blood_ug_per_ml))

    def percent_id_per_g(self, region: str | int) -> tuple[float, ...]:
        """Percent injected dose per gram of ``region`` at ``times_h``, %ID/g.

        The imaging-relevant quantity: all carrier in the region, including the blood it
        contains, divided by the injected mass and the region's tissue mass (density x
        volume). ``region`` is as for :meth:`region_mass_ug`.

        Raises
        ------
        ValueError
            For an unknown region or one with no mass.
        """
        amounts = self.region_mass_ug(region)
        masses = self.label_mass_g if isinstance(region, int) else self.region_mass_g
        mass_g = masses.get(region, 0.0)
        if not mass_g > 0.0:
            raise ValueError(f"region {region!r} has no mass in this phantom")
        return tuple(100.0 * a / self.injected_mass_ug / mass_g for a in amounts)

    def ledger_total_ug(self) -> tuple[float, ...]:
        """Sum of the carrier ledger at each output time, ug."""
        return tuple(sum(values) for values in zip(*self.ledger_ug.values()))

    def drug_ledger_total_ug(self) -> tuple[float, ...] | None:
        """Sum of the drug ledger at each output time, ug (None without payload)."""
        if self.drug_ledger_ug is None:
            return None
        return tuple(sum(values) for values in zip(*self.drug_ledger_ug.values()))


@dataclass(frozen=True, eq=False)
class DeliveryResult:
    """Delivery of every agent of a scenario, on the same output times.

    Attributes
    ----------
    agents : tuple of AgentDelivery
        In scenario order.
    times_h : tuple of float
        Output times, hours after t = 0.
    """

    agents: tuple[AgentDelivery, ...]
    times_h: tuple[float, ...]

    def agent(self, name: str) -> AgentDelivery:
        """The delivery of the agent called ``name``."""
        for item in self.agents:
            if item.agent.name == name:
                return item
        raise KeyError(f"no agent {name!r}; agents: {', '.join(a.agent.name for a in self.agents)}")


__all__ = ["DRUG_LEDGER_KEYS", "LEDGER_KEYS", "REGIONS", "AgentDelivery", "DeliveryResult", "FieldMap"]
