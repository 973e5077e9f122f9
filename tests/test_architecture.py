"""The layers of the package, checked statically: imports only run down, never in a circle, and
the core files name no modality (ARCHITECTURE.md: adding a modality touches none of them).

Every ``import`` is counted, also those inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

import imagingsim
from imagingsim.modalities.registry import BUILTIN

PACKAGE = Path(imagingsim.__file__).parent

#: Bottom to top. A module may import from its own layer and those below, never above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("backend", "progress"),
    ("grid", "data"),
    ("physics", "operators"),
    ("projectors", "recon"),
    ("scenario",),
    ("phantom",),
    ("delivery",),
    ("io",),
    ("modalities",),
    ("dataset",),
    ("pipeline", "resources"),
    ("cohort", "bench", "report"),
    ("cli", "__main__", "__init__", "dependencies"),
)
#: Files and folders of the core, which must work for any set of registered modalities.
MODALITY_FREE = ("pipeline.py", "cli.py", "scenario.py", "dataset/", "io/", "cohort/", "bench/", "report/")
#: The built-in modalities (from the registry, so that adding one needs no edit here).
MODALITIES = tuple(BUILTIN)


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, module: str) -> set[str]:
    """Names of the imagingsim modules (or packages) ``path`` imports, absolute."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name == "imagingsim" or name.startswith("imagingsim.")}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        targets = set()
        for name in _imports(path, module):
            # "from pkg import name" names a module when one exists, else an attribute of pkg.
            while name not in modules and "." in name:
                name = name.rpartition(".")[0]
            # The root package only resolves names lazily (its API table), so it is no dependency.
            if name in modules and name not in (module, "imagingsim"):
                targets.add(name)
        graph[module] = targets
    return graph


def _layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    for index, members in enumerate(LAYERS):
        if top in members:
            return index
    raise AssertionError(f"{module}: not in any layer; add its top-level name to LAYERS")


def _modality_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "modalities" and parts[2] in MODALITIES else None


def test_every_module_has_a_layer():
    for module in _modules():
        _layer(module)


def test_imports_only_run_down_the_layers():
    upward = [
        f"{source} -> {target}"
        for source, targets in _graph().items()
        for target in sorted(targets)
        if _layer(target) > _layer(source) and source != "imagingsim"
    ]
    assert not upward, "imports that run back up the layers: " + "; ".join(upward)


def test_modalities_use_each_other_only_through_the_contract():
    """A modality subpackage imports no other modality's modules (their results come in ctx.inputs)."""
    crossing = [
        f"{source} -> {target}"
        for source, targets in _graph().items()
        for target in sorted(targets)
        if _modality_of(source) and _modality_of(target) and _modality_of(source) != _modality_of(target)
    ]
    assert not crossing, "; ".join(crossing)


def test_no_import_cycles():
    graph = _graph()
    graph["imagingsim"] = set()  # the lazy API table (names as strings) is not an import
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles[:5])


def _words(path: Path) -> list[tuple[int, str]]:
    """(line, word) of every identifier part, string and comment word of a source file."""
    words = []
    for token in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
        if token.type in (tokenize.NAME, tokenize.STRING, tokenize.COMMENT):
            # "BIDS-PET" is the name of a part of the BIDS standard, which the core may cite.
            text = token.string.replace("BIDS-PET", "BIDS")
            words += [(token.start[0], w.lower()) for w in re.split(r"[^A-Za-z0-9]+|_", text) if w]
    return words


@pytest.mark.parametrize("place", MODALITY_FREE)
def test_core_files_name_no_modality(place):
    paths = sorted((PACKAGE / place).rglob("*.py")) if place.endswith("/") else [PACKAGE / place]
    assert paths and all(p.is_file() for p in paths), place
    named = [f"{p.relative_to(PACKAGE)}:{line} {word}" for p in paths for line, word in _words(p) if word in MODALITIES]
    assert not named, "core files that name a modality: " + "; ".join(named[:20])


def test_the_checks_can_fail(tmp_path):
    """Guards against passing vacuously: known edges, layers and names are seen."""
    assert _layer("imagingsim.cli") > _layer("imagingsim.modalities.pet.acquire") > _layer("imagingsim.backend._numpy")
    assert "imagingsim.modalities.base" in _graph()["imagingsim.pipeline"]
    assert _modality_of("imagingsim.modalities.spect.acquire") == "spect"
    sample = tmp_path / "sample.py"
    sample.write_text('PET_tracer = "the CT"  # spect\n')
    assert {w for _, w in _words(sample)} & set(MODALITIES) == {"pet", "ct", "spect"}
