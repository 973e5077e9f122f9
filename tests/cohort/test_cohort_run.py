"""Writing a cohort: one BIDS dataset, resumable without losing or half-keeping a subject."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from imagingsim.cohort import load_cohort
from imagingsim.cohort import run as cohort_run
from imagingsim.cohort.run import participant_column, run_cohort

#: Coarse, one modality, one time: the bookkeeping is what is tested, not the physics.
SMALL = ["phantom.voxel_size_mm=2.0", "schedule.times_h=[24.0]", 'modalities.enabled=["pet"]']


def _cohort(subjects: int = 3):
    return load_cohort("mouse_epr_variability", subjects=subjects, overrides=SMALL)


def _files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def _assert_identical(ours: Path, reference: Path) -> None:
    """Every file of two cohort datasets byte for byte (records and their checksums included);
    a NIfTI that differs is reported by its largest difference (NaN-aware)."""
    mine, theirs = _files(ours), _files(reference)
    assert mine.keys() == theirs.keys()
    for key, path in theirs.items():
        if mine[key].read_bytes() == path.read_bytes():
            continue
        if key.endswith(".nii.gz"):
            a, b = (np.asanyarray(nib.load(p).dataobj) for p in (mine[key], path))
            equal = np.array_equal(a, b, equal_nan=True)
            detail = "equal arrays, other header or gzip bytes" if equal else f"max |difference| {np.nanmax(np.abs(a - b))}"
            raise AssertionError(f"{key}: {detail}")
        if key.startswith(".imagingsim/subjects/"):
            # A subject's record lists its files' sizes and checksums: name the ones that differ.
            a, b = (json.loads(p.read_text()) for p in (mine[key], path))
            files = sorted(k for k in a.get("Files", {}).keys() | b.get("Files", {}).keys()
                           if a["Files"].get(k) != b["Files"].get(k))
            others = sorted(k for k in a.keys() | b.keys() if k != "Files" and a.get(k) != b.get(k))
            raise AssertionError(f"{key} differs: files {files[:8]}, fields {others}")
        raise AssertionError(f"{key} differs")


@pytest.fixture(scope="module")
def complete(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cohort") / "ds"
    run_cohort(_cohort(), out, backend="numpy")
    return out


def test_participants_hold_every_drawn_value_and_the_dataset_is_bids_valid(complete, bids_validator_deno):
    cohort = _cohort()
    lines = (complete / "participants.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    assert header[:3] == ["participant_id", "species", "weight"]
    assert header[3:] == [participant_column(k) for k in cohort.spec.vary]
    for number, line in enumerate(lines[1:], start=1):
        row = line.split("\t")
        assert row[0] == f"sub-{number:03d}"
        assert [float(v) for v in row[3:]] == list(cohort.values(number).values())
    sidecar = json.loads((complete / "participants.json").read_text())
    assert sidecar["phantom_tumours_0_radius_mm"]["Units"] == "mm"
    assert sidecar["agents_0_dose_mg_per_kg"]["Units"] == "mg/kg"
    report = bids_validator_deno(complete)
    assert report["errors"] == [] and sorted(report["subjects"]) == ["001", "002", "003"]


def test_pybids_lists_the_subjects_and_their_participant_columns(complete):
    bids = pytest.importorskip("bids", reason="pybids is a test dependency")
    layout = bids.BIDSLayout(complete, validate=False)
    assert layout.get_subjects() == ["001", "002", "003"]
    table = layout.get(suffix="participants", extension=".tsv")[0].get_df()
    assert "phantom_tumours_0_permeability" in table.columns and len(table) == 3


def test_an_interrupted_run_resumes_to_the_same_dataset_with_nothing_partial(complete, tmp_path, monkeypatch):
    out = tmp_path / "ds"
    original = cohort_run._write_one

    def crash_at_second(draw, *args):
        if draw.number == 2:
            raise KeyboardInterrupt  # as if the driver were stopped during subject 2
        original(draw, *args)

    monkeypatch.setattr(cohort_run, "_write_one", crash_at_second)
    with pytest.raises(KeyboardInterrupt):
        run_cohort(_cohort(), out, backend="numpy")
    monkeypatch.setattr(cohort_run, "_write_one", original)
    assert (out / "sub-001").is_dir() and not (out / "sub-002").exists()
    # a kill between the renames of subject 2: a folder of it, but no completion record
    (out / "sub-002" / "anat").mkdir(parents=True)
    (out.parent / f".{out.name}.imagingsim-subject-002-1-deadbeef").mkdir()  # stale staging
    with pytest.raises(ValueError, match="not empty; use --resume"):
        run_cohort(_cohort(), out, backend="numpy")
    result = run_cohort(_cohort(), out, resume=True, backend="numpy")
    assert result.kept == ("001",) and result.written == ("002", "003")
    assert not list(out.parent.glob(".*imagingsim-subject-*"))
    _assert_identical(out, complete)
    record = json.loads((out / ".imagingsim" / "subjects" / "sub-002.json").read_text())
    assert all(len(entry["sha256"]) == 64 for entry in record["Files"].values())


def test_outputs_leave_out_the_raw_data(tmp_path):
    out = tmp_path / "ds"
    run_cohort(_cohort(subjects=1), out, outputs=["truth", "images"], backend="numpy")
    assert not (out / "sourcedata" / "sub-001").exists() and (out / "derivatives" / "truth" / "sub-001").is_dir()
    with pytest.raises(ValueError, match="--outputs: kspace not allowed; choose from truth,images,raw"):
        run_cohort(_cohort(subjects=1), tmp_path / "other", outputs=["kspace"], backend="numpy")


def test_cli_refuses_a_bad_cohort_in_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nbase = "mouse_peg_liposome"\nsubjects = 2\nseed = 1\n[vary]\n'
                   '"phantom.tumours[0].radius_mm" = { distribution = "uniform", low = 0.0, high = 2.0 }\n')
    result = subprocess.run([sys.executable, "-m", "imagingsim", "cohort", str(bad), "--out", str(tmp_path / "o")],
                            check=False, capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "vary.phantom.tumours[0].radius_mm: the uniform distribution can give 0.0" in result.stderr
    assert not (tmp_path / "o").exists()


def test_two_dask_workers_write_the_same_dataset_as_one(complete, tmp_path):
    """Every file byte for byte: other processes, one BLAS/FFT/sparse thread each instead of
    this process's two, another hash seed and other memory addresses give the same data."""
    out = tmp_path / "ds"
    result = run_cohort(_cohort(), out, workers=2, backend="numpy")
    assert result.written == ("001", "002", "003")
    _assert_identical(out, complete)


