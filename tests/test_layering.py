"""The two lowest layers import only below themselves (checked statically).

``imagingsim.data`` (tables and their loaders) imports nothing of imagingsim but itself;
``imagingsim.physics`` (kernels shared by several modalities) only the backend, the data
tables and the grid.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import imagingsim

PACKAGE = Path(imagingsim.__file__).parent
ALLOWED = {
    "data": ("imagingsim.data",),
    "physics": ("imagingsim.backend", "imagingsim.data", "imagingsim.grid", "imagingsim.physics"),
}


def _imagingsim_imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError(f"{path.name}:{node.lineno}: relative import")
            names = [node.module or ""]
        else:
            continue
        for name in names:
            if name == "imagingsim" or name.startswith("imagingsim."):
                yield node.lineno, name


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_below_itself(layer):
    allowed = ALLOWED[layer]
    paths = sorted((PACKAGE / layer).glob("*.py"))
    assert len(paths) > 1
    leaks = [
        f"{layer}/{path.name}:{line} imports {name}"
        for path in paths
        for line, name in _imagingsim_imports(path)
        if not any(name == a or name.startswith(a + ".") for a in allowed)
    ]
    assert not leaks, "; ".join(leaks)
