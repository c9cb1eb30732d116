"""The worker's side of the report protocol (``worker.py``), on a fake node without threads: a
worker waits for a decision only at a decision step (``decide_from`` of its Task, then of each
Decision) and otherwise goes on training; a stop that arrives meanwhile ends the attempt at its
next report."""

from __future__ import annotations

import collections
from typing import Any, Callable, Optional

import pytest

from rdhpo_hpc.messages import Decision, Report, Result, Stop, Task
from rdhpo_hpc.worker import WorkerLoop

pytestmark = pytest.mark.timeout(10)


class Transport:
    def host(self) -> str:
        return "hostA"


class WorkerNode:
    """The worker's node: ``answer(report)`` plays the coordinator; the log says what the worker
    sent and where it blocked (a ``recv`` with a timeout while nothing had arrived)."""

    def __init__(self, answer: Callable[[Report], list]) -> None:
        self.rank, self.coordinator, self.takeover = 1, 0, False
        self.transport = Transport()
        self.inbox: collections.deque = collections.deque()
        self.answer = answer
        self.log: list[tuple] = []

    def send(self, dest: int, msg: Any) -> None:
        if isinstance(msg, Report):
            self.log.append(("report", msg.step, msg.wait))
            self.inbox.extend((0, m) for m in self.answer(msg))
        elif isinstance(msg, Result):
            self.log.append(("result", msg.state, msg.metrics.get("last_step")))
            self.inbox.append((0, Stop()))

    def recv(self, timeout: float) -> Optional[tuple[int, Any]]:
        if not self.inbox and timeout > 0:
            self.log.append(("blocked",))
            raise AssertionError("the worker waits for a message that never comes")
        return self.inbox.popleft() if self.inbox else None


def run(task: Task, answer: Callable[[Report], list], steps: int = 5) -> list[tuple]:
    def objective(config: dict, ctx: Any) -> float:
        for step in range(1, steps + 1):
            ctx.report(step, 1.0 / step)
        return 0.1

    node = WorkerNode(answer)
    node.inbox.append((0, task))
    assert WorkerLoop(node, objective, {"device": "cpu"}).run() == 0  # type: ignore[arg-type]
    return node.log


def test_worker_waits_only_at_decision_steps() -> None:
    nxt = {3: 5, 5: None}  # the coordinator's next decision step after each waited report

    def coordinator(r: Report) -> list:
        return [Decision(r.trial_id, r.attempt, True, nxt[r.step])] if r.wait else []

    log = run(Task(7, 0, {}, 5, decide_from=3), coordinator)
    # steps 1, 2 and 4 travel without waiting; at 3 and 5 the answer is read before going on
    assert log == [
        ("report", 1, False),
        ("report", 2, False),
        ("report", 3, True),
        ("report", 4, False),
        ("report", 5, True),
        ("result", "COMPLETE", 5),
    ]


def test_stop_at_a_decision_step_and_a_stop_that_arrives_while_training() -> None:
    def stop_at_3(r: Report) -> list:
        return [Decision(r.trial_id, r.attempt, r.step < 3, 3)] if r.wait else []

    log = run(Task(7, 0, {}, 5, decide_from=3), stop_at_3)
    assert log[-2:] == [("report", 3, True), ("result", "PRUNED", 3)]  # the same step as when waiting at each

    def finished_elsewhere(r: Report) -> list:  # an unsolicited stop, e.g. a duplicate completed
        return [Decision(r.trial_id, r.attempt, False)] if r.step == 2 else []

    log = run(Task(7, 0, {}, 5, decide_from=None), finished_elsewhere)
    assert log == [("report", 1, False), ("report", 2, False), ("result", "PRUNED", 3)]


def test_a_scheduler_that_decides_at_every_step_gets_a_wait_at_every_report() -> None:
    def coordinator(r: Report) -> list:
        return [Decision(r.trial_id, r.attempt, True, 0)]  # 0 (the default): every report

    log = run(Task(7, 0, {}, 3), coordinator, steps=3)
    assert log == [("report", 1, True), ("report", 2, True), ("report", 3, True), ("result", "COMPLETE", 3)]


def test_a_task_received_twice_runs_once() -> None:
    """The coordinator sends a Task again when the route to the worker changes (its first copy
    may be lost on the link that fell silent, or arrive late through it once it heals)."""
    task = Task(7, 0, {}, 3, decide_from=None)

    def resend_while_training(r: Report) -> list:
        return [task] if r.step == 2 else []

    log = run(task, resend_while_training, steps=3)
    assert log == [("report", 1, False), ("report", 2, False), ("report", 3, False), ("result", "COMPLETE", 3)]
