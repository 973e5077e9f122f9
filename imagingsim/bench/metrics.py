"""Image quality against the exact truth: error, contrast, noise, bias and variance, convergence.

Every function takes host arrays (numpy) on the reconstruction grid and boolean masks of the
same shape; the harness (:mod:`imagingsim.bench.runner`) resamples the truth and the labels
onto that grid first. Relative errors are fractions (0.1 = 10 %), absolute ones are in the
image units.

References
----------
NEMA NU 2-2018, *Performance Measurements of Positron Emission Tomographs*, section 7 (image
quality: contrast recovery and background variability).
SyneRBI PETRIC challenge (``petric.py``, 2024): whole-object RMSE and VOI absolute error of the
mean (AEM) against a reference, and the time to reach thresholds on them.
Z. Wang et al., Image quality assessment: from error visibility to structural similarity,
IEEE Trans. Image Process. 13 (2004) 600-612 (SSIM, as ``skimage.metrics.structural_similarity``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from imagingsim.phantom.model import Label

#: Volumes of interest by name -> tissue labels. ``tumour_rim`` is the viable rim and
#: ``tumour_core`` the hypoxic + necrotic inside; ``muscle`` is the background of the
#: contrast metrics (NEMA's warm background).
VOIS: dict[str, tuple[int, ...]] = {
    "tumour": (Label.TUMOUR_VIABLE, Label.TUMOUR_HYPOXIC, Label.TUMOUR_NECROTIC),
    "tumour_rim": (Label.TUMOUR_VIABLE,),
    "tumour_core": (Label.TUMOUR_HYPOXIC, Label.TUMOUR_NECROTIC),
    "liver": (Label.LIVER,),
    "spleen": (Label.SPLEEN,),
    "kidney": (Label.KIDNEY,),
    "muscle": (Label.SOFT_TISSUE,),
}
#: The hot VOI and the background VOI of :func:`contrast_recovery` and :func:`background_variability`.
HOT_VOI, BACKGROUND_VOI = "tumour", "muscle"
#: The metrics a suite's ``thresholds`` may bound: those :func:`image_metrics` computes at every
#: checkpoint (not SSIM/PSNR, final images only) for which lower is better (``crc``, where 1 is
#: best, enters as ``crc_error = |1 - crc|``).
THRESHOLD_METRICS: tuple[str, ...] = ("nrmse_body", "rmse_background", *(f"aem_{name}" for name in VOIS),
                                      "crc_error", "bv")


def voi_masks(labels: np.ndarray) -> dict[str, np.ndarray]:
    """``body`` (every labelled voxel, not air) and each non-empty VOI of :data:`VOIS` as boolean masks."""
    labels = np.asarray(labels)
    masks = {"body": labels != Label.AIR}
    for name, values in VOIS.items():
        mask = np.isin(labels, np.asarray(values, dtype=labels.dtype))
        if mask.any():
            masks[name] = mask
    return masks


def nrmse(image: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Normalised RMSE over ``mask``: ``||x - t|| / ||t||`` (0 perfect; 1 for an all-zero image).

    Normalising by the truth's RMS (not its mean or range) makes the all-zero image score
    exactly 1 whatever the units, so "better than nothing" is ``< 1``.
    """
    t = truth[mask].astype(np.float64)
    x = image[mask].astype(np.float64)
    norm = math.sqrt(float(np.sum(t * t)))
    return math.sqrt(float(np.sum((x - t) ** 2))) / norm if norm > 0 else math.nan


