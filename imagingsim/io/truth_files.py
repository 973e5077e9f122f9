"""File patterns of the ground-truth derivative: the :class:`TruthFile` type.

The core's patterns live in :mod:`imagingsim.dataset.layout`, each modality's in its ``truth``
module (declared as ``Modality.truth_files``). Every file under ``derivatives/truth/sub-<id>/``
must match exactly one pattern of :func:`imagingsim.dataset.layout.truth_files` (a test checks
it), and the derivative's README is written from that table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class TruthFile:
    """One documented file pattern of the ground-truth derivative.

    ``stem`` is the path under ``derivatives/truth/`` without extension, with placeholders
    ``<id>`` (subject), ``<time>`` (a session label, :func:`~imagingsim.io.sessions.session_label`),
    ``<agent>`` (agent name), ``<property>`` (a ``PROPERTY_DESC`` value) and ``<label>`` (any
    other entity value); each placeholder stands for letters and digits.
    """

    stem: str
    extensions: tuple[str, ...]
    meaning: str
    units: str

    def regex(self) -> re.Pattern[str]:
        """A regular expression matching every path (relative, ``/``-separated) of this pattern."""
        placeholders = ("<id>", "<time>", "<agent>", "<property>", "<label>")
        parts = re.split(f"({'|'.join(placeholders)})", self.stem)
        body = "".join("[A-Za-z0-9]+" if part in placeholders else re.escape(part) for part in parts)
        return re.compile(f"{body}(?:{'|'.join(re.escape(e) for e in self.extensions)})")

    def display(self) -> str:
        """``stem`` with its extensions, as listed in the README."""
        return f"{self.stem}  ({', '.join(self.extensions)})"
