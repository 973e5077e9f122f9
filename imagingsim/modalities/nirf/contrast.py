"""Tumour-to-body contrast of the noise-free NIRF images (the CLI summary's figure)."""

from __future__ import annotations

from imagingsim.backend import Backend
from imagingsim.modalities.nirf.surface import VIEWS


def tumour_contrast(acq, phantom, backend: Backend) -> tuple[float, ...]:
    """Per time: mean noise-free image over the tumours' projection / mean over the rest of the body.

    A quick visibility figure (1 = invisible); the footprint is the tumour voxels projected
    along the view axis, the background the rest of the body's silhouette.
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
