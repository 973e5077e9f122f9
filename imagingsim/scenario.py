"""Scenario files: TOML validated into typed, frozen models.

A scenario fixes everything that defines one simulated subject: the phantom, the injected
agents, the imaging schedule, the modalities and the seed. Unknown keys, wrong types and
out-of-range values raise :class:`ScenarioError` with one line naming the field and the
allowed range. Dotted overrides (``--set phantom.voxel_size_mm=0.4``) go through the same
validation.
"""

from __future__ import annotations

import copy
import datetime
import errno
import itertools
import json
import os
import re
import stat as stat_module
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from imagingsim.data.carriers import CARRIERS, carrier_parameters
from imagingsim.data.radionuclides import NUCLIDE_NAMES, POSITRON_EMITTERS, SINGLE_PHOTON_EMITTERS

NAME_PATTERN = r"^[A-Za-z0-9]+$"  # BIDS entity values: letters and digits only
MAX_TIME_H = 24.0 * 60  # 60 days: past 89Zr's useful window, far past any nanocarrier study
#: Deepest nesting of arrays and tables accepted in a scenario or a ``--set`` value. A real
#: scenario nests 4 deep (agents[0].payload.release); anything far deeper is a mistake or an
#: attack, and past ~330 levels the parsers and validators would overflow the stack.
MAX_NESTING = 16
#: Characters of a user's value echoed in an error line (the rest is counted, not shown).
ECHO_CHARS = 80
#: Longest error message (one line).
MESSAGE_CHARS = 290



class ScenarioError(ValueError):
    """Invalid scenario input; the message is one line naming the field and what is allowed."""


