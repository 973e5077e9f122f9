"""One contract test for every registered modality, on every backend.

Whatever a modality simulates, the pipeline relies on the same things: its settings validate
(and their defaults do), it acquires on a small phantom, the files it writes into the truth
derivative match the patterns it declares, and its summary prints. An external modality that
is installed (entry point ``imagingsim.modalities``) is picked up here unchanged.
"""

from __future__ import annotations

import pytest

from imagingsim.dataset.layout import truth_files
from imagingsim.grid import ImageGrid
from imagingsim.modalities import registry
from imagingsim.modalities.base import UNMEASURED_COST, Modality
from imagingsim.pipeline import load_scenario, simulate, write_subject

#: Small enough for the strict backend: 2 mm voxels, one schedule time.
SMALL = ("phantom.voxel_size_mm=2.0", "schedule.times_h=[24.0]")


@pytest.fixture(params=registry.names())
def modality(request) -> Modality:
    return registry.get(request.param)


def test_settings_validate_with_their_defaults(modality):
    spec = modality.Spec()
    assert modality.Spec.model_validate(spec.model_dump(mode="json")) == spec
    assert modality.description and "\n" not in modality.description
    assert modality.bids_datatype.isalnum()
    assert all(r in registry.names() for r in modality.requires + modality.fuses_onto)


def test_costs_grow_with_the_grid_and_the_schedule(modality):
    scenario = load_scenario(None, list(SMALL))
    spec = getattr(scenario.modalities, modality.name)
    small = modality.cost(spec, scenario, ImageGrid((10, 10, 10), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)))
    large = modality.cost(spec, scenario, ImageGrid((40, 50, 50), (0.5, 0.5, 0.5), (0.0, 0.0, 0.0)))
    for field in ("memory_bytes", "output_bytes", "seconds"):
        assert 0 <= getattr(small, field) <= getattr(large, field), field
    assert large.memory_bytes > small.memory_bytes  # every modality holds something per voxel
    if registry.origin(modality.name) == "built-in":
        assert modality.cost_model is not UNMEASURED_COST  # each built-in measured itself


def test_acquires_writes_its_declared_truth_and_summarises(modality, backend, tmp_path):
    if backend.name == "cupy":
        pytest.skip("the GPU runs of the contract are the per-modality cupy tests")
    name, overrides = modality.example
    scenario = load_scenario(name, [*overrides, *SMALL])
    assert modality.name in scenario.modalities.enabled
    subject = simulate(scenario, backend=backend)
    acquisition = subject.acquisitions[modality.name]

    files = write_subject(subject, tmp_path / "ds")
    truth = tmp_path / "ds" / "derivatives" / "truth"
    patterns = truth_files()
    own = {t.stem for t in modality.truth_files}
    written_own = set()
    for path in files:
        if truth in path.parents:
            rel = path.relative_to(truth).as_posix()
            if rel.count("/") == 0:
                continue  # dataset_description.json, README
            matches = [t.stem for t in patterns if t.regex().fullmatch(rel)]
            assert len(matches) == 1, f"{rel} matches {matches}"
            written_own |= own & set(matches)
    assert written_own or not own, f"{modality.name} wrote none of its truth patterns"
    # its images are in the sessions, in the folder of its datatype
    subject_dir = tmp_path / "ds" / f"sub-{scenario.subject_id}"
    assert list(subject_dir.glob(f"ses-*/{modality.bids_datatype}/*.nii.gz"))

    lines = modality.summary(acquisition, subject)
    assert lines and all(isinstance(line, str) and "\n" not in line for line in lines)
