"""The README's Python example runs as written, and its quick start matches .ci/run."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _readme() -> str:
    return (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", _readme(), flags=re.DOTALL)
    assert blocks, "README has no python example"
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md", "exec"), {})  # noqa: S102 - the README example is the test
    assert "tumour %ID/g:" in capsys.readouterr().out
    assert (tmp_path / "api_dataset" / "dataset_description.json").is_file()


def test_quick_start_has_two_commands_and_ci_runs_the_test_one():
    section = _readme().split("## Quick start", 1)[1]
    commands = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)[0].strip().splitlines()
    assert len(commands) == 2
    assert "imagingsim simulate" in commands[0]
    assert commands[1] in (REPO / ".ci" / "run").read_text(encoding="utf-8")
