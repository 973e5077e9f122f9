"""Mass-conserving compartment kinetics of injected carriers and their payload.

Model (per agent; agents are independent: kinetics are linear and co-injected agents do not
compete for receptors, MPS capacity or renal filtration). Agent time is
``tau = t - injection_time_h``; everything is 0 before injection. Masses are in ug.

Carrier states
    ``blood``        whole-body circulating carrier (scalar); ``C_b = blood / blood_volume_ml``.
    ``E(x)``         extravascular free carrier in the interstitium of voxel x.
    ``B(x)``         cell-associated carrier: receptor-bound / internalised, and in liver,
                     spleen and marrow (BONE) voxels also the MPS-sequestered carrier.
    ``K(x)``         renal transit in kidney voxels (only for renally cleared carriers).
    ``excreted_urine``, ``excreted_feces`` (scalars).
Transfers (first order, 1/h)
    blood elimination ``k_el = ln2 / t1/2``; its renal part (``effective_renal_share``) goes
    to K in kidney voxels (weighted by voxel volume) and on to urine at
    ``renal_transit_per_h``; the non-renal part, times ``abc_factor ** prior_peg_doses`` for
    PEGylated carriers, goes to B in liver / spleen / marrow (``liver_share``,
    ``spleen_share``, rest) weighted by voxel volume x blood volume fraction, and from there
    to feces at ``mps_degradation_per_h``. Macrophages do not re-release intact carrier:
    in MPS organs B does not return to E.
    extravasation blood -> E with ``K_in(x) = extravasation_per_h * access(x) * (1 - v_b(x))``
    per mL of tissue (flux ``K_in V C_b``); ``access`` is the vessel permeability map
    (transport "epr") or ``min(v_b / 0.05, 2)`` (transport "diffusible"); 0 in BRAIN voxels
    unless the carrier crosses the blood-brain barrier. Blood-pool voxels (v_b = 1) have no
    tissue.
    E -> blood at ``washout_per_h``; E -> B at ``cell_uptake_per_h`` (times the glucose
    metabolism map when ``cell_uptake_map = "glucose"``) plus, with targeting,
    ``binding_rate_per_h_per_nM * receptor_density_nM``; B -> E at ``cell_release_per_h``
    (+ ``unbinding_rate_per_h`` times the receptor-driven share of cell association,
    ``k_on R / (k_on R + k_uptake)``, so a ligand changes nothing where there is no
    receptor) outside the MPS organs.
Payload
    Encapsulated drug sits in every carrier state and moves with its carrier (each carrier
    transfer also moves drug at the same rate, so it carries the source's drug/carrier ratio).
    It is released at ``baseline_rate_per_h`` everywhere plus ``triggered_rate_per_h *
    trigger(x)`` in tissue (:mod:`imagingsim.delivery.release`). Released drug is free
    (F, in tissue; or in blood), binds in cells (G) and returns, leaves tissue for blood and is
    eliminated from blood, at the rates of ``data/drugs.toml``.
Outside the field of view
    Organs that receive clearance but have no voxel (liver, spleen, kidneys, marrow, e.g. for
    the "brain" anatomy) become lumped compartments with a reference organ mass; the rest of
    the body (``body_mass_g`` minus the phantom's mass and the lumped organs) is the lumped
    ``outside_fov`` compartment. Lumped compartments exchange like resting muscle
    (permeability 0.01, blood fraction 0.03) and are part of the ledger.

Numerical scheme (exponential splitting with in-step pass-through)
    Over a step dt, each state S with total outflow rate R (scalar or per voxel) loses
    ``S (1 - exp(-R dt))``, shared between its destinations in proportion to their rates; all
    these fluxes come from start-of-step values (Jacobi). Mass arriving at a state during the
    step is taken to arrive uniformly in time: the fraction ``1 - (1 - exp(-R dt)) / (R dt)``
    of it leaves again within the step and is passed on to that state's destinations (done
    only for states with R dt > 0.01 at the step cap; elsewhere the error of skipping it is
    below 0.5 %). Every transfer is a non-negative share of a non-negative amount and the
    shares of each amount sum to one, so mass is conserved to float64 rounding and nothing
    goes negative at any dt; a pure decay is exact and a state fed at a constant rate reaches
    its exact steady state.
    Steps grow geometrically (from 0.005 h by 10 % up to 0.25 h, and at most 0.2 / the largest
    blood rate) and land exactly on every output time.

Host transfers: ``1 + len(agents)`` downloads per call (one of phantom sums at set-up, one of
ledgers and blood curves per agent at the end); no uploads, no round trips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from imagingsim.delivery.carriers import CarrierParams, carrier_parameters
from imagingsim.delivery.release import DrugParams, drug_parameters, release_rate_map
from imagingsim.delivery.result import DRUG_LEDGER_KEYS, LEDGER_KEYS, REGIONS, AgentDelivery, DeliveryResult
from imagingsim.phantom.model import TUMOUR_LABELS, Label, Phantom
from imagingsim.scenario import AgentSpec

LN2 = math.log(2.0)

FIRST_STEP_H = 0.005  # first solver step after each injection, h
STEP_GROWTH = 1.1  # geometric growth of the step
MAX_STEP_H = 0.25  # step cap, h
BLOOD_STEP_FRACTION = 0.2  # dt <= this / (largest first-order rate out of blood)
PASS_THROUGH_MIN_DECAY = 0.01  # see _Network.compile

BLOOD_DENSITY_G_PER_ML = 1.06  # whole blood (ICRP 89), for the "blood" region's mass
DIFFUSIBLE_REFERENCE_VB = 0.05  # "diffusible" access = v_b / 5 %, capped at 2 (carriers.toml)
DIFFUSIBLE_MAX_ACCESS = 2.0

#: Reference organ masses used for organs outside the field of view, fraction of body mass.
#: Mouse: Brown et al., Toxicol Ind Health 1997;13:407 (liver 5.49 %, kidneys 1.67 %, spleen
#: 0.35 %); marrow 2 % (check). Human: ICRP Publication 89 reference male (73 kg: liver
#: 1.8 kg, spleen 0.15 kg, kidneys 0.31 kg, red marrow 1.17 kg).
REFERENCE_ORGAN_MASS_FRACTION: dict[str, dict[str, float]] = {
    "mouse": {"liver": 0.0549, "spleen": 0.0035, "kidneys": 0.0167, "marrow": 0.020},
    "human": {"liver": 0.0247, "spleen": 0.0021, "kidneys": 0.0042, "marrow": 0.016},
}

#: Properties of lumped compartments: resting skeletal muscle (blood fraction ~3 %,
#: normal-vessel permeability ~1 % of a leaky tumour rim, glucose use ~0.1 of grey matter,
#: pH 7.4, pO2 ~40 mmHg) (check).
LUMPED_TISSUE: dict[str, float] = {
    "blood_volume_fraction": 0.03,
    "vessel_permeability": 0.01,
    "receptor_density_nM": 0.0,
    "glucose_metabolism": 0.1,
    "ph": 7.4,
    "po2_mmHg": 40.0,
    "density_g_per_ml": 1.05,
}

_REGION_LABELS: dict[str, tuple[int, ...]] = {
    "liver": (Label.LIVER,),
    "spleen": (Label.SPLEEN,),
    "kidneys": (Label.KIDNEY,),
    "marrow": (Label.BONE,),
    "tumour": tuple(TUMOUR_LABELS),
}
_ORGANS = ("liver", "spleen", "kidneys", "marrow")  # clearance destinations, lumped when absent
_MPS_ORGANS = ("liver", "spleen", "marrow")
_ENTRY_PROPERTIES = (
    "blood_volume_fraction",
    "vessel_permeability",
    "receptor_density_nM",
    "glucose_metabolism",
    "ph",
    "po2_mmHg",
)


# --- the body: tissue voxels compressed to one entry axis, plus lumped compartments --------


@dataclass(frozen=True, eq=False)
class _Body:
    """Non-air voxels gathered onto a 1-D entry axis, followed by the lumped compartments.

    Entries ``[0, n_voxels)`` are voxels; the rest are lumped compartments (one per absent
    organ, then ``outside_fov``). ``inverse`` maps every grid voxel to its entry, or to
    ``n_voxels`` (a zero pad) for air.
    """

    backend: Any
    shape: tuple[int, int, int]
    voxel_volume_ml: float
    blood_volume_ml: float
    n_voxels: int
    inverse: Any
    volume_ml: Any
    props: dict[str, Any]
    region_onehot: Any
    label_onehot: Any
    brain: Any
    lumped: tuple[str, ...]
    organ_weighting: dict[str, tuple[str, float]]
    access_sum: dict[tuple[str, bool], float]
    region_mass_g: dict[str, float]
    region_blood_ml: dict[str, float]
    label_mass_g: dict[int, float]
    label_blood_ml: dict[int, float]
    max_property: dict[str, float]

    def region(self, name: str):
        """Float indicator (0/1) of the entries belonging to ``name`` (voxels and lumped)."""
        return self.region_onehot[:, REGIONS.index(name)]

    def to_grid(self, values):
        """Scatter per-voxel entry values onto the image grid (air = 0)."""
        xp, be = self.backend.xp, self.backend
        padded = xp.concat([values[: self.n_voxels], xp.zeros((1,), dtype=xp.float64, device=be.device)])
        return xp.reshape(xp.take(padded, self.inverse), self.shape)


def _diffusible_access(xp, vb):
    return xp.minimum(vb / DIFFUSIBLE_REFERENCE_VB, DIFFUSIBLE_MAX_ACCESS)


def _phantom_sums(phantom: Phantom, backend) -> dict[str, float]:
    """Label counts and the phantom sums the solver needs on the host, in one download."""
    xp = backend.xp
    f64 = xp.float64
    labels = xp.reshape(phantom.labels, (-1,))
    vol = phantom.grid.voxel_volume_ml
    flat = {
        k: xp.reshape(phantom.properties[k], (-1,))
        for k in ("density_g_per_ml", "blood_volume_fraction", "vessel_permeability")
    }
    vb = flat["blood_volume_fraction"]
    tissue = xp.astype(labels != int(Label.AIR), f64)
    brain = xp.astype(labels == int(Label.BRAIN), f64)
    named: dict[str, Any] = {}
    for label in Label:
        mask = xp.astype(labels == int(label), f64)
        named[f"count_{label.value}"] = xp.sum(mask)
        named[f"label_mass_{label.value}"] = vol * xp.sum(flat["density_g_per_ml"] * mask)
        named[f"label_blood_{label.value}"] = vol * xp.sum(vb * mask)
    other = tissue
    for region, values in _REGION_LABELS.items():
        mask = xp.zeros_like(tissue)
        for value in values:
            mask = mask + xp.astype(labels == int(value), f64)
        other = other - mask
        named[f"mass_{region}"] = vol * xp.sum(flat["density_g_per_ml"] * mask)
        named[f"blood_{region}"] = vol * xp.sum(vb * mask)
    named["mass_other_tissue"] = vol * xp.sum(flat["density_g_per_ml"] * other)
    named["blood_other_tissue"] = vol * xp.sum(vb * other)
    # Extravasation capacity sum(access (1 - v_b) V) for both transports, with and without brain.
    for transport, access in (
        ("epr", flat["vessel_permeability"]),
        ("diffusible", _diffusible_access(xp, vb)),
    ):
        weight = access * (1.0 - vb) * vol
        named[f"access_{transport}_all"] = xp.sum(weight * tissue)
        named[f"access_{transport}_brain"] = xp.sum(weight * brain)
    # Host bounds of the maps that scale rates (non-negative maps: max over the body).
    for key in ("glucose_metabolism", "receptor_density_nM"):
        named[f"max_{key}"] = xp.max(xp.reshape(phantom.properties[key], (-1,)) * tissue)
    keys = list(named)
    host = backend.to_host(xp.stack([xp.asarray(named[k], dtype=f64, device=backend.device) for k in keys]))
    return dict(zip(keys, (float(v) for v in host.tolist())))


def _lumped_compartments(
    phantom: Phantom, sums: dict[str, float], present: dict[str, bool]
) -> dict[str, float]:
    """Masses (g) of the lumped compartments, in entry order: absent organs, then outside_fov."""
    fractions = REFERENCE_ORGAN_MASS_FRACTION[phantom.species]
    masses = {organ: fractions[organ] * phantom.body_mass_g for organ in _ORGANS if not present[organ]}
    fov_mass = sum(sums[f"mass_{r}"] for r in REGIONS if r != "outside_fov")
    # The rest of the body; clipped at 0 when the field of view holds the whole body.
    masses["outside_fov"] = max(0.0, phantom.body_mass_g - fov_mass - sum(masses.values()))
    return masses


def _compress(labels_flat, n_voxels: int, backend):
    """Indices of the non-air voxels (grid order) and the inverse map (air -> n_voxels)."""
    xp = backend.xp
    # A stable sort on "is air" puts the non-air voxels first without a data-dependent shape.
    order = xp.argsort(xp.astype(labels_flat == int(Label.AIR), xp.uint8), stable=True)
    position = xp.argsort(order, stable=True)
    pad = xp.asarray(n_voxels, dtype=position.dtype, device=backend.device)
    return order[:n_voxels], xp.where(position < n_voxels, position, pad)


def _label_onehot(entry_labels, n_lumped: int, backend):
    """(n_entries, len(Label)) 0/1 matrix: the label of every voxel entry (lumped rows 0)."""
    xp, dev, f64 = backend.xp, backend.device, backend.xp.float64
    voxels = xp.stack([xp.astype(entry_labels == int(label), f64) for label in Label], axis=1)
    return xp.concat([voxels, xp.zeros((n_lumped, len(Label)), dtype=f64, device=dev)], axis=0)


def _region_onehot(label_onehot, virtual: tuple[str, ...], backend):
    """(n_entries, len(REGIONS)) 0/1 matrix: the ledger region of every entry."""
    xp, dev, f64 = backend.xp, backend.device, backend.xp.float64
    region_of = {int(v): region for region, values in _REGION_LABELS.items() for v in values}
    label_to_region = [
        [
            float(label != Label.AIR and region_of.get(int(label), "other_tissue") == region)
            for region in REGIONS
        ]
        for label in Label
    ]
    regions = xp.matmul(label_onehot, xp.asarray(label_to_region, dtype=f64, device=dev))
    lumped = xp.asarray(
        [[float(region == name) for region in REGIONS] for name in virtual], dtype=f64, device=dev
    )
    n_voxels = label_onehot.shape[0] - len(virtual)
    return xp.concat([regions[:n_voxels, :], lumped], axis=0)


def _organ_weighting(sums, counts, present, vol) -> dict[str, tuple[str, float]]:
    """How each clearance organ's share is spread over its entries: (kind, normalising sum)."""
    weighting = {}
    for organ in _ORGANS:
        organ_volume = vol * sum(counts[Label(v)] for v in _REGION_LABELS[organ])
        if not present[organ]:
            weighting[organ] = ("lumped", 1.0)
        elif organ == "kidneys":
            weighting[organ] = ("volume", organ_volume)  # filtration per kidney volume
        elif sums[f"blood_{organ}"] > 0.0:
            weighting[organ] = ("blood", sums[f"blood_{organ}"])  # MPS uptake follows perfusion
        else:
            weighting[organ] = ("volume", organ_volume)  # no blood in the map there: by volume
    return weighting


