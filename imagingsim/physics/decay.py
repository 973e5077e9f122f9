"""Radioactive decay over an acquisition interval (host-side scalar arithmetic, shared by PET and SPECT).

References
----------
dPETSTEP frame-averaged decay factor: Haggstrom et al., Med Phys 2016;43:4882 (eq. for the
mean activity over a frame).
"""

from __future__ import annotations

import math


def decay_integral_s(half_life_s: float, start_s: float, end_s: float, *, injection_s: float = 0.0) -> float:
    """Decays per becquerel injected over ``[start_s, end_s]``: ``int exp(-lambda (t - t_inj)) dt``, s.

    The integral runs over the part of the interval after the injection (nothing decays
    before it), so a frame that ends before the injection gives 0.

    Parameters
    ----------
    half_life_s : float
        Physical half-life, s.
    start_s, end_s : float
        Interval, s on the scenario clock (t = 0 at the scenario start).
    injection_s : float
        Injection time on the same clock, s.

    Returns
    -------
    float
        ``exp(-lambda a) (1 - exp(-lambda (b - a))) / lambda`` with ``a, b`` the clipped
        interval measured from the injection (``expm1`` keeps short frames exact), s.
    """
    lo = max(start_s, injection_s) - injection_s
    hi = max(end_s, injection_s) - injection_s
    if hi <= lo:
        return 0.0
    lam = math.log(2.0) / half_life_s
    return math.exp(-lam * lo) * -math.expm1(-lam * (hi - lo)) / lam


def frame_averaged_decay_factor(half_life_s: float, start_s: float, end_s: float) -> float:
    """dPETSTEP's frame-averaged decay factor ``lambda dt / (exp(-lambda t1) - exp(-lambda t2))``.

    Dividing the activity at injection by it gives the mean activity during the frame; it
    equals ``(t2 - t1) / decay_integral_s(half_life_s, t1, t2)``.

    Parameters
    ----------
    half_life_s : float
        Physical half-life, s.
    start_s, end_s : float
        Frame limits ``t1, t2`` after injection, s.

    Returns
    -------
    float
        The factor (dimensionless, >= 1).
    """
    lam = math.log(2.0) / half_life_s
    return lam * (end_s - start_s) / (math.exp(-lam * start_s) - math.exp(-lam * end_s))


__all__ = ["decay_integral_s", "frame_averaged_decay_factor"]
