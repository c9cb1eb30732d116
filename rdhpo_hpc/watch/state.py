"""What ``rdhpo watch`` knows about a study: journal records folded, one at a time, into a
:class:`StudyView`.  Pure: no I/O, no clock (``view.apply(record)`` is called by
:class:`~.source.JournalSource` for every new record, in journal order).

The fold follows the coordinator's own bookkeeping (:mod:`rdhpo_hpc.coordination`): counts per
state from ``tell`` records (LOST per ``attempt`` record), the best COMPLETE trial by
:func:`~rdhpo_hpc.trial.best_first` (as the progress line), running attempts from ``dispatch``
until their ``attempt`` record, and worker liveness from ``worker`` records and the ``rank-dead``
/ ``rank-unreachable`` / ``route`` events.  A ``resume`` event starts a new job (its running
attempts were re-queued, its workers register again); ``interrupt`` and ``end`` leave nothing
running; ``orphan-released`` drops an attempt not re-claimed after a takeover.
"""

from __future__ import annotations

import collections
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..failures import headline
from ..trial import best_first

RECENT = 50  # events and failures kept for display


@dataclass
class Running:
    """An attempt handed to a rank and not ended yet (the first per rank runs, the rest are queued)."""

    trial_id: int
    attempt: int
    rank: int
    dispatched: float
    params: dict[str, Any]
    budget: Any  # the scheduler's budget (epochs, ...), None without one
    seq: int  # dispatch order
    step: Optional[int] = None  # last reported step and value
    value: Optional[float] = None
    reported: Optional[float] = None


@dataclass
class Worker:
    rank: int
    host: str = ""
    pid: Optional[int] = None
    device: str = ""
    status: str = "live"  # live | dead | unreachable | coordinator
    via: Optional[int] = None  # messages routed through this rank (a cut direct link)
    attempts: int = 0  # ended attempts


@dataclass
class Event:
    time: float
    kind: str
    rank: int
    detail: str


@dataclass
class Failure:
    time: float
    trial_id: int
    attempt: int
    rank: int
    error: str  # the error's headline (``Type: message``)


@dataclass
class Best:
    trial_id: int
    value: float
    params: dict[str, Any]
    key: tuple[float, float]


