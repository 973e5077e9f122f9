"""NIfTI headers and geometry, deterministic bytes, atomic builds, and the BIDS dataset."""

from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from imagingsim.backend import get_backend
from imagingsim.data.carriers import carrier_parameters
from imagingsim.dataset.layout import CORE_TRUTH_FILES, property_desc, truth_files
from imagingsim.dataset.write import write_dataset
from imagingsim.grid import ImageGrid
from imagingsim.io.atomic import atomic_write_bytes, staged_directory
from imagingsim.io.nifti import XFORM_CODE, read_nifti, write_nifti
from imagingsim.io.outdir import check_output_dir
from imagingsim.io.sidecars import json_text
from imagingsim.phantom.model import PROPERTY_UNITS, Label, Phantom
from imagingsim.pipeline import validate_scenario

GRID = ImageGrid((7, 5, 4), (0.4, 0.75, 1.3), (-12.5, 3.25, -40.0))  # anisotropic, off-origin


# --- fakes ----------------------------------------------------------------------------------

SCENARIO = {
    "name": "io_test",
    "description": "Tiny fake subject for the io tests",
    "seed": 7,
    "subject_id": "01",
    "phantom": {
        "anatomy": "mouse",
        "voxel_size_mm": 0.5,
        "tumours": [{"name": "flank", "centre_mm": [0.0, 0.0, 0.0], "radius_mm": 1.0}],
    },
    "agents": [
        {
            "name": "lipo",
            "carrier": "peg_liposome",
            "dose_mg_per_kg": 20.0,
            "labels": [{"kind": "radionuclide", "nuclide": "Zr89", "specific_activity_MBq_per_mg": 15.0}],
            "payload": {"drug": "doxorubicin", "loading_mg_per_mg": 0.125},
        }
    ],
    "schedule": {"times_h": [1.0, 4.0, 24.0]},
}


def make_subject(*, encapsulated: bool = True):
    """A tiny fake (scenario, phantom, delivery, backend) on the numpy backend.

    ``encapsulated=False`` leaves out ``encapsulated_drug_ug_per_ml`` (an older AgentDelivery).
    """
    be = get_backend("numpy")
    scenario = validate_scenario(SCENARIO)
    grid = ImageGrid((6, 5, 4), (0.5, 0.75, 1.25), (-1.25, 1.5, -2.0))
    labels = np.zeros(grid.shape, np.uint8)
    labels[1:5, 1:4, 1:3] = Label.SOFT_TISSUE
    labels[2:4, 2:3, 1:3] = Label.TUMOUR_VIABLE
    labels[1, 1, 1] = Label.LIVER
    tumour_index = (labels == Label.TUMOUR_VIABLE).astype(np.uint8)
    ramp = np.linspace(1.0, 2.0, labels.size).reshape(grid.shape)
    properties = {key: be.from_host(ramp * (n + 1)) for n, key in enumerate(PROPERTY_UNITS)}
    properties["t1_3T_ms"] = be.from_host(np.full(grid.shape, 1100.0))
    properties["t2star_3T_ms"] = be.from_host(np.full(grid.shape, 40.0))
    phantom = Phantom(
        spec=scenario.phantom,
        grid=grid,
        labels=be.from_host(labels),
        tumour_index=be.from_host(tumour_index),
        properties=properties,
        materials={int(label): "water" for label in Label},
        species="mouse",
        body_mass_g=25.0,
        blood_volume_ml=1.8,
        seed=scenario.seed,
        backend=be,
    )
    agent = scenario.agents[0]
    times = tuple(scenario.schedule.times_h)
    conc = np.random.default_rng(0).random(grid.shape + (len(times),))
    result = SimpleNamespace(
        agent=agent,
        carrier=carrier_parameters(agent.carrier),
        times_h=times,
        injected_mass_ug=500.0,
        injected_drug_ug=62.5,
        carrier_ug_per_ml=be.from_host(conc),
        free_drug_ug_per_ml=be.from_host(0.1 * conc),
        bound_drug_ug_per_ml=be.from_host(0.2 * conc),
        blood_ug_per_ml=tuple(10.0 / (1.0 + t) for t in times),
        blood_curve_h=(0.0, 0.5, 1.0, 4.0, 24.0),
        blood_curve_ug_per_ml=(20.0, 15.0, 10.0, 2.0, 0.4),
        ledger_ug={"blood": (400.0, 300.0, 100.0), "liver": (50.0, 120.0, 250.0)},
        drug_ledger_ug={"encapsulated": (60.0, 55.0, 40.0), "free": (2.5, 7.5, 22.5)},
        percent_id_per_g=lambda region: tuple(0.1 * int(region) * t for t in times),
    )
    if encapsulated:
        result.encapsulated_drug_ug_per_ml = be.from_host(0.3 * conc)
    return scenario, phantom, SimpleNamespace(agents=(result,), times_h=times), be


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


