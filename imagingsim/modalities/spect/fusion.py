"""SPECT fused onto CT: every SPECT reconstruction on the CT grid, over the CT of the same time.

Layout (``<id>`` the subject, ``<t>`` a session, ``<trc>`` the SPECT tracer, ``<rec>`` a
reconstruction variant)::

    derivatives/fusion/sub-<id>/ses-<t>/spect/
      sub-<id>_ses-<t>_trc-<trc>_rec-<rec>_space-CT_spect.nii.gz (+ .json)   [x, y, z] on the CT grid, Bq/mL
    derivatives/fusion/sub-<id>/spect/
      sub-<id>_trc-<trc>_rec-<rec>_desc-fusedCT_overlay.png (+ .json)
            quick-look picture over the sessions: SPECT in a hot colour map over the CT (soft-tissue window)

The CT is used only through its result object (``hu`` at every schedule time).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imagingsim.io.host import host_array
from imagingsim.io.nifti import write_nifti
from imagingsim.io.overlay import (
    DEFAULT_ALPHA,
    DEFAULT_THRESHOLD,
    FUSION_PIPELINE,
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
from imagingsim.modalities.spect.bids import recon_label

README = """\
- `sub-<id>/ses-<time>/spect/sub-<id>_ses-<time>_trc-<tracer>_rec-<rec>_space-CT_spect.nii.gz`
  (+ .json): the SPECT reconstruction `<rec>` of that session
  (sub-<id>/ses-<time>/spect/...) on the CT grid of the same session, Bq/mL, resampled as a
  concentration (the SPECT grid is coarser than the CT's, so it really is resampled; the totals
  before and after are in the sidecar).
- `sub-<id>/spect/sub-<id>_trc-<tracer>_rec-<rec>_desc-fusedCT_overlay.png` (+ .json): for
  display only, a PNG with one column per session (axial above coronal slice through the
  hottest voxel, radiological view): the SPECT in a hot colour map over the CT of the same time (grey window -400 to
  600 HU).
"""


#: Grey window of the CT under the SPECT colours, HU: soft tissue and bone edges readable.
CT_WINDOW_HU = (-400.0, 600.0)


def write_spect_ct_fusion(stage: Path, scenario, phantom, spect, ct, backend) -> list[Path]:
    """Write the SPECT images fused onto the CT into the fusion derivative of the dataset at ``stage``.

    Every SPECT reconstruction (Bq/mL, on the SPECT grid) is resampled onto the CT grid as a
    concentration (total activity kept) and coloured over the CT of the same schedule time
    (HU, window :data:`CT_WINDOW_HU`). The CT scans every schedule time, so every SPECT
    acquisition has one. Each acquisition's fused image goes to its session,
    ``sub-<id>/ses-<t>/spect/``; the overlay picture of all sessions to ``sub-<id>/spect/``.

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
        Every file written: the fused images and sidecars, then the overlays and theirs.
    """
    sub = f"sub-{scenario.subject_id}"
    trc = spect.tracer.name
    root = Path(stage) / "derivatives" / FUSION_PIPELINE
    overlays = root / sub / "spect"
    overlays.mkdir(parents=True, exist_ok=True)
    hu = host_array(backend, ct.hu, np.float32)
    anatomy = [hu[..., k] for k in spect.schedule_indices]
    injection_s = float(spect.tracer.injection_time_h) * 3600.0
    frame_times = [float(t) - injection_s for t in spect.frame_start_s]
    session_times_h = [float(scenario.schedule.times_h[k]) for k in spect.schedule_indices]
    sessions = [session_entity(t) for t in session_times_h]
    ct_files = [f"bids:raw:{sub}/{ses}/ct/{sub}_{ses}_ct.nii.gz" for ses in sessions]
    written = []
    for variant, image in spect.images_bq_per_ml.items():
        host = host_array(backend, image, np.float32)
        frames = [host[..., k] for k in range(host.shape[-1])]
        scale = max(float(np.max(fr[np.isfinite(fr)], initial=0.0)) for fr in frames)  # one colour scale per variant
        results = [fuse(fr, spect.grid, an, phantom.grid, anatomy_window=CT_WINDOW_HU, activity_max=scale)
                   for fr, an in zip(frames, anatomy)]
        rec = recon_label(variant)
        fused_files = []
        for k, (ses, ct_file, (fused, _, total)) in enumerate(zip(sessions, ct_files, results, strict=True)):
            base = f"{sub}_{ses}_trc-{trc}_rec-{rec}"
            folder = root / sub / ses / "spect"
            folder.mkdir(parents=True, exist_ok=True)
            image_path = folder / f"{base}_space-CT_spect.nii.gz"
            write_nifti(image_path, fused, phantom.grid, description=f"imagingsim SPECT {trc} {variant} on CT grid")
            sidecar_path = folder / f"{base}_space-CT_spect.json"
            write_json(sidecar_path, {
                "Description": f"SPECT reconstruction {variant!r} of tracer {trc!r} of this session resampled onto "
                               "the CT grid of the same session.",
                "Units": "Bq/mL",
                "Sources": [f"bids:raw:{sub}/{ses}/spect/{base}_spect.nii.gz", ct_file],
                "SpatialReference": ct_file,
                "ResamplingMethod": resampling_method("SPECT", "CT"),
                "ImageDecayCorrected": bool(spect.decay_corrected),
                # One-element lists, the session's acquisition: the keys of the SPECT image sidecars.
                "TotalActivityBefore_Bq": total["before_Bq"],
                "TotalActivityAfter_Bq": total["after_Bq"],
                "TotalActivityRatio": total["ratio"],
                "SourceGrid": grid_record(spect.grid),
                "TargetGrid": grid_record(phantom.grid),
                "FrameTimesStart": [frame_times[k]],
                "FrameDuration": [float(spect.frame_duration_s[k])],
                "TimeZero": "00:00:00",
                "TimeZeroReference": "the SPECT tracer's injection",
                "SessionTime_h": session_times_h[k],
                "ReferenceTime": f"FrameTimesStart from the tracer's injection; SessionTime_h from {TIME_REFERENCE}",
            })
            fused_files.append(f"bids::{sub}/{ses}/spect/{image_path.name}")
            written += [image_path, sidecar_path]
        base = f"{sub}_trc-{trc}_rec-{rec}"
        overlay_path = overlays / f"{base}_desc-fusedCT_overlay.png"
        focus = hottest_voxel([r[0] for r in results])
        write_png(overlay_path, overlay_montage([r[1] for r in results], focus))
        write_json(overlay_path.with_name(f"{base}_desc-fusedCT_overlay.json"), {
            "Description": f"SPECT ({variant}, {trc}) in a hot colour map over the CT of the same time, one column "
                           "per session, for display. Not for quantification: use the _spect files.",
            "Units": "8-bit RGB (PNG)",
            "Layout": montage_layout(focus),
            "SliceVoxel_xyz": list(focus),
            "Sources": [*fused_files, *ct_files],
            "ColourMap": "hot: R = 3v, G = 3v - 1, B = 3v - 2 clipped to [0, 1], v = activity / ActivityMax",
            "ActivityMax_Bq_per_mL": scale,
            "Threshold": DEFAULT_THRESHOLD,
            "Alpha": DEFAULT_ALPHA,
            "AnatomyWindow_HU": list(CT_WINDOW_HU),
            "Sessions": sessions,
            "FrameTimesStart": frame_times,
        })
        written += [overlay_path, overlay_path.with_name(f"{base}_desc-fusedCT_overlay.json")]
    return written
