"""Mass-conserving compartment kinetics of injected carriers and their payload.

Model (per agent; agents are independent: kinetics are linear and co-injected agents do not
compete for receptors, MPS capacity or renal filtration). Agent time is
``tau = t - injection_time_h``; everything is 0 before injection. Masses are in ug.

Carrier states
    ``blood``        whole-body circulating carrier (scalar); ``C_b = blood / blood_volume_ml``.
    ``E(x)``         extravascular free carrier in the interstitium of voxel x.
    ``B(x)``         cell-associated carrier: receptor-bound / internalised, and the carrier
                     sequestered by macrophages (liver, spleen, marrow and the rest of the body).
    ``K(x)``         renal transit in kidney voxels (only for renally cleared carriers).
    ``excreted_urine``, ``excreted_feces`` (scalars).
Transfers out of blood (first order, 1/h)
    extravasation blood -> E with ``K_in(x) = extravasation_per_h * s(d) * access(x) *
    (1 - v_b(x))`` per mL of tissue (flux ``K_in V C_b``; total rate ``k_ext = sum(K_in V) /
    blood_volume_ml``); ``access`` is the vessel permeability map (transport "epr") or
    ``min(v_b / 0.05, 2)`` (transport "diffusible"); 0 in BRAIN voxels unless the carrier
    crosses the blood-brain barrier; blood-pool voxels (v_b = 1) have no tissue. ``s(d)`` is
    the pore restriction of an "epr" carrier of hydrodynamic diameter d (Renkin hindrance
    in 500 nm tumour pores, 1 at 100 nm; :attr:`CarrierParams.epr_size_factor`), 1 for
    "diffusible".
    elimination ``k_el``: for transport "epr", ``blood_half_life_h`` is the observed initial
    blood half-life, so the total first-order loss is ``ln2 / t1/2 = k_ext + k_el`` and
    ``k_el = ln2 / t1/2 - k_ext`` (a carrier whose ``k_ext`` exceeds ``ln2 / t1/2`` on the
    phantom is refused). For "diffusible" agents (small molecules, FDG) ``t1/2`` is the
    elimination half-life, ``k_el = ln2 / t1/2``: their distribution into tissue is the fast
    alpha phase of the blood curve and comes on top.
    ``k_el`` splits into a renal part (``effective_renal_share``: to K in kidney voxels and
    on to urine at ``renal_transit_per_h``) and the non-renal (MPS) part, which PEGylated
    carriers multiply by ``abc_factor ** prior_peg_doses`` (accelerated blood clearance). ABC
    accelerates only that MPS part, so on a repeat dose the observed half-life is
    ``ln2 / (k_ext + k_renal + k_MPS abc_factor**n)``, shorter than the configured one.
    The MPS part goes to B: ``liver_share``, ``spleen_share`` and ``marrow_share`` to those
    organs (weighted by voxel volume x blood volume fraction; kidneys by voxel volume), the
    rest (``1 - liver - spleen - marrow``) to the macrophages of the rest of the body (skin,
    lung, muscle: the soft-tissue, fat and lung voxels and the lumped ``outside_fov``,
    weighted by volume x blood volume fraction). From liver, spleen and marrow B goes to
    feces at ``mps_degradation_per_h``. Macrophages do not re-release intact carrier: where
    they sequester it (MPS organs; the rest of the body when it takes a share), B does not
    return to E.
Tissue transfers
    E -> blood at ``washout_per_h``; E -> B at ``cell_uptake_per_h`` (times the glucose
    metabolism map when ``cell_uptake_map = "glucose"``) plus, with targeting,
    ``binding_rate_per_h_per_nM * receptor_density_nM``; B -> E at ``cell_release_per_h``
    (+ ``unbinding_rate_per_h`` times the receptor-driven share of cell association,
    ``k_on R / (k_on R + k_uptake)``, so a ligand changes nothing where there is no
    receptor) outside the macrophage stores.
Payload
    Encapsulated drug sits in every carrier state and moves with its carrier (each carrier
    transfer also moves drug at the same rate, so it carries the source's drug/carrier ratio).
    It is released at ``baseline_rate_per_h`` everywhere plus ``triggered_rate_per_h *
    trigger(x)`` in tissue (:mod:`imagingsim.delivery.release`: pH, hypoxia, protease
    activity). Released drug is free (F, in tissue; or in blood), binds in cells (G) and
    returns, leaves tissue for blood and is eliminated from blood, at the rates of
    ``data/drugs.toml``.
External fields (:mod:`imagingsim.delivery.agent_fields`)
    A heat or light trigger acts only while its source is on: the agent then has two
    networks of the same states, without and with the field's release rate ``k(x)``
    (:mod:`imagingsim.delivery.fields`, :mod:`imagingsim.delivery.light`), and the steps land
    on the window's start and end, so each step lies wholly inside or outside it. The field
    opens the carrier in tissue (PE, PB, PK -> F at ``k(x)``) and in the voxel's blood: the
    encapsulated drug in blood goes to the voxels' free drug at ``sum(v_b V k) /
    blood_volume_ml``, distributed by ``v_b V k``. Such an agent is not lumped; its step caps
    are those of the network with the field. A magnet (``AgentSpec.magnet``) multiplies the
    extravasation weight by ``1 + g f(x)`` (on top of the configured half-life, which is
    measured without a magnet) and divides the washout by it. ``cell_uptake_map =
    "macrophage"`` scales the cell uptake by the phantom's ``macrophage_fraction`` map.
Organs partly or wholly outside the field of view
    Each clearance organ (liver, spleen, kidneys, marrow) has a reference mass
    (:data:`REFERENCE_ORGAN_MASS_FRACTION` x ``body_mass_g``); the fraction of it inside the
    field of view is ``f = min(1, in-FOV mass / reference mass)``. The organ's voxels receive
    ``f`` of its clearance share and a lumped remainder of mass ``(1 - f)`` x reference the
    rest (all of it when the organ is absent). For the marrow the reference is the skeleton
    (bone with marrow, what the BONE label holds), so a skull in a head phantom gets only
    its share of the body's marrow. The rest of the body (``body_mass_g`` minus the phantom
    and the lumped remainders) is the lumped ``outside_fov`` compartment. The remainder of
    an organ partly in view has the mean properties of its voxels (so it holds as much per
    gram); an absent organ and ``outside_fov`` exchange like resting muscle (permeability
    0.01, blood fraction 0.03). Lumped compartments count under their organ (``outside_fov``
    under its own key) and close the ledger.

Numerical scheme (exponential splitting with in-step pass-through)
    Over a step dt, each state S with total outflow rate R (scalar or per voxel) loses
    ``S (1 - exp(-R dt))``, shared between its destinations in proportion to their rates; all
    these fluxes come from start-of-step values (Jacobi). A destination with outflow rate R'
    keeps of it what the two-stage (Bateman) solution leaves there at the end of the step,
    ``exp(-min(x, x')) phi(|x - x'|) / phi(x)`` with ``x = R dt``, ``x' = R' dt`` and
    ``phi(z) = (1 - e^-z) / z``; the rest is passed on along the destination's own shares
    within the step (only for states with R' dt > 0.01 at the largest step; elsewhere the
    error of skipping it is below 0.5 %). Every transfer is a non-negative share of a
    non-negative amount and the shares of each amount sum to one, so mass is conserved to
    float64 rounding and nothing goes negative at any dt; a pure decay and a two-state chain
    from start-of-step content are exact, and a state fed at a constant rate reaches its
    exact steady state.
    Steps grow geometrically (from 0.005 h by 10 % up to 0.25 h), rounded down to rungs
    ``0.005 h * 2^k`` below the cap (each step size costs a new set of factors over every
    voxel), and land exactly on every output time. While the injected bolus is in blood
    (the first ``ln(1e12)`` blood time constants, i.e. 40 half-lives, after which it is
    below 1e-12 of the dose) steps are at most 0.2 / the blood's outflow rate k_b. After that
    blood only holds what tissue washes back. Where blood is then quasi-steady within a step
    (``k_b dt >= 10`` at the relaxed step ``min(0.25 h, 0.2 / fastest tissue state refilling
    blood)``), which the scheme integrates exactly for a slowly varying inflow, the cap is
    relaxed: a repeat PEG dose or a tiny half-life costs a few hundred steps instead of
    millions. Diffusible agents (FDG, free drug) keep a large, fast-exchanging share in blood
    and keep ``0.2 / k_b`` throughout (relaxing to the tissue rate made FDG over 72 h 3x
    faster but 1-2 % off at 4 h; with the cap it is within 0.2 % of a 10x finer reference).
    A schedule needing more than :data:`MAX_SOLVER_STEPS` steps is refused with a ValueError
    naming the rate.
    The blood curve is kept at every output time and thinned in between (a point when 2 % of
    the time since injection or 1/1000 of the span has passed): at most ~2000 points.

Memory: one float64 vector per state over the non-air voxels (sorted by label, so a label's
voxels are one contiguous slice and per-label sums need no mask) or over the lumped entries,
plus the step factors.

Host transfers: ``1 + 2 len(agents)`` downloads per call (one of phantom sums at set-up; per
agent, the sizes of its groups of equal rates, which decide the lumping
(:mod:`imagingsim.delivery.lumping`), and one of ledgers and blood curves at the end); no uploads, no round trips.
An agent with a heat or light trigger downloads its field's blood-weighted sum and largest
rate instead of group sizes (it is not lumped); one with a magnet adds one download (its
magnet-weighted extravasation capacity).

Entries whose rates are all equal are lumped into one entry per group and input channel
(exact up to rounding, :mod:`imagingsim.delivery.lumping`) when that at least halves the
entries: a phantom with label-wise rates steps a handful of entries.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from imagingsim import progress
from imagingsim.data.carriers import CarrierParams, carrier_parameters
from imagingsim.data.drugs import DrugParams, drug_parameters
from imagingsim.delivery.agent_fields import AgentFields, agent_fields
from imagingsim.delivery.body import (
    MPS_ORGANS,
    REFERENCE_ORGAN_MASS_FRACTION,
    REGION_LABELS,
    REST_LABELS,
    Body,
    build_body,
    diffusible_access,
)
from imagingsim.delivery.lumping import Lumping, lump
from imagingsim.delivery.network import Network
from imagingsim.delivery.release import release_rate_map
from imagingsim.delivery.result import DRUG_LEDGER_KEYS, LEDGER_KEYS, AgentDelivery, DeliveryResult
from imagingsim.phantom.model import Label, Phantom
from imagingsim.scenario import AgentSpec

LN2 = math.log(2.0)

FIRST_STEP_H = 0.005  # first solver step after each injection, h
STEP_GROWTH = 1.1  # geometric growth of the step
#: Steps below the cap are the ramp rounded down to first_step_h * 2^k: the default subject's
#: network is made for 9 step sizes instead of 45, each set of factors costing ~10 steps' work.
STEP_RUNG_RATIO = 2.0
MAX_STEP_H = 0.25  # step cap, h
BLOOD_STEP_FRACTION = 0.2  # dt <= this / (largest first-order rate out of blood), see module doc
QUASI_STEADY_BLOOD_DECAYS = 10.0  # k_b dt above which blood is quasi-steady within a step
BOLUS_TIME_CONSTANTS = math.log(1e12)  # bolus left in blood after this many 1/k_b: < 1e-12
MAX_SOLVER_STEPS = 200_000  # refuse schedules needing more (FDG over 72 h needs ~24 000)
CURVE_RELATIVE_SPACING = 0.02  # blood curve: keep a step when 2 % of tau has passed ...
CURVE_LINEAR_POINTS = 1000  # ... or 1/1000 of the agent's time span (bounded size)


# --- one agent ------------------------------------------------------------------------------


@dataclass
class _AgentModel:
    """The compartment network of one agent and how to read its outputs."""

    network: Network
    initial: list
    index: dict[str, int]
    caps: tuple[tuple[float, float], ...]  # (tau until which the cap applies, cap), h
    cap_reason: tuple[str, ...]  # what sets each cap, for the error message
    drug: DrugParams | None
    injection_time_h: float
    lumping: dict[int, Lumping]  # map states on lumped entries (see lumping.py), by index
    #: The network while an external field (heat, light) is on, and when, in agent time
    #: (``(start_tau_h, end_tau_h)``); None for agents without a windowed trigger.
    network_on: Network | None = None
    window_tau_h: tuple[float, float] | None = None

    def phase_network(self, phase: int) -> Network:
        """The network of phase 0 (no field on) or 1 (the field on)."""
        return self.network_on if phase == 1 else self.network

    def entries(self, values: list) -> list:
        """The state values with every map over the body's entries."""
        if not self.lumping:
            return values
        return [self.lumping[k].expand(v) if k in self.lumping else v for k, v in enumerate(values)]


