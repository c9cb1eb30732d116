"""Gossip-style failure detection (van Renesse, Minsky & Hayden 1998).  Pure: clock and RNG injected.

Every rank keeps a vector of heartbeat counters, one per rank.  Every ``interval`` seconds it
bumps its own counter and sends the whole vector to ``fanout`` random live peers; a receiver
merges by element-wise max.  A member whose counter has not grown for ``t_fail`` seconds is
declared dead; a dead member stays fenced for good (ranks are never re-used in an MPI job), so a
late heartbeat from a rank that was only hung never brings it back.  Outside evidence (ULFM's
MPI_ERR_PROC_FAILED) declares a member dead at once.

Each message carries the whole vector: O(N) bytes, ``fanout / interval`` messages per rank and
second.  :mod:`rdhpo_hpc.membership.swim` keeps the bytes constant.  Driven through the
:class:`~rdhpo_hpc.membership.base.View` interface (``tick`` = ``beat`` when due, ``receive`` =
``merge``); ``due``/``beat``/``merge`` stay for the tests that drive the vector directly.
"""

from __future__ import annotations

import random
from typing import Any, Iterable, Optional, Sequence

from .base import Outgoing, Verdict


class Membership:
    """One rank's view of which ranks are alive."""

    def __init__(
        self,
        rank: int,
        size: int,
        now: float,
        interval: float = 0.5,
        fanout: int = 2,
        t_fail: float = 10.0,
        rng: Optional[random.Random] = None,
        members: Optional[Iterable[int]] = None,
    ) -> None:
        if interval <= 0 or t_fail <= interval or fanout < 1:
            raise ValueError(
                f"need interval > 0, t_fail > interval, fanout >= 1; got "
                f"interval={interval}, t_fail={t_fail}, fanout={fanout}"
            )
        self.rank, self.size = rank, size
        self.interval, self.fanout, self.t_fail = interval, fanout, t_fail
        self.t_cleanup = 2 * t_fail
        self.rng = rng or random.Random(rank)
        self.heartbeats = [0] * size
        self.last_growth = [now] * size
        self.members = set(range(size) if members is None else members)
        self.dead: dict[int, float] = {}  # rank -> time of the verdict
        self.next_beat = now

    # -- queries ----------------------------------------------------------------------------
    def alive(self) -> list[int]:
        return sorted(self.members - set(self.dead))

    def is_alive(self, rank: int) -> bool:
        return rank in self.members and rank not in self.dead

    def silence(self, rank: int, now: float) -> float:
        """Seconds since ``rank``'s counter last grew, as seen here."""
        return now - self.last_growth[rank]

    # -- the View interface (the node's pump) -------------------------------------------------
    def next_due(self) -> float:
        return self.next_beat

    def tick(self, now: float) -> Outgoing:
        """When due: bump our counter and send the vector to ``fanout`` live peers."""
        if not self.due(now):
            return []
        peers = self.beat(now)
        return [(p, list(self.heartbeats)) for p in peers]

    def receive(self, src: int, body: Any, now: float) -> Outgoing:
        """A vector from ``src``: merge it; nothing to answer."""
        if isinstance(body, list) and body:
            self.merge(body, now)
        return []

    # -- the vector itself -----------------------------------------------------------------
    def due(self, now: float) -> bool:
        return now >= self.next_beat

    def beat(self, now: float) -> list[int]:
        """Bump our own counter; return the peers to send the vector to now."""
        self.heartbeats[self.rank] += 1
        self.last_growth[self.rank] = now
        self.next_beat = now + self.interval
        peers = [r for r in self.alive() if r != self.rank]
        return self.rng.sample(peers, min(self.fanout, len(peers)))

    def merge(self, vector: Sequence[int], now: float) -> None:
        """Element-wise max with a received vector; growth restarts a member's timer."""
        for r, hb in enumerate(vector[: self.size]):
            if hb > self.heartbeats[r]:
                self.heartbeats[r] = hb
                if r not in self.dead:
                    self.last_growth[r] = now

    def check(self, now: float) -> list[Verdict]:
        """New verdicts for members silent longer than ``t_fail``."""
        out = []
        for r in self.alive():
            if r != self.rank and now - self.last_growth[r] > self.t_fail:
                out.append(self._declare(r, now, "gossip-timeout"))
        return out

    def evidence(self, rank: int, now: float, cause: str = "mpi-failure") -> Optional[Verdict]:
        """Outside proof that ``rank`` failed (ULFM); None when it was already dead."""
        if rank == self.rank or not self.is_alive(rank):
            return None
        return self._declare(rank, now, cause)

    def _declare(self, rank: int, now: float, cause: str) -> Verdict:
        self.dead[rank] = now
        return Verdict(rank, cause, now - self.last_growth[rank])

    def forgettable(self, now: float) -> list[int]:
        """Dead members whose fence is older than ``t_cleanup`` (kept fenced; only for reporting)."""
        return [r for r, t in self.dead.items() if now - t > self.t_cleanup]
