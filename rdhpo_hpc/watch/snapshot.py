"""What one screen of ``rdhpo watch`` says, as plain strings: built from a
:class:`~.state.StudyView`, the coordinator's heartbeat and the clock by :func:`take` on every
refresh, then drawn by :mod:`.view` (rich, a terminal) or :mod:`.plain` (text lines).  Pure."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from .state import Event, Failure, Running, StudyView, Worker

SPARK = "▁▂▃▄▅▆▇█"
STALE_MARGIN_S = 15.0  # as the supervisor: a heartbeat older than 2 t_fail + 15 s is a silent job


@dataclass
class Snapshot:
    title: str
    status: str  # waiting | running | silent | finished | stopped | failed
    status_detail: str
    done: int
    total: Optional[int]
    running: int
    queued: int
    elapsed: Optional[float]
    eta: Optional[float]
    counts: str
    best: str
    best_params: str
    chart: str  # best value so far over completed trials (a sparkline with its range)
    rows: list[list[str]] = field(default_factory=list)  # one per rank: ROW_HEADER
    workers: str = ""
    events: list[str] = field(default_factory=list)  # oldest first
    failures: list[str] = field(default_factory=list)  # oldest first
    ended: bool = False

    @property
    def fraction(self) -> Optional[float]:
        return None if not self.total else min(1.0, self.done / self.total)

    def summary(self) -> str:
        """One line: the status, progress, counts, best, workers and ETA."""
        total = "?" if self.total is None else str(self.total)
        eta = "" if self.eta is None else f" | ETA {hms(self.eta)}"
        return (
            f"[rdhpo watch {hms(self.elapsed)}] {self.status} | trials {self.done}/{total} done, "
            f"{self.running} running | {self.counts} | best {self.best} | {self.workers}{eta}"
        )


ROW_HEADER = ["rank", "host", "status", "trial", "step", "value", "running", "queued"]


def hms(seconds: Optional[float]) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--:--"
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def num(v: Any) -> str:
    return f"{v:.5g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={num(v) if isinstance(v, float) else v}" for k, v in params.items())


def sparkline(improvements: list[tuple[int, float]], n: int, width: int = 40) -> str:
    """The best value so far after each of ``n`` completed trials, in at most ``width`` columns;
    ``improvements`` holds (completed count, new best) in order."""
    if n <= 0 or not improvements:
        return ""
    cols = min(width, n)
    values, i, best = [], 0, improvements[0][1]
    for c in range(cols):
        upto = math.ceil((c + 1) * n / cols)
        while i < len(improvements) and improvements[i][0] <= upto:
            best = improvements[i][1]
            i += 1
        values.append(best)
    first, last = values[0], values[-1]
    log = min(values) > 0 and max(values) > 100 * min(values)  # decades apart: a log scale
    if log:
        values = [math.log10(v) for v in values]
    lo, hi = min(values), max(values)
    span = hi - lo
    bars = "".join(SPARK[0 if span <= 0 else round((v - lo) / span * (len(SPARK) - 1))] for v in values)
    return f"{num(first)} {bars} {num(last)}" + (" (log scale)" if log else "")


def _status(view: StudyView, beat: Optional[tuple[float, int]], now: float) -> tuple[str, str]:
    if view.end is not None:
        code = view.end.get("exit_code")
        word = {0: "finished", 1: "failed"}.get(code if isinstance(code, int) else -1, "stopped")
        return word, f"ended: {view.end.get('end_status', '?')}, exit code {code}"
    if not view.study:
        return "waiting", "the journal holds no study yet (the job has not started)"
    seen = beat[0] if beat is not None else view.last_time
    age = None if seen is None else max(0.0, now - seen)
    where = f"coordinator rank {view.coordinator if view.coordinator is not None else '?'}" + (
        f" on {view.coordinator_host}" if view.coordinator_host else ""
    )
    stale = 2 * view.t_fail + STALE_MARGIN_S
    if age is not None and age > stale:
        return "silent", (
            f"{where}: no heartbeat for {age:.0f} s (> {stale:.0f} s): the job crashed, hung or was "
            f"stopped without an end record; `rdhpo run CONFIG --resume` continues it"
        )
    what = "heartbeat" if beat is not None else "last record"
    return "running", f"{where}, {what} {age:.1f} s ago" if age is not None else where


def _eta(view: StudyView, now: float, total: Optional[int]) -> Optional[float]:
    if view.end is not None or view.job_start is None:
        return None
    eta = None
    new = view.done - view.done_at_job_start
    if total is not None and new > 0 and now > view.job_start:
        eta = max(0, total - view.done) * (now - view.job_start) / new
    wall = view.study.get("max_wall_time")
    if isinstance(wall, (int, float)):
        left = max(0.0, view.job_start + wall - now)
        eta = left if eta is None else min(eta, left)
    return eta


def _row(w: Worker, held: list[Running], now: float) -> list[str]:
    """A rank's line: the attempt it runs (with its last report) and how many wait behind it."""
    status = w.status + (f" via {w.via}" if w.via is not None and w.status == "live" else "")
    if not held:
        return [str(w.rank), w.host, status, "-", "-", "-", "-", "-"]
    r = held[0]
    trial = str(r.trial_id) + ("" if r.budget is None else f" @{num(r.budget)}")
    trial += f" (attempt {r.attempt})" if r.attempt else ""
    step = "-" if r.step is None else str(r.step)
    since = f"{max(0.0, now - r.dispatched):.0f}s"
    return [str(w.rank), w.host, status, trial, step, num(r.value), since, str(len(held) - 1) if len(held) > 1 else "-"]