@dataclass
class _CarrierRates:
    """Transfer rates of one carrier (1/h): host floats, or maps over entries with a bound."""

    k_ext: float  # blood -> E, total
    ext_weight: Any  # its distribution over entries (None when nothing can extravasate)
    renal: float  # blood -> K, total
    kidney_weight: Any
    non_renal: float  # blood -> B (MPS), total
    mps_weight: Any
    washout: Any  # E -> blood (a map with a magnet)
    uptake: Any  # E -> B
    uptake_bound: float
    release: Any  # B -> E
    release_bound: float
    degradation: Any  # B -> feces (MPS organs)
    degradation_bound: float
    renal_transit: float  # K -> urine
    washout_bound: float = 0.0  # host bound of washout when it is a map

    @property
    def blood_total(self) -> float:
        return self.k_ext + self.renal + self.non_renal


def _organ_weight(body: Body, organ: str):
    """Distribution of an organ's clearance over its entries (sums to 1).

    Its voxels get the in-FOV fraction ``f`` (by volume x blood fraction, kidneys by volume),
    the lumped remainder ``1 - f``.
    """
    f = body.organ_fraction[organ]
    kind, total = body.organ_weighting[organ]
    weight = None
    if f > 0.0:
        mask = body.indicator(REGION_LABELS[organ])
        per_entry = body.volume_ml if kind == "volume" else body.volume_ml * body.props["blood_volume_fraction"]
        weight = mask * per_entry * (f / total)
    if f < 1.0:
        remainder = body.indicator(lumped=(organ,)) * (1.0 - f)
        weight = remainder if weight is None else weight + remainder
    return weight


