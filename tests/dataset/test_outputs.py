"""Output kinds (``--outputs``): a kind left out is never written, and what is written is the
full dataset's files, byte for byte.

Every modality writes through the same contract (``WriteContext.writes``), so each built-in
pair of scenarios that enables all five modalities is written whole and with each kind alone.
The folder helpers of a left-out kind are made to raise: a writer must not even ask for the
folder of a kind it does not write (writing and deleting afterwards would pass a file check).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from imagingsim import pipeline
from imagingsim.modalities.base import OUTPUTS, WriteContext

#: The default scenario (PET, MRI, NIRF) and the SPECT/CT one, coarse, at two times.
SCENARIOS = {
    "default": (None, ["phantom.voxel_size_mm=2.0", "schedule.times_h=[1.0, 24.0]"]),
    "spect_ct": ("mouse_gold_spect_ct", ["phantom.voxel_size_mm=2.0", "schedule.times_h=[1.0, 24.0]"]),
}
#: The folder helper of each kind and where its files go (from the dataset root).
FOLDER_HELPER = {"images": "images_dir", "raw": "sourcedata_dir", "truth": "truth_dir"}


def _kind(relative: str) -> str:
    """The output kind of a file, from its path alone; "top" for the dataset-level files."""
    parts = relative.split("/")
    if parts[0] == "sourcedata":
        return "raw"
    if parts[0] == "derivatives":
        return "truth" if parts[1] == "truth" else "images"
    return "images" if parts[0].startswith("sub-") else "top"


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def full(request, tmp_path_factory):
    name, overrides = SCENARIOS[request.param]
    scenario = pipeline.load_scenario(name, overrides)
    out = tmp_path_factory.mktemp(request.param) / "all"
    pipeline.simulate_and_write(scenario, out, backend="numpy")
    return scenario, _hashes(out)


@pytest.mark.parametrize("kind", OUTPUTS)
def test_one_kind_alone_is_the_full_datasets_files_of_that_kind(full, kind, tmp_path, monkeypatch):
    scenario, everything = full
    assert {_kind(f) for f in everything} == {"top", *OUTPUTS}  # each kind has files to compare

    def refuse(helper):
        def folder(*_args, **_kwargs):
            raise AssertionError(f"{helper} asked for although it is not written")
        return folder

    for other, helper in FOLDER_HELPER.items():
        if other != kind:
            monkeypatch.setattr(WriteContext, helper, refuse(helper))
    _, files = pipeline.simulate_and_write(scenario, tmp_path / "one", backend="numpy", outputs=[kind])
    written = _hashes(tmp_path / "one")
    assert sorted(p.relative_to(tmp_path / "one").as_posix() for p in files) == sorted(written)
    expected = {f: h for f, h in everything.items() if _kind(f) == kind}
    assert {f: h for f, h in written.items() if _kind(f) == kind} == expected
    # the dataset-level files stay (a dataset), with nothing of another kind
    assert {_kind(f) for f in written} == {"top", kind}
    assert not (kind != "raw" and (tmp_path / "one" / "sourcedata").exists())


@pytest.mark.parametrize("outputs", [[], ["images", "kspace"]])
def test_unknown_or_no_outputs_are_refused_in_one_line(outputs, tmp_path):
    scenario = pipeline.load_scenario(None, SCENARIOS["default"][1])
    with pytest.raises(ValueError, match=r"^--outputs: .* not allowed; choose from truth,images,raw$"):
        pipeline.simulate_and_write(scenario, tmp_path / "ds", backend="numpy", outputs=outputs)
    assert not (tmp_path / "ds").exists()
