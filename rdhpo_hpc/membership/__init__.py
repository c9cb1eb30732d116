"""Failure detection: which ranks are alive.  Two protocols behind one interface (:class:`View`):

* ``swim`` (:mod:`.swim`): probes, indirect probes, suspicion with refutation, piggybacked
  updates; constant bytes and messages per rank whatever the job size;
* ``gossip`` (:mod:`.gossip`): van Renesse heartbeat vectors; O(N) bytes per message.

Selected by ``fault_tolerance.membership``: ``auto`` (the default) is ``gossip`` below
``SWIM_FROM`` ranks — the longest-tested protocol, whose O(N) messages cost nothing at that size
(1.1 kB/s per rank at 100 ranks) — and ``swim`` from there on (8.3 kB/s per rank at 1,000 ranks
with gossip, 0.37 kB/s with swim; docs/bench.md).  Built by :func:`make` for the node's pump thread.
"""

from __future__ import annotations

import random
from typing import Iterable, Optional

from .base import Outgoing, Verdict, View
from .gossip import Membership
from .swim import Swim

KINDS = ("auto", "swim", "gossip")
SWIM_FROM = 64  # ``auto``: swim for jobs of at least this many ranks


def resolve(kind: str, size: int) -> str:
    """The protocol a job of ``size`` ranks runs for the configured ``kind``."""
    if kind == "auto":
        return "swim" if size >= SWIM_FROM else "gossip"
    return kind


__all__ = ["KINDS", "SWIM_FROM", "Membership", "Outgoing", "Swim", "Verdict", "View", "make", "resolve"]


def make(
    kind: str,
    rank: int,
    size: int,
    now: float,
    interval: float,
    fanout: int,
    t_fail: float,
    rng: Optional[random.Random] = None,
    members: Optional[Iterable[int]] = None,
) -> View:
    """A rank's membership of the named protocol (``KINDS``)."""
    kind = resolve(kind, size)
    if kind == "swim":
        return Swim(rank, size, now, interval=interval, fanout=fanout, t_fail=t_fail, rng=rng, members=members)
    if kind == "gossip":
        return Membership(rank, size, now, interval=interval, fanout=fanout, t_fail=t_fail, rng=rng, members=members)
    raise ValueError(f"unknown membership {kind!r}; allowed: {', '.join(KINDS)}")
