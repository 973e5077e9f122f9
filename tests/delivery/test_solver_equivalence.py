"""Ways of stepping the same delivery model, checked against each other on every built-in scenario.

- The one-pass linear step (Network.linear_step) against the two-pass reference
  (Network.step): the linear step only folds every path from a source to a destination into
  one coefficient, so the two agree to rounding.
- Lumped entries (imagingsim.delivery.lumping) against the per-entry solver: entries with equal
  rates share their unit responses, so the lumped solver equals the per-entry one to rounding,
  on numpy and on the strict backend, and it must actually lump where the rates are label-wise.
- Steps on rungs (solver_steps' rung_ratio) against the continuous ramp they replaced: other
  step sizes, so not equal to rounding; both are measured against a reference with 8x finer
  steps, and the rungs must move the maps by well under the scheme's own error.

Coarse voxels: the algebra does not depend on the grid. The strict backend also runs the
whole pipeline in tests/test_end_to_end.py (numpy against strict).
"""

from __future__ import annotations

import numpy as np
import pytest

import imagingsim.delivery.kinetics as kinetics
from imagingsim.backend import get_backend
from imagingsim.delivery import simulate_delivery
from imagingsim.delivery.lumping import lump
from imagingsim.delivery.network import Network
from imagingsim.phantom import build_phantom
from imagingsim.pipeline import load_scenario, simulate, subject_seed
from imagingsim.scenario import builtin_names

COARSE_VOXEL_MM = {"mouse": 2.0, "torso": 5.0, "brain": 5.0}
MAPS = ("carrier_ug_per_ml", "bound_carrier_ug_per_ml", "free_drug_ug_per_ml", "bound_drug_ug_per_ml",
        "encapsulated_drug_ug_per_ml")


class _TwoPassReference:
    """What the solver stepped with before the linear step: Network.step with fixed factors."""

    def __init__(self, network: Network, factors):
        self.network, self.factors = network, factors

    def apply(self, values, backend=None):
        return self.network.step(values, self.factors)


def _deliveries(name: str, monkeypatch, backend="numpy", *, two_pass: bool = False, lumped: bool = True):
    """A coarse subject of ``name`` without modalities; whether each agent was lumped."""
    anatomy = load_scenario(name).phantom.anatomy
    scenario = load_scenario(name, [f"phantom.voxel_size_mm={COARSE_VOXEL_MM[anatomy]}", "modalities.enabled=[]"])
    used = []

    def spy(net, n_entries, be):
        result = lump(net, n_entries, be) if lumped else None
        used.append(result is not None)
        return result

    with monkeypatch.context() as patch:
        patch.setattr(kinetics, "lump", spy)
        if two_pass:
            patch.setattr(Network, "linear_step", lambda network, factors: _TwoPassReference(network, factors))
        subject = simulate(scenario, backend=backend)
    return subject, used


def _assert_same_delivery(new, old) -> None:
    """Maps within 1e-12 of each map's maximum, air exactly 0, ledgers within 1e-12, ledger closes."""
    air = np.asarray(new.phantom.labels) == 0
    for a, b in zip(new.delivery.agents, old.delivery.agents, strict=True):
        for key in MAPS:
            x, y = getattr(a, key), getattr(b, key)
            if y is None:
                assert x is None
                continue
            x, y = np.asarray(x), np.asarray(y)
            # 1e-12 of the map's largest value: the same products grouped or summed in another
            # order, over up to ~10^3 steps, stay within ~1e-14; a wrong path, a lost share, a
            # lost channel or a wrong group would be O(1).
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-12 * max(float(np.abs(y).max()), 1e-300), err_msg=key)
            assert np.all(x[air] == 0.0), key  # nothing ever reaches air
        for column in b.ledger_ug:
            np.testing.assert_allclose(a.ledger_ug[column], b.ledger_ug[column], rtol=1e-12, atol=1e-12 * a.injected_mass_ug)
        totals = np.sum([a.ledger_ug[k] for k in a.ledger_ug], axis=0)
        injected = np.asarray(a.times_h) >= a.agent.injection_time_h
        np.testing.assert_allclose(totals, np.where(injected, a.injected_mass_ug, 0.0), rtol=1e-9)  # ledger closes


@pytest.mark.parametrize("name", builtin_names())
def test_linear_step_matches_the_two_pass_step_on_every_builtin_scenario(name, monkeypatch):
    new, _ = _deliveries(name, monkeypatch)
    old, _ = _deliveries(name, monkeypatch, two_pass=True)
    _assert_same_delivery(new, old)


@pytest.mark.parametrize("name", builtin_names())
def test_lumped_solver_matches_the_per_entry_solver_on_every_builtin_scenario(name, monkeypatch):
    new, used = _deliveries(name, monkeypatch, lumped=True)
    old, _ = _deliveries(name, monkeypatch, lumped=False)
    _assert_same_delivery(new, old)
    for a, b in zip(new.delivery.agents, old.delivery.agents, strict=True):
        np.testing.assert_allclose(a.blood_curve_ug_per_ml, b.blood_curve_ug_per_ml, rtol=1e-12, atol=0)
    # Rates that vary voxel by voxel: a pH-triggered release; a heating field (whose agent,
    # with two networks for its on-time window, is never lumped).
    if name not in ("mouse_peg_liposome", "mouse_thermosensitive_hifu"):
        assert any(used), "label-wise rates must be lumped"


