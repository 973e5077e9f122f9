"""CLI summary line of a CT study: mean HU of the main tissues in the first scan."""

from __future__ import annotations


def summary_lines(acq, subject) -> list[str]:
    """Tube voltage and the mean HU of each tissue's interior in the first scan."""
    from imagingsim.modalities.ct.hu import tissue_hu

    values = tissue_hu(acq, subject.phantom, subject.backend)
    return [f"  CT {acq.system.kvp:g} kVp, first scan: mean HU in the tissue interiors "
            + ", ".join(f"{name} {hu:.0f}" for name, hu in values.items())]