OUR_DESCRIPTION = json.dumps({"Name": "earlier run", "BIDSVersion": "1.10.0", "GeneratedBy": [{"Name": "imagingsim"}]})


def hidden_siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


# --- NIfTI ------------------------------------------------------------------------------


def test_voxel_world_coordinate_agrees_between_nibabel_and_simpleitk(tmp_path):
    data = np.arange(np.prod(GRID.shape), dtype=np.float64).reshape(GRID.shape)
    path = write_nifti(tmp_path / "map.nii.gz", data, GRID, description="geometry test")

    img = nib.load(str(path))
    simg = sitk.ReadImage(str(path))
    sarr = sitk.GetArrayFromImage(simg)  # (z, y, x)
    assert sarr.shape == tuple(reversed(GRID.shape))
    for index in [(0, 0, 0), (6, 4, 3), (3, 1, 2), (5, 2, 0)]:
        i, j, k = index
        ras_nib = (img.affine @ np.array([i, j, k, 1.0]))[:3]
        lps = simg.TransformIndexToPhysicalPoint((i, j, k))  # SimpleITK index order is (i, j, k)
        ras_sitk = np.array([-lps[0], -lps[1], lps[2]])  # LPS -> RAS
        np.testing.assert_allclose(ras_nib, ras_sitk, atol=1e-4)
        np.testing.assert_allclose(ras_nib, GRID.world_mm(index), atol=1e-4)
        # the same voxel holds the same value in both readers
        assert sarr[k, j, i] == data[i, j, k] == np.asarray(img.dataobj)[i, j, k]
    np.testing.assert_allclose(simg.GetSpacing(), GRID.voxel_size_mm, rtol=1e-6)


def test_header_codes_units_dtypes(tmp_path):
    write_nifti(tmp_path / "map.nii.gz", np.ones(GRID.shape), GRID, description="x" * 200)
    write_nifti(tmp_path / "lab.nii.gz", np.ones(GRID.shape, np.uint8), GRID)
    hdr = nib.load(str(tmp_path / "map.nii.gz")).header
    assert int(hdr["qform_code"]) == XFORM_CODE == 1
    assert int(hdr["sform_code"]) == XFORM_CODE
    assert hdr.get_xyzt_units() == ("mm", "sec")
    assert hdr.get_data_dtype() == np.float32
    assert len(hdr["descrip"].item()) <= 79
    np.testing.assert_allclose(hdr.get_qform(), hdr.get_sform())
    np.testing.assert_allclose(hdr.get_sform(), np.array(GRID.affine), atol=1e-6)
    assert nib.load(str(tmp_path / "lab.nii.gz")).header.get_data_dtype() == np.uint8

    array, affine = read_nifti(tmp_path / "lab.nii.gz")
    assert array.dtype == np.uint8 and array.shape == GRID.shape
    np.testing.assert_allclose(affine, np.array(GRID.affine), atol=1e-6)


