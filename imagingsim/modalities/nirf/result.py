"""What the NIRF forward model hands to the writer: planar images, truth and the set-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imagingsim.grid import ImageGrid
from imagingsim.modalities.nirf.tables import Camera, CameraSetup, EmissionBand, Fluorophore

#: Columns of :attr:`NIRFAcquisition.depth_sensitivity`, with their units.
DEPTH_COLUMNS: dict[str, str] = {
    "depth_mm": "mm",
    "excitation_fluence_per_irradiance": "dimensionless (fluence rate / incident irradiance)",
    "escape_fraction": "dimensionless (photons leaving the surface / photons emitted)",
    "psf_fwhm_mm": "mm",
    "peak_pixel_fraction": "dimensionless (fraction of the escaping light in the pixel above the source)",
    "photoelectrons_per_emitted_photon": "photoelectrons",
    "photoelectrons_per_fmol": "photoelectrons per fmol of dye (whole image)",
    "detection_limit_fmol": "fmol",
}


@dataclass(frozen=True, eq=False)
class NIRFAcquisition:
    """One planar NIR fluorescence study: an image at each schedule time.

    Images are indexed ``[u, v]`` along the two world axes of the image plane, both in
    increasing world order (``image_axes``; e.g. ``("x", "z")`` for a dorsal view), with the
    phantom grid's pixel size; ``image_grid`` is the 3-D grid one voxel thick along the view
    axis (at the body surface facing the camera) that places them in the world.

    Attributes
    ----------
    view, mode, window : str
        ``modalities.nirf`` settings (``window`` resolved: "NIR-I" or "NIR-II").
    dye : Fluorophore
        The dye of the imaging channel (the first agent with a fluorophore label).
    band : EmissionBand
        Emission filter band of ``window`` for ``dye``.
    camera : Camera
    setup : CameraSetup
        The camera imaging the phantom's voxels: binning, magnification, binned read noise,
        dark current and saturation level.
    excitation_nm, emission_nm : float
        Wavelengths at which the excitation and emission tissue optics are evaluated, nm.
    exposure_s, irradiance_mW_per_cm2, autofluorescence_scale : float
        Scenario settings.
    times_h : tuple of float
        Schedule times, hours after t = 0.
    imaged_agents : tuple of str
        Agents whose dye is the channel's dye (their sum is imaged).
    dye_agents : dict of str -> str
        Every agent with a fluorophore label -> its dye.
    image_axes : tuple of str
        World axes of the image's ``[u, v]`` indices.
    image_grid : ImageGrid
        Grid of the images as 3-D volumes (one voxel along the view axis).
    images_e : device array ``(nu, nv, T)``, float32
        Measured images, photoelectrons (Poisson shot noise + Gaussian read noise, clipped at
        ``setup.saturation_e``; may be < 0).
    expected_e : device array ``(nu, nv, T)``, float32
        Noise-free expected images (dye + autofluorescence + dark current), photoelectrons;
        not clipped at saturation.
    saturated_pixels : tuple of int
        Per time, the number of measured pixels clipped at ``setup.saturation_e``.
    peak_expected_e : tuple of float
        Per time, the largest expected pixel value, photoelectrons.
    background_e : device array ``(nu, nv)``, float32
        The expected autofluorescence + dark-current part (the same at every time).
    dye_nmol_per_ml : dict of str -> device array ``(nx, ny, nz, T)``, float32
        Dye concentration of every fluorophore agent, nmol/mL.
    photons_per_s_per_mm2 : float
        Transmitted excitation photon irradiance, photons/(s mm^2).
    photoelectrons_per_photon : float
        Collection efficiency x optics transmission x QE: photoelectrons per exiting photon.
    reference_optics : dict
        Optics of the reference tissue at the two wavelengths (mu_a, mu_s', mu_eff, ...).
    depth_sensitivity : list of dict
        Rows with :data:`DEPTH_COLUMNS` for the reference tissue: the set-up's response vs depth.
    background_noise_e : float
        Noise sd of a pixel of the reference tissue without dye (autofluorescence, dark, read), e-.
    surface_index : int
        Index along the view axis (phantom grid) of the image plane.
    """

    view: str
    mode: str
    window: str
    dye: Fluorophore
    band: EmissionBand
    camera: Camera
    setup: CameraSetup
    excitation_nm: float
    emission_nm: float
    exposure_s: float
    irradiance_mW_per_cm2: float
    autofluorescence_scale: float
    times_h: tuple[float, ...]
    imaged_agents: tuple[str, ...]
    dye_agents: dict[str, str]
    image_axes: tuple[str, str]
    image_grid: ImageGrid
    images_e: Any
    expected_e: Any
    saturated_pixels: tuple[int, ...]
    peak_expected_e: tuple[float, ...]
    background_e: Any
    dye_nmol_per_ml: dict[str, Any]
    photons_per_s_per_mm2: float
    photoelectrons_per_photon: float
    reference_optics: dict[str, float]
    depth_sensitivity: list[dict[str, float]]
    background_noise_e: float
    surface_index: int
    timings_s: dict[str, float] = field(default_factory=dict)


__all__ = ["DEPTH_COLUMNS", "NIRFAcquisition"]
