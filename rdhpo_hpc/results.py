"""A study's outcome as the user sees it, built from the record log (pure; no I/O).

``rd.optimize`` returns it on rank 0; ``rd.load_results(path)`` rebuilds it from a results file
(or from its journal when the study is still running or crashed).  ``to_dataframe()`` is in
``frame.py`` (the only pandas user); ``rdhpo show`` prints :func:`summary_lines`,
:func:`error_lines` and :func:`trial_lines`.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from typing import Any, Optional, cast

from .failures import group_errors
from .trial import TrialRecord, best_first


@dataclass
class StudyResult:
    direction: str
    trials: list[TrialRecord]  # one per trial: its final attempt
    attempts: list[dict]  # every ended attempt (LOST ones included)
    reports: list[dict]
    events: list[dict]
    workers: dict[int, dict]
    study: dict = field(default_factory=dict)
    end: Optional[dict] = None
    path: Optional[str] = None
    counted: dict[int, dict] = field(default_factory=dict, repr=False, compare=False)  # trial id -> its attempt

    def to_dataframe(self, attempts: bool = False) -> Any:
        """A pandas DataFrame, one row per trial (``attempts=True``: per ended attempt, LOST ones
        included, with a ``counted`` column): trial_id, attempt, state, value, budget, rank, host,
        device, start, end (UTC timestamps), duration (s), error, then one ``params_NAME`` column
        per parameter (missing where inactive).  Needs pandas: ``pip install 'rdhpo_hpc[data]'``."""
        from .frame import to_dataframe

        return to_dataframe(self, attempts)

    def errors(self) -> list[tuple[str, str, list[int]]]:
        """FAILED trials grouped by error: ``(first line of the error, where it was raised,
        trial ids)``, the most frequent error first."""
        return group_errors((t.trial_id, t.error) for t in self.trials if t.state == "FAILED")

    @property
    def completed(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.state == "COMPLETE"]

    @property
    def best_trial(self) -> Optional[TrialRecord]:
        """The best COMPLETE trial at the largest budget any COMPLETE trial ran (see
        :func:`~rdhpo_hpc.trial.best_first`); the best PRUNED one when none completed."""
        sign = 1.0 if self.direction == "minimize" else -1.0
        for state in ("COMPLETE", "PRUNED"):
            scored = [t for t in self.trials if t.state == state and t.value is not None and math.isfinite(t.value)]
            if scored:
                return min(scored, key=lambda t: best_first(t.budget, sign * cast(float, t.value)))
        return None

    @property
    def best_params(self) -> Optional[dict]:
        t = self.best_trial
        return None if t is None else t.params

    @property
    def best_value(self) -> Optional[float]:
        t = self.best_trial
        return None if t is None else t.value

    def counts(self) -> dict[str, int]:
        """Trials per final state, plus LOST attempts."""
        c = collections.Counter(t.state for t in self.trials)
        c["LOST attempts"] = sum(1 for a in self.attempts if a["state"] == "LOST")
        return dict(c)

    def utilisation(self) -> dict[int, dict]:
        """Per rank: attempts run and busy seconds."""
        out: dict[int, dict] = {}
        for a in self.attempts:
            r = out.setdefault(a["rank"], {"attempts": 0, "busy_s": 0.0})
            r["attempts"] += 1
            if a.get("start_time") is not None and a.get("end_time") is not None:
                r["busy_s"] += max(0.0, a["end_time"] - a["start_time"])
        return out

    @property
    def wall_time(self) -> Optional[float]:
        start = self.study.get("start_time")
        end = (self.end or {}).get("end_time")
        return None if start is None or end is None else end - start

    @property
    def finished(self) -> bool:
        return self.end is not None and self.end.get("end_status") == "complete"


def result_from_records(records: list[dict], path: Optional[str] = None) -> StudyResult:
    study: dict = {}
    end = None
    attempts: list[dict] = []
    reports: list[dict] = []
    events: list[dict] = []
    workers: dict[int, dict] = {}
    for r in records:
        k = r.get("k")
        if k == "study":
            study = {key: v for key, v in r.items() if key != "k"}
        elif k == "end":
            end = r
        elif k == "attempt":
            attempts.append(r)
        elif k == "report":
            reports.append(r)
        elif k == "event":
            events.append(r)
        elif k == "worker":
            workers[r["rank"]] = r
    final: dict[int, dict] = {}
    for a in attempts:  # the counted attempt: the first terminal one; else the latest
        prev = final.get(a["trial_id"])
        if (
            prev is None
            or (prev["state"] == "LOST" and a["state"] != "LOST")
            or (prev["state"] == "LOST" and a["attempt"] > prev["attempt"])
        ):
            final[a["trial_id"]] = a
    trials = [_record(final[t]) for t in sorted(final)]
    return StudyResult(
        direction=study.get("direction", "minimize"),
        trials=trials,
        attempts=attempts,
        reports=reports,
        events=events,
        workers=workers,
        study=study,
        end=end,
        path=path,
        counted={t: final[t] for t in sorted(final)},
    )


def _record(a: dict) -> TrialRecord:
    duration = math.nan
    if a.get("start_time") is not None and a.get("end_time") is not None:
        duration = a["end_time"] - a["start_time"]
    return TrialRecord(
        trial_id=a["trial_id"],
        params=a.get("params") or {},
        value=a.get("value"),
        state=a["state"],
        attempt=a.get("attempt", 0),
        budget=a.get("budget"),
        rank=a.get("rank", -1),
        duration=duration,
        error=a.get("error") or "",
        extra={"metrics": a.get("metrics") or {}, "info": a.get("info") or {}},
    )


def summary_lines(res: StudyResult) -> list[str]:
    lines = []
    n = len(res.trials)
    lines.append(f"trials: {n}  " + "  ".join(f"{k}={v}" for k, v in sorted(res.counts().items()) if v))
    best = res.best_trial
    if best is not None:
        lines.append(f"best value: {best.value:.6g}  (trial {best.trial_id}, {res.direction})")
        lines.append(f"best params: {best.params}")
    else:
        lines.append("best value: none (no trial completed)")
    for rank, u in sorted(res.utilisation().items()):
        w = res.workers.get(rank, {})
        lines.append(
            f"  rank {rank}: {u['attempts']} attempts, busy {u['busy_s']:.1f}s"
            f"  {w.get('host', '')} {w.get('device', '')}".rstrip()
        )
    if res.wall_time is not None:
        lines.append(f"wall time: {res.wall_time:.1f}s")
    return lines


def best_lines(res: StudyResult, n: int = 5) -> list[str]:
    """The ``n`` best COMPLETE trials (largest budget first, then value; as ``best_trial``)."""
    sign = 1.0 if res.direction == "minimize" else -1.0
    done = [t for t in res.completed if t.value is not None and math.isfinite(t.value)]
    done.sort(key=lambda t: best_first(t.budget, sign * cast(float, t.value)))
    if len(done) < 2:
        return []
    lines = [f"best {min(n, len(done))} trials:"]
    for t in done[:n]:
        budget = "" if t.budget is None else f" budget {t.budget:g}"
        lines.append(f"  trial {t.trial_id:>4}: {t.value:.6g}{budget}  {_params(t.params)}")
    return lines


def error_lines(res: StudyResult, ids: int = 8) -> list[str]:
    """The errors of FAILED trials, grouped by error, with (up to ``ids``) trial ids per error."""
    groups = res.errors()
    if not groups:
        return []
    lines = [f"errors ({sum(len(g[2]) for g in groups)} FAILED trials, {len(groups)} distinct):"]
    for head, at, tids in groups:
        shown = ", ".join(map(str, tids[:ids])) + (f", ... ({len(tids) - ids} more)" if len(tids) > ids else "")
        lines.append(f"  {len(tids)} x {head}")
        if at:
            lines.append(f"      at {at}")
        lines.append(f"      trials {shown}")
    return lines


def trial_lines(res: StudyResult, state: Optional[str] = None, width: int = 60) -> list[str]:
    """One line per trial (``state``: only those in that state): id, state, value, rank, duration,
    params, and the first line of the error."""
    from .failures import headline

    rows = [t for t in res.trials if state is None or t.state == state]
    lines = [f"{'trial':>5}  {'state':<8} {'value':>11} {'rank':>4} {'duration':>9}  params / error"]
    for t in rows:
        value = "-" if t.value is None else f"{t.value:.6g}"
        dur = "-" if math.isnan(t.duration) else f"{t.duration:.2f}s"
        line = f"{t.trial_id:>5}  {t.state:<8} {value:>11} {t.rank:>4} {dur:>9}  {_params(t.params)}"
        if t.error:
            err = headline(t.error)
            line += "  | " + (err if len(err) <= width else err[: width - 3] + "...")
        lines.append(line)
    return lines


def _params(params: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def family_table(res: StudyResult, key: str = "model") -> dict[Any, dict]:
    """Best value, trials and compute per value of a categorical (e.g. the model family)."""
    out: dict[Any, dict] = {}
    pick = min if res.direction == "minimize" else max
    for t in res.trials:
        fam = t.params.get(key)
        if fam is None:
            continue
        row = out.setdefault(fam, {"trials": 0, "compute_s": 0.0, "best_value": None, "best_params": None})
        row["trials"] += 1
        if not math.isnan(t.duration):
            row["compute_s"] += t.duration
        if t.state == "COMPLETE" and t.value is not None:
            if row["best_value"] is None or pick(row["best_value"], t.value) == t.value:
                row["best_value"], row["best_params"] = t.value, t.params
    return out
