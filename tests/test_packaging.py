"""The wheel ships the scenario files: a non-editable install finds them by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_non_editable_install_ships_builtin_scenarios(tmp_path):
    if not (REPO / "pyproject.toml").exists():
        pytest.skip("not running from a source checkout")
    target = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(REPO)],
        check=False, capture_output=True, text=True, timeout=600,
    )
    if build.returncode != 0 and "Could not find a version" in build.stderr:
        pytest.skip("no package index reachable to fetch the build backend")
    assert build.returncode == 0, build.stderr[-2000:]
    shipped = sorted(p.name for p in (target / "imagingsim" / "phantoms").glob("*.toml"))
    assert "mouse_peg_liposome.toml" in shipped
    # Run from an unrelated directory so the source tree cannot be imported by accident.
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = subprocess.run(
        [sys.executable, "-c", ("import imagingsim, imagingsim.scenario as s; print(imagingsim.__file__); "
                                "print(s.builtin_names()); print(imagingsim.load_scenario('mouse_peg_liposome').name)")],
        check=False, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    lines = probe.stdout.splitlines()
    assert lines[0].startswith(str(target))
    assert "mouse_peg_liposome" in lines[1] and lines[2] == "mouse_peg_liposome"
    licences = list(target.glob("imagingsim-*.dist-info/licenses/LICENSE"))
    assert licences and "BSD 3-Clause" in licences[0].read_text()  # the licence travels with the wheel


def test_the_scenario_files_are_a_subpackage_found_automatically():
    """imagingsim/phantoms links to the fixed top-level phantoms/, so setuptools' package finder
    (no hand-kept list in pyproject.toml) ships them as imagingsim.phantoms."""
    from setuptools import find_packages

    link = REPO / "imagingsim" / "phantoms"
    if not link.is_symlink():
        pytest.skip("not a source checkout with the phantoms link")
    assert link.resolve() == (REPO / "phantoms").resolve()
    found = find_packages(str(REPO), include=["imagingsim*"])
    assert {"imagingsim.phantoms", "imagingsim.modalities.pet", "imagingsim.dataset"} <= set(found)


def test_ci_floors_pin_exactly_the_declared_minimum_versions():
    """.ci/floors.txt (installed and tested by .ci/run) pins each runtime dependency at its floor."""
    import re
    import tomllib

    if not (REPO / ".ci" / "floors.txt").exists():
        pytest.skip("not running from a source checkout")
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = dict(re.fullmatch(r"([A-Za-z0-9_.\-]+)>=([0-9.]+)", d).groups() for d in declared)
    pinned = dict(line.split("==") for line in (REPO / ".ci" / "floors.txt").read_text().splitlines()
                  if line.strip() and not line.startswith("#"))

    def release(version):
        return tuple(int(p) for p in version.split("."))

    assert set(pinned) == set(floors)
    for name, floor in floors.items():
        assert release(pinned[name])[: len(release(floor))] == release(floor), (name, floor, pinned[name])


def test_installed_files_cite_primary_sources_not_the_project_notes():
    """What users install (the package, the scenarios, the README) cites the literature, never
    the development notes outside the repository."""
    paths = [*(REPO / "imagingsim").rglob("*.py"), *(REPO / "imagingsim").rglob("*.toml"),
             *(REPO / "phantoms").glob("*.toml"), REPO / "README.md"]
    offenders = [str(p.relative_to(REPO)) for p in paths
                 if "PHYSICS.md" in p.read_text(encoding="utf-8") or "../shared" in p.read_text(encoding="utf-8")]
    assert offenders == []
