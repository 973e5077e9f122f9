"""Kernel modules reach array libraries only through imagingsim.backend (checked statically)."""

from __future__ import annotations

import ast
from pathlib import Path

import imagingsim

PACKAGE = Path(imagingsim.__file__).parent
FORBIDDEN = {"numpy", "scipy", "cupy", "cupyx", "skimage"}
# Host-side code may import them: the backend itself, file I/O, dataset assembly, the CLI,
# reporting, cohort sampling (host scalars drawn from numpy generators), benchmark scoring (host copies), and each modality's writers (``modalities/<name>/bids.py``, ``fusion.py`` and the MRI
# raw-data writer ``ismrmrd_io.py``), which only format host copies of finished arrays, and each
# modality's teaching-report section (``report.py``), which measures and plots written files.
ALLOWED = ("backend/", "io/", "dataset/", "report/", "cohort/", "bench/", "cli.py")
HOST_MODULES_OF_A_MODALITY = ("bids.py", "fusion.py", "ismrmrd_io.py", "report.py")


def _is_host_side(rel: str) -> bool:
    parts = rel.split("/")
    in_modality = len(parts) == 3 and parts[0] == "modalities"
    return rel.startswith(ALLOWED) or (in_modality and parts[2] in HOST_MODULES_OF_A_MODALITY)


def _kernel_modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if not _is_host_side(rel):
            yield rel, path


def _imported_roots(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module.split(".")[0]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield node.lineno, arg.value.split(".")[0]


def test_kernel_modules_do_not_import_array_libraries():
    leaks = [
        f"{rel}:{line} imports {root}"
        for rel, path in _kernel_modules()
        for line, root in _imported_roots(ast.parse(path.read_text(encoding="utf-8")))
        if root in FORBIDDEN
    ]
    assert not leaks, "route these through imagingsim.backend: " + "; ".join(leaks)


def test_the_check_sees_kernel_modules():
    # Guards against the test passing vacuously (e.g. a wrong package path).
    names = {rel for rel, _ in _kernel_modules()}
    assert "grid.py" in names and "scenario.py" in names
    assert "modalities/pet/acquire.py" in names and "modalities/pet/bids.py" not in names
    assert not any(n.startswith("backend/") for n in names)


def test_the_check_catches_a_leak():
    tree = ast.parse("import numpy as np\nfrom scipy.ndimage import gaussian_filter\n__import__('cupy')\n")
    assert [root for _, root in _imported_roots(tree)] == ["numpy", "scipy", "cupy"]


#: Plotting: the report, the benchmark's leaderboard, and each modality's report section.
PLOTTING_ALLOWED = ("report/", "bench/")


def test_only_reports_plot():
    # Physics and acquisition never import matplotlib (ARCHITECTURE: plotting stays in the
    # consumers); a modality's section of the teaching report (modalities/<m>/report.py) is
    # the one place a modality draws, so that a new modality brings its own figures.
    plotting = [
        f"{rel}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for rel in [path.relative_to(PACKAGE).as_posix()]
        if not (rel.startswith(PLOTTING_ALLOWED) or (rel.startswith("modalities/") and rel.endswith("/report.py")))
        for line, root in _imported_roots(ast.parse(path.read_text(encoding="utf-8")))
        if root == "matplotlib"
    ]
    assert not plotting, "matplotlib outside the report and benchmark layers: " + "; ".join(plotting)
