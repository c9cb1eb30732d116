"""Plot data drawn from a :class:`~rdhpo_hpc.results.StudyResult` — pure (numpy only, no matplotlib).

Every function here reads only what the results file holds (``rd.load_results``), so it works on a
finished study, a running one and a crashed one (read from its journal).
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from .. import validate

if TYPE_CHECKING:
    from typing import TypeGuard  # Python 3.10

STATE_COLORS = {
    "COMPLETE": "#2b8cbe",
    "PRUNED": "#f0a30a",
    "FAILED": "#d7301f",
    "LOST": "#7a7a7a",
    "RUNNING": "#bbbbbb",
}


def finite(v: Any) -> TypeGuard[float]:
    return validate.is_real(v)


def study_label(res: Any) -> str:
    name = res.study.get("name")
    base = os.path.splitext(os.path.basename(res.path or "study"))[0]
    return base if not name or name in ("study", base) else f"{name} ({base})"


def t0(res: Any) -> float:
    """Study start (the /study start_time attribute; else the first recorded time)."""
    st = res.study.get("start_time")
    if finite(st):
        return float(st)
    times = [a["start_time"] for a in res.attempts if finite(a.get("start_time"))]
    times += [e["time"] for e in res.events if finite(e.get("time"))]
    return min(times) if times else 0.0


def history(res: Any) -> dict:
    """Trials in completion order: time since start (s), value, state, best-so-far (COMPLETE only)."""
    start = t0(res)
    minimize = res.direction != "maximize"
    rows = []
    for t in res.trials:
        a = _final_attempt(res, t.trial_id)
        end = a.get("end_time") if a else None
        rows.append((end if finite(end) else math.inf, t.trial_id, t.value, t.state, t.params))
    rows.sort(key=lambda r: (r[0], r[1]))
    best, bests = None, []
    for _end, _tid, v, state, _p in rows:
        if state == "COMPLETE" and finite(v):
            best = v if best is None or (v < best if minimize else v > best) else best
        bests.append(math.nan if best is None else best)
    return {
        "time": np.array([r[0] - start if math.isfinite(r[0]) else math.nan for r in rows], float),
        "index": np.arange(1, len(rows) + 1),
        "value": np.array([r[2] if finite(r[2]) else math.nan for r in rows], float),
        "state": [r[3] for r in rows],
        "trial_id": [r[1] for r in rows],
        "params": [r[4] for r in rows],
        "best": np.array(bests, float),
    }


def _final_attempt(res: Any, tid: int) -> Optional[dict]:
    cands = [a for a in res.attempts if a["trial_id"] == tid]
    if not cands:
        return None
    done = [a for a in cands if a["state"] != "LOST"]
    return (done or cands)[0] if done else cands[-1]


# -- hyper-parameters -----------------------------------------------------------------------------
def _flat_space(space: Any, out: Optional[dict] = None) -> dict:
    """name -> spec for every leaf of a (possibly conditional) space dict from /study."""
    out = {} if out is None else out
    if not isinstance(space, dict):
        return out
    for name, spec in space.items():
        if not isinstance(spec, dict):
            continue
        out.setdefault(name, spec)
        for sub in (spec.get("conditional") or {}).values():
            _flat_space(sub, out)
    return out


def param_table(res: Any, states: Sequence[str] = ("COMPLETE",)) -> dict:
    """Columns of the trials' parameters, one entry per param, absent values as NaN.

    Returns ``{"names", "columns": {name: {"kind": "num"|"cat", "raw": list, "x": float array
    (numbers, log10 when the space says log; categories as codes), "labels": list | None,
    "log": bool}}, "value": array, "trial_id": list}``.
    """
    spec = _flat_space(res.study.get("space"))
    trials = [t for t in res.trials if t.state in states and finite(t.value)]
    names: list[str] = list(spec)
    for t in trials:
        for k in t.params:
            if k not in names:
                names.append(k)
    names = [n for n in names if any(n in t.params for t in trials)]
    cols = {}
    for n in names:
        raw = [t.params.get(n) for t in trials]
        present = [v for v in raw if v is not None]
        s = spec.get(n, {})
        is_num = s.get("type") in ("float", "int") or (s.get("type") is None and all(finite(v) for v in present))
        if is_num and all(finite(v) for v in present):
            log = bool(s.get("log")) and all(v > 0 for v in present)
            x = np.array(
                [math.log10(v) if (log and v is not None) else (math.nan if v is None else v) for v in raw], float
            )
            cols[n] = {"kind": "num", "raw": raw, "x": x, "labels": None, "log": log}
        else:
            labels = [str(c) for c in s.get("choices", [])]
            for v in present:
                if str(v) not in labels:
                    labels.append(str(v))
            x = np.array([math.nan if v is None else labels.index(str(v)) for v in raw], float)
            cols[n] = {"kind": "cat", "raw": raw, "x": x, "labels": labels, "log": False}
    return {
        "names": names,
        "columns": cols,
        "value": np.array([t.value for t in trials], float),
        "trial_id": [t.trial_id for t in trials],
    }


def design_matrix(table: dict) -> np.ndarray:
    """Features for a tree model: numbers scaled to [0, 1], categories as codes; absent = -1."""
    feats = []
    for n in table["names"]:
        x = table["columns"][n]["x"].copy()
        ok = ~np.isnan(x)
        if table["columns"][n]["kind"] == "num" and ok.any():
            lo, hi = x[ok].min(), x[ok].max()
            x[ok] = (x[ok] - lo) / (hi - lo) if hi > lo else 0.5
        x[~ok] = -1.0
        feats.append(x)
    return np.column_stack(feats) if feats else np.zeros((len(table["value"]), 0))


#: the importance plot is not drawn from fewer COMPLETE trials (a ranking from 6 trials is noise)
MIN_IMPORTANCE_TRIALS = 10


def importance(table: dict, seed: int = 0) -> tuple[dict[str, float], str]:
    """Importance per parameter, normalised to sum 1, and the method used.

    Random-forest permutation importance (scikit-learn) with >= 8 trials; otherwise — or without
    scikit-learn — a fANOVA-style main-effect share: variance of the per-bin mean value over the
    total variance (parameters absent in a trial count as their own bin).
    """
    names, y = table["names"], table["value"]
    if not names or len(y) < 3 or np.nanstd(y) == 0:
        return {n: 0.0 for n in names}, "none"
    X = design_matrix(table)
    scores, method = None, "main-effect variance"
    if len(y) >= 8:
        try:
            from sklearn.ensemble import RandomForestRegressor
            from sklearn.inspection import permutation_importance

            rf = RandomForestRegressor(n_estimators=64, min_samples_leaf=2, random_state=seed, n_jobs=1)
            rf.fit(X, y)
            pi = permutation_importance(rf, X, y, n_repeats=5, random_state=seed, n_jobs=1)
            scores = np.clip(pi.importances_mean, 0, None)
            method = "random-forest permutation"
        except ImportError:
            scores = None
    if scores is None:
        scores = np.array([_main_effect(X[:, j], y, table["columns"][n]["kind"]) for j, n in enumerate(names)])
    total = float(scores.sum())
    return {n: (float(s) / total if total > 0 else 0.0) for n, s in zip(names, scores)}, method


def _main_effect(x: np.ndarray, y: np.ndarray, kind: str, bins: int = 5) -> float:
    if kind == "num":
        ok = x >= 0
        edges = np.quantile(x[ok], np.linspace(0, 1, bins + 1)[1:-1]) if ok.sum() > bins else []
        codes = np.where(ok, np.searchsorted(edges, x) if len(edges) else 0, -1)
    else:
        codes = x
    var = float(np.var(y))
    if var == 0:
        return 0.0
    between = sum(((codes == c).mean()) * (y[codes == c].mean() - y.mean()) ** 2 for c in np.unique(codes))
    return float(between / var)


# -- learning curves, lineage ---------------------------------------------------------------------
def curves(res: Any) -> list[dict]:
    """One curve per (trial, attempt) from /reports with the attempt's outcome; a trial promoted
    from another (``info.promoted_from``) starts at that trial's last point, so a configuration's
    rungs join up."""
    by: dict[tuple, list] = {}
    for r in res.reports:
        if finite(r.get("value")):
            by.setdefault((r["trial_id"], r.get("attempt") or 0), []).append((r["step"], r["value"], r.get("decision")))
    states = {(a["trial_id"], a.get("attempt") or 0): a["state"] for a in res.attempts}
    promoted_from = {a["trial_id"]: (a.get("info") or {}).get("promoted_from") for a in res.attempts}
    last: dict[Optional[int], tuple[Any, ...]] = {}  # trial -> its last point (a promoted trial's line starts there)
    out = []
    for key, pts in sorted(by.items()):
        pts.sort()
        last[key[0]] = pts[-1][:2] + (None,)
        parent = last.get(promoted_from.get(key[0]))
        if parent is not None and parent[0] < pts[0][0]:  # rung schedulers' promote mode
            pts.insert(0, parent)
        out.append(
            {
                "trial_id": key[0],
                "attempt": key[1],
                "step": np.array([p[0] for p in pts], float),
                "value": np.array([p[1] for p in pts], float),
                "state": states.get(key, "RUNNING"),
                "stopped": any(p[2] == "stop" for p in pts),
            }
        )
    return out


def lineage(res: Any) -> list[dict]:
    """PBT lineage: attempts whose info carries ``member`` (or whose trial has a parent).

    The parent is ``info.parent`` or ``info.parent_trial`` (the PBT scheduler's key) or the
    attempt's ``checkpoint_from``; ``info.exploited_from`` marks an exploit step."""
    start = t0(res)
    rows = []
    for a in res.attempts:
        info = a.get("info") or {}
        parent = next(
            (v for v in (info.get("parent"), info.get("parent_trial"), a.get("checkpoint_from")) if v is not None), None
        )
        if "member" not in info and parent is None:
            continue
        rows.append(
            {
                "trial_id": a["trial_id"],
                "member": info.get("member"),
                "parent": parent,
                "start": (a.get("start_time") or start) - start,
                "end": (a.get("end_time") or start) - start,
                "value": a.get("value"),
                "state": a["state"],
                "exploit": info.get("exploited_from") is not None,
            }
        )
    if rows and any(r["member"] is None for r in rows):  # no member ids: one row per lineage root
        root: dict[int, int] = {}
        by_id = {r["trial_id"]: r for r in rows}
        for r in sorted(rows, key=lambda r: r["trial_id"]):
            p = r["parent"]
            root[r["trial_id"]] = root.get(p, p) if p in by_id or p in root else r["trial_id"]
        order = sorted(set(root.values()))
        for r in rows:
            if r["member"] is None:
                r["member"] = order.index(root[r["trial_id"]])
    return rows


# -- timeline -------------------------------------------------------------------------------------
TIMELINE_EVENTS = (
    "rank-dead",
    "requeue",
    "shrink",
    "takeover",
    "resume",
    "interrupt",
    "retries-exhausted",
    "terminate-hung",
    "late-result-accepted",
)


def timeline(res: Any) -> dict:
    start = t0(res)
    bars = [
        {
            "rank": a["rank"],
            "start": a["start_time"] - start,
            "end": a["end_time"] - start,
            "state": a["state"],
            "trial_id": a["trial_id"],
            "attempt": a.get("attempt") or 0,
        }
        for a in res.attempts
        if a.get("rank") is not None and finite(a.get("start_time")) and finite(a.get("end_time"))
    ]
    events = [
        {
            "time": e["time"] - start,
            "kind": e["kind"],
            "rank": e.get("rank"),
            "detail": e.get("detail") or "",
            "latency": e.get("latency"),
        }
        for e in res.events
        if finite(e.get("time")) and e.get("kind") != "coordinator-start"
    ]
    ranks = sorted(
        {b["rank"] for b in bars}
        | set(res.workers)
        | {0}
        | {e["rank"] for e in events if isinstance(e["rank"], int) and e["rank"] >= 0}
    )
    end = (res.end or {}).get("end_time")
    return {"bars": bars, "events": events, "ranks": ranks, "end": end - start if finite(end) else None}


# -- scaling --------------------------------------------------------------------------------------
def scaling_rows(path: str) -> list[dict]:
    """JSON lines of ``bench/scaling.py`` (``bench == "scaling"``) from a results.jsonl file."""
    import json

    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if r.get("bench") == "scaling" and finite(r.get("value")) and r.get("workers") is not None:
                rows.append(r)
    return rows
