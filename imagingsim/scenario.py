"""Scenario files: TOML validated into typed, frozen models.

A scenario fixes everything that defines one simulated subject: the phantom, the injected
agents, the imaging schedule, the modalities and the seed. Unknown keys, wrong types and
out-of-range values raise :class:`ScenarioError` with one line naming the field and the
allowed range. Dotted overrides (``--set phantom.voxel_size_mm=0.4``) go through the same
validation.
"""

from __future__ import annotations

import copy
import itertools
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

NAME_PATTERN = r"^[A-Za-z0-9]+$"  # BIDS entity values: letters and digits only
MAX_TIME_H = 24.0 * 60  # 60 days: past 89Zr's useful window, far past any nanocarrier study

#: Modalities that this version can simulate; later modules register themselves here.
AVAILABLE_MODALITIES: tuple[str, ...] = ("pet", "mri", "nirf", "spect", "ct")


class ScenarioError(ValueError):
    """Invalid scenario input; the message is one line naming the field and what is allowed."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


# --- phantom ---------------------------------------------------------------------------


class TumourSpec(_Model):
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

    @model_validator(mode="after")
    def _zones_fit(self):
        if self.necrotic_fraction + self.hypoxic_shell_fraction > 0.95:
            raise ValueError(
                "necrotic_fraction + hypoxic_shell_fraction must be <= 0.95 to leave a viable rim"
            )
        return self


class HeterogeneitySpec(_Model):
    """Seeded Gaussian random field modulating the property maps (log-normal, mean 1)."""

    correlation_length_mm: Annotated[float, Field(gt=0.0, le=200.0)] = Field(
        1.0, description="Correlation length of the Gaussian covariance exp(-r^2 / (2 l^2)), mm."
    )
    relative_sd: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.2, description="Standard deviation of the log-normal multiplier's logarithm."
    )


class PhantomSpec(_Model):
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

NUCLIDES = ("F18", "Zr89", "Cu64", "Ga68", "Tc99m", "In111", "Lu177")
#: Nuclides that decay by positron emission (imaged by PET; data/radionuclides.toml).
POSITRON_EMITTERS = ("F18", "Zr89", "Cu64", "Ga68")
#: Single-photon emitters imaged by SPECT (photopeaks in data/radionuclides.toml).
SPECT_EMITTERS = ("Tc99m", "In111", "Lu177")
DYES = ("ICG", "IRDye800CW", "Cy55", "NIRII")


class RadionuclideLabel(_Model):
    kind: Literal["radionuclide"]
    nuclide: Literal[NUCLIDES]  # type: ignore[valid-type]
    specific_activity_MBq_per_mg: Annotated[float, Field(gt=0.0, le=1e7)] = Field(
        description="Activity per mg of carrier at injection time, MBq/mg."
    )


class IronOxideLabel(_Model):
    kind: Literal["iron_oxide"]
    iron_mass_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        description="mg Fe per mg of carrier."
    )
    relaxivity: Literal["ferumoxytol"] = Field(
        "ferumoxytol", description="Relaxivity table (r1, r2, r2* per field) of data/relaxivity.toml."
    )


class FluorophoreLabel(_Model):
    kind: Literal["fluorophore"]
    dye: Literal[DYES]  # type: ignore[valid-type]
    dye_nmol_per_mg: Annotated[float, Field(gt=0.0, le=1e6)] = Field(
        description="nmol of dye per mg of carrier."
    )


class GoldLabel(_Model):
    kind: Literal["gold"]
    gold_mass_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = Field(description="mg Au per mg of carrier.")


class IodineLabel(_Model):
    kind: Literal["iodine"]
    iodine_mass_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = Field(description="mg I per mg of carrier.")


Label = Annotated[
    RadionuclideLabel | IronOxideLabel | FluorophoreLabel | GoldLabel | IodineLabel,
    Field(discriminator="kind"),
]
LABEL_KINDS = ("radionuclide", "iron_oxide", "fluorophore", "gold", "iodine")


class ReleaseSpec(_Model):
    """Payload release from the carrier: a baseline leak plus an optional stimulus trigger."""

    baseline_rate_per_h: Annotated[float, Field(ge=0.0, le=100.0)] = Field(
        0.005, description="First-order release everywhere (blood, tissue, MPS), 1/h."
    )
    trigger: Literal["none", "ph", "hypoxia"] = "none"
    triggered_rate_per_h: Annotated[float, Field(ge=0.0, le=100.0)] = Field(
        0.0, description="Extra first-order release where the trigger is fully on, 1/h."
    )
    ph_threshold: Annotated[float, Field(ge=5.0, le=7.4)] = Field(
        6.8, description="pH at which a pH trigger is half on (sigmoid of width 0.1 pH)."
    )
    po2_threshold_mmHg: Annotated[float, Field(gt=0.0, le=40.0)] = Field(
        10.0, description="pO2 at which a hypoxia trigger is half on (sigmoid of width 2 mmHg)."
    )


class PayloadSpec(_Model):
    """The drug carried inside the carrier."""

    drug: Annotated[str, Field(pattern=NAME_PATTERN, max_length=32)] = "doxorubicin"
    loading_mg_per_mg: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        0.1, description="mg of drug per mg of carrier at injection."
    )
    release: ReleaseSpec = Field(default_factory=ReleaseSpec)


class TargetingSpec(_Model):
    """Active targeting: a ligand binding the receptor map."""

    ligand: Annotated[str, Field(pattern=NAME_PATTERN, max_length=32)] = "ligand"
    binding_rate_per_h_per_nM: Annotated[float, Field(ge=0.0, le=10.0)] = Field(
        0.002, description="Extravascular carrier -> bound rate per nM of receptor, 1/(h nM)."
    )
    unbinding_rate_per_h: Annotated[float, Field(ge=0.0, le=100.0)] = Field(
        0.01, description="Bound -> free carrier rate (dissociation net of internalisation), 1/h."
    )


class AgentSpec(_Model):
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

    @field_validator("carrier")
    @classmethod
    def _known_carrier(cls, value):
        from imagingsim.data.carriers import CARRIERS

        if value not in CARRIERS:
            raise ValueError(f"unknown carrier {value!r}; allowed: {', '.join(sorted(CARRIERS))}")
        return value

    @model_validator(mode="after")
    def _overrides_valid(self):
        from imagingsim.data.carriers import carrier_parameters

        carrier_parameters(self.carrier, self.carrier_overrides)  # raises ValueError naming the key
        kinds = [label.kind for label in self.labels]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"at most one label of each kind per agent, got {kinds}")
        return self


# --- schedule, modalities, scenario ----------------------------------------------------


class ScheduleSpec(_Model):
    """When images are taken, hours after the first injection."""

    times_h: Annotated[list[Annotated[float, Field(ge=0.0, le=MAX_TIME_H)]], Field(min_length=1, max_length=64)]

    @field_validator("times_h")
    @classmethod
    def _increasing(cls, times):
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise ValueError(f"times_h must be strictly increasing, got {times}")
        return times


class PETSpec(_Model):
    """PET acquisition and reconstruction; a field left unset takes the scanner preset's value.

    One frame starts at each schedule time. Presets and their sources: data/scanners.toml.
    """

    scanner: Literal["preclinical", "clinical"] = "preclinical"
    tracer: Annotated[str, Field(pattern=NAME_PATTERN, max_length=32)] | None = Field(
        None,
        description="Agent whose positron label names the scan and sets the decay correction; "
        "default: the first agent with a positron-emitting label. Other positron emitters are "
        "still detected (a scanner cannot tell them apart).",
    )
    frame_duration_s: Annotated[float, Field(gt=0.0, le=86400.0)] | None = None
    n_views: Annotated[int, Field(ge=8, le=1024)] | None = None
    fwhm_mm: Annotated[float, Field(ge=0.0, le=20.0)] | None = Field(None, description="Scanner PSF FWHM, mm.")
    sensitivity: Annotated[float, Field(gt=0.0, le=1.0)] | None = Field(
        None, description="Absolute sensitivity: detected trues per annihilation in the field of view."
    )
    scatter_fraction: Annotated[float, Field(ge=0.0, le=0.9)] | None = None
    randoms_fraction: Annotated[float, Field(ge=0.0, le=0.9)] | None = None
    recon: Annotated[list[Literal["osem", "mlem", "fbp"]], Field(min_length=1, max_length=3)] = Field(
        default_factory=lambda: ["osem", "fbp"]
    )
    iterations: Annotated[int, Field(ge=1, le=200)] | None = Field(None, description="OSEM/MLEM iterations.")
    subsets: Annotated[int, Field(ge=1, le=64)] | None = Field(None, description="OSEM subsets (views are split evenly).")
    psf_in_model: bool = Field(True, description="Model positron range and PSF in OSEM/MLEM (resolution recovery).")
    post_filter_fwhm_mm: Annotated[float, Field(ge=0.0, le=30.0)] | None = None
    fbp_filter: Literal["ramp", "shepp-logan", "hann"] | None = None
    fbp_cutoff: Annotated[float, Field(gt=0.0, le=1.0)] | None = Field(None, description="Filter cut-off, fraction of Nyquist.")
    decay_correction: Literal["injection", "none"] = Field(
        "injection",
        description="Images decay-corrected to the tracer's injection, or not (then each frame shows its "
        "mean activity during the frame).",
    )

    @field_validator("recon")
    @classmethod
    def _unique_recon(cls, recon):
        if len(set(recon)) != len(recon):
            raise ValueError(f"recon methods listed twice: {recon}")
        return recon


class MRISpec(_Model):
    """Spoiled multi-echo gradient echo (3-D Cartesian, readout along x), one scan per schedule time."""

    field_T: Literal[1.5, 3.0, 7.0] = Field(3.0, description="Main field, T (relaxivity and baseline presets).")
    repetition_time_ms: Annotated[float, Field(gt=0.0, le=10000.0)] = 40.0
    echo_times_ms: Annotated[list[Annotated[float, Field(gt=0.0, le=1000.0)]], Field(min_length=1, max_length=32)] = (
        Field(default_factory=lambda: [2.0, 5.0, 8.0, 11.0, 14.0, 17.0, 20.0, 23.0])
    )
    flip_angle_deg: Annotated[float, Field(gt=0.0, le=90.0)] = 15.0
    noise_percent: Annotated[float, Field(ge=0.0, le=100.0)] = Field(
        2.0,
        description="BrainWeb definition: complex noise sd as a percentage of the first-echo signal of muscle.",
    )
    undersampling: Literal["none", "random", "variable_density", "poisson_disc"] = "none"
    acceleration: Annotated[float, Field(ge=1.0, le=16.0)] = Field(
        1.0, description="Fully sampled phase encodes / acquired phase encodes (1 without undersampling)."
    )
    calibration_fraction: Annotated[float, Field(ge=0.0, le=0.5)] = Field(
        0.08, description="Fully sampled centre of k-space (each phase-encode axis), fraction of its width."
    )
    n_coils: Annotated[int, Field(ge=1, le=32)] = 1
    b0_offresonance_hz: Annotated[float, Field(ge=0.0, le=500.0)] = Field(
        0.0, description="Standard deviation of a smooth seeded B0 off-resonance map, Hz (0: none)."
    )
    recon: Literal["auto", "zero_filled", "cg_sense"] = Field(
        "auto", description="auto: CG-SENSE when undersampled with several coils, else zero-filled inverse FFT."
    )
    cg_iterations: Annotated[int, Field(ge=1, le=500)] = 30
    cg_regularization: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        1e-3, description="Tikhonov weight of CG-SENSE, relative to the largest eigenvalue estimate."
    )
    clustered_iron_r2star_factor: Annotated[float, Field(ge=1.0, le=20.0)] = Field(
        3.0,
        description="Effective r2* of cell-associated (clustered, internalised) iron over that in solution "
        "(PHYSICS.md: liver data imply several-fold).",
    )

    @model_validator(mode="after")
    def _consistent(self):
        times = self.echo_times_ms
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise ValueError(f"echo_times_ms must be strictly increasing, got {times}")
        if times[-1] >= self.repetition_time_ms:
            raise ValueError(
                f"echo_times_ms must all be shorter than repetition_time_ms ({self.repetition_time_ms}), got {times[-1]}"
            )
        if (self.undersampling == "none") != (self.acceleration == 1.0):
            raise ValueError(
                "acceleration must be 1 without undersampling and > 1 with it "
                f"(undersampling {self.undersampling!r}, acceleration {self.acceleration})"
            )
        return self


class NIRFSpec(_Model):
    """Planar NIR fluorescence imaging of the body surface, one image per schedule time."""

    view: Literal["dorsal", "ventral", "left", "right"] = Field(
        "dorsal", description="Body surface facing the camera (dorsal = posterior, -y; left = -x)."
    )
    mode: Literal["epi", "trans"] = Field(
        "epi", description="Epi-illumination (light and camera on the same side) or transillumination."
    )
    window: Literal["auto", "NIR-I", "NIR-II"] = Field(
        "auto", description="Emission window; auto: the dye's own (NIR-II dyes in NIR-II, others in NIR-I)."
    )
    exposure_s: Annotated[float, Field(gt=0.0, le=600.0)] = 0.1
    irradiance_mW_per_cm2: Annotated[float, Field(gt=0.0, le=1000.0)] = Field(
        10.0, description="Excitation irradiance at the skin, mW/cm^2."
    )
    autofluorescence: Annotated[float, Field(ge=0.0, le=100.0)] = Field(
        1.0, description="Multiplier of the tabulated tissue autofluorescence (0: none)."
    )


class SPECTSpec(_Model):
    """SPECT acquisition and reconstruction; a field left unset takes the system preset's value.

    One acquisition starts at each schedule time from the tracer's injection on. Presets,
    collimators and their sources: data/spect_systems.toml.
    """

    system: Literal["preclinical", "clinical"] = "preclinical"
    tracer: Annotated[str, Field(pattern=NAME_PATTERN, max_length=32)] | None = Field(
        None, description="Agent whose single-photon label is imaged; default: the first agent with one."
    )
    collimator: Annotated[str, Field(pattern=NAME_PATTERN, max_length=32)] | None = Field(
        None, description="Collimator of data/spect_systems.toml; default: the preset's for the nuclide's energies."
    )
    n_views: Annotated[int, Field(ge=8, le=512)] | None = Field(None, description="Views over 360 degrees.")
    acquisition_time_s: Annotated[float, Field(gt=0.0, le=86400.0)] | None = Field(
        None, description="Duration of the whole acquisition (all views), s."
    )
    orbit_radius_mm: Annotated[float, Field(gt=0.0, le=1000.0)] | None = Field(
        None, description="Rotation axis to collimator face, mm; default: just clears the image box."
    )
    voxel_binning: Annotated[int, Field(ge=1, le=8)] | None = Field(
        None, description="Reconstruction voxel = this many phantom voxels along each axis (detector pixels too)."
    )
    energy_window_percent: Annotated[float, Field(gt=0.0, le=60.0)] = Field(
        20.0, description="Full width of each photopeak window, percent of the photopeak energy."
    )
    scatter: Literal["fraction", "tew"] = Field(
        "fraction",
        description="fraction: known expected scatter as the reconstruction background; tew: estimated from "
        "two narrow side windows (triple energy window).",
    )
    scatter_fraction: Annotated[float, Field(ge=0.0, le=0.9)] | None = Field(
        None, description="Scatter / (primary + scatter) in each photopeak window."
    )
    recon: Annotated[list[Literal["ac_cdr", "ac", "cdr", "none"]], Field(min_length=1, max_length=4)] = Field(
        default_factory=lambda: ["ac_cdr", "none"],
        description="OSEM variants by what the system model includes: ac = attenuation, cdr = collimator-"
        "detector response (scatter is always in the background).",
    )
    iterations: Annotated[int, Field(ge=1, le=200)] | None = None
    subsets: Annotated[int, Field(ge=1, le=64)] | None = None
    post_filter_fwhm_mm: Annotated[float, Field(ge=0.0, le=30.0)] | None = None
    decay_correction: Literal["injection", "none"] = "injection"

    @field_validator("recon")
    @classmethod
    def _unique_recon(cls, recon):
        if len(set(recon)) != len(recon):
            raise ValueError(f"recon variants listed twice: {recon}")
        return recon


class CTSpec(_Model):
    """Polyenergetic parallel-beam CT, one scan per schedule time; unset fields from the preset.

    Presets and their sources: data/ct_systems.toml.
    """

    system: Literal["preclinical", "clinical"] = "preclinical"
    kvp: Annotated[float, Field(ge=20.0, le=150.0)] | None = Field(None, description="Tube voltage, kV.")
    tube_current_time_mAs: Annotated[float, Field(gt=0.0, le=5000.0)] | None = Field(
        None, description="Tube current-time product of the whole scan, mAs."
    )
    added_filtration_mm_Al: Annotated[float, Field(ge=0.0, le=20.0)] | None = None
    added_filtration_mm_Cu: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    n_views: Annotated[int, Field(ge=8, le=4096)] | None = Field(None, description="Views over 180 degrees.")
    water_precorrection: bool = Field(
        True, description="Linearise the projections for water before FBP (removes most beam-hardening cupping)."
    )
    fbp_filter: Literal["ramp", "shepp-logan", "hann"] | None = None
    fbp_cutoff: Annotated[float, Field(gt=0.0, le=1.0)] | None = Field(None, description="Fraction of Nyquist.")
    noise: bool = Field(True, description="Poisson photon noise (false: the expected counts).")


class ModalitiesSpec(_Model):
    """Which modality forward models run, and their settings."""

    enabled: list[str] = Field(default_factory=list)
    pet: PETSpec = Field(default_factory=PETSpec)
    mri: MRISpec = Field(default_factory=MRISpec)
    nirf: NIRFSpec = Field(default_factory=NIRFSpec)
    spect: SPECTSpec = Field(default_factory=SPECTSpec)
    ct: CTSpec = Field(default_factory=CTSpec)

    @field_validator("enabled")
    @classmethod
    def _available(cls, enabled):
        unknown = [m for m in enabled if m not in AVAILABLE_MODALITIES]
        if unknown:
            allowed = ", ".join(AVAILABLE_MODALITIES) or "none yet (ground truth only)"
            raise ValueError(f"unknown modality {unknown[0]!r}; allowed: {allowed}")
        if len(set(enabled)) != len(enabled):
            raise ValueError(f"modalities listed twice: {enabled}")
        return enabled


class Scenario(_Model):
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

    @model_validator(mode="after")
    def _pet_has_a_tracer(self):
        if "pet" not in self.modalities.enabled and self.modalities.pet.tracer is None:
            return self
        emitters = [a.name for a in self.agents if positron_nuclide(a) is not None]
        tracer = self.modalities.pet.tracer
        if tracer is not None and tracer not in emitters:
            raise ValueError(
                f"modalities.pet.tracer {tracer!r} is not an agent with a positron-emitting label; "
                f"allowed: {', '.join(emitters) or 'none (label an agent with ' + '/'.join(POSITRON_EMITTERS) + ')'}"
            )
        if "pet" in self.modalities.enabled and not emitters:
            raise ValueError(
                "modalities.enabled has 'pet' but no agent has a positron-emitting label "
                f"({', '.join(POSITRON_EMITTERS)})"
            )
        if "pet" in self.modalities.enabled:
            injection_h = self.pet_tracer().injection_time_h
            if self.schedule.times_h[-1] < injection_h:
                raise ValueError(
                    f"modalities.pet: no schedule time at or after the PET tracer's injection ({injection_h:g} h); "
                    "PET frames start at the tracer's injection"
                )
        return self

    @model_validator(mode="after")
    def _nirf_has_a_dye(self):
        if "nirf" in self.modalities.enabled and not any(
            label.kind == "fluorophore" for agent in self.agents for label in agent.labels
        ):
            raise ValueError(
                f"modalities.enabled has 'nirf' but no agent has a fluorophore label ({', '.join(DYES)})"
            )
        return self

    @model_validator(mode="after")
    def _spect_has_a_tracer(self):
        if "spect" not in self.modalities.enabled and self.modalities.spect.tracer is None:
            return self
        emitters = [a.name for a in self.agents if spect_nuclide(a) is not None]
        tracer = self.modalities.spect.tracer
        allowed = ", ".join(emitters) or "none (label an agent with " + "/".join(SPECT_EMITTERS) + ")"
        if tracer is not None and tracer not in emitters:
            raise ValueError(
                f"modalities.spect.tracer {tracer!r} is not an agent with a single-photon label; allowed: {allowed}"
            )
        if "spect" in self.modalities.enabled:
            if not emitters:
                raise ValueError(
                    f"modalities.enabled has 'spect' but no agent has a single-photon label ({', '.join(SPECT_EMITTERS)})"
                )
            injection_h = self.spect_tracer().injection_time_h
            if self.schedule.times_h[-1] < injection_h:
                raise ValueError(
                    f"modalities.spect: no schedule time at or after the SPECT tracer's injection ({injection_h:g} h)"
                )
        return self

    def spect_tracer(self) -> AgentSpec:
        """The agent SPECT images and decay-corrects for (see :class:`SPECTSpec`)."""
        name = self.modalities.spect.tracer
        emitters = [a for a in self.agents if spect_nuclide(a) is not None]
        return next(a for a in emitters if name is None or a.name == name)

    def pet_tracer(self) -> AgentSpec:
        """The agent PET is named after and decay-corrected for (see :class:`PETSpec`)."""
        name = self.modalities.pet.tracer
        emitters = [a for a in self.agents if positron_nuclide(a) is not None]
        return next(a for a in emitters if name is None or a.name == name)


def time_label(time_h: float) -> str:
    """The BIDS label (letters and digits) of a schedule time, as used by ``acq-<label>``.

    >>> [time_label(t) for t in (24.0, 0.5, 1.0, 0.25, 168.0)]
    ['24h', '0p5h', '1h', '0p25h', '168h']
    """
    text = f"{float(time_h):.6f}".rstrip("0").rstrip(".")
    return text.replace(".", "p") + "h"


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


def spect_nuclide(agent: AgentSpec) -> str | None:
    """The single-photon nuclide labelling ``agent`` (SPECT), or None."""
    for label in agent.labels:
        if label.kind == "radionuclide" and label.nuclide in SPECT_EMITTERS:
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
    field = _format_location(first["loc"])
    if first["type"] == "extra_forbidden":
        return f"{field}: unknown key (not a field of this section)"
    if first["type"] == "missing":
        return f"{field}: required field is missing"
    got = first.get("input")
    suffix = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    return " ".join(f"{field}: {message}{suffix}".split())


def validate_scenario(data: dict[str, Any]) -> Scenario:
    """Validate a plain dict into a :class:`Scenario`, raising a one-line :class:`ScenarioError`."""
    if not isinstance(data, dict):
        raise ScenarioError("scenario: must be a TOML table")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_one_line(exc)) from None
    except (TypeError, ValueError, RecursionError) as exc:  # defensive: never a traceback
        raise ScenarioError(f"scenario: {exc}".splitlines()[0]) from None


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
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ScenarioError(f"scenario: file not found: {path}")
        text = path.read_text(encoding="utf-8", errors="replace")
    else:
        names = builtin_names()
        if str(name_or_path) not in names:
            raise ScenarioError(f"scenario: no built-in scenario {str(name_or_path)!r}; built-ins: {', '.join(names)}")
        text = resources.files("imagingsim.phantoms").joinpath(f"{name_or_path}.toml").read_text(encoding="utf-8")
    return parse_toml(text)


def parse_toml(text: str) -> dict[str, Any]:
    """Parse scenario TOML text into a raw table, raising a one-line :class:`ScenarioError`."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"scenario: invalid TOML ({exc})".splitlines()[0]) from None


