"""Test doubles: TrialContext for unit tests of objectives (no coordinator); the coordinator's
node and clock in simulated time (``FakeNode``, ``FakeClock``) for its step-by-step tests."""

from __future__ import annotations

import collections
from typing import Any, List, Optional, Tuple

from rdhpo_hpc.errors import TrialPruned


class FakeCtx:
    """The parts of TrialContext the objective uses; records every report."""

    def __init__(
        self,
        budget: Optional[float] = None,
        prune_at: Optional[int] = None,
        checkpoint_dir: Optional[str] = None,
        checkpoint_from: Optional[str] = None,
        trial_id: int = 7,
    ) -> None:
        self.budget, self.device, self.rank, self.trial_id = budget, "cpu", 0, trial_id
        self.checkpoint_dir, self.checkpoint_from = checkpoint_dir, checkpoint_from
        self.prune_at = prune_at
        self.reports: List[Tuple[int, float, dict]] = []

    def report(self, step: int, value: float, **metrics: float) -> None:
        self.reports.append((step, value, metrics))
        if self.prune_at is not None and step >= self.prune_at:
            raise TrialPruned(f"pruned at {step}")

    @property
    def steps(self) -> List[int]:
        return [s for s, _, _ in self.reports]


# -- the coordinator's node and clock, in simulated time (tests/unit/test_coordinator_steps.py) ----


class FakeClock:
    """Simulated time: moves only when a test (or a waiting ``FakeNode.recv``) moves it."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeTransport:
    """The transport facts the end of a study reads (``coordination/port.py``)."""

    def __init__(self, reports_failures: bool = True) -> None:
        self.reports_failures = reports_failures
        self.failed_ranks: set = set()

    def failed(self) -> set:
        return set(self.failed_ranks)

    def host(self) -> str:
        return "hostA"

    def shrink_method(self, exclude: set) -> str:
        return "shrink" if set(exclude) <= self.failed_ranks else "create_group"


class FakeNode:
    """A ``NodePort`` with no threads: the test puts messages in, reads what the loop sent, and
    declares ranks dead.  ``recv`` with an empty inbox lets ``timeout`` of simulated time pass."""

    def __init__(self, size: int, clock: FakeClock, rank: int = 0, reports_failures: bool = True) -> None:
        self.rank, self.size, self.clock = rank, size, clock
        self.transport = FakeTransport(reports_failures)
        self.unreachable: set = set()
        self.inbox: collections.deque = collections.deque()
        self.sent: list = []  # (dest, msg) in order
        self.relayed: list = []  # (via, dest, msg)
        self.dead: set = set()
        self.shrinks: list = []
        self.relay = None  # what relay_for answers

    # test side
    def deliver(self, src: int, msg: Any) -> None:
        self.inbox.append((src, msg))

    def kill(self, rank: int, cause: str = "mpi-failure", latency: float = 0.01) -> None:
        """The rank is declared dead now (the membership), and the loop is told (PeerDown)."""
        from rdhpo_hpc.messages import PeerDown

        self.dead.add(rank)
        if cause == "mpi-failure":
            self.transport.failed_ranks.add(rank)
        self.deliver(rank, PeerDown(rank, cause, latency))

    def take(self, kind: type = object, dest: Optional[int] = None) -> list:
        """Remove and return the messages of this type (to ``dest``) sent so far."""
        got = [(d, m) for d, m in self.sent if isinstance(m, kind) and (dest is None or d == dest)]
        self.sent = [x for x in self.sent if x not in got]
        return got

    # the NodePort
    def recv(self, timeout: float) -> Optional[tuple]:
        if self.inbox:
            return self.inbox.popleft()
        if timeout > 0:
            self.clock.advance(timeout)
        return None

    def send(self, dest: int, msg: Any) -> None:
        self.sent.append((dest, msg))

    def send_via(self, relay: int, dest: int, msg: Any) -> None:
        self.relayed.append((relay, dest, msg))

    def alive(self) -> list:
        return [r for r in range(self.size) if r not in self.dead]

    def is_alive(self, rank: int) -> bool:
        return rank not in self.dead

    def relay_for(self, dest: int) -> Optional[int]:
        return self.relay

    def shrink(self, exclude: set, timeout: float, method: str = "") -> Optional[dict]:
        self.shrinks.append((sorted(exclude), method))
        return {"method": method, "size": self.size - len(exclude), "duration": 0.001}
