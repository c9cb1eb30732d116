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
* **Failures** (:class:`FailurePolicy`): when to give up on a study whose trials fail —
  ``max_failures`` FAILED trials in the study, or by default (no ``max_failures``) the first
  ``FAIL_FAST`` trials of this run all FAILED: a broken objective ends the study in seconds.
"""

from __future__ import annotations

import collections
from typing import Callable, Mapping, Optional


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


class FailurePolicy:
    FAIL_FAST = 5  # default: stop when the first min(FAIL_FAST, max_trials) trials all FAILED

    def __init__(self, max_failures: Optional[int], max_trials: int) -> None:
        self.max_failures = max_failures
        self.fast = min(self.FAIL_FAST, max_trials)
        self._base: Optional[tuple[int, int]] = None  # (FAILED, succeeded) when this run began

    def start(self, counts: Mapping[str, int]) -> None:
        """Called by the coordinator loop once, after any replay (resume, takeover): the default
        rule looks at this run's trials only, so a fixed objective can resume a stopped study."""
        self._base = (counts.get("FAILED", 0), counts.get("COMPLETE", 0) + counts.get("PRUNED", 0))

    def verdict(self, counts: Mapping[str, int]) -> Optional[str]:
        """Called after each turn with the trial counts: why the study must stop now, or None."""
        failed, ok = counts.get("FAILED", 0), counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
        if self.max_failures is not None:
            if failed >= self.max_failures:
                return f"FAILED trials reached max_failures={self.max_failures}"
            return None
        base_failed, base_ok = self._base or (0, 0)
        if ok == base_ok and failed - base_failed >= self.fast:
            return (
                f"the first {failed - base_failed} trials all FAILED (set max_failures to allow more failures"
                f" before the study stops)"
            )
        return None
