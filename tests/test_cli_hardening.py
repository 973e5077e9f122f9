"""The reproductions of the hardening issue, each as a CLI run: one line, exit 2, nothing lost.

(SIGTERM/SIGKILL and a second writer: test_cli_signals.py; memory and disk: test_resources.py.)
"""

from __future__ import annotations

import json

import pytest

from imagingsim.cli import MAX_ERROR_CHARS, main


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, [line for line in captured.err.splitlines() if line.strip()]


def assert_refused(code, lines, needle):
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines
    assert len(lines[0]) <= MAX_ERROR_CHARS


def test_overwrite_never_deletes_a_directory_of_user_files(capsys, tmp_path, monkeypatch):
    (tmp_path / "my_notes.txt").write_text("notes\n")
    monkeypatch.chdir(tmp_path)
    code, lines = run(capsys, "simulate", "--modalities", "", "--out", ".", "--overwrite")
    assert_refused(code, lines, "not an imagingsim dataset")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_notes.txt"]
    assert (tmp_path / "my_notes.txt").read_text() == "notes\n"


def test_overwrite_replaces_an_imagingsim_dataset(capsys, tmp_path):
    out = tmp_path / "ds"
    args = ["simulate", "--modalities", "", "--set", "phantom.voxel_size_mm=1.5", "--out", str(out)]
    assert main(args) == 0
    (out / "stale.txt").write_text("from before")
    assert main([*args, "--overwrite"]) == 0
    assert not (out / "stale.txt").exists()
    assert json.loads((out / "dataset_description.json").read_text())["GeneratedBy"][0]["Name"] == "imagingsim"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_symlink_loop_as_out_is_one_line(capsys, tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    code, lines = run(capsys, "simulate", "--out", str(tmp_path / "a"))
    assert_refused(code, lines, "symbolic link loop")


def test_over_long_out_name_is_bad_input(capsys, tmp_path):
    code, lines = run(capsys, "simulate", "--out", str(tmp_path / ("n" * 1000)))
    assert_refused(code, lines, "a name of 1000 bytes")
    assert list(tmp_path.iterdir()) == []


def test_a_bool_is_not_a_number(capsys, tmp_path):
    code, lines = run(capsys, "simulate", "--set", "phantom.voxel_size_mm=true", "--out", str(tmp_path / "ds"))
    assert_refused(code, lines, "phantom.voxel_size_mm")
    assert list(tmp_path.iterdir()) == []


def test_a_newline_in_a_set_value_is_refused_not_cut(capsys, tmp_path):
    code, lines = run(capsys, "simulate", "--set", "description=first line\nsecond line", "--out", str(tmp_path / "ds"))
    assert_refused(code, lines, "control character")


@pytest.mark.parametrize("depth", [400, 100_000])
def test_deep_nesting_is_one_line_not_a_recursion_traceback(capsys, tmp_path, depth):
    deep = "[" * depth + "]" * depth
    scenario = tmp_path / "deep.toml"
    scenario.write_text(f"name = 'deep'\nextra = {deep}\n")
    code, lines = run(capsys, "simulate", str(scenario), "--out", str(tmp_path / "ds"))
    assert_refused(code, lines, "nested deeper than")
    code, lines = run(capsys, "simulate", "--set", f"seed={deep}", "--out", str(tmp_path / "ds"))
    assert_refused(code, lines, "nested deeper than")


def test_a_directory_given_as_the_scenario_says_so(capsys, tmp_path):
    code, lines = run(capsys, "simulate", str(tmp_path), "--out", str(tmp_path / "ds"))
    assert_refused(code, lines, "is a directory")


def test_a_huge_value_is_shortened_in_the_error_line(capsys, tmp_path):
    huge = "x" * 5_000_000
    code, lines = run(capsys, "simulate", "--set", f"phantom.anatomy={huge}", "--out", str(tmp_path / "ds"))
    assert_refused(code, lines, "phantom.anatomy")
    assert "5000000 characters" in lines[0]
    code, lines = run(capsys, "simulate", "--seed", huge, "--out", str(tmp_path / "ds"))  # click's own message
    assert_refused(code, lines, "--seed")
