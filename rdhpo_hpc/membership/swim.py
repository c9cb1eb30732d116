"""SWIM membership (Das, Gupta & Motivala 2002) with Lifeguard's buddy rule and dynamic suspicion
timeout (Dadgar et al. 2018): constant per-rank load.

Pure: clock (``now``) and RNG injected; no I/O.  Every ``interval`` (the protocol period) a rank
pings one random live member.  No ack within ``probe_timeout`` (``interval / 4``, up to
``interval / 2`` when round trips are slow): it asks
``fanout`` others to ping the target for it (``PING_REQ``; the first helper is the rank it heard
from last, a link known to work); a helper whose own ping is unanswered after ``probe_timeout``
asks ``fanout`` of its own (``PING_REQ_LAST``), so paths of three hops count too.  Acks are
forwarded back.  No ack by the end of the period: the target is *suspected*, and the suspecting
rank probes it again every ``REPROBE`` periods until the suspicion is settled.  A suspicion becomes a death
verdict unless refuted: a rank that hears it is suspected at incarnation ``i`` announces itself
alive at ``i + 1``, which overrides the suspicion everywhere (and one at an older incarnation,
whose accuser missed that, makes it announce its current incarnation again).  When (Lifeguard's
dynamic suspicion timeout, memberlist's formula): a suspicion names its accuser; counted from when
a rank first hears it, the verdict comes after ``max_suspicion`` while that accuser is alone,
shrinking to ``min_suspicion`` as ``confirm`` other ranks' own failed probes confirm it
(``max - (max - min) * log(C + 1) / log(K + 1)``).  ``min_suspicion = max(t_fail,
suspicion_mult * log10(N) * interval)`` (a suspicion and its refutation each need O(log N)
periods to spread; with the defaults t_fail wins up to N = 100,000), ``max_suspicion =
suspicion_max_mult * min_suspicion``, ``confirm = suspicion_mult - 2`` (0 below 4 ranks).  A real
hang is probed by about one rank per period, so it is confirmed within a few periods and declared
``t_fail`` after the first suspicion reached a rank; a loss-made suspicion is usually alone and
has three times longer to be refuted.  Death is final: a
dead rank stays dead (ranks are never reused in an MPI job), so late messages of a rank that was
only hung never revive it (it is told, and stops refuting: ``fenced``, if it was stopped of late).
A peer's verdict is taken unless the dead rank talked to us within ``min_suspicion`` (no verdict
on it can be that recent: after a partition heals, the cut-off side's verdicts on the ranks that
kept talking are not taken, nor fence them).  Outside evidence (ULFM) declares death at once, at
this rank only (``evidence``).

Membership changes (alive/suspect/dead with incarnation) travel piggybacked on pings and acks:
each rank retransmits each change ``retransmit_mult * ceil(log10(N + 1))`` times, at most
``max_piggyback`` per message, fewest-sent first (memberlist's ``TransmitLimitedQueue``).  Buddy
rule (Lifeguard): a probe of a suspected rank carries that suspicion first, so the suspect hears
it at once and can refute; a rank that hears of a new suspicion probes the suspect next with
probability ``buddies / N`` (a few ranks on average, whatever N is).  So a message carries at
most ``max_piggyback`` updates whatever N is, and a rank sends about two messages per period (its
ping, the ack of the ping it gets) plus rare indirect probes.  State is sparse (dicts of the
members whose state differs from "alive, incarnation 0"), so 100,000 ranks fit in one simulator
process (``bench/membership.py``).

Message bodies are plain tuples ``(kind, seq, target, updates)``, ``updates`` a tuple of
``(rank, status, incarnation)`` (a suspicion: ``(rank, SUSPECT, incarnation, accuser)``); the
node sends them inside :class:`~rdhpo_hpc.messages.Gossip`.
"""

from __future__ import annotations

import math
import random
from typing import Any, Iterable, Optional

from .base import Outgoing, Verdict

ALIVE, SUSPECT, DEAD, FAILED = 0, 1, 2, 3  # FAILED: dead on outside evidence (ULFM) here only, never spread
PING, ACK, PING_REQ, PING_REQ_LAST = 0, 1, 2, 3
Update = tuple[int, ...]  # (rank, status, incarnation), a suspicion with its accuser: (..., accuser)


