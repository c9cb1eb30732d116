"""The trial table: which attempt runs where, and which results count.  Pure: no I/O, no
threads, no clock of its own (every method that needs the time is given ``now``).

One :class:`TrialEntry` per trial; an attempt is identified by ``(trial_id, attempt)``.  Rules:

* **Fencing.**  An attempt whose rank was lost, that a stop interrupted, that nobody claimed
  after a takeover, or that still ran when its trial finished elsewhere is *fenced*: a result
  from it does not count — except a COMPLETE one while the trial is still open (**the first valid
  result wins**: a worker declared dead that was only slow still finishes the trial, once).
* **Requeue and retry cap.**  A trial whose attempt was lost runs again (``requeue``, served
  before new trials) until it has been started more than ``max_retries`` times; then it FAILED.
* **Per rank.**  ``running[rank]`` is the attempt a worker runs now; with pipelining
  ``queued[rank]`` holds the ones it runs next, in order.  ``idle`` holds the workers with
  nothing to do.  A lost rank loses all of them (``take_assigned``).
* **Adoption (takeover).**  Attempts that ran on live workers when the old coordinator died
  are ``orphans`` until their worker claims them (``adopt``), or the adoption window closes.

Costs: every operation is O(1) or O(log workers), or O(what it returns) — none is O(workers),
so a coordinator with 10,000 workers spends the same per message as one with 10.
"""

from __future__ import annotations

import collections
import heapq
import math
from dataclasses import dataclass, field
from typing import Callable, Iterator, NamedTuple, Optional

from ..trial import Suggestion, TrialState


@dataclass
class TrialEntry:
    """The coordinator's view of one trial."""

    trial_id: int
    suggestion: Suggestion
    attempts: int = 0  # attempts started so far
    done: bool = False
    running: dict[int, int] = field(default_factory=dict)  # attempt -> rank
    fenced: set[int] = field(default_factory=set)  # attempts whose result must not count


class Assigned(NamedTuple):
    """An attempt held by a rank: ``since`` = when it started (running) or was sent (queued)."""

    trial_id: int
    attempt: int
    since: float


Key = tuple[int, int]  # (trial_id, attempt)


class WorkerInfo(NamedTuple):
    """A worker as its ``Hello`` (or the journal's ``worker`` record) described it."""

    host: str
    pid: Optional[int]
    device: str = ""


class IdleRanks:
    """A set of ranks that yields them lowest first in O(log n) (a heap with lazy deletion)."""

    def __init__(self) -> None:
        self._set: set[int] = set()
        self._heap: list[int] = []

    def add(self, rank: int) -> None:
        if rank not in self._set:
            self._set.add(rank)
            heapq.heappush(self._heap, rank)

    def discard(self, rank: int) -> None:
        self._set.discard(rank)

    def __contains__(self, rank: object) -> bool:
        return rank in self._set

    def __len__(self) -> int:
        return len(self._set)

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._set))

    def offer(self, take: Callable[[int], Optional[bool]]) -> bool:
        """Offer the idle ranks, lowest first, to ``take(rank)`` until it returns False.  Each
        rank is offered once (as a sorted snapshot would be); returns False when ``take`` ended
        the pass."""
        seen: set[int] = set()
        try:
            while self._heap:
                rank = heapq.heappop(self._heap)
                if rank not in self._set or rank in seen:
                    continue
                seen.add(rank)
                if take(rank) is False:
                    return False
            return True
        finally:
            for rank in seen:  # the ones still idle go back (lazy deletion of the others)
                if rank in self._set:
                    heapq.heappush(self._heap, rank)
            if len(self._heap) > 2 * len(self._set) + 64:
                self._heap = sorted(self._set)