def _rest_weight(body: Body):
    """Distribution of the rest-of-body macrophage clearance (volume x blood fraction)."""
    mask = body.indicator(REST_LABELS, ("outside_fov",))
    return mask * body.volume_ml * body.props["blood_volume_fraction"] * (1.0 / body.rest_blood_ml)


def _blood_rates(
    body: Body, agent: AgentSpec, carrier: CarrierParams, species: str, where: str
) -> tuple[float, float, float]:
    """Extravasation, renal and non-renal (MPS) rates of carrier out of blood, 1/h.

    See the module docstring: for "epr" carriers the configured half-life is the observed
    one, so extravasation is part of ``ln2 / t1/2``; for "diffusible" ones it comes on top.
    """
    half_life = carrier.blood_half_life_for(species)
    k_total = LN2 / half_life
    capacity = body.access_sum[(carrier.transport, carrier.crosses_bbb)]
    k_ext = carrier.extravasation_per_h * carrier.epr_size_factor * capacity / body.blood_volume_ml
    if carrier.transport == "epr":
        if k_ext > k_total:
            raise ValueError(
                f"{where}.carrier: {agent.carrier} extravasates at {k_ext:.4g}/h on this phantom, more than "
                f"its whole blood loss ln2/blood_half_life_h = {k_total:.4g}/h (t1/2 {half_life:g} h, "
                f"{species}); lower extravasation_per_h or blood_half_life_h_{species}"
            )
        k_el = k_total - k_ext
    else:
        k_el = k_total
    renal = k_el * carrier.effective_renal_share
    non_renal = k_el * (1.0 - carrier.effective_renal_share)
    if carrier.pegylated:
        non_renal *= carrier.abc_factor**agent.prior_peg_doses  # accelerated blood clearance
    return k_ext, renal, non_renal


