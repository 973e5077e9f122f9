"""Decay over an interval: two closed forms of one integral, and clipping at the injection."""

from __future__ import annotations

import pytest

from imagingsim.data.radionuclides import nuclide
from imagingsim.physics.decay import decay_integral_s, frame_averaged_decay_factor


@pytest.mark.parametrize("name", ["F18", "Zr89"])
def test_frame_averaged_decay_factor_is_the_decay_integral(name):
    half_life = nuclide(name).half_life_s
    for t1, dt in ((0.0, 60.0), (3600.0, 900.0), (86400.0, 1800.0), (604800.0, 900.0)):
        integral = decay_integral_s(half_life, t1, t1 + dt)
        # Two closed forms of one integral: agreement to float64 rounding of exp().
        assert dt / integral == pytest.approx(frame_averaged_decay_factor(half_life, t1, t1 + dt), rel=1e-9)


def test_decay_integral_starts_at_injection():
    half_life = nuclide("F18").half_life_s
    assert decay_integral_s(half_life, 0.0, 900.0, injection_s=1000.0) == 0.0
    part = decay_integral_s(half_life, 0.0, 900.0, injection_s=600.0)
    assert part == pytest.approx(decay_integral_s(half_life, 0.0, 300.0), rel=1e-12)