@pytest.mark.parametrize("name", builtin_names())
def test_steps_on_rungs_move_the_maps_well_under_the_schemes_own_error(name):
    """Rungs of 2 (the default: 9 step sizes instead of 45) against a size every step.

    Both are measured against the ramp with 8x finer steps (first step and cap / 8, growth
    1.25 % per step). Measured on the built-in scenarios (coarse voxels), per map the
    largest difference over voxels and times, each relative to that time's largest value
    of the reference: the rungs move a map by at most 1.0e-3 (the heated ThermoDox's free
    drug, whose scheme error is 7.8e-3) and by at most a fifth of the scheme's own error;
    their error is within 5 % of the ramp's (bound doxorubicin of the PEG liposome: 4.3e-3
    against 4.1e-3). The test allows 1.5e-3 and a third of the scheme's error (plus 1e-9
    where both are exact, as for FDG, whose caps keep every step), and 10 % more error. Air
    stays exactly 0; the ledger closes to 1e-9 of the dose.
    """
    anatomy = load_scenario(name).phantom.anatomy
    scenario = load_scenario(name, [f"phantom.voxel_size_mm={COARSE_VOXEL_MM[anatomy]}"])
    backend = get_backend("numpy")
    phantom = build_phantom(scenario.phantom, backend, subject_seed(scenario))

    def solve(**steps):
        with backend.serial_blas():
            return simulate_delivery(phantom, list(scenario.agents), scenario.schedule.times_h, backend, **steps)

    air = np.asarray(phantom.labels) == 0
    reference = solve(max_step_h=kinetics.MAX_STEP_H / 8, first_step_h=kinetics.FIRST_STEP_H / 8,
                      step_growth=1.0125, step_rung_ratio=None)
    ramp = solve(step_rung_ratio=None)
    rungs = solve()
    for r, a, b in zip(reference.agents, ramp.agents, rungs.agents, strict=True):
        for key in MAPS:
            if getattr(r, key) is None:
                continue
            z, x, y = (np.asarray(getattr(item, key)) for item in (r, a, b))
            scale = np.maximum(np.abs(z).max(axis=(0, 1, 2)), 1e-300)  # per time

            def largest(difference):  # over the voxels and times, relative to each time's largest value
                return float((np.abs(difference).max(axis=(0, 1, 2)) / scale).max())

            moved, ramp_error, rung_error = largest(y - x), largest(x - z), largest(y - z)
            where = f"{b.agent.name} {key}"
            assert moved <= min(1.5e-3, ramp_error / 3.0) + 1e-9, (where, moved, ramp_error)
            assert rung_error <= 1.1 * ramp_error + 1e-9, (where, rung_error, ramp_error)
            assert np.all(y[air] == 0.0), where  # nothing ever reaches air
        totals = np.sum([b.ledger_ug[k] for k in b.ledger_ug], axis=0)
        injected = np.asarray(b.times_h) >= b.agent.injection_time_h
        np.testing.assert_allclose(totals, np.where(injected, b.injected_mass_ug, 0.0), rtol=1e-9)


def test_lumped_solver_on_the_strict_backend_matches_numpy(monkeypatch):
    # The grouping (unique, argsort, cumulative sums, take) in the array API only.
    numpy_run, used = _deliveries("torso_liver_metastasis", monkeypatch, "numpy")
    strict_run, _ = _deliveries("torso_liver_metastasis", monkeypatch, "strict")
    assert all(used)
    for a, b in zip(numpy_run.delivery.agents, strict_run.delivery.agents, strict=True):
        for key in MAPS:
            x, y = getattr(a, key), getattr(b, key)
            if x is not None:
                np.testing.assert_allclose(np.asarray(x), np.asarray(get_backend("strict").to_host(y)), rtol=1e-12, atol=0)


def test_a_step_on_two_workers_is_the_same_bits_as_in_series():
    """Destinations are computed in groups of about equal work on the workers; each value by
    the same operations in the same order, so the states are equal bit for bit. Every
    destination is in exactly one group, and the maps (five passes each) are spread. A step
    over few entries (a lumped network) stays in one piece."""
    import dataclasses

    backend = get_backend("numpy")
    xp = backend.xp
    rng = np.random.default_rng(7)
    net = Network(xp)
    blood, sink = net.state("blood", False), net.state("sink", False)
    maps = [net.state(f"M{k}", True) for k in range(4)]
    entries = 60_000  # 4 maps x 5-6 passes: above PARALLEL_MIN_PASSES
    net.flow(blood, maps[0], 0.5, xp.asarray(rng.dirichlet(np.ones(entries))))
    for a, b in zip(maps, maps[1:]):
        net.flow(a, b, xp.asarray(rng.uniform(0.1, 2.0, entries)), bound=2.0)
        net.flow(b, a, xp.asarray(rng.uniform(0.1, 0.5, entries)), bound=0.5)
    net.flow(maps[-1], blood, 0.3)
    net.flow(maps[2], sink, xp.asarray(rng.uniform(0.0, 0.2, entries)), bound=0.2)
    net.compile(0.25)
    step = net.linear_step(net.factors(0.25))
    start = [xp.asarray(1.0), xp.asarray(0.0)] + [xp.asarray(rng.uniform(0.0, 1.0, entries)) for _ in maps]
    two = dataclasses.replace(backend, workers=2)
    groups = step._groups(start, 2)
    assert sorted(d for g in groups for d in g) == list(range(len(start))) and len(groups) == 2
    assert all(any(d in g for d in maps) for g in groups)
    assert step._groups([v[:100] if v.ndim else v for v in start], 2) == [list(range(len(start)))]
    x, y = start, start
    with backend.serial_blas():  # as in a subject: sums over entries with one BLAS thread
        for _ in range(10):
            x, y = step.apply(x), step.apply(y, two)
    for a, b in zip(x, y):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a))
