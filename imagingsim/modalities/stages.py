"""Wall-clock timing of the consecutive stages of an acquisition (reported in ``timings_s``)."""

from __future__ import annotations

import time


class StageTimer:
    """``lap(name)`` adds the wall time since the previous lap (or creation) to ``seconds[name]``.

    A name lapped more than once (a stage inside a loop) accumulates.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._clock
        self._clock = now

    def add(self, other: StageTimer) -> None:
        """Add ``other``'s seconds per name (pieces that ran on other threads: their parts
        then sum to more than the wall time they took together)."""
        for name, seconds in other.seconds.items():
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self._clock = time.perf_counter()
