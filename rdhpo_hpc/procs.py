"""Process-level helpers shared by the coordinator, the workers and the launcher."""

from __future__ import annotations

import os
import signal


def kill_local(targets: list, host: str) -> None:
    """SIGKILL the (host, pid) pairs that live on this host (hung ranks, at the end of the job)."""
    for h, pid in targets:
        if h == host and pid and pid != os.getpid():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent exits (``PR_SET_PDEATHSIG``).

    Under mpirun the parent is the MPI daemon (``prted``) or ``mpirun`` itself: when the
    supervisor kills the launcher, every rank dies with it — a stopped (SIGSTOP) rank too, which
    no signal handler could reach.  No-op where ``prctl`` is missing."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl: follow it now
        os.kill(os.getpid(), signal.SIGKILL)
