"""The worker's event loop (ranks 1..N-1).  No MPI / h5py / torch imports.

Announces itself, then runs one attempt per Task: the objective gets a
:class:`~rdhpo_hpc.context.TrialContext` whose ``report`` sends a Report.  It waits (bounded) for
the Decision only at a decision step — its first report at or above ``decide_from``, the step
the coordinator sent with the Task and with each Decision (the scheduler's next rung); between
decision steps it only looks at what arrived (a stop) and goes on training.  Errors travel as
FAILED results, never as a dying process.  A per-attempt time
limit first asks the objective to stop (next report raises TrialPruned), then — if the objective
does not come back — sends a FAILED result and calls ``hard_exit`` (SIGKILL of this process under
MPI, so the runtime sees a clean failure instead of a rank stuck in MPI_Finalize).
"""

from __future__ import annotations

import collections
import math
import os
import threading
import time
import traceback
from typing import Any, Callable, Optional

from .context import TrialContext
from .errors import TrialPruned
from .exitcodes import ExitCode
from .messages import Coordinator as CoordinatorMoved
from .messages import Decision, Hello, PeerDown, Report, Result, RouteChanged, Stop, Task
from .node import Node
from .procs import kill_local


class WorkerLoop:
    def __init__(
        self,
        node: Node,
        objective: Callable[[dict, TrialContext], float],
        device: dict,
        checkpoint_root: Optional[str] = None,
        trial_time_limit: Optional[float] = None,
        decision_timeout: float = 60.0,
        hard_exit: Callable[[], None] = lambda: None,
        on_trial_end: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.objective = objective
        self.device = device
        self.checkpoint_root = checkpoint_root
        self.time_limit = trial_time_limit
        self.decision_timeout = decision_timeout
        self.hard_exit = hard_exit
        self.on_trial_end = on_trial_end
        self.clock = clock
        self.stopped: set[tuple[int, int]] = set()  # attempts the coordinator told to stop
        self.current: Optional[tuple[int, int]] = None
        # the latest attempts received: a Task sent again (the coordinator re-sends on a route
        # change; a healed link may deliver the first copy late) is not run twice
        self._received: collections.OrderedDict[tuple[int, int], None] = collections.OrderedDict()
        self.decide_from: Optional[int] = 0  # the current attempt waits at reports with step >= this
        self._deferred: list[tuple[int, Any]] = []
        self.exit_code: Optional[int] = None
        self.shrink: Optional[list] = None  # from Stop: ULFM end-of-study shrink
        self.finalize_ok = False  # from Stop: MPI_Finalize is safe for all
        self.shrink_timeout = 10.0
        self.shrink_info: Optional[dict] = None
        self.shrink_method = ""
        self.kill_at_end: list = []
        self._for_coordinator: list[tuple[int, Any]] = []

    @property
    def coordinator(self) -> int:
        return self.node.coordinator

    def run(self) -> int:
        """Serve tasks until Stop, or until the coordinator is gone; returns the exit code."""
        self._hello()
        while self.exit_code is None:
            got = self._deferred.pop(0) if self._deferred else self.node.recv(timeout=1.0)
            if got is None:
                continue
            src, msg = got
            if isinstance(msg, Task):
                if src > self.coordinator and self.node.takeover:
                    self.node.coordinator = src  # a newer coordinator reached us before the news
                if src >= self.coordinator and self._first_copy(msg):  # never from a replaced (hung) coordinator
                    self._run_task(msg)
            else:
                self._control(src, msg)
        if self.exit_code == ExitCode.COORDINATOR_LOST and self.node.coordinator == self.node.rank:
            for item in self._for_coordinator:  # hand them to the coordinator loop of this rank
                self.node.push_back(*item)
        if self.shrink is not None and self.node.rank not in self.shrink:
            # the survivors (coordinator included) build a communicator without the failed ranks
            self.shrink_info = self.node.shrink(set(self.shrink), self.shrink_timeout, self.shrink_method)
        # hung ranks die only after the shrink: Create_group without them is instant while they are
        # stopped, but a failure appearing in the middle of it can break it (measured)
        kill_local(self.kill_at_end, self.node.transport.host())
        return self.exit_code

    def _first_copy(self, task: Task) -> bool:
        """False for a Task this worker has already received (it remembers the last 1,024)."""
        key = (task.trial_id, task.attempt)
        if key in self._received:
            return False
        self._received[key] = None
        if len(self._received) > 1024:
            self._received.popitem(last=False)
        return True

    def _hello(self) -> None:
        self.node.send(
            self.coordinator, Hello(self.node.transport.host(), self.device, os.getpid(), running=self.current)
        )

    def _control(self, src: int, msg: Any) -> None:
        """Messages other than Task, in or between attempts."""
        if isinstance(msg, Stop):
            self.kill_at_end = msg.kill
            self.shrink = msg.shrink
            self.shrink_method = msg.shrink_method
            self.finalize_ok = msg.finalize
            self.exit_code = msg.exit_code
        elif isinstance(msg, Decision) and not msg.proceed:
            self.stopped.add((msg.trial_id, msg.attempt))
        elif isinstance(msg, PeerDown) and msg.rank == self.coordinator and not self.node.takeover:
            self.exit_code = ExitCode.COORDINATOR_LOST
        elif isinstance(msg, PeerDown) and self.node.takeover:
            self._for_coordinator.append((src, msg))  # recorded if this rank becomes coordinator
        elif isinstance(msg, (Hello, Report, Result)):
            # meant for a coordinator: peers learned that this rank takes over before it did
            self._for_coordinator.append((src, msg))
        elif isinstance(msg, CoordinatorMoved):
            if msg.rank == self.node.rank:
                self.exit_code = ExitCode.COORDINATOR_LOST  # the launcher turns this rank into the coordinator
            else:
                self._hello()
        elif isinstance(msg, RouteChanged) and msg.peer == self.coordinator and msg.via is not None:
            # the direct link fell silent: what we sent on it lately may be lost; Hello tells the
            # coordinator what we are running (it re-runs an attempt whose result never came)
            self._hello()

    # -- one attempt ---------------------------------------------------------------------------
    def _run_task(self, task: Task) -> None:
        key = (task.trial_id, task.attempt)
        self.current, self.decide_from = key, task.decide_from
        ckpt_dir = ckpt_from = None
        if self.checkpoint_root:
            ckpt_dir = os.path.join(self.checkpoint_root, f"trial-{task.trial_id}")
            os.makedirs(ckpt_dir, exist_ok=True)
            if task.checkpoint_from is not None:
                ckpt_from = os.path.join(self.checkpoint_root, f"trial-{task.checkpoint_from}")
        ctx = TrialContext(
            trial_id=task.trial_id,
            attempt=task.attempt,
            budget=task.budget,
            device=self.device.get("device", "cpu"),
            checkpoint_dir=ckpt_dir,
            checkpoint_from=ckpt_from,
            rank=self.node.rank,
        )
        ctx.send_report = lambda step, value, metrics: self._report(task, step, value, metrics)
        start = self.clock()
        watchdog = self._watchdog(task, ctx, start)
        state, value, error = "COMPLETE", None, ""
        try:
            value = self.objective(dict(task.params), ctx)
            value = objective_value(value)
            if not math.isfinite(value):
                state, error = "FAILED", f"objective returned {value!r}"
        except TrialPruned:
            state, value = "PRUNED", ctx.last_value
        except BadReturn as exc:
            state, value, error = "FAILED", None, str(exc)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the objective's errors become FAILED trials
            state, value = "FAILED", None
            error = f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exc(limit=-4))[-2000:]
        finally:
            if watchdog is not None:
                watchdog.cancel()
        self.on_trial_end()
        self.current = None
        if watchdog is not None and watchdog.fired and state != "COMPLETE":
            state, error = "FAILED", f"trial time limit of {self.time_limit}s exceeded"
        metrics = {"last_step": ctx.last_step} if ctx.last_step is not None else {}
        self.node.send(
            self.coordinator,
            Result(task.trial_id, task.attempt, state, value, metrics, error, {"start": start, "end": self.clock()}),
        )

    def _report(self, task: Task, step: int, value: float, metrics: dict) -> bool:
        """Called by ``ctx.report``: send the Report; at a decision step wait (bounded) for the
        Decision, otherwise only take what already arrived.  False = stop the trial."""
        key = (task.trial_id, task.attempt)
        self._poll(key)
        if key in self.stopped or self.exit_code is not None:
            return False
        wait = self.decide_from is not None and step >= self.decide_from
        report = Report(task.trial_id, task.attempt, step, value, metrics, wait)
        self.node.send(self.coordinator, report)
        if not wait:
            return True
        deadline = time.monotonic() + self.decision_timeout
        while time.monotonic() < deadline:
            got = self.node.recv(timeout=min(1.0, max(deadline - time.monotonic(), 0)))
            if got is None:
                continue
            msg = got[1]
            if isinstance(msg, Decision) and (msg.trial_id, msg.attempt) == key:
                if not msg.proceed:
                    self.stopped.add(key)
                self.decide_from = msg.decide_from
                return msg.proceed and key not in self.stopped
            self._between(got)
            if self.exit_code is not None or key in self.stopped:
                return False
            if isinstance(msg, (CoordinatorMoved, RouteChanged)):  # the report may be lost: again
                self.node.send(self.coordinator, report)
                deadline = time.monotonic() + self.decision_timeout
        return key not in self.stopped  # no answer in time: keep training, the result still counts

    def _poll(self, key: tuple[int, int]) -> None:
        """What arrived while the objective trained (a stop, the end of the study), not waiting."""
        while self.exit_code is None and key not in self.stopped:
            got = self.node.recv(timeout=0)
            if got is None:
                return
            self._between(got)

    def _between(self, got: tuple[int, Any]) -> None:
        """A message that arrives during an attempt: Tasks wait for its end, the rest is control."""
        if isinstance(got[1], Task):
            self._deferred.append(got)
        else:
            self._control(*got)

    def _watchdog(self, task: Task, ctx: TrialContext, start: float) -> Optional["_Watchdog"]:
        if not self.time_limit:
            return None
        return _Watchdog(self, task, start).start()