def _parse_value(text: str) -> Any:
    """Parse an override value as a TOML value, falling back to a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


_KEY_PART = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$")


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``dotted.key=value`` overrides to a raw scenario table (a new dict is returned).

    Keys may index lists, e.g. ``agents[0].dose_mg_per_kg=20``. Values are parsed as TOML
    (``0.4``, ``true``, ``[1, 4, 24]``, ``"text"``), else taken as a bare string.
    """
    result = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ScenarioError(f"--set {item!r}: expected KEY=VALUE")
        key, _, raw = item.partition("=")
        parts = key.strip().split(".")
        target: Any = result
        for depth, part in enumerate(parts):
            match = _KEY_PART.match(part)
            if not match:
                raise ScenarioError(f"--set {key!r}: bad key segment {part!r}")
            name, index = match.group(1), match.group(2)
            last = depth == len(parts) - 1
            if not isinstance(target, dict):
                raise ScenarioError(f"--set {key!r}: {'.'.join(parts[:depth])} is not a table")
            if index is None:
                if last:
                    target[name] = _parse_value(raw.strip())
                else:
                    target = target.setdefault(name, {})
                continue
            seq = target.get(name)
            if not isinstance(seq, list) or int(index) >= len(seq):
                size = len(seq) if isinstance(seq, list) else 0
                raise ScenarioError(f"--set {key!r}: index {index} out of range for {name} (length {size})")
            if last:
                seq[int(index)] = _parse_value(raw.strip())
            else:
                target = seq[int(index)]
    return result


def load_scenario(name_or_path: str | Path | None = None, overrides: list[str] | None = None) -> Scenario:
    """Load, override and validate a scenario.

    Parameters
    ----------
    name_or_path : str or Path, optional
        Built-in name or TOML path; None for the default scenario.
    overrides : list of str, optional
        ``dotted.key=value`` strings applied before validation.
    """
    data = read_scenario_toml(name_or_path)
    return validate_scenario(apply_overrides(data, overrides or []))


def scenario_description(name: str) -> str:
    """The one-line description of a built-in scenario (without full validation)."""
    data = read_scenario_toml(name)
    return str(data.get("description", "")).strip().splitlines()[0] if data.get("description") else ""
