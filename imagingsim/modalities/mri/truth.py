"""Files the MRI writer adds to the ground-truth derivative (``derivatives/truth/``)."""

from __future__ import annotations

from imagingsim.io.truth_files import TruthFile

#: Truth files of the MRI writer (:mod:`imagingsim.modalities.mri.bids`).
TRUTH_FILES: tuple[TruthFile, ...] = (
    TruthFile(
        "sub-<id>/ses-<time>/mri/sub-<id>_ses-<time>_desc-iron_conc",
        (".nii.gz", ".json"),
        "Iron of all iron-oxide agents at the MRI session ses-<time> (the schedule time, e.g. 24h, 0p5h): "
        "carrier x iron_mass_fraction / 55.845. Compare the MRI iron estimate (derivatives/mri-iron) with it. "
        "Written when MRI is enabled.",
        "mM (mmol Fe per L of tissue)",
    ),
    TruthFile(
        "sub-<id>/ses-<time>/mri/sub-<id>_ses-<time>_desc-ironBound_conc",
        (".nii.gz", ".json"),
        "The cell-associated (receptor-bound, internalised, MPS-sequestered) part of that iron, whose effective "
        "r2* is clustered_iron_r2star_factor times that in solution.",
        "mM",
    ),
    TruthFile(
        "sub-<id>/ses-<time>/mri/sub-<id>_ses-<time>_desc-true_R2starmap",
        (".nii.gz", ".json"),
        "True R2* at the MRI session ses-<time>, at the scenario's field: baseline + r2* (free + factor x bound "
        "iron). desc-true sets it apart from the raw sub-<id>/ses-<time>/anat/*_R2starmap, the fit of the "
        "simulated images.",
        "1/s",
    ),
    TruthFile(
        "sub-<id>/ses-<time>/mri/sub-<id>_ses-<time>_desc-true_R1map",
        (".nii.gz", ".json"),
        "True R1 at the MRI session ses-<time>, at the scenario's field: baseline + r1 x iron.",
        "1/s",
    ),
    TruthFile(
        "sub-<id>/mri/sub-<id>_desc-baseline_R2starmap",
        (".nii.gz", ".json"),
        "Pre-contrast R2* at the scenario's field (the phantom's 3 T map carried by the field model of "
        "data/relaxivity.toml); the iron estimate subtracts it in place of a pre-contrast scan.",
        "1/s",
    ),
    TruthFile(
        "sub-<id>/mri/sub-<id>_desc-baseline_R1map",
        (".nii.gz", ".json"),
        "Pre-contrast R1 at the scenario's field.",
        "1/s",
    ),
    TruthFile(
        "sub-<id>/mri/sub-<id>_desc-offresonance_fieldmap",
        (".nii.gz", ".json"),
        "B0 off-resonance map applied by the MRI simulation (phase 2 pi df TE). Written only when "
        "modalities.mri.b0_offresonance_hz > 0.",
        "Hz",
    ),
)
