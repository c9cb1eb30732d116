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
