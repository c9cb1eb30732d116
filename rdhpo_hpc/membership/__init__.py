"""Failure detection: which ranks are alive.  Two protocols behind one interface (:class:`View`):

* ``swim`` (:mod:`.swim`): probes, indirect probes, suspicion with refutation, piggybacked
  updates; constant bytes and messages per rank whatever the job size;
* ``gossip`` (:mod:`.gossip`): van Renesse heartbeat vectors; O(N) bytes per message.

Selected by ``fault_tolerance.membership``; built by :func:`make` for the node's pump thread.
"""

from __future__ import annotations

import random
from typing import Iterable, Optional

from .base import Outgoing, Verdict, View
from .gossip import Membership
from .swim import Swim

KINDS = ("swim", "gossip")

__all__ = ["KINDS", "Membership", "Outgoing", "Swim", "Verdict", "View", "make"]


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
    if kind == "swim":
        return Swim(rank, size, now, interval=interval, fanout=fanout, t_fail=t_fail, rng=rng, members=members)
    if kind == "gossip":
        return Membership(rank, size, now, interval=interval, fanout=fanout, t_fail=t_fail, rng=rng, members=members)
    raise ValueError(f"unknown membership {kind!r}; allowed: {', '.join(KINDS)}")