def test_4d_pixdim_from_frame_times(tmp_path):
    data = np.random.default_rng(1).random(GRID.shape + (3,))
    write_nifti(tmp_path / "u.nii.gz", data, GRID, frame_times_s=[3600.0, 7200.0, 10800.0])
    write_nifti(tmp_path / "n.nii.gz", data, GRID, frame_times_s=[3600.0, 14400.0, 86400.0])
    uniform = nib.load(str(tmp_path / "u.nii.gz")).header
    assert uniform["pixdim"][4] == pytest.approx(3600.0)
    assert uniform["toffset"] == pytest.approx(3600.0)
    assert uniform.get_xyzt_units() == ("mm", "sec")
    assert uniform["dim"][0] == 4 and uniform["dim"][4] == 3
    assert nib.load(str(tmp_path / "n.nii.gz")).header["pixdim"][4] == 0.0  # times go in the sidecar
    array, _ = read_nifti(tmp_path / "u.nii.gz")
    np.testing.assert_allclose(array, data.astype(np.float32))
    with pytest.raises(ValueError, match="frame_times_s"):
        write_nifti(tmp_path / "bad.nii.gz", data, GRID, frame_times_s=[0.0, 1.0])


def test_same_input_gives_identical_bytes(tmp_path):
    data = np.random.default_rng(2).random(GRID.shape + (2,))
    a = write_nifti(tmp_path / "a.nii.gz", data, GRID, frame_times_s=[0.0, 60.0], description="d")
    os.utime(tmp_path, (0, 0))  # a different clock state must not matter
    b = write_nifti(tmp_path / "b.nii.gz", data, GRID, frame_times_s=[0.0, 60.0], description="d")
    raw = a.read_bytes()
    assert raw == b.read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[4:8] == b"\x00\x00\x00\x00"  # gzip, mtime 0
    assert len(gzip.decompress(raw)) == 352 + data.size * 4


def test_highly_compressible_image_is_not_smaller_than_a_nifti_header(tmp_path):
    # bids-validator 1.x flags any .nii.gz under 348 bytes as NIFTI_TOO_SMALL
    path = write_nifti(tmp_path / "flat.nii.gz", np.full(GRID.shape, 1.1), GRID)
    assert path.stat().st_size >= 348
    array, _ = read_nifti(path)
    np.testing.assert_allclose(array, 1.1, rtol=1e-6)


# --- atomic ------------------------------------------------------------------------------


def test_atomic_write_bytes_leaves_no_temporaries(tmp_path):
    atomic_write_bytes(tmp_path / "f.bin", b"one")
    atomic_write_bytes(tmp_path / "f.bin", b"two")
    assert (tmp_path / "f.bin").read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failed_build_leaves_nothing(tmp_path, error):
    out = tmp_path / "out"
    seen = []

    def failing_writer(stage: Path):
        (stage / "ct").mkdir()
        (stage / "ct" / "partial.bin").write_bytes(b"half")
        seen.append(stage)
        raise error

    with pytest.raises(type(error)):
        write_dataset(out, *make_subject(), extra_writers=[failing_writer])
    assert seen and seen[0].parent == tmp_path and seen[0].name.startswith(".out.imagingsim-staging-")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no staging directory either


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failed_overwrite_keeps_old_output(tmp_path, error):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("previous run\n")
    (out / "dataset_description.json").write_text(OUR_DESCRIPTION)

    def failing_writer(stage: Path):
        raise error

    with pytest.raises(type(error)):
        write_dataset(out, *make_subject(), overwrite=True, extra_writers=[failing_writer])
    assert tree(out) == {"old.txt": b"previous run\n", "dataset_description.json": OUR_DESCRIPTION.encode()}
    assert hidden_siblings(out) == []


def test_nonempty_out_refused_without_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ValueError) as info:
        write_dataset(out, *make_subject())
    message = str(info.value)
    assert "\n" not in message
    assert message == f"--out {out}: directory is not empty; pass --overwrite to replace it"
    assert tree(out) == {"keep.txt": b"x"}
    assert hidden_siblings(out) == []
    with pytest.raises(ValueError, match="not empty"):
        check_output_dir(out)  # the CLI's early check, before any simulation
    with pytest.raises(ValueError, match="not an imagingsim dataset"):
        check_output_dir(out, overwrite=True)  # the user's own files are never replaced
    (out / "dataset_description.json").write_text(OUR_DESCRIPTION)
    assert check_output_dir(out, overwrite=True) == out
    assert check_output_dir(tmp_path / "absent") == tmp_path / "absent"


