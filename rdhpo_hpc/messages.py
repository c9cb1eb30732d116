"""Messages between ranks: plain picklable data, one MPI tag each (DESIGN.md §4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class Hello:
    """Worker -> coordinator once at start (and to a new coordinator after a takeover)."""

    TAG = 1
    host: str
    device: dict[str, Any]
    pid: int
    running: Optional[tuple[int, int]] = None  # (trial_id, attempt) still running here, after a takeover


@dataclass
class Task:
    """Coordinator -> worker: run this attempt."""

    TAG = 2
    trial_id: int
    attempt: int
    params: dict[str, Any]
    budget: Optional[float] = None
    checkpoint_from: Optional[int] = None
    #: the worker waits for a Decision at its first report with ``step >= decide_from`` (the
    #: scheduler's next decision step: a rung budget); None: at no report (0: at every one)
    decide_from: Optional[int] = 0


@dataclass
class Report:
    """Worker -> coordinator: intermediate metric after ``step``.  With ``wait`` (a decision
    step) the worker waits for the Decision; without, it goes on training and hears only a stop."""

    TAG = 3
    trial_id: int
    attempt: int
    step: int
    value: float
    metrics: dict[str, Any] = field(default_factory=dict)
    wait: bool = True


@dataclass
class Decision:
    """Coordinator -> worker: continue or stop the attempt (answer to a waiting Report, or an
    unsolicited stop); ``decide_from``: the next decision step, as in :class:`Task`."""

    TAG = 4
    trial_id: int
    attempt: int
    proceed: bool
    decide_from: Optional[int] = 0


@dataclass
class Result:
    """Worker -> coordinator: the attempt ended (COMPLETE / PRUNED / FAILED)."""

    TAG = 5
    trial_id: int
    attempt: int
    state: str
    value: Optional[float]
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Gossip:
    """Any rank -> a peer: a membership message (``body``: a heartbeat vector or a SWIM probe, see
    :mod:`rdhpo_hpc.membership`), or with ``body`` None the node's bare direct ping.  Handled
    inside the node, never by the loops; every one says which rank coordinates."""

    TAG = 6
    body: Any = None
    coordinator: int = 0


@dataclass
class Stop:
    """Coordinator -> worker: the study is over (or failed); exit with ``exit_code``."""

    TAG = 7
    exit_code: int = 0
    reason: str = ""
    kill: list[tuple[str, Optional[int]]] = field(default_factory=list)  # (host, pid) of hung ranks to SIGKILL if local
    shrink: Optional[list[int]] = None  # ULFM: ranks to leave out of the end-of-study shrunk communicator
    shrink_method: str = ""  # "shrink" | "create_group": chosen once, by the coordinator
    finalize: bool = False  # every rank may call MPI_Finalize (no peer died, hung or was cut)


@dataclass
class PeerDown:
    """Local event from the node to its own event loop: a peer was declared dead."""

    TAG = 8
    rank: int
    cause: str  # "gossip-timeout" | "mpi-failure" | "unreachable" (alive, direct link lost)
    latency: float  # seconds from the last heartbeat growth (or evidence) to the verdict


@dataclass
class Coordinator:
    """Local event: the coordinator role moved to ``rank`` (after rank 0 died, ULFM only)."""

    TAG = 9
    rank: int


@dataclass
class Relay:
    """Any rank -> a third rank: forward ``msg`` to ``dest`` (used when a direct link is lost).

    Handled inside the node; the destination sees ``msg`` as coming from ``origin``."""

    TAG = 10
    dest: int
    origin: int
    msg: Any


@dataclass
class RouteChanged:
    """Local event from the node to its own event loop: messages to ``peer`` now go through rank
    ``via`` (its direct link fell silent), or directly again (``via`` None: the link healed).
    Messages sent on the old route just before the change may be lost: a worker then says
    ``Hello`` again, which makes the coordinator re-run an attempt whose result did not arrive."""

    TAG = 11
    peer: int
    via: Optional[int]


ALL = (Hello, Task, Report, Decision, Result, Gossip, Stop, PeerDown, Coordinator, Relay, RouteChanged)
BY_TAG = {cls.TAG: cls for cls in ALL}
