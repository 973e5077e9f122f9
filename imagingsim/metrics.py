"""Image-quality figures against the ground truth (region means, bias, NRMSE)."""

from __future__ import annotations

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


def nrmse(estimate, truth, backend: Backend, mask=None) -> float:
    """Root-mean-square error normalised by the RMS of the truth (inside ``mask`` if given)."""
    xp = backend.xp
    diff = xp.astype(estimate, xp.float64) - xp.astype(truth, xp.float64)
    ref = xp.astype(truth, xp.float64)
    if mask is not None:
        diff, ref = diff[mask], ref[mask]
    return (backend.scalar(xp.sum(diff * diff)) / backend.scalar(xp.sum(ref * ref))) ** 0.5


__all__ = ["nrmse", "roi_mean"]
