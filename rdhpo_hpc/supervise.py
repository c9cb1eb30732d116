"""The job's guard outside MPI: runs the launcher (``mpirun`` / ``srun``) and makes sure the job
ends.  Used by ``rdhpo launch`` (one machine) and the SLURM scripts (``rdhpo supervise``).

It watches files only, never MPI state: the results journal (this launch's ``end`` record and
the exit code in it) and the coordinator's heartbeat file (``RESULTS.alive``, whose mtime the
coordinating rank's pump thread refreshes every gossip interval, replay and takeover included).
Rules, checked every 0.2 s:

============================================  =========================  ==========================
phase                                         bound                      then
============================================  =========================  ==========================
start-up (launch until the first heartbeat)   ``startup_timeout``        kill, exit 5 (STARTUP)
running                                       heartbeat older than       kill, exit 6 (UNFINISHED)
                                              ``2 t_fail + 15 s``
ended (the ``end`` record is written)         ``end_grace + 15 s``       kill, the record's code
stop asked (SIGUSR1 / SIGTERM / SIGINT,       ``stop_grace``             kill, exit 3 (STOPPED)
forwarded to the launcher as SIGUSR1)
the launcher exits                            -                          the record's code; none:
                                                                         2 stays 2, 5 before the
                                                                         first heartbeat, else 6
============================================  =========================  ==========================

Killing: SIGKILL to every process of the launcher's tree and session, collected before any of
them dies (stopped ones die too); ``srun`` first gets SIGTERM, which cancels its step on every
node.  Ranks die with their parent daemon (``PR_SET_PDEATHSIG``, see
:func:`rdhpo_hpc.launch.guard_startup`); under SLURM the batch script then exits and SLURM ends
the job on every node.  So an unfinished study never ends under exit code 0, and a job always
ends within the bounds above, whatever MPI does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from .exitcodes import ExitCode
from .log import logger
from .storage.journal import heartbeat_path, journal_path, read_from

POLL_S = 0.2
END_MARGIN_S = 15.0


@dataclass
class Bounds:
    """What the supervisor waits for; from the study's ``fault_tolerance:`` settings."""

    results: Optional[str]  # results path; None: only the stop rule applies
    t_fail: float = 10.0
    end_grace: float = 10.0
    startup_timeout: float = 300.0
    stop_grace: float = 90.0
    margin: float = END_MARGIN_S  # slack on top of the study's own end and liveness bounds

    @property
    def stale_after(self) -> float:
        return 2 * self.t_fail + self.margin

    @property
    def end_after(self) -> float:
        return self.end_grace + self.margin


class JournalTail:
    """The records appended to a journal since this object was made (or since it was replaced:
    ``--overwrite`` deletes and recreates it)."""

    def __init__(self, path: str) -> None:
        self.path = path
        st = _stat(path)
        self._ino = st.st_ino if st else None
        self._offset = st.st_size if st else 0

    def new_records(self) -> list[dict]:
        st = _stat(self.path)
        if st is None:
            return []
        if st.st_ino != self._ino or st.st_size < self._offset:
            self._ino, self._offset = st.st_ino, 0
        if st.st_size == self._offset:
            return []
        try:
            out, self._offset = read_from(self.path, self._offset)
        except OSError:  # replaced between the stat and the open: read it next time
            return []
        return out


def _stat(path: str) -> Optional[os.stat_result]:
    try:
        return os.stat(path)
    except OSError:
        return None


# -- the process tree ------------------------------------------------------------------------------
def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, session id) of every process, from /proc."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            out[int(name)] = (int(fields[1]), int(fields[3]))
        except (OSError, IndexError, ValueError):
            continue
    return out


def process_tree(root: int) -> list[int]:
    """``root``, its descendants and every process of its session (orphans keep the session)."""
    procs = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = set(), [root]
    while todo:
        p = todo.pop()
        if p not in tree:
            tree.add(p)
            todo.extend(children.get(p, ()))
    tree.update(pid for pid, (_, sid) in procs.items() if sid == root)
    tree.discard(os.getpid())
    return sorted(tree)