def test_overwrite_replaces_and_empty_out_is_accepted(tmp_path):
    out = tmp_path / "out"
    out.mkdir()  # empty: allowed without overwrite
    write_dataset(out, *make_subject())
    (out / "stale.txt").write_text("stale")
    files = write_dataset(out, *make_subject(), overwrite=True)
    assert not (out / "stale.txt").exists()
    assert sorted(files) == sorted(out / k for k in tree(out))
    assert hidden_siblings(out) == []


def test_staged_directory_rejects_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ValueError, match="not a directory"), staged_directory(target):
        pass


# --- BIDS dataset ----------------------------------------------------------------------------


TRUTH = "derivatives/truth/sub-01"
DELIVERY = f"{TRUTH}/delivery/sub-01_desc-lipo"
SESSION_DELIVERY = f"{TRUTH}/ses-4h/delivery/sub-01_ses-4h_desc-lipo"  # the fake subject's second time


def test_dataset_tree_and_contents(tmp_path):
    out = tmp_path / "ds"

    def ct_writer(stage: Path):
        (stage / "sub-01" / "ct").mkdir()
        (stage / "sub-01" / "ct" / "x.txt").write_text("ct\n")

    files = write_dataset(out, *make_subject(), extra_writers=[ct_writer])
    rel = {str(p.relative_to(out)) for p in files}
    truth = TRUTH
    for name in [
        "dataset_description.json",
        "participants.tsv",
        "participants.json",
        "README",
        "CHANGES",
        ".bidsignore",
        "sourcedata/README",
        "sub-01/anat/sub-01_T1map.nii.gz",
        "sub-01/anat/sub-01_T1map.json",
        "sub-01/anat/sub-01_T2starmap.nii.gz",
        "sub-01/anat/sub-01_PDmap.nii.gz",
        "sub-01/ct/x.txt",
        "derivatives/truth/dataset_description.json",
        "derivatives/truth/README",
        f"{truth}/sub-01_scenario.json",
        f"{truth}/anat/sub-01_dseg.nii.gz",
        f"{truth}/anat/sub-01_dseg.tsv",
        f"{truth}/anat/sub-01_desc-tumours_dseg.nii.gz",
        f"{truth}/anat/sub-01_desc-bloodVolumeFraction_map.nii.gz",
        f"{truth}/anat/sub-01_desc-bloodVolumeFraction_map.json",
        f"{SESSION_DELIVERY}Carrier_conc.nii.gz",
        f"{SESSION_DELIVERY}FreeDrug_conc.nii.gz",
        f"{SESSION_DELIVERY}BoundDrug_conc.json",
        f"{SESSION_DELIVERY}EncapsulatedDrug_conc.nii.gz",
        f"{DELIVERY}Carrier_bloodcurve.tsv",
        f"{DELIVERY}Carrier_bloodcurve.json",
        f"{DELIVERY}Carrier_ledger.tsv",
        f"{DELIVERY}Drug_ledger.tsv",
        f"{DELIVERY}Carrier_uptake.tsv",
    ]:
        assert name in rel, name
    # property maps come from the phantom's tables, whatever the keys are called
    for key in PROPERTY_UNITS:
        desc = property_desc(key)
        assert desc.isalnum()
        assert f"{truth}/anat/sub-01_desc-{desc}_map.nii.gz" in rel
        meta = json.loads((out / f"{truth}/anat/sub-01_desc-{desc}_map.json").read_text())
        assert meta["Property"] == key and meta["Units"] == PROPERTY_UNITS[key]
    assert not any("agent-" in name or "_blood." in name for name in rel)

    # every JSON is canonical (sorted keys, trailing newline) and every sidecar has Units
    for path in out.rglob("*.json"):
        text = path.read_text()
        assert text == json_text(json.loads(text)), path
        if path.name.endswith(("_map.json", "_conc.json", "_dseg.json")) or "/anat/" in str(path):
            assert "Units" in json.loads(text), path

    description = json.loads((out / "dataset_description.json").read_text())
    assert description["BIDSVersion"] == "1.9.0" and description["DatasetType"] == "raw"
    assert description["GeneratedBy"][0]["Name"] == "imagingsim"
    truth_description = json.loads((out / "derivatives/truth/dataset_description.json").read_text())
    assert truth_description["DatasetType"] == "derivative"
    assert truth_description["GeneratedBy"][0]["Name"] == "imagingsim-truth"  # its own pybids scope
    assert (out / "participants.tsv").read_text() == "participant_id\tspecies\tweight\nsub-01\tmus musculus\t0.025\n"
    assert "**/ct" in (out / ".bidsignore").read_text().split()

    # qMRI maps in seconds
    t1, _ = read_nifti(out / "sub-01/anat/sub-01_T1map.nii.gz")
    np.testing.assert_allclose(t1, 1.1, rtol=1e-6)
    t1_meta = json.loads((out / "sub-01/anat/sub-01_T1map.json").read_text())
    assert t1_meta["Units"] == "s" and t1_meta["MagneticFieldStrength"] == 3

    # one 3-D concentration map per session, the volume of the 4-D result at that time
    _, _, delivery, _ = make_subject()
    carrier = np.asarray(delivery.agents[0].carrier_ug_per_ml, dtype=np.float32)
    for k, (label, time_h) in enumerate((("1h", 1.0), ("4h", 4.0), ("24h", 24.0))):
        stem = f"{TRUTH}/ses-{label}/delivery/sub-01_ses-{label}_desc-lipoCarrier_conc"
        conc, _ = read_nifti(out / f"{stem}.nii.gz")
        np.testing.assert_array_equal(conc, carrier[..., k])
        meta = json.loads((out / f"{stem}.json").read_text())
        assert meta["SampleTime_s"] == time_h * 3600.0 and meta["SampleTime_h"] == time_h
    conc, _ = read_nifti(out / f"{SESSION_DELIVERY}Carrier_conc.nii.gz")
    assert conc.shape == (6, 5, 4)
    meta = json.loads((out / f"{SESSION_DELIVERY}Carrier_conc.json").read_text())
    assert meta["Units"] == "ug/mL"
    assert meta["Agent"] == "lipo" and meta["Quantity"] == "Carrier"
    assert "first injection" in meta["ReferenceTime"]
    assert meta["Drug"] == "doxorubicin" and meta["Carrier"] == "peg_liposome"
    assert meta["Labels"][0]["nuclide"] == "Zr89"
    assert {"InjectionTime_h", "InjectedMass_ug", "InjectedDrug_ug", "SpatialReference"} <= set(meta)
    encapsulated, _ = read_nifti(out / f"{SESSION_DELIVERY}EncapsulatedDrug_conc.nii.gz")
    np.testing.assert_allclose(encapsulated, 0.3 * conc, rtol=1e-6)

    lut = (out / f"{truth}/anat/sub-01_dseg.tsv").read_text().splitlines()
    assert lut[0].split("\t")[:2] == ["index", "name"]
    assert "10\ttumour_viable" in (out / f"{truth}/anat/sub-01_dseg.tsv").read_text()
    ledger = (out / f"{DELIVERY}Carrier_ledger.tsv").read_text().splitlines()
    assert ledger == [
        "time\ttime_h\tblood\tliver",
        "3600.0\t1.0\t400.0\t50.0",
        "14400.0\t4.0\t300.0\t120.0",
        "86400.0\t24.0\t100.0\t250.0",
    ]
    blood = (out / f"{DELIVERY}Carrier_bloodcurve.tsv").read_text().splitlines()
    assert blood[0] == "time\ttime_h\twhole_blood_concentration"
    assert blood[1:3] == ["0.0\t0.0\t20.0", "1800.0\t0.5\t15.0"]
    blood_meta = json.loads((out / f"{DELIVERY}Carrier_bloodcurve.json").read_text())
    assert blood_meta["whole_blood_concentration"]["Units"] == "ug/mL"
    uptake = (out / f"{DELIVERY}Carrier_uptake.tsv").read_text().splitlines()
    assert uptake[0] == "time\ttime_h\tsoft_tissue\tliver\ttumour_viable"
    scenario = json.loads((out / f"{truth}/sub-01_scenario.json").read_text())
    assert scenario == validate_scenario(SCENARIO).model_dump(mode="json")


