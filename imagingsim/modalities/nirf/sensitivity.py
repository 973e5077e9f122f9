"""The set-up's depth response: a point source of dye against its depth in the reference tissue.

For the depth-sensitivity table written beside the images: the excitation fluence, escape
fraction, PSF width and detected signal of a point source at each depth of homogeneous
reference tissue, and the amount of dye whose peak pixel stands 3 noise sd above the
background of dye-free tissue. Host floats only (closed-form diffusion theory of
:mod:`~imagingsim.modalities.nirf.optics`).
"""

from __future__ import annotations

import math

from imagingsim.modalities.nirf.camera import photoelectrons_per_photon, transmitted_photon_irradiance
from imagingsim.modalities.nirf.optics import (
    diffusion,
    peak_pixel_fraction,
    plane_fluence,
    psf_fwhm_mm,
    specular_reflection,
    total_escape,
)
from imagingsim.modalities.nirf.result import DEPTH_COLUMNS
from imagingsim.modalities.nirf.tables import CameraSetup, Fluorophore, optics_table, tissue_optics

#: Depths of the depth-sensitivity table, mm.
SENSITIVITY_DEPTHS_MM = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0)


def depth_sensitivity(dye: Fluorophore, window: str, setup: CameraSetup, *, exposure_s: float,
                      irradiance_mW_per_cm2: float, autofluorescence_scale: float, mode: str = "epi",
                      thickness_mm: float | None = None,
                      depths_mm=SENSITIVITY_DEPTHS_MM) -> tuple[list[dict[str, float]], float, dict[str, float]]:
    """Response of the set-up to a point source vs depth in the reference tissue (host floats).

    Parameters
    ----------
    dye, window : Fluorophore, str
        The imaging channel.
    setup : CameraSetup
        Camera, binning and image pixel (its ``pixel_mm``).
    exposure_s, irradiance_mW_per_cm2, autofluorescence_scale : float
        Scenario settings (s, mW/cm^2, multiplier).
    mode : {"epi", "trans"}
    thickness_mm : float, optional
        Slab thickness for ``trans``, mm: the excitation enters at that depth, and depths at
        or beyond it (outside the slab) are left out of the table.
    depths_mm : sequence of float
        Candidate depths, mm.

    Returns
    -------
    rows : list of dict
        One per depth, keys :data:`~imagingsim.modalities.nirf.result.DEPTH_COLUMNS`.
        ``photoelectrons_per_fmol`` is the whole-image signal of 1 fmol of dye at that depth
        under the set-up's excitation; ``detection_limit_fmol`` the amount whose peak pixel
        equals 3 background noise sd.
    background_noise_e : float
        Noise sd of a pixel of dye-free reference tissue (autofluorescence + dark shot noise
        and binned read noise), photoelectrons.
    reference : dict
        The reference tissue's optics at both wavelengths.
    """
    table = optics_table()
    n = table.refractive_index
    ref = table.reference_tissue
    params = table.psf[window]
    band = dye.windows[window]
    ex_a, ex_s = tissue_optics(ref, dye.excitation_nm)
    em_a, em_s = tissue_optics(ref, band.centre_nm)
    ex, em = diffusion(ex_a, ex_s, n), diffusion(em_a, em_s, n)
    transmitted = 1.0 - specular_reflection(n)
    photons = transmitted_photon_irradiance(irradiance_mW_per_cm2, dye.excitation_nm)
    gain = photoelectrons_per_photon(setup, band.centre_nm)
    per_fmol = math.log(10.0) * dye.extinction_M_per_cm * 1e-10 * dye.quantum_yield * band.in_band_fraction
    trans = mode == "trans" and thickness_mm is not None

    def fluence(z: float) -> float:  # per unit transmitted irradiance
        return plane_fluence(max(thickness_mm - z, 0.0) if trans else z, ex)

    def escape(z: float) -> float:
        return total_escape(z, em_a, em_s, em, params)

    # Autofluorescence of dye-free reference tissue, per pixel: integral of phi af E dz.
    af = table.autofluorescence_per_mm[window][ref] * autofluorescence_scale
    dz, extent = 0.01, (thickness_mm if trans else 60.0)
    steps = int(extent / dz)
    af_integral = sum(fluence((i + 0.5) * dz) * escape((i + 0.5) * dz) for i in range(steps)) * dz * af
    pixel_area = setup.pixel_mm[0] * setup.pixel_mm[1]
    background = photons * gain * exposure_s * af_integral * pixel_area + setup.dark_current_e_per_s * exposure_s
    noise = math.sqrt(background + setup.read_noise_e**2)

    rows = []
    for d in depths_mm:
        if trans and d >= thickness_mm:
            continue  # outside the slab
        e = escape(d)
        peak = peak_pixel_fraction(d, em_a, em_s, pixel_area, window)
        signal = photons * fluence(d) * per_fmol * e * gain * exposure_s
        rows.append({
            "depth_mm": d,
            "excitation_fluence_per_irradiance": transmitted * fluence(d),
            "escape_fraction": e,
            "psf_fwhm_mm": psf_fwhm_mm(d, em_a, em_s, window),
            "peak_pixel_fraction": peak,
            "photoelectrons_per_emitted_photon": e * gain,
            "photoelectrons_per_fmol": signal,
            "detection_limit_fmol": 3.0 * noise / (signal * peak) if signal > 0 else math.inf,
        })
    assert not rows or set(rows[0]) == set(DEPTH_COLUMNS)
    reference = {
        "tissue": ref.bids_name,
        "refractive_index": n,
        "excitation_mu_a_per_mm": ex_a,
        "excitation_mu_s_prime_per_mm": ex_s,
        "excitation_mu_eff_per_mm": ex.mu_eff,
        "emission_mu_a_per_mm": em_a,
        "emission_mu_s_prime_per_mm": em_s,
        "emission_mu_eff_per_mm": em.mu_eff,
        "emission_extrapolation_distance_mm": em.zb,
        "emission_transport_mean_free_path_mm": 1.0 / (em_a + em_s),
    }
    return rows, noise, reference


__all__ = ["SENSITIVITY_DEPTHS_MM", "depth_sensitivity"]