def kill_tree(proc: "subprocess.Popen[Any]", srun_first: bool = False) -> int:
    """SIGKILL the launcher and everything it started on this node; returns how many processes."""
    pids = process_tree(proc.pid)
    if srun_first and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # srun: cancels the step on every node
        try:
            proc.wait(timeout=3.0)
        except subprocess.TimeoutExpired:
            pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        pass
    return len(pids)


# -- the supervisor --------------------------------------------------------------------------------
class Supervisor:
    """Runs one launcher command under :class:`Bounds`; :meth:`run` returns the job's exit code."""

    def __init__(
        self,
        cmd: Sequence[str],
        bounds: Bounds,
        env: Optional[dict] = None,
        say: Callable[[str], None] = lambda m: logger.warning("[rdhpo] %s", m),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cmd, self.bounds, self.env, self.say, self.clock = list(cmd), bounds, env, say, clock
        self.stop_at: Optional[float] = None
        self.end: Optional[dict] = None
        self.ended_at: Optional[float] = None
        self.started = False
        self.proc: Optional["subprocess.Popen[Any]"] = None

    def request_stop(self, signum: int, frame: Any = None) -> None:
        """Signal handler: pass the stop on to the launcher (mpirun / srun forward it to ranks)."""
        name = signal.Signals(signum).name
        if self.proc is not None and self.proc.poll() is None:
            self.say(f"got {name}: asking rank 0 to stop (SIGUSR1 to the launcher)")
            self.proc.send_signal(signal.SIGUSR1)
        if self.stop_at is None:
            self.stop_at = self.clock()

    def run(self) -> int:
        b = self.bounds
        tail = JournalTail(journal_path(b.results)) if b.results else None
        beat = heartbeat_path(b.results) if b.results else None
        t0 = self.clock()
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("RDHPO_STARTUP_TIMEOUT", str(b.startup_timeout + 30))  # the ranks' own bound
        self.proc = subprocess.Popen(self.cmd, env=env, start_new_session=True)
        for sig in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.request_stop)
        srun = os.path.basename(self.cmd[0]) == "srun"
        while True:
            try:
                rc = self.proc.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                pass
            now = self.clock()
            if tail is not None:
                for r in tail.new_records():
                    if r.get("k") == "end":
                        self.end, self.ended_at = r, now
            code = self._verdict(now, t0, beat)
            if code is not None:
                n = kill_tree(self.proc, srun_first=srun)
                self.say(f"killed {n} processes of the job; exit {int(code)} ({code.name})")
                return int(code)
        if tail is not None:
            for r in tail.new_records():
                if r.get("k") == "end":
                    self.end = r
        if beat is not None and not self.started:
            st = _stat(beat)
            self.started = st is not None and st.st_mtime >= t0 - 1.0
        return int(self._exit_code(rc if rc >= 0 else 128 - rc))

    def _verdict(self, now: float, t0: float, beat: Optional[str]) -> Optional[ExitCode]:
        """None while the job may go on; else the exit code to kill it with."""
        b = self.bounds
        if self.stop_at is not None and now - self.stop_at > b.stop_grace:
            self.say(
                f"ranks still running {b.stop_grace:g} s after the stop request: killing them; "
                f"treating it as a stop ({int(ExitCode.STOPPED)})"
            )
            return ExitCode.STOPPED
        if self.end is not None:
            if self.ended_at is not None and now - self.ended_at > b.end_after:
                code = ExitCode(int(self.end.get("exit_code", ExitCode.FAILED)))
                self.say(
                    f"the study ended ({self.end.get('end_status')}) but processes of the job were "
                    f"still running {b.end_after:g} s later (stopped, hung or cut off): killing them"
                )
                return code
            return None
        if beat is None:
            return None
        st = _stat(beat)
        fresh = st is not None and st.st_mtime >= t0 - 1.0
        if not self.started:
            if fresh:
                self.started = True
            elif now - t0 > b.startup_timeout:
                self.say(
                    f"start-up did not finish within {b.startup_timeout:g} s (fault_tolerance."
                    f"startup_timeout): no coordinator ever ran; a rank died or hung before the "
                    f"study began. Nothing was lost; the job ends with exit {int(ExitCode.STARTUP)} "
                    f"(the SLURM script requeues it; or run again with --resume)"
                )
                return ExitCode.STARTUP
            return None
        if st is not None and now - st.st_mtime > b.stale_after:
            self.say(
                f"no coordinator alive for {now - st.st_mtime:.0f} s (heartbeat {beat} not refreshed;"
                f" limit 2 x t_fail + {b.margin:g} s): ending the job; the study is not finished "
                f"and resumes with --resume (exit {int(ExitCode.UNFINISHED)})"
            )
            return ExitCode.UNFINISHED
        return None

    def _exit_code(self, rc: int) -> ExitCode | int:
        """The launcher exited with ``rc``: the study's own code wins when it ended."""
        if self.end is not None:
            return int(self.end.get("exit_code", rc))
        if self.bounds.results is None or rc in (ExitCode.CONFIG, ExitCode.STOPPED):
            return rc
        if not self.started:
            self.say(
                f"the launcher exited with {rc} before the study started (a rank died during "
                f"start-up): exit {int(ExitCode.STARTUP)}; nothing was lost, run it again"
            )
            return ExitCode.STARTUP
        self.say(
            f"the launcher exited with {rc} but the study did not finish (no end record in "
            f"{journal_path(self.bounds.results)}): exit {int(ExitCode.UNFINISHED)}; it resumes with "
            f"--resume (the SLURM script requeues)"
        )
        return ExitCode.UNFINISHED