def test_drug_maps_describe_the_right_quantity(tmp_path):
    out = tmp_path / "ds"
    write_dataset(out, *make_subject())
    describe = {
        q: json.loads((out / f"{SESSION_DELIVERY}{q}_conc.json").read_text()) for q in ("FreeDrug", "BoundDrug", "EncapsulatedDrug")
    }
    # bound drug: released drug bound in cells (G / V), not drug held in the carrier
    bound = describe["BoundDrug"]["Description"]
    assert "released drug bound in cells" in bound and "G / V" in bound
    assert "encapsulated in" not in bound and "still bound to" not in bound
    assert "still inside its carrier" in describe["EncapsulatedDrug"]["Description"]
    assert "unbound" in describe["FreeDrug"]["Description"]
    assert {m["Quantity"] for m in describe.values()} == {"FreeDrug", "BoundDrug", "EncapsulatedDrug"}


def test_encapsulated_drug_map_only_when_present(tmp_path):
    out = tmp_path / "ds"
    files = write_dataset(out, *make_subject(encapsulated=False))
    assert not [p for p in files if "EncapsulatedDrug" in p.name]
    scenario, phantom, delivery, be = make_subject()
    delivery.agents[0].encapsulated_drug_ug_per_ml = None  # attribute present but None
    files = write_dataset(tmp_path / "none", scenario, phantom, delivery, be)
    assert not [p for p in files if "EncapsulatedDrug" in p.name]
    assert [p for p in files if "BoundDrug" in p.name]