class TrialTable:
    def __init__(self) -> None:
        self.trials: dict[int, TrialEntry] = {}
        self.next_id = 0  # the id of the next trial to create
        self.done = 0  # trials finished (told)
        self.requeue: collections.deque[int] = collections.deque()  # to run again, first
        self._in_requeue: collections.Counter[int] = collections.Counter()
        self.ready: collections.deque[int] = collections.deque()  # asked ahead (prefetch)
        self.running: dict[int, Assigned] = {}  # rank -> its attempt now
        self.queued: dict[int, collections.deque[Assigned]] = {}  # rank -> its next attempts
        self._by_queue: dict[int, set[int]] = collections.defaultdict(set)  # len(queued) -> running ranks
        self.idle = IdleRanks()
        self.orphans: dict[Key, int] = {}  # takeover: attempt -> rank
        self._orphans_of: dict[int, list[Key]] = collections.defaultdict(list)
        self.orphan_deadline = 0.0

    # -- trials ----------------------------------------------------------------------------------
    def add(self, trial_id: int, suggestion: Suggestion) -> TrialEntry:
        e = self.trials[trial_id] = TrialEntry(trial_id, suggestion)
        self.next_id = max(self.next_id, trial_id + 1)
        return e

    def requeue_trial(self, trial_id: int) -> None:
        self.requeue.append(trial_id)
        self._in_requeue[trial_id] += 1

    def next_waiting(self) -> Optional[int]:
        """The next trial to hand out again (re-queued first, then asked ahead), or None."""
        if self.requeue:
            tid = self.requeue.popleft()
            self._in_requeue[tid] -= 1
            return tid
        return self.ready.popleft() if self.ready else None

    def finish(self, e: TrialEntry) -> list[tuple[int, int]]:
        """The trial ended: returns its duplicates still running, as (rank, attempt), now fenced
        (they are told to stop; their results will not count)."""
        e.done = True
        self.done += 1
        for att in e.running:
            e.fenced.add(att)
        return [(rank, att) for att, rank in e.running.items()]

    def fence(self, trial_id: int, attempt: int) -> TrialEntry:
        e = self.trials[trial_id]
        e.running.pop(attempt, None)
        e.fenced.add(attempt)
        return e

    def lose(self, trial_id: int, attempt: int, max_retries: int) -> str:
        """An attempt's rank was lost: "done" (the trial had already ended), "failed" (the retry
        cap is reached: the caller finishes it FAILED) or "requeued"."""
        e = self.fence(trial_id, attempt)
        if e.done:
            return "done"
        if e.attempts > max_retries:
            return "failed"
        self.requeue_trial(trial_id)
        return "requeued"

    @staticmethod
    def why_not_counted(e: TrialEntry, attempt: int, state: TrialState) -> Optional[str]:
        """None when this result counts (first valid result wins), else why it does not."""
        if e.done:
            return "trial already finished"
        if attempt in e.fenced and state != TrialState.COMPLETE:
            return "attempt was fenced (rank declared dead)"
        return None

    # -- attempts on ranks -----------------------------------------------------------------------
    def start(self, rank: int, trial_id: int, now: float) -> int:
        """Hand trial ``trial_id``'s next attempt to ``rank`` (queued behind its running one, if
        any); returns the attempt number."""
        e = self.trials[trial_id]
        att = e.attempts
        e.attempts += 1
        e.running[att] = rank
        a = Assigned(trial_id, att, now)
        if rank in self.running:
            q = self.queued.setdefault(rank, collections.deque())
            self._by_queue[len(q)].discard(rank)
            q.append(a)
            self._by_queue[len(q)].add(rank)
        else:
            self._set_running(rank, a)
        self.idle.discard(rank)
        return att

    def is_current(self, rank: int, trial_id: int, attempt: int) -> bool:
        """``rank`` runs this attempt now, and it still counts."""
        run = self.running.get(rank)
        e = self.trials.get(trial_id)
        return (
            run is not None
            and run[:2] == (trial_id, attempt)
            and e is not None
            and not e.done
            and attempt not in e.fenced
        )

    def end_attempt(self, rank: int, trial_id: int, attempt: int, now: float, reachable: bool, known: bool) -> float:
        """A result for this attempt came from ``rank``: its next queued attempt starts (or the
        rank is idle).  ``reachable``: alive and on the direct link; ``known``: a worker (said
        Hello), not this rank.  Returns when the attempt started (NaN when not running here)."""
        run = self.running.get(rank)
        start = math.nan
        if run is not None and run[:2] == (trial_id, attempt):
            start = run.since
            self._advance(rank, now, reachable)
        elif run is None and known and reachable:
            self.idle.add(rank)  # a stale attempt ended (e.g. after a takeover): the rank is free
        self.trials[trial_id].running.pop(attempt, None)
        return start

    def held_by(self, rank: int) -> list[Assigned]:
        """The attempts ``rank`` runs or has queued, in the order it runs them."""
        run = self.running.get(rank)
        return ([run] if run is not None else []) + list(self.queued.get(rank, ()))

    def take_assigned(self, rank: int) -> list[Assigned]:
        """Remove and return every attempt assigned to ``rank`` (running first, then queued)."""
        self.idle.discard(rank)
        run = self.running.pop(rank, None)
        q = self.queued.pop(rank, ())
        if run is not None:
            self._by_queue[len(q)].discard(rank)
        return ([run] if run is not None else []) + list(q)

    def interrupt(self) -> list[tuple[int, Assigned]]:
        """A stop: every attempt assigned anywhere is fenced; returns (rank, attempt) to tell."""
        out = []
        for rank in list(self.running):
            for a in self.take_assigned(rank):
                self.fence(a.trial_id, a.attempt)
                out.append((rank, a))
        return out

    def pipeline_slots(self, depth: int, usable: Callable[[int], bool]) -> list[int]:
        """Busy ranks to send one more attempt each, round-robin until each holds ``depth``
        (running + queued): level 1 the ranks with an empty queue, level 2 those with at most
        one queued, ...  Costs O(ranks returned), not O(busy ranks)."""
        slots: list[int] = []
        short: list[int] = []
        for level in range(1, depth):
            short = sorted(short + [r for r in self._by_queue.get(level - 1, ()) if usable(r)])
            slots += short
        return slots

    def _set_running(self, rank: int, a: Assigned) -> None:
        if rank not in self.running:
            self._by_queue[len(self.queued.get(rank, ()))].add(rank)
        self.running[rank] = a

    def _advance(self, rank: int, now: float, reachable: bool) -> None:
        """The running attempt of ``rank`` ended: its next queued one (if any) is now running."""
        q = self.queued.get(rank)
        if q:
            self._by_queue[len(q)].discard(rank)
            tid, att, _ = q.popleft()
            self._by_queue[len(q)].add(rank)
            self.running[rank] = Assigned(tid, att, now)
        else:
            if self.running.pop(rank, None) is not None:
                self._by_queue[0].discard(rank)
            if reachable:
                self.idle.add(rank)

    # -- replay (see .replay): the logged history, applied in order --------------------------------
    def restore_dispatch(self, trial_id: int, attempt: int, rank: int) -> None:
        e = self.trials.get(trial_id)
        if e is not None:
            e.attempts = max(e.attempts, attempt + 1)
            e.running[attempt] = rank

    def restore_end(self, trial_id: int, attempt: int) -> bool:
        """An attempt ended (any state): it is no longer running and no later result counts."""
        e = self.trials.get(trial_id)
        if e is None:
            return False
        e.running.pop(attempt, None)
        e.fenced.add(attempt)
        return True

    def restore_tell(self, trial_id: int) -> Optional[TrialEntry]:
        """The trial was finished; returns it, or None when unknown or already finished."""
        e = self.trials.get(trial_id)
        if e is None or e.done:
            return None
        e.done = True
        self.done += 1
        return e

    # -- takeover: running attempts of the old coordinator ---------------------------------------
    def settle(self, keep: Optional[Callable[[int], bool]] = None) -> None:
        """After replay: attempts that were running when the log ends are fenced and their trials
        re-queued — unless ``keep(rank)`` (takeover: the rank is alive), then they are orphans."""
        for tid, e in sorted(self.trials.items()):
            if e.done:
                continue
            if keep is not None:
                for att, rank in list(e.running.items()):
                    if keep(rank):
                        self.orphans[(tid, att)] = rank
                        self._orphans_of[rank].append((tid, att))
                    else:
                        e.running.pop(att)
                        e.fenced.add(att)
                if e.running:
                    continue
            e.fenced.update(e.running)  # interrupted attempts: fence them, run the trial again
            e.running.clear()
            self.requeue_trial(tid)

    def adopt(self, rank: int, key: Key, now: float) -> bool:
        """``rank`` proves it still runs orphan ``key``: it is its running attempt again."""
        if self.orphans.get(key) != rank or rank in self.running:
            return False
        del self.orphans[key]
        self._orphans_of[rank].remove(key)
        self._set_running(rank, Assigned(key[0], key[1], now))
        self.trials[key[0]].running[key[1]] = rank
        self.idle.discard(rank)
        return True

    def release_orphans(self, now: float, rank: Optional[int] = None) -> list[tuple[int, int, int]]:
        """Every orphan once the adoption window closed, else those of ``rank`` (it was lost):
        fenced, their trials re-queued.  Returns (trial, attempt, rank) released, in the order
        they were orphaned."""
        if rank is not None and not self._orphans_of.get(rank):
            return []
        if self.orphans and now >= self.orphan_deadline:
            keys = list(self.orphans)
            self._orphans_of.clear()
        elif rank is not None:
            keys = self._orphans_of.pop(rank)
        else:
            return []
        out = []
        for tid, att in keys:
            r = self.orphans.pop((tid, att))
            e = self.fence(tid, att)
            out.append((tid, att, r))
            if not e.done and not e.running and not self._in_requeue[tid]:
                self.requeue_trial(tid)
        return out
