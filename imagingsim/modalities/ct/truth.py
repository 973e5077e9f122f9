"""Files the CT writer adds to the ground-truth derivative (``derivatives/truth/``)."""

from __future__ import annotations

from imagingsim.io.truth_files import TruthFile

#: Truth files of the CT writer (:mod:`imagingsim.modalities.ct.bids`).
TRUTH_FILES: tuple[TruthFile, ...] = (
    TruthFile(
        "sub-<id>/ses-<time>/ct/sub-<id>_ses-<time>_desc-trueMu_map",
        (".nii.gz", ".json"),
        "True linear attenuation (tissues + contrast) at the CT's reference energy (sidecar) during the session's "
        "scan, the map its HU image estimates: HU = 1000 (mu - mu_water) / mu_water. Written when CT is enabled.",
        "1/mm",
    ),
    TruthFile(
        "sub-<id>/ses-<time>/ct/sub-<id>_ses-<time>_desc-gold_conc",
        (".nii.gz", ".json"),
        "Gold concentration the CT forward model used for the session's scan (carrier x gold mass fraction), when "
        "an agent carries gold.",
        "mg/mL",
    ),
    TruthFile(
        "sub-<id>/ses-<time>/ct/sub-<id>_ses-<time>_desc-iodine_conc",
        (".nii.gz", ".json"),
        "Iodine concentration the CT forward model used for the session's scan, when an agent carries iodine.",
        "mg/mL",
    ),
)
