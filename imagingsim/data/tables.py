"""The one reader of the package's TOML tables (``imagingsim/data/*.toml``).

Every loader of a data table goes through :func:`read_table`: the file is read and parsed
once per process, and each caller gets its own deep copy, so a caller may change what it
receives (pop a sub-table, add defaults) without touching what the next caller sees.
"""

from __future__ import annotations

import copy
import functools
import tomllib
from importlib import resources
from typing import Any


@functools.cache
def _parsed(name: str) -> dict[str, Any]:
    return tomllib.loads(resources.files("imagingsim.data").joinpath(name).read_text(encoding="utf-8"))


def read_table(name: str) -> dict[str, Any]:
    """The parsed TOML file ``name`` of the ``imagingsim.data`` package.

    Parameters
    ----------
    name : str
        File name inside ``imagingsim/data``, e.g. ``"radionuclides.toml"``.

    Returns
    -------
    dict
        The TOML document as nested dicts and lists; a fresh deep copy on every call (the
        parsed file is cached, the copies are not shared).
    """
    return copy.deepcopy(_parsed(name))


__all__ = ["read_table"]
