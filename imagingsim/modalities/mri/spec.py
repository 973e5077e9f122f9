"""The ``[modalities.mri]`` settings of a scenario (validated, frozen, units in the names)."""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import Field, model_validator

from imagingsim.scenario import SpecModel


class MRISpec(SpecModel):
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
        "(liver data imply several-fold: Stirrat et al., JCMR 2016;18:46).",
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
