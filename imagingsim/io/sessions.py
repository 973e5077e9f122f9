"""BIDS sessions: one ``ses-<label>`` per schedule time of a subject.

A scanner images a subject at 1 h, 24 h and 48 h after injection in separate visits; BIDS
models each visit as a session, so every modality's files of one schedule time share the
folder ``sub-<id>/ses-<label>/`` and the ``ses-<label>`` entity of their names. Files that do
not belong to one time (the phantom's maps, the delivery tables over time) stay at subject
level, as longitudinal derivatives do.

References
----------
BIDS 1.10, "Common principles: Filesystem structure" (the session level and the ``ses``
entity), https://bids-specification.readthedocs.io/en/stable/common-principles.html
"""

from __future__ import annotations


def session_label(time_h: float) -> str:
    """The BIDS session label (letters and digits) of a schedule time in hours.

    The decimal point becomes ``p`` because BIDS labels are alphanumeric.

    >>> [session_label(t) for t in (24.0, 0.5, 1.0, 0.25, 168.0, 0.0)]
    ['24h', '0p5h', '1h', '0p25h', '168h', '0h']
    """
    text = f"{float(time_h):.6f}".rstrip("0").rstrip(".")
    return text.replace(".", "p") + "h"


def session_entity(time_h: float) -> str:
    """``ses-<label>`` of a schedule time: the session folder and file-name entity.

    >>> session_entity(24.0)
    'ses-24h'
    """
    return f"ses-{session_label(time_h)}"
