"""CT numbers as attenuation at another photon energy: the bilinear HU -> mu conversion.

Used by other modalities through the CT result
(:meth:`~imagingsim.modalities.ct.result.CTAcquisition.attenuation_map_per_mm`), e.g. for
SPECT attenuation correction.
"""

from __future__ import annotations

from imagingsim.backend import Backend
from imagingsim.modalities.ct.spectrum import BONE_MATERIAL, material_mu_per_mm


def hu_to_mu_per_mm(hu, energy_keV: float, backend: Backend, *, hu_bone: float, clip_negative: bool = True):
    """Bilinear conversion of CT numbers to linear attenuation at another energy (e.g. SPECT).

    ``HU <= 0`` (air-water mixtures): ``mu_w(E) (1 + HU / 1000)``.
    ``HU > 0`` (water-bone mixtures): ``mu_w(E) + HU / HU_bone (mu_bone(E) - mu_w(E))``.
    ``mu_w`` is water (1.00 g/mL) and ``mu_bone`` cortical bone (ICRU 44, 1.92 g/mL) at
    ``energy_keV``; ``HU_bone`` is the CT number that bone *reads* on the CT that produced
    ``hu`` (:attr:`CTAcquisition.hu_bone`: calibrated through the same polyenergetic chain and
    water pre-correction, below bone's monoenergetic HU at the reference energy), so HU 0 maps
    to water, HU_bone to bone and -1000 to 0.

    Known limit: tissues off the air-water-bone lines map with an error. Fat, whose low
    effective Z makes it attenuate far less than water at low energies (-261 HU at the
    preclinical 26 keV reference energy, ~-290 HU as read in the mouse phantom), maps to
    ~0.7 x water's mu at 140 keV where its true mu is 0.95 x water's (clinical 120 kVp:
    ~-100 HU, ~0.9 x). Soft tissues denser than water sit on the bone branch's shallow slope
    and map a few % low.

    Parameters
    ----------
    hu : device array
        CT numbers, HU.
    energy_keV : float
        Photon energy of the target attenuation map, keV (e.g. 140.5 for 99mTc).
    backend : Backend
    hu_bone : float, keyword-only
        HU that cortical bone reads on the CT that produced ``hu`` (> 0).
    clip_negative : bool, keyword-only
        True (default): CT numbers below -1000 (noise in air) are clipped to -1000, so mu is
        never negative -- but zero-mean noise in air then maps to a positive mean mu (a bias).
        False: the soft branch stays linear below -1000, so mu may be slightly negative in
        air and zero-mean noise stays zero-mean; the caller clips at 0 *after* any
        resampling or averaging (e.g. onto a SPECT grid), which keeps the air unbiased.

    Returns
    -------
    device array, shape and floating dtype of ``hu``
        Linear attenuation, 1/mm.

    References
    ----------
    Kinahan et al., Med Phys 1998;25:2046 (bilinear CT-based attenuation correction);
    Brown et al., J Nucl Med 2008;49:1-10.
    """
    if not hu_bone > 0:
        raise ValueError(f"hu_to_mu_per_mm: hu_bone must be > 0 HU, got {hu_bone:g}")
    xp = backend.xp
    mu_w = material_mu_per_mm("water", energy_keV)
    mu_b = material_mu_per_mm(BONE_MATERIAL, energy_keV)
    if clip_negative:
        hu = xp.clip(hu, -1000.0, None)
    soft = mu_w * (1.0 + hu / 1000.0)
    bone = mu_w + hu * ((mu_b - mu_w) / hu_bone)
    return xp.where(hu <= 0.0, soft, bone)