class Swim:
    """One rank's SWIM view: who is alive, suspected, dead (the :class:`~.base.View` interface)."""

    REPROBE = 3  # periods between probes of a rank we suspect (its refutation may need a path of 3 hops)
    STALE = 3  # periods without any call: we were stopped, our suspicions are stale

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
        probe_timeout: Optional[float] = None,
        max_piggyback: int = 8,
        retransmit_mult: int = 4,
        buddies: float = 3.0,
        suspicion_mult: float = 4.0,
        suspicion_max_mult: float = 3.0,
    ) -> None:
        if interval <= 0 or t_fail <= interval or fanout < 1 or max_piggyback < 1 or retransmit_mult < 1:
            raise ValueError(
                f"need interval > 0, t_fail > interval, fanout >= 1, max_piggyback >= 1, retransmit_mult >= 1; "
                f"got interval={interval}, t_fail={t_fail}, fanout={fanout}, max_piggyback={max_piggyback}, "
                f"retransmit_mult={retransmit_mult}"
            )
        self.rank, self.size = rank, size
        self.interval, self.fanout, self.t_fail = interval, fanout, t_fail
        self.min_timeout = interval / 4 if probe_timeout is None else probe_timeout
        self.rtt = 0.0  # smoothed round trip of our direct probes: a loaded machine answers late
        self.max_piggyback = max_piggyback
        self.buddies = buddies
        # Lifeguard's suspicion timeout: from ``max_suspicion`` (one accuser) down to ``min_suspicion``
        # (``confirm`` independent accusers more); memberlist's rule, with t_fail as the floor
        self.min_suspicion = max(t_fail, suspicion_mult * math.log10(max(1, size)) * interval)
        self.max_suspicion = suspicion_max_mult * self.min_suspicion
        self.confirm = max(0, int(suspicion_mult) - 2) if size - 2 >= int(suspicion_mult) - 2 else 0
        self.raised = 0  # suspicions raised by our own probes (bench counters)
        self.slack = math.inf  # least time that was left before a verdict when a suspicion was lifted
        self.limit = retransmit_mult * max(1, math.ceil(math.log10(size + 1)))
        self.rng = rng or random.Random(rank)
        self.members: Optional[frozenset[int]] = None if members is None else frozenset(members)
        self.t0 = now
        self.incarnation = 0
        self.fenced = False  # we were declared dead somewhere: never refute, stay dead
        self.view: dict[int, tuple[int, int]] = {}  # rank -> (status, incarnation); absent: (ALIVE, 0)
        self.suspects: dict[int, float] = {}  # rank -> time its suspicion becomes a verdict here
        self.suspicion: dict[int, tuple[float, list[int]]] = {}  # rank -> (heard at, its accusers)
        self.dead: dict[int, float] = {}  # rank -> time of the verdict
        self.heard: dict[int, float] = {}  # rank -> last sign of life (a message, a refutation)
        self.queue: dict[int, list[int]] = {}  # rank -> [times sent, status, incarnation]
        self.seq = 0
        self.probe: Optional[tuple[int, int, float]] = None  # (target, seq, sent) awaiting an ack
        self.indirect_sent = False
        # our seq -> [requester, its seq, target, expiry, time to ask helpers of our own (0: never)]
        self.relays: dict[int, list[Any]] = {}
        self.next_target: Optional[int] = None  # a rank to probe next (a suspicion just heard of)
        self.recent: dict[int, None] = {}  # the last few ranks heard from, oldest first (helpers)
        self.mine: dict[int, float] = {}  # suspicions we raised -> when to probe the suspect again
        self.next_probe = now + self.rng.random() * interval  # ranks start out of phase
        self._verdicts: list[Verdict] = []
        self.last_call = now  # the last tick / receive / check (a long gap: we were stopped)
        self.woke = -math.inf  # when we last found such a gap

    # -- queries ----------------------------------------------------------------------------
    @property
    def probe_timeout(self) -> float:
        """How long to wait for a direct ack before asking helpers: ``interval / 4``, or three
        smoothed round trips when the ranks answer slower (an oversubscribed machine), at most
        ``interval / 2``, so that late answers do not turn every probe into an indirect one."""
        return min(self.interval / 2, max(self.min_timeout, 3 * self.rtt))

    def _member(self, rank: int) -> bool:
        return 0 <= rank < self.size if self.members is None else rank in self.members

    def alive(self) -> list[int]:
        ranks: Iterable[int] = range(self.size) if self.members is None else self.members
        return sorted(r for r in ranks if r not in self.dead)

    def is_alive(self, rank: int) -> bool:
        return self._member(rank) and rank not in self.dead

    def is_suspected(self, rank: int) -> bool:
        return rank in self.suspects

    def silence(self, rank: int, now: float) -> float:
        """Seconds since the last sign of life of ``rank`` seen here."""
        return now - self.heard.get(rank, self.t0)

    def next_due(self) -> float:
        """The earliest time ``tick`` or ``check`` has something to do (the simulator's timer)."""
        t = self.next_probe
        if self.probe is None and not self.relays and not self.suspects:
            return t
        if self.probe is not None and not self.indirect_sent:
            t = min(t, self.probe[2] + self.probe_timeout)
        for rel in self.relays.values():
            t = min(t, rel[3], rel[4] or rel[3])
        if self.suspects:
            t = min(t, min(self.suspects.values()))
        return t

    # -- driven by the pump ----------------------------------------------------------------
    def tick(self, now: float) -> Outgoing:
        """Probe timeout: indirect probes.  Period end: suspect an unanswered target, ping the next."""
        self._awake(now)
        out: Outgoing = []
        if self.relays:
            self.relays = {s: v for s, v in self.relays.items() if v[3] > now}
            for seq, rel in self.relays.items():
                if rel[4] and now >= rel[4]:  # our ping for a requester is unanswered: ask two of ours
                    rel[4] = 0.0
                    for helper in self._pick(self.fanout, rel[2], rel[0]):
                        out.append((helper, (PING_REQ_LAST, seq, rel[2], self._piggyback(helper, rel[2]))))
        if self.probe is not None and not self.indirect_sent and now >= self.probe[2] + self.probe_timeout:
            self.indirect_sent = True
            target, seq, _ = self.probe
            for helper in self._helpers(target):
                out.append((helper, (PING_REQ, seq, target, self._piggyback(helper, target))))
        if now >= self.next_probe:
            self.next_probe = now + self.interval
            if self.probe is not None:
                target = self.probe[0]
                self.probe = None
                if self.is_alive(target):
                    known = target in self.suspects
                    self._apply((target, SUSPECT, self.view.get(target, (ALIVE, 0))[1], self.rank), now)
                    self.raised += not known and target in self.suspects
                    if target in self.suspects:
                        self.mine.setdefault(target, now + self.REPROBE * self.interval)
            picked = self._pick(1, -1)
            if self.mine:
                self.mine = {r: at for r, at in self.mine.items() if r in self.suspects}
                for r, at in self.mine.items():  # our own suspects, every REPROBE periods
                    if at <= now:
                        self.mine[r] = now + self.REPROBE * self.interval
                        picked = [r]
                        break
            nxt, self.next_target = self.next_target, None
            if nxt is not None and self.is_alive(nxt):
                picked = [nxt]
            if picked:
                self.seq += 1
                self.probe = (picked[0], self.seq, now)
                self.indirect_sent = False
                out.append((picked[0], (PING, self.seq, -1, self._piggyback(picked[0]))))
        return out

    def receive(self, src: int, body: Any, now: float) -> Outgoing:
        """A SWIM message from ``src``: apply its updates, then answer (ack, relay a probe or its ack)."""
        kind, seq, target, updates = body
        self._awake(now)
        if self._member(src) and src not in self.dead:
            self.heard[src] = now
            self.recent.pop(src, None)
            self.recent[src] = None
            if len(self.recent) > 8:
                del self.recent[next(iter(self.recent))]
        for u in updates:
            self._apply(u, now)
        if kind == PING:
            return [(src, (ACK, seq, -1, self._piggyback(src)))]
        if kind in (PING_REQ, PING_REQ_LAST):
            if not self.is_alive(target) or target == self.rank:
                return []
            self.seq += 1
            nest = now + self.probe_timeout if kind == PING_REQ else 0.0
            self.relays[self.seq] = [src, seq, target, now + self.interval, nest]
            return [(target, (PING, self.seq, -1, self._piggyback(target)))]
        if kind == ACK:
            if self.probe is not None and seq == self.probe[1]:
                if src == self.probe[0]:  # a direct answer: its round trip sets our probe timeout
                    self.rtt = 0.8 * self.rtt + 0.2 * (now - self.probe[2])
                self.probe = None  # answered (directly, or forwarded by a helper)
            elif seq in self.relays:
                requester, their_seq = self.relays.pop(seq)[:2]
                return [(requester, (ACK, their_seq, -1, self._piggyback(requester)))]
        return []

    def check(self, now: float) -> list[Verdict]:
        """New verdicts: suspicions older than ``t_fail``, and deaths learned from peers since the last call."""
        self._awake(now)
        if not self.suspects and not self._verdicts:
            return []
        for r, deadline in list(self.suspects.items()):
            if now >= deadline:
                self._declare(r, now, "gossip-timeout")
        out, self._verdicts = self._verdicts, []
        return out

    def evidence(self, rank: int, now: float, cause: str = "mpi-failure") -> Optional[Verdict]:
        """Outside proof that ``rank`` failed (ULFM, a takeover seen in the heartbeat file); None when
        it was already dead.  Final here, but not spread, like the vector gossip's: ULFM reports a
        crash at every rank within about 0.5 s anyway, while behind a partition it reports live
        ranks as failed on one side only — spread, that would kill a live coordinator for the
        ranks that still reach it (the virtual cluster's partition test)."""
        if rank == self.rank or not self.is_alive(rank):
            return None
        self._declare(rank, now, cause)
        return self._verdicts.pop()

    # -- state changes ----------------------------------------------------------------------
    def _awake(self, now: float) -> None:
        """More than ``STALE`` periods since our last call: this rank was stopped (SIGSTOP, a
        starved process), so its own view is stale — the refutations of its suspects went by
        unheard.  Restart its suspicion timers and forget its unanswered probe instead of turning
        them into verdicts (a rank waking from a hang would otherwise declare live ranks dead)."""
        if now - self.last_call > self.STALE * self.interval:
            self.woke = now
            self.suspicion = {r: (now, acc) for r, (_, acc) in self.suspicion.items()}
            self.suspects = {r: self._deadline(r) for r in self.suspects}
            self.probe = None
            self.relays.clear()
            self.next_probe = max(self.next_probe, now)
        self.last_call = now

    def _deadline(self, rank: int) -> float:
        """When the suspicion of ``rank`` becomes a verdict here (Lifeguard): ``max_suspicion`` after
        we first heard it while its accuser is alone, shrinking to ``min_suspicion`` as ``confirm``
        other ranks' own probes confirm it (log-scaled: the first confirmations count most)."""
        start, accusers = self.suspicion[rank]
        c = min(len(accusers) - 1, self.confirm)
        if self.confirm == 0 or c >= self.confirm:
            return start + self.min_suspicion
        frac = math.log(c + 1) / math.log(self.confirm + 1)
        return start + self.max_suspicion - (self.max_suspicion - self.min_suspicion) * frac

    def _apply(self, update: Update, now: float) -> None:
        """Merge one update by SWIM's rules: dead is final; suspect(i) beats alive(j <= i);
        alive(i) beats suspect(j < i) — a refutation.  A suspicion names its accuser (a fourth
        field): the same suspicion from another accuser is a confirmation (shorter timeout)."""
        r, status, inc = update[:3]
        if status == FAILED:
            return  # outside evidence is each rank's own (``evidence``); none is sent, none is taken
        if r == self.rank:
            if status == DEAD and now - self.woke < self.max_suspicion:
                self.fenced = True  # we were stopped (hung) of late: the verdict is right, stay dead
            elif status == SUSPECT and not self.fenced:
                if inc >= self.incarnation:
                    self.incarnation = inc + 1
                # a suspicion at an older incarnation (its accuser missed our refutation) is
                # refuted again: without it, that accuser's verdict would kill us everywhere
                self._enqueue(self.rank, ALIVE, self.incarnation)
            return
        if r in self.dead or not self._member(r):
            return
        cur, cur_inc = self.view.get(r, (ALIVE, 0))
        if status == DEAD:  # a peer's verdict, unless ``r`` talked to us since it could have been reached
            if now - self.heard.get(r, -math.inf) >= self.min_suspicion:
                self._declare(r, now, "gossip-timeout")
        elif status == SUSPECT and (inc > cur_inc or (inc == cur_inc and cur == ALIVE)):
            accuser = update[3] if len(update) > 3 else -1
            self.view[r] = (SUSPECT, inc)
            self.suspicion[r] = (now, [accuser])
            self.suspects[r] = self._deadline(r)
            self._enqueue(r, SUSPECT, inc, accuser)
            if self.rng.random() < self.buddies / self.size:
                self.next_target = r  # a few ranks (``buddies`` on average) tell the suspect directly
        elif status == SUSPECT and inc == cur_inc and len(update) > 3:
            accusers = self.suspicion[r][1]
            if update[3] not in accusers and len(accusers) <= self.confirm:
                accusers.append(update[3])  # an independent confirmation: spread it, shorten the timeout
                self.suspects[r] = self._deadline(r)
                self._enqueue(r, SUSPECT, inc, update[3])
        elif status == ALIVE and inc > cur_inc:
            self.view[r] = (ALIVE, inc)
            if r in self.suspects:
                self.slack = min(self.slack, self.suspects.pop(r) - now)
                del self.suspicion[r]
            self.heard[r] = now
            self._enqueue(r, ALIVE, inc)

    def _declare(self, rank: int, now: float, cause: str) -> None:
        inc = self.view.get(rank, (ALIVE, 0))[1]
        self.dead[rank] = now
        status = DEAD if cause == "gossip-timeout" else FAILED
        self.view[rank] = (status, inc)
        self.suspects.pop(rank, None)
        self.suspicion.pop(rank, None)
        if self.probe is not None and self.probe[0] == rank:
            self.probe = None
        if status == DEAD:
            self._enqueue(rank, status, inc)
        self._verdicts.append(Verdict(rank, cause, now - self.heard.get(rank, self.t0)))

    # -- dissemination ------------------------------------------------------------------------
    def _enqueue(self, rank: int, status: int, inc: int, accuser: int = -1) -> None:
        self.queue[rank] = [0, status, inc, accuser]  # a newer update of a rank replaces the older one

    def _update(self, rank: int, status: int, inc: int, accuser: int) -> Update:
        return (rank, status, inc, accuser) if status == SUSPECT else (rank, status, inc)

    def _piggyback(self, dest: int, about: int = -1) -> tuple[Update, ...]:
        """Up to ``max_piggyback`` queued updates, fewest-sent first (deaths first among equals).
        Buddy rule: our suspicion of the rank probed (``about``, else ``dest``) goes first, even once
        its retransmissions are used up — the suspect must hear it to refute it; likewise a death
        verdict, so that a rank that was only hung learns that it is fenced."""
        about = dest if about < 0 else about
        out: list[Update] = []
        if about in self.suspects:
            out.append(self._update(about, SUSPECT, self.view[about][1], self.suspicion[about][1][0]))
        elif about in self.dead and self.view[about][0] == DEAD:  # a rank declared dead that still talks is told
            out.append((about, DEAD, self.view[about][1]))
        if not self.queue:
            return tuple(out)
        q = self.queue
        order = sorted((r for r in q if r != about or not out), key=lambda r: (q[r][0], q[r][1] < DEAD))
        for r in order[: self.max_piggyback - len(out)]:
            entry = q[r]
            out.append(self._update(r, entry[1], entry[2], entry[3]))
            entry[0] += 1
            if entry[0] >= self.limit:
                del q[r]
        return tuple(out)

    def _helpers(self, target: int) -> list[int]:
        """``fanout`` ranks to probe ``target`` for us: the last rank we heard from (a link known to
        work, so a rank cut off from most others still gets its probes through), then random ones."""
        first = [r for r in reversed(self.recent) if r != target and r not in self.suspects and self.is_alive(r)][:1]
        rest = self._pick(self.fanout, target, first[0] if first else -1)
        return (first + rest)[: self.fanout]

    def _pick(self, k: int, exclude: int, also: int = -1) -> list[int]:
        """Up to ``k`` distinct random live members other than us, ``exclude`` and ``also`` (not
        suspected ones as helpers).  Rejection sampling keeps this O(k) at 100,000 ranks."""

        def ok(r: int) -> bool:
            return (
                r != self.rank
                and r != exclude
                and r != also
                and r not in self.dead
                and (exclude < 0 or r not in self.suspects)
                and self._member(r)
            )

        if self.members is None and self.size > 64:
            got: list[int] = []
            for _ in range(8 * k + 16):
                r = self.rng.randrange(self.size)
                if ok(r) and r not in got:
                    got.append(r)
                    if len(got) == k:
                        return got
        cands = [r for r in (range(self.size) if self.members is None else sorted(self.members)) if ok(r)]
        return self.rng.sample(cands, min(k, len(cands)))