def _access_sums(sums, lumped_volume_ml: float) -> dict[tuple[str, bool], float]:
    """sum(access (1 - v_b) V) over all entries, per (transport, crosses_bbb), mL."""
    vb = LUMPED_TISSUE["blood_volume_fraction"]
    lumped_access = {
        "epr": LUMPED_TISSUE["vessel_permeability"],
        "diffusible": min(vb / DIFFUSIBLE_REFERENCE_VB, DIFFUSIBLE_MAX_ACCESS),
    }
    out = {}
    for transport, access in lumped_access.items():
        total = sums[f"access_{transport}_all"] + access * (1.0 - vb) * lumped_volume_ml
        out[(transport, True)] = total
        out[(transport, False)] = max(0.0, total - sums[f"access_{transport}_brain"])
    return out


def _build_body(phantom: Phantom, backend) -> _Body:
    """Compress the phantom's non-air voxels and append the lumped compartments."""
    xp, dev, f64 = backend.xp, backend.device, backend.xp.float64
    sums = _phantom_sums(phantom, backend)
    vol = phantom.grid.voxel_volume_ml
    counts = {label: int(round(sums[f"count_{label.value}"])) for label in Label}
    n_voxels = phantom.grid.n_voxels - counts[Label.AIR]
    present = {organ: sum(counts[Label(v)] for v in _REGION_LABELS[organ]) > 0 for organ in _ORGANS}
    lumped_mass = _lumped_compartments(phantom, sums, present)
    virtual = tuple(lumped_mass)
    virtual_volume = [lumped_mass[name] / LUMPED_TISSUE["density_g_per_ml"] for name in virtual]

    labels = xp.reshape(phantom.labels, (-1,))
    index, inverse = _compress(labels, n_voxels, backend)

    def entries(voxel_values, lumped_values):
        return xp.concat([voxel_values, xp.asarray(lumped_values, dtype=f64, device=dev)])

    props = {
        key: entries(
            xp.take(xp.reshape(phantom.properties[key], (-1,)), index), [LUMPED_TISSUE[key]] * len(virtual)
        )
        for key in _ENTRY_PROPERTIES
    }
    label_onehot = _label_onehot(xp.take(labels, index), len(virtual), backend)

    region_mass = {r: sums.get(f"mass_{r}", 0.0) for r in REGIONS}
    region_blood = {r: sums.get(f"blood_{r}", 0.0) for r in REGIONS}
    for name, volume_ml in zip(virtual, virtual_volume):
        region_mass[name] += lumped_mass[name]
        region_blood[name] += LUMPED_TISSUE["blood_volume_fraction"] * volume_ml
    region_mass["blood"] = phantom.blood_volume_ml * BLOOD_DENSITY_G_PER_ML
    region_blood["blood"] = 0.0
    return _Body(
        backend=backend,
        shape=phantom.grid.shape,
        voxel_volume_ml=vol,
        blood_volume_ml=phantom.blood_volume_ml,
        n_voxels=n_voxels,
        inverse=inverse,
        volume_ml=entries(xp.full((n_voxels,), vol, dtype=f64, device=dev), virtual_volume),
        props=props,
        region_onehot=_region_onehot(label_onehot, virtual, backend),
        label_onehot=label_onehot,
        brain=label_onehot[:, list(Label).index(Label.BRAIN)],
        lumped=virtual[:-1],
        organ_weighting=_organ_weighting(sums, counts, present, vol),
        access_sum=_access_sums(sums, sum(virtual_volume)),
        region_mass_g=region_mass,
        region_blood_ml=region_blood,
        label_mass_g={int(label): sums[f"label_mass_{label.value}"] for label in Label if label != Label.AIR},
        label_blood_ml={
            int(label): sums[f"label_blood_{label.value}"] for label in Label if label != Label.AIR
        },
        max_property={
            key: max(sums[f"max_{key}"], LUMPED_TISSUE[key])
            for key in ("glucose_metabolism", "receptor_density_nM")
        },
    )


