"""CLI summary lines of a SPECT study: tumour activity per reconstruction variant against the truth."""

from __future__ import annotations

from imagingsim.modalities.base import kilo


def summary_lines(acq, subject) -> list[str]:
    """Tumour mean activity (kBq/mL) of the truth and of each variant, per acquisition."""
    from imagingsim.modalities.spect.acquire import roi_activity_bq_per_ml

    truth, images = roi_activity_bq_per_ml(acq, subject.phantom.tumour_index > 0, subject.backend)
    lines = [(f"  SPECT {acq.tracer.name} ({acq.nuclide}, {acq.params.collimator.name}): tumour mean kBq/mL, "
              f"true [{kilo(truth)}]")]
    return lines + [f"    {variant}: [{kilo(values)}]" for variant, values in images.items()]
