"""SPECT fused onto CT: every SPECT reconstruction on the CT grid, over the CT of the same time.

Layout (``<id>`` the subject, ``<trc>`` the SPECT tracer, ``<rec>`` a reconstruction variant)::

    derivatives/fusion/sub-<id>/spect/
      sub-<id>_trc-<trc>_rec-<rec>_space-CT_spect.nii.gz (+ .json)
            4-D [x, y, z, acquisition] on the CT grid, Bq/mL
      sub-<id>_trc-<trc>_rec-<rec>_desc-fusedCT_overlay.png (+ .json)
            quick-look picture: SPECT in a hot colour map over the CT (soft-tissue window)

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
from imagingsim.io.sidecars import write_json
from imagingsim.modalities.spect.bids import recon_label
from imagingsim.scenario import time_label

README = """\
- `sub-<id>/spect/sub-<id>_trc-<tracer>_rec-<rec>_space-CT_spect.nii.gz` (+ .json): the SPECT
  reconstruction `<rec>` (sub-<id>/spect/...) on the CT grid, 4-D [x, y, z, acquisition], Bq/mL,
  resampled as a concentration (the SPECT grid is coarser than the CT's, so it really is
  resampled; the totals before and after are in the sidecar).
- `sub-<id>/spect/sub-<id>_trc-<tracer>_rec-<rec>_desc-fusedCT_overlay.png` (+ .json): for
  display only, a PNG with one column per acquisition (axial above coronal slice through the
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
    sub = f"sub-{scenario.subject_id}"
    trc = spect.tracer.name
    root = Path(stage) / "derivatives" / FUSION_PIPELINE
    folder = root / sub / "spect"
    folder.mkdir(parents=True, exist_ok=True)
    hu = host_array(backend, ct.hu, np.float32)
    anatomy = [hu[..., k] for k in spect.schedule_indices]
    injection_s = float(spect.tracer.injection_time_h) * 3600.0
    frame_times = [float(t) - injection_s for t in spect.frame_start_s]
    labels = [time_label(scenario.schedule.times_h[k]) for k in spect.schedule_indices]
    ct_files = [f"bids:raw:{sub}/ct/{sub}_acq-{label}_ct.nii.gz" for label in labels]
    written = []
    for variant, image in spect.images_bq_per_ml.items():
        host = host_array(backend, image, np.float32)
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
            "ResamplingMethod": resampling_method("SPECT", "CT"),
            "ImageDecayCorrected": bool(spect.decay_corrected),
            "TotalActivityBefore_Bq": [t["before_Bq"] for t in totals],
            "TotalActivityAfter_Bq": [t["after_Bq"] for t in totals],
            "TotalActivityRatio": [t["ratio"] for t in totals],
            "SourceGrid": grid_record(spect.grid),
            "TargetGrid": grid_record(phantom.grid),
            "FrameTimesStart": frame_times,
            "FrameDuration": list(spect.frame_duration_s),
            "TimeZero": "00:00:00",
            "TimeZeroReference": "the SPECT tracer's injection",
            "AcquisitionLabels": labels,
        })
        overlay_path = folder / f"{base}_desc-fusedCT_overlay.png"
        focus = hottest_voxel([r[0] for r in results])
        write_png(overlay_path, overlay_montage([r[1] for r in results], focus))
        write_json(overlay_path.with_name(f"{base}_desc-fusedCT_overlay.json"), {
            "Description": f"SPECT ({variant}, {trc}) in a hot colour map over the CT of the same time, for display. "
                           "Not for quantification: use the _spect file.",
            "Units": "8-bit RGB (PNG)",
            "Layout": montage_layout(focus),
            "SliceVoxel_xyz": list(focus),
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
    return written