class SpecModel(BaseModel):
    """Base of every scenario model (the modalities' settings too).

    Unknown keys are refused and models are frozen. :func:`validate_scenario` validates
    strictly (a bool is not a number, ``"0.5"`` is not a number, ``2.0`` is not an integer);
    models built in Python keep pydantic's lax conversions.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


def _omit_unset(data: dict, keys: tuple[str, ...]) -> dict:
    """``data`` without the ``keys`` whose value is None.

    Fields added after a model first shipped default to None (off) and are left out of the
    dump while unset, so a scenario that does not use them dumps exactly as before (the
    dataset's ``_scenario.json`` stays byte-identical).
    """
    for key in keys:
        if key in data and data[key] is None:
            del data[key]
    return data


# --- phantom ---------------------------------------------------------------------------


class TumourSpec(SpecModel):
    """One tumour: a sphere with an irregular boundary, necrotic core and hypoxic zone."""

    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=32)] = "tumour"
    centre_mm: tuple[float, float, float] = Field(
        description="Tumour centre in world RAS mm (the phantom is centred on the origin)."
    )
    radius_mm: Annotated[float, Field(gt=0.2, le=100.0)] = Field(description="Mean radius in mm.")
    necrotic_fraction: Annotated[float, Field(ge=0.0, le=0.8)] = Field(
        0.35, description="Necrotic core radius as a fraction of the tumour radius."
    )
    hypoxic_shell_fraction: Annotated[float, Field(ge=0.0, le=0.8)] = Field(
        0.25, description="Thickness of the hypoxic zone around the core, as a fraction of the radius."
    )
    boundary_irregularity: Annotated[float, Field(ge=0.0, le=0.5)] = Field(
        0.15, description="Relative amplitude of the random radial perturbation of the boundary."
    )
    receptor_density_nM: Annotated[float, Field(ge=0.0, le=1000.0)] = Field(
        50.0, description="Target receptor concentration in the viable rim, nmol/L of tissue."
    )
    permeability: Annotated[float, Field(ge=0.0, le=20.0)] = Field(
        1.0, description="Vessel leakiness of the viable rim relative to the reference tumour (EPR)."
    )
    macrophage_fraction: Annotated[float, Field(ge=0.0, le=0.8)] | None = Field(
        None,
        description="Tumour-associated macrophages in the viable rim, fraction of the cells; "
        "adds the phantom map macrophage_fraction (off when unset).",
    )
    protease_activity_nM: Annotated[float, Field(ge=0.0, le=1000.0)] | None = Field(
        None,
        description="Active MMP-2/9 in the tumour rim and stroma, nmol/L of tissue; adds the phantom "
        "map protease_activity_nM (off when unset).",
    )

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        return _omit_unset(handler(self), ("macrophage_fraction", "protease_activity_nM"))

    @model_validator(mode="after")
    def _zones_fit(self):
        if self.necrotic_fraction + self.hypoxic_shell_fraction > 0.95:
            raise ValueError(
                "necrotic_fraction + hypoxic_shell_fraction must be <= 0.95 to leave a viable rim"
            )
        return self


class HeterogeneitySpec(SpecModel):
    """Seeded Gaussian random field modulating the property maps (log-normal, mean 1)."""

    correlation_length_mm: Annotated[float, Field(gt=0.0, le=200.0)] = Field(
        1.0, description="Correlation length of the Gaussian covariance exp(-r^2 / (2 l^2)), mm."
    )
    relative_sd: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.2, description="Standard deviation of the log-normal multiplier's logarithm."
    )


class PhantomSpec(SpecModel):
    """Which anatomy, at which voxel size, with which tumours."""

    anatomy: Literal["mouse", "torso", "brain"] = "mouse"
    voxel_size_mm: Annotated[float, Field(ge=0.05, le=5.0)] = 0.5
    tumours: Annotated[list[TumourSpec], Field(max_length=8)] = Field(default_factory=list)
    heterogeneity: HeterogeneitySpec = Field(default_factory=HeterogeneitySpec)

    @field_validator("tumours")
    @classmethod
    def _unique_names(cls, tumours):
        names = [t.name for t in tumours]
        if len(set(names)) != len(names):
            raise ValueError(f"tumour names must be unique, got {names}")
        return tumours


# --- agents ----------------------------------------------------------------------------

#: Every nuclide of data/radionuclides.toml: the one list the scenario schema and the physics share.
NUCLIDES = NUCLIDE_NAMES
DYES = ("ICG", "IRDye800CW", "Cy55", "NIRII")


class RadionuclideLabel(SpecModel):
    kind: Literal["radionuclide"]
    nuclide: Literal[NUCLIDES]  # type: ignore[valid-type]
    specific_activity_MBq_per_mg: Annotated[float, Field(gt=0.0, le=1e7)] = Field(
        description="Activity per mg of carrier at injection time, MBq/mg."
    )


class IronOxideLabel(SpecModel):
    kind: Literal["iron_oxide"]
    iron_mass_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        description="mg Fe per mg of carrier."
    )
    relaxivity: Literal["ferumoxytol"] = Field(
        "ferumoxytol", description="Relaxivity table (r1, r2, r2* per field) of data/relaxivity.toml."
    )


class FluorophoreLabel(SpecModel):
    kind: Literal["fluorophore"]
    dye: Literal[DYES]  # type: ignore[valid-type]
    dye_nmol_per_mg: Annotated[float, Field(gt=0.0, le=1e6)] = Field(
        description="nmol of dye per mg of carrier."
    )


class GoldLabel(SpecModel):
    kind: Literal["gold"]
    gold_mass_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = Field(description="mg Au per mg of carrier.")


class IodineLabel(SpecModel):
    kind: Literal["iodine"]
    iodine_mass_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = Field(description="mg I per mg of carrier.")


Label = Annotated[
    RadionuclideLabel | IronOxideLabel | FluorophoreLabel | GoldLabel | IodineLabel,
    Field(discriminator="kind"),
]
LABEL_KINDS = ("radionuclide", "iron_oxide", "fluorophore", "gold", "iodine")


Point3 = tuple[float, float, float]
AXES = ("+x", "-x", "+y", "-y", "+z", "-z")


class OnTimeWindow(SpecModel):
    """When an external source (heating, light) is on: from ``on_h`` to ``off_h``."""

    on_h: Annotated[float, Field(ge=0.0, le=MAX_TIME_H)] = Field(description="The source is switched on, h after t = 0.")
    off_h: Annotated[float, Field(gt=0.0, le=MAX_TIME_H)] = Field(description="The source is switched off, h after t = 0.")

    @model_validator(mode="after")
    def _window(self):
        if self.off_h <= self.on_h:
            raise ValueError(f"off_h must be after on_h, got on_h={self.on_h:g}, off_h={self.off_h:g}")
        return self


class HeatSpec(OnTimeWindow):
    """A focused heating field (mild hyperthermia, HIFU): a Gaussian focus switched on for a window."""

    centre_mm: Point3 = Field(description="Focus centre in world RAS mm.")
    focal_fwhm_mm: Annotated[float, Field(gt=0.0, le=100.0)] = Field(
        description="Full width at half maximum of the temperature rise around the focus, mm."
    )
    temperature_rise_K: Annotated[float, Field(gt=0.0, le=30.0)] = Field(
        description="Temperature rise at the focus above body temperature, K."
    )
    transition_temperature_C: Annotated[float, Field(ge=37.0, le=60.0)] = Field(
        41.3,
        description="Centre of the membrane phase transition where release switches on, deg C (41.3 C: "
        "lysolipid liposomes, Needham et al. Cancer Res 2000;60:1197).",
    )
    transition_width_K: Annotated[float, Field(gt=0.0, le=10.0)] = Field(
        1.0, description="Width of the linear switch-on around the transition temperature, K (check)."
    )


class LightSpec(OnTimeWindow):
    """A broad collimated beam on the skin: wavelength, spot, irradiance and on-time window."""

    wavelength_nm: Annotated[float, Field(ge=660.0, le=1300.0)] = Field(
        810.0, description="Wavelength, nm (the optics table spans 660-1300 nm)."
    )
    centre_mm: Point3 = Field(description="Beam axis: a point on it in world RAS mm (its transverse position counts).")
    direction: Literal[AXES] = Field(  # type: ignore[valid-type]
        description="Propagation direction of the beam along a grid axis, e.g. '-y' (from anterior)."
    )
    beam_radius_mm: Annotated[float, Field(gt=0.0, le=200.0)] = Field(description="Radius of the flat-top spot, mm.")
    irradiance_mW_per_cm2: Annotated[float, Field(gt=0.0, le=5000.0)] = Field(
        description="Incident irradiance on the skin, mW/cm^2."
    )
    release_fluence_J_per_cm2: Annotated[float, Field(gt=0.0, le=1e5)] = Field(
        100.0,
        description="Local fluence per e-fold of photo-release (1/photochemical cross-section), J/cm^2 "
        "(a modelling default of the order of photo-cleavable carriers' doses, check).",
    )
    threshold_fluence_J_per_cm2: Annotated[float, Field(ge=0.0, le=1e5)] = Field(
        0.0, description="Local fluence over the window below which nothing is released, J/cm^2."
    )


class ReleaseSpec(SpecModel):
    """Payload release from the carrier: a baseline leak plus an optional stimulus trigger."""

    baseline_rate_per_h: Annotated[float, Field(ge=0.0, le=100.0)] = Field(
        0.005, description="First-order release everywhere (blood, tissue, MPS), 1/h."
    )
    trigger: Literal["none", "ph", "hypoxia", "heat", "enzyme", "light"] = "none"
    triggered_rate_per_h: Annotated[float, Field(ge=0.0, le=100.0)] = Field(
        0.0, description="Extra first-order release where the trigger is fully on, 1/h."
    )
    ph_threshold: Annotated[float, Field(ge=5.0, le=7.4)] = Field(
        6.8, description="pH at which a pH trigger is half on (sigmoid of width 0.1 pH)."
    )
    po2_threshold_mmHg: Annotated[float, Field(gt=0.0, le=40.0)] = Field(
        10.0, description="pO2 at which a hypoxia trigger is half on (sigmoid of width 2 mmHg)."
    )
    heat: HeatSpec | None = Field(None, description="The heating field of a heat trigger.")
    light: LightSpec | None = Field(None, description="The illumination of a light trigger.")
    enzyme_half_activity_nM: Annotated[float, Field(gt=0.0, le=1000.0)] | None = Field(
        None, description="Protease activity at which an enzyme trigger is half on, nM (default 5 nM when unset)."
    )

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        return _omit_unset(handler(self), ("heat", "light", "enzyme_half_activity_nM"))

    @model_validator(mode="after")
    def _trigger_settings(self):
        for kind in ("heat", "light"):
            if (self.trigger == kind) != (getattr(self, kind) is not None):
                raise ValueError(f"the [{kind}] table is required with trigger = '{kind}' and allowed only with it")
        if self.trigger == "light" and self.triggered_rate_per_h != 0.0:
            raise ValueError(
                "triggered_rate_per_h: not used by a light trigger (the local fluence sets the rate, "
                "light.release_fluence_J_per_cm2); leave it 0"
            )
        if self.enzyme_half_activity_nM is not None and self.trigger != "enzyme":
            raise ValueError("enzyme_half_activity_nM is allowed only with trigger = 'enzyme'")
        return self


class PayloadSpec(SpecModel):
    """The drug carried inside the carrier."""

    drug: Annotated[str, Field(pattern=NAME_PATTERN, max_length=32)] = "doxorubicin"
    loading_mg_per_mg: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        0.1, description="mg of drug per mg of carrier at injection."
    )
    release: ReleaseSpec = Field(default_factory=ReleaseSpec)


class TargetingSpec(SpecModel):
    """Active targeting: a ligand binding the receptor map."""

    ligand: Annotated[str, Field(pattern=NAME_PATTERN, max_length=32)] = "ligand"
    binding_rate_per_h_per_nM: Annotated[float, Field(ge=0.0, le=10.0)] = Field(
        0.002, description="Extravascular carrier -> bound rate per nM of receptor, 1/(h nM)."
    )
    unbinding_rate_per_h: Annotated[float, Field(ge=0.0, le=100.0)] = Field(
        0.01, description="Bound -> free carrier rate (dissociation net of internalisation), 1/h."
    )


class MagnetSpec(SpecModel):
    """An external magnet (dipole) pulling magnetic carriers: raises their extravasation and retention near it."""

    centre_mm: Point3 = Field(description="Magnetic dipole centre in world RAS mm (outside or on the skin).")
    surface_field_T: Annotated[float, Field(gt=0.0, le=2.0)] = Field(
        description="Field at the magnet surface (distance radius_mm from its centre), T."
    )
    surface_gradient_T_per_m: Annotated[float, Field(gt=0.0, le=1000.0)] = Field(
        description="Field gradient at the surface, T/m; sets the dipole radius r0 = 3 B0 / G."
    )
    enhancement_at_surface: Annotated[float, Field(ge=0.0, le=100.0)] = Field(
        5.0,
        description="Relative rise of extravasation (and fall of washout) at the magnet surface where the "
        "magnetic force is largest; falls as the force, (r0 / r)^7 (phenomenological; magnetic targeting "
        "raised tumour SPION uptake ~5x in Chertok et al. Biomaterials 2008;29:487, check).",
    )


class AgentSpec(SpecModel):
    """One injected agent: a carrier from the library with its labels and payload."""

    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=32)]
    carrier: str = Field(description="Key of the carrier library (imagingsim carriers).")
    dose_mg_per_kg: Annotated[float, Field(gt=0.0, le=2000.0)] = Field(
        description="Injected carrier mass per body mass, mg/kg."
    )
    injection_time_h: Annotated[float, Field(ge=0.0, le=MAX_TIME_H)] = 0.0
    labels: list[Label] = Field(default_factory=list)
    payload: PayloadSpec | None = None
    targeting: TargetingSpec | None = None
    prior_peg_doses: Annotated[int, Field(ge=0, le=10)] = Field(
        0, description="Earlier doses of a PEGylated carrier (accelerated blood clearance)."
    )
    carrier_overrides: dict[str, float] = Field(
        default_factory=dict, description="Carrier library parameters to override, by name."
    )
    magnet: MagnetSpec | None = Field(
        None, description="External magnet acting on this agent (needs an iron_oxide label; off when unset)."
    )

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        return _omit_unset(handler(self), ("magnet",))

    @field_validator("carrier")
    @classmethod
    def _known_carrier(cls, value):
        if value not in CARRIERS:
            raise ValueError(f"unknown carrier {shorten(value)}; allowed: {', '.join(sorted(CARRIERS))}")
        return value

    @model_validator(mode="after")
    def _overrides_valid(self):
        carrier_parameters(self.carrier, self.carrier_overrides)  # raises ValueError naming the key
        kinds = [label.kind for label in self.labels]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"at most one label of each kind per agent, got {kinds}")
        if self.magnet is not None and "iron_oxide" not in kinds:
            raise ValueError("magnet: only a magnetic carrier (an agent with an iron_oxide label) is pulled by a magnet")
        return self


# --- schedule, modalities, scenario ----------------------------------------------------


class ScheduleSpec(SpecModel):
    """When images are taken, hours after the first injection."""

    times_h: Annotated[list[Annotated[float, Field(ge=0.0, le=MAX_TIME_H)]], Field(min_length=1, max_length=64)]

    @field_validator("times_h")
    @classmethod
    def _increasing(cls, times):
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise ValueError(f"times_h must be strictly increasing, got {times}")
        return times


class ModalitiesSpec(SpecModel):
    """Which modalities run (``enabled``), and each one's settings table ``[modalities.<name>]``.

    This core model keeps the settings tables as given; the registry's model
    (:func:`imagingsim.modalities.registry.scenario_model`) validates each one with its
    modality's ``Spec`` and fills in the defaults of the tables left out.
    """

    model_config = ConfigDict(extra="allow")

    enabled: list[str] = Field(default_factory=list)

    @field_validator("enabled")
    @classmethod
    def _listed_once(cls, enabled):
        if len(set(enabled)) != len(enabled):
            raise ValueError(f"modalities listed twice: {enabled}")
        return enabled


class Scenario(SpecModel):
    """A complete, validated scenario."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+$", max_length=64)]
    description: Annotated[str, Field(max_length=500)] = ""
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    subject_id: Annotated[str, Field(pattern=NAME_PATTERN, max_length=32)] = "01"
    phantom: PhantomSpec = Field(default_factory=PhantomSpec)
    agents: Annotated[list[AgentSpec], Field(min_length=1, max_length=8)]
    schedule: ScheduleSpec
    modalities: ModalitiesSpec = Field(default_factory=ModalitiesSpec)

    @field_validator("agents")
    @classmethod
    def _unique_agents(cls, agents):
        names = [a.name for a in agents]
        if len(set(names)) != len(names):
            raise ValueError(f"agent names must be unique, got {names}")
        return agents


