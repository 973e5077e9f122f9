"""Payload release: stimulus trigger maps (the released drug's table is :mod:`imagingsim.data.drugs`).

A carrier leaks its payload at ``ReleaseSpec.baseline_rate_per_h`` everywhere, plus
``triggered_rate_per_h * trigger(x)`` in tissue, where the trigger is a logistic switch of
the local microenvironment:

``"ph"``
    ``trigger = sigmoid((ph_threshold - pH) / 0.1)``: half on at the threshold, ~90 % on
    0.22 pH units below it (acid-labile liposomes, hydrazone linkers; tumour interstitium
    is pH 6.5-6.9, normal tissue 7.2-7.4).
``"hypoxia"``
    ``trigger = sigmoid((po2_threshold_mmHg - pO2) / 2 mmHg)``: hypoxia-responsive
    (e.g. azobenzene / nitroimidazole) carriers open below ~10 mmHg.
``"none"``
    no trigger (baseline leak only).

The widths (0.1 pH unit, 2 mmHg) are modelling choices, not measured values: they make the
switch sharp on the scale of the tumour's pH and pO2 gradients while keeping it smooth.
"""

from __future__ import annotations

from imagingsim.scenario import ReleaseSpec

PH_TRIGGER_WIDTH = 0.1  # pH units: logistic width of the pH switch
PO2_TRIGGER_WIDTH_MMHG = 2.0  # mmHg: logistic width of the hypoxia switch
_LOGIT_CLIP = 60.0  # exp(60) is finite in float64; beyond it the sigmoid is 0 or 1 to rounding

def _sigmoid(xp, z):
    """Logistic function, clipped so that ``exp`` never overflows."""
    z = xp.clip(z, -_LOGIT_CLIP, _LOGIT_CLIP)
    return 1.0 / (1.0 + xp.exp(-z))


def trigger_map(release: ReleaseSpec, ph, po2_mmHg, xp):
    """Fraction (0-1) of the triggered release that is switched on in each voxel.

    Parameters
    ----------
    release : ReleaseSpec
        Release settings of the payload.
    ph : array, float64
        Tissue pH map (pH units).
    po2_mmHg : array, float64
        Tissue oxygen partial pressure map, mmHg (same shape as ``ph``).
    xp : module
        Array namespace of ``ph``.

    Returns
    -------
    array, float64
        Same shape and device as ``ph``; zeros for ``trigger == "none"``.
    """
    if release.trigger == "ph":
        return _sigmoid(xp, (release.ph_threshold - ph) / PH_TRIGGER_WIDTH)
    if release.trigger == "hypoxia":
        return _sigmoid(xp, (release.po2_threshold_mmHg - po2_mmHg) / PO2_TRIGGER_WIDTH_MMHG)
    return xp.zeros_like(ph)


def release_rate_map(release: ReleaseSpec, ph, po2_mmHg, xp):
    """First-order payload release rate in tissue, 1/h: baseline + triggered * trigger.

    Parameters are as for :func:`trigger_map`. Release in blood uses the baseline rate only
    (the trigger acts on the tissue microenvironment).
    """
    rate = release.baseline_rate_per_h + xp.zeros_like(ph)
    if release.trigger == "none" or release.triggered_rate_per_h == 0.0:
        return rate
    return rate + release.triggered_rate_per_h * trigger_map(release, ph, po2_mmHg, xp)
