"""Signals during a real run: SIGTERM/SIGHUP unwind cleanly; after SIGKILL the next run cleans up.

Each test starts ``imagingsim simulate`` in a child process, waits until it is writing the
dataset (files appear in its staging directory), then signals it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")

# Coarse grid, no modalities: a run of a few seconds that still writes ~60 files.
ARGS = ["simulate", "--modalities", "", "--set", "phantom.voxel_size_mm=1.0"]


def start(out):
    return subprocess.Popen(
        [sys.executable, "-m", "imagingsim", *ARGS, "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_until_writing(process, parent, min_files=5, timeout_s=120):
    """Poll until the child's staging directory holds ``min_files`` files."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it was signalled"
        for entry in parent.iterdir():
            files = sum(len(names) for _, _, names in os.walk(entry)) if ".imagingsim-staging-" in entry.name else 0
            if files >= min_files:
                return entry
        time.sleep(0.01)
    raise AssertionError("the run never started writing")


def hidden(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_during_writing_leave_nothing(tmp_path, signum, code):
    out = tmp_path / "ds"
    process = start(out)
    wait_until_writing(process, tmp_path)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    last = err.strip().splitlines()[-1]
    assert last == f"terminated by {signal.Signals(signum).name}: nothing was written"
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no dataset, no staging, no lock


def test_after_sigkill_during_writing_the_next_run_cleans_up(tmp_path):
    out = tmp_path / "ds"
    process = start(out)
    staging = wait_until_writing(process, tmp_path)
    process.kill()
    process.wait()
    assert staging.exists() and (tmp_path / ".ds.imagingsim-lock").exists()  # debris of the kill

    rerun = start(out)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"took over the lock of a run that died (pid {process.pid})" in err
    assert f"cleaned up: removed 1 work directory left beside it by killed runs (pid {process.pid})" in err
    assert hidden(tmp_path) == []
    assert (out / "dataset_description.json").is_file()


def test_a_second_writer_is_refused_while_another_run_holds_the_output(tmp_path):
    from imagingsim.io.lock import output_lock

    out = tmp_path / "ds"
    with output_lock(out):  # this test process plays the first run
        second = start(out)
        _, err = second.communicate(timeout=120)
    assert second.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"another imagingsim run (pid {os.getpid()} on " in lines[0]
    assert list(tmp_path.iterdir()) == []
