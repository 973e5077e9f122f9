"""Settings shared by the modalities: preset values merged with a scenario's, and schedule checks."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any


def merged_preset(spec, preset: dict[str, Any], names: Iterable[str], overridable: Iterable[str], *,
                  table: str) -> dict[str, Any]:
    """The value of each of ``names``: the scenario's where it sets one, else the preset's.

    Parameters
    ----------
    spec : pydantic model
        The scenario's modality section; an unset (None) field takes the preset's value.
    preset : dict
        One preset table of a data file.
    names : iterable of str
        Fields wanted.
    overridable : iterable of str
        Fields the scenario may set (others always come from the preset).
    table : str
        The preset's location for the error message, e.g. ``"data/scanners.toml [pet.clinical]"``.

    Raises
    ------
    ValueError
        One line when the preset lacks a field the scenario does not set.
    """
    allowed = set(overridable)
    values: dict[str, Any] = {}
    for name in names:
        override = getattr(spec, name, None) if name in allowed else None
        if override is not None:
            values[name] = override
        elif name in preset:
            values[name] = preset[name]
        else:
            raise ValueError(f"{table} has no {name!r}")
    return values


def check_acquisitions_fit(times_h: Iterable[float], injection_h: float, duration_s: float, field: str,
                           what: str) -> None:
    """Refuse acquisitions (one per schedule time from the injection on) that would overlap.

    Raises
    ------
    ValueError
        One line naming ``field``: the duration exceeds the closest spacing of the times.
    """
    times_s = [3600.0 * t for t in times_h if t >= injection_h]
    gaps = [b - a for a, b in itertools.pairwise(times_s)]
    if gaps and duration_s > min(gaps):
        raise ValueError(f"{field}: {duration_s:g} s {what} would overlap; the schedule times are as close as "
                         f"{min(gaps):g} s")


__all__ = ["check_acquisitions_fit", "merged_preset"]
