"""In-process transport: every rank is a thread of one process (tests and serial runs).

A :class:`Hub` holds one inbox per rank and a fault plan: drop all messages between chosen
pairs, delay messages, and kill (reported, like ULFM) or stop (silent, like SIGSTOP) a rank.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Optional

from .base import Transport
from .delay import DelayLine


class Hub:
    """The shared "network" of an in-process job."""

    def __init__(self, size: int, clock: Callable[[], float] = time.monotonic, ulfm: bool = True) -> None:
        self.size = size
        self.clock = clock
        self.ulfm = ulfm
        self.lock = threading.Lock()
        self.inboxes: list[collections.deque] = [collections.deque() for _ in range(size)]
        self.delayed: DelayLine[tuple[int, int, Any]] = DelayLine()
        self.cut: set[frozenset] = set()
        self.delay_s: dict[frozenset, float] = {}
        self.killed: set[int] = set()
        self.stopped: set[int] = set()
        self.stats: collections.Counter[str] = collections.Counter()
        self._shrink = threading.Condition()
        self._shrink_arrived: dict[frozenset, set] = {}

    # -- fault injection ----------------------------------------------------------------------
    def cut_link(self, a: int, b: int) -> None:
        """Drop every message between ranks a and b (both directions)."""
        with self.lock:
            self.cut.add(frozenset((a, b)))

    def heal_link(self, a: int, b: int) -> None:
        with self.lock:
            self.cut.discard(frozenset((a, b)))

    def delay_link(self, a: int, b: int, seconds: float) -> None:
        with self.lock:
            self.delay_s[frozenset((a, b))] = seconds

    def kill(self, rank: int) -> None:
        """The rank is gone; with ``ulfm`` its peers are told (like MPI_ERR_PROC_FAILED)."""
        with self.lock:
            self.killed.add(rank)
            self.inboxes[rank].clear()

    def stop(self, rank: int) -> None:
        """The rank hangs: it neither sends nor receives, and nobody is told."""
        with self.lock:
            self.stopped.add(rank)

    def resume(self, rank: int) -> None:
        with self.lock:
            self.stopped.discard(rank)

    def shrink(self, rank: int, exclude: set, timeout: float, method: str = "") -> dict:
        """Twin of ULFM's shrink + agree: a barrier over the ranks not excluded, bounded."""
        t0 = time.perf_counter()
        key = frozenset(exclude)
        need = set(range(self.size)) - key
        with self._shrink:
            self._shrink_arrived.setdefault(key, set()).add(rank)
            self._shrink.notify_all()
            ok = self._shrink.wait_for(lambda: self._shrink_arrived[key] >= need, timeout)
        out = {
            "method": method or ("shrink" if key <= self.killed else "create_group"),
            "size": len(need),
            "duration": time.perf_counter() - t0,
        }
        if not ok:
            out["error"] = f"timed out after {timeout}s"
        return out

    def transport(self, rank: int) -> "InProcTransport":
        return InProcTransport(self, rank)

    # -- delivery -------------------------------------------------------------------------------
    def _deliver(self, src: int, dest: int, msg: Any) -> None:
        with self.lock:
            if {src, dest} & (self.killed | self.stopped) or frozenset((src, dest)) in self.cut:
                self.stats["dropped"] += 1
                return
            delay = self.delay_s.get(frozenset((src, dest)), 0.0)
            if delay > 0:
                self.delayed.hold(self.clock() + delay, (src, dest, msg))
            else:
                self.inboxes[dest].append((src, msg))
            self.stats["sent"] += 1

    def _release_delayed(self) -> None:
        now = self.clock()
        with self.lock:
            for src, dest, msg in self.delayed.release(now):
                if dest not in self.killed:
                    self.inboxes[dest].append((src, msg))


class InProcTransport(Transport):
    """One rank's end of a :class:`Hub`."""

    def __init__(self, hub: Hub, rank: int) -> None:
        self.hub, self.rank, self.size = hub, rank, hub.size
        self.reports_failures = hub.ulfm

    def isend(self, dest: int, msg: Any) -> None:
        if self.rank in self.hub.stopped or self.rank in self.hub.killed:
            return
        self.hub._deliver(self.rank, dest, msg)

    def poll(self) -> Optional[tuple[int, Any]]:
        if self.rank in self.hub.stopped or self.rank in self.hub.killed:
            return None
        self.hub._release_delayed()
        try:
            return self.hub.inboxes[self.rank].popleft()
        except IndexError:
            return None

    def failed(self) -> set[int]:
        return set(self.hub.killed) if self.hub.ulfm else set()

    def shrink_method(self, exclude: set) -> str:
        return "shrink" if set(exclude) <= self.hub.killed else "create_group"

    def shrink(self, exclude: set, timeout: float, method: str = "") -> Optional[dict]:
        return self.hub.shrink(self.rank, set(exclude), timeout, method) if self.hub.ulfm else None

    def host(self) -> str:
        return "inproc"
