"""Files the SPECT writer adds to the ground-truth derivative (``derivatives/truth/``)."""

from __future__ import annotations

from imagingsim.io.truth_files import TruthFile

#: Truth files of the SPECT writer (:mod:`imagingsim.modalities.spect.bids`).
TRUTH_FILES: tuple[TruthFile, ...] = (
    TruthFile(
        "sub-<id>/spect/sub-<id>_trc-<agent>_desc-expected_activity",
        (".nii.gz", ".json"),
        "4-D [x, y, z, acquisition] ground truth of the SPECT images of tracer <agent>, on the phantom grid (the "
        "images lie on a grid voxel_binning times coarser): its activity decay-corrected to the injection, or "
        "the mean during each acquisition (sidecar ImageDecayCorrected). Written when SPECT is enabled.",
        "Bq/mL",
    ),
    TruthFile(
        "sub-<id>/spect/sub-<id>_desc-mu<label>_map",
        (".nii.gz", ".json"),
        "4-D [x, y, z, acquisition] linear attenuation coefficient at SPECT photopeak <label> (e.g. 171keV, "
        "245keV, 140keV), tissues plus gold and iodine at each acquisition: the attenuation the projections "
        "were simulated with.",
        "1/mm",
    ),
)
