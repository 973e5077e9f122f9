"""Files the PET writer adds to the ground-truth derivative (``derivatives/truth/``)."""

from __future__ import annotations

from imagingsim.io.truth_files import TruthFile

#: Truth files of the PET writer (:mod:`imagingsim.modalities.pet.bids`).
TRUTH_FILES: tuple[TruthFile, ...] = (
    TruthFile(
        "sub-<id>/ses-<time>/pet/sub-<id>_ses-<time>_trc-<agent>_desc-expected_activity",
        (".nii.gz", ".json"),
        "Ground truth of the session's PET images of tracer <agent> (its frame, 3-D): what an ideal "
        "scanner would report in the images' convention (all positron emitters, scaled to the tracer's "
        "positrons per decay and decay correction). Written when PET is enabled.",
        "Bq/mL",
    ),
    TruthFile(
        "sub-<id>/pet/sub-<id>_desc-mu511keV_map",
        (".nii.gz", ".json"),
        "Linear attenuation coefficient of the phantom at 511 keV (PET attenuation map).",
        "1/mm",
    ),
)
