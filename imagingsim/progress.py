"""Progress of the long loops (solver steps, sessions, frames, views), for whoever listens.

Kernels call :func:`report` as they go; it costs nothing when no one listens. The CLI listens
(:func:`listening`) and draws a bar with percentage and ETA. A driver with several steps
gives each a share of the stage with :func:`part`, so nested loops fill one bar from 0 to 1
instead of restarting it. Context variables keep concurrent simulations (threads, Dask
tasks) from reporting into each other's bars.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

__all__ = ["listening", "part", "report"]

_listener: ContextVar[Callable[[float], None] | None] = ContextVar("imagingsim_progress_listener", default=None)
_span: ContextVar[tuple[float, float]] = ContextVar("imagingsim_progress_span", default=(0.0, 1.0))


def report(done: float, total: float) -> None:
    """Say that ``done`` of ``total`` units of the current part are finished."""
    listener = _listener.get()
    if listener is None or total <= 0:
        return
    low, high = _span.get()
    listener(low + (high - low) * min(max(done / total, 0.0), 1.0))


@contextlib.contextmanager
def part(index: int, count: int) -> Iterator[None]:
    """Narrow reports inside the block to the ``index``-th of ``count`` equal shares of the current part."""
    low, high = _span.get()
    width = (high - low) / max(count, 1)
    token = _span.set((low + width * index, low + width * (index + 1)))
    try:
        yield
    finally:
        _span.reset(token)


@contextlib.contextmanager
def listening(callback: Callable[[float], None]) -> Iterator[None]:
    """Send every report inside the block to ``callback(fraction_done)`` (0 to 1 over the block)."""
    listener_token = _listener.set(callback)
    span_token = _span.set((0.0, 1.0))
    try:
        yield
    finally:
        _span.reset(span_token)
        _listener.reset(listener_token)
