"""What acts on one agent beyond its carrier's table: external fields and the phantom's stromal maps.

Gathers, on the body's entry axis, everything :mod:`imagingsim.delivery.kinetics` needs for
the heat and light triggers (the release rate the field adds, 1/h, and its on-time window in
agent time), the
enzyme trigger (the protease map), macrophage uptake (the macrophage map) and magnetic
targeting (the magnet's gain on extravasation), plus the maps written as truth.
An agent that uses none of them gets None and its model is built exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imagingsim.data.carriers import CarrierParams
from imagingsim.delivery.body import Body
from imagingsim.delivery.fields import (
    heat_activation,
    heating_temperature_C,
    magnet_field_T,
    magnet_force_fraction,
)
from imagingsim.delivery.light import light_fluence_J_per_cm2, light_release_rate_per_h
from imagingsim.delivery.result import FieldMap
from imagingsim.phantom.model import Phantom
from imagingsim.phantom.stroma import DEFAULT_RESIDENT_MACROPHAGE_FRACTION, MAX_MACROPHAGE_FRACTION, NORMAL_PROTEASE_NM
from imagingsim.scenario import AgentSpec


@dataclass
class AgentFields:
    """Maps over the body's entries (device) and host numbers; None where not used."""

    field_rate: Any = None  # heat / light: release rate while the field is on, 1/h
    field_rate_bound: float = 0.0  # its largest value, 1/h
    blood_release_ml_per_h: float = 0.0  # sum of v_b V k over the voxels, mL/h
    blood_release_weight: Any = None  # v_b V k / blood_release_ml_per_h (sums to 1)
    window_tau_h: tuple[float, float] | None = None  # (on, off) in agent time, h
    magnet_gain: Any = None  # 1 + g (r0 / r)^7
    macrophage: Any = None  # macrophage_fraction
    macrophage_bound: float = MAX_MACROPHAGE_FRACTION
    protease: Any = None  # protease_activity_nM
    truth: dict[str, FieldMap] = field(default_factory=dict)


def agent_fields(
    body: Body, phantom: Phantom, agent: AgentSpec, carrier: CarrierParams, where: str
) -> AgentFields | None:
    """The fields and maps acting on ``agent`` on this body, or None when nothing does.

    Makes one counted download (the blood-weighted sum and the largest value of the field's
    release rate) for an agent with a heat or light trigger; an agent with a magnet makes one
    more in the kinetics (its magnet-weighted extravasation capacity).

    Raises
    ------
    ValueError
        One line: an enzyme trigger or a macrophage-uptake carrier on a phantom without the
        map it needs.
    """
    xp = body.backend.xp
    release = agent.payload.release if agent.payload is not None else None
    trigger = release.trigger if release is not None else "none"
    uses_macrophages = carrier.cell_uptake_map == "macrophage"
    if trigger not in ("heat", "light", "enzyme") and agent.magnet is None and not uses_macrophages:
        return None
    out = AgentFields()
    props = phantom.properties
    if trigger == "enzyme":
        if "protease_activity_nM" not in props:
            raise ValueError(
                f"{where}.payload.release.trigger: 'enzyme' needs the phantom's protease map; set "
                "phantom.tumours[n].protease_activity_nM"
            )
        out.protease = body.from_grid(props["protease_activity_nM"], NORMAL_PROTEASE_NM)
    if uses_macrophages and "macrophage_fraction" in props:
        out.macrophage = body.from_grid(props["macrophage_fraction"], DEFAULT_RESIDENT_MACROPHAGE_FRACTION)
    if trigger in ("heat", "light"):
        if trigger == "heat":
            spec = release.heat
            temperature = heating_temperature_C(phantom.grid, spec, body.backend)
            rate = release.triggered_rate_per_h * heat_activation(temperature, spec, xp)
            out.truth["HeatTemperature"] = FieldMap(
                temperature, "degC",
                f"tissue temperature while the heating source is on ({spec.on_h:g}-{spec.off_h:g} h after t = 0; "
                "body temperature otherwise)",
            )
        else:
            spec = release.light
            fluence = light_fluence_J_per_cm2(phantom, spec, body.backend)
            rate = light_release_rate_per_h(fluence, spec, xp)
            out.truth["LightFluence"] = FieldMap(
                fluence, "J/cm^2",
                f"light fluence delivered over the illumination ({spec.on_h:g}-{spec.off_h:g} h after t = 0, "
                f"{spec.wavelength_nm:g} nm)",
            )
        out.truth[f"{trigger.capitalize()}ReleaseRate"] = FieldMap(
            rate, "1/h", "release rate of the payload added by the field while it is on (tissue and the voxel's blood)",
        )
        k = body.from_grid(rate, 0.0)
        blood = k * body.props["blood_volume_fraction"] * body.volume_ml
        host = body.backend.to_host(xp.stack([xp.sum(blood), xp.max(k)])).tolist()
        out.field_rate, out.blood_release_ml_per_h, out.field_rate_bound = k, float(host[0]), float(host[1])
        if out.blood_release_ml_per_h > 0.0:
            out.blood_release_weight = blood / out.blood_release_ml_per_h
        out.window_tau_h = (spec.on_h - agent.injection_time_h, spec.off_h - agent.injection_time_h)
    if agent.magnet is not None:
        force = magnet_force_fraction(phantom.grid, agent.magnet, body.backend)
        out.magnet_gain = 1.0 + agent.magnet.enhancement_at_surface * body.from_grid(force, 0.0)
        out.truth["MagnetField"] = FieldMap(
            magnet_field_T(phantom.grid, agent.magnet, body.backend), "T",
            "field magnitude of the external magnet (dipole law B0 (r0 / r)^3)",
        )
        out.truth["MagneticForce"] = FieldMap(
            force, "fraction of the force at the magnet surface",
            "magnetic force on the carrier relative to the magnet surface, (r0 / r)^7",
        )
    return out


__all__ = ["AgentFields", "agent_fields"]
