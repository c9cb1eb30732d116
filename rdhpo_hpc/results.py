"""A study's outcome as the user sees it, built from the record log (pure; no I/O).

``rd.optimize`` returns it on rank 0; ``rd.load_results(path)`` rebuilds it from a results file
(or from its journal when the study is still running or crashed).
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from typing import Any, Optional, cast

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
