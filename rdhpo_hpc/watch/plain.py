"""``rdhpo watch`` without a terminal (a pipe, a log file, a batch script) and ``--once``: a
snapshot as text (:func:`text`), or one line per change (:func:`follow`): the summary line when
the study moved, plus one line per new event and per new failure."""

from __future__ import annotations

import time
from typing import Callable, TextIO, TypeVar

from .snapshot import ROW_HEADER, Snapshot, event_line, failure_line, hms, take
from .source import JournalSource

T = TypeVar("T")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    return ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header, *rows]]


def text(snap: Snapshot) -> str:
    """The whole snapshot as plain text (``--once`` off a terminal, the last screen of a run)."""
    pct = "" if snap.fraction is None else f" ({100 * snap.fraction:.0f}%)"
    lines = [
        snap.title,
        f"status: {snap.status} ({snap.status_detail})",
        f"progress: {snap.done}/{snap.total if snap.total is not None else '?'} trials done{pct}, "
        f"{snap.running} running, {snap.queued} queued | elapsed {hms(snap.elapsed)}"
        + ("" if snap.eta is None else f" | ETA {hms(snap.eta)}"),
        f"counts: {snap.counts}",
        f"best: {snap.best}" + (f"  params: {snap.best_params}" if snap.best_params else ""),
    ]
    if snap.chart:
        lines.append(f"best so far: {snap.chart}")
    lines.append(f"{snap.workers}:")
    lines += ["  " + line for line in table(ROW_HEADER, snap.rows)] if snap.rows else ["  (none registered yet)"]
    lines.append("recent events:")
    lines += ["  " + e for e in snap.events] or ["  (none)"]
    lines.append("recent failures:")
    lines += ["  " + f for f in snap.failures] or ["  (none)"]
    return "\n".join(lines)


def _new(items: "list[T]", total: int, seen: int) -> "list[T]":
    """The items appended since ``seen`` of ``total`` (a bounded deque keeps the last ones)."""
    return items[len(items) - min(len(items), total - seen) :] if total > seen else []


def follow(
    src: JournalSource,
    out: TextIO,
    interval: float,
    until_end: bool = True,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print lines as the study moves, every ``interval`` seconds at most; once the study ended
    (``until_end``) print the final snapshot and return 0.  Otherwise runs until interrupted
    (the caller handles KeyboardInterrupt)."""
    view, events, failures, last = None, 0, 0, ""
    while True:
        src.poll()
        v = src.view
        if v is not view:  # the first round, or a replaced journal
            view, events, failures = v, 0, 0
        for e in _new(list(v.events), v.n_events, events):
            print(f"event {event_line(e)}", file=out)
        for f in _new(list(v.failures), v.n_failures, failures):
            print(f"failure {failure_line(f)}", file=out)
        events, failures = v.n_events, v.n_failures
        snap = take(v, src.beat(), clock(), src.results)
        key = f"{snap.status} {snap.done} {snap.running} {snap.counts} {snap.best} {snap.workers}"
        if key != last:
            print(snap.summary(), file=out)
            last = key
        out.flush()
        if snap.ended and until_end:
            print(text(snap), file=out, flush=True)
            return 0
        sleep(interval)
