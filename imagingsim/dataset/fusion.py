"""The fusion derivative's own files: its description and a README from the modalities that fused.

The fused images themselves are written by the functional modalities
(:meth:`imagingsim.modalities.base.Modality.fuse`); this module only describes the folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from imagingsim.dataset.layout import bidsignore_patterns
from imagingsim.io.atomic import atomic_write_text
from imagingsim.io.overlay import FUSION_PIPELINE
from imagingsim.io.sidecars import BIDS_VERSION, LICENSE, generated_by, write_json

_HEAD = """\
# imagingsim image fusion

Functional images resampled onto an anatomical grid, and colour overlays, for each pair of
modalities the scenario acquired ({pairs}). A BIDS derivative of the raw dataset (../../).

"""
_TAIL = """
The `_overlay.png` quick-looks (and their JSON) are imagingsim conventions, not BIDS: they are
listed in this derivative's `.bidsignore`. Every NIfTI here is a plain float image.
"""


def write_fusion_description(stage: Path, scenario, pairs: Sequence[str], paragraphs: Sequence[str]) -> list[Path]:
    """Write ``derivatives/fusion/dataset_description.json``, ``README`` and ``.bidsignore``.

    Parameters
    ----------
    stage : Path
        Root of the dataset being built.
    scenario : Scenario
        Its name and seed (GeneratedBy).
    pairs : sequence of str
        The fused pairs, e.g. ``"X on Y"``, in the order the README lists them.
    paragraphs : sequence of str
        Each fusing modality's README paragraph (``Modality.fusion_readme``).
    """
    root = Path(stage) / "derivatives" / FUSION_PIPELINE
    root.mkdir(parents=True, exist_ok=True)
    description = write_json(root / "dataset_description.json", {
        "Name": f"imagingsim image fusion: {scenario.name}",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": generated_by(scenario, FUSION_PIPELINE),
        "DatasetLinks": {"raw": "../../"},
        "License": LICENSE,
    })
    readme = _HEAD.format(pairs=", ".join(pairs)) + "\n".join(paragraphs) + _TAIL
    # The quick-look pictures are not BIDS files, nor the folders of modalities BIDS does not
    # define: the validator is told to pass them by, as in the raw dataset.
    patterns = ("**/*_overlay.png", "**/*_overlay.json", *bidsignore_patterns())
    ignore = atomic_write_text(root / ".bidsignore", "".join(f"{p}\n" for p in patterns))
    return [description, atomic_write_text(root / "README", readme), ignore]