def test_unknown_property_is_a_clear_error(tmp_path):
    scenario, phantom, delivery, be = make_subject()
    phantom.properties["mystery_units"] = phantom.properties["ph"]
    with pytest.raises(ValueError, match="mystery_units.*PROPERTY_DESC"):
        write_dataset(tmp_path / "ds", scenario, phantom, delivery, be)
    assert not (tmp_path / "ds").exists()


# The patterns the derivative may contain. Adding a file to the writer means adding it here
# and to imagingsim.dataset.layout.truth_files(), which documents it in derivatives/truth/README.
DOCUMENTED_TRUTH_FILES = {
    "sub-<id>/sub-<id>_scenario": (".json",),
    "sub-<id>/anat/sub-<id>_dseg": (".nii.gz", ".tsv", ".json"),
    "sub-<id>/anat/sub-<id>_desc-tumours_dseg": (".nii.gz", ".tsv", ".json"),
    "sub-<id>/anat/sub-<id>_desc-<property>_map": (".nii.gz", ".json"),
    "sub-<id>/ses-<time>/delivery/sub-<id>_ses-<time>_desc-<agent>Carrier_conc": (".nii.gz", ".json"),
    "sub-<id>/ses-<time>/delivery/sub-<id>_ses-<time>_desc-<agent>FreeDrug_conc": (".nii.gz", ".json"),
    "sub-<id>/ses-<time>/delivery/sub-<id>_ses-<time>_desc-<agent>BoundDrug_conc": (".nii.gz", ".json"),
    "sub-<id>/ses-<time>/delivery/sub-<id>_ses-<time>_desc-<agent>EncapsulatedDrug_conc": (".nii.gz", ".json"),
    "sub-<id>/delivery/sub-<id>_desc-<agent>Carrier_bloodcurve": (".tsv", ".json"),
    "sub-<id>/delivery/sub-<id>_desc-<agent>Carrier_ledger": (".tsv", ".json"),
    "sub-<id>/delivery/sub-<id>_desc-<agent>Drug_ledger": (".tsv", ".json"),
    "sub-<id>/delivery/sub-<id>_desc-<agent>Carrier_uptake": (".tsv", ".json"),
    "sub-<id>/ses-<time>/pet/sub-<id>_ses-<time>_trc-<agent>_desc-expected_activity": (".nii.gz", ".json"),
    "sub-<id>/pet/sub-<id>_desc-mu511keV_map": (".nii.gz", ".json"),
    "sub-<id>/ses-<time>/mri/sub-<id>_ses-<time>_desc-iron_conc": (".nii.gz", ".json"),
    "sub-<id>/ses-<time>/mri/sub-<id>_ses-<time>_desc-ironBound_conc": (".nii.gz", ".json"),
    "sub-<id>/ses-<time>/mri/sub-<id>_ses-<time>_desc-true_R2starmap": (".nii.gz", ".json"),
    "sub-<id>/ses-<time>/mri/sub-<id>_ses-<time>_desc-true_R1map": (".nii.gz", ".json"),
    "sub-<id>/mri/sub-<id>_desc-baseline_R2starmap": (".nii.gz", ".json"),
    "sub-<id>/mri/sub-<id>_desc-baseline_R1map": (".nii.gz", ".json"),
    "sub-<id>/mri/sub-<id>_desc-offresonance_fieldmap": (".nii.gz", ".json"),
    "sub-<id>/ses-<time>/nirf/sub-<id>_ses-<time>_desc-noisefree_nirf": (".nii.gz", ".json"),
    "sub-<id>/nirf/sub-<id>_desc-background_nirf": (".nii.gz", ".json"),
    "sub-<id>/ses-<time>/nirf/sub-<id>_ses-<time>_desc-<agent>Dye_conc": (".nii.gz", ".json"),
    "sub-<id>/ses-<time>/spect/sub-<id>_ses-<time>_trc-<agent>_desc-expected_activity": (".nii.gz", ".json"),
    "sub-<id>/ses-<time>/spect/sub-<id>_ses-<time>_desc-mu<label>_map": (".nii.gz", ".json"),
    "sub-<id>/ses-<time>/ct/sub-<id>_ses-<time>_desc-trueMu_map": (".nii.gz", ".json"),
    "sub-<id>/ses-<time>/ct/sub-<id>_ses-<time>_desc-gold_conc": (".nii.gz", ".json"),
    "sub-<id>/ses-<time>/ct/sub-<id>_ses-<time>_desc-iodine_conc": (".nii.gz", ".json"),
}
#: Written by modality writers (their own tests cover them), not by this fake subject.
MODALITY_STEMS = {t.stem for t in truth_files()} - {t.stem for t in CORE_TRUTH_FILES}