# --- a linear first-order compartment network on the entry axis --------------------------


@dataclass
class _Transfer:
    src: int
    dst: int
    rate: Any  # host float, or device array over entries
    weight: Any = None  # scalar source -> map destination: device distribution summing to 1
    frac: Any = None  # rate / (total outflow of src), set by compile


class _Network:
    """Linear compartments (scalars or per-entry maps) stepped by exponential splitting.

    A state is a scalar (0-d device array) or a map over the body entries. A transfer is a
    first-order rate from one state to another; from a scalar to a map it is distributed by
    a weight map summing to 1; from a map to a scalar it is summed over entries.
    """

    def __init__(self, xp):
        self.xp = xp
        self.names: list[str] = []
        self.is_map: list[bool] = []
        self.transfers: list[_Transfer] = []
        self.total_rate: list[Any] = []
        self.rate_bound: list[float] = []
        self.pass_through: list[bool] = []

    def state(self, name: str, is_map: bool) -> int:
        self.names.append(name)
        self.is_map.append(is_map)
        self.rate_bound.append(0.0)
        return len(self.names) - 1

    def flow(self, src: int, dst: int, rate, weight=None, *, bound: float | None = None) -> None:
        """Add the transfer ``src -> dst`` at ``rate`` (1/h).

        ``rate`` is a host float or a map over entries; a map needs ``bound``, a host upper
        bound of its values (it decides where the in-step pass-through is worth its cost).
        """
        if isinstance(rate, float):
            if rate == 0.0:
                return  # host-known zero: no work per step
            bound = rate
        elif bound is None:
            raise ValueError(
                f"transfer {self.names[src]} -> {self.names[dst]}: a rate map needs a host bound"
            )
        if bound == 0.0:
            return
        if self.is_map[dst] and not self.is_map[src] and weight is None:
            raise ValueError(f"transfer {self.names[src]} -> {self.names[dst]} needs a weight map")
        self.transfers.append(_Transfer(src, dst, rate, weight))
        self.rate_bound[src] += bound

    def compile(self, max_step_h: float) -> None:
        """Step-invariant parts: total outflow rates, each transfer's share, pass-through.

        The in-step pass-through costs a second pass over the transfers; it is used only for
        states whose fastest outflow drains more than ``PASS_THROUGH_MIN_DECAY`` of a step's
        arrivals (otherwise its first-order error, about half that fraction, is negligible).
        """
        xp = self.xp
        self.total_rate = [0.0] * len(self.names)
        for t in self.transfers:
            self.total_rate[t.src] = self.total_rate[t.src] + t.rate
        safe = [r if isinstance(r, float) else xp.where(r > 0.0, r, 1.0) for r in self.total_rate]
        for t in self.transfers:
            t.frac = t.rate / safe[t.src]
        self.pass_through = [bound * max_step_h > PASS_THROUGH_MIN_DECAY for bound in self.rate_bound]

    def factors(self, dt: float) -> "_Factors":
        """Step factors for a step of ``dt`` hours."""
        xp = self.xp
        stay, keep, leave, pass_on = [], [], [], []
        for rate, passing in zip(self.total_rate, self.pass_through):
            x = rate * dt
            if isinstance(rate, float):
                out = -math.expm1(-x)
                g = min(out / x, 1.0) if x > 0.0 else 1.0
                stay.append(math.exp(-x))
            else:
                out = -xp.expm1(-x)
                g = (
                    xp.minimum(xp.where(x > 0.0, out / xp.where(x > 0.0, x, 1.0), 1.0), 1.0)
                    if passing
                    else 1.0
                )
                stay.append(xp.exp(-x))
            leave.append(out)
            keep.append(g if passing else 1.0)
            pass_on.append(1.0 - g if passing else None)
        first, second = [], []
        for t in self.transfers:
            a = leave[t.src] * t.frac
            h = None if pass_on[t.src] is None else pass_on[t.src] * t.frac
            if t.weight is not None:
                a = a * t.weight
                h = None if h is None else h * t.weight
            first.append(a)
            second.append(h)
        return _Factors(stay=stay, keep=keep, first=first, second=second)

    def _move(self, amount, factor, t: _Transfer):
        """Mass moved along ``t`` from ``amount`` (of the source's shape) with ``factor``."""
        if self.is_map[t.src] and not self.is_map[t.dst]:
            if isinstance(factor, float):
                return self.xp.sum(amount) * factor
            return self.xp.vecdot(amount, factor)
        return amount * factor

    def step(self, values: list, f: "_Factors") -> list:
        """Advance all states by one step (returns new state values; inputs are not modified)."""
        n = len(values)
        inflow: list[Any] = [None] * n
        for t, a in zip(self.transfers, f.first):
            moved = self._move(values[t.src], a, t)
            inflow[t.dst] = moved if inflow[t.dst] is None else inflow[t.dst] + moved
        passed: list[Any] = [None] * n
        for t, h in zip(self.transfers, f.second):
            arrived = inflow[t.src]
            if arrived is None or h is None:
                continue
            moved = self._move(arrived, h, t)
            passed[t.dst] = moved if passed[t.dst] is None else passed[t.dst] + moved
        out = []
        for k in range(n):
            stay, keep = f.stay[k], f.keep[k]
            value = values[k] if isinstance(stay, float) and stay == 1.0 else values[k] * stay
            if inflow[k] is not None:
                value = value + (inflow[k] if isinstance(keep, float) and keep == 1.0 else inflow[k] * keep)
            if passed[k] is not None:
                value = value + passed[k]
            out.append(value)
        return out


