"""Functional images on an anatomical grid: activity-preserving resampling plus a colour overlay.

The pieces every fusion writer shares (host-side, numpy): the "hot" colour map, the
overlay of an activity map on a greyscale anatomy, :func:`fuse` (resample one frame onto
the anatomical grid as a concentration, keeping its total activity, and colour it), and a
quick-look picture of the overlays (:func:`overlay_montage`, written as PNG by
:mod:`imagingsim.io.png`: a colour overlay is for looking at, not a NIfTI to compute with). Which modality is fused onto which is the modalities' business
(``Modality.fuses_onto``); their writers put the files under ``derivatives/fusion/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from imagingsim.grid import ImageGrid
from imagingsim.io.resample import resample_to_grid, volume_integral

#: The derivative folder of the fused images: ``derivatives/<FUSION_PIPELINE>/``.
FUSION_PIPELINE = "fusion"
#: Default colour threshold: activity below this fraction of ``activity_max`` shows anatomy only,
#: so background noise does not tint the whole image.
DEFAULT_THRESHOLD = 0.1
#: Default opacity of the colour: the anatomy stays readable under the hottest regions.
DEFAULT_ALPHA = 0.6
#: Percentile of the anatomy taken as the top of the default grey window: a few bright voxels
#: (vessels, fat, noise) would otherwise squeeze the rest of the anatomy into dark grey.
WINDOW_PERCENTILE = 99.5


def resampling_method(source: str, target: str) -> str:
    """The sidecar text describing how a ``source`` image was resampled onto the ``target`` grid."""
    return (
        f"imagingsim.io.resample.resample_to_grid(quantity='concentration'): each {target} voxel gets the mean, over "
        f"its own box, of the {source} image taken as voxel-wise constant and smoothed per axis by a box of width "
        f"min(s, 2 max(s - t, 0)) (s the {source}, t the {target} voxel size: no smoothing when downsampling, the "
        "linear interpolant when upsampling by 2 or more). The target voxel's box is the anti-alias filter: the total "
        "activity is kept exactly, without renormalisation; 0 outside the " + source + " field of view."
    )


def grid_record(grid: ImageGrid) -> dict[str, Any]:
    """A grid as sidecar fields: shape, voxel size (mm) and the RAS affine (mm)."""
    return {"shape": list(grid.shape), "voxel_size_mm": list(grid.voxel_size_mm),
            "affine_RAS_mm": [list(row) for row in grid.affine]}


def hot_colours(value: np.ndarray) -> np.ndarray:
    """The "hot" colour map (black -> red -> yellow -> white) of values in [0, 1].

    Returns
    -------
    numpy.ndarray, shape ``value.shape + (3,)``, float64 in [0, 1]
        ``R = 3v``, ``G = 3v - 1``, ``B = 3v - 2``, each clipped to [0, 1].
    """
    v = np.asarray(value, dtype=np.float64)[..., None]
    return np.clip(3.0 * v - np.array([0.0, 1.0, 2.0]), 0.0, 1.0)


def anatomy_window_of(values: np.ndarray) -> tuple[float, float]:
    """Default grey window: ``(min(0, minimum), WINDOW_PERCENTILE-th percentile)`` of the finite values."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lo = float(min(finite.min(), 0.0))
    hi = float(np.percentile(finite, WINDOW_PERCENTILE))
    return lo, hi if hi > lo else lo + 1.0


