"""A rank's communication engine: one pump thread that owns the transport and the gossip.

The event loops (coordinator, worker) never touch the transport.  They call ``send`` (queued)
and ``recv(timeout)`` (blocks on a queue, so an idle rank burns no CPU), while the pump thread
polls the transport with back-off, keeps the gossip heartbeat going even when the loop thread
is busy training or fitting a model, and turns failure verdicts into :class:`PeerDown` events.

Reachability (lost links, see docs/reliability.md): gossip keeps a rank whose link to the
coordinator is cut alive (third parties relay its heartbeat); the coordinator's and the worker's
own traffic is routed around the cut.  Coordinator and workers ping each other directly every
``t_fail / 4`` when they have nothing else to say (an empty ``Gossip``); a peer not heard from
directly for ``t_fail / 2`` is reached through a third rank (:class:`Relay`, both directions;
the loops are told with :class:`RouteChanged`), and the direct link is used again as soon as it
carries traffic.  Only a rank heard from neither directly nor through a relay for
``1.5 * t_fail`` is reported by the coordinator's node as ``PeerDown(cause="unreachable")`` — not
a death verdict — and the coordinator stops using it.

Fault injection (YAML ``faults:``): the node applies its :class:`~rdhpo_hpc.faults.FaultPlan`
in the pump: cut links (messages dropped both ways), delays (messages held back), and calls
``on_fault`` for its own ``kill`` / ``stop`` entries.
"""

from __future__ import annotations

import os
import pickle
import queue
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .comm.base import Transport
from .comm.delay import DelayLine
from .faults import Fault, FaultPlan
from .log import logger
from .membership import Outgoing, Verdict, make
from .messages import Coordinator, Gossip, PeerDown, Relay, RouteChanged


@dataclass
class GossipSettings:
    """Heartbeat settings (YAML ``fault_tolerance:`` keys of the same names)."""

    gossip_interval: float = 0.5
    fanout: int = 2
    t_fail: float = 10.0
    membership: str = "auto"  # "auto" | "swim" | "gossip" (rdhpo_hpc.membership)
    poll_max: float = 0.002  # longest sleep of the pump between polls when idle
    poll_hot: float = 1e-4  # sleep between polls while messages are flowing
    hot_window: float = 0.005  # hot: the loop waits since less than this, after traffic as recent
    check_every: float = 0.005  # membership / failure checks at most this often (not every poll)


