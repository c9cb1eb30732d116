"""The record log's kinds and shapes: one enum, one typed dict and one constructor per kind.

Everything the coordinator decides is appended to the store as one of these records (a flat
dict, key ``k`` = the kind) before it is acted on; :mod:`.replay` reads them back.  The
constructors are the only places that build records, so the journal, the HDF5 view
(``storage/hdf5.py``'s ``TABLES``) and the replay agree on the fields.  Records hold plain
strings (``RecordKind.X.value``): a ``str`` enum member hashes differently from its value.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, Optional, TypedDict

from ..trial import Attempt, Suggestion, TrialState


class RecordKind(str, enum.Enum):
    STUDY = "study"  # config and metadata, first
    ASK = "ask"  # a suggestion asked ahead of dispatch (prefetch)
    DISPATCH = "dispatch"  # an attempt handed to a rank (``new``: the trial was created then)
    REPORT = "report"  # an intermediate value and the scheduler's decision
    ATTEMPT = "attempt"  # an attempt ended: COMPLETE / PRUNED / FAILED / LOST
    TELL = "tell"  # a trial's final outcome, given to the optimizer
    EVENT = "event"  # failures, detections, shrinks, takeovers, signals
    WORKER = "worker"  # a rank's host, pid and device
    END = "end"  # the study finished or stopped (with its exit code)
    SNAPSHOT = "snapshot"  # the optimizer's state after the new trial just before it (fast replay)


class AskRecord(TypedDict):
    k: str
    trial_id: int
    time: float
    params: dict[str, Any]
    budget: Optional[float]
    checkpoint_from: Optional[int]
    info: dict[str, Any]


class DispatchRecord(TypedDict):
    k: str
    trial_id: int
    attempt: int
    rank: int
    time: float
    new: bool
    params: dict[str, Any]
    budget: Optional[float]
    checkpoint_from: Optional[int]
    info: dict[str, Any]


class ReportRecord(TypedDict):
    k: str
    trial_id: int
    attempt: int
    step: int
    value: float
    metrics: dict[str, Any]
    time: float
    decision: str  # "continue" | "stop" | "fenced" (not the current attempt)


class AttemptRecord(TypedDict):
    k: str
    trial_id: int
    attempt: int
    params: dict[str, Any]
    budget: Optional[float]
    state: str
    value: Optional[float]
    rank: int
    host: str
    device: str
    start_time: float
    end_time: float
    error: str
    checkpoint_from: Optional[int]
    info: dict[str, Any]
    metrics: dict[str, Any]


class TellRecord(TypedDict):
    k: str
    trial_id: int
    state: str
    value: Optional[float]


class EventRecord(TypedDict):
    k: str
    time: float
    kind: str
    rank: int
    detail: str
    latency: Optional[float]


class _WorkerKeys(TypedDict):
    k: str
    rank: int
    host: str
    pid: int


class WorkerRecord(_WorkerKeys, total=False):  # older journals hold only the keys above
    device: str
    device_name: str
    memory_bytes: Optional[int]
    time: float


class EndRecord(TypedDict):
    k: str
    end_status: str
    end_time: float
    exit_code: int


class SnapshotRecord(TypedDict):
    """Written right after the ``ask`` / new ``dispatch`` record of ``trial_id``: what the
    optimizer's ``_suggest`` changed until then (``Optimizer.snapshot_state``), so that a replay
    need not ask again for the trials before it.  Not in the HDF5 view; old code ignores it."""

    k: str
    trial_id: int
    asks: int  # the optimizer's ask count then
    strategy: str  # digest of the optimizer's name, seed and options (``Study.fingerprint``)
    optimizer: dict[str, Any]


_ASK, _DISPATCH, _REPORT = RecordKind.ASK.value, RecordKind.DISPATCH.value, RecordKind.REPORT.value
_ATTEMPT, _TELL, _EVENT = RecordKind.ATTEMPT.value, RecordKind.TELL.value, RecordKind.EVENT.value
_WORKER, _END = RecordKind.WORKER.value, RecordKind.END.value


def study(describe: dict[str, Any], start_time: float, versions: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The first record: ``StudyConfig.describe()``, the start time and library versions."""
    return {"k": RecordKind.STUDY.value, **describe, "start_time": start_time, **(versions or {})}


