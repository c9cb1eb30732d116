"""Journal replay (``--resume`` and takeover): the record log, applied in logged order, rebuilds
the trial table, the optimizer and scheduler (asked and told again exactly as before; each
report with the answer logged for it, ``Scheduler.replay_report``) and the worker registry.
One handler per record kind; kinds without one (study, event, end) carry no state.  No I/O: the
caller reads the records and decides what happens to unfinished attempts
(:meth:`~.table.TrialTable.settle`).

Fast path (``snapshot`` records, written by the coordinator every ``snapshot_every`` asks of the
optimizer, after every ask for model-based ones): up to the newest snapshot that can be restored,
the optimizer answers each ask with the logged params instead of computing a suggestion
(:meth:`~.study.Study.suggest_logged`; the scheduler and every ``tell`` run as before), then the
snapshot restores what the skipped computations changed (the RNG, the model's hyper-parameters,
...); the records after it are replayed with real asks.  The state is the same as after a full
replay, which is what a journal without usable snapshots gets (an older journal, another
optimizer configuration, a malformed snapshot: the next older one is tried first)."""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, cast

from ..log import logger
from ..trial import Suggestion, TrialState
from .records import AskRecord, AttemptRecord, DispatchRecord, RecordKind, ReportRecord, TellRecord, WorkerRecord
from .study import Study
from .table import TrialTable, WorkerInfo

_SNAPSHOT, _ASK, _DISPATCH = RecordKind.SNAPSHOT.value, RecordKind.ASK.value, RecordKind.DISPATCH.value


class Replay:
    def __init__(self, table: TrialTable, study: Study, workers: dict[int, WorkerInfo]) -> None:
        self.table, self.study, self.workers = table, study, workers
        self.logged = False  # asks are answered from the log (before the snapshot)
        self.snapshot_trial: Optional[int] = None  # the trial after whose creation the state was restored
        self.asked = 0  # optimizer asks run again (those after the snapshot)
        self._handlers: dict[str, Callable[[Any], None]] = {
            RecordKind.ASK.value: self.on_ask,
            RecordKind.DISPATCH.value: self.on_dispatch,
            RecordKind.WORKER.value: self.on_worker,
            RecordKind.REPORT.value: self.on_report,
            RecordKind.ATTEMPT.value: self.on_attempt,
            RecordKind.TELL.value: self.on_tell,
        }

    def apply(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Apply the log to the fresh state: answered from the log up to the newest usable
        snapshot, restored there, asked again after it."""
        log = records if isinstance(records, Sequence) else list(records)
        cut, values = self.newest_snapshot(log)
        if cut >= 0:
            self.logged = True
            self._apply(itertools.islice(log, cut))
            self.study.restore_snapshot(log[cut], values)
            self.logged, self.snapshot_trial = False, log[cut]["trial_id"]
        asks = getattr(self.study.optimizer, "asks", 0)
        self._apply(itertools.islice(log, cut + 1, None))
        self.asked = getattr(self.study.optimizer, "asks", 0) - asks

    def _apply(self, records: Iterable[Mapping[str, Any]]) -> None:
        handlers = self._handlers
        for r in records:
            handler = handlers.get(cast(str, r.get("k")))
            if handler is not None:
                handler(r)

    def newest_snapshot(self, log: Sequence[Mapping[str, Any]]) -> tuple[int, dict[str, Any]]:
        """(index, decoded optimizer state) of the newest snapshot record that can be restored
        here, or (-1, {}): replay everything.  A snapshot counts only right after the record
        that created its trial (a journal cut between the two has none for that trial)."""
        skipped, why = 0, ""
        for i in range(len(log) - 1, 0, -1):
            r = log[i]
            if r.get("k") != _SNAPSHOT:
                continue
            prev = log[i - 1]
            created = prev.get("k") == _ASK or (prev.get("k") == _DISPATCH and prev.get("new"))
            if not created or prev.get("trial_id") != r.get("trial_id"):
                reason = "it does not follow the record of its trial"
            else:
                try:
                    values = self.study.decode_snapshot(r)
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    reason = str(exc)
                else:
                    if skipped:
                        logger.warning(
                            "[rdhpo] replay: %d newer snapshot(s) not usable (newest: %s); using the one of trial %s",
                            skipped,
                            why,
                            r.get("trial_id"),
                        )
                    return i, values
            skipped, why = skipped + 1, why or f"after trial {r.get('trial_id')}: {reason}"
        if skipped:
            logger.warning("[rdhpo] replay: %d snapshot(s) not usable (newest: %s); replaying every ask", skipped, why)
        return -1, {}

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
        decision = r.get("decision")
        if decision == "continue" or decision == "stop":  # not "fenced": the scheduler never saw it
            self.study.replay_report(r["trial_id"], r["step"], r["value"], decision == "continue")

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
        if self.logged:
            sug = self.study.suggest_logged(tid, r["params"])
        else:
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
) -> Replay:
    """Apply ``records`` to the (fresh) state, then settle the attempts left running: fenced and
    re-queued, or — ``keep(rank)``, takeover — kept as orphans for their worker to claim."""
    r = Replay(table, study, workers)
    r.apply(records)
    table.settle(keep)
    return r