@dataclass
class _Factors:
    stay: list
    keep: list
    first: list
    second: list


# --- one agent ------------------------------------------------------------------------------


@dataclass
class _AgentModel:
    """The compartment network of one agent and how to read its outputs."""

    network: _Network
    initial: list
    index: dict[str, int]
    max_step_h: float
    drug: DrugParams | None
    injection_time_h: float


def _blood_rates(carrier: CarrierParams, agent: AgentSpec, species: str) -> tuple[float, float]:
    """Renal and non-renal (MPS) elimination rates of carrier from blood, 1/h."""
    k_el = LN2 / carrier.blood_half_life_for(species)
    renal = k_el * carrier.effective_renal_share
    non_renal = k_el * (1.0 - carrier.effective_renal_share)
    if carrier.pegylated:
        non_renal *= carrier.abc_factor**agent.prior_peg_doses  # accelerated blood clearance
    return renal, non_renal


def _organ_weight(body: _Body, organ: str):
    """Distribution of an organ's clearance over its entries (sums to 1)."""
    mask = body.region(organ)
    kind, total = body.organ_weighting[organ]
    if kind == "lumped":
        return mask
    if kind == "volume":
        return mask * body.volume_ml / total
    return mask * body.volume_ml * body.props["blood_volume_fraction"] / total