def write_beat(path: str, rank: int) -> None:
    """Refresh the coordinator's heartbeat file: its mtime (the supervisor's liveness signal) and
    the coordinating rank, in place (``pwrite``, no truncation: a reader never sees it empty).
    A failing file system is not fatal here."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, f"{rank:>10d}\n".encode(), 0)
        finally:
            os.close(fd)
    except OSError:
        pass


def read_beat(path: str) -> Optional[tuple[float, int]]:
    """(mtime, coordinating rank) of a heartbeat file, None when absent or unreadable.  Opening
    it first makes NFS revalidate its attributes (close-to-open consistency)."""
    try:
        with open(path, "rb") as fh:
            return os.fstat(fh.fileno()).st_mtime, int(fh.read(32).strip() or -1)
    except (OSError, ValueError):
        return None


class Node:
    """Owns a transport; started once per rank by the CLI / API (or a test)."""

    def __init__(
        self,
        transport: Transport,
        settings: Optional[GossipSettings] = None,
        clock: Callable[[], float] = time.monotonic,
        takeover: bool = False,
        faults: Optional[FaultPlan] = None,
        on_fault: Callable[[Fault], None] = lambda fault: None,
    ) -> None:
        self.transport = transport
        self.rank, self.size = transport.rank, transport.size
        self.settings = settings or GossipSettings()
        self.clock = clock
        s = self.settings
        self.membership = make(
            s.membership,
            self.rank,
            self.size,
            clock(),
            interval=s.gossip_interval,
            fanout=s.fanout,
            t_fail=s.t_fail,
            rng=random.Random(1000 + self.rank),
        )
        self.takeover = takeover and transport.reports_failures
        self.coordinator = 0
        self._inbox: "queue.Queue[tuple[int, Any]]" = queue.Queue()
        self._outbox: "queue.Queue[tuple[int, Any]]" = queue.Queue()
        self._wake = threading.Event()  # set by send(): cuts the pump's back-off short
        self._next_check = 0.0  # next membership / failure check (pump)
        self._last_traffic = -1.0  # last application message sent or received (pump)
        self._wait_since: Optional[float] = None  # the event loop is blocked in recv() since then
        self._lock = threading.Lock()
        self._running = False
        self._thread: Optional[threading.Thread] = None
        self.gossip_sent = 0  # membership messages and direct pings sent
        self.gossip_bytes = 0  # ... their pickled size
        self.muted: set[int] = set()  # fault injection: ranks this node neither sends to nor hears
        self.faults = faults or FaultPlan([], self.rank)
        self.on_fault = on_fault
        self.t0 = clock()
        self._cut: set[int] = set()  # links cut by the fault plan right now
        self._delayed: DelayLine[tuple[int, Any]] = DelayLine()
        self.last_heard = [self.t0] * self.size  # last message received directly from each rank
        self.last_any = [self.t0] * self.size  # ... directly or through a relay
        self._last_direct = [self.t0] * self.size  # last message sent directly to each rank
        self.routes: dict[int, int] = {}  # peer -> relay rank while the direct link is silent
        self._learned: dict[int, tuple[int, float]] = {}  # peer -> (rank that relayed its traffic, when)
        self._next_direct = 0.0
        self.unreachable: set[int] = set()  # alive by gossip, silent on the direct link (coordinator)
        self.relayed = 0
        self.pump_errors = 0
        self.beat_file: Optional[str] = None  # refreshed while this rank coordinates (supervisor)
        self._next_beat = 0.0
        self._takeover_check: Optional[tuple[float, int, Optional[tuple[float, int]]]] = None
        self.cut_off = False  # the coordinator lives on beyond a partition (no takeover)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "Node":
        self._running = True
        self._thread = threading.Thread(target=self._pump, name=f"rdhpo-pump-{self.rank}", daemon=True)
        self._thread.start()
        return self

    def close(self, drain_timeout: float = 2.0) -> None:
        """Flush queued sends (bounded by ``drain_timeout``), then stop the pump.  Idempotent."""
        if self._thread is None:
            return
        deadline = self.clock() + drain_timeout
        while (
            self._running
            and self._thread.is_alive()
            and (not self._outbox.empty() or self._delayed or self.transport.progress())
            and self.clock() < deadline
        ):
            time.sleep(0.005)
        self._running = False
        self._thread.join(timeout=drain_timeout + 1.0)
        self._thread = None
        self.transport.close()

    def shrink(self, exclude: set, timeout: float, method: str = "") -> Optional[dict]:
        """End of study, ULFM only: stop the pump, then agree with the other survivors on a
        communicator without ``exclude`` (see :meth:`Transport.shrink`).  None without ULFM."""
        self.close(drain_timeout=min(2.0, timeout))
        if not self.transport.reports_failures:
            return None
        return self.transport.shrink(set(exclude), timeout, method)

    # -- used by the event loops ----------------------------------------------------------------
    def send(self, dest: int, msg: Any) -> None:
        self._outbox.put((dest, msg))
        self._wake.set()  # the pump sends it now instead of after its back-off sleep

    def push_back(self, src: int, msg: Any) -> None:
        """Put a message back into this rank's inbox (a role change hands it to the next loop)."""
        self._inbox.put((src, msg))

    def send_via(self, relay: int, dest: int, msg: Any) -> None:
        """Send ``msg`` to ``dest`` through ``relay`` (when the direct link is lost)."""
        self._outbox.put((relay, Relay(dest, self.rank, msg)))

    def recv(self, timeout: float) -> Optional[tuple[int, Any]]:
        """Next ``(source, message)`` or local event, waiting at most ``timeout`` seconds."""
        try:
            return self._inbox.get_nowait()
        except queue.Empty:
            if timeout <= 0:
                return None
        self._wait_since = self.clock()
        self._wake.set()  # the pump polls now, and stays hot while traffic is recent
        try:
            return self._inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        finally:
            self._wait_since = None

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
    def _blocked(self, peer: int) -> bool:
        return peer in self.muted or peer in self._cut

    def _tx(self, dest: int, msg: Any, now: float) -> None:
        """Send now, or later when the fault plan delays this link; never to a muted peer."""
        if dest != self.rank and self._blocked(dest):
            return
        if self.faults and dest != self.rank:
            d = self.faults.delay(dest, now - self.t0)
            if d > 0:
                self._delayed.hold(now + d, (dest, msg))
                return
        self.transport.isend(dest, msg)
        if 0 <= dest < self.size:
            self._last_direct[dest] = now

    def _send_routed(self, dest: int, msg: Any, now: float) -> None:
        """Coordinator <-> worker traffic goes through a relay while the direct link is silent."""
        via = self._route(dest, now) if self._routed(dest) and not isinstance(msg, Relay) else None
        if via is None:
            self._tx(dest, msg, now)
        else:
            self.relayed += 1
            self._tx(via, Relay(dest, self.rank, msg), now)

    def _routed(self, peer: int) -> bool:
        return peer != self.rank and self.coordinator in (peer, self.rank)

    def _route(self, dest: int, now: float) -> Optional[int]:
        """The relay to reach ``dest`` through, or None for the direct link (heard from within
        ``t_fail / 2``: both ends ping each other every ``t_fail / 4``).  A change between
        direct and relayed is announced to the event loop as :class:`RouteChanged`."""
        link = self.settings.t_fail / 2
        via = None if now - self.last_heard[dest] < link else self._pick_relay(dest, now)
        old = self.routes.get(dest)
        if via != old:
            if via is None:
                self.routes.pop(dest, None)
            else:
                self.routes[dest] = via
            if (old is None) != (via is None):
                self._inbox.put((dest, RouteChanged(dest, via)))
        return via

    def _pick_relay(self, dest: int, now: float) -> Optional[int]:
        """The rank that recently relayed ``dest``'s traffic to us (a route known to work), else
        one of the ranks heard from directly of late, rotating every ``t_fail / 4`` until the
        other side answers through one of them."""
        link = self.settings.t_fail / 2
        known = self._learned.get(dest)
        if (
            known is not None
            and now - known[1] < link
            and now - self.last_heard[known[0]] < link
            and self.is_alive(known[0])
        ):
            return known[0]
        cands = [
            r
            for r in self.alive()
            if r not in (self.rank, dest) and r not in self.unreachable and now - self.last_heard[r] < link
        ]
        if not cands:
            return None
        slot = int((now - self.t0) / (self.settings.t_fail / 4))
        return cands[(slot + self.rank + dest) % len(cands)]

    def _pump(self) -> None:
        """The pump never dies of an unexpected error: a dead pump would look like a hung rank."""
        while self._running:
            try:
                self._pump_loop()
            except Exception as exc:  # noqa: BLE001
                self.pump_errors += 1
                if self.pump_errors <= 3:
                    logger.error("[rdhpo] rank %d: pump error %s: %s", self.rank, type(exc).__name__, exc)
                time.sleep(0.01)

    def _pump_loop(self) -> None:
        """Poll, relay, heartbeat; then sleep: ``poll_hot`` while :meth:`_hot`, otherwise back off
        to ``poll_max`` (a rank that only hears gossip costs ~2 % of a core, and a pump does not
        steal the GIL from a trial that is training)."""
        sleep = self.settings.poll_hot
        t = self.transport
        while self._running:
            busy = hot = False
            now = self.clock()
            if self.faults:
                self._apply_faults(now)
            for dest, msg in self._delayed.release(now):
                if not self._blocked(dest) and self.is_alive(dest):
                    t.isend(dest, msg)
            while True:
                try:
                    dest, msg = self._outbox.get_nowait()
                except queue.Empty:
                    break
                busy = hot = True
                if dest == self.rank or self.is_alive(dest):
                    self._send_routed(dest, msg, now)
            for _ in range(256):
                got = t.poll()
                if got is None:
                    break
                busy = True
                src, msg = got
                if self._blocked(src):
                    continue
                if 0 <= src < self.size:
                    self.last_heard[src] = self.last_any[src] = self.clock()
                if isinstance(msg, Gossip):
                    if msg.coordinator > self.coordinator and self.takeover:
                        self._learn_coordinator(msg.coordinator)
                    if msg.body is not None:
                        with self._lock:
                            replies = self.membership.receive(src, msg.body, self.clock())
                        self._send_membership(replies, self.clock())
                elif isinstance(msg, Relay):
                    if msg.dest == self.rank:
                        if 0 <= msg.origin < self.size:
                            self.last_any[msg.origin] = self.clock()
                            self._learned[msg.origin] = (src, self.clock())
                        if not isinstance(msg.msg, Gossip):  # a relayed ping only says "alive"
                            self._inbox.put((msg.origin, msg.msg))
                            hot = True
                    elif self.is_alive(msg.dest):
                        self.relayed += 1
                        self._tx(msg.dest, msg, self.clock())
                else:
                    self._inbox.put((src, msg))
                    hot = True
            t.progress()
            self._heartbeat()
            if hot:
                self._last_traffic = self.clock()
            if busy:
                sleep = self.settings.poll_hot
            else:
                if self._wake.wait(sleep):
                    self._wake.clear()
                    sleep = self.settings.poll_hot
                elif self._hot():
                    sleep = self.settings.poll_hot
                else:
                    sleep = min(sleep * 2, self.settings.poll_max)

    def _hot(self) -> bool:
        """A reply is likely soon: the loop started waiting and saw traffic, both within
        ``hot_window``.  Idle ranks never spin, and a starving one spins only briefly."""
        since, now, w = self._wait_since, self.clock(), self.settings.hot_window
        return since is not None and now - since < w and now - self._last_traffic < w

    def _apply_faults(self, now: float) -> None:
        elapsed = now - self.t0
        self._cut = self.faults.cut(elapsed)
        for f in self.faults.due_self(elapsed):
            self.on_fault(f)

    def _heartbeat(self) -> None:
        now = self.clock()
        if now < self._next_check:
            return
        self._next_check = now + self.settings.check_every
        verdicts: list[Verdict] = []
        with self._lock:
            m = self.membership
            for r in self.transport.failed():
                v = m.evidence(r, now, "mpi-failure")
                if v:
                    verdicts.append(v)
            out = m.tick(now)
            verdicts.extend(m.check(now))
        self._send_membership(out, now)
        for v in verdicts:
            self._publish(v)
        self._check_takeover(now)
        self._direct(now)
        if self.beat_file is not None and self.coordinator == self.rank and now >= self._next_beat:
            self._next_beat = now + min(self.settings.gossip_interval, 1.0)
            write_beat(self.beat_file, self.rank)

    def _send_membership(self, out: Outgoing, now: float) -> None:
        for dest, body in out:
            if not self._blocked(dest):
                self._send_gossip(dest, Gossip(body, self.coordinator), now)

    def _send_gossip(self, dest: int, msg: Gossip, now: float) -> None:
        """Send a membership message or ping directly, counting it (``gossip_sent``, ``gossip_bytes``)."""
        self._tx(dest, msg, now)
        self.gossip_sent += 1
        self.gossip_bytes += len(pickle.dumps(msg, pickle.HIGHEST_PROTOCOL))

    def _direct(self, now: float) -> None:
        """Keep the links between coordinator and workers observable (module docstring): ping
        the other end directly every ``t_fail / 4`` — and through the relay too while the direct
        link is silent, so the relayed route stays known — and, on the coordinator, report a
        rank heard from neither directly nor through a relay for ``1.5 x t_fail``."""
        if now < self._next_direct:
            return
        t_fail = self.settings.t_fail
        self._next_direct = now + min(self.settings.gossip_interval, t_fail / 8)
        c = self.coordinator
        peers = [c] if c != self.rank else [r for r in self.alive() if r != self.rank]
        for r in peers:
            if r in self.unreachable or not self.is_alive(r):
                continue
            via = self._route(r, now)
            if now - self._last_direct[r] > t_fail / 4:
                self._send_gossip(r, Gossip(None, c), now)
                if via is not None:
                    self._tx(via, Relay(r, self.rank, Gossip(None, c)), now)
            # 1.5 x t_fail: a rank that is really dead or hung gets its gossip verdict first
            if c == self.rank and now - self.last_any[r] > 1.5 * t_fail:
                self.unreachable.add(r)
                self._inbox.put((r, PeerDown(r, "unreachable", now - self.last_any[r])))

    def relay_for(self, dest: int) -> Optional[int]:
        """A live rank heard from recently that can forward a message to ``dest``."""
        return self._pick_relay(dest, self.clock())

    def _learn_coordinator(self, new: int) -> None:
        """A peer already moved to coordinator ``new``.  Coordinators only move up (lowest live
        rank; dead ranks stay fenced), so every rank below ``new`` was declared dead somewhere:
        adopt those verdicts here too, then follow."""
        now = self.clock()
        for r in range(self.coordinator, new):
            with self._lock:
                v = self.membership.evidence(r, now, "coordinator-replaced")
            if v:
                self._publish(v)
        if self.coordinator != new and new > self.coordinator:
            self.coordinator = new
            self._inbox.put((new, Coordinator(new)))

    def _publish(self, v: Verdict) -> None:
        self._inbox.put((v.rank, PeerDown(v.rank, v.cause, v.latency)))
        if self.takeover and v.rank == self.coordinator:
            if self.beat_file is None:
                self._move_coordinator()
            else:
                # a cut link can look like a death, to gossip and to MPI alike (Open MPI reports
                # the ranks behind a partition as failed): take over only once the coordinator's
                # heartbeat file has stopped changing (see _check_takeover)
                wait = self.settings.t_fail / 2 + self.settings.gossip_interval
                self._takeover_check = (self.clock() + wait, v.rank, read_beat(self.beat_file))

    def _check_takeover(self, now: float) -> None:
        """Pump: decide a pending takeover.  The heartbeat file unchanged since the verdict: the
        coordinator is gone, the lowest live rank takes over.  Still refreshed by the same rank:
        it lives on out of our reach (a partition) — no second coordinator; this rank leaves
        (``PeerDown`` again with takeover off: its loop exits with code 4).  Refreshed by another
        rank: that one took over already; follow it."""
        if self._takeover_check is None or now < self._takeover_check[0] or self.beat_file is None:
            return
        _, old, before = self._takeover_check
        self._takeover_check = None
        if old != self.coordinator:
            return
        cur = read_beat(self.beat_file)
        if cur is None or cur == before:
            self._move_coordinator()
        elif cur[1] == old:
            self.takeover = False
            self.cut_off = True
            self._inbox.put((old, PeerDown(old, "coordinator-alive-elsewhere", 0.0)))
        elif cur[1] > old:
            self._learn_coordinator(cur[1])

    def _move_coordinator(self) -> None:
        alive = self.alive()
        if alive:
            self.coordinator = min(alive)
            now = self.clock()
            self.last_heard = [now] * self.size  # the new coordinator starts its direct watch
            self.last_any = [now] * self.size
            self.routes.clear()
            self._learned.clear()
            self.unreachable.clear()
            self._inbox.put((self.coordinator, Coordinator(self.coordinator)))
