"""File patterns of the ground-truth derivative: the :class:`TruthFile` type and the
patterns that modality writers add (the core patterns live in :mod:`imagingsim.io.bids`).

Every file under ``derivatives/truth/sub-<id>/`` must match exactly one pattern of
``imagingsim.io.bids.TRUTH_FILES`` (a test checks it), and the derivative's README is written
from that table. A modality writer that adds a truth file adds its pattern here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class TruthFile:
    """One documented file pattern of the ground-truth derivative.

    ``stem`` is the path under ``derivatives/truth/`` without extension, with placeholders
    ``<id>`` (subject), ``<agent>`` (agent name), ``<property>`` (a ``PROPERTY_DESC`` value)
    and ``<label>`` (any other entity value, e.g. an ``acq`` time label); each placeholder
    stands for letters and digits.
    """

    stem: str
    extensions: tuple[str, ...]
    meaning: str
    units: str

    def regex(self) -> re.Pattern[str]:
        """A regular expression matching every path (relative, ``/``-separated) of this pattern."""
        parts = re.split(r"(<id>|<agent>|<property>|<label>)", self.stem)
        placeholders = ("<id>", "<agent>", "<property>", "<label>")
        body = "".join("[A-Za-z0-9]+" if part in placeholders else re.escape(part) for part in parts)
        return re.compile(f"{body}(?:{'|'.join(re.escape(e) for e in self.extensions)})")

    def display(self) -> str:
        """``stem`` with its extensions, as listed in the README."""
        return f"{self.stem}  ({', '.join(self.extensions)})"


#: Truth files of the PET writer (:mod:`imagingsim.modalities.pet.bids`).
PET_TRUTH_FILES: tuple[TruthFile, ...] = (
    TruthFile(
        "sub-<id>/pet/sub-<id>_trc-<agent>_desc-expected_activity",
        (".nii.gz", ".json"),
        "4-D [x, y, z, frame] ground truth of the PET images of tracer <agent>: what an ideal "
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

#: Truth files of the MRI writer (:mod:`imagingsim.modalities.mri.bids`).
MRI_TRUTH_FILES: tuple[TruthFile, ...] = (
    TruthFile(
        "sub-<id>/mri/sub-<id>_acq-<label>_desc-iron_conc",
        (".nii.gz", ".json"),
        "Iron of all iron-oxide agents at the MRI session acq-<label> (the schedule time, e.g. 24h, 0p5h): "
        "carrier x iron_mass_fraction / 55.845. Compare the MRI iron estimate (derivatives/mri-iron) with it. "
        "Written when MRI is enabled.",
        "mM (mmol Fe per L of tissue)",
    ),
    TruthFile(
        "sub-<id>/mri/sub-<id>_acq-<label>_desc-ironBound_conc",
        (".nii.gz", ".json"),
        "The cell-associated (receptor-bound, internalised, MPS-sequestered) part of that iron, whose effective "
        "r2* is clustered_iron_r2star_factor times that in solution.",
        "mM",
    ),
    TruthFile(
        "sub-<id>/mri/sub-<id>_acq-<label>_desc-true_R2starmap",
        (".nii.gz", ".json"),
        "True R2* at the MRI session acq-<label>, at the scenario's field: baseline + r2* (free + factor x bound "
        "iron). desc-true sets it apart from the raw sub-<id>/anat/*_acq-<label>_R2starmap, the fit of the "
        "simulated images.",
        "1/s",
    ),
    TruthFile(
        "sub-<id>/mri/sub-<id>_acq-<label>_desc-true_R1map",
        (".nii.gz", ".json"),
        "True R1 at the MRI session acq-<label>, at the scenario's field: baseline + r1 x iron.",
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

#: Truth files of the NIRF writer (:mod:`imagingsim.modalities.nirf.bids`).
NIRF_TRUTH_FILES: tuple[TruthFile, ...] = (
    TruthFile(
        "sub-<id>/nirf/sub-<id>_acq-<label>_desc-noisefree_nirf",
        (".nii.gz", ".json"),
        "Noise-free expected NIRF image at schedule time <label> (24h, 0p5h, ...): dye fluorescence + tissue "
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
        "sub-<id>/nirf/sub-<id>_desc-<agent>Dye_conc",
        (".nii.gz", ".json"),
        "4-D ground truth [x, y, z, t]: dye concentration of fluorophore agent <agent> (carrier x dye_nmol_per_mg "
        "/ 1000). Volume n is the instantaneous value at SampleTimes_s[n] (sidecar).",
        "nmol/mL",
    ),
)

#: Truth files of the SPECT writer (:mod:`imagingsim.modalities.spect.bids`).
SPECT_TRUTH_FILES: tuple[TruthFile, ...] = (
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

#: Truth files of the CT writer (:mod:`imagingsim.modalities.ct.bids`).
CT_TRUTH_FILES: tuple[TruthFile, ...] = (
    TruthFile(
        "sub-<id>/ct/sub-<id>_acq-<label>_desc-trueMu_map",
        (".nii.gz", ".json"),
        "True linear attenuation (tissues + contrast) at the CT's reference energy (sidecar), the map the HU "
        "images estimate: HU = 1000 (mu - mu_water) / mu_water. Written when CT is enabled.",
        "1/mm",
    ),
    TruthFile(
        "sub-<id>/ct/sub-<id>_acq-<label>_desc-gold_conc",
        (".nii.gz", ".json"),
        "Gold concentration the CT forward model used (carrier x gold mass fraction), when an agent carries gold.",
        "mg/mL",
    ),
    TruthFile(
        "sub-<id>/ct/sub-<id>_acq-<label>_desc-iodine_conc",
        (".nii.gz", ".json"),
        "Iodine concentration the CT forward model used, when an agent carries iodine.",
        "mg/mL",
    ),
)

MODALITY_TRUTH_FILES: tuple[TruthFile, ...] = (
    PET_TRUTH_FILES + MRI_TRUTH_FILES + NIRF_TRUTH_FILES + SPECT_TRUTH_FILES + CT_TRUTH_FILES
)

__all__ = [
    "CT_TRUTH_FILES",
    "MODALITY_TRUTH_FILES",
    "MRI_TRUTH_FILES",
    "NIRF_TRUTH_FILES",
    "PET_TRUTH_FILES",
    "SPECT_TRUTH_FILES",
    "TruthFile",
]