@dataclass
class _CarrierRates:
    """Transfer rates of one carrier (1/h): host floats, or maps over entries with a bound."""

    k_ext: float  # blood -> E, total
    ext_weight: Any  # its distribution over entries (None when nothing can extravasate)
    renal: float  # blood -> K, total
    kidney_weight: Any
    non_renal: float  # blood -> B (MPS), total
    mps_weight: Any
    washout: float  # E -> blood
    uptake: Any  # E -> B
    uptake_bound: float
    release: Any  # B -> E
    release_bound: float
    degradation: Any  # B -> feces (MPS organs)
    degradation_bound: float
    renal_transit: float  # K -> urine

    @property
    def blood_total(self) -> float:
        return self.k_ext + self.renal + self.non_renal


def _carrier_rates(body: _Body, agent: AgentSpec, carrier: CarrierParams, species: str) -> _CarrierRates:
    """The carrier's rates on this body (see the module docstring for the model)."""
    xp, p = body.backend.xp, body.props
    vb = p["blood_volume_fraction"]
    renal, non_renal = _blood_rates(carrier, agent, species)

    # Extravasation: blood -> E, distributed as K_in(x) V(x) over the entries.
    access = p["vessel_permeability"] if carrier.transport == "epr" else _diffusible_access(xp, vb)
    if not carrier.crosses_bbb:
        access = access * (1.0 - body.brain)  # the blood-brain barrier holds it back
    capacity = body.access_sum[(carrier.transport, carrier.crosses_bbb)]
    k_ext = carrier.extravasation_per_h * capacity / body.blood_volume_ml
    ext_weight = access * (1.0 - vb) * body.volume_ml / capacity if capacity > 0.0 else None

    # MPS sequestration: liver / spleen / marrow shares, merged into one weighted transfer.
    shares = {"liver": carrier.liver_share, "spleen": carrier.spleen_share}
    shares["marrow"] = max(0.0, 1.0 - carrier.liver_share - carrier.spleen_share)
    mps_weight = sum(shares[o] * _organ_weight(body, o) for o in _MPS_ORGANS if shares[o] > 0.0)
    mps = body.region("liver") + body.region("spleen") + body.region("marrow")

    uptake = uptake_bound = carrier.cell_uptake_per_h
    if carrier.cell_uptake_map == "glucose":
        uptake = uptake * p["glucose_metabolism"]
        uptake_bound *= body.max_property["glucose_metabolism"]
    release = release_bound = carrier.cell_release_per_h
    if agent.targeting is not None:
        binding = agent.targeting.binding_rate_per_h_per_nM * p["receptor_density_nM"]
        # B is one pool: unbinding acts on its receptor-bound share, taken as the share of
        # cell association that is receptor driven, so receptor-free voxels are unaffected.
        receptor_share = binding / xp.where(uptake + binding > 0.0, uptake + binding, 1.0)
        uptake = uptake + binding
        uptake_bound += agent.targeting.binding_rate_per_h_per_nM * body.max_property["receptor_density_nM"]
        release = release + agent.targeting.unbinding_rate_per_h * receptor_share
        release_bound += agent.targeting.unbinding_rate_per_h
    degradation = carrier.mps_degradation_per_h
    return _CarrierRates(
        k_ext=k_ext,
        ext_weight=ext_weight,
        renal=renal,
        kidney_weight=_organ_weight(body, "kidneys") if renal > 0.0 else None,
        non_renal=non_renal,
        mps_weight=mps_weight,
        washout=carrier.washout_per_h,
        uptake=uptake,
        uptake_bound=uptake_bound,
        release=release * (1.0 - mps),  # macrophages do not re-release intact carrier
        release_bound=release_bound,
        degradation=degradation * mps if degradation > 0.0 else 0.0,
        degradation_bound=degradation,
        renal_transit=carrier.renal_transit_per_h,
    )


