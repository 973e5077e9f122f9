"""Files the photoacoustic writer adds to the ground-truth derivative (``derivatives/truth/``)."""

from __future__ import annotations

from imagingsim.io.truth_files import TruthFile

#: Truth files of the photoacoustic writer (:mod:`imagingsim.modalities.photoacoustic.bids`).
TRUTH_FILES: tuple[TruthFile, ...] = (
    TruthFile(
        "sub-<id>/ses-<time>/photoacoustic/sub-<id>_ses-<time>_desc-p0_pa",
        (".nii.gz", ".json"),
        "True initial pressure p0 = Grueneisen x mu_a x fluence in the imaged axial slice at the session's time, "
        "one volume per laser wavelength (4th axis; Wavelengths_nm in the sidecar). Written when photoacoustic "
        "imaging is enabled.",
        "Pa",
    ),
    TruthFile(
        "sub-<id>/ses-<time>/photoacoustic/sub-<id>_ses-<time>_desc-fluence_pa",
        (".nii.gz", ".json"),
        "True light fluence (diffusion theory) in the slice at each wavelength (4th axis).",
        "mJ/cm^2",
    ),
    TruthFile(
        "sub-<id>/ses-<time>/photoacoustic/sub-<id>_ses-<time>_desc-<label>_conc",
        (".nii.gz", ".json"),
        "True concentration of an agent absorber <label> in the slice at the session's time: a dye "
        "(ICG, IRDye800CW, ...; uM = nmol/mL) or gold (mg Au/mL); the agents behind it are in the sidecar.",
        "uM (dyes) or mg Au/mL (gold); see the sidecar",
    ),
    TruthFile(
        "sub-<id>/photoacoustic/sub-<id>_desc-sO2_pa",
        (".nii.gz", ".json"),
        "True haemoglobin oxygen saturation in the slice (Severinghaus curve at the phantom's pO2; NaN outside "
        "the body and without blood); the same at every time.",
        "dimensionless (0-1)",
    ),
    TruthFile(
        "sub-<id>/photoacoustic/sub-<id>_desc-<label>_conc",
        (".nii.gz", ".json"),
        "True concentration of a static absorber <label> in the slice: HbO2 and Hb (mM, tissue average), water "
        "and lipid (volume fractions); the same at every time.",
        "mM (HbO2, Hb) or volume fraction (water, lipid); see the sidecar",
    ),
)
