"""CLI summary lines of an MRI acquisition: tumour iron, true and estimated from R2*."""

from __future__ import annotations

from imagingsim.modalities.base import fixed


def summary_lines(acq, subject) -> list[str]:
    """Field, recon and acceleration; tumour iron (mM) true and from R2*, per session."""
    from imagingsim.modalities.mri.acquire import roi_iron_mM

    lines = [f"  MRI {acq.spec.field_T:g} T, {acq.recon_method}, acceleration {acq.acceleration:.2f}"]
    if acq.iron_estimate_mM is None:
        return [*lines, "    no iron-oxide agent (or one echo): no iron estimate"]
    true, estimate, fraction = roi_iron_mM(acq, subject.phantom.tumour_index > 0, subject.backend)
    return [*lines, (f"    tumour iron mM, true [{fixed(true)}], from R2* [{fixed(estimate)}] "
                     f"(estimated in at least {min(fraction):.0%} of tumour voxels)")]
