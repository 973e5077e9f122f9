"""simulate_and_write: the files are written while later stages compute, and are the same files.

The background writer runs the same writers in the same order on stage results that are never
modified afterwards, so the dataset must be byte-identical to simulate() then write_subject();
a writer that fails must abort the build with nothing left behind.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from imagingsim import pipeline
from imagingsim.modalities import registry

COARSE = ["phantom.voxel_size_mm=2.0"]


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_overlapped_writing_gives_the_same_bytes_as_simulate_then_write(tmp_path):
    scenario = pipeline.load_scenario(None, COARSE)
    subject = pipeline.simulate(scenario, backend="numpy")
    pipeline.write_subject(subject, tmp_path / "serial")
    again, files = pipeline.simulate_and_write(scenario, tmp_path / "overlapped", backend="numpy")
    serial, overlapped = _hashes(tmp_path / "serial"), _hashes(tmp_path / "overlapped")
    assert len(serial) > 100 and serial == overlapped
    assert sorted(p.relative_to(tmp_path / "overlapped").as_posix() for p in files) == sorted(overlapped)
    assert set(again.acquisitions) == set(scenario.modalities.enabled)


def test_a_failing_background_writer_aborts_the_build_and_leaves_nothing(tmp_path, monkeypatch):
    scenario = pipeline.load_scenario(None, [*COARSE, 'modalities.enabled=["mri", "nirf"]'])
    mri = registry.get("mri")

    def broken(stage, acquisition, ctx):
        raise OSError(28, "No space left on device", str(stage / "k.h5"))

    monkeypatch.setattr(type(mri), "write", lambda self, stage, acquisition, ctx: broken(stage, acquisition, ctx))
    with pytest.raises(OSError, match="No space left"):
        pipeline.simulate_and_write(scenario, tmp_path / "ds", backend="numpy")
    assert list(tmp_path.iterdir()) == []  # no dataset, no staging folder


def test_anatomical_references_are_acquired_first():
    # Their raw data is most of the bytes: written while the functional scans compute.
    assert registry.acquisition_order(["pet", "mri", "nirf"]) == ["mri", "pet", "nirf"]
    assert registry.acquisition_order(["nirf", "pet"]) == ["nirf", "pet"]  # nothing fuses: as enabled
    assert registry.acquisition_order(["spect", "ct"]) == ["ct", "spect"]  # SPECT requires CT
