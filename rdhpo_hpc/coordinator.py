"""The coordinator's event loop (rank 0, or the rank that took over).  No MPI / h5py / torch.

Glue, read top to bottom: take the node's messages and let ``coordination/handlers.py`` apply
each one to the trial table (``table.py``: what runs where, what counts) and to the optimizer
and scheduler (``study.py``); hand out work (``policy.py``: pipelining, prefetch); at the end
stop everyone (``shutdown.py``).  Every decision is journalled (``records.py``) before it is
acted on, so a new coordinator — after a takeover or on ``--resume`` — rebuilds the same state
by replaying the records (``replay.py``).  Time comes from ``clock``, messages from ``node``
(``port.py``): the tests and the simulator drive the loop in simulated time.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, Optional, TextIO

from .config import StudyConfig
from .coordination import records as rec
from .coordination import shutdown
from .coordination.handlers import Handlers
from .coordination.load import LoadMeter
from .coordination.policy import FailurePolicy, Pipeline, Prefetch
from .coordination.port import NodePort
from .coordination.replay import Replay, replay
from .coordination.study import Study
from .coordination.table import TrialEntry, TrialTable
from .exitcodes import ExitCode
from .messages import Decision
from .procs import kill_local
from .storage.base import Store


class CoordinatorLoop:
    """Runs the study until every trial is accounted for, a limit is hit, or a stop signal."""

    PIPELINE_BELOW, PIPELINE_DEPTH = Pipeline.BELOW, Pipeline.DEPTH
    BATCH = 1000  # messages handled per turn at most, then work is handed out

    def __init__(
        self,
        cfg: StudyConfig,
        node: NodePort,
        store: Store,
        optimizer: Any,
        scheduler: Any,
        clock: Callable[[], float] = time.time,
        out: TextIO = sys.stdout,
        start_time: Optional[float] = None,
        kill: shutdown.Kill = kill_local,
        cpu: Callable[[], float] = time.thread_time,
    ) -> None:
        self.cfg, self.node, self.store, self.clock, self.out, self.kill = cfg, node, store, clock, out, kill
        self.cpu = cpu  # the loop's CPU time, for its saturation warning (the simulator's: charged time)
        self.optimizer, self.scheduler = optimizer, scheduler
        self.study, self.table, self.record = Study(optimizer, scheduler), TrialTable(), rec.Recorder(store, clock)
        self.event = self.record.event
        ahead = self.study.dispatch_ahead and node.size - 1 >= 2
        self.pipeline = Pipeline(ahead)
        self.prefetch = Prefetch(ahead and self.study.prefetch, node.size - 1 if ahead else 0)
        self.on = Handlers(cfg, node, self.table, self.study, self.pipeline, self.record, clock, out)
        self.failures = FailurePolicy(cfg.max_failures, cfg.max_trials)
        self.start_time = start_time if start_time is not None else clock()
        self._deadline = None if cfg.max_wall_time is None else self.start_time + cfg.max_wall_time
        self._last_progress = 0.0
        self.load = LoadMeter(self.start_time, 0, cpu)
        self.stop_reason: Optional[str] = None  # set by a signal or a limit
        self.finalize_ok = False  # set at the end: MPI_Finalize is safe for all
        self.replayed: Optional[Replay] = None  # what replay did (resume, takeover)

    trials = property(lambda self: self.table.trials)
    requeue = property(lambda self: self.table.requeue)
    orphans = property(lambda self: self.table.orphans)
    workers = property(lambda self: self.on.workers)

    def replay(self, records: list[dict[str, Any]], adopt: bool = False, adopt_window: Optional[float] = None) -> None:
        """Rebuild the state from a record log.  ``adopt`` (takeover): attempts running on other
        live ranks wait ``adopt_window`` seconds (default ``t_fail``) for their worker's claim."""
        keep = (lambda r: r != self.node.rank and self.node.is_alive(r)) if adopt else None
        self.replayed = replay(records, self.table, self.study, self.on.workers, keep)
        self.table.orphan_deadline = self.clock() + (self.cfg.ft.t_fail if adopt_window is None else adopt_window)

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> int:
        self.start()
        while not self.finished():
            self.turn()
            if self.on.deposed:  # replaced by another coordinator: write nothing more
                return ExitCode.FAILED
        return self.close()

    def start(self) -> None:
        self.failures.start(self.study.counts)
        self.load = LoadMeter(self.clock(), self.table.done, self.cpu)  # from here: after any replay
        self.event(
            "coordinator-start",
            self.node.rank,
            f"size={self.node.size} pid={os.getpid()} host={self.node.transport.host()}",
        )

    def turn(self) -> None:
        """Wait for messages (or prepare a suggestion), handle a batch, then hand out work."""
        prefetch = self.prefetch.wants(len(self.table.ready), len(self.table.idle), self._can_create)
        got = self.node.recv(timeout=0 if prefetch else 0.25)
        if got is None and prefetch:
            self._prefetch_one()  # nothing to answer: prepare a suggestion for later
        n = 0
        while got is not None:
            self.on(*got)
            if self.on.deposed:
                return
            n += 1
            got = self.node.recv(timeout=0) if n < self.BATCH else None
        if self._deadline is not None and self.clock() >= self._deadline:
            self.request_stop("max_wall_time")
        self._check_failures()
        if self.stop_reason is not None and self.table.running:
            self._interrupt()
        self._dispatch()
        self.store.flush()
        self.progress()
        self._check_load()

    def finished(self) -> bool:
        self.on.release_orphans()
        if self.table.running or self.table.orphans:
            return False
        if self.stop_reason is not None or not (self.table.requeue or self.table.ready or self._can_create()):
            return True  # stopped, or nothing left to run: the study is complete
        if not self._has_live_worker():
            self.stop_reason = "no live workers"
            return True
        return False

    def request_stop(self, reason: str) -> None:
        """Called from a signal handler (SIGTERM / SIGUSR1) or a limit: close cleanly, soon."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def _check_failures(self) -> None:
        """The failure policy: too many FAILED trials stop the study (exit code FAILED)."""
        if self.stop_reason is not None or self.table.done >= self.cfg.max_trials:
            return  # stopping anyway, or every trial ran: the study ends as it is
        why = self.failures.verdict(self.study.counts)
        if why is not None:
            self.event("failure-stop", -1, why)
            print(f"[rdhpo] stopping the study: {why}", file=self.out, flush=True)
            self.request_stop("max_failures")

    def _check_load(self) -> None:
        """Warn once when the loop itself is the bottleneck (``coordination/load.py``)."""
        saturated = self.load.turn(self.clock(), self.table.done)
        if saturated is not None:
            self.event("coordinator-saturated", self.node.rank, saturated.message())
            print(f"[rdhpo] {saturated.message()}", file=self.out, flush=True)

    def _can_create(self) -> bool:
        return self.stop_reason is None and self.table.next_id < self.cfg.max_trials and not self.study.exhausted()

    def _has_live_worker(self) -> bool:
        """Some worker is alive by gossip and reachable: stops at the first one (``finished`` asks
        on every turn while suggestions are prepared ahead and no worker has said Hello yet)."""
        node = self.node
        return any(r != node.rank and r not in node.unreachable and node.is_alive(r) for r in range(node.size))

    def _live_workers(self) -> list[int]:
        """Workers alive by gossip and reachable on the direct link."""
        return [r for r in self.node.alive() if r != self.node.rank and r not in self.node.unreachable]

    def _interrupt(self) -> None:
        """On a stop: running attempts are abandoned (re-run on --resume), never counted."""
        self.event(
            "interrupt",
            -1,
            f"{self.stop_reason}: {len(self.table.running)} running attempts left to be re-run on resume",
        )
        for rank, a in self.table.interrupt():
            self.node.send(rank, Decision(a.trial_id, a.attempt, False))

    # -- handing out work: idle workers lowest rank first, then (pipelining) busy ones -----------
    def _dispatch(self) -> None:
        t = self.table
        if self.stop_reason is not None or not (t.requeue or t.ready or self._can_create()):
            return
        busy = (
            t.pipeline_slots(self.pipeline.depth, lambda r: r not in self.node.unreachable)
            if self.pipeline.depth > 1
            else []
        )
        if t.idle.offer(self._offer):
            for rank in busy:
                if not self._offer(rank):
                    break

    def _offer(self, rank: int) -> bool:
        """One more attempt for ``rank``; False when there is nothing more to hand out now."""
        if not self.node.is_alive(rank):
            self.table.idle.discard(rank)
            return True
        tid = self.table.next_waiting()
        if tid is not None:  # re-queued first, then asked ahead
            if not self.table.trials[tid].done:
                self._send_task(rank, self.table.trials[tid], new=False)
            return True
        sug = self.study.suggest(self.table.next_id) if self._can_create() else None
        if sug is None:
            return False
        self._send_task(rank, self.table.add(self.table.next_id, sug), new=True)
        return True

    def _prefetch_one(self) -> None:
        """Ask one suggestion now (logged as ``ask``): a wave of finishing workers is then served
        from ``ready`` without waiting one ask each.  Pending asks count for the constant liar."""
        sug = self.study.suggest(self.table.next_id)
        if sug is None:
            self.prefetch.dry(len(self.table.ready))  # the optimizer has nothing more for now
            return
        e = self.table.add(self.table.next_id, sug)
        self.record(rec.ask(e.trial_id, self.clock(), sug))
        self._snapshot(e.trial_id)
        self.table.ready.append(e.trial_id)

    def _send_task(self, rank: int, e: TrialEntry, new: bool) -> None:
        now, s = self.clock(), e.suggestion
        att = self.table.start(rank, e.trial_id, now)
        self.record(rec.dispatch(e.trial_id, att, rank, now, new, s))
        if new:
            self._snapshot(e.trial_id)
        self.node.send(rank, self.on.task(e.trial_id, att))

    def _snapshot(self, trial_id: int) -> None:
        """Right after the record that created ``trial_id``: the optimizer's state when a
        snapshot is due (a resume then need not ask again for the trials before it)."""
        fields = self.study.snapshot()
        if fields is not None:
            self.record(rec.snapshot(trial_id, fields))

    # -- progress and the end ------------------------------------------------------------------
    def progress_line(self) -> str:
        return self.study.progress_line(
            self.clock() - self.start_time,
            self.table.done,
            self.cfg.max_trials,
            len(self.table.running),
            len(self._live_workers()),
            self.node.size - 1,
        )

    def progress(self, force: bool = False) -> None:
        now = self.clock()
        if force or now - self._last_progress >= self.cfg.progress_interval:
            self._last_progress = now
            print(self.progress_line(), file=self.out, flush=True)

    def close(self) -> int:
        """End the study: stop every worker, shrink, kill hung ranks, write ``end``; the exit code."""
        plan = shutdown.plan(
            "complete" if self.stop_reason is None else self.stop_reason, self.node, self.on.silent, self.on.workers
        )
        self.finalize_ok = plan.finalize
        shutdown.execute(
            plan, self.node, self._live_workers(), self.cfg.ft.end_grace, self.event, self.kill, self.on.silent
        )
        self.progress(force=True)
        c = self.study.counts
        code = shutdown.exit_code(plan.status, c["FAILED"], c["COMPLETE"] + c["PRUNED"])
        self.record(rec.end(plan.status, self.clock(), code))
        self.store.flush()
        if code == ExitCode.FAILED and plan.status in ("complete", "max_failures"):
            where = (
                f"`rdhpo show {self.cfg.output}`"
                if self.cfg.output
                else "the returned result (`result.errors()`, `result.to_dataframe()`)"
            )
            what = "every trial FAILED" if plan.status == "complete" else "study stopped on failures"
            print(f"[rdhpo] {what}: see the errors with {where}", file=self.out, flush=True)
        return code
