"""The command line: listing, info, and bad input -> exit 2, one line, nothing written."""

from __future__ import annotations

import subprocess
import sys

import pytest

from imagingsim.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_phantoms_lists_builtins_with_descriptions(capsys):
    code, out, _ = run(capsys, "phantoms")
    assert code == 0
    line = next(l for l in out.splitlines() if l.startswith("mouse_peg_liposome"))
    assert "(default)" in line and "liposom" in line.split(":", 1)[1]


def test_info_reports_backend_and_gpu(capsys):
    code, out, _ = run(capsys, "info")
    assert code == 0
    assert "backend (auto):" in out and "gpu:" in out and "imagingsim" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--set", "phantom.voxel_size_mm=99"], "phantom.voxel_size_mm"),
        (["--set", "agents[0].carrier=nanobot"], "agents[0].carrier"),
        (["--backend", "tpu"], "--backend"),
        (["--backend", "cupy", "--set", "seed=1"], "cupy"),
        (["--modalities", "xray"], "modalities.enabled"),
        (["--seed", "minus-one"], "--seed"),
        (["no_such_scenario"], "no built-in scenario"),
        (["--set", "justtext"], "KEY=VALUE"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(capsys, tmp_path, argv, needle):
    from imagingsim.backend import cupy_status

    if "cupy" in argv and cupy_status()[0]:
        pytest.skip("a GPU is usable here, so --backend cupy is valid")
    out_dir = tmp_path / "ds"
    args = ["simulate", *[a for a in argv if not a.endswith("_scenario")], "--out", str(out_dir)]
    if any(a.endswith("_scenario") for a in argv):
        args.insert(1, argv[0])
    code, _, err = run(capsys, *args)
    assert code == 2
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], err
    assert not out_dir.exists()
    assert list(tmp_path.iterdir()) == []  # no staging leftovers either


def test_missing_out_is_a_usage_error(capsys):
    code, _, err = run(capsys, "simulate")
    assert code == 2 and "--out" in err and len(err.strip().splitlines()) == 1


def test_non_empty_output_is_refused_without_overwrite(capsys, tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    code, _, err = run(capsys, "simulate", "--out", str(tmp_path))
    assert code == 2 and "--overwrite" in err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_console_entry_point_has_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "imagingsim", "simulate", "--set", "phantom.anatomy=rat", "--out", str(tmp_path / "x")],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "phantom.anatomy" in result.stderr


@pytest.mark.parametrize(
    ("out", "needle"),
    [("{tmp}/afile/x", "is not a directory"), ("/", "root")],
)
def test_unusable_output_paths_are_one_line_errors(capsys, tmp_path, out, needle):
    (tmp_path / "afile").write_text("")
    code, _, err = run(capsys, "simulate", "--out", out.format(tmp=tmp_path), "--set", "phantom.voxel_size_mm=2")
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err


def test_unwritable_parent_is_refused_before_simulating(capsys, tmp_path):
    import os

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.access(locked, os.W_OK):
        pytest.skip("running as a user who can write anywhere (root)")
    code, _, err = run(capsys, "simulate", "--out", str(locked / "ds"))
    assert code == 2 and "permission" in err


def test_out_dot_in_an_empty_directory_works(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "simulate", "--out", ".", "--set", "phantom.voxel_size_mm=2", "--set", "schedule.times_h=[1]")
    assert code == 0, err
    assert (tmp_path / "dataset_description.json").is_file()
    assert [p.name for p in tmp_path.parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name] == []


def test_scenario_without_tumour_runs_and_says_so(capsys, tmp_path):
    code, out, err = run(
        capsys, "simulate", "--out", str(tmp_path / "ds"), "--set", "phantom.tumours=[]",
        "--set", "phantom.voxel_size_mm=2", "--set", "schedule.times_h=[1]",
    )
    assert code == 0, err
    assert "no tumour" in out and "Traceback" not in err


def test_disk_failure_while_writing_is_one_line_exit_1(capsys, tmp_path, monkeypatch):
    import imagingsim.dataset.write

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "ds" / "x.nii.gz"))

    # Raised in the background writer while the modalities compute: reported all the same.
    monkeypatch.setattr(imagingsim.dataset.write, "write_common", full_disk)
    code, _, err = run(
        capsys, "simulate", "--out", str(tmp_path / "ds"), "--set", "phantom.voxel_size_mm=2", "--set", "schedule.times_h=[1]"
    )
    assert code == 1
    lines = [l for l in err.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "No space left on device" in lines[0] and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # staging removed


def test_interrupt_exits_130_and_writes_nothing(capsys, tmp_path, monkeypatch):
    import imagingsim.pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(imagingsim.pipeline, "_run_stages", interrupted)  # inside the staged build
    code, _, err = run(capsys, "simulate", "--out", str(tmp_path / "ds"))
    assert code == 130 and "nothing was written" in err
    assert not (tmp_path / "ds").exists()


def test_grid_too_fine_is_refused_with_one_error_line(capsys, tmp_path):
    # Raised while building the phantom (after the one-line header), before any memory is used.
    code, _, err = run(capsys, "simulate", "--out", str(tmp_path / "ds"), "--set", "phantom.voxel_size_mm=0.1")
    errors = [l for l in err.splitlines() if l.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "phantom.voxel_size_mm" in errors[0] and "Traceback" not in err
    assert not (tmp_path / "ds").exists()


def test_version_and_short_help(capsys):
    from imagingsim import __version__

    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"imagingsim {__version__}"
    code, out, _ = run(capsys, "-h")
    assert code == 0 and "simulate" in out and "--version" in out
    code, out, _ = run(capsys, "simulate", "-h")
    assert code == 0 and "--max-memory-gb" in out


def test_citation_names_the_version_the_datasets_cite():
    from pathlib import Path

    from imagingsim import __version__

    citation = (Path(__file__).resolve().parents[1] / "CITATION.cff").read_text()
    assert f"version: {__version__}" in citation and "cff-version: 1.2.0" in citation


def test_an_old_dependency_is_an_environment_failure_not_bad_input(capsys, tmp_path, monkeypatch):
    from importlib import metadata

    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "1.26.4" if name == "numpy" else real(name))
    code, _, err = run(capsys, "simulate", "--out", str(tmp_path / "ds"))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, err
    assert "numpy 1.26.4 is older than the 2.0 imagingsim needs" in lines[0]
    assert not (tmp_path / "ds").exists()


def test_the_installed_dependencies_meet_their_floors():
    from imagingsim.dependencies import dependency_problems

    assert dependency_problems() == []
