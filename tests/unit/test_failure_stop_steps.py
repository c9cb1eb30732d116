"""The failure policy in the coordinator's loop, one message at a time (fake node and clock): the
study stops on failures, interrupts what still runs, tells every worker, and ends with exit code 1."""

from __future__ import annotations

import pytest

from rdhpo_hpc.exitcodes import ExitCode
from rdhpo_hpc.messages import Decision, Stop

from test_coordinator_steps import Harness, start

pytestmark = pytest.mark.timeout(30)


def fail_until_stopped(h: Harness, tasks: dict, failing_ranks: tuple, turns: int = 20) -> None:
    """Ranks in ``failing_ranks`` fail every trial they get; the others keep running theirs."""
    for _ in range(turns):
        if h.loop.stop_reason is not None:
            return
        for r in failing_ranks:
            if r in tasks:
                h.result(r, tasks.pop(r), state="FAILED", value=None)
        h.turn()
        tasks.update({r: t for r, t in h.tasks().items() if r in failing_ranks})
    raise AssertionError("the study did not stop on failures")


def test_five_failures_first_stop_the_study_with_exit_code_1():
    h = Harness(workers=3, trials=100)
    tasks = start(h, 1, 2, 3)
    running_on_3 = tasks[3]
    fail_until_stopped(h, tasks, (1,))  # ranks 2 and 3 keep running their first trial
    assert h.loop.stop_reason == "max_failures"
    assert h.loop.study.counts["FAILED"] == 5
    assert [e["detail"] for e in h.events("failure-stop")] == [
        "the first 5 trials all FAILED (set max_failures to allow more failures before the study stops)"
    ]
    # rank 3's attempt is abandoned (re-run on --resume), never counted
    stops = [m for d, m in h.node.take(Decision) if d == 3 and m.trial_id == running_on_3.trial_id]
    assert stops and not stops[-1].proceed
    code = h.end()
    assert code == ExitCode.FAILED
    assert {d for d, m in h.node.take(Stop) if m.reason == "max_failures"} == {1, 2, 3}
    assert h.records("end")[-1]["exit_code"] == ExitCode.FAILED
    assert h.records("end")[-1]["end_status"] == "max_failures"


def test_a_success_among_the_first_trials_keeps_the_study_going():
    h = Harness(workers=2, trials=12)
    tasks = start(h, 1, 2)
    h.result(2, tasks.pop(2), state="COMPLETE", value=0.1)
    h.turn()
    tasks.update(h.tasks())
    for _ in range(30):
        if h.loop.finished():
            break
        for r in list(tasks):
            h.result(r, tasks.pop(r), state="FAILED", value=None)
        h.loop.turn()
        tasks.update(h.tasks())
    assert h.loop.stop_reason is None and h.end() == ExitCode.OK
    assert h.loop.study.counts["FAILED"] == 11 and not h.events("failure-stop")


def test_max_failures_option_stops_at_that_count():
    h = Harness(workers=2, trials=50, options={"max_failures": 2})
    tasks = start(h, 1, 2)
    fail_until_stopped(h, tasks, (1, 2))
    assert h.loop.study.counts["FAILED"] == 2 and h.end() == ExitCode.FAILED