def _carrier_rates(
    body: Body, agent: AgentSpec, carrier: CarrierParams, species: str, where: str, fields: AgentFields | None = None
) -> _CarrierRates:
    """The carrier's rates on this body (see the module docstring for the model)."""
    xp, p = body.backend.xp, body.props
    vb = p["blood_volume_fraction"]
    k_ext, renal, non_renal = _blood_rates(body, agent, carrier, species, where)

    # Extravasation: blood -> E, distributed as K_in(x) V(x) over the entries.
    access = p["vessel_permeability"] if carrier.transport == "epr" else diffusible_access(xp, vb)
    if not carrier.crosses_bbb:
        access = access * (1.0 - body.indicator((Label.BRAIN,)))  # the blood-brain barrier
    capacity = body.access_sum[(carrier.transport, carrier.crosses_bbb)]
    ext_weight = access * (1.0 - vb) * body.volume_ml / capacity if k_ext > 0.0 else None
    k_ext = k_ext if ext_weight is not None else 0.0
    washout, washout_bound = carrier.washout_per_h, carrier.washout_per_h
    if fields is not None and fields.magnet_gain is not None and ext_weight is not None:
        # The magnet's pull adds to extravasation on top of the configured half-life (measured
        # without a magnet) and holds extravasated carrier back from the vessels.
        pulled = ext_weight * fields.magnet_gain
        pulled_sum = float(body.backend.to_host(xp.sum(pulled)))
        k_ext = k_ext * pulled_sum
        ext_weight = pulled / pulled_sum
        washout = washout / fields.magnet_gain

    # MPS sequestration: liver / spleen / marrow / rest-of-body shares, one weighted transfer.
    shares = {"liver": carrier.liver_share, "spleen": carrier.spleen_share, "marrow": carrier.marrow_share}
    rest = carrier.rest_share
    if rest > 0.0 and not body.rest_blood_ml > 0.0:
        shares["liver"] += rest  # no tissue for it (a field of view without body): the liver takes it
        rest = 0.0
    mps_weight = None
    if non_renal > 0.0:
        parts = [shares[o] * _organ_weight(body, o) for o in MPS_ORGANS if shares[o] > 0.0]
        if rest > 0.0:
            parts.append(rest * _rest_weight(body))
        mps_weight = parts[0]
        for part in parts[1:]:
            mps_weight = mps_weight + part
    mps = body.region("liver") + body.region("spleen") + body.region("marrow")
    # Macrophages keep what they take up: no B -> E where they sequester carrier.
    sequestering = mps
    if rest > 0.0 and non_renal > 0.0:
        sequestering = mps + body.indicator(REST_LABELS, ("outside_fov",))

    uptake = uptake_bound = carrier.cell_uptake_per_h
    if carrier.cell_uptake_map == "glucose":
        uptake = uptake * p["glucose_metabolism"]
        uptake_bound *= body.max_property["glucose_metabolism"]
    elif carrier.cell_uptake_map == "macrophage":
        if fields is None or fields.macrophage is None:
            raise ValueError(
                f"{where}.carrier: {agent.carrier} is taken up by macrophages and needs the phantom's "
                "macrophage map: set phantom.tumours[n].macrophage_fraction"
            )
        uptake = uptake * fields.macrophage
        uptake_bound *= fields.macrophage_bound
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
        washout=washout,
        uptake=uptake,
        uptake_bound=uptake_bound,
        release=release * (1.0 - sequestering),
        release_bound=release_bound,
        degradation=degradation * mps if degradation > 0.0 else 0.0,
        degradation_bound=degradation,
        renal_transit=carrier.renal_transit_per_h,
        washout_bound=washout_bound,
    )


def _add_carrier_states(net: Network, r: _CarrierRates, prefix: str, blood: int, urine: int, feces: int):
    """Tissue states E, B (and K) of carrier (prefix "") or encapsulated drug (prefix "P").

    The encapsulated drug uses the same transfers as its carrier, so every carrier flux also
    moves the source's drug at the source's drug/carrier ratio.
    """
    E = net.state(prefix + "E", True)
    B = net.state(prefix + "B", True)
    K = net.state(prefix + "K", True) if r.renal > 0.0 else None
    if r.ext_weight is not None:
        net.flow(blood, E, r.k_ext, r.ext_weight)
    if r.mps_weight is not None:
        net.flow(blood, B, r.non_renal, r.mps_weight)
    net.flow(E, blood, r.washout, bound=r.washout_bound)
    net.flow(E, B, r.uptake, bound=r.uptake_bound)
    net.flow(B, E, r.release, bound=r.release_bound)
    net.flow(B, feces, r.degradation, bound=r.degradation_bound)
    if K is not None:
        net.flow(blood, K, r.renal, r.kidney_weight)
        net.flow(K, urine, r.renal_transit)
    return E, B, K


