"""Fusion of a functional image (PET, SPECT) with an anatomical one (MRI, CT).

Layout written by :func:`write_pet_mri_fusion` (``<id>`` the subject, ``<trc>`` the PET tracer,
``<rec>`` a PET reconstruction)::

    derivatives/fusion/
      dataset_description.json  README
      sub-<id>/pet/sub-<id>_trc-<trc>_rec-<rec>_space-MRI_pet.nii.gz (+ .json)
            4-D [x, y, z, frame] on the MRI grid, Bq/mL: the PET frames that have an MRI
            session at the same schedule time
      sub-<id>/pet/sub-<id>_trc-<trc>_rec-<rec>_desc-fusedMRI_overlay.nii.gz (+ .json)
            4-D NIfTI-1 RGB24: PET in a hot colour map over the first-echo MRI magnitude

and by :func:`write_spect_ct_fusion` (``<trc>`` the SPECT tracer, ``<rec>`` a SPECT
reconstruction variant)::

    derivatives/fusion/
      sub-<id>/spect/sub-<id>_trc-<trc>_rec-<rec>_space-CT_spect.nii.gz (+ .json)
            4-D [x, y, z, acquisition] on the CT grid, Bq/mL
      sub-<id>/spect/sub-<id>_trc-<trc>_rec-<rec>_desc-fusedCT_overlay.nii.gz (+ .json)
            4-D NIfTI-1 RGB24: SPECT in a hot colour map over the CT (soft-tissue window)

The PET (SPECT) image is resampled as a concentration (:func:`imagingsim.io.resample.resample_to_grid`),
which keeps its total activity; the sidecar records the totals before and after.
:func:`fuse` is the same step for one frame and any pair of grids (SPECT/CT uses it too).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imagingsim.grid import ImageGrid
from imagingsim.io.atomic import atomic_write_text
from imagingsim.io.nifti import RGB24, write_nifti
from imagingsim.io.resample import resample_to_grid, volume_integral
from imagingsim.io.sidecars import BIDS_VERSION, LICENSE, TIME_REFERENCE, generated_by, write_json

__all__ = [
    "FUSION_PIPELINE",
    "fuse",
    "hot_colours",
    "matched_frames",
    "overlay_rgb",
    "write_pet_mri_fusion",
    "write_rgb_nifti",
    "write_spect_ct_fusion",
]

#: The derivative folder under ``derivatives/``.
FUSION_PIPELINE = "fusion"
#: Schedule times closer than this (h) are the same session (as io.mri's label collision check).
TIME_MATCH_H = 1e-6
#: Default colour threshold: activity below this fraction of ``activity_max`` shows anatomy only,
#: so background noise does not tint the whole image.
DEFAULT_THRESHOLD = 0.1
#: Default opacity of the colour: the anatomy stays readable under the hottest regions.
DEFAULT_ALPHA = 0.6
#: Percentile of the anatomy taken as the top of the default grey window: a few bright voxels
#: (vessels, fat, noise) would otherwise squeeze the rest of the anatomy into dark grey.
WINDOW_PERCENTILE = 99.5
RESAMPLING_METHOD = (
    "imagingsim.io.resample.resample_to_grid(quantity='concentration'): each MRI voxel gets the mean, over "
    "its own box, of the PET image taken as voxel-wise constant and smoothed per axis by a box of width "
    "min(s, 2 max(s - t, 0)) (s the PET, t the MRI voxel size: no smoothing when downsampling, the linear "
    "interpolant when upsampling by 2 or more). The target voxel's box is the anti-alias filter: the total "
    "activity is kept exactly, without renormalisation; 0 outside the PET field of view."
)


# --- pure functions ---------------------------------------------------------------------


def hot_colours(value: np.ndarray) -> np.ndarray:
    """The "hot" colour map (black -> red -> yellow -> white) of values in [0, 1].

    Returns
    -------
    numpy.ndarray, shape ``value.shape + (3,)``, float64 in [0, 1]
        ``R = 3v``, ``G = 3v - 1``, ``B = 3v - 2``, each clipped to [0, 1].
    """
    v = np.asarray(value, dtype=np.float64)[..., None]
    return np.clip(3.0 * v - np.array([0.0, 1.0, 2.0]), 0.0, 1.0)


def _window(values: np.ndarray) -> tuple[float, float]:
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
        Anatomical image (MRI magnitude, a.u.; CT, HU), any shape.
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
    lo, hi = _window(anatomy) if anatomy_window is None else (float(anatomy_window[0]), float(anatomy_window[1]))
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
        The anatomical image (MRI magnitude, CT HU).
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


# --- RGB NIfTI --------------------------------------------------------------------------


def write_rgb_nifti(
    path: str | os.PathLike,
    rgb: np.ndarray,
    grid: ImageGrid,
    *,
    frame_times_s: Sequence[float] | None = None,
    description: str = "",
) -> Path:
    """Write an RGB image as a gzipped NIfTI-1 RGB24 file (datatype 128), deterministically.

    Written by :func:`imagingsim.io.nifti.write_nifti` (the grid's RAS affine as qform and
    sform, units mm and s, deterministic gzip, atomic write) with the :data:`RGB24` dtype. nibabel and SimpleITK
    (a 3-component vector image) both read it, 3-D or 4-D.

    Parameters
    ----------
    path : path-like
        Destination ending in ``.nii.gz``.
    rgb : numpy.ndarray, uint8, shape ``grid.shape + (3,)`` or ``grid.shape + (T, 3)``
    grid : ImageGrid
    frame_times_s : sequence of float, keyword-only
        Frame times (s) of a 4-D image: ``pixdim[4]`` is their spacing when uniform, else 0;
        ``toffset`` the first.
    description : str, keyword-only
        Header ``descrip`` (ASCII, cut to 79 bytes).
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim not in (4, 5) or rgb.shape[-1] != 3 or rgb.shape[:3] != tuple(grid.shape):
        raise ValueError(f"write_rgb_nifti: need uint8 {grid.shape} (+ (T,)) + (3,), got {rgb.dtype} {rgb.shape}")
    data = np.ascontiguousarray(rgb).view(RGB24)[..., 0]
    return write_nifti(path, data, grid, frame_times_s=frame_times_s, description=description)


