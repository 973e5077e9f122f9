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
``"enzyme"``
    ``trigger = A / (A + A_half)`` with the phantom's protease activity map ``A``
    (``protease_activity_nM``, active MMP-2/9) and ``A_half = enzyme_half_activity_nM``
    (default :data:`ENZYME_HALF_ACTIVITY_NM`): cleavage of an MMP-sensitive linker, first
    order in the enzyme at low activity and saturating where the linker is cut as fast as
    the carrier can shed its payload.
``"heat"``, ``"light"``
    switched on only while the heating source or the light is on, by the external field
    (:mod:`imagingsim.delivery.fields`, :mod:`imagingsim.delivery.light`); these maps then
    carry the baseline only, and the kinetics adds the windowed part.
``"none"``
    no trigger (baseline leak only).

The widths (0.1 pH unit, 2 mmHg) and the enzyme's half activity (5 nM) are modelling choices, not measured values: they make the
switch sharp on the scale of the tumour's pH and pO2 gradients while keeping it smooth.
"""

from __future__ import annotations

from imagingsim.scenario import ReleaseSpec

PH_TRIGGER_WIDTH = 0.1  # pH units: logistic width of the pH switch
PO2_TRIGGER_WIDTH_MMHG = 2.0  # mmHg: logistic width of the hypoxia switch
ENZYME_HALF_ACTIVITY_NM = 5.0  # nM active MMP: enzyme trigger half on (check)
#: Triggers switched on by an external field for a time window (not by a static map).
WINDOWED_TRIGGERS = ("heat", "light")
_LOGIT_CLIP = 60.0  # exp(60) is finite in float64; beyond it the sigmoid is 0 or 1 to rounding

def _sigmoid(xp, z):
    """Logistic function, clipped so that ``exp`` never overflows."""
    z = xp.clip(z, -_LOGIT_CLIP, _LOGIT_CLIP)
    return 1.0 / (1.0 + xp.exp(-z))


def trigger_map(release: ReleaseSpec, ph, po2_mmHg, xp, protease_nM=None):
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
    protease_nM : array, float64, optional
        Protease activity map, nM (needed by the enzyme trigger).

    Returns
    -------
    array, float64
        Same shape and device as ``ph``; zeros for ``trigger == "none"`` and for the
        windowed triggers (heat, light).

    Raises
    ------
    ValueError
        An enzyme trigger without a protease map.
    """
    if release.trigger == "ph":
        return _sigmoid(xp, (release.ph_threshold - ph) / PH_TRIGGER_WIDTH)
    if release.trigger == "hypoxia":
        return _sigmoid(xp, (release.po2_threshold_mmHg - po2_mmHg) / PO2_TRIGGER_WIDTH_MMHG)
    if release.trigger == "enzyme":
        if protease_nM is None:
            raise ValueError(
                "payload.release.trigger = 'enzyme' needs the phantom's protease map: set "
                "phantom.tumours[n].protease_activity_nM"
            )
        half = release.enzyme_half_activity_nM or ENZYME_HALF_ACTIVITY_NM
        return protease_nM / (protease_nM + half)
    return xp.zeros_like(ph)


def release_rate_map(release: ReleaseSpec, ph, po2_mmHg, xp, protease_nM=None):
    """First-order payload release rate in tissue, 1/h: baseline + triggered * trigger.

    Parameters are as for :func:`trigger_map`. Release in blood uses the baseline rate only
    (the trigger acts on the tissue microenvironment).
    """
    rate = release.baseline_rate_per_h + xp.zeros_like(ph)
    if release.trigger in ("none",) + WINDOWED_TRIGGERS or release.triggered_rate_per_h == 0.0:
        return rate
    return rate + release.triggered_rate_per_h * trigger_map(release, ph, po2_mmHg, xp, protease_nM)