# -- the command line ------------------------------------------------------------------------------
def bounds_for(cmd: Sequence[str], stop_grace: float) -> Bounds:
    """Bounds from the ``rdhpo run CONFIG [--output X]`` inside the launcher command; when the
    config cannot be read (the ranks will say why), only the stop rule applies."""
    from .cli import resolve_run_args

    try:
        cfg = resolve_run_args(cmd)
    except Exception:  # noqa: BLE001 - bad input is reported by rank 0, once, not here
        cfg = None
    if cfg is None:
        return Bounds(None, stop_grace=stop_grace)
    ft = cfg.ft
    return Bounds(
        cfg.output,
        t_fail=ft.t_fail,
        end_grace=ft.end_grace,
        startup_timeout=float(os.environ.get("RDHPO_STARTUP_TIMEOUT_OVERRIDE") or ft.startup_timeout),
        stop_grace=stop_grace,
    )


def supervise(cmd: Sequence[str], stop_grace: Optional[float] = None) -> int:
    grace = float(os.environ.get("RDHPO_STOP_GRACE") or 90) if stop_grace is None else stop_grace
    return Supervisor(cmd, bounds_for(cmd, grace)).run()


def mpirun_command(n: int, run_args: Sequence[str]) -> list[str]:
    """``rdhpo launch -n N CONFIG ...``: mpirun (ULFM when it has it) running ``rdhpo run`` on N ranks."""
    import shutil

    here = os.path.join(os.path.dirname(sys.executable), "mpirun")
    mpirun = os.environ.get("RDHPO_MPIRUN") or (here if os.access(here, os.X_OK) else shutil.which("mpirun"))
    if not mpirun:
        raise FileNotFoundError("mpirun not found (install Open MPI, or the 'local' extra)")
    cmd = [mpirun]
    try:
        ft = subprocess.run([mpirun, "--with-ft", "ulfm", "--version"], capture_output=True, timeout=30)
        if ft.returncode == 0:
            cmd += ["--with-ft", "ulfm"]
    except (OSError, subprocess.SubprocessError):
        pass
    cmd += ["-n", str(n)]
    if n > (os.cpu_count() or 1):
        cmd.append("--oversubscribe")
    cmd += os.environ.get("RDHPO_MPIRUN_ARGS", "").split()
    return cmd + [sys.executable, "-m", "rdhpo_hpc", "run", *run_args]