def positron_nuclide(agent: AgentSpec) -> str | None:
    """The positron-emitting nuclide labelling ``agent``, or None."""
    for label in agent.labels:
        if label.kind == "radionuclide" and label.nuclide in POSITRON_EMITTERS:
            return label.nuclide
    return None


def specific_activity_bq_per_ug(agent: AgentSpec, nuclide: str) -> float:
    """Activity per ug of carrier at injection of ``agent``'s ``nuclide`` label, Bq/ug.

    ``specific_activity_MBq_per_mg`` x 1e3 (1 MBq/mg = 1e6 Bq / 1e3 ug).
    """
    for label in agent.labels:
        if label.kind == "radionuclide" and label.nuclide == nuclide:
            return label.specific_activity_MBq_per_mg * 1e3
    raise ValueError(f"agent {agent.name!r} has no radionuclide label {nuclide!r}")


def single_photon_nuclide(agent: AgentSpec) -> str | None:
    """The single-photon nuclide labelling ``agent``, or None."""
    for label in agent.labels:
        if label.kind == "radionuclide" and label.nuclide in SINGLE_PHOTON_EMITTERS:
            return label.nuclide
    return None


# --- loading, overrides, errors --------------------------------------------------------


def _format_location(loc: tuple) -> str:
    parts: list[str] = []
    for i, item in enumerate(loc):
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in LABEL_KINDS and i > 0 and isinstance(loc[i - 1], int):
            continue  # pydantic inserts the discriminator tag; the user never wrote it
        elif item.startswith("function-") or item in ("list", "dict"):
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "scenario"


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    message = first["msg"].replace("Value error, ", "")
    message = message[0].lower() + message[1:] if message else message
    field = shorten(_format_location(first["loc"]), 60, quote=False)  # unknown keys are the user's text
    if first["type"] == "extra_forbidden":
        return f"{field}: unknown key (not a field of this section)"
    if first["type"] == "missing":
        return f"{field}: required field is missing"
    got = first.get("input")
    shown = None if isinstance(got, (dict, list)) or got is None else shorten(got, 60)
    message = " ".join(message.split())
    suffix = "" if shown is None or shown in message else f" (got {shown})"
    # The message is ours (a user's value in it is already shortened): it gets what is left
    # of a line under 300 characters after the field and the echoed value.
    room = MESSAGE_CHARS - len(field) - len(suffix) - len(": ... (NNNNN characters)")
    return f"{field}: {shorten(message, room, quote=False)}{suffix}"