@dataclass
class StudyView:
    """The study as its journal tells it so far."""

    study: dict[str, Any] = field(default_factory=dict)  # the ``study`` record (config, start time)
    records: int = 0
    last_time: Optional[float] = None  # the latest time stamp of any record
    size: Optional[int] = None  # MPI ranks of the current job (coordinator-start)
    coordinator: Optional[int] = None
    coordinator_host: str = ""
    job: int = 0  # jobs seen: 1 + resumes
    job_start: Optional[float] = None
    done_at_job_start: int = 0
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    done: int = 0  # trials told (COMPLETE / PRUNED / FAILED)
    completed: int = 0  # COMPLETE trials with a value
    trials: dict[int, tuple[dict[str, Any], Any]] = field(default_factory=dict)  # id -> (params, budget)
    running: dict[tuple[int, int], Running] = field(default_factory=dict)
    workers: dict[int, Worker] = field(default_factory=dict)
    best: Optional[Best] = None
    improvements: list[tuple[int, float]] = field(default_factory=list)  # (completed count, new best)
    events: collections.deque[Event] = field(default_factory=lambda: collections.deque(maxlen=RECENT))
    failures: collections.deque[Failure] = field(default_factory=lambda: collections.deque(maxlen=RECENT))
    end: Optional[dict[str, Any]] = None
    malformed: int = 0  # records missing a field the fold needs
    n_events: int = 0  # events and failures folded in so far (the deques keep the last RECENT)
    n_failures: int = 0
    _seq: int = 0

    # -- derived ----------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.study.get("name", "?"))

    @property
    def direction(self) -> str:
        return str(self.study.get("direction", "minimize"))

    @property
    def max_trials(self) -> Optional[int]:
        m = self.study.get("max_trials")
        return int(m) if isinstance(m, (int, float)) else None

    @property
    def start_time(self) -> Optional[float]:
        t = self.study.get("start_time")
        return float(t) if isinstance(t, (int, float)) else None

    @property
    def t_fail(self) -> float:
        ft = self.study.get("fault_tolerance") or {}
        return float(ft.get("t_fail", 10.0))

    def held(self) -> dict[int, list[Running]]:
        """rank -> the attempts it holds, in dispatch order (the first runs, the others wait)."""
        out: dict[int, list[Running]] = {}
        for r in sorted(self.running.values(), key=lambda r: r.seq):
            out.setdefault(r.rank, []).append(r)
        return out

    # -- the fold ---------------------------------------------------------------------------------
    def apply(self, r: dict[str, Any]) -> None:
        """Fold one journal record in (unknown kinds only count; a malformed one is skipped)."""
        self.records += 1
        handler = _HANDLERS.get(str(r.get("k")))
        if handler is not None:
            try:
                handler(self, r)
            except (KeyError, TypeError, ValueError):
                self.malformed += 1

    def _stamp(self, t: Any) -> None:
        if isinstance(t, (int, float)) and (self.last_time is None or t > self.last_time):
            self.last_time = float(t)

    def _worker(self, rank: int) -> Worker:
        w = self.workers.get(rank)
        if w is None:
            w = self.workers[rank] = Worker(rank)
        return w

    def on_study(self, r: dict[str, Any]) -> None:
        self.study = {k: v for k, v in r.items() if k != "k"}
        self._stamp(r.get("start_time"))

    def on_ask(self, r: dict[str, Any]) -> None:
        self.trials[int(r["trial_id"])] = (r.get("params") or {}, r.get("budget"))
        self._stamp(r.get("time"))

    def on_dispatch(self, r: dict[str, Any]) -> None:
        tid, att, rank = int(r["trial_id"]), int(r["attempt"]), int(r["rank"])
        if tid not in self.trials or r.get("new"):
            self.trials[tid] = (r.get("params") or {}, r.get("budget"))
        self._seq += 1
        t = float(r.get("time") or 0.0)
        self.running[(tid, att)] = Running(tid, att, rank, t, self.trials[tid][0], r.get("budget"), self._seq)
        w = self._worker(rank)
        if w.status != "coordinator":
            w.status = "live"
        self._stamp(t)

    def on_report(self, r: dict[str, Any]) -> None:
        run = self.running.get((int(r["trial_id"]), int(r["attempt"])))
        if run is not None and r.get("decision") != "fenced":
            run.step, run.value, run.reported = r.get("step"), r.get("value"), r.get("time")
        self._stamp(r.get("time"))

    def on_attempt(self, r: dict[str, Any]) -> None:
        tid, att, rank = int(r["trial_id"]), int(r["attempt"]), int(r.get("rank", -1))
        self.running.pop((tid, att), None)
        if rank >= 0:
            self._worker(rank).attempts += 1
        state = r.get("state")
        if state == "LOST":
            self.counts["LOST"] += 1
        elif state == "FAILED":
            t = float(r.get("end_time") or 0.0)
            self.failures.append(Failure(t, tid, att, rank, headline(str(r.get("error") or ""))))
            self.n_failures += 1
        self._stamp(r.get("end_time"))

    def on_tell(self, r: dict[str, Any]) -> None:
        tid, state, value = int(r["trial_id"]), str(r.get("state")), r.get("value")
        self.counts[state] += 1
        self.done += 1
        if state != "COMPLETE" or not isinstance(value, (int, float)):
            return
        self.completed += 1
        params, budget = self.trials.get(tid, ({}, None))
        key = best_first(budget, value if self.direction == "minimize" else -value)
        if self.best is None or key < self.best.key:
            self.best = Best(tid, float(value), params, key)
            self.improvements.append((self.completed, float(value)))

    def on_worker(self, r: dict[str, Any]) -> None:
        w = self._worker(int(r["rank"]))
        w.host, w.pid, w.device = str(r.get("host", "")), r.get("pid"), str(r.get("device", ""))
        w.status, w.via = "live", None
        self._stamp(r.get("time"))

    def on_event(self, r: dict[str, Any]) -> None:
        kind, rank, detail = str(r.get("kind", "")), int(r.get("rank", -1)), str(r.get("detail", ""))
        t = float(r.get("time") or 0.0)
        self.events.append(Event(t, kind, rank, detail))
        self.n_events += 1
        self._stamp(t)
        on = _EVENTS.get(kind)
        if on is not None:
            on(self, rank, detail, t)

    def on_end(self, r: dict[str, Any]) -> None:
        self.end = {k: v for k, v in r.items() if k != "k"}
        self.running.clear()
        self._stamp(r.get("end_time"))

    # -- events that change what runs where -------------------------------------------------------
    def _coordinator_start(self, rank: int, detail: str, t: float) -> None:
        size = re.search(r"size=(\d+)", detail)
        host = re.search(r"host=(\S+)", detail)
        self.size = int(size.group(1)) if size else self.size
        self.coordinator_host = host.group(1) if host else ""
        self.coordinator = rank
        if self.job == 0:
            self.job = 1
        self.job_start, self.done_at_job_start = t, self.done
        if rank in self.workers:
            self.workers[rank].status = "coordinator"

    def _resume(self, rank: int, detail: str, t: float) -> None:
        """A new job continues the study: what ran before was re-queued; workers register again."""
        self.job = max(self.job, 1) + 1
        self.running.clear()
        self.workers.clear()
        self.end = None

    def _takeover(self, rank: int, detail: str, t: float) -> None:
        old = re.search(r"replaces coordinator rank (\d+)", detail)
        if old:
            self._worker(int(old.group(1))).status = "dead"
        self._worker(rank).status = "coordinator"
        self.coordinator = rank

    def _dead(self, rank: int, detail: str, t: float) -> None:
        self._worker(rank).status = "dead"

    def _unreachable(self, rank: int, detail: str, t: float) -> None:
        self._worker(rank).status = "unreachable"

    def _route(self, rank: int, detail: str, t: float) -> None:
        via = re.search(r"through rank (\d+)", detail)
        self._worker(rank).via = int(via.group(1)) if via else None

    def _interrupt(self, rank: int, detail: str, t: float) -> None:
        self.running.clear()  # abandoned: re-run on resume

    def _orphan_released(self, rank: int, detail: str, t: float) -> None:
        m = re.search(r"trial (\d+) attempt (\d+)", detail)
        if m:
            self.running.pop((int(m.group(1)), int(m.group(2))), None)


_HANDLERS: dict[str, Callable[[StudyView, dict[str, Any]], None]] = {
    "study": StudyView.on_study,
    "ask": StudyView.on_ask,
    "dispatch": StudyView.on_dispatch,
    "report": StudyView.on_report,
    "attempt": StudyView.on_attempt,
    "tell": StudyView.on_tell,
    "worker": StudyView.on_worker,
    "event": StudyView.on_event,
    "end": StudyView.on_end,
}

_EVENTS: dict[str, Callable[[StudyView, int, str, float], None]] = {
    "coordinator-start": StudyView._coordinator_start,
    "resume": StudyView._resume,
    "takeover": StudyView._takeover,
    "rank-dead": StudyView._dead,
    "rank-unreachable": StudyView._unreachable,
    "route": StudyView._route,
    "interrupt": StudyView._interrupt,
    "orphan-released": StudyView._orphan_released,
}
