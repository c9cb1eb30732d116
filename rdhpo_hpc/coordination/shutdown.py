"""The end of a study: who is told to stop and how, the ULFM shrink, hung ranks, the exit code.

The coordinator never waits for a worker's answer here: every live worker gets ``Stop``
(through a relay when its direct link is lost), the survivors shrink (bounded by
``end_grace``), and ranks that hung are SIGKILLed *after* the shrink (a failure appearing in
the middle of ``Create_group`` can break it).  A worker that never acknowledges anything cannot
keep the study from ending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..exitcodes import ExitCode
from ..messages import Stop
from .port import NodePort
from .table import WorkerInfo

Event = Callable[..., None]  # event(kind, rank, detail, latency=None)
Hung = list[tuple[str, Optional[int]]]  # (host, pid) of hung ranks
Kill = Callable[[Hung, str], None]  # kill(targets, this host): procs.kill_local


@dataclass
class Plan:
    status: str  # "complete" or why the study stopped
    hung: Hung  # ranks declared dead by gossip (maybe hung)
    exclude: Optional[list[int]]  # ranks out of the end-of-study shrink (ULFM), None: none
    method: str  # "shrink" | "create_group": one choice for every survivor
    finalize: bool  # MPI_Finalize is safe on every rank

    def stop(self) -> Stop:
        # Workers exit 0 whatever the study's code (rank 0's): under `mpirun --with-ft ulfm` a
        # rank that exits non-zero without MPI_Finalize makes Open MPI kill every other rank at
        # once (measured: docs/reliability.md, "Exit codes"), rank 0 maybe before it wrote the end.
        return Stop(0, self.status, self.hung, self.exclude, self.method, self.finalize)


def plan(status: str, node: NodePort, silent: set[int], workers: dict[int, WorkerInfo]) -> Plan:
    t = node.transport
    failed = t.failed()
    hung = [(workers[r].host, workers[r].pid) for r in sorted(silent) if r in workers and r not in failed]
    out = (set(range(node.size)) - set(node.alive())) | set(node.unreachable)
    exclude = sorted(out) if t.reports_failures and out else None
    method = t.shrink_method(set(exclude)) if exclude else ""
    return Plan(status, hung, exclude, method, status == "complete" and not out and not hung)


def execute(
    p: Plan, node: NodePort, live: list[int], end_grace: float, event: Event, kill: Kill, silent: set[int]
) -> None:
    """Stop every worker, shrink, then SIGKILL the hung ones (same host)."""
    for r in live:
        node.send(r, p.stop())
    for r in sorted(node.unreachable):  # alive but cut off from us: Stop through a relay
        via = node.relay_for(r)
        if via is not None and node.is_alive(r):
            node.send_via(via, r, p.stop())
            event("relay-stop", r, f"Stop relayed through rank {via}")
    if p.exclude is not None:
        info = node.shrink(set(p.exclude), timeout=max(end_grace, 1.0), method=p.method)
        if info is not None:
            ok = "error" not in info
            event(
                "shrink" if ok else "shrink-failed",
                node.rank,
                f"method={info.get('method')} size={info.get('size')} excluded={p.exclude} "
                + ("" if ok else f"error={info.get('error')}"),
                info.get("duration"),
            )
    if p.hung:
        event("terminate-hung", -1, f"SIGKILL to hung ranks {sorted(silent)} at the end")
        kill(p.hung, node.transport.host())


def exit_code(status: str, failed: int, succeeded: int) -> ExitCode:
    """The study's exit code, also written into the ``end`` record (the supervisor reads it).
    ``failed`` / ``succeeded``: trials FAILED / COMPLETE or PRUNED."""
    if status == "complete":
        return ExitCode.FAILED if failed and not succeeded else ExitCode.OK
    if status == "max_wall_time":
        return ExitCode.OK
    if status.startswith("signal"):
        return ExitCode.STOPPED
    if status == "no live workers":
        return ExitCode.UNFINISHED  # resumable: a requeued job continues it
    return ExitCode.FAILED