def validate_scenario(data: dict[str, Any], model: type[Scenario] = Scenario) -> Scenario:
    """Validate a plain dict into a :class:`Scenario`, raising a one-line :class:`ScenarioError`.

    ``model`` is the core :class:`Scenario` (modality settings kept as raw tables) or the
    registry's model with every modality's settings
    (:func:`imagingsim.modalities.registry.scenario_model`; :func:`imagingsim.load_scenario`
    uses that one).
    """
    if not isinstance(data, dict):
        raise ScenarioError("scenario: must be a TOML table")
    check_raw(data, "scenario")
    try:
        # Strictly, through JSON: a bool is not a number, "0.5" is not a number, 2.0 is not
        # an integer (lax Python-mode validation would accept all three), while an array
        # still fills a tuple and an integer a float, as TOML writes them.
        text = json.dumps(data)
        return model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise ScenarioError(_one_line(exc)) from None
    except (TypeError, ValueError) as exc:  # a Python caller's value JSON cannot write: never a traceback
        raise ScenarioError(shorten(f"scenario: {exc}", 200, quote=False)) from None


def shorten(value: Any, limit: int = ECHO_CHARS, *, quote: bool = True) -> str:
    """A user's value as it may appear in a one-line message.

    Control characters escaped (so the message stays one line), at most ``limit`` characters
    of that shown, strings quoted unless ``quote`` is false, and the full length appended
    when it was cut: ``'xxxx...' (50000000 characters)``.
    """
    text = value if isinstance(value, str) else repr(value)
    shown, used = [], 0
    for c in text[:limit]:
        piece = c if c.isprintable() else repr(c)[1:-1]
        if used + len(piece) > limit:
            break
        shown.append(piece)
        used += len(piece)
    head = "".join(shown)
    if quote and isinstance(value, str):
        head = f"'{head}'"
    return head if len(shown) == len(text) else f"{head}... ({len(text)} characters)"


