"""What the node needs from a membership protocol (:class:`View`), and the verdict it publishes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Protocol

Outgoing = list[tuple[int, Any]]  # (destination rank, message body) pairs for the node to send


@dataclass(frozen=True)
class Verdict:
    """A new death verdict: ``latency`` = seconds since the member was last known alive here."""

    rank: int
    cause: str
    latency: float


class View(Protocol):
    """One rank's membership, driven by :class:`rdhpo_hpc.node.Node`'s pump thread: ``tick`` on its
    timer and ``receive`` on every membership message (their outputs are sent as ``Gossip(body)``),
    ``check`` after both (verdicts become ``PeerDown`` events), ``evidence`` on ULFM failures.
    Pure: the clock (``now``) and the RNG are injected, nothing does I/O."""

    def alive(self) -> list[int]: ...

    def is_alive(self, rank: int) -> bool: ...

    def silence(self, rank: int, now: float) -> float: ...

    def next_due(self) -> float: ...

    def tick(self, now: float) -> Outgoing: ...

    def receive(self, src: int, body: Any, now: float) -> Outgoing: ...

    def check(self, now: float) -> list[Verdict]: ...

    def evidence(self, rank: int, now: float, cause: str = "mpi-failure") -> Optional[Verdict]: ...