#: Entities of BIDS 1.9 (key in file names); derivative-only ones included.
BIDS_ENTITIES = {
    "sub", "ses", "sample", "task", "acq", "ce", "trc", "stain", "rec", "dir", "run", "mod",
    "echo", "flip", "inv", "mt", "part", "proc", "hemi", "space", "split", "recording",
    "chunk", "res", "den", "label", "desc",
}  # fmt: skip
BIDS_ENTITY_ORDER = [
    "sub", "ses", "sample", "task", "acq", "ce", "trc", "stain", "rec", "dir", "run", "mod",
    "echo", "flip", "inv", "mt", "part", "proc", "hemi", "space", "split", "recording",
    "chunk", "res", "den", "label", "desc",
]  # fmt: skip


def test_every_truth_file_matches_a_documented_pattern(tmp_path):
    out = tmp_path / "ds"
    write_dataset(out, *make_subject())
    truth = out / "derivatives" / "truth"
    declared = {t.stem: t.extensions for t in truth_files()}
    # The core's and the first modalities' patterns keep their names; a modality added since
    # brings its own (declared in its truth_files, checked by the contract test) without an
    # edit here.
    assert DOCUMENTED_TRUTH_FILES.items() <= declared.items()
    assert set(declared) - set(DOCUMENTED_TRUTH_FILES) <= MODALITY_STEMS
    readme = (truth / "README").read_text()
    for entry in truth_files():
        assert entry.display() in readme, entry.stem
        assert entry.units and entry.meaning
    used = set()
    for path in sorted(truth.glob("sub-*/**/*")):
        if path.is_dir():
            continue
        rel = path.relative_to(truth).as_posix()
        matches = [t.stem for t in truth_files() if t.regex().fullmatch(rel)]
        assert len(matches) == 1, f"{rel} matches {matches}: undocumented or ambiguous"
        used.add(matches[0])
    assert used == set(DOCUMENTED_TRUTH_FILES) - MODALITY_STEMS  # every non-modality pattern
    # the README says which suffixes BIDS does not define
    for suffix in ("scenario", "map", "conc", "bloodcurve", "ledger", "uptake"):
        assert f"`_{suffix}`" in readme.split("NOT defined by BIDS")[1]
    assert "`delivery/` folder is an imagingsim extension" in readme