def _add_payload(
    net: Network,
    idx: dict,
    body: Body,
    rates: _CarrierRates,
    agent: AgentSpec,
    fields: AgentFields | None = None,
    field_on: bool = False,
) -> DrugParams:
    """Encapsulated drug (following its carrier), release, and the released drug's fate.

    With ``field_on`` (the network of a heat or light trigger's window) the field's release
    rate ``k(x)`` (:class:`~imagingsim.delivery.agent_fields.AgentFields`) acts on the drug in
    carrier in tissue and in the voxel's blood.
    """
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
    protease = fields.protease if fields is not None else None
    tissue_release = release_rate_map(rel, p["ph"], p["po2_mmHg"], xp, protease)
    if fields is not None and fields.window_tau_h is not None:
        release_bound = rel.baseline_rate_per_h + fields.field_rate_bound  # both phases: one bound
    else:
        release_bound = rel.baseline_rate_per_h + (rel.triggered_rate_per_h if rel.trigger != "none" else 0.0)
    if field_on:
        tissue_release = tissue_release + fields.field_rate
    net.flow(idx["Pb"], idx["Fb"], rel.baseline_rate_per_h)  # the trigger acts in tissue only
    for state in ("PE", "PB", "PK"):
        if idx[state] is not None:
            net.flow(idx[state], idx["F"], tissue_release, bound=release_bound)
    if field_on and fields.blood_release_ml_per_h > 0.0:
        # A field also opens the carrier in the blood of the voxels it reaches: of the whole
        # blood pool, sum(v_b V k) / blood_volume_ml per hour, joining those voxels' free drug.
        rate = fields.blood_release_ml_per_h / body.blood_volume_ml
        net.flow(idx["Pb"], idx["F"], rate, fields.blood_release_weight)
    net.flow(idx["F"], idx["G"], drug.free_to_bound_per_h)
    net.flow(idx["G"], idx["F"], drug.bound_to_free_per_h)
    net.flow(idx["F"], idx["Fb"], drug.tissue_to_blood_per_h)
    net.flow(idx["Fb"], idx["elim"], drug.blood_elimination_per_h)
    return drug


def _step_caps(
    net: Network, idx: dict, max_step_h: float
) -> tuple[tuple[tuple[float, float], ...], tuple[str, ...]]:
    """Step caps: the bolus phase, then the rest of the schedule.

    Returns ``((tau_until_h, cap_h), ...)`` and what sets each cap. While the bolus is in
    blood, ``dt <= 0.2 / k_b``. After it, the blood only holds what tissue washes back; the
    cap is relaxed to ``0.2 / (fastest tissue state refilling blood)`` (or the step cap) only
    where blood is then quasi-steady within a step, ``k_b dt >= QUASI_STEADY_BLOOD_DECAYS``:
    the scheme integrates it exactly for a slowly varying inflow. Otherwise (diffusible
    agents: FDG, free drug, whose fast blood-tissue exchange keeps a large share in blood)
    ``0.2 / k_b`` holds throughout. Only the circulating carrier and its encapsulated drug
    count as blood here: free drug in blood never re-enters tissue.
    """
    bloods = [idx["blood"]] + ([idx["Pb"]] if "Pb" in idx else [])
    blood_rate = max(net.rate_bound[b] for b in bloods)
    if not (blood_rate > 0.0 and BLOOD_STEP_FRACTION / blood_rate < max_step_h):
        return ((math.inf, max_step_h),), (f"the step cap {max_step_h:g} h",)
    blood_cap = BLOOD_STEP_FRACTION / blood_rate
    blood_reason = f"the blood clearance rate {blood_rate:.4g}/h"
    feeders = {t.src for t in net.transfers if t.dst in bloods and net.is_map[t.src]}
    feed_rate = max((net.rate_bound[s] for s in feeders), default=0.0)
    later_cap = min(max_step_h, BLOOD_STEP_FRACTION / feed_rate) if feed_rate > 0.0 else max_step_h
    if blood_rate * later_cap < QUASI_STEADY_BLOOD_DECAYS:
        return ((math.inf, blood_cap),), (blood_reason,)
    if later_cap < max_step_h:
        later_reason = f"the tissue-to-blood exchange rate {feed_rate:.4g}/h"
    else:
        later_reason = f"the step cap {max_step_h:g} h"
    return ((BOLUS_TIME_CONSTANTS / blood_rate, blood_cap), (math.inf, later_cap)), (blood_reason, later_reason)


def _build_model(
    body: Body,
    agent: AgentSpec,
    carrier: CarrierParams,
    species: str,
    dose_ug: float,
    drug_ug: float,
    max_step_h: float,
    where: str,
    fields: AgentFields | None = None,
) -> _AgentModel:
    """The agent's compartment network, its initial state and its step caps.

    An agent with a windowed trigger (heat, light) gets two networks of the same states,
    without and with the field; it is not lumped (the field makes its rates voxel-wise) and
    its step caps are those of the network with the field (the faster one).
    """
    xp, dev = body.backend.xp, body.backend.device
    rates = _carrier_rates(body, agent, carrier, species, where, fields)

    def network(field_on: bool) -> tuple[Network, dict[str, int], DrugParams | None]:
        net = Network(xp)
        idx: dict[str, int] = {name: net.state(name, False) for name in ("blood", "urine", "feces")}
        idx["E"], idx["B"], idx["K"] = _add_carrier_states(
            net, rates, "", idx["blood"], idx["urine"], idx["feces"]
        )
        drug = None
        if agent.payload is not None:
            drug = _add_payload(net, idx, body, rates, agent, fields, field_on)
        return net, idx, drug

    net, idx, drug = network(False)
    window = fields.window_tau_h if fields is not None else None
    net_on = None
    if window is None:
        lumped = lump(net, body.n_entries, body.backend)
        net, lumping = lumped if lumped is not None else (net, {})
        caps, reasons = _step_caps(net, idx, max_step_h)
    else:
        net_on, _, _ = network(True)
        lumping = {}
        caps, reasons = _step_caps(net_on, idx, max_step_h)
        net_on.compile(max(cap for _, cap in caps))
    net.compile(max(cap for _, cap in caps))

    start = {"blood": dose_ug, "Pb": drug_ug}
    initial = [
        (
            xp.zeros((lumping[k].n_entries if k in lumping else body.n_entries,), dtype=xp.float64, device=dev)
            if is_map
            else xp.asarray(start.get(name, 0.0), dtype=xp.float64, device=dev)
        )
        for k, (name, is_map) in enumerate(zip(net.names, net.is_map))
    ]
    return _AgentModel(net, initial, idx, caps, reasons, drug, agent.injection_time_h, lumping, net_on, window)


