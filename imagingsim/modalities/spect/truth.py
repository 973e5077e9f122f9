"""Files the SPECT writer adds to the ground-truth derivative (``derivatives/truth/``)."""

from __future__ import annotations

from imagingsim.io.truth_files import TruthFile

#: Truth files of the SPECT writer (:mod:`imagingsim.modalities.spect.bids`), one set per session.
TRUTH_FILES: tuple[TruthFile, ...] = (
    TruthFile(
        "sub-<id>/ses-<time>/spect/sub-<id>_ses-<time>_trc-<agent>_desc-expected_activity",
        (".nii.gz", ".json"),
        "Ground truth of the session's SPECT images of tracer <agent> (its acquisition, 3-D), on the phantom "
        "grid (the images lie on a grid voxel_binning times coarser): its activity decay-corrected to the "
        "injection, or the mean during the acquisition (sidecar ImageDecayCorrected). Written when SPECT is "
        "enabled.",
        "Bq/mL",
    ),
    TruthFile(
        "sub-<id>/ses-<time>/spect/sub-<id>_ses-<time>_desc-mu<label>_map",
        (".nii.gz", ".json"),
        "Linear attenuation coefficient at SPECT photopeak <label> (e.g. 171keV, 245keV, 140keV) during the "
        "session's acquisition, tissues plus the gold and iodine present then: the attenuation the projections "
        "were simulated with.",
        "1/mm",
    ),
)
