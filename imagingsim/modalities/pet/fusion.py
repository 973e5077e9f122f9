"""PET fused onto MRI: the PET frames that have an MRI session at the same time, on the MRI grid.

Layout (``<id>`` the subject, ``<t>`` a session, ``<trc>`` the PET tracer, ``<rec>`` a PET
reconstruction)::

    derivatives/fusion/sub-<id>/ses-<t>/pet/
      sub-<id>_ses-<t>_trc-<trc>_rec-<rec>_space-MRI_pet.nii.gz (+ .json)   [x, y, z] on the MRI grid, Bq/mL
    derivatives/fusion/sub-<id>/pet/
      sub-<id>_trc-<trc>_rec-<rec>_desc-fusedMRI_overlay.png (+ .json)
            quick-look picture over the sessions: PET in a hot colour map over the first-echo MRI magnitude

The PET image is resampled as a concentration (:func:`imagingsim.io.overlay.fuse`), which
keeps its total activity; the sidecar records the totals before and after. The MRI is used
only through its result object (``magnitude``, ``times_h``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imagingsim.grid import ImageGrid
from imagingsim.io.host import host_array
from imagingsim.io.nifti import write_nifti
from imagingsim.io.overlay import (
    DEFAULT_ALPHA,
    DEFAULT_THRESHOLD,
    FUSION_PIPELINE,
    WINDOW_PERCENTILE,
    anatomy_window_of,
    fuse,
    grid_record,
    hottest_voxel,
    montage_layout,
    overlay_montage,
    resampling_method,
)
from imagingsim.io.png import write_png
from imagingsim.io.sessions import session_entity
from imagingsim.io.sidecars import TIME_REFERENCE, write_json

#: Schedule times closer than this (h) are the same session.
TIME_MATCH_H = 1e-6

README = """\
- `sub-<id>/ses-<time>/pet/sub-<id>_ses-<time>_trc-<tracer>_rec-<rec>_space-MRI_pet.nii.gz` (+ .json):
  the PET reconstruction `<rec>` of that session (sub-<id>/ses-<time>/pet/..._rec-<rec>_pet.nii.gz) on
  the MRI grid of the same session, Bq/mL, for the sessions with both a PET and an MRI scan.
  Resampled as a concentration: each MRI voxel is the mean of the PET image over that
  voxel, which keeps the total activity (the sidecar lists the totals before and after and
  their ratio, and the frame time). In the built-in scenarios
  PET and MRI share the phantom grid, so this is the identity resampling there (the
  resampler is general and tested across grids).
- `sub-<id>/pet/sub-<id>_trc-<tracer>_rec-<rec>_desc-fusedMRI_overlay.png` (+ .json): for
  display only, a PNG with one column per session (axial above coronal slice through the
  hottest voxel, radiological view): the first-echo MRI magnitude of each session in
  grey with the PET frame in a hot colour map (the sidecar gives the grey window, the activity
  shown as white, the threshold and the opacity).