def overlay_rgb(
    anatomy: np.ndarray,
    activity: np.ndarray,
    *,
    anatomy_window: tuple[float, float] | None = None,
    activity_max: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
) -> np.ndarray:
    """Blend an activity map in the hot colour map over a greyscale anatomy.

    Parameters
    ----------
    anatomy : numpy.ndarray
        Anatomical image (a magnitude in a.u., or attenuation in HU), any shape.
    activity : numpy.ndarray, same shape
        Activity concentration (Bq/mL) on the same voxels.
    anatomy_window : (float, float), keyword-only
        Grey levels: ``lo`` maps to black, ``hi`` to white, in the anatomy's units. Default
        ``(min(0, minimum), 99.5th percentile)`` of the finite anatomy values.
    activity_max : float, keyword-only
        Activity shown as white (Bq/mL). Default: the maximum finite activity. Fix it
        across frames to compare them.
    alpha : float in [0, 1], keyword-only
        Opacity of the colour where it is shown.
    threshold : float in [0, 1), keyword-only
        Colour only where ``activity > threshold * activity_max``.

    Returns
    -------
    numpy.ndarray, shape ``anatomy.shape + (3,)``, uint8
        RGB. NaN counts as black anatomy and zero activity. Deterministic.
    """
    anatomy = np.asarray(anatomy, dtype=np.float64)
    activity = np.asarray(activity, dtype=np.float64)
    if anatomy.shape != activity.shape:
        raise ValueError(f"overlay_rgb: anatomy shape {anatomy.shape} differs from activity shape {activity.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay_rgb: alpha must lie in [0, 1], got {alpha}")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"overlay_rgb: threshold must lie in [0, 1), got {threshold}")
    lo, hi = anatomy_window_of(anatomy) if anatomy_window is None else (float(anatomy_window[0]), float(anatomy_window[1]))
    if not hi > lo:
        raise ValueError(f"overlay_rgb: anatomy_window must have hi > lo, got ({lo}, {hi})")
    activity = np.where(np.isfinite(activity), activity, 0.0)
    if activity_max is None:
        activity_max = float(activity.max()) if activity.size else 0.0
    grey = np.clip((np.where(np.isfinite(anatomy), anatomy, lo) - lo) / (hi - lo), 0.0, 1.0)[..., None]
    rgb = np.repeat(grey, 3, axis=-1)
    if activity_max > 0.0:
        v = np.clip(activity / activity_max, 0.0, 1.0)
        shown = (v > threshold)[..., None]
        rgb = np.where(shown, (1.0 - alpha) * rgb + alpha * hot_colours(v), rgb)
    return np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def fuse(
    activity: np.ndarray,
    activity_grid: ImageGrid,
    anatomy: np.ndarray,
    anatomy_grid: ImageGrid,
    *,
    anatomy_window: tuple[float, float] | None = None,
    activity_max: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    threshold: float = DEFAULT_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Resample one activity frame onto an anatomical grid and colour it over the anatomy.

    Parameters
    ----------
    activity : numpy.ndarray, shape ``activity_grid.shape``
        Activity concentration, Bq/mL (any per-mL density: the totals are then in its
        units x mL).
    activity_grid, anatomy_grid : ImageGrid
        The two grids, in the same world frame (RAS mm).
    anatomy : numpy.ndarray, shape ``anatomy_grid.shape``
        The anatomical image (magnitude in a.u., attenuation in HU, ...).
    anatomy_window, activity_max, alpha, threshold
        As in :func:`overlay_rgb`; ``activity_max`` defaults to the maximum of ``activity``
        before resampling (the colour scale then does not depend on the target grid).

    Returns
    -------
    resampled : numpy.ndarray, float32, shape ``anatomy_grid.shape``
        The activity on the anatomical grid, Bq/mL.
    rgb : numpy.ndarray, uint8, shape ``anatomy_grid.shape + (3,)``
        The overlay.
    totals : dict
        ``before_Bq`` and ``after_Bq`` (sum x voxel volume on each grid) and their ``ratio``
        (after / before; 1 for an empty image). Below 1 only where the anatomical field of
        view leaves activity out.
    """
    anatomy = np.asarray(anatomy)
    if anatomy.shape != tuple(anatomy_grid.shape):
        raise ValueError(f"fuse: anatomy shape {anatomy.shape} does not match its grid {anatomy_grid.shape}")
    activity = np.asarray(activity)
    resampled = resample_to_grid(activity, activity_grid, anatomy_grid, quantity="concentration")
    if activity_max is None:
        finite = activity[np.isfinite(activity)]
        activity_max = float(finite.max()) if finite.size else 0.0
    rgb = overlay_rgb(anatomy, resampled, anatomy_window=anatomy_window, activity_max=activity_max,
                      alpha=alpha, threshold=threshold)
    before = volume_integral(activity, activity_grid)
    after = volume_integral(resampled, anatomy_grid)
    totals = {"before_Bq": before, "after_Bq": after, "ratio": after / before if before != 0.0 else 1.0}
    return resampled, rgb, totals


def hottest_voxel(activity_frames: Sequence[np.ndarray]) -> tuple[int, int, int]:
    """Index of the voxel with the most activity summed over the frames (the first such voxel)."""
    total = np.sum([np.nan_to_num(np.asarray(a, dtype=np.float64)) for a in activity_frames], axis=0)
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(total)), total.shape))


def overlay_montage(rgb_frames: Sequence[np.ndarray], focus: tuple[int, int, int], separator_px: int = 2) -> np.ndarray:
    """A quick-look picture of 3-D colour overlays: one column per frame, the axial slice
    through ``focus`` above the coronal one.

    Slices are shown in the radiological view (the subject's right on the picture's left),
    anterior up in the axial and superior up in the coronal slice, one pixel per voxel.

    Parameters
    ----------
    rgb_frames : sequence of numpy.ndarray, uint8, shape ``(nx, ny, nz, 3)``
        The overlay of each frame (:func:`fuse`).
    focus : (int, int, int)
        Voxel the slices pass through (e.g. :func:`hottest_voxel`).
    separator_px : int
        Black pixels between the panels.

    Returns
    -------
    numpy.ndarray, uint8, shape ``(ny + nz + separator, T * (nx + separator) - separator, 3)``
    """
    if not rgb_frames:
        raise ValueError("overlay_montage: no frames")
    _, j, k = focus
    columns = []
    for rgb in rgb_frames:
        rgb = np.asarray(rgb, dtype=np.uint8)
        axial = np.transpose(rgb[:, :, k], (1, 0, 2))[::-1, ::-1]  # rows: y from anterior; columns: x from right
        coronal = np.transpose(rgb[:, j, :], (1, 0, 2))[::-1, ::-1]  # rows: z from superior
        gap = np.zeros((separator_px, axial.shape[1], 3), np.uint8)
        columns.append(np.concatenate([axial, gap, coronal], axis=0))
    gap = np.zeros((columns[0].shape[0], separator_px, 3), np.uint8)
    pieces = [piece for column in columns for piece in (column, gap)][:-1]
    return np.ascontiguousarray(np.concatenate(pieces, axis=1))


def montage_layout(focus: tuple[int, int, int]) -> str:
    """The sidecar text that says how to read an :func:`overlay_montage` picture."""
    return (f"PNG, 8-bit RGB, one pixel per voxel: one column per frame (in FrameTimesStart order); top the axial "
            f"slice z = {focus[2]}, below it the coronal slice y = {focus[1]} (voxel indices of the target grid, "
            "through the voxel with the most activity summed over the frames); radiological view: the subject's "
            "right on the picture's left, anterior (axial) and superior (coronal) up; 2 black pixels between panels")
