"""``rdhpo watch`` as a user sees it: a real ``mpirun`` study (4 ranks, 24 sleep-based trials of
about 1.5 s), watched in ``tmux`` panes of 120 x 40 and read with ``capture-pane``.  While the
study runs the screen shows RUNNING, trials per rank with their last step and value, a progress
count that grows and the best value; after the end: FINISHED, 24/24 and the journal's best.  A
plain ``watch`` exits by itself at the end (final screen kept); ``watch --follow`` stays open
until ``q``, then exits 0 with the terminal back in canonical mode.

tmux is installed with apt-get when missing (root on Debian, as CI); the test is skipped, with
the reason, only when that is impossible.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Optional

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mpi_helpers import kill_group, mpi_env, mpirun_path

from rdhpo_hpc.results import result_from_records
from rdhpo_hpc.storage.journal import journal_path, read_journal

OBJ = Path(__file__).resolve().parent / "objectives.py"
TRIALS = 24
ROW = re.compile(r"^\s*(\d+)\s+\S+\s+live\s+(\d+)\s+(\d+)\s+([-+0-9.e]+)\s+\d+s\b", re.M)
DONE = re.compile(r"(\d+)/%d trials done" % TRIALS)

pytestmark = [
    pytest.mark.system,
    pytest.mark.timeout(240),  # tmux install (2 x 60 s at most) + the study and its screens (25 s)
    pytest.mark.skipif(mpirun_path() is None, reason="mpirun not found"),
]


def _install_tmux() -> Optional[str]:
    """tmux, installed with apt-get when missing and possible; None otherwise."""
    if shutil.which("tmux") is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "tmux"]):
            try:
                subprocess.run(cmd, env=env, capture_output=True, timeout=60, check=False)
            except subprocess.TimeoutExpired:
                break
    return shutil.which("tmux")


class Tmux:
    """A private tmux server (its own socket): sessions running a command, their screens."""

    def __init__(self, exe: str, env: dict) -> None:
        self.exe, self.env, self.sock = exe, env, f"rdhpo-watch-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str) -> str:
        p = subprocess.run(
            [self.exe, "-L", self.sock, *args], env=self.env, capture_output=True, text=True, timeout=20, check=False
        )
        return p.stdout

    def start(self, name: str, command: str) -> None:
        self("new-session", "-d", "-s", name, "-x", "120", "-y", "40", command)

    def screen(self, name: str) -> str:
        return self("capture-pane", "-p", "-t", name)

    def wait(self, name: str, pred: Callable[[str], bool], timeout: float, what: str) -> str:
        end = time.monotonic() + timeout
        text = ""
        while time.monotonic() < end:
            text = self.screen(name)
            if pred(text):
                return text
            time.sleep(0.2)
        pytest.fail(f"{what} not on the screen of {name!r} within {timeout}s; it shows:\n{text}")

    def close(self) -> None:
        self("kill-server")


@pytest.fixture
def tmux():
    exe = _install_tmux()
    if exe is None:
        pytest.skip("tmux is not installed and apt-get could not install it (needs root and a Debian package index)")
    t = Tmux(exe, mpi_env({"TERM": "xterm-256color", "LANG": "C.UTF-8"}))
    yield t
    t.close()


def write_config(tmp: Path) -> Path:
    import yaml

    cfg = {
        "name": "watched",
        "seed": 3,
        "objective": {"function": f"{OBJ}:sleepy"},
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "budget": {"max_trials": TRIALS},
        "output": str(tmp / "study.h5"),
        "fault_tolerance": {"gossip_interval": 0.2, "t_fail": 5, "end_grace": 3},
    }
    p = tmp / "study.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_watch_a_running_mpirun_study_in_tmux(tmux, tmp_path):
    cfg = write_config(tmp_path)
    results = tmp_path / "study.h5"
    log = open(tmp_path / "mpirun.log", "w")
    cmd = [mpirun_path(), "--with-ft", "ulfm", "-n", "4", sys.executable, "-m", "rdhpo_hpc", "run", str(cfg)]
    env = mpi_env({"RDHPO_TEST_STEP_S": "0.3", "RDHPO_TEST_STEPS": "5"})
    job = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, start_new_session=True)
    try:
        end = time.monotonic() + 60
        while not os.path.exists(journal_path(str(results))) and job.poll() is None and time.monotonic() < end:
            time.sleep(0.1)
        assert os.path.exists(journal_path(str(results))), (tmp_path / "mpirun.log").read_text()[-3000:]
        watch = f"cd {tmp_path} && {sys.executable} -m rdhpo_hpc watch {results} --interval 0.3"
        after = "echo WATCH-EXIT=$?; stty -a | tr ' ' '\\n' | grep -x -- '-\\?icanon'; sleep 120"
        tmux.start("follow", f"{watch} --follow; {after}")
        tmux.start("plain", f"{watch}; {after}")

        def running(s: str) -> bool:
            return "RUNNING" in s and ROW.search(s) is not None and bool(DONE.search(s))

        seen, first, shown = set(), "", ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and job.poll() is None:
            s = tmux.screen("follow")
            if running(s):
                done = int(DONE.search(s).group(1))  # type: ignore[union-attr]
                if done < TRIALS:
                    first = first or s
                    seen.add(done)
                if len(seen) >= 3 and re.search(r"best [-+0-9.e]+ \(trial \d+\)", s):
                    shown = s
                    break
            time.sleep(0.3)
        assert first, f"no running screen seen; last:\n{tmux.screen('follow')}"
        print("\n--- rdhpo watch on the running study ---\n" + (shown or first))
        assert len(seen) >= 2 and min(seen) < max(seen), f"progress never moved: {sorted(seen)}\n{first}"
        ranks = {int(m.group(1)) for m in ROW.finditer(first)}
        assert ranks and ranks <= {1, 2, 3}, first  # trials per rank, with their last step and value

        assert job.wait(timeout=90) == 0, (tmp_path / "mpirun.log").read_text()[-3000:]
        res = result_from_records(read_journal(journal_path(str(results))))
        assert res.best_trial is not None
        best = f"best {res.best_trial.value:.5g} (trial {res.best_trial.trial_id})"

        final = tmux.wait("follow", lambda s: "FINISHED" in s, 15, "FINISHED")
        assert f"{TRIALS}/{TRIALS} trials done (100%)" in final and best in final, final
        assert re.search(r"workers [1-3]/3 live", final), final  # a loaded machine may add a false death verdict
        assert "WATCH-EXIT" not in final  # --follow: still open after the end

        alone = tmux.wait("plain", lambda s: "WATCH-EXIT=" in s, 15, "the plain watch's exit")
        assert "WATCH-EXIT=0" in alone and "FINISHED" in alone and best in alone, alone  # final screen kept

        tmux("send-keys", "-t", "follow", "q")
        gone = tmux.wait("follow", lambda s: "WATCH-EXIT=" in s, 10, "the exit after q")
        assert "WATCH-EXIT=0" in gone, gone
        assert re.search(r"^icanon$", gone, re.M), f"terminal left in cbreak mode:\n{gone}"
    finally:
        if job.poll() is None:
            kill_group(job)
        log.close()
