"""Journal replay (``--resume`` and takeover): the record log, applied in logged order, rebuilds
the trial table, the optimizer and scheduler (asked and told again exactly as before) and the
worker registry.  One handler per record kind; kinds without one (study, event, end) carry no
state.  No I/O: the caller reads the records and decides what happens to unfinished attempts
(:meth:`~.table.TrialTable.settle`)."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Optional, cast

from ..trial import Suggestion, TrialState
from .records import AskRecord, AttemptRecord, DispatchRecord, RecordKind, ReportRecord, TellRecord, WorkerRecord
from .study import Study
from .table import TrialTable, WorkerInfo


class Replay:
    def __init__(self, table: TrialTable, study: Study, workers: dict[int, WorkerInfo]) -> None:
        self.table, self.study, self.workers = table, study, workers
        self._handlers: dict[str, Callable[[Any], None]] = {
            RecordKind.ASK.value: self.on_ask,
            RecordKind.DISPATCH.value: self.on_dispatch,
            RecordKind.WORKER.value: self.on_worker,
            RecordKind.REPORT.value: self.on_report,
            RecordKind.ATTEMPT.value: self.on_attempt,
            RecordKind.TELL.value: self.on_tell,
        }

    def apply(self, records: Iterable[Mapping[str, Any]]) -> None:
        for r in records:
            handler = self._handlers.get(cast(str, r.get("k")))
            if handler is not None:
                handler(r)

    def on_ask(self, r: AskRecord) -> None:
        """A suggestion asked ahead of dispatch (prefetch)."""
        self._new_trial(r)

    def on_dispatch(self, r: DispatchRecord) -> None:
        if r.get("new"):
            self._new_trial(r)
        self.table.restore_dispatch(r["trial_id"], r["attempt"], r["rank"])

    def on_worker(self, r: WorkerRecord) -> None:
        """Host and pid: a takeover coordinator must be able to SIGKILL a hung worker."""
        self.workers[r["rank"]] = WorkerInfo(r.get("host", ""), r.get("pid"), r.get("device", ""))

    def on_report(self, r: ReportRecord) -> None:
        if r.get("decision") in ("continue", "stop"):  # not "fenced": the scheduler never saw it
            self.study.report(r["trial_id"], r["step"], r["value"])

    def on_attempt(self, r: AttemptRecord) -> None:
        if self.table.restore_end(r["trial_id"], r["attempt"]) and r["state"] == TrialState.LOST.value:
            self.study.counts[TrialState.LOST.value] += 1

    def on_tell(self, r: TellRecord) -> None:
        e = self.table.restore_tell(r["trial_id"])
        if e is not None:
            self.study.tell(r["trial_id"], TrialState(r["state"]), r.get("value"), e.suggestion.budget)

    def _new_trial(self, r: Any) -> None:
        """Ask the scheduler again, in logged order; the logged params win if they differ."""
        tid = r["trial_id"]
        sug = self.study.suggest(tid)
        if sug is None or sug.params != r["params"]:
            sug = Suggestion(r["params"], r.get("budget"), r.get("checkpoint_from"), r.get("info") or {})
            self.study.optimizer.pending[tid] = r["params"]
        self.table.add(tid, sug)


def replay(
    records: Iterable[Mapping[str, Any]],
    table: TrialTable,
    study: Study,
    workers: dict[int, WorkerInfo],
    keep: Optional[Callable[[int], bool]] = None,
) -> None:
    """Apply ``records`` to the (fresh) state, then settle the attempts left running: fenced and
    re-queued, or — ``keep(rank)``, takeover — kept as orphans for their worker to claim."""
    Replay(table, study, workers).apply(records)
    table.settle(keep)