def _phase(model: _AgentModel, tau_h: float) -> int:
    """1 while the agent's field is on at agent time ``tau_h`` (a step's midpoint), else 0."""
    window = model.window_tau_h
    return 1 if window is not None and window[0] < tau_h < window[1] else 0


class TooManyStepsError(ValueError):
    """A schedule would need more than the allowed number of solver steps."""


def solver_steps(
    targets_h: Sequence[float],
    *,
    first_step_h: float = FIRST_STEP_H,
    growth: float = STEP_GROWTH,
    max_step_h: float = MAX_STEP_H,
    caps: Sequence[tuple[float, float]] = (),
    max_steps: int | None = None,
    rung_ratio: float | None = STEP_RUNG_RATIO,
) -> list[tuple[float, float, int | None]]:
    """The solver's time steps: geometric growth to a cap, landing exactly on every target.

    The ramp ``dt`` grows by ``growth`` per full step; the step taken is ``dt`` rounded
    down to a rung ``s0 rung_ratio^k`` (``s0`` the step the ramp started from: the first
    step, or a cap it grew from) and is ``dt`` itself at a cap. Each new step size costs a
    new set of step factors over every entry, about as much work as ten steps: on rungs of
    2 the default subject needs 9 sizes (with its landings) where a step every 10 % longer
    needs 45. Steps on rungs are never longer than the ramp; against a reference with 8x
    finer steps their error is within 5 % of the ramp's on every built-in scenario, and
    they move the maps by at most a fifth of that error
    (``tests/delivery/test_solver_equivalence.py``).

    Parameters
    ----------
    targets_h : sequence of float
        Strictly increasing output times after injection, h (all > 0).
    first_step_h : float
        First step, h (reduced to the first cap when that is smaller).
    growth : float
        Factor by which each full step exceeds the previous one (>= 1).
    max_step_h : float
        Largest step, h.
    caps : sequence of (float, float), optional
        ``(tau_until_h, cap_h)`` in increasing ``tau_until_h``: a step starting before
        ``tau_until_h`` is at most ``cap_h`` (the first matching entry applies); after the
        last entry, ``max_step_h``.
    max_steps : int, optional
        Raise :class:`TooManyStepsError` instead of making more steps than this.
    rung_ratio : float or None, optional
        Ratio of successive rungs (> 1); ``None`` takes the ramp itself, a new size every
        step (the solver's step control before the rungs).

    Returns
    -------
    list of (dt_h, tau_end_h, target_index or None)
        ``tau_end_h`` equals the target exactly on landing steps.
    """

    def cap_at(tau: float) -> float:
        for until, cap in caps:
            if tau < until:
                return min(cap, max_step_h)
        return max_step_h

    if rung_ratio is not None and not rung_ratio > 1.0:
        raise ValueError(f"rung_ratio must be > 1 or None, got {rung_ratio}")
    steps: list[tuple[float, float, int | None]] = []
    tau, dt = 0.0, min(first_step_h, cap_at(0.0))
    size = dt  # the step taken: dt on its rung (<= dt)
    for i, target in enumerate(targets_h):
        while True:
            if max_steps is not None and len(steps) >= max_steps:
                raise TooManyStepsError(f"more than {max_steps} solver steps to reach {targets_h[-1]:g} h")
            cap = cap_at(tau)
            dt = min(dt, cap)
            size = dt if rung_ratio is None or dt == cap else min(size, dt)
            remaining = target - tau
            if remaining <= size * (1.0 + 1e-9):
                steps.append((remaining, target, i))
                tau = target
                break
            # Avoid a sliver before the target: split the last two steps evenly.
            step = remaining / 2.0 if remaining < 2.0 * size else size
            tau += step
            steps.append((step, tau, None))
            if step == size:
                dt = min(dt * growth, cap_at(tau))
                while rung_ratio is not None and size * rung_ratio <= dt:
                    size *= rung_ratio
    return steps


