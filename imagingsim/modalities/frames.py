"""One frame of a multi-frame acquisition: what a writer needs for one session.

A result object holds its frames along the last axis of its arrays and as per-frame tuples;
the writers put each frame in its own session (:mod:`imagingsim.io.sessions`).
:func:`one_frame` gives the same object reduced to frame ``k``, so the sidecar code written
for many frames writes one, with one-element lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

Result = TypeVar("Result")


def one_frame(
    result: Result,
    k: int,
    *,
    n_frames: int,
    tuples: Sequence[str] = (),
    arrays: Sequence[str] = (),
    array_maps: Sequence[str] = (),
    tuple_maps: Sequence[str] = (),
) -> Result:
    """``result`` (a frozen dataclass) with each named per-frame field reduced to frame ``k``.

    Parameters
    ----------
    result : dataclass instance
        The multi-frame result.
    k : int
        The frame, ``0 <= k < n_frames``.
    n_frames : int, keyword-only
        Number of frames of ``result``.
    tuples, arrays, array_maps, tuple_maps : sequence of str, keyword-only
        Field names: per-frame tuples (kept as the one-element tuple ``(t[k],)``), arrays
        with frames on the last axis (``a[..., k]``, a view), and dicts of either kind.
        Fields not named are shared by every frame (geometry, attenuation, metadata).

    Raises
    ------
    IndexError
        ``k`` is not a frame of ``result``.
    """
    if not 0 <= k < n_frames:
        raise IndexError(f"frame {k} out of range 0..{n_frames - 1}")
    changes = {name: (getattr(result, name)[k],) for name in tuples}
    changes.update({name: getattr(result, name)[..., k] for name in arrays})
    changes.update({name: {key: a[..., k] for key, a in getattr(result, name).items()} for name in array_maps})
    changes.update({name: {key: (t[k],) for key, t in getattr(result, name).items()} for name in tuple_maps})
    return replace(result, **changes)
