"""Resources estimated before any work: against measured peak memory, and the refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import imagingsim
from imagingsim.cli import main
from imagingsim.resources import available_memory_bytes, estimate_resources

#: Peak resident memory of a CLI run, measured by the child itself. VmHWM belongs to the
#: process's own address space; ru_maxrss would not do: Linux carries it across fork and exec,
#: so a child of a large pytest process would report the parent's size.
MEASURE = """
import json, sys
from imagingsim.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as handle:
    peak = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmHWM:"))
print(json.dumps({"code": code, "peak_bytes": peak}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM in /proc/self/status")
@pytest.mark.parametrize("voxel_size_mm", [1.0, 0.7])
def test_estimated_peak_memory_is_within_30_percent_of_the_measured_peak(tmp_path, voxel_size_mm):
    override = f"phantom.voxel_size_mm={voxel_size_mm}"
    args = ["simulate", "--set", override, "--out", str(tmp_path / "ds")]
    result = subprocess.run([sys.executable, "-c", MEASURE, *args], capture_output=True, text=True, check=True)
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["code"] == 0, result.stderr
    estimate = estimate_resources(imagingsim.load_scenario(None, [override]))
    ratio = estimate.peak_bytes / measured["peak_bytes"]
    assert 0.7 <= ratio <= 1.3, (estimate.peak_bytes, measured["peak_bytes"])
    written = sum(p.stat().st_size for p in (tmp_path / "ds").rglob("*") if p.is_file())
    assert 0.8 <= estimate.output_bytes / written <= 1.2, (estimate.output_bytes, written)
    assert estimate.line() in result.stderr  # the header line shows it


def test_estimate_grows_with_the_grid_the_schedule_and_the_modalities():
    base = estimate_resources(imagingsim.load_scenario(None, ["phantom.voxel_size_mm=1.0"]))
    finer = estimate_resources(imagingsim.load_scenario(None, ["phantom.voxel_size_mm=0.5"]))
    longer = estimate_resources(imagingsim.load_scenario(None, ["phantom.voxel_size_mm=1.0",
                                                                 "schedule.times_h=[1, 4, 24, 48, 72, 96, 120, 168]"]))
    fewer = estimate_resources(imagingsim.load_scenario(None, ["phantom.voxel_size_mm=1.0", 'modalities.enabled=["pet"]']))
    assert finer.n_voxels == 8 * base.n_voxels
    for a, b in [(base, finer), (base, longer), (fewer, base)]:
        assert a.peak_bytes < b.peak_bytes and a.output_bytes < b.output_bytes and a.seconds < b.seconds
    assert set(base.stages) == {"phantom", "delivery", "pet", "mri", "nirf", "write"}


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, [line for line in captured.err.splitlines() if line.strip()]


def test_a_run_that_needs_more_memory_than_allowed_is_refused_naming_the_voxel_size_that_fits(capsys, tmp_path):
    limit_gb = 0.6
    code, lines = run(capsys, "simulate", "--max-memory-gb", str(limit_gb), "--out", str(tmp_path / "ds"))
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: phantom.voxel_size_mm: 0.5 mm needs about ") and "0.60 GB available" in lines[0]
    finest = float(lines[0].rsplit("voxel_size_mm >= ", 1)[1].split()[0])
    fits = estimate_resources(imagingsim.load_scenario(None, [f"phantom.voxel_size_mm={finest}"]))
    finer = estimate_resources(imagingsim.load_scenario(None, [f"phantom.voxel_size_mm={finest - 0.02}"]))
    assert fits.peak_bytes <= limit_gb * 1e9 < finer.peak_bytes
    assert list(tmp_path.iterdir()) == []


def test_a_run_that_would_fill_the_disk_is_refused_before_any_work(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("imagingsim.resources.free_disk_bytes", lambda out: 20e6)
    code, lines = run(capsys, "simulate", "--out", str(tmp_path / "ds"))
    assert code == 2 and len(lines) == 1, lines
    assert "writes about" in lines[0] and "20 MB free under" in lines[0] and "voxel_size_mm >= " in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_over_the_voxel_cap_is_one_line(capsys, tmp_path):
    code, lines = run(capsys, "simulate", "--set", "phantom.voxel_size_mm=0.06", "--out", str(tmp_path / "ds"))
    assert code == 2 and len(lines) == 1 and "phantom.voxel_size_mm: 0.06 mm gives" in lines[0], lines


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/meminfo")
def test_available_memory_is_read_on_linux():
    available = available_memory_bytes()
    assert available is not None and 0 < available < 2**50