class BadReturn(TypeError):
    """The objective returned something that is not one number."""


def objective_value(v: Any) -> float:
    """The objective's return value as a float; :class:`BadReturn` naming what came back when it
    is not one number (None, a dict of metrics, a string, a list, a tensor of several values)."""
    if v is None:
        raise BadReturn("objective returned None; it must return one number (the metric), e.g. `return val_loss`")
    if isinstance(v, (str, bytes, dict, list, tuple, set)) or isinstance(v, bool):
        kind = type(v).__name__
        shown = repr(v) if len(repr(v)) <= 80 else repr(v)[:77] + "..."
        hint = " (pick one metric: `return metrics['val_loss']`)" if isinstance(v, dict) else ""
        raise BadReturn(f"objective returned a {kind}, {shown}; it must return one number{hint}")
    try:
        return float(v)  # int, float, NumPy scalars, one-element tensors
    except (TypeError, ValueError) as exc:
        raise BadReturn(
            f"objective returned a {type(v).__name__} that is not one number ({exc}); return a float"
        ) from None


class _Watchdog:
    """Enforces the per-attempt time limit: ask to stop, then (after a grace) fail and hard-exit."""

    def __init__(self, loop: WorkerLoop, task: Task, start: float) -> None:
        self.loop, self.task, self.start_time = loop, task, start
        self.fired = False
        self._cancel = threading.Event()

    def start(self) -> "_Watchdog":
        threading.Thread(target=self._run, daemon=True, name="rdhpo-watchdog").start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def _run(self) -> None:
        limit = self.loop.time_limit or 0.0
        if self._cancel.wait(limit):
            return
        self.fired = True
        key = (self.task.trial_id, self.task.attempt)
        self.loop.stopped.add(key)  # the next report raises TrialPruned
        grace = min(max(0.1 * limit, 2.0), 30.0)
        if self._cancel.wait(grace):
            return
        self.loop.node.send(
            self.loop.coordinator,
            Result(
                self.task.trial_id,
                self.task.attempt,
                "FAILED",
                None,
                {},
                f"trial time limit of {limit}s exceeded and the objective did not return within "
                f"{grace:.0f}s grace: worker rank {self.loop.node.rank} ended itself",
                {"start": self.start_time, "end": self.loop.clock()},
            ),
        )
        self.loop.node.close(drain_timeout=2.0)
        self.loop.hard_exit()