#: Lone surrogates: how Python holds bytes that are not UTF-8 (command-line arguments, file names).
_SURROGATE = re.compile(r"[\ud800-\udfff]")

#: What the pre-scan of TOML text skips: strings and comments, whose brackets and dots are
#: text. Possessive (``*+``, ``++``), so a huge or unterminated string is one linear pass; the
#: lookahead lets the engine skip plain text fast.
_TOML_STRING_OR_COMMENT = re.compile(
    "(?=[\"'#])(?:"
    r'"{3}(?:[^"\\]++|\\[\s\S]|"{1,2}(?!"))*+(?:"{3,5}|\Z)'  # multi-line basic string
    r"|'{3}(?:[^']++|'{1,2}(?!'))*+(?:'{3,5}|\Z)"  # multi-line literal string
    r'|"(?:[^"\\\n]++|\\.)*+"?'  # basic string (unterminated: to its line's end)
    r"|'[^'\n]*+'?"  # literal string
    r"|#[^\n]*+"  # comment
    ")"
)
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def check_raw(value: Any, where: str, limit: int = MAX_NESTING) -> None:
    """Refuse what no scenario field takes, before it reaches the recursive copy and validation.

    Arrays and tables nested deeper than ``limit``, TOML dates and times, and text holding
    lone surrogates (bytes that were not UTF-8, e.g. in a command-line argument). The walk
    is iterative: no recursion however deep the input.

    Raises
    ------
    ScenarioError
        One line naming the field (``where`` for the top) and what is allowed.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > limit:
            raise ScenarioError(f"{where}: nested deeper than {limit} levels (arrays and tables); not allowed")
        if isinstance(item, dict):
            # reversed: the stack then pops in file order, so the first offender is named
            stack.extend(reversed([(v, f"{path}.{k}" if path else str(k), depth + 1) for k, v in item.items()]))
        elif isinstance(item, (list, tuple)):  # a Python caller's tuple is an array too
            stack.extend(reversed([(v, f"{path}[{n}]", depth + 1) for n, v in enumerate(item)]))
        elif isinstance(item, (datetime.date, datetime.time)):  # datetime is a date
            raise ScenarioError(f"{shorten(path or where, quote=False)}: a TOML date or time is not a value any field "
                                f"takes (got {shorten(str(item))})")
        elif isinstance(item, str) and (bad := _SURROGATE.search(item)):
            raise ScenarioError(f"{shorten(path or where, quote=False)}: U+{ord(bad.group()):04X} at position "
                                f"{bad.start()} is not a character (bytes that are not UTF-8); not allowed")


def check_text_nesting(text: str, where: str, limit: int = MAX_NESTING) -> None:
    """Refuse TOML text nested deeper than ``limit`` before :mod:`tomllib` parses it.

    tomllib recurses once per array or inline table (a stack overflow past ~330 levels) and
    takes quadratic time in the segments of a dotted key (minutes for 100000). Outside
    strings and comments, each open bracket is a level of the parsed table and a key of n
    dots nests n + 1 levels: nothing :func:`check_raw` would accept is refused here, and
    what passes parses quickly.

    Raises
    ------
    ScenarioError
        One line naming ``where``.
    """
    structure = _TOML_STRING_OR_COMMENT.sub("0", text)
    # A run of dots with no '=', ',', bracket or line end between belongs to one key; a value
    # (a float, a time) has at most one dot.
    dotted = re.search(rf"\.(?:[^.=,\[\]{{}}\n]*+\.){{{limit - 1}}}", structure)
    # A running count of brackets, all in C: open ones add, closing ones subtract.
    levels = itertools.accumulate(map(_BRACKET_STEP.__getitem__, re.sub(r"[^\[\]{}]++", "", structure)))
    if dotted or any(map(limit.__lt__, levels)):
        raise ScenarioError(f"{where}: nested deeper than {limit} levels (arrays and tables); not allowed")


def builtin_names() -> list[str]:
    """Names of the scenarios shipped in the package (``imagingsim.phantoms``)."""
    return sorted(p.name[:-5] for p in resources.files("imagingsim.phantoms").iterdir() if p.name.endswith(".toml"))


DEFAULT_SCENARIO = "mouse_peg_liposome"


def read_scenario_toml(name_or_path: str | Path | None = None) -> dict[str, Any]:
    """Read a scenario's raw TOML table from a built-in name or a file path.

    Parameters
    ----------
    name_or_path : str or Path, optional
        A built-in scenario name (see :func:`builtin_names`), or a path to a ``.toml`` file.
        None selects the default scenario.
    """
    name_or_path = DEFAULT_SCENARIO if name_or_path is None else name_or_path
    path = Path(name_or_path)
    shown = shorten(str(path))
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        stat = None
    except OSError as exc:  # a symbolic link loop, a name too long, a path through a file...
        raise ScenarioError(f"scenario: {shown}: {_os_reason(exc, path)}") from None
    except ValueError:  # Python refuses a NUL character before asking the system
        raise ScenarioError(f"scenario: {shown}: a NUL character in the path; not allowed") from None
    if stat is None:
        if not path.suffix and str(name_or_path) in builtin_names():
            text = resources.files("imagingsim.phantoms").joinpath(f"{name_or_path}.toml").read_text(encoding="utf-8")
            return parse_toml(text)
        if path.suffix == ".toml" or os.sep in str(path):
            raise ScenarioError(f"scenario: file not found: {shown}")
        message = f"scenario: no built-in scenario {shown}; built-ins: {', '.join(builtin_names())}"
        if len(message) > MESSAGE_CHARS:  # a long name: the list would not fit on one line
            message = f"scenario: no built-in scenario {shown}; `imagingsim phantoms` lists the built-ins"
        raise ScenarioError(message)
    if stat_module.S_ISDIR(stat.st_mode):
        raise ScenarioError(f"scenario: {shown} is a directory, not a scenario .toml file")
    if not stat_module.S_ISREG(stat.st_mode):  # a pipe would block, /dev/zero never end
        raise ScenarioError(f"scenario: {shown} is not a regular file (a device, pipe or socket)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"scenario: {shown} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ScenarioError(f"scenario: {shown}: {_os_reason(exc, path)}") from None
    return parse_toml(text)


def _os_reason(exc: OSError, path: Path) -> str:
    """The operating system's reason for refusing ``path``, in words, with sizes where they help."""
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop"
    if exc.errno == errno.ENAMETOOLONG:
        longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
        if longest > 255:  # NAME_MAX of the usual file systems
            return f"a name of {longest} bytes, too long for the file system"
        return f"a path of {len(os.fsencode(str(path)))} bytes, too long for the file system"
    return (exc.strerror or str(exc)).lower()