def ask(trial_id: int, time: float, s: Suggestion) -> AskRecord:
    return {
        "k": _ASK,
        "trial_id": trial_id,
        "time": time,
        "params": s.params,
        "budget": s.budget,
        "checkpoint_from": s.checkpoint_from,
        "info": s.info,
    }


def dispatch(trial_id: int, attempt: int, rank: int, time: float, new: bool, s: Suggestion) -> DispatchRecord:
    return {
        "k": _DISPATCH,
        "trial_id": trial_id,
        "attempt": attempt,
        "rank": rank,
        "time": time,
        "new": new,
        "params": s.params,
        "budget": s.budget,
        "checkpoint_from": s.checkpoint_from,
        "info": s.info,
    }


def report(
    trial_id: int, attempt: int, step: int, value: float, metrics: dict[str, Any], time: float, decision: str
) -> ReportRecord:
    return {
        "k": _REPORT,
        "trial_id": trial_id,
        "attempt": attempt,
        "step": step,
        "value": value,
        "metrics": metrics,
        "time": time,
        "decision": decision,
    }


def attempt(a: Attempt) -> AttemptRecord:
    """An ended attempt: the ``/trials`` row of :meth:`rdhpo_hpc.trial.Attempt.row`."""
    return {"k": _ATTEMPT, **a.row()}  # type: ignore[typeddict-item]


def ended(
    trial_id: int,
    att: int,
    s: Suggestion,
    rank: int,
    state: TrialState,
    value: Optional[float],
    error: str,
    start: float,
    end: float,
    host: str = "",
    device: str = "",
    metrics: Optional[dict[str, Any]] = None,
) -> AttemptRecord:
    """The ``attempt`` record of attempt ``att`` of a trial whose suggestion is ``s``."""
    return attempt(
        Attempt(
            trial_id,
            att,
            s.params,
            s.budget,
            rank,
            state,
            value,
            host,
            device,
            start,
            end,
            error,
            s.checkpoint_from,
            s.info,
            {} if metrics is None else metrics,
        )
    )


def tell(trial_id: int, state: str, value: Optional[float]) -> TellRecord:
    return {"k": _TELL, "trial_id": trial_id, "state": state, "value": value}


def event(time: float, kind: str, rank: int = -1, detail: str = "", latency: Optional[float] = None) -> EventRecord:
    return {"k": _EVENT, "time": time, "kind": kind, "rank": rank, "detail": detail, "latency": latency}


def worker(rank: int, host: str, pid: int, device: dict[str, Any], time: float) -> WorkerRecord:
    """From a worker's ``Hello``: ``device`` is its device description (device, name, memory)."""
    return {
        "k": _WORKER,
        "rank": rank,
        "host": host,
        "pid": pid,
        "device": device.get("device", ""),
        "device_name": device.get("name", ""),
        "memory_bytes": device.get("memory_bytes"),
        "time": time,
    }


def end(status: str, time: float, exit_code: int) -> EndRecord:
    return {"k": _END, "end_status": status, "end_time": time, "exit_code": int(exit_code)}


def snapshot(trial_id: int, fields: dict[str, Any]) -> SnapshotRecord:
    """``fields``: what :meth:`~.study.Study.snapshot` returned after trial ``trial_id`` was created."""
    return {
        "k": RecordKind.SNAPSHOT.value,
        "trial_id": trial_id,
        "asks": fields["asks"],
        "strategy": fields["strategy"],
        "optimizer": fields["optimizer"],
    }


class Recorder:
    """Appends records to the store; ``event`` stamps them with the loop's clock.

    ``listeners`` (the hook of per-trial callbacks and checkpoint retention, attached by
    ``launch.coordinate`` after any replay) are called with every record once it is in the
    store, in the coordinator's thread; a ``tell`` record means a trial just ended."""

    def __init__(self, store: Any, clock: Callable[[], float]) -> None:
        self.store, self.clock = store, clock
        self.listeners: list[Callable[[Any], None]] = []

    def __call__(self, record: Any) -> None:
        self.store.append(record)
        for listen in self.listeners:
            listen(record)

    def event(self, kind: str, rank: int = -1, detail: str = "", latency: Optional[float] = None) -> None:
        self(event(self.clock(), kind, rank, detail, latency))