def test_more_workers_than_the_memory_holds_are_refused_with_a_count_that_fits(tmp_path, monkeypatch):
    cohort = _cohort()
    need = cohort_run.estimate_resources(cohort.subject(1).scenario).peak_bytes + cohort_run.DASK_WORKER_BYTES
    monkeypatch.setattr(cohort_run, "available_memory_bytes", lambda: 2.5 * need)
    with pytest.raises(ValueError, match=r"^--workers 8: each subject needs about .* GB at its peak, .* GB available; "
                                         r"--workers 2 fits$"):
        run_cohort(cohort, tmp_path / "ds", workers=8, backend="numpy")
    assert not (tmp_path / "ds").exists()


def test_resuming_with_another_cohort_is_refused(complete, tmp_path):
    import shutil

    out = tmp_path / "ds"
    shutil.copytree(complete, out)
    other = load_cohort("mouse_epr_variability", subjects=3, seed=99, overrides=SMALL)
    with pytest.raises(ValueError, match=r"--resume: .* holds subjects of another cohort or settings \(Cohort differs\)"):
        run_cohort(other, out, resume=True, backend="numpy")
    with pytest.raises(ValueError, match=r"\(Outputs differs\)"):
        run_cohort(_cohort(), out, resume=True, outputs=["truth"], backend="numpy")
    assert run_cohort(_cohort(subjects=4), out, resume=True, backend="numpy").written == ("004",)  # N may grow