def _add_carrier_states(net: _Network, r: _CarrierRates, prefix: str, blood: int, urine: int, feces: int):
    """Tissue states E, B (and K) of carrier (prefix "") or encapsulated drug (prefix "P").

    The encapsulated drug uses the same transfers as its carrier, so every carrier flux also
    moves the source's drug at the source's drug/carrier ratio.
    """
    E = net.state(prefix + "E", True)
    B = net.state(prefix + "B", True)
    K = net.state(prefix + "K", True) if r.renal > 0.0 else None
    if r.ext_weight is not None:
        net.flow(blood, E, r.k_ext, r.ext_weight)
    if r.non_renal > 0.0:
        net.flow(blood, B, r.non_renal, r.mps_weight)
    net.flow(E, blood, r.washout)
    net.flow(E, B, r.uptake, bound=r.uptake_bound)
    net.flow(B, E, r.release, bound=r.release_bound)
    net.flow(B, feces, r.degradation, bound=r.degradation_bound)
    if K is not None:
        net.flow(blood, K, r.renal, r.kidney_weight)
        net.flow(K, urine, r.renal_transit)
    return E, B, K


def _add_payload(net: _Network, idx: dict, body: _Body, rates: _CarrierRates, agent: AgentSpec) -> DrugParams:
    """Encapsulated drug (following its carrier), release, and the released drug's fate."""
    xp, p = body.backend.xp, body.props
    drug = drug_parameters(agent.payload.drug)
    rel = agent.payload.release
    idx["Pb"] = net.state("Pb", False)
    idx["Pexc"] = net.state("Pexc", False)  # drug excreted inside its carrier
    idx["PE"], idx["PB"], idx["PK"] = _add_carrier_states(
        net, rates, "P", idx["Pb"], idx["Pexc"], idx["Pexc"]
    )
    idx["Fb"] = net.state("Fb", False)
    idx["F"] = net.state("F", True)
    idx["G"] = net.state("G", True)
    idx["elim"] = net.state("elim", False)
    tissue_release = release_rate_map(rel, p["ph"], p["po2_mmHg"], xp)
    release_bound = rel.baseline_rate_per_h + (rel.triggered_rate_per_h if rel.trigger != "none" else 0.0)
    net.flow(idx["Pb"], idx["Fb"], rel.baseline_rate_per_h)  # the trigger acts in tissue only
    for state in ("PE", "PB", "PK"):
        if idx[state] is not None:
            net.flow(idx[state], idx["F"], tissue_release, bound=release_bound)
    net.flow(idx["F"], idx["G"], drug.free_to_bound_per_h)
    net.flow(idx["G"], idx["F"], drug.bound_to_free_per_h)
    net.flow(idx["F"], idx["Fb"], drug.tissue_to_blood_per_h)
    net.flow(idx["Fb"], idx["elim"], drug.blood_elimination_per_h)
    return drug


def _build_model(
    body: _Body,
    agent: AgentSpec,
    carrier: CarrierParams,
    species: str,
    dose_ug: float,
    drug_ug: float,
    max_step_h: float,
) -> _AgentModel:
    """The agent's compartment network, its initial state and its step cap."""
    xp, dev = body.backend.xp, body.backend.device
    rates = _carrier_rates(body, agent, carrier, species)
    net = _Network(xp)
    idx: dict[str, int] = {name: net.state(name, False) for name in ("blood", "urine", "feces")}
    idx["E"], idx["B"], idx["K"] = _add_carrier_states(
        net, rates, "", idx["blood"], idx["urine"], idx["feces"]
    )
    blood_rate = rates.blood_total
    drug = None
    if agent.payload is not None:
        drug = _add_payload(net, idx, body, rates, agent)
        blood_rate += agent.payload.release.baseline_rate_per_h  # encapsulated drug leaves faster
    cap = min(max_step_h, BLOOD_STEP_FRACTION / blood_rate) if blood_rate > 0.0 else max_step_h
    net.compile(cap)

    n = body.volume_ml.shape[0]
    start = {"blood": dose_ug, "Pb": drug_ug}
    initial = [
        (
            xp.zeros((n,), dtype=xp.float64, device=dev)
            if is_map
            else xp.asarray(start.get(name, 0.0), dtype=xp.float64, device=dev)
        )
        for name, is_map in zip(net.names, net.is_map)
    ]
    return _AgentModel(net, initial, idx, cap, drug, agent.injection_time_h)