def parse_toml(text: str) -> dict[str, Any]:
    """Parse scenario TOML text into a raw table, raising a one-line :class:`ScenarioError`."""
    check_text_nesting(text, "scenario")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"scenario: invalid TOML ({shorten(str(exc), quote=False)})") from None
    except ValueError as exc:  # an integer past Python's 4300-digit conversion limit
        raise ScenarioError(f"scenario: unreadable TOML value ({shorten(str(exc), quote=False)})") from None
    check_raw(data, "scenario")
    return data


def _parse_value(key: str, text: str) -> Any:
    """Parse an override value as a TOML value, falling back to a bare string."""
    where = f"--set {shorten(key)}"
    check_text_nesting(text, where)
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    except ValueError as exc:  # an integer past Python's 4300-digit conversion limit
        raise ScenarioError(f"{where}: unreadable TOML value ({shorten(str(exc), quote=False)})") from None
    check_raw(value, where)
    return value


#: Characters that have no place in a ``--set`` argument: C0 controls (newline and tab
#: included: tomllib would stop at a newline and drop the rest), DEL and C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

_KEY_PART = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[([0-9]+)\])?$")


def set_path(data: dict[str, Any], key: str, value: Any, *, label: str) -> None:
    """Set the field at the dotted ``key`` of a raw scenario table to ``value``, in place.

    Keys may index lists (``agents[0].dose_mg_per_kg``); missing tables are created, list
    indices must exist. The paths of ``--set`` and of a cohort's ``[vary]`` table.

    Raises
    ------
    ScenarioError
        One line starting with ``label``: a bad key segment or index, a path through a value
        that is not a table, or a key nested deeper than :data:`MAX_NESTING`.
    """
    parts = key.strip().split(".")
    if len(parts) > MAX_NESTING:
        raise ScenarioError(f"{label}: nested deeper than {MAX_NESTING} levels; not allowed")
    target: Any = data
    for depth, part in enumerate(parts):
        match = _KEY_PART.match(part)
        if not match:
            raise ScenarioError(f"{label}: bad key segment {shorten(part)}")
        name, index = match.group(1), match.group(2)
        last = depth == len(parts) - 1
        if not isinstance(target, dict):
            above = shorten(".".join(parts[:depth]), quote=False)
            raise ScenarioError(f"{label}: {above} is not a table")
        if index is None:
            if last:
                target[name] = value
            else:
                target = target.setdefault(name, {})
            continue
        seq = target.get(name)
        size = len(seq) if isinstance(seq, list) else 0
        digits = index.lstrip("0") or "0"
        # Compared as text first: int() refuses more than 4300 digits
        if len(digits) > len(str(size)) or int(digits) >= size:
            raise ScenarioError(f"{label}: index {shorten(index, 20, quote=False)} out of range for "
                                f"{shorten(name, 40, quote=False)} (length {size})")
        if last:
            seq[int(digits)] = value
        else:
            target = seq[int(digits)]


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``dotted.key=value`` overrides to a raw scenario table (a new dict is returned).

    Keys may index lists, e.g. ``agents[0].dose_mg_per_kg=20``. Values are parsed as TOML
    (``0.4``, ``true``, ``[1, 4, 24]``, ``"text"``), else taken as a bare string.

    Raises
    ------
    ScenarioError
        One line naming the ``--set`` key: no ``=``, a control character, a bad key
        segment or index, or a value nested deeper than :data:`MAX_NESTING`.
    """
    check_raw(data, "scenario")  # the deep copy recurses
    result = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ScenarioError(f"--set {shorten(item)}: expected KEY=VALUE")
        key, _, raw = item.partition("=")
        for part, text in (("key", key), ("value", raw)):
            if bad := _CONTROL.search(text):
                raise ScenarioError(f"--set {shorten(key)}: control character U+{ord(bad.group()):04X} in the {part} "
                                    f"(position {bad.start()}); not allowed")
        set_path(result, key, _parse_value(key, raw.strip()), label=f"--set {shorten(key)}")
    return result


def load_scenario(
    name_or_path: str | Path | None = None, overrides: list[str] | None = None, model: type[Scenario] = Scenario
) -> Scenario:
    """Load, override and validate a scenario's core (see :func:`validate_scenario` for ``model``).

    Parameters
    ----------
    name_or_path : str or Path, optional
        Built-in name or TOML path; None for the default scenario.
    overrides : list of str, optional
        ``dotted.key=value`` strings applied before validation.
    model : type, optional
        The model validated against; the core :class:`Scenario` by default.
    """
    data = read_scenario_toml(name_or_path)
    return validate_scenario(apply_overrides(data, overrides or []), model)


def scenario_description(name: str) -> str:
    """The one-line description of a built-in scenario (without full validation)."""
    data = read_scenario_toml(name)
    return str(data.get("description", "")).strip().splitlines()[0] if data.get("description") else ""
