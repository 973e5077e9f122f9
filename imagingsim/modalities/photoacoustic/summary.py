"""CLI summary of a photoacoustic acquisition: tumour sO2 and agent, true against unmixed."""

from __future__ import annotations

from imagingsim.modalities.base import fixed


def summary_lines(acq, subject) -> list[str]:
    """One line for the tumour's sO2 (truth, uncompensated, compensated) over time, one per agent absorber.

    Parameters
    ----------
    acq : PAAcquisition
    subject : imagingsim.pipeline.Subject
        Unused (the tumour means are computed during the acquisition).

    Returns
    -------
    list of str
    """
    g = acq.geometry
    head = (f"  PA {g.detector} ({g.n_elements} el., {g.center_frequency_MHz:g} MHz, {len(acq.wavelengths_nm)} "
            f"wavelengths, SNR {acq.snr_db:g} dB, rec-{acq.unmix_from})")
    rows = acq.tumour_summary
    if not rows:
        return [f"{head}: no tumour blood in the slice; noise sd {acq.noise_sd_Pa:.3g} Pa"]
    lines = [f"{head}: tumour sO2 true [{fixed(r['so2_true'] for r in rows)}], unmixed "
             f"[{fixed(r['so2_estimate'] for r in rows)}]"
             + (f", fluence-compensated [{fixed(r['so2_compensated'] for r in rows)}]" if "so2_compensated" in rows[0]
                else "")]
    units = {e.key: e.unit for e in acq.endmembers}
    for key in acq.agent_truth:
        lines.append(f"  PA tumour {key} ({units[key]}): true [{fixed(r[f'{key}_true'] for r in rows)}], "
                     + (f"compensated [{fixed(r[f'{key}_compensated'] for r in rows)}]" if f"{key}_compensated" in rows[0]
                        else f"uncompensated [{fixed(r[f'{key}_estimate'] for r in rows)}]"))
    return lines


__all__ = ["summary_lines"]