# --- PET/MRI writer -----------------------------------------------------------------------


def matched_frames(pet, mri) -> list[tuple[int, int]]:
    """``(PET frame, MRI session)`` index pairs at the same schedule time (within 1e-6 h)."""
    pairs = []
    for frame, start_s in enumerate(pet.frame_start_s):
        for session, time_h in enumerate(mri.times_h):
            if abs(float(start_s) / 3600.0 - float(time_h)) <= TIME_MATCH_H:
                pairs.append((frame, session))
                break
    return pairs


def write_pet_mri_fusion(
    stage: Path,
    scenario,
    phantom,
    pet,
    mri,
    backend,
    *,
    pet_grid: ImageGrid | None = None,
    mri_grid: ImageGrid | None = None,
) -> list[Path]:
    """Write the PET/MRI fusion derivative into a dataset being built at ``stage``.

    For every PET reconstruction and every PET frame with an MRI session at the same
    schedule time, the PET image (Bq/mL) is resampled onto the MRI grid as a concentration
    and coloured over that session's first-echo magnitude (see the module docstring).
    Nothing is written when no frame matches.

    Parameters
    ----------
    stage : Path
        Root of the dataset being built.
    scenario : Scenario
        Subject id, name and seed (GeneratedBy).
    phantom : Phantom
        Its grid is the default for both grids.
    pet : PETAcquisition
        ``images_bq_per_ml`` (``(nx, ny, nz, T)`` device arrays), ``frame_start_s``,
        ``frame_duration_s``, ``tracer``, ``decay_corrected``.
    mri : MRIAcquisition
        ``magnitude`` (``(T, E, nx, ny, nz)``), ``times_h``, ``time_labels``.
    backend : Backend
        For the explicit device -> host copies.
    pet_grid, mri_grid : ImageGrid, keyword-only
        Grids of the PET and MRI images; default ``phantom.grid``.

    Returns
    -------
    list of Path
        The files written.
    """
    pairs = matched_frames(pet, mri)
    if not pairs:
        return []
    pet_grid = phantom.grid if pet_grid is None else pet_grid
    mri_grid = phantom.grid if mri_grid is None else mri_grid
    sub = f"sub-{scenario.subject_id}"
    trc = pet.tracer.name
    root = Path(stage) / "derivatives" / FUSION_PIPELINE
    folder = root / sub / "pet"
    folder.mkdir(parents=True, exist_ok=True)

    labels = [mri.time_labels[j] for _, j in pairs]
    anatomy = [np.asarray(backend.to_host(mri.magnitude[j, 0]), dtype=np.float32) for _, j in pairs]
    window = _window(np.stack(anatomy))  # one window for every session: brightness comparable over time
    injection_s = float(pet.tracer.injection_time_h) * 3600.0
    frame_times = [float(pet.frame_start_s[f]) - injection_s for f, _ in pairs]
    echo_files = [f"bids:raw:{sub}/anat/{sub}_acq-{label}_echo-1_part-mag_MEGRE.nii.gz" for label in labels]
    timing = {
        "FrameTimesStart": frame_times,
        "FrameDuration": [float(pet.frame_duration_s[f]) for f, _ in pairs],
        "TimeZero": "the PET tracer's injection",
        "SessionTimes_h": [float(mri.times_h[j]) for _, j in pairs],
        "AcquisitionLabels": labels,
        "SourceFrames": [f for f, _ in pairs],
        "ReferenceTime": f"FrameTimesStart from the tracer's injection; SessionTimes_h from {TIME_REFERENCE}",
    }
    written = []
    for method, image in pet.images_bq_per_ml.items():
        host = np.asarray(backend.to_host(image), dtype=np.float32)
        frames = [host[..., f] for f, _ in pairs]
        scale = max(float(np.max(fr[np.isfinite(fr)], initial=0.0)) for fr in frames)  # one colour scale per method
        results = [fuse(fr, pet_grid, an, mri_grid, anatomy_window=window, activity_max=scale)
                   for fr, an in zip(frames, anatomy)]
        base = f"{sub}_trc-{trc}_rec-{method}"
        pet_source = f"bids:raw:{sub}/pet/{base}_pet.nii.gz"
        pet_path = folder / f"{base}_space-MRI_pet.nii.gz"
        write_nifti(pet_path, np.stack([r[0] for r in results], axis=-1), mri_grid, frame_times_s=frame_times,
                    description=f"imagingsim PET {trc} {method} on MRI grid")
        totals = [r[2] for r in results]
        write_json(pet_path.with_name(f"{base}_space-MRI_pet.json"), {
            "Description": f"PET reconstruction {method!r} of tracer {trc!r} resampled onto the MRI grid, for the "
                           "PET frames that have an MRI session at the same schedule time.",
            "Units": "Bq/mL",
            "Sources": [pet_source, *echo_files],
            "SpatialReference": echo_files[0],
            "ResamplingMethod": RESAMPLING_METHOD,
            "ImageDecayCorrected": bool(pet.decay_corrected),
            "TotalActivityBefore_Bq": [t["before_Bq"] for t in totals],
            "TotalActivityAfter_Bq": [t["after_Bq"] for t in totals],
            "TotalActivityRatio": [t["ratio"] for t in totals],
            "TotalActivityDefinition": "sum of the voxels x voxel volume (mL), on the PET grid (before) and the MRI "
                                       "grid (after); the ratio is below 1 only where the MRI field of view leaves "
                                       "activity out",
            "SourceGrid": _grid_record(pet_grid),
            "TargetGrid": _grid_record(mri_grid),
            **timing,
        })
        overlay_path = folder / f"{base}_desc-fusedMRI_overlay.nii.gz"
        write_rgb_nifti(overlay_path, np.stack([r[1] for r in results], axis=3), mri_grid, frame_times_s=frame_times,
                        description=f"imagingsim PET {trc} {method} over MRI echo 1")
        write_json(overlay_path.with_name(f"{base}_desc-fusedMRI_overlay.json"), {
            "Description": f"PET ({method}, {trc}) in a hot colour map over the first-echo MRI magnitude of the "
                           "session at the same time, for display. Not for quantification: use the _pet file.",
            "Units": "RGB (NIfTI-1 RGB24)",
            "Sources": [f"bids::{sub}/pet/{pet_path.name}", *echo_files],
            "ColourMap": "hot: R = 3v, G = 3v - 1, B = 3v - 2 clipped to [0, 1], v = activity / ActivityMax",
            "ActivityMax_Bq_per_mL": scale,
            "Threshold": DEFAULT_THRESHOLD,
            "ThresholdDefinition": "colour only where activity > Threshold x ActivityMax",
            "Alpha": DEFAULT_ALPHA,
            "AnatomyWindow": list(window),
            "AnatomyWindowDefinition": f"first-echo magnitude lo -> black, hi -> white; hi is the "
                                       f"{WINDOW_PERCENTILE}th percentile over the fused sessions",
            **timing,
        })
        written += [pet_path, pet_path.with_name(f"{base}_space-MRI_pet.json"), overlay_path,
                    overlay_path.with_name(f"{base}_desc-fusedMRI_overlay.json")]
    written += _write_dataset_files(root, scenario)
    return written


