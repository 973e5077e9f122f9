"""Mean CT numbers of the tissues in a reconstructed scan (the CLI summary's figure)."""

from __future__ import annotations

from imagingsim.backend import Backend
from imagingsim.modalities.ct.result import CTAcquisition


def tissue_hu(acquisition: CTAcquisition, phantom, backend: Backend, *, scan: int = 0) -> dict[str, float]:
    """Mean HU of each material's interior (voxels whose 6 neighbours share its label) in one scan.

    Interiors keep partial-volume edges out of the means; materials without interior voxels
    are left out. Air is the air outside the body.
    """
    from imagingsim.physics.metrics import roi_mean

    xp = backend.xp
    labels = phantom.labels
    interior = xp.ones(labels.shape, dtype=xp.bool, device=backend.device)
    for axis in range(3):
        n = labels.shape[axis]
        lower = xp.take(labels, xp.arange(0, n - 1, device=backend.device), axis=axis)
        upper = xp.take(labels, xp.arange(1, n, device=backend.device), axis=axis)
        same = lower == upper
        edge_shape = list(labels.shape)
        edge_shape[axis] = 1
        edge = xp.zeros(tuple(edge_shape), dtype=xp.bool, device=backend.device)
        interior = interior & xp.concat((edge, same), axis=axis) & xp.concat((same, edge), axis=axis)
    names = {}
    for value, material in sorted(phantom.materials.items()):
        names.setdefault(material, []).append(value)
    means = {}
    for material, values in names.items():
        mask = interior & _isin(labels, values, xp)
        if backend.scalar(xp.sum(xp.astype(mask, xp.int64))) > 0:
            means[material] = roi_mean(acquisition.hu[..., scan], mask, backend)[0]
    return means


def _isin(labels, values, xp):
    mask = labels == values[0]
    for v in values[1:]:
        mask = mask | (labels == v)
    return mask
