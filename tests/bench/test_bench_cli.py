"""``imagingsim bench``: the leaderboard printed and written, bad input in one line with exit 2."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from imagingsim.cli import main

TINY = str(Path(__file__).with_name("tiny.toml"))


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_bench_writes_and_prints_the_leaderboard(capsys, tmp_path):
    out = tmp_path / "b"
    code, stdout, stderr = run(capsys, "bench", TINY, "--baselines", "--recon", "bench_plugins:raises", "--out",
                               str(out), "--timeout-s", "60")
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["leaderboard.html", "leaderboard.tsv", "results.json", "results.tsv"]
    assert "suite tiny" in stdout and "pet-osem" in stdout and "ct-fbp" in stdout
    assert "raises on pet_2mm x1: failed 3/3: RuntimeError" in stdout  # the failure is reported, the run went on
    assert "pet_2mm x0.05 #2 pet-mlem: nrmse" in stderr  # progress, one line per run


@pytest.mark.parametrize(("argv", "message"), [
    (["nope"], "suite 'nope': not a built-in"),
    ([TINY], "--recon: give at least one"),
    ([TINY, "--recon", "no_such_module:f"], "--recon 'no_such_module:f': cannot import"),
    ([TINY, "--baselines", "--backend", "gpu"], "--backend: must be one of auto, numpy, cupy"),
    ([TINY, "--baselines", "--timeout-s", "0"], "--timeout-s: must be > 0"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(capsys, tmp_path, argv, message):
    out = tmp_path / "b"
    code, _, stderr = run(capsys, "bench", *argv, "--out", str(out))
    assert code == 2 and message in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert not out.exists()


def test_an_output_directory_with_files_is_refused_before_any_work(capsys, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    started = time.perf_counter()
    code, _, stderr = run(capsys, "bench", TINY, "--baselines", "--out", str(tmp_path))
    assert code == 2 and "--out" in stderr and time.perf_counter() - started < 5.0
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


@pytest.mark.slow
def test_the_quick_suite_runs_with_the_baselines_in_under_two_minutes(capsys, tmp_path):
    started = time.perf_counter()
    code, stdout, stderr = run(capsys, "bench", "quick", "--baselines", "--out", str(tmp_path / "q"))
    assert code == 0, stderr
    assert time.perf_counter() - started < 120.0
    for method in ("pet-fbp", "pet-mlem", "pet-osem", "pet-osem_nopsf", "ct-fbp", "mri-zero_filled", "mri-cg_sense"):
        assert method in stdout
