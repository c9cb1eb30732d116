"""Is rank 0 the bottleneck?  The coordinator loop's CPU share of its clock, per window.

Called by the coordinator loop after every turn (:meth:`LoadMeter.turn`).  Over each ``WINDOW``
seconds of the loop's clock it compares the CPU time of the loop's thread with the time that
passed.  The first window at or above ``SATURATED`` is reported, once per run: the loop prints a
warning and records a ``coordinator-saturated`` event.  A saturated loop answers reports and
hands out trials late, so workers idle and more workers do not make the study faster (measured
with ``python -m bench.simulate``: 0.07-0.15 ms of CPU per trial, 7,000-10,000 trials/s on this
project's 2-core test machine).  Pure apart from reading the CPU clock it is given.
"""

from __future__ import annotations

import time
from typing import Callable, NamedTuple, Optional


class Saturation(NamedTuple):
    """A window in which the loop was busy ``share`` of the time and ended ``trials_per_s``."""

    share: float
    seconds: float
    trials_per_s: float

    def message(self) -> str:
        return (
            f"rank 0 is saturated: its loop used {self.share:.0%} of a CPU core over the last "
            f"{self.seconds:.0f} s ({self.trials_per_s:,.0f} trials ended per second), so workers wait "
            "for its answers; longer trials (e.g. a larger min_budget), fewer workers or a cheaper "
            "optimizer keep them busy"
        )


class LoadMeter:
    WINDOW = 30.0  # seconds of the loop's clock per measurement
    SATURATED = 0.9  # CPU share from which the loop is the bottleneck

    def __init__(self, now: float, done: int, cpu: Callable[[], float] = time.thread_time) -> None:
        self.cpu = cpu
        self.reported = False
        self._start = (now, cpu(), done)

    def turn(self, now: float, done: int) -> Optional[Saturation]:
        """After a turn, at time ``now`` with ``done`` trials ended: the saturated window to
        report (once), else None."""
        t0, c0, d0 = self._start
        if self.reported or now - t0 < self.WINDOW:
            return None
        cpu = self.cpu()
        self._start = (now, cpu, done)
        share = (cpu - c0) / (now - t0)
        if share < self.SATURATED:
            return None
        self.reported = True
        return Saturation(share, now - t0, (done - d0) / (now - t0))