def test_file_names_use_only_bids_entities(tmp_path):
    out = tmp_path / "ds"
    files = write_dataset(out, *make_subject())
    checked = 0
    for path in files:
        name = path.name
        if not name.startswith("sub-"):
            continue  # dataset_description.json, README, participants.tsv, ...
        stem = name.split(".", 1)[0]
        *pairs, suffix = stem.split("_")
        assert re.fullmatch(r"[A-Za-z0-9]+", suffix), name
        keys = []
        for pair in pairs:
            key, _, value = pair.partition("-")
            assert key in BIDS_ENTITIES, f"{name}: entity {key!r} is not a BIDS entity"
            assert re.fullmatch(r"[A-Za-z0-9]+", value), f"{name}: value of {key!r} is not alphanumeric"
            keys.append(key)
        assert keys == sorted(keys, key=BIDS_ENTITY_ORDER.index), f"{name}: entities out of order"
        assert keys[0] == "sub"
        checked += 1
    assert checked > 30


def test_tsv_time_columns_are_seconds(tmp_path):
    out = tmp_path / "ds"
    write_dataset(out, *make_subject())
    tables = sorted((out / "derivatives").rglob("*.tsv"))
    timed = 0
    for tsv in tables:
        header, *rows = [line.split("\t") for line in tsv.read_text().splitlines()]
        if not any(c.startswith("time") for c in header):
            continue
        timed += 1
        assert header[:2] == ["time", "time_h"], tsv.name
        sidecar = json.loads(tsv.with_suffix(".json").read_text())
        assert sidecar["time"]["Units"] == "s" and sidecar["time_h"]["Units"] == "h"
        for column in header:
            assert "Units" in sidecar[column], (tsv.name, column)  # every column has units
        seconds = np.array([float(r[0]) for r in rows])
        hours = np.array([float(r[1]) for r in rows])
        np.testing.assert_allclose(seconds, hours * 3600.0, rtol=1e-15)
    assert timed == 4  # blood curve, two ledgers, uptake
    # no derivative sidecar reuses BIDS-PET timing keys with another meaning
    for path in (out / "derivatives").rglob("*.json"):
        assert not {"TimeZero", "FrameDuration", "FrameTimesStart"} & set(json.loads(path.read_text())), path


def test_readmes_state_provenance_and_conventions(tmp_path):
    out = tmp_path / "ds"
    write_dataset(out, *make_subject())
    version = json.loads((out / "dataset_description.json").read_text())["GeneratedBy"][0]["Version"]
    for readme in (out / "README", out / "derivatives" / "truth" / "README"):
        text = readme.read_text()
        facts = ("io_test", "seed: 7", "sub-01", f"imagingsim {version}", "RAS+", "[x, y, z]", "mm", "ug/mL", "%ID/g")
        for fact in facts:
            assert fact in text, (readme, fact)
        assert "NIfTI units: mm and s" in text and "seconds from t = 0" in text


def test_dataset_is_byte_identical_across_runs(tmp_path):
    write_dataset(tmp_path / "a", *make_subject())
    write_dataset(tmp_path / "b", *make_subject())
    first, second = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


@pytest.mark.validator
def test_dataset_passes_bids_validator(tmp_path, bids_validator):
    out = tmp_path / "ds"
    write_dataset(out, *make_subject())
    report = bids_validator(out)
    assert report["errors"] == []
    assert report["summary"]["subjects"] == ["01"]
    assert sorted(report["summary"]["dataTypes"]) == ["PDmap", "T1map", "T2starmap"]
