"""The coordinator's event loop (rank 0, or the rank that took over).  No MPI / h5py / torch.

Wires optimizer + scheduler (what to run), the node (messages, failure verdicts) and the store
(the record log).  Every decision is journalled before it is acted on, so a new coordinator —
after a takeover or on ``--resume`` — rebuilds the same state by replaying the records.
"""
from __future__ import annotations

import collections
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, TextIO

from .config import StudyConfig
from .exitcodes import ExitCode
from .messages import Coordinator as CoordinatorMoved
from .messages import Decision, Hello, PeerDown, Report, Result, Stop, Task
from .node import Node
from .procs import kill_local
from .optimizers.base import Optimizer
from .schedulers.base import Scheduler
from .storage.base import Store
from .trial import Suggestion, TrialState, best_first



@dataclass
class TrialEntry:
    """The coordinator's view of one trial."""

    trial_id: int
    suggestion: Suggestion
    attempts: int = 0                 # attempts started so far
    done: bool = False
    running: dict[int, int] = field(default_factory=dict)   # attempt -> rank
    fenced: set = field(default_factory=set)                 # attempts whose result must not count


class CoordinatorLoop:
    """Runs the study until every trial is accounted for, a limit is hit, or a stop signal.

    Pipelining: when trials are very short (median attempt under ``PIPELINE_BELOW`` seconds, FIFO
    scheduler, two or more workers) each worker is sent up to ``PIPELINE_DEPTH`` attempts at once,
    so it starts the next one without waiting a round trip; the extra ones wait in
    ``queued[rank]`` (in the order the worker will run them) and are lost with the rank like the
    running one.  Long trials get one attempt at a time (a round trip is then negligible and the
    optimizer sees every result before its next suggestion)."""

    PIPELINE_BELOW = 0.05
    PIPELINE_DEPTH = 4

    def __init__(self, cfg: StudyConfig, node: Node, store: Store, optimizer: Optimizer,
                 scheduler: Scheduler, clock: Callable[[], float] = time.time,
                 out: TextIO = sys.stdout, start_time: Optional[float] = None) -> None:
        self.cfg, self.node, self.store = cfg, node, store
        self.optimizer, self.scheduler = optimizer, scheduler
        self.clock, self.out = clock, out
        self.start_time = start_time if start_time is not None else clock()
        self.trials: dict[int, TrialEntry] = {}
        self.requeue: collections.deque[int] = collections.deque()
        self.ready: collections.deque[int] = collections.deque()   # trials asked ahead (prefetch)
        self.prefetch_depth = max(node.size - 1, 1) if self._prefetch_allowed() else 0
        self.running: dict[int, tuple[int, int, float]] = {}    # rank -> (trial, attempt, start)
        self.queued: dict[int, collections.deque] = {}          # rank -> more (trial, attempt, sent)
        self.pipeline_allowed = type(scheduler) is Scheduler and node.size - 1 >= 2
        self._durations: collections.deque[float] = collections.deque(maxlen=32)  # recent attempts
        self.depth = 1               # attempts per worker at once (updated as results arrive)
        self.idle: set[int] = set()
        self.workers: dict[int, dict] = {}
        self.next_id = 0
        self.stop_reason: Optional[str] = None    # set by a signal or a limit
        self.silent: set[int] = set()               # ranks declared dead by gossip (maybe hung)
        self.finalize_ok = False                     # set at the end: MPI_Finalize is safe for all
        self.counts: collections.Counter = collections.Counter()
        self.best: Optional[tuple[tuple[float, float], int]] = None   # ((-budget, loss), trial id)
        self._last_progress = 0.0
        self._deadline = None if cfg.max_wall_time is None else self.start_time + cfg.max_wall_time
        self.orphans: dict[tuple[int, int], int] = {}   # after a takeover: (trial, attempt) -> rank
        self._orphan_deadline = 0.0
        self.shrink_info: Optional[dict] = None
        self.deposed = False      # another rank took over (we were hung): write nothing more

    # -- records -----------------------------------------------------------------------------
    def log(self, record_kind: str, **fields: Any) -> None:
        self.store.append({"k": record_kind, **fields})

    def event(self, kind: str, rank: int = -1, detail: str = "", latency: Optional[float] = None) -> None:
        self.log("event", time=self.clock(), kind=kind, rank=rank, detail=detail, latency=latency)

    # -- replay (resume / takeover) -----------------------------------------------------------
    def replay(self, records: list[dict], adopt: bool = False, adopt_window: Optional[float] = None) -> None:
        """Rebuild optimizer, scheduler and trial table from a record log, in logged order.

        ``adopt`` (takeover): attempts that were running on other ranks are kept for
        ``adopt_window`` seconds (default ``t_fail``), waiting for their worker's
        ``Hello(running=...)``; the ones nobody claims are then fenced and re-queued."""
        for r in records:
            k = r.get("k")
            if k == "ask":     # a suggestion asked ahead of dispatch (prefetch)
                self._replay_new_trial(r)
            elif k == "dispatch":
                tid = r["trial_id"]
                if r.get("new"):
                    self._replay_new_trial(r)
                e = self.trials.get(tid)
                if e is not None:
                    e.attempts = max(e.attempts, r["attempt"] + 1)
                    e.running[r["attempt"]] = r["rank"]
            elif k == "worker":   # host and pid: a takeover must be able to kill a hung worker
                self.workers[r["rank"]] = {"host": r.get("host", ""), "pid": r.get("pid"),
                                           "device": r.get("device", "")}
            elif k == "report":
                if r.get("decision") in ("continue", "stop"):
                    self.scheduler.on_report(r["trial_id"], r["step"], r["value"])
            elif k == "attempt":
                e = self.trials.get(r["trial_id"])
                if e is not None:
                    e.running.pop(r["attempt"], None)
                    e.fenced.add(r["attempt"])
                    self.counts[r["state"]] += r["state"] == "LOST"
            elif k == "tell":
                e = self.trials.get(r["trial_id"])
                if e is not None and not e.done:
                    e.done = True
                    self._tell(r["trial_id"], TrialState(r["state"]), r.get("value"), log=False)
        for tid, e in sorted(self.trials.items()):
            if e.done:
                continue
            if adopt:
                for att, rank in list(e.running.items()):
                    if rank != self.node.rank and self.node.is_alive(rank):
                        self.orphans[(tid, att)] = rank
                    else:
                        e.running.pop(att)
                        e.fenced.add(att)
                if e.running:
                    continue
            # interrupted attempts: fence them and run the trial again
            e.fenced.update(e.running)
            e.running.clear()
            self.requeue.append(tid)
        if self.orphans:
            self._orphan_deadline = self.clock() + (self.cfg.ft.t_fail if adopt_window is None else adopt_window)

    def _replay_new_trial(self, r: dict) -> None:
        """Ask the scheduler again, in logged order; the logged params win if they differ."""
        tid = r["trial_id"]
        sug = self.scheduler.next_trial(self.optimizer, tid)
        if sug is None or sug.params != r["params"]:
            sug = Suggestion(r["params"], r.get("budget"), r.get("checkpoint_from"), r.get("info") or {})
            self.optimizer.pending[tid] = r["params"]
        self.trials[tid] = TrialEntry(tid, sug)
        self.next_id = max(self.next_id, tid + 1)

    def _release_orphans(self, force_rank: Optional[int] = None) -> None:
        """Running attempts not claimed by their worker in time (or whose rank died): re-run."""
        now = self.clock()
        for (tid, att), rank in list(self.orphans.items()):
            if now < self._orphan_deadline and rank != force_rank and self.node.is_alive(rank):
                continue
            del self.orphans[(tid, att)]
            e = self.trials[tid]
            e.running.pop(att, None)
            e.fenced.add(att)
            self.event("orphan-released", rank, f"trial {tid} attempt {att} not claimed after takeover")
            if not e.done and not e.running and tid not in self.requeue:
                self.requeue.append(tid)

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> int:
        self.event("coordinator-start", self.node.rank, f"size={self.node.size} pid={os.getpid()} "
                                                        f"host={self.node.transport.host()}")
        while not self._finished():
            prefetch = self._wants_prefetch()
            got = self.node.recv(timeout=0 if prefetch else 0.25)
            if got is None and prefetch:
                self._prefetch_one()     # nothing to answer: prepare a suggestion for later
            n = 0
            while got is not None and n < 1000:
                self.handle(*got)
                if self.deposed:
                    return ExitCode.FAILED
                n += 1
                got = self.node.recv(timeout=0)
            self._check_limits()
            self._dispatch()
            self.store.flush()
            self._progress()
        return self._shutdown()

    def _finished(self) -> bool:
        if self.orphans:
            self._release_orphans()
        if self.running or self.orphans:
            return False
        if self.stop_reason is not None:
            return True
        if not self._live_workers():
            self.stop_reason = self.stop_reason or "no live workers"
            return True
        return not self.requeue and not self.ready and not self._can_create()

    def _can_create(self) -> bool:
        return (self.stop_reason is None and self.next_id < self.cfg.max_trials
                and not self.scheduler.exhausted(self.optimizer))

    def _live_workers(self) -> list[int]:
        """Workers alive by gossip and reachable on the direct link."""
        return [r for r in self.node.alive() if r != self.node.rank and r not in self.node.unreachable]

    def request_stop(self, reason: str) -> None:
        """Called from a signal handler (SIGTERM / SIGUSR1) or a limit: close cleanly, soon."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def _check_limits(self) -> None:
        if self._deadline is not None and self.clock() >= self._deadline and self.stop_reason is None:
            self.request_stop("max_wall_time")
        if self.stop_reason is not None and self.running:
            self._interrupt_running()

    def _interrupt_running(self) -> None:
        """On a stop: running attempts are abandoned (re-run on --resume), never counted."""
        self.event("interrupt", -1, f"{self.stop_reason}: {len(self.running)} running attempts left "
                                    f"to be re-run on resume")
        for rank in list(self.running):
            for tid, att, _ in self._take_assigned(rank):
                self.trials[tid].fenced.add(att)
                self.trials[tid].running.pop(att, None)
                self.node.send(rank, Decision(tid, att, False))

    # -- messages ------------------------------------------------------------------------------
    def handle(self, src: int, msg: Any) -> None:
        if isinstance(msg, Result):
            self._on_result(src, msg)
        elif isinstance(msg, Report):
            self._on_report(src, msg)
        elif isinstance(msg, Hello):
            self._on_hello(src, msg)
        elif isinstance(msg, PeerDown):
            self._on_peer_down(msg)
        elif isinstance(msg, CoordinatorMoved) and msg.rank != self.node.rank:
            # we were declared dead (hung) and replaced: the other coordinator owns the files now
            self.deposed = True
            print(f"[rdhpo] rank {self.node.rank}: replaced by coordinator rank {msg.rank}; leaving",
                  file=self.out, flush=True)

    def _on_hello(self, src: int, msg: Hello) -> None:
        if not self.node.is_alive(src):
            return
        dev = msg.device or {}
        self.workers[src] = {"host": msg.host, "pid": msg.pid, **dev}
        self.log("worker", rank=src, host=msg.host, pid=msg.pid, device=dev.get("device", ""),
                 device_name=dev.get("name", ""), memory_bytes=dev.get("memory_bytes"), time=self.clock())
        if msg.running is not None and src not in self.running:
            key = (int(msg.running[0]), int(msg.running[1]))
            if self._adopt(src, key, "hello"):
                return
            self.node.send(src, Decision(key[0], key[1], False))   # stale: stop it, fenced
            return
        if msg.running is not None and self.running.get(src, (None, None))[:2] == tuple(msg.running):
            return
        if msg.running is None and src in self.running:
            # it is not running what we think (its result went to a dead coordinator): re-run
            self._on_peer_down(PeerDown(src, "attempt-lost-in-takeover", 0.0), record=False)
        if src not in self.running:
            self.idle.add(src)

    def _adopt(self, src: int, key: tuple, how: str) -> bool:
        """After a takeover: ``src`` proves it still runs the attempt ``key``; keep it running."""
        if self.orphans.get(key) != src or src in self.running:
            return False
        del self.orphans[key]
        self.running[src] = (key[0], key[1], self.clock())
        self.trials[key[0]].running[key[1]] = src
        self.idle.discard(src)
        self.event("adopt", src, f"trial {key[0]} attempt {key[1]} still running on rank {src} ({how})")
        return True

    def _on_report(self, src: int, msg: Report) -> None:
        if self.orphans:
            self._adopt(src, (msg.trial_id, msg.attempt), "report")
        e = self.trials.get(msg.trial_id)
        current = e is not None and not e.done and msg.attempt not in e.fenced \
            and self.running.get(src, (None, None))[:2] == (msg.trial_id, msg.attempt)
        proceed = bool(current and self.scheduler.on_report(msg.trial_id, msg.step, msg.value))
        self.log("report", trial_id=msg.trial_id, attempt=msg.attempt, step=msg.step, value=msg.value,
                 metrics=msg.metrics, time=self.clock(),
                 decision=("continue" if proceed else "stop") if current else "fenced")
        self.node.send(src, Decision(msg.trial_id, msg.attempt, proceed))

    def _on_result(self, src: int, msg: Result) -> None:
        e = self.trials.get(msg.trial_id)
        if e is None:
            return
        if self.orphans:
            self._adopt(src, (msg.trial_id, msg.attempt), "result")
        start = math.nan
        run = self.running.get(src)
        if run is not None and run[:2] == (msg.trial_id, msg.attempt):
            start = run[2]
            self._advance(src)
        elif run is None and src in self.workers and self.node.is_alive(src) \
                and src not in self.node.unreachable and src != self.node.rank:
            self.idle.add(src)    # a stale attempt ended (e.g. after a takeover): the rank is free
        t0, t1 = msg.timings.get("start"), msg.timings.get("end")
        if t0 is not None and t1 is not None and self.pipeline_allowed:
            self._note_duration(t1 - t0)
        e.running.pop(msg.attempt, None)
        state = TrialState(msg.state)
        value = msg.value
        if state == TrialState.COMPLETE and (value is None or not math.isfinite(value)):
            state, value = TrialState.FAILED, None
        # first valid result wins: a late COMPLETE from a rank declared dead still counts if no
        # other attempt has finished the trial; anything else from a fenced attempt does not
        counted = not e.done and (msg.attempt not in e.fenced or state == TrialState.COMPLETE)
        row = dict(trial_id=msg.trial_id, attempt=msg.attempt, params=e.suggestion.params,
                   budget=e.suggestion.budget, rank=src, host=self.workers.get(src, {}).get("host", ""),
                   device=self.workers.get(src, {}).get("device", ""),
                   start_time=msg.timings.get("start", start), end_time=msg.timings.get("end", self.clock()),
                   metrics=msg.metrics, info=e.suggestion.info, checkpoint_from=e.suggestion.checkpoint_from)
        if not counted:
            why = "trial already finished" if e.done else "attempt was fenced (rank declared dead)"
            self.log("attempt", state="LOST", value=value, error=f"late result ignored: {why}", **row)
            return
        if msg.attempt in e.fenced:
            self.event("late-result-accepted", src, f"trial {msg.trial_id} attempt {msg.attempt}")
        self.log("attempt", state=state.value, value=value, error=msg.error, **row)
        self._finish(e, state, value)

    def _on_peer_down(self, msg: PeerDown, record: bool = True) -> None:
        rank = msg.rank
        self.idle.discard(rank)
        if msg.cause == "gossip-timeout":
            self.silent.add(rank)
        if not record:
            pass
        elif msg.cause == "unreachable":
            # alive by gossip, but no direct message for 1.5 x t_fail: its results cannot arrive
            self.event("rank-unreachable", rank, "alive by gossip, direct link silent", msg.latency)
        else:
            self.event("rank-dead", rank, msg.cause, msg.latency)
        if any(r == rank for r in self.orphans.values()):
            self._release_orphans(force_rank=rank)
        for tid, att, start in self._take_assigned(rank):
            self._lose(rank, tid, att, start, msg)

    def _lose(self, rank: int, tid: int, att: int, start: float, msg: PeerDown) -> None:
        """An attempt assigned to a dead / unreachable rank: LOST, then re-run (or FAILED at the cap)."""
        e = self.trials[tid]
        e.running.pop(att, None)
        e.fenced.add(att)
        self.counts["LOST"] += 1
        self.log("attempt", trial_id=tid, attempt=att, params=e.suggestion.params, budget=e.suggestion.budget,
                 rank=rank, host=self.workers.get(rank, {}).get("host", ""), state="LOST", value=None,
                 start_time=start, end_time=self.clock(), error=f"rank {rank} "
                 f"{'unreachable' if msg.cause == 'unreachable' else 'declared dead'} ({msg.cause}, "
                 f"{msg.latency:.2f}s after its last heartbeat)", info=e.suggestion.info,
                 checkpoint_from=e.suggestion.checkpoint_from, metrics={}, device="")
        if e.done:
            return
        if e.attempts > self.cfg.ft.max_retries:
            self.event("retries-exhausted", rank, f"trial {tid} lost {e.attempts} times")
            self.log("attempt", trial_id=tid, attempt=att, params=e.suggestion.params, budget=e.suggestion.budget,
                     rank=rank, host="", device="", state="FAILED", value=None, start_time=start,
                     end_time=self.clock(), error=f"lost on {e.attempts} workers (max_retries="
                     f"{self.cfg.ft.max_retries})", info=e.suggestion.info, metrics={},
                     checkpoint_from=e.suggestion.checkpoint_from)
            self._finish(e, TrialState.FAILED, None)
        else:
            self.requeue.append(tid)
            self.event("requeue", rank, f"trial {tid} attempt {e.attempts}")

    def _finish(self, e: TrialEntry, state: TrialState, value: Optional[float]) -> None:
        e.done = True
        self.log("tell", trial_id=e.trial_id, state=state.value, value=value)
        self._tell(e.trial_id, state, value)
        for att, rank in list(e.running.items()):   # duplicates still running: stop them
            e.fenced.add(att)
            self.node.send(rank, Decision(e.trial_id, att, False))

    def _tell(self, tid: int, state: TrialState, value: Optional[float], log: bool = True) -> None:
        self.optimizer.tell(tid, state, value)
        self.scheduler.on_result(tid, state, value)
        self.counts[state.value] += 1
        if value is not None and state == TrialState.COMPLETE:
            budget = self.trials[tid].suggestion.budget if tid in self.trials else None
            key = best_first(budget, self.optimizer.loss(value))     # as result.best_trial
            if self.best is None or key < self.best[0]:
                self.best = (key, tid)

    # -- dispatch ------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        if self.stop_reason is not None:
            return
        for rank in self._free_slots():
            if not self.node.is_alive(rank):
                self.idle.discard(rank)
                continue
            if self.requeue or self.ready:
                tid = (self.requeue or self.ready).popleft()
                if self.trials[tid].done:
                    continue
                self._send_task(rank, self.trials[tid], new=False)
            elif self._can_create():
                tid = self.next_id
                sug = self.scheduler.next_trial(self.optimizer, tid)
                if sug is None:
                    break
                self.next_id += 1
                e = self.trials[tid] = TrialEntry(tid, sug)
                self._send_task(rank, e, new=True)
            else:
                break

    # -- prefetch: expensive optimizers ask ahead while every worker is busy ---------------------
    def _prefetch_allowed(self) -> bool:
        """Only for optimizers that declare ``prefetch`` (model-based, slow asks) under the plain
        FIFO scheduler (budget schedulers — ASHA, PBT — decide from the state at dispatch time),
        and with two or more workers: with one worker the ask/tell order is fixed and a resumed
        study repeats an uninterrupted one exactly; asking ahead would make it depend on timing
        (with several workers, results arrive in a timing-dependent order anyway)."""
        return (bool(getattr(self.optimizer, "prefetch", False)) and type(self.scheduler) is Scheduler
                and self.node.size - 1 >= 2)

    def _wants_prefetch(self) -> bool:
        return (len(self.ready) < self.prefetch_depth and not self.idle and self._can_create())

    def _prefetch_one(self) -> None:
        """Ask one suggestion now (logged as ``ask``), so a wave of finishing workers is served
        from ``ready`` without waiting one ask each.  Pending asks count for the constant liar."""
        tid = self.next_id
        sug = self.scheduler.next_trial(self.optimizer, tid)
        if sug is None:
            self.prefetch_depth = len(self.ready)      # the optimizer has nothing more for now
            return
        self.next_id += 1
        self.trials[tid] = TrialEntry(tid, sug)
        self.log("ask", trial_id=tid, time=self.clock(), params=sug.params, budget=sug.budget,
                 checkpoint_from=sug.checkpoint_from, info=sug.info)
        self.ready.append(tid)

    def _send_task(self, rank: int, e: TrialEntry, new: bool) -> None:
        att = e.attempts
        e.attempts += 1
        s = e.suggestion
        now = self.clock()
        self.log("dispatch", trial_id=e.trial_id, attempt=att, rank=rank, time=now, new=new,
                 params=s.params, budget=s.budget, checkpoint_from=s.checkpoint_from, info=s.info)
        e.running[att] = rank
        if rank in self.running:
            self.queued.setdefault(rank, collections.deque()).append((e.trial_id, att, now))
        else:
            self.running[rank] = (e.trial_id, att, now)
        self.idle.discard(rank)
        self.node.send(rank, Task(e.trial_id, att, s.params, s.budget, s.checkpoint_from))

    # -- pipelining (see the class docstring) ------------------------------------------------------
    def _note_duration(self, seconds: float) -> None:
        """Per result (not per loop turn): depth = PIPELINE_DEPTH while the median of the recent
        attempts is under PIPELINE_BELOW, else 1."""
        self._durations.append(seconds)
        if len(self._durations) >= 8:
            median = sorted(self._durations)[len(self._durations) // 2]
            self.depth = self.PIPELINE_DEPTH if median < self.PIPELINE_BELOW else 1

    def _free_slots(self) -> list[int]:
        """Ranks to send one more attempt to, in order: idle ranks first, then (pipelining) busy
        ranks round-robin until each holds ``depth`` attempts."""
        slots = sorted(self.idle)
        depth = self.depth
        if depth > 1:
            busy = [r for r in sorted(self.running) if r not in self.node.unreachable]
            for level in range(1, depth):
                slots += [r for r in busy if len(self.queued.get(r, ())) < level]
        return slots

    def _advance(self, rank: int) -> None:
        """The running attempt of ``rank`` ended: its next queued one (if any) is now running."""
        q = self.queued.get(rank)
        if q:
            tid, att, _ = q.popleft()
            self.running[rank] = (tid, att, self.clock())
        else:
            self.running.pop(rank, None)
            if self.node.is_alive(rank) and rank not in self.node.unreachable:
                self.idle.add(rank)

    def _take_assigned(self, rank: int) -> list[tuple[int, int, float]]:
        """Remove and return every attempt assigned to ``rank`` (running first, then queued)."""
        run = self.running.pop(rank, None)
        return ([run] if run is not None else []) + list(self.queued.pop(rank, ()))

    # -- progress and the end ------------------------------------------------------------------
    def progress_line(self) -> str:
        el = self.clock() - self.start_time
        done = sum(1 for e in self.trials.values() if e.done)
        total = self.cfg.max_trials
        best = "-" if self.best is None else f"{self.optimizer.sign * self.best[0][1]:.5g} (trial {self.best[1]})"
        live = len(self._live_workers())
        return (f"[rdhpo {int(el) // 3600:02d}:{int(el) % 3600 // 60:02d}:{int(el) % 60:02d}] "
                f"trials {done}/{total} done, {len(self.running)} running | complete "
                f"{self.counts['COMPLETE']} pruned {self.counts['PRUNED']} failed {self.counts['FAILED']} "
                f"lost {self.counts['LOST']} | best {best} | workers {live}/{self.node.size - 1} live")

    def _progress(self, force: bool = False) -> None:
        now = self.clock()
        if force or now - self._last_progress >= self.cfg.progress_interval:
            self._last_progress = now
            print(self.progress_line(), file=self.out, flush=True)

    def _shutdown(self) -> int:
        status = "complete" if self.stop_reason is None else self.stop_reason
        hung = [(self.workers[r]["host"], self.workers[r]["pid"]) for r in sorted(self.silent)
                if r in self.workers and r not in self.node.transport.failed()]
        t = self.node.transport
        out = set(range(self.node.size)) - set(self.node.alive()) | set(self.node.unreachable)
        shrink = sorted(out) if (t.reports_failures and out and getattr(self.cfg.ft, 'shrink', True)) else None
        method = t.shrink_method(set(shrink)) if shrink else ""   # one choice for every survivor
        self.finalize_ok = status == "complete" and not out and not hung
        for r in self._live_workers():
            self.node.send(r, Stop(0, status, hung, shrink, method, self.finalize_ok))
        for r in sorted(self.node.unreachable):   # alive but cut off from us: Stop through a relay
            via = self.node.relay_for(r)
            if via is not None and self.node.is_alive(r):
                self.node.send_via(via, r, Stop(0, status, hung, shrink, method, self.finalize_ok))
                self.event("relay-stop", r, f"Stop relayed through rank {via}")
        if shrink is not None:
            info = self.node.shrink(set(shrink), timeout=max(self.cfg.ft.end_grace, 1.0), method=method)
            self.shrink_info = info
            if info is not None:
                ok = "error" not in info
                self.event("shrink" if ok else "shrink-failed", self.node.rank,
                           f"method={info.get('method')} size={info.get('size')} excluded={shrink} "
                           + ("" if ok else f"error={info.get('error')}"), info.get("duration"))
        if hung:   # after the shrink (see WorkerLoop.run)
            self.event("terminate-hung", -1, f"SIGKILL to hung ranks {sorted(self.silent)} at the end")
            kill_local(hung, self.node.transport.host())
        self._progress(force=True)
        code = self._exit_code(status)
        self.log("end", end_status=status, end_time=self.clock(), exit_code=int(code))
        self.store.flush()
        if code == ExitCode.FAILED and status == "complete":
            print(f"[rdhpo] every trial FAILED: see the errors with `rdhpo show {self.cfg.output or ''}`",
                  file=self.out, flush=True)
        return code

    def _exit_code(self, status: str) -> ExitCode:
        """The study's exit code, also written into the ``end`` record (the supervisor reads it)."""
        if status == "complete":
            every_failed = self.counts["FAILED"] and not (self.counts["COMPLETE"] or self.counts["PRUNED"])
            return ExitCode.FAILED if every_failed else ExitCode.OK
        if status == "max_wall_time":
            return ExitCode.OK
        if status.startswith("signal"):
            return ExitCode.STOPPED
        if status == "no live workers":
            return ExitCode.UNFINISHED    # resumable: a requeued job continues it
        return ExitCode.FAILED
