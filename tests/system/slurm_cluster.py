"""A real one-node SLURM cluster for the system tests, started on demand.

Usage in a test::

    from slurm_cluster import require_slurm, setup_allowance, submit, wait_job, scancel_signal
    # (tests/system/conftest.py puts tests/system on sys.path)

    @pytest.mark.slurm
    @pytest.mark.timeout(setup_allowance() + 120)
    def test_something(tmp_path):
        require_slurm()                       # pytest.skip(...) with the reason when no cluster
        job = submit([script, "arg"], env={"X": "1"}, extra_sbatch_args=["--ntasks=4"], cwd=tmp_path)
        status = wait_job(job, timeout=60)
        assert status == "COMPLETED"          # JobStatus is a str (the final JobState) ...
        assert status.restarts == 0           # ... with .restarts, .exit_code, .signal, .fields

``ensure_slurm()`` runs ``tests/system/slurm/setup_slurm.sh`` once per process (root only; installs
slurm-wlm + munge with apt the first time, 60-70 s; 0.1-3 s when the cluster is up) and returns
None when the cluster is up, else the reason to skip.  Tests add ``setup_allowance()`` to their
pytest timeout (0 once the cluster answers), or CI runs setup_slurm.sh before pytest.

The cluster has one node (this machine, partition ``debug``) with the real CPU count: a job with
more tasks than CPUs must be submitted with ``--overcommit`` (``submit`` adds it by default),
otherwise SLURM keeps it PENDING forever (Reason=PartitionConfig); ``wait_job`` fails fast then.
Measured facts (signals, requeue, mpirun) are at the top of setup_slurm.sh.

Every subprocess here has a timeout.  Environment knobs: RDHPO_SKIP_SLURM=1 skips the SLURM tests;
RDHPO_REQUIRE_SLURM=1 makes ``require_slurm`` fail instead of skip (for CI that must run them).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Union

HERE = Path(__file__).resolve().parent
SETUP_SCRIPT = HERE / "slurm" / "setup_slurm.sh"
STANDIN_ENTRY = HERE / "slurm" / "standin_entry.py"
REPO_ROOT = HERE.parent.parent
RDHPO_SBATCH = REPO_ROOT / "slurm" / "rdhpo.sbatch"
RDHPO_SBATCH_MULTINODE = REPO_ROOT / "slurm" / "rdhpo-multinode.sbatch"
JOBCOMP_LOG = Path("/var/log/slurm/jobcomp.log")

SETUP_TIMEOUT_S = 600.0  # the script bounds each apt step; a fresh install took 60-70 s
CMD_TIMEOUT_S = 30.0

TERMINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "PREEMPTED",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
        "SPECIAL_EXIT",
        "REVOKED",
    }
)
# PENDING reasons that never resolve on the one-node test cluster
HOPELESS_REASONS = frozenset(
    {
        "PartitionConfig",
        "BadConstraints",
        "PartitionNodeLimit",
        "PartitionTimeLimit",
        "InvalidAccount",
        "InvalidQOS",
        "JobHeldAdmin",
        "JobHeldUser",
        "DependencyNeverSatisfied",
    }
)

_SETUP_EXIT_REASONS = {
    2: "SLURM test cluster needs root",
    3: "SLURM test cluster: apt-get install slurm-wlm munge failed",
    4: "SLURM test cluster: munged would not start",
    5: "SLURM test cluster: slurmctld/slurmd would not start or the node stayed down",
}

_setup_result: Optional[List[Optional[str]]] = None  # [reason] once tried in this process
_submit_times: Dict[str, float] = {}


class SlurmError(RuntimeError):
    """A SLURM command failed or a job cannot finish."""


class JobStatus(str):
    """The final JobState of a job (compares equal to e.g. "COMPLETED"), with details.

    ``restarts`` (how often the job was requeued), ``exit_code`` and ``signal`` (the batch
    script's, from ExitCode=code:signal), ``reason``, and ``fields``: every key=value that
    ``scontrol show job`` (or the jobcomp log, once the job left slurmctld's memory) reported.
    """

    restarts: int
    exit_code: Optional[int]
    signal: Optional[int]
    reason: str
    fields: Dict[str, str]

    def __new__(cls, fields: Mapping[str, str]) -> "JobStatus":
        obj = super().__new__(cls, fields.get("JobState", "UNKNOWN"))
        obj.fields = dict(fields)
        obj.restarts = int(fields.get("Restarts", "0") or 0)
        obj.reason = fields.get("Reason", "")
        code, sig = None, None
        m = re.fullmatch(r"(\d+):(\d+)", fields.get("ExitCode", ""))
        if m:
            code, sig = int(m.group(1)), int(m.group(2))
        obj.exit_code, obj.signal = code, sig
        return obj

    @property
    def state(self) -> str:
        return str(self)


def _run(
    cmd: Sequence[str],
    timeout: float = CMD_TIMEOUT_S,
    env: Optional[Mapping[str, str]] = None,
    cwd: Union[str, Path, None] = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=None if env is None else dict(env),
            cwd=None if cwd is None else str(cwd),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise SlurmError(f"{' '.join(map(str, cmd))} timed out after {timeout:g} s") from exc
    except FileNotFoundError as exc:
        raise SlurmError(f"{cmd[0]} not found: is SLURM installed? ({exc})") from exc
    if check and proc.returncode != 0:
        raise SlurmError(f"{' '.join(map(str, cmd))} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()}")
    return proc


# ------------------------------------------------------------------------------------ the cluster


def ensure_slurm(timeout: float = SETUP_TIMEOUT_S) -> Optional[str]:
    """Start the one-node cluster if needed. None when it is up, else a reason to skip.

    Runs setup_slurm.sh once per process (it is idempotent and takes about 0.1 s when the
    cluster is already up); the answer is cached.
    """
    global _setup_result
    if _setup_result is not None:
        return _setup_result[0]
    reason: Optional[str]
    if os.environ.get("RDHPO_SKIP_SLURM") == "1":
        reason = "SLURM tests disabled by RDHPO_SKIP_SLURM=1"
    elif not hasattr(os, "geteuid") or os.geteuid() != 0:
        have = shutil.which("sbatch") is not None and _cluster_answers()
        reason = (
            None if have else "SLURM test cluster needs root to install and start (not root, and no cluster answers)"
        )
    elif shutil.which("bash") is None:
        reason = "SLURM test cluster needs bash"
    else:
        reason = _run_setup(timeout)
    _setup_result = [reason]
    return reason


def setup_allowance() -> float:
    """Seconds a test's timeout should add for ``ensure_slurm``: 0 when a cluster already
    answers, else the setup budget (a fresh install takes about a minute). Use as
    ``@pytest.mark.timeout(setup_allowance() + 120)``; or run setup_slurm.sh before pytest."""
    if os.environ.get("RDHPO_SKIP_SLURM") == "1":
        return 0.0
    if shutil.which("sbatch") is not None and _cluster_answers():
        return 0.0
    return SETUP_TIMEOUT_S + 30.0


def _cluster_answers() -> bool:
    try:
        return _run(["sinfo", "-h", "-o", "%T"], timeout=10, check=False).stdout.strip() != ""
    except SlurmError:
        return False


def _run_setup(timeout: float) -> Optional[str]:
    # own session, so that on timeout apt-get & co. die with the script (and free the dpkg lock)
    proc = subprocess.Popen(
        ["bash", str(SETUP_SCRIPT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate(timeout=10)
        return f"SLURM test cluster: setup_slurm.sh did not finish within {timeout:g} s"
    if proc.returncode == 0:
        return None
    tail = "\n".join((err or out).strip().splitlines()[-15:])
    base = _SETUP_EXIT_REASONS.get(proc.returncode, f"SLURM test cluster: setup_slurm.sh exited {proc.returncode}")
    return f"{base}\n{tail}"


def require_slurm() -> None:
    """In a test: skip it (or fail, with RDHPO_REQUIRE_SLURM=1) when no cluster can be had."""
    import pytest

    reason = ensure_slurm()
    if reason is None:
        return
    if os.environ.get("RDHPO_REQUIRE_SLURM") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


# ------------------------------------------------------------------------------------ jobs


def submit(
    script_args: Sequence[Union[str, Path]],
    env: Optional[Mapping[str, str]] = None,
    extra_sbatch_args: Iterable[str] = (),
    cwd: Union[str, Path, None] = None,
    overcommit: bool = True,
) -> str:
    """``sbatch`` a batch script; returns the job id (a string).

    script_args: the script path and its arguments.  env: variables ADDED to this process's
    environment for sbatch (the job inherits them: sbatch's default --export=ALL).
    extra_sbatch_args: sbatch options, before the script (they override its #SBATCH lines).
    cwd: the submit directory (SLURM_SUBMIT_DIR and the job's working directory).
    overcommit: add --overcommit, needed on this one-node cluster whenever the job has more
    tasks than the machine has CPUs (harmless otherwise).
    """
    full_env = dict(os.environ)
    if env:
        full_env.update({k: str(v) for k, v in env.items()})
    cmd = ["sbatch", "--parsable"]
    if overcommit:
        cmd.append("--overcommit")
    cmd += [str(a) for a in extra_sbatch_args]
    cmd += [str(a) for a in script_args]
    proc = _run(cmd, env=full_env, cwd=cwd)
    job_id = proc.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise SlurmError(f"sbatch gave no job id: {proc.stdout!r} {proc.stderr!r}")
    _submit_times[job_id] = time.time()
    return job_id


def job_info(job_id: str) -> Optional[Dict[str, str]]:
    """``scontrol show job`` as a dict, or None when slurmctld no longer knows the job."""
    proc = _run(["scontrol", "show", "job", "-o", str(job_id)], check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    return _parse_fields(proc.stdout)


def _parse_fields(line: str) -> Dict[str, str]:
    # key=value pairs separated by spaces; values may contain spaces only in a few fields
    # (e.g. Command with arguments), which the tests do not rely on.
    fields: Dict[str, str] = {}
    for m in re.finditer(r"(\S+?)=(\S*)", line):
        fields.setdefault(m.group(1), m.group(2))
    return fields


def _jobcomp_record(job_id: str) -> Optional[Dict[str, str]]:
    """The last line the jobcomp/filetxt log has for this job (written at each end and requeue)."""
    try:
        text = JOBCOMP_LOG.read_text(errors="replace")
    except OSError:
        return None
    found = None
    for line in text.splitlines():
        if line.startswith(f"JobId={job_id} "):
            found = _parse_fields(line)
    if found is None:
        return None
    since = _submit_times.get(str(job_id))
    if since is not None and "SubmitTime" in found:  # job ids can repeat after a cleared restart
        try:
            submitted = time.mktime(time.strptime(found["SubmitTime"], "%Y-%m-%dT%H:%M:%S"))
            if submitted < since - 5:
                return None
        except ValueError:
            pass
    return found


def wait_job(job_id: str, timeout: float, poll: float = 0.5, hopeless_after: float = 10.0) -> JobStatus:
    """Wait (bounded) for the job to reach a final state and return it as a :class:`JobStatus`.

    Requeued jobs pass through PENDING again and are waited for.  Raises TimeoutError (with the
    last state seen) after ``timeout`` s, and SlurmError when the job stays PENDING for
    ``hopeless_after`` s with a reason that never resolves here (e.g. too many tasks without
    --overcommit: Reason=PartitionConfig).  Without accounting, a finished job stays visible to
    scontrol for MinJobAge=300 s; after that the jobcomp log answers.
    """
    deadline = time.monotonic() + timeout
    last: Optional[Dict[str, str]] = None
    hopeless_since: Optional[float] = None
    while True:
        info = job_info(job_id)
        if info is None:
            rec = _jobcomp_record(job_id)
            if rec is not None and rec.get("JobState") in TERMINAL_STATES:
                return JobStatus(rec)
        else:
            last = info
            state = info.get("JobState", "")
            if state in TERMINAL_STATES:
                return JobStatus(info)
            reason = info.get("Reason", "")
            if state == "PENDING" and reason in HOPELESS_REASONS:
                hopeless_since = hopeless_since or time.monotonic()
                if time.monotonic() - hopeless_since > hopeless_after:
                    raise SlurmError(
                        f"job {job_id} cannot start: PENDING, Reason={reason} "
                        f"(more tasks than CPUs without --overcommit?)"
                    )
            else:
                hopeless_since = None
        if time.monotonic() >= deadline:
            seen = (
                "unknown to scontrol"
                if last is None
                else f"{last.get('JobState')} (Reason={last.get('Reason')}, Restarts={last.get('Restarts')})"
            )
            raise TimeoutError(f"job {job_id} not finished after {timeout:g} s; last state {seen}")
        time.sleep(poll)


def wait_state(job_id: str, states: Iterable[str], timeout: float, poll: float = 0.2) -> Dict[str, str]:
    """Wait (bounded) until the job is in one of ``states`` (e.g. {"RUNNING"}); returns its fields."""
    wanted = set(states)
    deadline = time.monotonic() + timeout
    info: Optional[Dict[str, str]] = None
    while True:
        info = job_info(job_id)
        if info is not None and info.get("JobState") in wanted:
            return info
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"job {job_id} not in {sorted(wanted)} after {timeout:g} s; "
                f"last {None if info is None else info.get('JobState')}"
            )
        time.sleep(poll)


def scancel_signal(job_id: str, sig: str = "USR1", mode: str = "batch") -> None:
    """Send a signal to a running job without cancelling it.

    mode="batch" (``scancel --batch``): only the batch shell gets it -- what the
        ``--signal=B:SIG@N`` time-limit warning does. slurm/rdhpo.sbatch traps it and forwards
        SIGUSR1 to mpirun, which passes it to every rank. Recommended.
    mode="full" (``scancel --full``): the batch shell AND all of its descendants (mpirun and every
        rank) get it directly, so under rdhpo.sbatch each rank gets it twice.
    mode="steps": only srun job steps (``scancel`` without --batch/--full); processes that mpirun
        started inside the batch step get nothing.
    """
    flag = {"batch": ["--batch"], "full": ["--full"], "steps": []}.get(mode)
    if flag is None:
        raise ValueError(f"mode must be 'batch', 'full' or 'steps', got {mode!r}")
    _run(["scancel", f"--signal={sig}", *flag, str(job_id)])


def cancel(job_id: str) -> None:
    """``scancel`` the job (SIGTERM to its processes, SIGKILL after KillWait=5 s); never raises."""
    try:
        _run(["scancel", str(job_id)], check=False)
    except SlurmError:
        pass


def requeue(job_id: str) -> None:
    """``scontrol requeue``: the running job is killed at once and starts again after ~11 s."""
    _run(["scontrol", "requeue", str(job_id)])


def read_output(path: Union[str, Path]) -> str:
    """The job's output file ('' when it does not exist yet)."""
    try:
        return Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""
