"""Photons to photoelectrons: the excitation photon irradiance, the detection gain and the camera readout noise.

The camera model (binning, dark current, saturation) and its presets are
:class:`~imagingsim.modalities.nirf.tables.CameraSetup`; the readout is described in
:mod:`imagingsim.modalities.nirf.acquire` ("Camera").
"""

from __future__ import annotations

from imagingsim.backend import backend_of
from imagingsim.modalities.nirf.optics import specular_reflection
from imagingsim.modalities.nirf.tables import LIGHT_M_PER_S, PLANCK_J_S, CameraSetup, optics_table
from imagingsim.physics.noise import gaussian_noise, poisson_counts

#: Random stream of NIRF camera noise: the generator key is (seed, NIRF_NOISE_STREAM, time index).
NIRF_NOISE_STREAM = 0xF10


def photon_irradiance(irradiance_mW_per_cm2: float, wavelength_nm: float) -> float:
    """Photons/(s mm^2) of an irradiance in mW/cm^2 at ``wavelength_nm`` (1 mW/cm^2 = 1e-5 W/mm^2)."""
    return irradiance_mW_per_cm2 * 1e-5 / (PLANCK_J_S * LIGHT_M_PER_S / (wavelength_nm * 1e-9))


def transmitted_photon_irradiance(irradiance_mW_per_cm2: float, wavelength_nm: float) -> float:
    """Excitation photons/(s mm^2) entering the skin: :func:`photon_irradiance` less the specular reflection.

    Parameters
    ----------
    irradiance_mW_per_cm2 : float
        Excitation irradiance at the skin, mW/cm^2.
    wavelength_nm : float
        Excitation wavelength, nm.
    """
    transmitted = 1.0 - specular_reflection(optics_table().refractive_index)
    return photon_irradiance(irradiance_mW_per_cm2, wavelength_nm) * transmitted


def photoelectrons_per_photon(setup: CameraSetup, wavelength_nm: float) -> float:
    """Photoelectrons per photon leaving the skin: collection efficiency x optics transmission x QE.

    Parameters
    ----------
    setup : CameraSetup
        The camera imaging the phantom's voxels (its collection efficiency at the working distance).
    wavelength_nm : float
        Emission wavelength at which the quantum efficiency is taken, nm.
    """
    return setup.collection_efficiency * setup.camera.optics_transmission * setup.camera.qe(wavelength_nm)


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

    Returns
    -------
    device array, float64, shape of ``expected_e``
        Measured photoelectrons (may be < 0 from the read noise).
    """
    measured = gaussian_noise(poisson_counts(expected_e, rng), read_noise_e, rng)
    if saturation_e is None:
        return measured
    return backend_of(measured).xp.clip(measured, None, saturation_e)


__all__ = [
    "NIRF_NOISE_STREAM",
    "camera_noise",
    "photoelectrons_per_photon",
    "photon_irradiance",
    "transmitted_photon_irradiance",
]