class _Recorder:
    """Device snapshots of one agent at its output times, and its (thinned) blood curve."""

    def __init__(self, body: Body, model: _AgentModel, span_h: float):
        self.body = body
        self.index, self.injection_time_h = model.index, model.injection_time_h  # not the network
        self.has_drug = model.drug is not None
        names = ("carrier", "bound_carrier") + (
            ("free_drug", "bound_drug", "encapsulated_drug") if self.has_drug else ()
        )
        self.maps: dict[str, list] = {name: [] for name in names}
        self.ledgers: list = []
        self.drug_ledgers: list = []
        self.curve_h: list[float] = []
        self.curve: list = []
        self.curve_gap_h = span_h / CURVE_LINEAR_POINTS
        self.last_tau_h = -math.inf

    def blood(self, tau_h: float, values: list, *, force: bool = False) -> None:
        """One point of the blood curve (kept on the device until the end).

        Points closer than ``min(2 % of tau, span / 1000)`` to the previous one are skipped
        (unless ``force``), which bounds the curve to ~2000 points and keeps the early
        fast part resolved.
        """
        gap = min(CURVE_RELATIVE_SPACING * tau_h, self.curve_gap_h)
        if not force and tau_h - self.last_tau_h < gap:
            return
        self.last_tau_h = tau_h
        self.curve_h.append(self.injection_time_h + tau_h)
        self.curve.append(values[self.index["blood"]])

    def zeros(self) -> None:
        """An output time before injection: everything is 0."""
        xp, dev, body = self.body.backend.xp, self.body.backend.device, self.body
        for maps in self.maps.values():
            maps.append(xp.zeros(body.shape, dtype=xp.float64, device=dev))
        self.ledgers.append(xp.zeros((len(LEDGER_KEYS) + len(Label),), dtype=xp.float64, device=dev))
        self.drug_ledgers.append(xp.zeros((len(DRUG_LEDGER_KEYS) + 1,), dtype=xp.float64, device=dev))

    def record(self, values: list) -> None:
        """Concentration maps and ledgers of the current state."""
        xp, body, idx = self.body.backend.xp, self.body, self.index
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
        by_label = body.label_sums(tissue)
        parts = [
            one(blood),
            body.region_sums(tissue, by_label),
            one(values[idx["urine"]]),
            one(values[idx["feces"]]),
            by_label,  # per label, for %ID/g by label
        ]
        self.ledgers.append(xp.concat(parts))
        if not self.has_drug:
            return
        enc_blood, free_blood = values[idx["Pb"]], values[idx["Fb"]]
        encapsulated, free, bound = total("PE", "PB", "PK"), values[idx["F"]], values[idx["G"]]
        self.maps["free_drug"].append(body.to_grid(vb * (free_blood / body.blood_volume_ml) + free * per_ml))
        self.maps["bound_drug"].append(body.to_grid(bound * per_ml))
        self.maps["encapsulated_drug"].append(
            body.to_grid(vb * (enc_blood / body.blood_volume_ml) + encapsulated * per_ml)
        )
        lumped = slice(body.n_voxels, body.n_entries)
        parts = [
            enc_blood,
            xp.sum(encapsulated),
            values[idx["Pexc"]],
            free_blood,
            xp.sum(free),
            xp.sum(bound),
            values[idx["elim"]],
            xp.sum(encapsulated[lumped] + free[lumped] + bound[lumped]),  # outside the voxels
        ]
        self.drug_ledgers.append(xp.concat([one(v) for v in parts]))

    def download(self) -> tuple[dict, dict, dict | None, tuple | None, list[float]]:
        """Ledger, per-label masses, drug ledger, lumped drug and blood curve (ug), one download."""
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
        drug, lumped_drug = None, None
        if self.has_drug:
            drug = _columns(host[n_rows + len(self.curve) :], DRUG_LEDGER_KEYS + ("lumped",))
            lumped_drug = drug.pop("lumped")
        return ledger, by_label, drug, lumped_drug, curve

    def stacked(self, name: str):
        """The (nx, ny, nz, T) device array of one map kind, or None when not simulated.

        Hands the snapshots over: they are dropped once stacked, so stacking the kinds one
        after the other holds one kind twice at most, not every output.
        """
        maps = self.maps.pop(name, None)
        return self.body.backend.xp.stack(maps, axis=-1) if maps else None


def _columns(flat: list[float], keys: tuple) -> dict:
    """Split row-major (time, key) values into one tuple per key."""
    n = len(keys)
    return {key: tuple(flat[j::n]) for j, key in enumerate(keys)}


def _linear_step(network, dt: float):
    """The solver's step of ``dt`` hours as one linear map (:meth:`Network.linear_step`)."""
    return network.linear_step(network.factors(dt))


def _phase_linear_step(model: _AgentModel, key: tuple[int, float]):
    """The step ``(phase, dt)``: of the network without (0) or with (1) the field on."""
    phase, dt = key
    return _linear_step(model.phase_network(phase), dt)


def _with_window(targets: list[float], window: tuple[float, float] | None) -> list[float]:
    """The output times plus the window's start and end inside them, which steps must land on."""
    if window is None or not targets:
        return targets
    inside = [b for b in window if 0.0 < b < targets[-1]]
    return sorted(set(targets) | set(inside))


