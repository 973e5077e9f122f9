"""Lumped entries (imagingsim.delivery.lumping) against the per-entry solver.

Lumping regroups the same linear step: entries with equal rates share their unit responses,
so the lumped solver must equal the per-entry one up to rounding on every built-in scenario,
on numpy and on the strict backend, and it must actually lump where the rates are label-wise.
"""

from __future__ import annotations

import numpy as np
import pytest

import imagingsim.delivery.kinetics as kinetics
from imagingsim.backend import get_backend
from imagingsim.delivery.lumping import lump
from imagingsim.delivery.network import Network
from imagingsim.pipeline import load_scenario, simulate
from imagingsim.scenario import builtin_names

COARSE_VOXEL_MM = {"mouse": 2.0, "torso": 5.0, "brain": 5.0}
MAPS = ("carrier_ug_per_ml", "bound_carrier_ug_per_ml", "free_drug_ug_per_ml", "bound_drug_ug_per_ml",
        "encapsulated_drug_ug_per_ml")


def _deliveries(name: str, monkeypatch, backend: str, *, lumped: bool):
    anatomy = load_scenario(name).phantom.anatomy
    scenario = load_scenario(name, [f"phantom.voxel_size_mm={COARSE_VOXEL_MM[anatomy]}", "modalities.enabled=[]"])
    used = []

    def spy(net, n_entries, be):
        result = lump(net, n_entries, be) if lumped else None
        used.append(result is not None)
        return result

    with monkeypatch.context() as patch:
        patch.setattr(kinetics, "lump", spy)
        subject = simulate(scenario, backend=backend)
    return subject, used


@pytest.mark.parametrize("name", builtin_names())
def test_lumped_solver_matches_the_per_entry_solver_on_every_builtin_scenario(name, monkeypatch):
    new, used = _deliveries(name, monkeypatch, "numpy", lumped=True)
    old, _ = _deliveries(name, monkeypatch, "numpy", lumped=False)
    air = np.asarray(new.phantom.labels) == 0
    for a, b in zip(new.delivery.agents, old.delivery.agents, strict=True):
        for key in MAPS:
            x, y = getattr(a, key), getattr(b, key)
            if y is None:
                assert x is None
                continue
            x, y = np.asarray(x), np.asarray(y)
            # 1e-12 of the map's largest value: the same products grouped and summed in another
            # order, over ~10^3 steps, stay within ~1e-14; a lost channel or a wrong group is O(1).
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-12 * max(float(np.abs(y).max()), 1e-300), err_msg=key)
            assert np.all(x[air] == 0.0), key
        for column in b.ledger_ug:
            np.testing.assert_allclose(a.ledger_ug[column], b.ledger_ug[column], rtol=1e-12, atol=1e-12 * a.injected_mass_ug)
        np.testing.assert_allclose(a.blood_curve_ug_per_ml, b.blood_curve_ug_per_ml, rtol=1e-12, atol=0)
        totals = np.sum([a.ledger_ug[k] for k in a.ledger_ug], axis=0)
        injected = np.asarray(a.times_h) >= a.agent.injection_time_h
        np.testing.assert_allclose(totals, np.where(injected, a.injected_mass_ug, 0.0), rtol=1e-9)
    if name != "mouse_peg_liposome":  # its pH-triggered release varies voxel by voxel
        assert any(used), "label-wise rates must be lumped"


def test_lumped_solver_on_the_strict_backend_matches_numpy(monkeypatch):
    # The grouping (unique, argsort, cumulative sums, take) in the array API only.
    numpy_run, used = _deliveries("torso_liver_metastasis", monkeypatch, "numpy", lumped=True)
    strict_run, _ = _deliveries("torso_liver_metastasis", monkeypatch, "strict", lumped=True)
    assert all(used)
    for a, b in zip(numpy_run.delivery.agents, strict_run.delivery.agents, strict=True):
        for key in MAPS:
            x, y = getattr(a, key), getattr(b, key)
            if x is not None:
                np.testing.assert_allclose(np.asarray(x), np.asarray(get_backend("strict").to_host(y)), rtol=1e-12, atol=0)


def _toy(xp):
    """Eight entries, two rates (five and three entries), two input channels."""
    net = Network(xp)
    blood, sink = net.state("blood", False), net.state("sink", False)
    tissue, cells = net.state("E", True), net.state("B", True)
    net.flow(blood, tissue, 0.5, xp.asarray([0.2, 0.1, 0.05, 0.05, 0.1, 0.3, 0.0, 0.2]))
    net.flow(blood, cells, 0.1, xp.asarray([0.3, 0.0, 0.0, 0.1, 0.2, 0.0, 0.0, 0.4]))
    net.flow(tissue, blood, 0.3)
    net.flow(tissue, cells, xp.asarray([0.2, 0.7, 0.2, 0.2, 0.7, 0.2, 0.7, 0.2]), bound=0.7)
    net.flow(cells, sink, 0.05)
    return net


def test_lumping_groups_entries_by_rates_and_expands_them_back():
    backend = get_backend("numpy")
    xp = backend.xp
    lumped, by_state = lump(_toy(xp), 8, backend)  # 2 channels x 2 groups = 4 lumped entries
    assert set(by_state) == {2, 3} and by_state[2] is by_state[3]  # E and B: one component
    lumping = by_state[2]
    assert lumping.n_groups == 2 and lumping.n_entries == 4
    group = np.asarray(lumping.group)
    assert np.array_equal(group == group[0], np.asarray([1, 0, 1, 1, 0, 1, 0, 1], bool))
    # One step from a dose in blood, both ways: the per-entry maps come back.
    plain = _toy(xp)
    plain.compile(0.25)
    lumped.compile(0.25)
    start = [xp.asarray(1.0), xp.asarray(0.0), xp.zeros(8), xp.zeros(8)]
    start_lumped = [xp.asarray(1.0), xp.asarray(0.0), xp.zeros(4), xp.zeros(4)]
    x, y = start, start_lumped
    for _ in range(20):
        x = plain.linear_step(plain.factors(0.25)).apply(x)
        y = lumped.linear_step(lumped.factors(0.25)).apply(y)
    np.testing.assert_allclose(float(y[0]), float(x[0]), rtol=1e-14)
    for k in (2, 3):
        np.testing.assert_allclose(np.asarray(lumping.expand(y[k])), np.asarray(x[k]), rtol=1e-13)


def test_lumping_declines_when_every_entry_has_its_own_rate():
    backend = get_backend("numpy")
    xp = backend.xp
    net = Network(xp)
    blood = net.state("blood", False)
    tissue = net.state("E", True)
    net.flow(blood, tissue, 0.5, xp.full(8, 1 / 8))
    net.flow(tissue, blood, xp.linspace(0.1, 0.8, 8), bound=0.8)
    assert lump(net, 8, backend) is None