def solver_steps(
    targets_h: Sequence[float],
    *,
    first_step_h: float = FIRST_STEP_H,
    growth: float = STEP_GROWTH,
    max_step_h: float = MAX_STEP_H,
) -> list[tuple[float, float, int | None]]:
    """The solver's time steps: geometric growth to a cap, landing exactly on every target.

    Parameters
    ----------
    targets_h : sequence of float
        Strictly increasing output times after injection, h (all > 0).
    first_step_h : float
        First step, h.
    growth : float
        Factor by which each full step exceeds the previous one (>= 1).
    max_step_h : float
        Largest step, h.

    Returns
    -------
    list of (dt_h, tau_end_h, target_index or None)
        ``tau_end_h`` equals the target exactly on landing steps.
    """
    steps: list[tuple[float, float, int | None]] = []
    tau, dt = 0.0, min(first_step_h, max_step_h)
    for i, target in enumerate(targets_h):
        while True:
            remaining = target - tau
            if remaining <= dt * (1.0 + 1e-9):
                steps.append((remaining, target, i))
                tau = target
                break
            # Avoid a sliver before the target: split the last two steps evenly.
            step = remaining / 2.0 if remaining < 2.0 * dt else dt
            tau += step
            steps.append((step, tau, None))
            if step == dt:
                dt = min(dt * growth, max_step_h)
    return steps


class _Recorder:
    """Device snapshots of one agent at its output times, and its blood curve."""

    def __init__(self, body: _Body, model: _AgentModel):
        self.body, self.model = body, model
        self.has_drug = model.drug is not None
        names = ("carrier", "bound_carrier") + (("free_drug", "bound_drug") if self.has_drug else ())
        self.maps: dict[str, list] = {name: [] for name in names}
        self.ledgers: list = []
        self.drug_ledgers: list = []
        self.curve_h: list[float] = []
        self.curve: list = []

    def blood(self, tau_h: float, values: list) -> None:
        """One point of the blood curve (kept on the device until the end)."""
        self.curve_h.append(self.model.injection_time_h + tau_h)
        self.curve.append(values[self.model.index["blood"]])

    def zeros(self) -> None:
        """An output time before injection: everything is 0."""
        xp, dev, body = self.body.backend.xp, self.body.backend.device, self.body
        for maps in self.maps.values():
            maps.append(xp.zeros(body.shape, dtype=xp.float64, device=dev))
        self.ledgers.append(xp.zeros((len(LEDGER_KEYS) + len(Label),), dtype=xp.float64, device=dev))
        self.drug_ledgers.append(xp.zeros((len(DRUG_LEDGER_KEYS),), dtype=xp.float64, device=dev))

    def record(self, values: list) -> None:
        """Concentration maps and ledgers of the current state."""
        xp, body, idx = self.body.backend.xp, self.body, self.model.index
        vb = body.props["blood_volume_fraction"]
        per_ml = 1.0 / body.voxel_volume_ml

        def one(value):
            return xp.reshape(value, (1,))

        def total(*names):
            out = values[idx[names[0]]]
            for name in names[1:]:
                out = out + values[idx[name]] if idx[name] is not None else out
            return out

        tissue = total("E", "B", "K")
        blood = values[idx["blood"]]
        self.maps["carrier"].append(body.to_grid(vb * (blood / body.blood_volume_ml) + tissue * per_ml))
        self.maps["bound_carrier"].append(body.to_grid(values[idx["B"]] * per_ml))
        parts = [
            one(blood),
            xp.matmul(tissue, body.region_onehot),
            one(values[idx["urine"]]),
            one(values[idx["feces"]]),
        ]
        parts.append(xp.matmul(tissue, body.label_onehot))  # per label, for %ID/g by label
        self.ledgers.append(xp.concat(parts))
        if not self.has_drug:
            return
        free_blood, free, bound = values[idx["Fb"]], values[idx["F"]], values[idx["G"]]
        self.maps["free_drug"].append(body.to_grid(vb * (free_blood / body.blood_volume_ml) + free * per_ml))
        self.maps["bound_drug"].append(body.to_grid(bound * per_ml))
        encapsulated = xp.sum(total("PE", "PB", "PK"))
        parts = [
            values[idx["Pb"]],
            encapsulated,
            values[idx["Pexc"]],
            free_blood,
            xp.sum(free),
            xp.sum(bound),
            values[idx["elim"]],
        ]
        self.drug_ledgers.append(xp.concat([one(v) for v in parts]))

    def download(self) -> tuple[dict, dict, dict | None, list[float]]:
        """Ledger, per-label masses, drug ledger and blood curve (ug) in one download."""
        xp = self.body.backend.xp
        pieces = [xp.reshape(xp.stack(self.ledgers), (-1,)), xp.reshape(xp.stack(self.curve), (-1,))]
        if self.has_drug:
            pieces.append(xp.reshape(xp.stack(self.drug_ledgers), (-1,)))
        host = self.body.backend.to_host(xp.concat(pieces)).tolist()
        label_keys = tuple(int(label) for label in Label)
        n_rows = len(self.ledgers) * (len(LEDGER_KEYS) + len(label_keys))
        rows = _columns(host[:n_rows], LEDGER_KEYS + label_keys)
        ledger = {key: rows[key] for key in LEDGER_KEYS}
        by_label = {key: rows[key] for key in label_keys if key != int(Label.AIR)}
        curve = host[n_rows : n_rows + len(self.curve)]
        drug = _columns(host[n_rows + len(self.curve) :], DRUG_LEDGER_KEYS) if self.has_drug else None
        return ledger, by_label, drug, curve

    def stacked(self, name: str):
        """The (nx, ny, nz, T) device array of one map kind, or None when not simulated."""
        maps = self.maps.get(name)
        return self.body.backend.xp.stack(maps, axis=-1) if maps else None