def test_the_manifest_pairs_each_image_with_truth_on_the_same_grid(complete):
    import csv

    with open(complete / "manifest.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert {r["participant_id"] for r in rows} == {"sub-001", "sub-002", "sub-003"}
    assert any(r["image"].endswith("_rec-osem_pet.nii.gz") and r["truth"].endswith("Carrier_conc.nii.gz") for r in rows)
    for row in rows[:: max(1, len(rows) // 20)]:  # a pair loads with nibabel alone, on one grid
        image, truth, labels = (nib.load(complete / row[k]) for k in ("image", "truth", "labels"))
        assert image.shape[:3] == truth.shape[:3] == labels.shape
        np.testing.assert_allclose(image.affine, truth.affine)
        assert row["session"] in row["image"] and row["session"] in row["truth"] and row["time_h"] == "24.0"
    assert json.loads((complete / "manifest.json").read_text())["time_h"]["Units"] == "h"


def test_a_driver_killed_outright_resumes_to_the_same_complete_dataset(complete, tmp_path):
    """SIGKILL of `imagingsim cohort` after its first subject: --resume ends with every subject
    complete, the same arrays as an uninterrupted run, and no staging left."""
    import signal
    import time

    out = tmp_path / "ds"
    command = [sys.executable, "-m", "imagingsim", "cohort", "mouse_epr_variability", "--out", str(out),
               "--subjects", "3", "--backend", "numpy", *(arg for item in SMALL for arg in ("--set", item))]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / ".imagingsim" / "subjects" / "sub-001.json"
    deadline = time.monotonic() + 300
    while not first.exists() and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert driver.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (out / ".imagingsim" / "subjects" / "sub-003.json").exists()
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "kept from an earlier run" in resumed.stdout
    assert not list(out.parent.glob(".*imagingsim-subject-*"))
    _assert_identical(out, complete)


def test_a_worker_killed_mid_subject_has_its_subject_redone(complete, tmp_path):
    """SIGKILL of one Dask worker while it simulates a subject: the nanny restarts it, the
    scheduler gives the subject to a worker again, and the run ends with every subject complete,
    the same arrays, and the dead worker's staging swept."""
    import os
    import re
    import signal
    import threading
    import time

    out = tmp_path / "ds"
    killed: list[int] = []

    def kill_first_worker() -> None:
        # A worker's staging folder carries its pid: .ds.imagingsim-subject-<label>-<pid>-<hex>
        deadline = time.monotonic() + 300
        while not killed and time.monotonic() < deadline:
            for path in tmp_path.glob(".ds.imagingsim-subject-*"):
                match = re.search(r"-subject-\d+-(\d+)-[0-9a-f]+$", path.name)
                if match and int(match.group(1)) != os.getpid():
                    os.kill(int(match.group(1)), signal.SIGKILL)
                    killed.append(int(match.group(1)))
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_first_worker, daemon=True)
    killer.start()
    result = run_cohort(_cohort(), out, workers=2, backend="numpy")
    killer.join(timeout=1)
    assert killed, "no worker was seen at work"
    assert sorted(result.written) == ["001", "002", "003"]
    assert not list(tmp_path.glob(".*imagingsim-subject-*"))
    _assert_identical(out, complete)


def test_derivative_readmes_say_they_hold_the_whole_cohort(complete):
    # Kept from the lowest-numbered subject, each README says so and where the others differ.
    readmes = sorted((complete / "derivatives").glob("*/README*"))
    assert readmes
    for readme in readmes:
        title, preface = readme.read_text().split("\n\n")[:2]
        assert title.startswith("# ")
        assert preface.startswith("This derivative holds every subject of the imagingsim cohort `mouse_epr_variability`")
        assert "written for sub-001" in preface and "participants.tsv" in preface


def _block_subject(out: Path, label: str) -> Path:
    """Make subject ``label`` fail wherever it runs (this process or a Dask worker): a file
    where its record folder goes makes the worker's write raise NotADirectoryError."""
    blocker = out / ".imagingsim" / "subjects" / f"sub-{label}"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way\n")
    return blocker


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_subject_is_counted_and_the_others_are_written(complete, tmp_path, workers):
    out = tmp_path / "ds"
    blocker = _block_subject(out, "002")
    seen = []
    result = run_cohort(_cohort(), out, workers=workers, resume=True, backend="numpy", on_subject=seen.append)
    assert result.written == ("001", "003") and list(result.failed) == ["002"]
    assert "NotADirectoryError" in result.failed["002"] and "\n" not in result.failed["002"]
    assert not (out / "sub-002").exists() and not (out / ".imagingsim" / "subjects" / "sub-002.json").exists()
    failure = out / ".imagingsim" / "failed" / "sub-002.txt"
    assert "Traceback" in failure.read_text()
    last = max(seen, key=lambda e: e.done + e.failed)
    assert (last.done, last.failed, last.total) == (2, 1, 3)
    assert [e.error is not None for e in seen if e.label == "002"] == [True]
    participants = (out / "participants.tsv").read_text().splitlines()
    assert [row.split("\t")[0] for row in participants[1:]] == ["sub-001", "sub-003"]
    # --resume redoes the failed subject only, and the dataset is then the uninterrupted one
    blocker.unlink()
    again = run_cohort(_cohort(), out, resume=True, backend="numpy")
    assert again.written == ("002",) and again.kept == ("001", "003") and again.failed == {}
    assert not failure.parent.exists()
    _assert_identical(out, complete)


def test_the_cli_lists_failed_subjects_and_exits_1(tmp_path, capsys):
    from imagingsim.cli import main

    out = tmp_path / "ds"
    _block_subject(out, "001")
    code = main(["cohort", "mouse_epr_variability", "--out", str(out), "--subjects", "2", "--resume",
                 "--backend", "numpy", *(arg for item in SMALL for arg in ("--set", item))])
    captured = capsys.readouterr()
    assert code == 1
    assert "1 subjects written, 0 kept from an earlier run, 1 failed" in captured.out
    assert "sub-001 failed: NotADirectoryError" in captured.err and "--resume redoes" in captured.err
    assert "Traceback" not in captured.err
