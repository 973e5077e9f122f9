"""CLI summary line of a NIRF acquisition: tumour-to-body contrast per time."""

from __future__ import annotations

from imagingsim.modalities.base import fixed


def summary_lines(acq, subject) -> list[str]:
    """Tumour/body contrast of the noise-free images and the pixel noise (electrons)."""
    from imagingsim.modalities.nirf.contrast import tumour_contrast

    contrast = tumour_contrast(acq, subject.phantom, subject.backend)
    return [(f"  NIRF {acq.dye.name} ({acq.window}, {acq.view} view): tumour/body contrast [{fixed(contrast)}], "
             f"pixel noise {acq.background_noise_e:.3g} e-")]