def _workers(view: StudyView) -> list[Worker]:
    """Registered workers, plus ranks of the job not registered yet (shown as ``starting``)."""
    ws = dict(view.workers)
    if view.size is not None:
        for rank in range(view.size):
            if rank != view.coordinator and rank not in ws:
                ws[rank] = Worker(rank, status="starting")
    return [ws[r] for r in sorted(ws)]


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def event_line(e: Event) -> str:
    return f"{_clock(e.time)} {e.kind}{f' rank {e.rank}' if e.rank >= 0 else ''}: {e.detail}"


def failure_line(f: Failure) -> str:
    return f"{_clock(f.time)} trial {f.trial_id} attempt {f.attempt} on rank {f.rank}: {f.error}"


def take(view: StudyView, beat: Optional[tuple[float, int]], now: float, path: str = "", recent: int = 8) -> Snapshot:
    """The screen for ``view`` at time ``now``; ``beat``: the heartbeat file's (mtime, rank)."""
    status, detail = _status(view, beat, now)
    total = view.max_trials
    held = view.held()
    start = view.start_time
    end_t = view.end.get("end_time") if view.end else None
    elapsed = None if start is None else (end_t if isinstance(end_t, (int, float)) else now) - start
    c = view.counts
    workers = _workers(view)
    by = {s: sum(w.status == s for w in workers) for s in ("live", "dead", "unreachable")}
    n_workers = sum(w.status != "coordinator" for w in workers)
    best = view.best
    st = view.study
    title = f"study {view.name!r}" + (
        f" · {st.get('optimizer')} · {view.direction} {st.get('metric', 'value')}" if st else ""
    )
    return Snapshot(
        title=title + (f" · {path}" if path else ""),
        status=status,
        status_detail=detail,
        done=view.done,
        total=total,
        running=len(held),
        queued=len(view.running) - len(held),
        elapsed=elapsed,
        eta=_eta(view, now, total),
        counts=f"complete {c['COMPLETE']} pruned {c['PRUNED']} failed {c['FAILED']} lost {c['LOST']}",
        best="-" if best is None else f"{num(best.value)} (trial {best.trial_id})",
        best_params="" if best is None else params_text(best.params),
        chart=sparkline(view.improvements, view.completed),
        rows=[_row(w, held.get(w.rank, []), now) for w in workers],
        workers=f"workers {by['live']}/{n_workers} live"
        + "".join(f", {by[s]} {s}" for s in ("dead", "unreachable") if by[s]),
        events=[event_line(e) for e in list(view.events)[-recent:]],
        failures=[failure_line(f) for f in list(view.failures)[-recent:]],
        ended=view.end is not None,
    )