"""


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
    """Write the PET images fused onto the MRI into the fusion derivative of the dataset at ``stage``.

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
        ``magnitude`` (``(T, E, nx, ny, nz)``) and ``times_h``.
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
    overlays = root / sub / "pet"
    overlays.mkdir(parents=True, exist_ok=True)

    sessions = [session_entity(mri.times_h[j]) for _, j in pairs]
    anatomy = [host_array(backend, mri.magnitude[j, 0], np.float32) for _, j in pairs]
    window = anatomy_window_of(np.stack(anatomy))  # one window for every session: brightness comparable over time
    injection_s = float(pet.tracer.injection_time_h) * 3600.0
    echo_files = [f"bids:raw:{sub}/{ses}/anat/{sub}_{ses}_echo-1_part-mag_MEGRE.nii.gz" for ses in sessions]

    def timing(f: int, j: int) -> dict:
        return {
            "FrameTimesStart": [float(pet.frame_start_s[f]) - injection_s],
            "FrameDuration": [float(pet.frame_duration_s[f])],
            "TimeZero": "00:00:00",
            "TimeZeroReference": "the PET tracer's injection",
            "SessionTime_h": float(mri.times_h[j]),
            "ReferenceTime": f"FrameTimesStart from the tracer's injection; SessionTime_h from {TIME_REFERENCE}",
        }

    written = []
    for method, image in pet.images_bq_per_ml.items():
        host = host_array(backend, image, np.float32)
        frames = [host[..., f] for f, _ in pairs]
        scale = max(float(np.max(fr[np.isfinite(fr)], initial=0.0)) for fr in frames)  # one colour scale per method
        results = [fuse(fr, pet_grid, an, mri_grid, anatomy_window=window, activity_max=scale)
                   for fr, an in zip(frames, anatomy)]
        fused_files = []
        for (f, j), ses, echo, (fused, _, total) in zip(pairs, sessions, echo_files, results, strict=True):
            base = f"{sub}_{ses}_trc-{trc}_rec-{method}"
            folder = root / sub / ses / "pet"
            folder.mkdir(parents=True, exist_ok=True)
            pet_path = folder / f"{base}_space-MRI_pet.nii.gz"
            write_nifti(pet_path, fused, mri_grid, description=f"imagingsim PET {trc} {method} on MRI grid")
            write_json(folder / f"{base}_space-MRI_pet.json", {
                "Description": f"PET reconstruction {method!r} of tracer {trc!r} of this session resampled onto the "
                               "MRI grid of the same session.",
                "Units": "Bq/mL",
                "Sources": [f"bids:raw:{sub}/{ses}/pet/{base}_pet.nii.gz", echo],
                "SpatialReference": echo,
                "ResamplingMethod": resampling_method("PET", "MRI"),
                "ImageDecayCorrected": bool(pet.decay_corrected),
                "SkullStripped": False,  # required of a BIDS-Derivatives PET image; nothing is masked
                "TotalActivityBefore_Bq": total["before_Bq"],
                "TotalActivityAfter_Bq": total["after_Bq"],
                "TotalActivityRatio": total["ratio"],
                "TotalActivityDefinition": "sum of the voxels x voxel volume (mL), on the PET grid (before) and the "
                                           "MRI grid (after); the ratio is below 1 only where the MRI field of view "
                                           "leaves activity out",
                "SourceGrid": grid_record(pet_grid),
                "TargetGrid": grid_record(mri_grid),
                **timing(f, j),
            })
            fused_files.append(f"bids::{sub}/{ses}/pet/{pet_path.name}")
            written += [pet_path, folder / f"{base}_space-MRI_pet.json"]
        base = f"{sub}_trc-{trc}_rec-{method}"
        overlay_path = overlays / f"{base}_desc-fusedMRI_overlay.png"
        focus = hottest_voxel([r[0] for r in results])
        write_png(overlay_path, overlay_montage([r[1] for r in results], focus))
        write_json(overlay_path.with_name(f"{base}_desc-fusedMRI_overlay.json"), {
            "Description": f"PET ({method}, {trc}) in a hot colour map over the first-echo MRI magnitude of the "
                           "session at the same time, one column per session, for display. Not for "
                           "quantification: use the _pet files.",
            "Units": "8-bit RGB (PNG)",
            "Layout": montage_layout(focus),
            "SliceVoxel_xyz": list(focus),
            "Sources": [*fused_files, *echo_files],
            "ColourMap": "hot: R = 3v, G = 3v - 1, B = 3v - 2 clipped to [0, 1], v = activity / ActivityMax",
            "ActivityMax_Bq_per_mL": scale,
            "Threshold": DEFAULT_THRESHOLD,
            "ThresholdDefinition": "colour only where activity > Threshold x ActivityMax",
            "Alpha": DEFAULT_ALPHA,
            "AnatomyWindow": list(window),
            "AnatomyWindowDefinition": f"first-echo magnitude lo -> black, hi -> white; hi is the "
                                       f"{WINDOW_PERCENTILE}th percentile over the fused sessions",
            "Sessions": sessions,
            "FrameTimesStart": [float(pet.frame_start_s[f]) - injection_s for f, _ in pairs],
            "TimeZero": "00:00:00",
            "TimeZeroReference": "the PET tracer's injection",
        })
        written += [overlay_path, overlay_path.with_name(f"{base}_desc-fusedMRI_overlay.json")]
    return written
