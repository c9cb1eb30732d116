"""The supervisor (``rdhpo launch`` / ``rdhpo supervise``) against stand-in launchers: real child
processes (a stopped one among them) that write the files a study writes — the journal and the
heartbeat — or fail to.  Each bound is checked: the job ends, within it, with the right code, and
nothing of the launcher's process tree is left."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rdhpo_hpc.exitcodes import ExitCode
from rdhpo_hpc.supervise import Bounds, JournalTail, Supervisor

pytestmark = pytest.mark.timeout(60)

PRELUDE = textwrap.dedent("""
    import json, os, signal, sys, time
    results = sys.argv[1]
    journal, beat = results + ".journal", results + ".alive"
    def record(**r):
        with open(journal, "a") as fh:
            fh.write(json.dumps(r) + "\\n")
    def touch():
        open(beat, "a").close(); os.utime(beat)
    def stopped_child():
        pid = os.fork()
        if pid == 0:
            os.kill(os.getpid(), signal.SIGSTOP)
            os._exit(0)
        with open(results + ".child", "w") as fh:
            fh.write(str(pid))
        return pid
""")


def launcher(tmp: Path, body: str) -> list[str]:
    script = tmp / "launcher.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    return [sys.executable, str(script), str(tmp / "out.h5")]


def supervise(tmp: Path, body: str, **bounds) -> tuple[int, float, list[str]]:
    said: list[str] = []
    b = Bounds(
        str(tmp / "out.h5"),
        **{"t_fail": 1.0, "end_grace": 1.0, "startup_timeout": 3.0, "margin": 1.0, "stop_grace": 2.0, **bounds},
    )
    sup = Supervisor(launcher(tmp, body), b, say=said.append)
    t0 = time.monotonic()
    code = sup.run()
    return code, time.monotonic() - t0, said


def assert_gone(tmp: Path) -> None:
    child = tmp / "out.h5.child"
    if child.exists():
        pid = int(child.read_text())
        for _ in range(50):
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    state = fh.read().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                return
            if state == "Z":
                return
            time.sleep(0.1)
        pytest.fail(f"process {pid} of the job still exists after the supervisor returned")


def test_finished_study_passes_on_the_exit_code_of_its_end_record(tmp_path):
    code, wall, said = supervise(
        tmp_path,
        """
        touch(); record(k="end", end_status="complete", exit_code=1); sys.exit(0)
    """,
    )
    assert code == ExitCode.FAILED and wall < 5 and not said


def test_startup_that_never_finishes_is_killed_with_exit_startup(tmp_path):
    code, wall, said = supervise(
        tmp_path,
        """
        stopped_child(); time.sleep(600)
    """,
    )
    assert code == ExitCode.STARTUP
    assert 3.0 <= wall < 10, wall
    assert any("start-up did not finish within 3 s" in m for m in said), said
    assert_gone(tmp_path)


def test_launcher_dying_in_startup_is_exit_startup_not_success(tmp_path):
    code, _, said = supervise(tmp_path, "sys.exit(0)")
    assert code == ExitCode.STARTUP, said


def test_config_error_exit_code_is_passed_through(tmp_path):
    code, _, said = supervise(tmp_path, "sys.exit(2)")
    assert code == ExitCode.CONFIG and not said


def test_processes_left_after_the_end_record_are_killed_within_the_end_bound(tmp_path):
    code, wall, said = supervise(
        tmp_path,
        """
        touch(); stopped_child(); record(k="end", end_status="complete", exit_code=0)
        time.sleep(600)
    """,
    )
    assert code == ExitCode.OK
    assert 2.0 <= wall < 8, wall  # end_grace 1 + margin 1
    assert any("still running" in m for m in said), said
    assert_gone(tmp_path)


def test_launcher_exiting_0_without_end_record_is_unfinished(tmp_path):
    """The node-crash case: PRTE ends the job with exit 0 although the study did not finish."""
    code, _, said = supervise(tmp_path, "touch(); time.sleep(0.5); sys.exit(0)")
    assert code == ExitCode.UNFINISHED
    assert any("did not finish" in m for m in said), said


def test_coordinator_heartbeat_going_stale_ends_the_job_unfinished(tmp_path):
    code, wall, said = supervise(
        tmp_path,
        """
        stopped_child()
        for _ in range(10):
            touch(); time.sleep(0.2)
        time.sleep(600)                 # the coordinator hangs: no more heartbeats
    """,
    )
    assert code == ExitCode.UNFINISHED
    assert 3.0 <= wall < 10, wall  # 2 s of beats + 2 t_fail + margin = 3 s stale
    assert any("no coordinator alive" in m for m in said), said
    assert_gone(tmp_path)


def test_heartbeat_keeps_a_long_quiet_study_alive(tmp_path):
    code, wall, _ = supervise(
        tmp_path,
        """
        for _ in range(30):
            touch(); time.sleep(0.2)    # 6 s: twice the stale bound, but beating
        record(k="end", end_status="complete", exit_code=0)
    """,
    )
    assert code == ExitCode.OK and wall >= 6


def test_stop_signal_is_forwarded_and_ranks_that_ignore_it_are_killed(tmp_path):
    said: list[str] = []
    b = Bounds(str(tmp_path / "out.h5"), t_fail=5.0, end_grace=1.0, startup_timeout=30.0, margin=1.0, stop_grace=2.0)
    sup = Supervisor(
        launcher(
            tmp_path,
            """
        signal.signal(signal.SIGUSR1, lambda *a: open(results + ".usr1", "w").close())
        while True:
            touch(); time.sleep(0.2)
    """,
        ),
        b,
        say=said.append,
    )
    import threading

    threading.Timer(1.5, lambda: os.kill(os.getpid(), signal.SIGUSR1)).start()
    old = signal.getsignal(signal.SIGUSR1)
    try:
        code = sup.run()
    finally:
        signal.signal(signal.SIGUSR1, old)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
    assert code == ExitCode.STOPPED
    assert (tmp_path / "out.h5.usr1").exists(), "the launcher never got SIGUSR1"
    assert any("treating it as a stop" in m for m in said), said


def test_journal_tail_sees_only_records_of_this_launch_and_follows_a_recreated_file(tmp_path):
    j = tmp_path / "out.h5.journal"
    j.write_text(json.dumps({"k": "end", "exit_code": 0}) + "\n")  # an earlier run's end
    tail = JournalTail(str(j))
    assert tail.new_records() == []
    with open(j, "a") as fh:
        fh.write('{"k": "study"}\n{"k": "ev')  # a torn last line
    assert tail.new_records() == [{"k": "study"}]
    with open(j, "a") as fh:
        fh.write('ent"}\n')
    assert tail.new_records() == [{"k": "event"}]
    j.unlink()  # --overwrite
    j.write_text('{"k": "end"}\n')
    assert tail.new_records() == [{"k": "end"}]
