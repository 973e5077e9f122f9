"""The one-pass linear step (Network.linear_step) against the two-pass reference (Network.step).

Both advance the same network with the same factors; the linear step only folds every path
from a source to a destination into one coefficient, so the two agree to rounding. Checked on
every built-in scenario (coarse voxels: the algebra does not depend on the grid); the strict
backend runs the linear step in tests/test_end_to_end.py (numpy against strict).
"""

from __future__ import annotations

import numpy as np
import pytest

from imagingsim.delivery.network import Network
from imagingsim.pipeline import load_scenario, simulate
from imagingsim.scenario import builtin_names

COARSE_VOXEL_MM = {"mouse": 2.0, "torso": 5.0, "brain": 5.0}
MAPS = ("carrier_ug_per_ml", "bound_carrier_ug_per_ml", "free_drug_ug_per_ml", "bound_drug_ug_per_ml",
        "encapsulated_drug_ug_per_ml")


class _TwoPassReference:
    """What the solver stepped with before the linear step: Network.step with fixed factors."""

    def __init__(self, network: Network, factors):
        self.network, self.factors = network, factors

    def apply(self, values):
        return self.network.step(values, self.factors)


def _deliveries(name: str, monkeypatch, *, reference: bool):
    anatomy = load_scenario(name).phantom.anatomy
    scenario = load_scenario(name, [f"phantom.voxel_size_mm={COARSE_VOXEL_MM[anatomy]}", "modalities.enabled=[]"])
    with monkeypatch.context() as patch:
        if reference:
            patch.setattr(Network, "linear_step", lambda network, factors: _TwoPassReference(network, factors))
        subject = simulate(scenario, backend="numpy")
    return subject


@pytest.mark.parametrize("name", builtin_names())
def test_linear_step_matches_the_two_pass_step_on_every_builtin_scenario(name, monkeypatch):
    new = _deliveries(name, monkeypatch, reference=False)
    old = _deliveries(name, monkeypatch, reference=True)
    air = np.asarray(new.phantom.labels) == 0
    for a, b in zip(new.delivery.agents, old.delivery.agents, strict=True):
        for key in MAPS:
            x, y = getattr(a, key), getattr(b, key)
            if y is None:
                assert x is None
                continue
            x, y = np.asarray(x), np.asarray(y)
            # 1e-12 of the map's largest value: the same products summed in another order, over
            # up to ~10^3 steps, stay within ~1e-14; a wrong path or a lost share would be O(1).
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-12 * max(float(np.abs(y).max()), 1e-300), err_msg=key)
            assert np.all(x[air] == 0.0), key  # nothing ever reaches air
        for column in b.ledger_ug:
            np.testing.assert_allclose(a.ledger_ug[column], b.ledger_ug[column], rtol=1e-12, atol=1e-12 * a.injected_mass_ug)
        totals = np.sum([a.ledger_ug[k] for k in a.ledger_ug], axis=0)
        injected = np.asarray(a.times_h) >= a.agent.injection_time_h
        np.testing.assert_allclose(totals, np.where(injected, a.injected_mass_ug, 0.0), rtol=1e-9)  # ledger closes