def _simulate_agent(
    body: Body,
    phantom: Phantom,
    agent: AgentSpec,
    position: int,
    times_h: tuple[float, ...],
    *,
    max_step_h: float,
    first_step_h: float,
    growth: float,
    rung_ratio: float | None,
) -> AgentDelivery:
    """Solve one agent's kinetics and package its outputs."""
    where = f"agents[{position}]"
    carrier = carrier_parameters(agent.carrier, agent.carrier_overrides)
    dose_ug = agent.dose_mg_per_kg * phantom.body_mass_g  # mg/kg * g = ug
    drug_ug = agent.payload.loading_mg_per_mg * dose_ug if agent.payload is not None else 0.0
    fields = agent_fields(body, phantom, agent, carrier, where)
    model = _build_model(body, agent, carrier, phantom.species, dose_ug, drug_ug, max_step_h, where, fields)

    taus = [t - agent.injection_time_h for t in times_h]
    targets = [tau for tau in taus if tau > 0.0]
    stops = _with_window(targets, model.window_tau_h)  # == targets without a window
    try:
        steps = solver_steps(
            stops, first_step_h=first_step_h, growth=growth, max_step_h=max_step_h, caps=model.caps,
            max_steps=MAX_SOLVER_STEPS, rung_ratio=rung_ratio,
        )
    except TooManyStepsError:
        raise ValueError(
            f"{where}: {agent.carrier} would need more than {MAX_SOLVER_STEPS} solver steps for "
            f"{targets[-1]:g} h, set by {' then '.join(model.cap_reason)} (check blood_half_life_h, "
            "prior_peg_doses / abc_factor and the exchange rates in carrier_overrides)"
        ) from None
    recorder = _Recorder(body, model, targets[-1] if targets else 0.0)
    values = model.initial
    for tau in taus[: len(taus) - len(targets)]:  # outputs before the first step
        if tau == 0.0:
            recorder.record(model.entries(values))  # at the injection itself
        else:
            recorder.zeros()
    recorder.blood(0.0, values, force=True)
    if model.window_tau_h is not None:  # landings on the window's ends are not outputs
        output = {tau: i for i, tau in enumerate(targets)}
        steps = [(dt, tau_end, output.get(stops[hit]) if hit is not None else None) for dt, tau_end, hit in steps]
    # Factors change only on the ramp and around landings; each new step size's are made
    # while the solver still steps with the previous ones (they depend on dt alone, and on
    # whether a field is on: a step lies wholly inside or outside the window it lands on).
    keys = [(_phase(model, tau_end - 0.5 * dt), dt) for dt, tau_end, _ in steps]
    sizes = [key for k, key in enumerate(keys) if k == 0 or key != keys[k - 1]]
    if model.window_tau_h is None:
        linear_steps = body.backend.prefetch(functools.partial(_linear_step, model.network), [dt for _, dt in sizes])
    else:
        linear_steps = body.backend.prefetch(functools.partial(_phase_linear_step, model), sizes)
    cached_key, step = None, None
    for done, ((dt, tau_end, hit), key) in enumerate(zip(steps, keys), start=1):
        if key != cached_key:
            step = None  # free the old coefficient maps before taking the next ones
            cached_key, step = key, next(linear_steps)
        values = step.apply(values, body.backend)
        recorder.blood(tau_end, values, force=hit is not None)
        if hit is not None:
            recorder.record(model.entries(values))
        progress.report(done, len(steps))

    del values, step, linear_steps, model  # free the states before the outputs are stacked
    ledger, by_label, drug_ledger, lumped_drug, curve = recorder.download()
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
        encapsulated_drug_ug_per_ml=recorder.stacked("encapsulated_drug"),
        lumped_drug_ug=lumped_drug,
        field_maps=fields.truth if fields is not None else {},
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
    step_rung_ratio: float | None = STEP_RUNG_RATIO,
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
        Largest solver step, h (default 0.25; fast blood or tissue exchange may impose a
        smaller one, see the module docstring).
    first_step_h : float, optional
        First solver step after each injection, h.
    step_growth : float, optional
        Geometric growth factor of the solver step.
    step_rung_ratio : float or None, optional
        Steps below the cap are rounded down to rungs of this ratio (:func:`solver_steps`;
        ``None``: every step its own size).

    Returns
    -------
    DeliveryResult
        Concentration maps, blood curves and mass ledgers per agent.

    Raises
    ------
    ValueError
        One line: bad times or step settings, an unknown species or drug, an "epr" carrier
        whose extravasation exceeds its blood loss ``ln2 / blood_half_life_h`` on this
        phantom, or a schedule that would need more than :data:`MAX_SOLVER_STEPS` steps.

    Notes
    -----
    Makes ``1 + 2 len(agents)`` counted downloads and no uploads or round trips.
    """
    times = tuple(float(t) for t in times_h)
    if not times or any(t < 0.0 for t in times) or any(b <= a for a, b in itertools.pairwise(times)):
        raise ValueError(f"times_h must be non-empty, >= 0 and strictly increasing, got {times}")
    if not (max_step_h > 0.0 and first_step_h > 0.0 and step_growth >= 1.0):
        raise ValueError("max_step_h and first_step_h must be > 0 and step_growth >= 1")
    if step_rung_ratio is not None and not step_rung_ratio > 1.0:
        raise ValueError(f"step_rung_ratio must be > 1 or None, got {step_rung_ratio}")
    if phantom.species not in REFERENCE_ORGAN_MASS_FRACTION:
        raise ValueError(
            f"phantom.species must be one of {', '.join(REFERENCE_ORGAN_MASS_FRACTION)}, got {phantom.species!r}"
        )
    for agent in agents:
        if agent.payload is not None:
            drug_parameters(agent.payload.drug)  # fail before any work on an unknown drug
    body = build_body(phantom, backend)
    deliveries = []
    for position, agent in enumerate(agents):
        with progress.part(position, len(agents)):
            deliveries.append(_simulate_agent(
                body, phantom, agent, position, times,
                max_step_h=max_step_h, first_step_h=first_step_h, growth=step_growth, rung_ratio=step_rung_ratio,
            ))
    deliveries = tuple(deliveries)
    return DeliveryResult(agents=deliveries, times_h=times)


__all__ = [
    "FIRST_STEP_H",
    "MAX_SOLVER_STEPS",
    "MAX_STEP_H",
    "REFERENCE_ORGAN_MASS_FRACTION",
    "STEP_GROWTH",
    "STEP_RUNG_RATIO",
    "simulate_delivery",
    "solver_steps",
]
