"""The ``[modalities.photoacoustic]`` settings of a scenario (validated, frozen, units in the names)."""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from imagingsim.scenario import SpecModel

#: Wavelength range of the absorber table (``data/photoacoustic.toml``), nm.
WAVELENGTH_RANGE_NM = (680.0, 950.0)
RECON_METHODS = ("fbp", "lsq")


class PhotoacousticSpec(SpecModel):
    """Multi-wavelength photoacoustic tomography of one axial slice, one scan per schedule time."""

    wavelengths_nm: Annotated[list[Annotated[float, Field(ge=WAVELENGTH_RANGE_NM[0], le=WAVELENGTH_RANGE_NM[1])]],
                              Field(min_length=2, max_length=16)] = Field(
        default_factory=lambda: [700.0, 730.0, 760.0, 800.0, 850.0, 900.0, 930.0],
        description="Laser wavelengths, nm, strictly increasing, within 680-950 nm.",
    )
    detector: Literal["ring", "linear"] = Field(
        "ring", description="Ring array around the slice (surround illumination) or linear array on one side "
        "(illumination from that side)."
    )
    side: Literal["dorsal", "ventral"] = Field(
        "dorsal", description="Linear array only: the body side it lies on (dorsal = posterior, -y)."
    )
    n_elements: Annotated[int, Field(ge=8, le=1024)] = Field(128, description="Detector elements (point detectors).")
    angular_coverage_deg: Annotated[float, Field(gt=0.0, le=360.0)] = Field(
        360.0, description="Ring only: arc covered by the elements, degrees (centred on the dorsal side)."
    )
    pitch_mm: Annotated[float, Field(gt=0.0, le=5.0)] = Field(0.3, description="Linear array only: element pitch, mm.")
    speed_of_sound_m_per_s: Annotated[float, Field(ge=1300.0, le=1800.0)] = Field(
        1540.0, description="Homogeneous speed of sound of tissue and coupling medium, m/s."
    )
    center_frequency_MHz: Annotated[float, Field(gt=0.0, le=50.0)] = Field(
        2.25, description="Centre of the detectors' Gaussian band-pass, MHz."
    )
    bandwidth_percent: Annotated[float, Field(ge=0.0, le=200.0)] = Field(
        100.0, description="FWHM of the band-pass as % of the centre frequency; 0: ideal broadband detectors."
    )
    sampling_rate_MHz: Annotated[float, Field(ge=1.0, le=500.0)] = Field(
        10.0, description="Sampling rate of the detector signals, MHz."
    )
    fluence_mJ_per_cm2: Annotated[float, Field(gt=0.0, le=100.0)] = Field(
        20.0, description="Radiant exposure per pulse on the skin (ANSI limit at 700 nm: 20 mJ/cm^2)."
    )
    grueneisen: Annotated[float, Field(gt=0.0, le=2.0)] = Field(
        0.2, description="Grueneisen parameter of tissue (dimensionless; data/photoacoustic.toml)."
    )
    snr_db: Annotated[float, Field(ge=-20.0, le=200.0)] = Field(
        40.0, description="20 log10(peak noise-free signal / noise sd), over the whole study."
    )
    recon: Annotated[list[Literal[RECON_METHODS]], Field(min_length=1, max_length=2)] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["fbp", "lsq"], description="Reconstructions: filtered back-projection, least squares."
    )
    lsq_iterations: Annotated[int, Field(ge=1, le=500)] = Field(
        20, description="CGLS iterations of the least-squares reconstruction (early stopping regularises)."
    )
    unmix_from: Literal[RECON_METHODS] = Field(  # type: ignore[valid-type]
        "lsq", description="Which reconstruction the spectral unmixing reads (must be in recon)."
    )
    fluence_compensation: Literal["none", "homogeneous", "true"] = Field(
        "homogeneous", description="Also unmix images divided by a fluence: none; homogeneous (the body outline "
        "filled with typical tissue, what a user can model); true (the simulated fluence: the best any compensation "
        "can do)."
    )
    gold_form: Literal["nanosphere", "nanorod"] = Field(
        "nanosphere", description="Optical form of gold labels (the scenario gives mass, not shape)."
    )
    gold_plasmon_peak_nm: Annotated[float, Field(ge=500.0, le=1100.0)] | None = Field(
        None, description="Plasmon peak of the gold particles, nm (None: the table's for gold_form)."
    )
    slice_z_mm: float | None = Field(
        None, description="World z of the imaged axial slice, mm (None: the first tumour's centre, else the grid centre)."
    )

    @field_validator("wavelengths_nm")
    @classmethod
    def _increasing(cls, values):
        if any(b <= a for a, b in itertools.pairwise(values)):
            raise ValueError(f"wavelengths_nm must be strictly increasing, got {values}")
        return values

    @field_validator("recon")
    @classmethod
    def _once(cls, values):
        if len(set(values)) != len(values):
            raise ValueError(f"recon lists a method twice: {values}")
        return values

    @model_validator(mode="after")
    def _consistent(self):
        if self.unmix_from not in self.recon:
            raise ValueError(f"unmix_from {self.unmix_from!r} must be one of recon {self.recon}")
        if self.bandwidth_percent > 0:
            upper_MHz = self.center_frequency_MHz * (1.0 + self.bandwidth_percent / 100.0)
            if self.sampling_rate_MHz < 2.0 * upper_MHz:
                raise ValueError(
                    f"sampling_rate_MHz {self.sampling_rate_MHz:g} must be >= 2 x (centre + FWHM) = {2 * upper_MHz:g} MHz"
                )
        return self
