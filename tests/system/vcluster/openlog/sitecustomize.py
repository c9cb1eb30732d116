"""Test hook: log every ``open()`` of watched files, per process (a real observable of reads).

Active only when this directory is on PYTHONPATH *and* both variables are set:

    VCLUSTER_WATCH_OPEN   paths to watch, separated by os.pathsep (compared after realpath)
    VCLUSTER_OPEN_LOG     file that gets one JSON line per open of a watched path:
                          {"host", "pid", "rank", "path", "mode"} (rank: OMPI_COMM_WORLD_RANK)
    VCLUSTER_OPEN_STACK   optional: N > 0 adds the last N stack frames of each open ("stack")

Uses a PEP 578 audit hook on the "open" event (raised by builtins.open / io.open, which
``numpy.load`` uses), so nothing in the program under test changes.  Lines are written with one
O_APPEND write each, so processes on several nodes can share the log.  Any other
``sitecustomize`` later on sys.path is still run.
"""

from __future__ import annotations

import os
import sys


def _install() -> None:
    watch = os.environ.get("VCLUSTER_WATCH_OPEN")
    log = os.environ.get("VCLUSTER_OPEN_LOG")
    if not watch or not log:
        return
    import json
    import socket

    stack = int(os.environ.get("VCLUSTER_OPEN_STACK", "0") or 0)
    paths = {os.path.realpath(p) for p in watch.split(os.pathsep) if p}
    busy = []

    def hook(event: str, args: tuple) -> None:
        if event != "open" or busy or not args or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        busy.append(1)
        try:
            path = os.fsdecode(args[0])
            if os.path.realpath(path) in paths:
                rec = {
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "rank": os.environ.get("OMPI_COMM_WORLD_RANK"),
                    "path": path,
                    "mode": str(args[1]) if len(args) > 1 else "",
                }
                if stack:
                    import traceback

                    rec["stack"] = traceback.format_stack(limit=stack)[:-1]
                line = json.dumps(rec) + "\n"
                fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, line.encode())
                finally:
                    os.close(fd)
        except Exception:  # noqa: BLE001 - never break the program under test
            pass
        finally:
            busy.pop()

    sys.addaudithook(hook)


def _chain() -> None:
    """Run the next sitecustomize on sys.path (this file shadows it)."""
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None and spec.origin != os.path.abspath(__file__):
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)


_install()
try:
    _chain()
except Exception:  # noqa: BLE001
    pass