# --- SPECT/CT writer ----------------------------------------------------------------------

#: Grey window of the CT under the SPECT colours, HU: soft tissue and bone edges readable.
CT_WINDOW_HU = (-400.0, 600.0)


def write_spect_ct_fusion(stage: Path, scenario, phantom, spect, ct, backend) -> list[Path]:
    """Write the SPECT/CT fusion derivative into a dataset being built at ``stage``.

    Every SPECT reconstruction (Bq/mL, on the SPECT grid) is resampled onto the CT grid as a
    concentration (total activity kept) and coloured over the CT of the same schedule time
    (HU, window :data:`CT_WINDOW_HU`). The CT scans every schedule time, so every SPECT
    acquisition has one.

    Parameters
    ----------
    stage : Path
        Root of the dataset being built.
    scenario : Scenario
    phantom : Phantom
        Its grid is the CT grid.
    spect : SPECTAcquisition
        ``images_bq_per_ml`` on ``spect.grid``, ``schedule_indices``, frame times.
    ct : CTAcquisition
        ``hu`` ``(nx, ny, nz, T)`` at every schedule time.
    backend : Backend

    Returns
    -------
    list of Path
    """
    from imagingsim.modalities.spect.bids import recon_label

    sub = f"sub-{scenario.subject_id}"
    trc = spect.tracer.name
    root = Path(stage) / "derivatives" / FUSION_PIPELINE
    folder = root / sub / "spect"
    folder.mkdir(parents=True, exist_ok=True)
    hu = np.asarray(backend.to_host(ct.hu), dtype=np.float32)
    anatomy = [hu[..., k] for k in spect.schedule_indices]
    injection_s = float(spect.tracer.injection_time_h) * 3600.0
    frame_times = [float(t) - injection_s for t in spect.frame_start_s]
    labels = [scenario_time_label(scenario, k) for k in spect.schedule_indices]
    ct_files = [f"bids:raw:{sub}/ct/{sub}_acq-{label}_ct.nii.gz" for label in labels]
    written = []
    for variant, image in spect.images_bq_per_ml.items():
        host = np.asarray(backend.to_host(image), dtype=np.float32)
        frames = [host[..., k] for k in range(host.shape[-1])]
        scale = max(float(np.max(fr[np.isfinite(fr)], initial=0.0)) for fr in frames)
        results = [fuse(fr, spect.grid, an, phantom.grid, anatomy_window=CT_WINDOW_HU, activity_max=scale)
                   for fr, an in zip(frames, anatomy)]
        base = f"{sub}_trc-{trc}_rec-{recon_label(variant)}"
        image_path = folder / f"{base}_space-CT_spect.nii.gz"
        write_nifti(image_path, np.stack([r[0] for r in results], axis=-1), phantom.grid, frame_times_s=frame_times,
                    description=f"imagingsim SPECT {trc} {variant} on CT grid")
        totals = [r[2] for r in results]
        write_json(image_path.with_name(f"{base}_space-CT_spect.json"), {
            "Description": f"SPECT reconstruction {variant!r} of tracer {trc!r} resampled onto the CT grid.",
            "Units": "Bq/mL",
            "Sources": [f"bids:raw:{sub}/spect/{base}_spect.nii.gz", *ct_files],
            "SpatialReference": ct_files[0],
            "ResamplingMethod": RESAMPLING_METHOD.replace("MRI", "CT").replace("PET", "SPECT"),
            "ImageDecayCorrected": bool(spect.decay_corrected),
            "TotalActivityBefore_Bq": [t["before_Bq"] for t in totals],
            "TotalActivityAfter_Bq": [t["after_Bq"] for t in totals],
            "TotalActivityRatio": [t["ratio"] for t in totals],
            "SourceGrid": _grid_record(spect.grid),
            "TargetGrid": _grid_record(phantom.grid),
            "FrameTimesStart": frame_times,
            "FrameDuration": list(spect.frame_duration_s),
            "TimeZero": "the SPECT tracer's injection",
            "AcquisitionLabels": labels,
        })
        overlay_path = folder / f"{base}_desc-fusedCT_overlay.nii.gz"
        write_rgb_nifti(overlay_path, np.stack([r[1] for r in results], axis=3), phantom.grid,
                        frame_times_s=frame_times, description=f"imagingsim SPECT {trc} {variant} over CT")
        write_json(overlay_path.with_name(f"{base}_desc-fusedCT_overlay.json"), {
            "Description": f"SPECT ({variant}, {trc}) in a hot colour map over the CT of the same time, for display. "
                           "Not for quantification: use the _spect file.",
            "Units": "RGB (NIfTI-1 RGB24)",
            "Sources": [f"bids::{sub}/spect/{image_path.name}", *ct_files],
            "ColourMap": "hot: R = 3v, G = 3v - 1, B = 3v - 2 clipped to [0, 1], v = activity / ActivityMax",
            "ActivityMax_Bq_per_mL": scale,
            "Threshold": DEFAULT_THRESHOLD,
            "Alpha": DEFAULT_ALPHA,
            "AnatomyWindow_HU": list(CT_WINDOW_HU),
            "FrameTimesStart": frame_times,
            "AcquisitionLabels": labels,
        })
        written += [image_path, image_path.with_name(f"{base}_space-CT_spect.json"), overlay_path,
                    overlay_path.with_name(f"{base}_desc-fusedCT_overlay.json")]
    written += _write_dataset_files(root, scenario)
    return written


