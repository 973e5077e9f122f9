"""The ``[modalities.spect]`` settings of a scenario (validated, frozen, units in the names)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from imagingsim.scenario import NAME_PATTERN, SINGLE_PHOTON_EMITTERS, AgentSpec, SpecModel, single_photon_nuclide


class SPECTSpec(SpecModel):
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


def spect_tracer(spec: SPECTSpec, agents) -> AgentSpec:
    """The agent SPECT images and decay-corrects for: ``spec.tracer``, else the first agent
    with a single-photon label (see :class:`SPECTSpec`)."""
    emitters = [a for a in agents if single_photon_nuclide(a) is not None]
    return next(a for a in emitters if spec.tracer is None or a.name == spec.tracer)


def check_tracer(spec: SPECTSpec, scenario) -> None:
    """Refuse a SPECT scan without a single-photon tracer that is injected before the last time.

    Raises
    ------
    ValueError
        One line naming ``modalities.spect.tracer`` or ``modalities.enabled``.
    """
    emitters = [a.name for a in scenario.agents if single_photon_nuclide(a) is not None]
    allowed = ", ".join(emitters) or "none (label an agent with " + "/".join(SINGLE_PHOTON_EMITTERS) + ")"
    if spec.tracer is not None and spec.tracer not in emitters:
        raise ValueError(
            f"modalities.spect.tracer {spec.tracer!r} is not an agent with a single-photon label; allowed: {allowed}"
        )
    if not emitters:
        raise ValueError(
            "modalities.enabled has 'spect' but no agent has a single-photon label "
            f"({', '.join(SINGLE_PHOTON_EMITTERS)})"
        )
    injection_h = spect_tracer(spec, scenario.agents).injection_time_h
    if scenario.schedule.times_h[-1] < injection_h:
        raise ValueError(
            f"modalities.spect: no schedule time at or after the SPECT tracer's injection ({injection_h:g} h)"
        )
