"""Dispatch policy: how far ahead of need the coordinator hands out work.  Pure.

* **Pipelining** (:class:`Pipeline`): when trials are very short (median of the last 32
  attempts under ``BELOW`` seconds), the scheduler allows it and there are two or more workers,
  each worker is sent up to ``DEPTH`` attempts at once, so it starts the next one without
  waiting a round trip.  Long trials get one attempt at a time (a round trip is then negligible
  and the optimizer sees every result before its next suggestion).
* **Prefetch** (:class:`Prefetch`): an optimizer with slow asks (it declares ``prefetch``) is
  asked ahead while every worker is busy — up to one suggestion per worker — so a wave of
  finishing workers is served without waiting one ask each.  Only with two or more workers:
  with one, the ask/tell order is fixed and a resumed study repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import collections
from typing import Callable, Optional


class Pipeline:
    BELOW = 0.05  # seconds: pipeline while the median recent attempt is shorter
    DEPTH = 4  # attempts per worker at once (running + queued)

    def __init__(self, allowed: bool) -> None:
        self.allowed = allowed
        self.depth = 1  # attempts per worker at once now
        self._durations: collections.deque[float] = collections.deque(maxlen=32)

    def note(self, start: Optional[float], end: Optional[float]) -> None:
        """Per result (worker-side timings): depth = DEPTH while the median is under BELOW."""
        if start is None or end is None or not self.allowed:
            return
        self._durations.append(end - start)
        if len(self._durations) >= 8:
            median = sorted(self._durations)[len(self._durations) // 2]
            self.depth = self.DEPTH if median < self.BELOW else 1


class Prefetch:
    def __init__(self, allowed: bool, workers: int) -> None:
        self.depth = max(workers, 1) if allowed else 0  # suggestions kept ready at most

    def wants(self, ready: int, idle: int, can_create: Callable[[], bool]) -> bool:
        """Ask ahead now: room in ``ready``, no idle worker to serve first, trials left."""
        return ready < self.depth and not idle and can_create()

    def dry(self, ready: int) -> None:
        """The optimizer had nothing more for now: stop asking ahead beyond what is ready."""
        self.depth = ready
