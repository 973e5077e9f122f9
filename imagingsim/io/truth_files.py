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


#: Truth files of the PET writer (:mod:`imagingsim.io.pet`).
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

#: Truth files of the MRI writer (:mod:`imagingsim.io.mri`).
MRI_TRUTH_FILES: tuple[TruthFile, ...] = ()

#: Truth files of the NIRF writer (:mod:`imagingsim.io.nirf`).
NIRF_TRUTH_FILES: tuple[TruthFile, ...] = ()

MODALITY_TRUTH_FILES: tuple[TruthFile, ...] = PET_TRUTH_FILES + MRI_TRUTH_FILES + NIRF_TRUTH_FILES

__all__ = ["MODALITY_TRUTH_FILES", "MRI_TRUTH_FILES", "NIRF_TRUTH_FILES", "PET_TRUTH_FILES", "TruthFile"]
