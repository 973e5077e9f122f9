"""A modality from another package, added without a line changed in imagingsim.

``tests/example_modality`` is a separate distribution that registers the modality ``planar``
through the entry-point group ``imagingsim.modalities``. Installed into a temporary site
directory, it is listed, validated, simulated, written (with its truth patterns documented
and its folder BIDS-ignored), summarised, and passes the same contract test as the built-ins.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imagingsim.modalities.registry import BUILTIN

EXAMPLE = Path(__file__).resolve().parents[1] / "example_modality"
TESTS = Path(__file__).resolve().parents[1]
SMALL = ["--set", "phantom.voxel_size_mm=2.0", "--set", "schedule.times_h=[24.0]"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    # Built from a copy: pip leaves build folders next to the sources it builds.
    source = tmp_path_factory.mktemp("src") / "example_modality"
    shutil.copytree(EXAMPLE, source)
    target = tmp_path_factory.mktemp("site")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    if install.returncode != 0 and "Could not find a version" in install.stderr:
        pytest.skip("no package index reachable to fetch the build backend (setuptools)")
    assert install.returncode == 0, install.stderr[-2000:]
    return target


def _run(args, site, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site) if site else "",
                                                                      os.environ.get("PYTHONPATH", "")]))}
    return subprocess.run([sys.executable, "-m", "imagingsim", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600, check=False)


def test_unknown_until_installed(tmp_path):
    result = _run(["simulate", "--modalities", "planar", "--out", "ds", *SMALL], None, tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: modalities.enabled: unknown modality 'planar'; allowed: pet, mri, nirf, spect, ct")
    assert not (tmp_path / "ds").exists()


def test_listed_with_its_origin(site, tmp_path):
    result = _run(["modalities"], site, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(" ")[0] for line in lines] == [*BUILTIN, "planar"]  # the built-ins first, in their order
    assert lines[0].startswith("pet (built-in): ")
    assert lines[-1].startswith("planar (imagingsim-example-planar): Planar carrier projection")


def test_bad_settings_refused_naming_the_field(site, tmp_path):
    result = _run(["simulate", "--modalities", "planar", "--out", "ds", *SMALL,
                   "--set", "modalities.planar.noise_relative_sd=2"], site, tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: modalities.planar.noise_relative_sd: ") and "less than or equal to 1" in line


def test_simulated_and_written_end_to_end(site, tmp_path):
    result = _run(["simulate", "--modalities", "pet,planar", "--out", "ds", "--backend", "numpy", *SMALL], site,
                  tmp_path)
    assert result.returncode == 0, result.stderr
    ds = tmp_path / "ds"
    assert (ds / "sub-01" / "ses-24h" / "planar" / "sub-01_ses-24h_planar.nii.gz").is_file()
    assert (ds / "derivatives" / "truth" / "sub-01" / "ses-24h" / "planar" / "sub-01_ses-24h_desc-projected_conc.nii.gz").is_file()
    assert "**/planar" in (ds / ".bidsignore").read_text().splitlines()
    assert "sub-<id>/ses-<time>/planar/sub-<id>_ses-<time>_desc-projected_conc" in (ds / "derivatives" / "truth" / "README").read_text()
    assert "  planar: peak projected carrier ug/mm^2 [" in result.stdout
    assert "  PET " in result.stdout  # the built-ins run beside it
    assert "estimated peak memory" in result.stderr  # a plugin without a cost model gets the default


def test_passes_the_contract_test(site):
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(TESTS / "modalities" / "test_contract.py"),
         "-k", "planar"],
        capture_output=True, text=True, cwd=TESTS.parent, env=env, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "4 passed" in result.stdout, result.stdout[-500:]  # settings, costs, numpy, strict (cupy skipped)
