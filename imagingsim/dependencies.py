"""Are the installed dependencies the ones imagingsim declares? Checked before any work.

A dependency older than its declared floor fails somewhere deep inside a kernel with a
message that reads like bad input (numpy 1.26 in PET: "Invalid integer data type 'f'").
Checking the versions first turns that into one line about the environment (exit 1), never
an exit 2 that blames the user's scenario.
"""

from __future__ import annotations

import re
from importlib import metadata

__all__ = ["dependency_problems"]

_FLOOR = re.compile(r"^([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][0-9.]*)\s*$")


def _release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string (``2.0.2rc1`` -> ``(2, 0, 2)``)."""
    match = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def dependency_problems(distribution: str = "imagingsim") -> list[str]:
    """One line per runtime dependency that is missing or older than its declared floor.

    Parameters
    ----------
    distribution : str
        The installed distribution whose requirements are checked.

    Returns
    -------
    list of str
        Empty when every ``name>=floor`` requirement without an extra marker is satisfied,
        or when the distribution's metadata cannot be read (a bare source tree).
    """
    try:
        requirements = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return []
    problems = []
    for requirement in requirements:
        match = None if ";" in requirement else _FLOOR.match(requirement)  # extras' needs are theirs
        if match is None:
            continue
        name, floor = match.groups()
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed; imagingsim needs {name}>={floor} (pip install '{name}>={floor}')")
            continue
        if _release(installed) < _release(floor):
            problems.append(f"{name} {installed} is older than the {floor} imagingsim needs "
                            f"(pip install -U '{name}>={floor}')")
    return problems
