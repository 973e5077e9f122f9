"""Deterministic BIDS sidecars and tables: canonical JSON, TSV, and the fields every dataset shares.

Outputs are byte-for-byte reproducible: JSON has sorted keys, two-space indentation and a
trailing newline; floats are rendered with Python's shortest round-trip ``repr``; non-finite
floats become ``null`` (JSON) or ``n/a`` (TSV). Every file goes through :mod:`imagingsim.io.atomic`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from imagingsim.io.atomic import atomic_write_text
from imagingsim.io.outdir import GENERATOR

BIDS_VERSION = "1.9.0"
LICENSE = "CC0-1.0"
TIME_REFERENCE = (
    "t = 0 of the scenario schedule (the first injection); every time in this dataset is counted "
    "from it, and each agent's own injection time is its InjectionTime_h"
)


# --- deterministic text ---------------------------------------------------------------


def plain(obj: Any) -> Any:
    """Convert ``obj`` into JSON-ready builtins; non-finite floats become None."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [plain(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "model_dump"):
        return plain(obj.model_dump(mode="json"))
    return obj


def json_text(obj: Any) -> str:
    """Canonical JSON: sorted keys, 2-space indent, UTF-8, trailing newline, no NaN."""
    return json.dumps(plain(obj), sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as canonical JSON (:func:`json_text`) atomically; parents are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json_text(obj))


def format_value(value: Any) -> str:
    """One TSV cell: ``n/a`` for None/NaN/inf, shortest round-trip ``repr`` for floats."""
    if value is None:
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return repr(value) if math.isfinite(value) else "n/a"
    text = str(value)
    if "\t" in text or "\n" in text:
        raise ValueError(f"TSV cell contains a tab or newline: {text!r}")
    return text


def write_tsv(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a tab-separated table with a header row and ``\\n`` line endings, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(columns)]
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"{path.name}: row has {len(row)} cells for {len(columns)} columns")
        lines.append("\t".join(format_value(v) for v in row))
    return atomic_write_text(path, "\n".join(lines) + "\n")


def version() -> str:
    """The installed imagingsim version ("unknown" from a bare source tree)."""
    try:
        return metadata.version("imagingsim")
    except metadata.PackageNotFoundError:  # running from a bare source tree
        return "unknown"


def generated_by(scenario, pipeline: str | None = None) -> list[dict[str, Any]]:
    """BIDS ``GeneratedBy`` of a dataset written from ``scenario``.

    Parameters
    ----------
    scenario : Scenario
        Its name and seed are recorded.
    pipeline : str, optional
        For a derivative: its part, e.g. ``"truth"``, named ``imagingsim-truth``. pybids takes
        a derivative's scope from this name, so each derivative needs its own to be queried
        apart (``BIDSLayout(..., derivatives=True).get(scope="imagingsim-truth")``). The raw
        dataset is plain ``imagingsim`` (how ``--overwrite`` recognises a dataset it may replace).
    """
    return [
        {
            "Name": GENERATOR if pipeline is None else f"{GENERATOR}-{pipeline}",
            "Version": version(),
            "Description": f"Synthetic multimodal imaging simulator; scenario {scenario.name!r}, seed {scenario.seed}.",
        }
    ]
