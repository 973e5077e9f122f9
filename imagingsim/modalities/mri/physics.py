"""MRI physics: relaxivities, baseline relaxation at 1.5, 3 and 7 T, iron, spoiled-GRE signal.

Tables come from ``data/relaxivity.toml`` (sources and *(check)* marks there), validated
when first read.

Model
-----
- **Baseline.** The phantom carries T1 and T2* at 3 T. At field ``B0`` (ratio
  ``b = B0 / 3 T``): ``T1 = T1(3 T) b^beta`` (per-tissue ``beta``), and
  ``R2* = R2(3 T) b^r2_exponent + R2'(3 T) b^r2prime_exponent`` with ``R2 = 1/T2`` from the
  per-tissue T2 table and ``R2' = R2*(3 T) - R2(3 T) >= 0``.
- **Iron.** Each agent with an iron-oxide label contributes
  ``C_Fe (mM) = carrier (ug/mL) x iron_mass_fraction / 55.845`` (1 mM Fe = 55.845 ug Fe/mL).
  ``R1 = R1_0 + r1 C``, ``R2* = R2*_0 + r2* (C_free + f C_bound)``, where ``C_bound`` is the
  cell-associated part (``bound_carrier_ug_per_ml``: receptor-bound, internalised,
  MPS-sequestered) and ``f = clustered_iron_r2star_factor``: clustered particles dephase
  more than dispersed ones. ``r1`` acts on the total (clustering is known to lower r1; that
  is not modelled).
- **Signal.** Spoiled gradient echo, ``S(TE) = M0 sin(a) (1 - E1) / (1 - cos(a) E1)
  exp(-TE R2*) exp(i 2 pi df TE)``, ``E1 = exp(-TR R1)``, ``M0`` the proton density
  (relative to water) and ``df`` an optional off-resonance map (Hz). Each voxel is one
  isochromat: intravoxel dephasing by B0 gradients (which adds to R2*) is not modelled.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from imagingsim.backend import backend_of
from imagingsim.data.tables import read_table
from imagingsim.grid import ImageGrid
from imagingsim.phantom.heterogeneity import gaussian_random_field
from imagingsim.phantom.model import Label
from imagingsim.phantom.properties import lookup, tissue_table

#: Molar mass of iron, g/mol: 1 mM Fe = 55.845 ug Fe per mL.
FE_MOLAR_MASS_G_PER_MOL = 55.845
#: Field presets, T, with the key of their table in ``data/relaxivity.toml``.
FIELD_KEYS: dict[float, str] = {1.5: "1p5T", 3.0: "3T", 7.0: "7T"}
#: Correlation length of the seeded off-resonance field, as a fraction of the smallest
#: field-of-view extent: smooth over the body, as a shimmed B0 inhomogeneity is.
B0_CORRELATION_FOV_FRACTION = 0.25

_Positive = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Relaxivity(_Strict):
    """Relaxivities of one contrast agent at one field, 1/(mM s) per mM of iron."""

    field_T: _Positive
    r1_per_mM_s: _Positive
    r2_per_mM_s: _Positive
    r2star_per_mM_s: _Positive
    source: str


class _AgentTable(_Strict):
    description: str
    fields: dict[str, Relaxivity]


class FieldModel(_Strict):
    """How the 3 T baseline maps carry to another field (see ``data/relaxivity.toml``)."""

    reference_field_T: _Positive
    t1_exponent: Annotated[float, Field(ge=0.0, le=2.0)]
    r2_exponent: Annotated[float, Field(ge=-1.0, le=2.0)]
    r2prime_exponent: Annotated[float, Field(ge=0.0, le=2.0)]
    t1_exponent_by_tissue: dict[str, Annotated[float, Field(ge=0.0, le=2.0)]]
    t2_3T_ms: dict[str, _Positive]

    @model_validator(mode="after")
    def _tissues_known(self):
        names = {label.bids_name for label in Label}
        unknown = sorted((set(self.t1_exponent_by_tissue) | set(self.t2_3T_ms)) - names)
        if unknown:
            raise ValueError(f"unknown tissues {unknown}; allowed: {sorted(names)}")
        missing = sorted(names - set(self.t2_3T_ms))
        if missing:
            raise ValueError(f"t2_3T_ms lacks tissues {missing}")
        return self


@functools.cache
def _tables() -> tuple[dict[str, _AgentTable], FieldModel]:
    raw = read_table("relaxivity.toml")
    agents = {}
    for name, entry in raw["relaxivity"].items():
        fields = {k: v for k, v in entry.items() if isinstance(v, dict)}
        agents[name] = _AgentTable(description=entry["description"], fields=fields)
        keys = sorted(fields)
        if keys != sorted(FIELD_KEYS.values()):
            raise RuntimeError(f"relaxivity.toml: {name} has fields {keys}, expected {sorted(FIELD_KEYS.values())}")
        for key, rel in agents[name].fields.items():
            if FIELD_KEYS.get(rel.field_T) != key:
                raise RuntimeError(f"relaxivity.toml: {name}.{key} has field_T {rel.field_T}")
    model = FieldModel.model_validate(raw["field_model"])
    tissues = tissue_table()
    for label in Label:
        t2, t2star = model.t2_3T_ms[label.bids_name], tissues[label].t2star_3T_ms
        if t2 < t2star:
            raise RuntimeError(f"relaxivity.toml: T2 of {label.bids_name} ({t2} ms) < its T2* ({t2star} ms)")
    return agents, model


def relaxivity(table: str, field_T: float) -> Relaxivity:
    """Relaxivities of contrast agent ``table`` (e.g. ``"ferumoxytol"``) at ``field_T`` (1.5, 3 or 7 T)."""
    agents, _ = _tables()
    if table not in agents:
        raise ValueError(f"no relaxivity table {table!r}; allowed: {', '.join(sorted(agents))}")
    if field_T not in FIELD_KEYS:
        raise ValueError(f"field_T must be one of {sorted(FIELD_KEYS)} T, got {field_T}")
    return agents[table].fields[FIELD_KEYS[field_T]]


def field_model() -> FieldModel:
    """The validated field-scaling model of ``data/relaxivity.toml``."""
    return _tables()[1]


def baseline_relaxation(phantom, field_T: float, backend, *, model: FieldModel | None = None):
    """Pre-contrast R1 and R2* maps of ``phantom`` at ``field_T``.

    Parameters
    ----------
    phantom : Phantom
        Its ``t1_3T_ms`` and ``t2star_3T_ms`` maps and labels (for the per-tissue T2 and
        T1 exponent).
    field_T : float
        Main field, T.
    backend : Backend
    model : FieldModel, optional
        Field-scaling model; the data file's by default.

    Returns
    -------
    r1_per_s, r2star_per_s : device arrays, float64, ``grid.shape``
        Exactly ``1000 / T1(3 T)`` and ``1000 / T2*(3 T)`` at the reference field.
    """
    model = model or field_model()
    xp = backend.xp
    ratio = float(field_T) / model.reference_field_T
    names = [label.bids_name for label in Label]
    t1_scale = [ratio ** model.t1_exponent_by_tissue.get(n, model.t1_exponent) for n in names]
    r2_ref = lookup(backend, phantom.labels, [1000.0 / model.t2_3T_ms[n] for n in names])
    r2star_ref = 1000.0 / phantom.properties["t2star_3T_ms"]
    r1 = 1000.0 / (phantom.properties["t1_3T_ms"] * lookup(backend, phantom.labels, t1_scale))
    if ratio == 1.0:
        return r1, r2star_ref
    r2prime = xp.clip(r2star_ref - r2_ref, 0.0, None)
    return r1, r2_ref * ratio**model.r2_exponent + r2prime * ratio**model.r2prime_exponent


def iron_mM(carrier_ug_per_ml, iron_mass_fraction: float):
    """Iron concentration (mM) of a carrier map (ug/mL) with ``iron_mass_fraction`` mg Fe/mg."""
    return carrier_ug_per_ml * (float(iron_mass_fraction) / FE_MOLAR_MASS_G_PER_MOL)


@dataclass(frozen=True)
class IronAgent:
    """One iron-oxide-labelled agent as the MRI model sees it."""

    name: str
    iron_mass_fraction: float
    relaxivity: Relaxivity
    table: str


def iron_agents(delivery, field_T: float) -> list[tuple[IronAgent, Any]]:
    """``(IronAgent, AgentDelivery)`` for every delivered agent with an iron-oxide label."""
    found = []
    for item in delivery.agents:
        for label in item.agent.labels:
            if label.kind == "iron_oxide":
                agent = IronAgent(item.agent.name, label.iron_mass_fraction, relaxivity(label.relaxivity, field_T),
                                  label.relaxivity)
                found.append((agent, item))
    return found


def relaxation_with_iron(r1_0, r2star_0, iron: Sequence[tuple[Any, Any, Any]], clustered_factor: float):
    """R1 and R2* with iron added to the baseline.

    Parameters
    ----------
    r1_0, r2star_0 : device arrays, 1/s
        Baseline maps.
    iron : sequence of (Relaxivity, total_mM, bound_mM)
        Per agent: its relaxivities, total and cell-associated iron (device arrays, mM).
    clustered_factor : float
        Effective r2* of cell-associated iron over that of free iron (>= 1).

    Returns
    -------
    r1_per_s, r2star_per_s, total_mM, bound_mM : device arrays
        ``R1_0 + sum r1 C``, ``R2*_0 + sum r2* (C_free + f C_bound)``, and the iron summed
        over agents.
    """
    r1, r2star = r1_0, r2star_0
    total = bound = None
    for rel, c_total, c_bound in iron:
        r1 = r1 + rel.r1_per_mM_s * c_total
        r2star = r2star + rel.r2star_per_mM_s * ((c_total - c_bound) + clustered_factor * c_bound)
        total = c_total if total is None else total + c_total
        bound = c_bound if bound is None else bound + c_bound
    if total is None:
        total = r1_0 * 0.0
        bound = total
    return r1, r2star, total, bound


def spoiled_gre(m0, r1_per_s, r2star_per_s, *, repetition_time_ms: float, echo_times_ms: Sequence[float],
                flip_angle_deg: float, offresonance_hz=None, dtype=None):
    """Complex spoiled multi-echo gradient-echo images.

    Parameters
    ----------
    m0 : device array
        Equilibrium magnetisation (proton density relative to water).
    r1_per_s, r2star_per_s : device arrays, 1/s
        Relaxation rates, broadcastable with ``m0``.
    repetition_time_ms : float
    echo_times_ms : sequence of float
    flip_angle_deg : float
    offresonance_hz : device array, optional
        Off-resonance frequency per voxel, Hz; adds the phase ``2 pi df TE``.
    dtype : complex dtype, optional
        Of the result (complex128 unless given); the signal is computed in float64.

    Returns
    -------
    device array, ``(n_echoes,) + m0.shape``
        ``M0 sin(a) (1 - E1) / (1 - cos(a) E1) exp(-TE R2*) exp(i 2 pi df TE)``.
    """
    xp = backend_of(m0).xp
    dtype = dtype or xp.complex128
    alpha = math.radians(flip_angle_deg)
    e1 = xp.exp(-(repetition_time_ms * 1e-3) * r1_per_s)
    steady = m0 * (math.sin(alpha) * (1.0 - e1) / (1.0 - math.cos(alpha) * e1))
    echoes = []
    for te_ms in echo_times_ms:
        te = float(te_ms) * 1e-3
        magnitude = steady * xp.exp(-te * r2star_per_s)
        if offresonance_hz is None:
            echoes.append(xp.astype(magnitude, dtype))
            continue
        phase = (2.0 * math.pi * te) * offresonance_hz
        echoes.append(xp.astype(magnitude * xp.cos(phase), dtype) + 1j * xp.astype(magnitude * xp.sin(phase), dtype))
    return xp.stack(echoes, axis=0)


def offresonance_map_hz(grid: ImageGrid, sd_hz: float, rng, backend):
    """A smooth seeded off-resonance map, Hz: ``sd_hz`` times a unit Gaussian random field.

    The field has a Gaussian covariance with correlation length
    :data:`B0_CORRELATION_FOV_FRACTION` of the smallest field-of-view extent (white noise
    from ``rng`` filtered by an FFT Gaussian, :func:`gaussian_random_field`).
    """
    fov = min(n * v for n, v in zip(grid.shape, grid.voxel_size_mm))
    return float(sd_hz) * gaussian_random_field(backend, grid, B0_CORRELATION_FOV_FRACTION * fov, rng)


__all__ = [
    "B0_CORRELATION_FOV_FRACTION",
    "FE_MOLAR_MASS_G_PER_MOL",
    "FIELD_KEYS",
    "FieldModel",
    "IronAgent",
    "Relaxivity",
    "baseline_relaxation",
    "field_model",
    "iron_agents",
    "iron_mM",
    "offresonance_map_hz",
    "relaxation_with_iron",
    "relaxivity",
    "spoiled_gre",
]
