"""Small written datasets shared by the report tests (coarse voxels, two sessions)."""

from __future__ import annotations

import pytest

import imagingsim
from imagingsim.pipeline import load_scenario

#: Coarse enough for seconds per dataset; two sessions, so that time curves have two points.
COARSE = ["phantom.voxel_size_mm=1.0", "schedule.times_h=[1.0, 24.0]"]


def _write(tmp_path_factory, name: str | None, label: str):
    out = tmp_path_factory.mktemp(label) / "dataset"
    imagingsim.simulate_and_write(load_scenario(name, COARSE), out, backend="numpy")
    return out


@pytest.fixture(scope="session")
def default_dataset(tmp_path_factory):
    """The default scenario (PET, MRI, NIRF), written."""
    return _write(tmp_path_factory, None, "report_default")


@pytest.fixture(scope="session")
def spect_ct_dataset(tmp_path_factory):
    """``mouse_gold_spect_ct`` (SPECT, CT), written."""
    return _write(tmp_path_factory, "mouse_gold_spect_ct", "report_spect_ct")


@pytest.fixture(scope="session")
def default_report(default_dataset, tmp_path_factory):
    """The default dataset's report, written: (html path, png paths)."""
    from imagingsim.report.command import write_report

    html, pngs, _ = write_report(default_dataset, tmp_path_factory.mktemp("report_html") / "report.html")
    return html, pngs


@pytest.fixture(scope="session")
def default_built(default_dataset):
    """The default dataset's report, built in memory (its sections and measurements)."""
    from imagingsim.report.build import build_report
    from imagingsim.report.dataset import DatasetView

    return build_report(DatasetView(default_dataset))
