"""The output directory: what --overwrite may replace, the lock, and the sweep of killed runs' debris."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from imagingsim.io.atomic import staged_directory
from imagingsim.io.lock import OutputBusy, lock_path, output_lock
from imagingsim.io.outdir import (
    check_output_dir,
    is_imagingsim_dataset,
    make_work_dir,
    sweep_stale,
    work_dir_pattern,
)

DESCRIPTION = {"Name": "x", "BIDSVersion": "1.10.0", "GeneratedBy": [{"Name": "imagingsim", "Version": "0"}]}


def make_dataset(path, marker="old"):
    path.mkdir()
    (path / "dataset_description.json").write_text(json.dumps(DESCRIPTION))
    (path / "marker.txt").write_text(marker)
    return path


def hidden(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# --- what may be replaced ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "is_ours"),
    [
        (DESCRIPTION, True),
        ({"Name": "x", "GeneratedBy": [{"Name": "fmriprep"}]}, False),
        ({"Name": "x"}, False),
        ({"Name": "x", "GeneratedBy": "imagingsim"}, False),  # not the BIDS list form
        ([1, 2], False),
    ],
)
def test_only_a_dataset_generated_by_imagingsim_is_recognised(tmp_path, content, is_ours):
    (tmp_path / "dataset_description.json").write_text(json.dumps(content))
    assert is_imagingsim_dataset(tmp_path) is is_ours


def test_overwrite_refuses_a_directory_of_user_files_and_touches_nothing(tmp_path):
    (tmp_path / "my_notes.txt").write_text("notes\n")
    with pytest.raises(ValueError, match="not an imagingsim dataset") as info:
        check_output_dir(tmp_path, overwrite=True)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="not an imagingsim dataset"), staged_directory(tmp_path, overwrite=True):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_notes.txt"]


def test_overwrite_accepts_an_empty_directory_and_an_imagingsim_dataset(tmp_path):
    (tmp_path / "empty").mkdir()
    assert check_output_dir(tmp_path / "empty") == tmp_path / "empty"
    out = make_dataset(tmp_path / "ds")
    assert check_output_dir(out, overwrite=True) == out
    with staged_directory(out, overwrite=True) as stage:
        (stage / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert hidden(tmp_path) == []


def test_symlink_loop_and_over_long_names_are_one_line_refusals(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(ValueError, match="symbolic link loop"):
        check_output_dir(tmp_path / "a")
    with pytest.raises(ValueError, match="a name of 300 bytes; the file system allows") as info:
        check_output_dir(tmp_path / ("x" * 300))
    assert len(str(info.value)) < 300  # the echoed name is shortened
    with pytest.raises(ValueError, match="the staging directory beside it adds"):
        check_output_dir(tmp_path / ("x" * 240))  # fits alone, but not with the staging suffix


# --- lock -------------------------------------------------------------------------------------


HOLD_LOCK = """
import sys, time
from imagingsim.io.lock import output_lock
with output_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    out = tmp_path / "ds"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputBusy) as info, output_lock(out):
            pass
        message = str(info.value)
        assert f"pid {holder.pid}" in message and "\n" not in message
        with pytest.raises(OutputBusy), staged_directory(out):
            pass
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
    # SIGKILL released the flock: the lock file it left is taken over, and removed after.
    assert lock_path(out).exists()
    with output_lock(out) as lock:
        assert lock.previous_owner["pid"] == holder.pid
    assert not lock_path(out).exists()


def test_the_lock_is_reentrant_within_one_process(tmp_path):
    out = tmp_path / "ds"
    with output_lock(out) as outer, output_lock(out) as inner:
        assert inner is outer
        with staged_directory(out) as stage:  # the dataset writer under the CLI's lock
            (stage / "f").write_text("x")
        assert lock_path(out).exists()
    assert hidden(tmp_path) == []


# --- sweep --------------------------------------------------------------------------------------


def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def fake_work_dir(out, kind, pid):
    path = make_work_dir(out, kind)
    renamed = path.with_name(path.name.replace(f"-{os.getpid()}-", f"-{pid}-"))
    path.rename(renamed)
    (renamed / "junk.bin").write_bytes(b"x" * 1000)
    return renamed


def test_sweep_removes_work_directories_of_killed_runs_and_names_their_pids(tmp_path):
    out = make_dataset(tmp_path / "ds")
    pid = dead_pid()
    fake_work_dir(out, "staging", pid)
    fake_work_dir(out, "old", pid)
    (tmp_path / ".ds.unrelated").mkdir()  # not ours: a name that does not match stays
    (tmp_path / ".dsx.imagingsim-staging-1-00000000-00000000").mkdir()  # another output's
    with output_lock(out):
        sweep = sweep_stale(out)
    assert len(sweep.removed) == 2 and set(sweep.pids) == {pid}
    message = sweep.message(out)
    assert message.startswith("cleaned up:") and f"pid {pid}" in message and "\n" not in message
    assert hidden(tmp_path) == [".ds.unrelated", ".dsx.imagingsim-staging-1-00000000-00000000"]
    assert (out / "marker.txt").read_text() == "old"
    with output_lock(out):
        assert sweep_stale(out).message(out) is None


def test_sweep_puts_back_a_dataset_set_aside_by_a_run_killed_mid_swap(tmp_path):
    out = tmp_path / "ds"
    pid = dead_pid()
    old = fake_work_dir(out, "old", pid)
    (old / "dataset_description.json").write_text(json.dumps(DESCRIPTION))
    staging = fake_work_dir(out, "staging", pid)
    with output_lock(out):
        sweep = sweep_stale(out)
    assert sweep.restored == out and sweep.removed == (staging,)
    assert is_imagingsim_dataset(out) and "put back the previous dataset" in sweep.message(out)
    assert hidden(tmp_path) == []


def test_sweep_needs_the_lock(tmp_path):
    with pytest.raises(RuntimeError, match="lock"):
        sweep_stale(tmp_path / "ds")


def test_work_dir_names_carry_kind_pid_and_host(tmp_path):
    out = tmp_path / "ds"
    path = make_work_dir(out, "staging")
    match = work_dir_pattern(out).match(path.name)
    assert match and match["kind"] == "staging" and int(match["pid"]) == os.getpid()
