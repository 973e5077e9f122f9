"""The camera side of NIR fluorescence imaging: excitation photon irradiance and the camera's shot, read and dark noise with saturation."""

from __future__ import annotations

from imagingsim.backend import backend_of
from imagingsim.modalities.nirf.tables import (
    LIGHT_M_PER_S,
    PLANCK_J_S,
)
from imagingsim.physics.noise import gaussian_noise, poisson_counts


def photon_irradiance(irradiance_mW_per_cm2: float, wavelength_nm: float) -> float:
    """Photons/(s mm^2) of an irradiance in mW/cm^2 at ``wavelength_nm`` (1 mW/cm^2 = 1e-5 W/mm^2)."""
    return irradiance_mW_per_cm2 * 1e-5 / (PLANCK_J_S * LIGHT_M_PER_S / (wavelength_nm * 1e-9))


def camera_noise(expected_e, read_noise_e: float, rng, *, saturation_e: float | None = None):
    """A measured image: ``min(Poisson(expected_e) + read_noise_e x N(0, 1), saturation_e)``, photoelectrons.

    Parameters
    ----------
    expected_e : device array
        Expected photoelectrons (signal + dark current) per image pixel, >= 0.
    read_noise_e : float
        Read noise of an image pixel, electrons rms (binned: ``sqrt(N)`` x a sensor pixel's,
        :attr:`~imagingsim.modalities.nirf.tables.CameraSetup.read_noise_e`).
    rng : imagingsim.backend.Generator
        ``backend.rng(seed, NIRF_NOISE_STREAM, k)``.
    saturation_e : float, optional
        Saturation level of an image pixel, electrons
        (:attr:`~imagingsim.modalities.nirf.tables.CameraSetup.saturation_e`); a saturated
        pixel reads exactly this value. None: no saturation.
    """
    measured = gaussian_noise(poisson_counts(expected_e, rng), read_noise_e, rng)
    if saturation_e is None:
        return measured
    return backend_of(measured).xp.clip(measured, None, saturation_e)