def _columns(flat: list[float], keys: tuple) -> dict:
    """Split row-major (time, key) values into one tuple per key."""
    n = len(keys)
    return {key: tuple(flat[j::n]) for j, key in enumerate(keys)}


def _simulate_agent(
    body: _Body,
    phantom: Phantom,
    agent: AgentSpec,
    times_h: tuple[float, ...],
    *,
    max_step_h: float,
    first_step_h: float,
    growth: float,
) -> AgentDelivery:
    """Solve one agent's kinetics and package its outputs."""
    carrier = carrier_parameters(agent.carrier, agent.carrier_overrides)
    dose_ug = agent.dose_mg_per_kg * phantom.body_mass_g  # mg/kg * g = ug
    drug_ug = agent.payload.loading_mg_per_mg * dose_ug if agent.payload is not None else 0.0
    model = _build_model(body, agent, carrier, phantom.species, dose_ug, drug_ug, max_step_h)

    taus = [t - agent.injection_time_h for t in times_h]
    targets = [tau for tau in taus if tau > 0.0]
    recorder = _Recorder(body, model)
    values = model.initial
    for tau in taus[: len(taus) - len(targets)]:  # outputs before the first step
        if tau == 0.0:
            recorder.record(values)  # at the injection itself
        else:
            recorder.zeros()
    recorder.blood(0.0, values)
    cached_dt, factors = None, None
    for dt, tau_end, hit in solver_steps(
        targets, first_step_h=first_step_h, growth=growth, max_step_h=model.max_step_h
    ):
        if dt != cached_dt:  # factors change only on the ramp and around landings
            cached_dt, factors = dt, model.network.factors(dt)
        values = model.network.step(values, factors)
        recorder.blood(tau_end, values)
        if hit is not None:
            recorder.record(values)

    ledger, by_label, drug_ledger, curve = recorder.download()
    return AgentDelivery(
        agent=agent,
        carrier=carrier,
        times_h=times_h,
        injected_mass_ug=dose_ug,
        injected_drug_ug=drug_ug,
        carrier_ug_per_ml=recorder.stacked("carrier"),
        bound_carrier_ug_per_ml=recorder.stacked("bound_carrier"),
        free_drug_ug_per_ml=recorder.stacked("free_drug"),
        bound_drug_ug_per_ml=recorder.stacked("bound_drug"),
        blood_ug_per_ml=tuple(m / body.blood_volume_ml for m in ledger["blood"]),
        blood_curve_h=tuple(recorder.curve_h),
        blood_curve_ug_per_ml=tuple(m / body.blood_volume_ml for m in curve),
        ledger_ug=ledger,
        drug_ledger_ug=drug_ledger,
        region_mass_g=dict(body.region_mass_g),
        region_blood_ml=dict(body.region_blood_ml),
        blood_volume_ml=body.blood_volume_ml,
        label_extravascular_ug=by_label,
        label_mass_g=dict(body.label_mass_g),
        label_blood_ml=dict(body.label_blood_ml),
    )


def simulate_delivery(
    phantom: Phantom,
    agents: Sequence[AgentSpec],
    times_h: Sequence[float],
    backend,
    *,
    max_step_h: float = MAX_STEP_H,
    first_step_h: float = FIRST_STEP_H,
    step_growth: float = STEP_GROWTH,
) -> DeliveryResult:
    """Simulate the delivery of every agent into ``phantom`` and sample it at ``times_h``.

    Parameters
    ----------
    phantom : Phantom
        Labels and property maps on the device of ``backend``; ``species``, ``body_mass_g``
        (g) and ``blood_volume_ml`` (mL) set the whole-body scale.
    agents : sequence of AgentSpec
        Injected agents (independent linear kinetics).
    times_h : sequence of float
        Strictly increasing output times, hours after t = 0 (>= 0).
    backend : Backend
        Array backend of the phantom.
    max_step_h : float, optional
        Largest solver step, h (default 0.25; the blood rate may impose a smaller one).
    first_step_h : float, optional
        First solver step after each injection, h.
    step_growth : float, optional
        Geometric growth factor of the solver step.

    Returns
    -------
    DeliveryResult
        Concentration maps, blood curves and mass ledgers per agent.

    Notes
    -----
    Makes ``1 + len(agents)`` counted downloads and no uploads or round trips.
    """
    times = tuple(float(t) for t in times_h)
    if not times or any(t < 0.0 for t in times) or any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError(f"times_h must be non-empty, >= 0 and strictly increasing, got {times}")
    if not (max_step_h > 0.0 and first_step_h > 0.0 and step_growth >= 1.0):
        raise ValueError("max_step_h and first_step_h must be > 0 and step_growth >= 1")
    if phantom.species not in REFERENCE_ORGAN_MASS_FRACTION:
        raise ValueError(
            f"phantom.species must be one of {', '.join(REFERENCE_ORGAN_MASS_FRACTION)}, got {phantom.species!r}"
        )
    for agent in agents:
        if agent.payload is not None:
            drug_parameters(agent.payload.drug)  # fail before any work on an unknown drug
    body = _build_body(phantom, backend)
    deliveries = tuple(
        _simulate_agent(
            body, phantom, agent, times, max_step_h=max_step_h, first_step_h=first_step_h, growth=step_growth
        )
        for agent in agents
    )
    return DeliveryResult(agents=deliveries, times_h=times)


__all__ = ["FIRST_STEP_H", "MAX_STEP_H", "STEP_GROWTH", "simulate_delivery", "solver_steps"]
