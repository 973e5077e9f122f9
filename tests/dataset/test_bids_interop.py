"""Datasets read by the tools users have: the current BIDS validator (3.x, PyPI
``bids-validator-deno``) and pybids, on the default and the SPECT/CT datasets."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imagingsim.pipeline import load_scenario, simulate, write_subject

#: Coarse grids and two time points: the layout is what is checked, not the physics.
COARSE = ["phantom.voxel_size_mm=1.0", "schedule.times_h=[1, 24]"]


@pytest.fixture(scope="module", params=["mouse_peg_liposome", "mouse_gold_spect_ct"])
def dataset(request, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp(request.param) / "ds"
    write_subject(simulate(load_scenario(request.param, COARSE), backend="numpy"), out)
    return out


def validator() -> str:
    """The ``bids-validator-deno`` executable of this environment (a test dependency)."""
    found = shutil.which("bids-validator-deno") or shutil.which("bids-validator-deno", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("bids-validator-deno is not installed: pip install -e '.[test]'")
    return found


def test_the_current_validator_reports_no_errors(dataset):
    proc = subprocess.run([validator(), str(dataset), "--format", "json"], capture_output=True, text=True,
                          timeout=600, check=False)
    report = json.loads(proc.stdout)
    issues = report["issues"]["issues"]
    errors = [(i["code"], i.get("location")) for i in issues if i["severity"] == "error"]
    assert errors == [], errors[:10]
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_every_remaining_warning_is_listed_in_the_readme_as_not_applicable(dataset):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Validator warnings that do not apply", 1)[1].split("\n#", 1)[0]
    proc = subprocess.run([validator(), str(dataset), "--format", "json"], capture_output=True, text=True,
                          timeout=600, check=False)
    warnings = {(i["code"], i.get("subCode")) for i in json.loads(proc.stdout)["issues"]["issues"]
                if i["severity"] == "warning"}
    unlisted = sorted(f"{code}/{key}" for code, key in warnings if f"`{key or code}`" not in section)
    assert unlisted == []


def test_each_derivative_is_valid_where_bids_has_names_and_ignores_only_its_extensions(dataset):
    """Fused images, fit masks and segmentations are BIDS-Derivatives files; the PNG quick-looks
    and the documented extension suffixes and folders are in each derivative's .bidsignore.
    (Validated one by one: the validator's --recursive mode does not read a derivative's
    .bidsignore.)"""
    for derivative in sorted(p for p in (dataset / "derivatives").iterdir() if p.is_dir()):
        proc = subprocess.run([validator(), str(derivative), "--format", "json"],
                              capture_output=True, text=True, timeout=600, check=False)
        errors = [(i["code"], i.get("location")) for i in json.loads(proc.stdout)["issues"]["issues"]
                  if i["severity"] == "error"]
        assert errors == [], (derivative.name, errors[:10])
    ignored = (dataset / "derivatives" / "truth" / ".bidsignore").read_text().splitlines()
    readme = (dataset / "derivatives" / "truth" / "README").read_text()
    assert all(f"`_{p.split('_', 1)[1].split('.')[0]}`" in readme for p in ignored if p.startswith("**/*_"))


def test_pybids_tells_each_derivative_apart_by_its_scope(dataset):
    bids = pytest.importorskip("bids", reason="pybids is a test dependency")
    layout = bids.BIDSLayout(dataset, derivatives=True, validate=False)
    descriptions = {p.parent.name: json.loads(p.read_text()) for p in (dataset / "derivatives").glob("*/dataset_description.json")}
    assert descriptions, "no derivative written"
    for folder, description in descriptions.items():
        scope = description["GeneratedBy"][0]["Name"]
        assert scope == f"imagingsim-{folder}" and description["DatasetType"] == "derivative"
        files = layout.get(scope=scope, extension=".nii.gz", return_type="filename")
        assert files and all(f"/derivatives/{folder}/" in f for f in files), (scope, files[:3])
    truth = layout.get(scope="imagingsim-truth", suffix="conc", extension=".nii.gz", return_type="filename")
    assert truth and all("/derivatives/truth/" in f for f in truth)  # true concentrations only


#: The suffix of each modality's images in the raw dataset (what a pybids user asks for).
IMAGE_SUFFIX = {"pet": "pet", "mri": "MEGRE", "nirf": "nirf", "spect": "spect", "ct": "ct"}


def test_pybids_finds_every_modality_and_the_truth_in_every_session(dataset, request):
    """One session per schedule time: ``layout.get(session="24h", suffix=...)`` is the 24 h scan."""
    bids = pytest.importorskip("bids", reason="pybids is a test dependency")
    scenario = load_scenario(request.node.callspec.params["dataset"], COARSE)
    enabled = scenario.modalities.enabled
    assert set(enabled) <= set(IMAGE_SUFFIX)
    # validate=False: pybids then also indexes the datatypes BIDS does not define (nirf, ct, spect)
    layout = bids.BIDSLayout(dataset, derivatives=True, validate=False)
    labels = ["1h", "24h"]
    assert sorted(layout.get_sessions()) == sorted(labels)
    sessions = (dataset / "sub-01" / "sub-01_sessions.tsv").read_text().splitlines()
    assert sessions == ["session_id\ttime\ttime_h", "ses-1h\t3600.0\t1.0", "ses-24h\t86400.0\t24.0"]
    for label in labels:
        for modality in enabled:
            found = layout.get(scope="raw", subject="01", session=label, suffix=IMAGE_SUFFIX[modality],
                               extension=".nii.gz", return_type="filename")
            assert found and all(f"/sub-01/ses-{label}/" in f for f in found), (modality, label)
        truth = layout.get(scope="imagingsim-truth", session=label, suffix="conc", extension=".nii.gz",
                           return_type="filename")
        assert truth and all(f"/derivatives/truth/sub-01/ses-{label}/" in f for f in truth), label


def test_every_nifti_loads_as_a_float_array(dataset):
    """What MONAI and TorchIO do with a dataset: nibabel's get_fdata on every NIfTI (no RGB)."""
    import nibabel as nib
    import numpy as np

    paths = sorted(dataset.rglob("*.nii.gz"))
    assert len(paths) > 20
    for path in paths:
        data = nib.load(path).get_fdata(dtype=np.float32)
        assert data.dtype == np.float32 and data.ndim in (3, 4), path
