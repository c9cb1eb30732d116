"""A rank's communication engine: one pump thread that owns the transport and the gossip.

The event loops (coordinator, worker) never touch the transport.  They call ``send`` (queued)
and ``recv(timeout)`` (blocks on a queue, so an idle rank burns no CPU), while the pump thread
polls the transport with back-off, keeps the gossip heartbeat going even when the loop thread
is busy training or fitting a model, and turns failure verdicts into :class:`PeerDown` events.
"""
from __future__ import annotations

import queue
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .comm.base import Transport
from .membership import Membership, Verdict
from .messages import Coordinator, Gossip, PeerDown


@dataclass
class GossipSettings:
    """Heartbeat settings (YAML ``fault_tolerance:`` keys of the same names)."""

    gossip_interval: float = 0.5
    fanout: int = 2
    t_fail: float = 10.0
    poll_max: float = 0.002       # longest sleep of the pump between polls when idle


class Node:
    """Owns a transport; started once per rank by the CLI / API (or a test)."""

    def __init__(self, transport: Transport, settings: Optional[GossipSettings] = None,
                 clock: Callable[[], float] = time.monotonic, takeover: bool = False) -> None:
        self.transport = transport
        self.rank, self.size = transport.rank, transport.size
        self.settings = settings or GossipSettings()
        self.clock = clock
        s = self.settings
        self.membership = Membership(self.rank, self.size, clock(), interval=s.gossip_interval,
                                     fanout=s.fanout, t_fail=s.t_fail, rng=random.Random(1000 + self.rank))
        self.takeover = takeover and transport.reports_failures
        self.coordinator = 0
        self._inbox: "queue.Queue[tuple[int, Any]]" = queue.Queue()
        self._outbox: "queue.Queue[tuple[int, Any]]" = queue.Queue()
        self._lock = threading.Lock()
        self._running = False
        self._thread: Optional[threading.Thread] = None
        self.gossip_sent = 0
        self.gossip_bytes = 0
        self.muted: set[int] = set()   # fault injection: ranks this node neither sends to nor hears

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "Node":
        self._running = True
        self._thread = threading.Thread(target=self._pump, name=f"rdhpo-pump-{self.rank}", daemon=True)
        self._thread.start()
        return self

    def close(self, drain_timeout: float = 2.0) -> None:
        """Flush queued sends (bounded by ``drain_timeout``), then stop the pump."""
        deadline = self.clock() + drain_timeout
        while self._running and (not self._outbox.empty() or self.transport.progress()) \
                and self.clock() < deadline:
            time.sleep(0.005)
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=drain_timeout + 1.0)
        self.transport.close()

    # -- used by the event loops ----------------------------------------------------------------
    def send(self, dest: int, msg: Any) -> None:
        self._outbox.put((dest, msg))

    def recv(self, timeout: float) -> Optional[tuple[int, Any]]:
        """Next ``(source, message)`` or local event, waiting at most ``timeout`` seconds."""
        try:
            return self._inbox.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None

    def alive(self) -> list[int]:
        with self._lock:
            return self.membership.alive()

    def is_alive(self, rank: int) -> bool:
        with self._lock:
            return self.membership.is_alive(rank)

    def declare_dead(self, rank: int, cause: str) -> None:
        """Local evidence from an event loop (e.g. the rank broke the protocol)."""
        with self._lock:
            verdict = self.membership.evidence(rank, self.clock(), cause)
        if verdict:
            self._publish(verdict)

    # -- the pump thread ----------------------------------------------------------------------
    def _pump(self) -> None:
        sleep = 1e-4
        t = self.transport
        while self._running:
            busy = False
            while True:
                try:
                    dest, msg = self._outbox.get_nowait()
                except queue.Empty:
                    break
                busy = True
                if dest not in self.muted and self.is_alive(dest) or dest == self.rank:
                    t.isend(dest, msg)
            for _ in range(256):
                got = t.poll()
                if got is None:
                    break
                busy = True
                src, msg = got
                if src in self.muted:
                    continue
                if isinstance(msg, Gossip):
                    with self._lock:
                        self.membership.merge(msg.heartbeats, self.clock())
                else:
                    self._inbox.put((src, msg))
            t.progress()
            self._heartbeat()
            if busy:
                sleep = 1e-4
            else:
                time.sleep(sleep)
                sleep = min(sleep * 2, self.settings.poll_max)

    def _heartbeat(self) -> None:
        now = self.clock()
        verdicts: list[Verdict] = []
        with self._lock:
            m = self.membership
            for r in self.transport.failed():
                v = m.evidence(r, now, "mpi-failure")
                if v:
                    verdicts.append(v)
            peers = m.beat(now) if m.due(now) else []
            vector = list(m.heartbeats)
            verdicts.extend(m.check(now))
        for p in peers:
            if p not in self.muted:
                self.transport.isend(p, Gossip(vector, self.coordinator))
                self.gossip_sent += 1
                self.gossip_bytes += 8 * len(vector) + 64
        for v in verdicts:
            self._publish(v)

    def _publish(self, v: Verdict) -> None:
        self._inbox.put((v.rank, PeerDown(v.rank, v.cause, v.latency)))
        if self.takeover and v.rank == self.coordinator:
            alive = self.alive()
            if alive:
                self.coordinator = min(alive)
                self._inbox.put((self.coordinator, Coordinator(self.coordinator)))
