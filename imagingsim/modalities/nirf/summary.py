"""CLI summary of a NIRF acquisition: tumour-to-body contrast per time and the pixel noise."""

from __future__ import annotations

from imagingsim.backend import Backend
from imagingsim.modalities.base import fixed
from imagingsim.modalities.nirf.surface import VIEWS


def tumour_contrast(acq, phantom, backend: Backend) -> tuple[float, ...]:
    """Per time: mean noise-free image over the tumours' projection / mean over the rest of the body.

    A quick visibility figure (1 = invisible); the footprint is the tumour voxels projected
    along the view axis, the background the rest of the body's silhouette.

    Parameters
    ----------
    acq : NIRFAcquisition
        Its noise-free images ``expected_e`` (photoelectrons) and view.
    phantom : imagingsim.phantom.Phantom
        Labels and tumour index on the image grid.
    backend : Backend

    Returns
    -------
    tuple of float
        One dimensionless ratio per schedule time (NaN where the body outside the tumours is dark).
    """
    xp = backend.xp
    axis, _ = VIEWS[acq.view]
    footprint = xp.any(phantom.tumour_index > 0, axis=axis)
    rest = xp.any(phantom.labels != 0, axis=axis) & ~footprint
    sums = []
    for mask in (footprint, rest):
        weights = xp.astype(mask, xp.float64)[..., None]
        sums.append(xp.sum(xp.astype(acq.expected_e, xp.float64) * weights, axis=(0, 1)) / xp.sum(weights))
    inside, outside = (backend.to_host(v).tolist() for v in sums)
    return tuple(a / b if b > 0 else float("nan") for a, b in zip(inside, outside, strict=True))


def summary_lines(acq, subject) -> list[str]:
    """Tumour/body contrast of the noise-free images and the pixel noise (electrons).

    Parameters
    ----------
    acq : NIRFAcquisition
    subject : imagingsim.pipeline.Subject
        Its phantom and backend.

    Returns
    -------
    list of str
        One line for the CLI.
    """
    contrast = tumour_contrast(acq, subject.phantom, subject.backend)
    return [(f"  NIRF {acq.dye.name} ({acq.window}, {acq.view} view): tumour/body contrast [{fixed(contrast)}], "
             f"pixel noise {acq.background_noise_e:.3g} e-")]


__all__ = ["summary_lines", "tumour_contrast"]