def rmse(image: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Root-mean-square error over ``mask``, image units."""
    d = image[mask].astype(np.float64) - truth[mask].astype(np.float64)
    return math.sqrt(float(np.mean(d * d))) if d.size else math.nan


def aem(image: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Absolute error of the VOI mean (PETRIC's AEM), relative to the true VOI mean:
    ``|mean(x) - mean(t)| / |mean(t)|`` over ``mask`` (a fraction; not a mean of voxel errors,
    so noise that averages out over the VOI does not count)."""
    t = float(np.mean(truth[mask], dtype=np.float64))
    x = float(np.mean(image[mask], dtype=np.float64))
    return abs(x - t) / abs(t) if t != 0 else math.nan


def contrast_recovery(image: np.ndarray, truth: np.ndarray, hot: np.ndarray, background: np.ndarray) -> float:
    """Contrast recovery coefficient (NEMA NU 2 style): ``(x_H / x_B - 1) / (t_H / t_B - 1)``.

    ``x_H``, ``x_B`` are the image means over the hot and background VOIs, ``t_H``, ``t_B``
    the true ones (the true contrast replaces NEMA's known fill ratio). 1 is full recovery;
    NaN when the truth has no contrast.
    """
    t_h, t_b = (float(np.mean(truth[m], dtype=np.float64)) for m in (hot, background))
    x_h, x_b = (float(np.mean(image[m], dtype=np.float64)) for m in (hot, background))
    true_contrast = t_h / t_b - 1.0 if t_b != 0 else math.nan
    if not true_contrast or math.isnan(true_contrast) or x_b == 0:
        return math.nan
    return (x_h / x_b - 1.0) / true_contrast


def background_variability(image: np.ndarray, background: np.ndarray) -> float:
    """Background variability: sd over the background VOI's voxels / their mean (fraction).

    NEMA NU 2 takes the sd of 60 ROI means in a uniform background; the phantom's background
    is one VOI, so the voxel sd is used (it includes the truth's own heterogeneity, the same
    for every method; :func:`bias_and_sd` separates noise from bias).
    """
    x = image[background].astype(np.float64)
    mean = float(np.mean(x))
    return float(np.std(x, ddof=1)) / abs(mean) if x.size > 1 and mean != 0 else math.nan


def ssim(image: np.ndarray, truth: np.ndarray, data_range: float, mask: np.ndarray | None = None) -> float:
    """Structural similarity (``skimage.metrics.structural_similarity``, 7-voxel window or the
    largest odd one the grid allows) with ``data_range`` the truth's range, averaged over ``mask``
    (skimage's own mean, borders cropped, without one).

    The local SSIM map (``full=True``) is averaged over the mask's voxels: in the air far from
    the body image and truth are both 0 and the map is exactly 1, which would count as
    agreement for every method and dilute the differences between them. Windows centred in
    the body still see the air next to it, as the eye does at the body's edge.
    """
    from skimage.metrics import structural_similarity

    window = min(7, *(n if n % 2 else n - 1 for n in truth.shape))
    if window < 3 or data_range <= 0:
        return math.nan
    whole, local = structural_similarity(truth.astype(np.float64), image.astype(np.float64), data_range=data_range,
                                         win_size=window, full=True)
    if mask is None:
        return float(whole)
    return float(np.mean(local[mask])) if mask.any() else math.nan


def psnr(image: np.ndarray, truth: np.ndarray, data_range: float, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio over ``mask``, dB: ``10 log10(data_range^2 / MSE)`` with the
    MSE over the mask's voxels (``skimage.metrics.peak_signal_noise_ratio`` on them); inf when
    the image equals the truth there."""
    from skimage.metrics import peak_signal_noise_ratio

    x = image if mask is None else image[mask]
    t = truth if mask is None else truth[mask]
    if t.size == 0 or data_range <= 0:
        return math.nan
    if np.array_equal(x, t):
        return math.inf
    return float(peak_signal_noise_ratio(t.astype(np.float64), x.astype(np.float64), data_range=data_range))


def image_metrics(image: np.ndarray, truth: np.ndarray, masks: Mapping[str, np.ndarray], *,
                  structural: bool = True) -> dict[str, float]:
    """Every single-image metric of one reconstruction, by column name.

    ``nrmse_body``, ``rmse_background`` (image units), ``aem_<voi>`` per VOI (fraction),
    ``crc`` and ``crc_error = |1 - crc|``, ``bv`` (fraction), and with ``structural`` ``ssim``
    and ``psnr_db`` over the body, with the truth's range over the body as data range (SSIM
    costs more than all the others together: the harness computes it for final images only). VOIs absent from the phantom are left out; metrics whose VOIs are
    absent are NaN.
    """
    body = masks["body"]
    data_range = float(np.ptp(truth[body])) if structural and body.any() else 0.0
    out = {"nrmse_body": nrmse(image, truth, body)}
    background = masks.get(BACKGROUND_VOI)
    hot = masks.get(HOT_VOI)
    out["rmse_background"] = rmse(image, truth, background) if background is not None else math.nan
    for name in VOIS:
        if name in masks:
            out[f"aem_{name}"] = aem(image, truth, masks[name])
    crc = contrast_recovery(image, truth, hot, background) if hot is not None and background is not None else math.nan
    out["crc"] = crc
    out["crc_error"] = abs(1.0 - crc)
    out["bv"] = background_variability(image, background) if background is not None else math.nan
    if structural:
        out["ssim"] = ssim(image, truth, data_range, body)
        out["psnr_db"] = psnr(image, truth, data_range, body)
    return out


def bias_and_sd(images: Sequence[np.ndarray], truth: np.ndarray,
                masks: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Bias and standard deviation over K noise realisations of one method, per voxel and per VOI.

    Parameters
    ----------
    images : sequence of K arrays
        The final images of the K realisations (same shape as ``truth``).
    truth : numpy.ndarray
    masks : mapping of str to bool array
        ``body`` and the VOIs (:func:`voi_masks`).

    Returns
    -------
    dict
        ``bias_body`` = ``||mean_k x_k - t|| / ||t||`` over the body and ``sd_body`` = ``sqrt(sum sd^2)
        / ||t||`` with ``sd`` the per-voxel sd over realisations (``ddof = 1``); per VOI,
        ``bias_<voi>`` = (mean over k of the VOI mean - true VOI mean) / true VOI mean and
        ``sd_<voi>`` = sd over k of the VOI mean / true VOI mean. The sd entries are NaN for K < 2.
    """
    stack = np.stack([np.asarray(x, dtype=np.float64) for x in images])
    k = stack.shape[0]
    body = masks["body"]
    t_body = truth[body].astype(np.float64)
    norm = math.sqrt(float(np.sum(t_body * t_body)))
    # Deviations from the first realisation (the shifted-data algorithm): the mean and sd of
    # identical realisations come out exactly x_0 and 0, not x_0 and 1e-17 of rounding.
    shifted = stack - stack[0]
    mean_image = stack[0] + shifted.mean(axis=0)
    out = {"bias_body": math.sqrt(float(np.sum((mean_image[body] - t_body) ** 2))) / norm if norm > 0 else math.nan}
    if k >= 2:
        sd = shifted.std(axis=0, ddof=1)
        out["sd_body"] = math.sqrt(float(np.sum(sd[body] ** 2))) / norm if norm > 0 else math.nan
    else:
        out["sd_body"] = math.nan
    for name in VOIS:
        if name not in masks:
            continue
        t = float(np.mean(truth[masks[name]], dtype=np.float64))
        first = float(stack[0][masks[name]].mean())
        means = shifted[:, masks[name]].mean(axis=1)
        out[f"bias_{name}"] = (first + float(means.mean()) - t) / t if t != 0 else math.nan
        out[f"sd_{name}"] = float(means.std(ddof=1)) / abs(t) if k >= 2 and t != 0 else math.nan
    return out


def time_to_threshold(checkpoints: Sequence[tuple[int, float, Mapping[str, float]]],
                      thresholds: Mapping[str, float]) -> tuple[int, float] | None:
    """The first checkpoint at which every threshold holds (PETRIC's time to threshold).

    Parameters
    ----------
    checkpoints : sequence of (iteration, seconds, metrics)
        In the order they were reached; ``seconds`` is the reconstruction's wall time so far,
        callbacks excluded.
    thresholds : mapping of metric name to its upper bound
        Every metric here is an error (``nrmse_body``, ``aem_tumour``, ``crc_error``...): it
        holds when ``metrics[name] <= bound`` (a NaN never holds).

    Returns
    -------
    (iteration, seconds) or None
        None when no checkpoint meets them all (or there are no thresholds).
    """
    if not thresholds:
        return None
    for iteration, seconds, metrics in checkpoints:
        if all(metrics.get(name, math.nan) <= bound for name, bound in thresholds.items()):
            return iteration, seconds
    return None
