"""Lumping (imagingsim.delivery.lumping) on small networks: groups, channels, expansion.

On every built-in scenario the lumped solver is checked against the per-entry one in
test_solver_equivalence.py.
"""

from __future__ import annotations

import numpy as np

from imagingsim.backend import get_backend
from imagingsim.delivery.lumping import lump
from imagingsim.delivery.network import Network


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