def scenario_time_label(scenario, schedule_index: int) -> str:
    """The ``acq-<label>`` of a schedule time (as the modality writers name their files)."""
    from imagingsim.scenario import time_label

    return time_label(scenario.schedule.times_h[schedule_index])


def _grid_record(grid: ImageGrid) -> dict[str, Any]:
    return {"shape": list(grid.shape), "voxel_size_mm": list(grid.voxel_size_mm),
            "affine_RAS_mm": [list(row) for row in grid.affine]}


def _write_dataset_files(root: Path, scenario) -> list[Path]:
    description = write_json(root / "dataset_description.json", {
        "Name": f"imagingsim image fusion: {scenario.name}",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": generated_by(scenario),
        "DatasetLinks": {"raw": "../../"},
        "License": LICENSE,
    })
    return [description, atomic_write_text(root / "README", _README)]


_README = """\
# imagingsim image fusion

Functional images resampled onto an anatomical grid, and colour overlays: PET on MRI (for the
PET frames that have an MRI session at the same schedule time) and SPECT on CT. A BIDS
derivative of the raw dataset (../../); only the pairs the scenario acquired are present.

- `sub-<id>/pet/sub-<id>_trc-<tracer>_rec-<rec>_space-MRI_pet.nii.gz` (+ .json): the PET
  reconstruction `<rec>` (sub-<id>/pet/..._rec-<rec>_pet.nii.gz) on the MRI grid, 4-D
  [x, y, z, frame], Bq/mL. Resampled as a concentration: each MRI voxel is the mean of the PET
  image over that voxel, which keeps the total activity (the sidecar lists the totals before
  and after and their ratio, and the frame times and MRI sessions of each frame).
- `sub-<id>/pet/sub-<id>_trc-<tracer>_rec-<rec>_desc-fusedMRI_overlay.nii.gz` (+ .json): for
  display only, a 4-D NIfTI-1 RGB24 image: the first-echo MRI magnitude of each session in
  grey with the PET frame in a hot colour map (the sidecar gives the grey window, the activity
  shown as white, the threshold and the opacity).

- `sub-<id>/spect/sub-<id>_trc-<tracer>_rec-<rec>_space-CT_spect.nii.gz` (+ .json): the SPECT
  reconstruction `<rec>` (sub-<id>/spect/...) on the CT grid, 4-D [x, y, z, acquisition], Bq/mL,
  resampled the same way (the SPECT grid is coarser than the CT's).
- `sub-<id>/spect/sub-<id>_trc-<tracer>_rec-<rec>_desc-fusedCT_overlay.nii.gz` (+ .json): for
  display only, the SPECT in a hot colour map over the CT of the same time (grey window -400 to
  600 HU).

In the built-in scenarios PET, MRI and CT share the phantom grid, so PET-on-MRI is the identity
resampling there (the resampler is general and tested across grids); SPECT is reconstructed
on a coarser grid and really is resampled.

The suffix `_overlay` and the RGB NIfTI are imagingsim conventions, not BIDS.
"""
