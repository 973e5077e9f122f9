"""The ``[modalities.pet]`` settings of a scenario (validated, frozen, units in the names)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from imagingsim.scenario import NAME_PATTERN, POSITRON_EMITTERS, AgentSpec, SpecModel, positron_nuclide


class PETSpec(SpecModel):
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


def pet_tracer(spec: PETSpec, agents) -> AgentSpec:
    """The agent PET is named after and decay-corrected for: ``spec.tracer``, else the first
    agent with a positron-emitting label (see :class:`PETSpec`)."""
    emitters = [a for a in agents if positron_nuclide(a) is not None]
    return next(a for a in emitters if spec.tracer is None or a.name == spec.tracer)


def check_tracer(spec: PETSpec, scenario) -> None:
    """Refuse a PET scan without a positron-emitting tracer that is injected before the last time.

    Raises
    ------
    ValueError
        One line naming ``modalities.pet.tracer`` or ``modalities.enabled``.
    """
    emitters = [a.name for a in scenario.agents if positron_nuclide(a) is not None]
    if spec.tracer is not None and spec.tracer not in emitters:
        raise ValueError(
            f"modalities.pet.tracer {spec.tracer!r} is not an agent with a positron-emitting label; "
            f"allowed: {', '.join(emitters) or 'none (label an agent with ' + '/'.join(POSITRON_EMITTERS) + ')'}"
        )
    if not emitters:
        raise ValueError(
            f"modalities.enabled has 'pet' but no agent has a positron-emitting label ({', '.join(POSITRON_EMITTERS)})"
        )
    injection_h = pet_tracer(spec, scenario.agents).injection_time_h
    if scenario.schedule.times_h[-1] < injection_h:
        raise ValueError(
            f"modalities.pet: no schedule time at or after the PET tracer's injection ({injection_h:g} h); "
            "PET frames start at the tracer's injection"
        )
