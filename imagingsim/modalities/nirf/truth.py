"""Files the NIRF writer adds to the ground-truth derivative (``derivatives/truth/``)."""

from __future__ import annotations

from imagingsim.io.truth_files import TruthFile

#: Truth files of the NIRF writer (:mod:`imagingsim.modalities.nirf.bids`).
TRUTH_FILES: tuple[TruthFile, ...] = (
    TruthFile(
        "sub-<id>/ses-<time>/nirf/sub-<id>_ses-<time>_desc-noisefree_nirf",
        (".nii.gz", ".json"),
        "Noise-free expected NIRF image of the session (schedule time <time>: 24h, 0p5h, ...): dye fluorescence + tissue "
        "autofluorescence + dark current, one voxel thick along the view axis at the body surface. Written "
        "when NIRF is enabled.",
        "photoelectrons",
    ),
    TruthFile(
        "sub-<id>/nirf/sub-<id>_desc-background_nirf",
        (".nii.gz", ".json"),
        "The expected autofluorescence + dark-current part of every NIRF image (the same at all times).",
        "photoelectrons",
    ),
    TruthFile(
        "sub-<id>/ses-<time>/nirf/sub-<id>_ses-<time>_desc-<agent>Dye_conc",
        (".nii.gz", ".json"),
        "Ground truth at the session's time: dye concentration of fluorophore agent <agent> (carrier x "
        "dye_nmol_per_mg / 1000), the instantaneous value at SampleTime_s (sidecar).",
        "nmol/mL",
    ),
)
