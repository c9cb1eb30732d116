"""What each message to the coordinator means: one handler per kind, each turning one message
into trial-table updates (``table.py``), records (journalled first) and replies to the worker.

* ``Hello`` — a worker (re)announces itself; after a takeover it names the attempt it still
  runs, which is adopted if it was an orphan, else told to stop.
* ``Report`` — an intermediate value: the scheduler decides continue/stop, only for the
  attempt that is current (a fenced one is answered "stop" and never reaches the scheduler).
  Only a worker that waits (a decision step) is answered "continue", with its next decision
  step; one that did not wait hears only a stop.
* ``Result`` — an attempt ended: counted if it is the first valid result, else kept as a LOST
  row; the worker starts its next queued attempt or becomes idle.  The first FAILED trial of
  each distinct error is logged (``rdhpo`` logger) with its params and where it was raised.
* ``PeerDown`` — a rank was declared dead or is unreachable: everything it held is LOST, its
  trials re-queued (FAILED at the retry cap).
* ``Coordinator`` — the role moved to another rank: this one was deposed, it writes nothing more.
* ``RouteChanged`` — the direct link to a worker fell silent and its traffic now goes through a
  relay, or the link healed: a ``route`` event; to a relay, the Tasks of the attempts the worker
  holds are sent again (one sent on the link as it fell silent is lost; the worker ignores a
  Task it already has) — the worker, on its side, says Hello again.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, TextIO

from ..config import StudyConfig
from ..failures import FirstFailures
from ..log import logger
from ..messages import Coordinator as CoordinatorMoved
from ..messages import Decision, Hello, PeerDown, Report, Result, RouteChanged, Task
from ..trial import TrialState
from . import records as rec
from .policy import Pipeline
from .port import NodePort
from .study import Study
from .table import TrialEntry, TrialTable, WorkerInfo


class Handlers:
    def __init__(
        self,
        cfg: StudyConfig,
        node: NodePort,
        table: TrialTable,
        study: Study,
        pipeline: Pipeline,
        record: rec.Recorder,
        clock: Callable[[], float],
        out: TextIO,
    ) -> None:
        self.cfg, self.node, self.table, self.study, self.pipeline = cfg, node, table, study, pipeline
        self.record, self.clock, self.out = record, clock, out
        self.workers: dict[int, WorkerInfo] = {}
        self.silent: set[int] = set()  # ranks declared dead by gossip (maybe hung)
        self.deposed = False  # another rank took over (we were hung)
        self.first_failures = FirstFailures()
        self._on: dict[type, Callable[[int, Any], None]] = {
            Result: self.on_result,
            Report: self.on_report,
            Hello: self.on_hello,
            PeerDown: self.on_peer_down,
            CoordinatorMoved: self.on_moved,
            RouteChanged: self.on_route,
        }

    def __call__(self, src: int, msg: Any) -> None:
        on = self._on.get(type(msg))
        if on is not None:
            on(src, msg)

    def on_moved(self, src: int, msg: CoordinatorMoved) -> None:
        if msg.rank != self.node.rank:  # we were declared dead (hung) and replaced: leave
            self.deposed = True
            print(
                f"[rdhpo] rank {self.node.rank}: replaced by coordinator rank {msg.rank}; leaving",
                file=self.out,
                flush=True,
            )

    def on_route(self, src: int, msg: RouteChanged) -> None:
        self.record.event("route", msg.peer, "direct again" if msg.via is None else f"through rank {msg.via}")
        if msg.via is not None:
            for a in self.table.held_by(msg.peer):
                self.node.send(msg.peer, self.task(a.trial_id, a.attempt))

    def task(self, trial_id: int, attempt: int) -> Task:
        """The Task message of an attempt (first sent by the coordinator's dispatch)."""
        s = self.table.trials[trial_id].suggestion
        return Task(trial_id, attempt, s.params, s.budget, s.checkpoint_from, self.study.next_decision(trial_id))

    def on_hello(self, src: int, msg: Hello) -> None:
        if not self.node.is_alive(src):
            return
        dev, t = msg.device or {}, self.table
        self.workers[src] = WorkerInfo(msg.host, msg.pid, dev.get("device", ""))
        self.record(rec.worker(src, msg.host, msg.pid, dev, self.clock()))
        claim = None if msg.running is None else (int(msg.running[0]), int(msg.running[1]))
        if claim is not None and src not in t.running:
            if not self.adopt(src, claim, "hello"):
                self.node.send(src, Decision(claim[0], claim[1], False))  # stale: stop it, fenced
            return
        if claim is None and src in t.running:
            # it is not running what we think (its result went to a dead coordinator): re-run
            self.drop_rank(src, "attempt-lost-in-takeover", 0.0)
        if src not in t.running:
            t.idle.add(src)

    def adopt(self, src: int, key: tuple[int, int], how: str) -> bool:
        """After a takeover: ``src`` proves it still runs the attempt ``key``; keep it running."""
        if not self.table.adopt(src, key, self.clock()):
            return False
        self.record.event("adopt", src, f"trial {key[0]} attempt {key[1]} still running on rank {src} ({how})")
        return True

    def release_orphans(self, rank: Optional[int] = None) -> None:
        """Orphans not claimed in time (or whose rank was lost): fenced and re-run."""
        for tid, att, r in self.table.release_orphans(self.clock(), rank):
            self.record.event("orphan-released", r, f"trial {tid} attempt {att} not claimed after takeover")

    def on_report(self, src: int, msg: Report) -> None:
        if self.table.orphans:
            self.adopt(src, (msg.trial_id, msg.attempt), "report")
        current = self.table.is_current(src, msg.trial_id, msg.attempt)
        proceed = current and self.study.report(msg.trial_id, msg.step, msg.value)
        self.record(
            rec.report(
                msg.trial_id,
                msg.attempt,
                msg.step,
                msg.value,
                msg.metrics,
                self.clock(),
                ("continue" if proceed else "stop") if current else "fenced",
            )
        )
        if proceed and msg.wait:
            self.node.send(src, Decision(msg.trial_id, msg.attempt, True, self.study.next_decision(msg.trial_id)))
        elif not proceed:
            self.node.send(src, Decision(msg.trial_id, msg.attempt, False))

    def on_result(self, src: int, msg: Result) -> None:
        e = self.table.trials.get(msg.trial_id)
        if e is None:
            return
        if self.table.orphans:
            self.adopt(src, (msg.trial_id, msg.attempt), "result")
        reachable = self.node.is_alive(src) and src not in self.node.unreachable
        start = self.table.end_attempt(
            src, msg.trial_id, msg.attempt, self.clock(), reachable, known=src in self.workers and src != self.node.rank
        )
        self.pipeline.note(msg.timings.get("start"), msg.timings.get("end"))
        state, value = TrialState(msg.state), msg.value
        if state == TrialState.COMPLETE and (value is None or not math.isfinite(value)):
            state, value = TrialState.FAILED, None
        why = self.table.why_not_counted(e, msg.attempt, state)
        w = self.workers.get(src)
        row = rec.ended(
            e.trial_id,
            msg.attempt,
            e.suggestion,
            src,
            TrialState.LOST if why else state,
            value,
            f"late result ignored: {why}" if why else msg.error,
            msg.timings.get("start", start),
            msg.timings.get("end", self.clock()),
            w.host if w else "",
            w.device if w else "",
            msg.metrics,
        )
        if why is None and msg.attempt in e.fenced:
            self.record.event("late-result-accepted", src, f"trial {msg.trial_id} attempt {msg.attempt}")
        self.record(row)
        if why is None:
            if state == TrialState.FAILED:
                self.tell_failure(e, row["error"])
            self.finish(e, state, value)

    def on_peer_down(self, src: int, msg: PeerDown) -> None:
        if msg.cause == "unreachable":  # alive by gossip, no direct message for 1.5 x t_fail
            self.record.event("rank-unreachable", msg.rank, "alive by gossip, direct link silent", msg.latency)
        else:
            self.record.event("rank-dead", msg.rank, msg.cause, msg.latency)
        if msg.cause == "gossip-timeout":
            self.silent.add(msg.rank)
        self.drop_rank(msg.rank, msg.cause, msg.latency)

    def drop_rank(self, rank: int, cause: str, latency: float) -> None:
        """Everything ``rank`` held is LOST, then re-run (or FAILED at the retry cap)."""
        self.release_orphans(rank)
        how, retries = ("unreachable" if cause == "unreachable" else "declared dead"), self.cfg.ft.max_retries
        for tid, att, start in self.table.take_assigned(rank):
            verdict = self.table.lose(tid, att, retries)
            e, w = self.table.trials[tid], self.workers.get(rank)
            self.study.counts[TrialState.LOST.value] += 1
            self.record(
                rec.ended(
                    tid,
                    att,
                    e.suggestion,
                    rank,
                    TrialState.LOST,
                    None,
                    f"rank {rank} {how} ({cause}, {latency:.2f}s after its last heartbeat)",
                    start,
                    self.clock(),
                    w.host if w else "",
                )
            )
            if verdict == "failed":
                self.record.event("retries-exhausted", rank, f"trial {tid} lost {e.attempts} times")
                error = f"lost on {e.attempts} workers (max_retries={retries})"
                self.record(
                    rec.ended(tid, att, e.suggestion, rank, TrialState.FAILED, None, error, start, self.clock())
                )
                self.tell_failure(e, error)
                self.finish(e, TrialState.FAILED, None)
            elif verdict == "requeued":
                self.record.event("requeue", rank, f"trial {tid} attempt {e.attempts}")

    def tell_failure(self, e: TrialEntry, error: str) -> None:
        """A trial FAILED: the first one of each distinct error is logged, once."""
        if self.first_failures.first(error):
            logger.warning(FirstFailures.message(e.trial_id, e.suggestion.params, error, self.cfg.output))

    def finish(self, e: TrialEntry, state: TrialState, value: Optional[float]) -> None:
        duplicates = self.table.finish(e)
        self.record(rec.tell(e.trial_id, state.value, value))
        self.study.tell(e.trial_id, state, value, e.suggestion.budget)
        for rank, att in duplicates:  # still running elsewhere: stop them
            self.node.send(rank, Decision(e.trial_id, att, False))
