"""Image-quality figures against the ground truth (region means, bias, NRMSE)."""

from __future__ import annotations

import math

from imagingsim.backend import Backend


def roi_mean(image, mask, backend: Backend) -> tuple[float, ...]:
    """Mean of ``image`` inside a boolean ``mask`` (3-D), per frame if ``image`` is 4-D.

    Parameters
    ----------
    image : device array ``(nx, ny, nz)`` or ``(nx, ny, nz, T)``
    mask : device array of bool ``(nx, ny, nz)``, not empty
    backend : Backend

    Returns
    -------
    tuple of float
        One mean per frame (one value for a 3-D image), in the image's units.
    """
    xp = backend.xp
    weights = xp.astype(mask, xp.float64)
    n = backend.scalar(xp.sum(weights))
    if n == 0:
        raise ValueError("roi_mean: the mask is empty")
    stack = image if image.ndim == 4 else image[..., None]
    sums = xp.sum(xp.astype(stack, xp.float64) * weights[..., None], axis=(0, 1, 2))
    return tuple(float(v) / n for v in backend.to_host(sums).tolist())


def nrmse(estimate, reference, backend: Backend, *, mask=None) -> float:
    """``||estimate - reference|| / ||reference||`` over ``mask`` (real or complex; one host sync).

    Parameters
    ----------
    estimate, reference : device arrays of one shape
    backend : Backend
    mask : device bool array, optional
        Region to compare (everything when None).

    Returns
    -------
    float
        The normalised root-mean-square error (inf for an all-zero reference).
    """
    xp = backend.xp
    diff = xp.abs(estimate - reference) ** 2
    ref = xp.abs(reference) ** 2
    if mask is not None:
        diff, ref = xp.where(mask, diff, 0.0), xp.where(mask, ref, 0.0)
    value = backend.to_host(xp.stack([xp.sum(diff), xp.sum(ref)])).tolist()
    return math.sqrt(value[0] / value[1]) if value[1] > 0 else math.inf


__all__ = ["nrmse", "roi_mean"]
