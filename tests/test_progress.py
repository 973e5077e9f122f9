"""Progress reports: silent without a listener, nested parts fill one bar from 0 to 1."""

from __future__ import annotations

import pytest

import imagingsim
from imagingsim import progress
from imagingsim.pipeline import simulate


def test_reports_without_a_listener_go_nowhere():
    progress.report(1, 2)  # no error, no effect


def test_parts_map_nested_loops_onto_one_bar():
    seen = []
    with progress.listening(seen.append):
        for i in range(2):
            with progress.part(i, 2):
                for k in range(4):
                    progress.report(k + 1, 4)
    assert seen == [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0]
    progress.report(1, 1)  # the listener is gone after the block
    assert len(seen) == 8


@pytest.mark.parametrize(("name", "stages"), [("mouse_gold_spect_ct", ("delivery", "ct", "spect")),
                                              ("mouse_peg_liposome", ("delivery", "pet", "mri"))])
def test_a_simulation_reports_each_long_stage_up_to_done(name, stages):
    scenario = imagingsim.load_scenario(name, ["phantom.voxel_size_mm=1.5", "schedule.times_h=[1, 24]"])
    fractions: dict[str, list[float]] = {}

    def step(name):
        fractions[name] = []
        return progress.listening(fractions[name].append)

    simulate(scenario, backend="numpy", step=step)
    for stage in stages:
        values = fractions[stage]
        assert values and values == sorted(values) and values[-1] == 1.0, (stage, values)
        assert all(0.0 <= v <= 1.0 for v in values)
    assert len(fractions["delivery"]) > 100  # every solver step
