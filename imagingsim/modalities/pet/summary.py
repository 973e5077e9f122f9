"""CLI summary lines of a PET acquisition: tumour activity per reconstruction against the truth."""

from __future__ import annotations

from imagingsim.modalities.base import kilo
from imagingsim.physics.metrics import roi_mean


def summary_lines(acq, subject) -> list[str]:
    """Tumour mean activity (kBq/mL) of the truth and of each reconstruction, per frame."""
    be = subject.backend
    tumour = subject.phantom.tumour_index > 0
    truth = roi_mean(acq.expected_image_bq_per_ml, tumour, be)
    lines = [f"  PET {acq.tracer.name} ({acq.nuclide}): tumour mean kBq/mL, true [{kilo(truth)}]"]
    lines += [f"    {method}: [{kilo(roi_mean(image, tumour, be))}]" for method, image in acq.images_bq_per_ml.items()]
    return lines
