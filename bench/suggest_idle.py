"""Suggestion idle bench (issue 4.2): do workers wait for rank 0's ``bayes`` suggestions at 32 workers?

Runs a sleep-objective study (fixed trial time) under real ``mpirun -n 33`` (32 workers, rank 0
coordinates; oversubscribed) with ``optimizer=bayes`` (default fast backend) and, in the same
invocation, the same study with ``optimizer=random`` as the baseline, so the cost of the
suggestions is isolated (bayes minus random).  From each results file only:

* per worker, the *wait*: the sum over its consecutive attempts of (start of the next attempt -
  end of the previous one), i.e. result sent -> coordinator tells, asks, dispatches -> task
  received; ``idle_frac`` = wait / study wall time (/study start_time -> end_time).  Reported:
  max and median over the workers (goal: max < 1%), and the single longest gap;
* each gap split at the /dispatches ``time`` of the next attempt: ``coord`` = dispatch time -
  previous end (result receipt + tell + ask + bookkeeping on rank 0) and ``transport`` = attempt
  start - dispatch time;
* ``service``, an estimate of the per-suggestion cost on rank 0: for each dispatch of a new
  trial, dispatch time - max(end of that rank's previous attempt, time of rank 0's previous
  dispatch) (rank 0 asks and sends one trial at a time, so back-to-back dispatches are spaced by
  one tell + ask); median and max, and the median over the last 100 dispatches (most observations);
* the first-dispatch lag (study start -> a worker's first attempt; not a suggestion wait) and
  the /events kinds (``rank-dead`` must not appear: the heartbeat was not disturbed).

    python -m bench.suggest_idle            # 10 s trials, 512 trials (~160 s per study)
    python -m bench.suggest_idle --quick    # 2 s trials, 160 trials (~10 s per study)
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import statistics
import sys
import tempfile
from typing import Any, Optional

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import emit, run_mpi_study

B = "suggest_idle"


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def read_tables(path: str) -> dict:
    """/study attrs, /trials, /dispatches and /events of a results file, as lists of dicts."""
    import h5py

    out: dict = {}
    with h5py.File(path, "r") as f:
        out["study"] = {k: f["study"].attrs[k] for k in f["study"].attrs}
        for name in ("trials", "dispatches", "events"):
            g = f.get(name)
            if g is None:
                out[name] = []
                continue
            cols = {c: g[c][:] for c in g}
            n = min((len(v) for v in cols.values()), default=0)
            out[name] = [{c: cols[c][i] for c in cols} for i in range(n)]
    return out


def _pct(xs: list, q: float) -> Optional[float]:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(math.ceil(q * len(xs))) - 1))]


def analyse(path: str) -> dict:
    t = read_tables(path)
    st = t["study"]
    t0, t1 = float(st.get("start_time", math.nan)), float(st.get("end_time", math.nan))
    wall = t1 - t0
    att = [a for a in t["trials"] if math.isfinite(float(a["start_time"])) and math.isfinite(float(a["end_time"]))]
    disp = {(int(d["trial_id"]), int(d["attempt"])): d for d in t["dispatches"]}
    by_rank: dict[int, list] = collections.defaultdict(list)
    for a in att:
        by_rank[int(a["rank"])].append(a)
    waits, firsts, gaps, coord, transport, prev_end = {}, [], [], [], [], {}
    for r, rows in by_rank.items():
        rows.sort(key=lambda a: float(a["start_time"]))
        firsts.append(float(rows[0]["start_time"]) - t0)
        w = 0.0
        for a, b in zip(rows, rows[1:]):
            g = float(b["start_time"]) - float(a["end_time"])
            w += g
            gaps.append(g)
            d = disp.get((int(b["trial_id"]), int(b["attempt"])))
            if d is not None:
                coord.append(float(d["time"]) - float(a["end_time"]))
                transport.append(float(b["start_time"]) - float(d["time"]))
                prev_end[(int(b["trial_id"]), int(b["attempt"]))] = float(a["end_time"])
        waits[r] = w
    # per-suggestion service time on rank 0 (see the module docstring)
    ds = sorted(t["dispatches"], key=lambda d: float(d["time"]))
    service, last = [], None
    for d in ds:
        tm = float(d["time"])
        key = (int(d["trial_id"]), int(d["attempt"]))
        if bool(d["new"]) and key in prev_end:
            service.append(tm - max(prev_end[key], last if last is not None else -math.inf))
        last = tm
    fracs = sorted(w / wall for w in waits.values()) if wall > 0 else []
    kinds = collections.Counter(_s(e["kind"]) for e in t["events"])
    starts = [float(d["time"]) for d in ds]
    return {
        "study_wall_s": wall,
        "workers": len(by_rank),
        "attempts": len(att),
        "states": dict(collections.Counter(_s(a["state"]) for a in att)),
        "idle_frac_max": fracs[-1] if fracs else None,
        "idle_frac_median": statistics.median(fracs) if fracs else None,
        "wait_max_s": max(waits.values()) if waits else None,
        "gap_median_s": statistics.median(gaps) if gaps else None,
        "gap_p99_s": _pct(gaps, 0.99),
        "gap_max_s": max(gaps) if gaps else None,
        "coord_median_s": statistics.median(coord) if coord else None,
        "coord_max_s": max(coord) if coord else None,
        "transport_median_s": statistics.median(transport) if transport else None,
        "service_median_s": statistics.median(service) if service else None,
        "service_max_s": max(service) if service else None,
        "service_last100_median_s": statistics.median(service[-100:]) if service else None,
        "first_start_max_s": max(firsts) if firsts else None,
        "dispatch_rate_per_s": (len(starts) - 1) / (starts[-1] - starts[0]) if len(starts) > 1 else None,
        "events": dict(kinds),
        "rank_dead": kinds.get("rank-dead", 0),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--ranks", type=int, default=33)
    p.add_argument("--trial-time", type=float)
    p.add_argument("--trials", type=int)
    p.add_argument("--optimizers", nargs="+", default=["bayes", "random"])
    p.add_argument("--keep", help="directory to keep the results files in (default: a temp dir)")
    a = p.parse_args(argv)
    tt = a.trial_time if a.trial_time is not None else (2.0 if a.quick else 10.0)
    trials = a.trials or (160 if a.quick else 512)
    w = a.ranks - 1
    res: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="rdhpo-bench-") as tmp:
        d = a.keep or tmp
        os.makedirs(d, exist_ok=True)
        for opt in a.optimizers:
            out = os.path.join(d, f"suggest_idle-{opt}-{a.ranks}.h5")
            timeout = 180 + 2.0 * trials * tt / w
            r = run_mpi_study(a.ranks, "sleep", trials, out, trial_time=tt, timeout=timeout, extra=["--optimizer", opt])
            common = {"optimizer": opt, "ranks": a.ranks, "workers": w, "trials": trials, "trial_time": tt}
            if r["rc"] != 0 or not os.path.exists(out):
                emit(B, "error", r["rc"], "exit code", **common)
                continue
            try:
                m = analyse(out)
            except Exception as exc:  # noqa: BLE001 - report and go on with the next optimizer
                emit(B, "error", f"{type(exc).__name__}: {exc}", "analysis", **common)
                continue
            res[opt] = m
            emit(
                B,
                "idle_frac_max",
                round(m["idle_frac_max"], 5),
                "ratio",
                goal=0.01,
                note="max over workers of sum(next start - previous end) / study wall",
                **common,
            )
            emit(B, "idle_frac_median", round(m["idle_frac_median"], 5), "ratio", **common)
            for k in (
                "gap_median_s",
                "gap_p99_s",
                "gap_max_s",
                "coord_median_s",
                "coord_max_s",
                "transport_median_s",
                "service_median_s",
                "service_max_s",
                "service_last100_median_s",
                "first_start_max_s",
                "study_wall_s",
                "wait_max_s",
            ):
                if m[k] is not None:
                    emit(B, k[:-2], round(m[k], 4), "s", **common)
            emit(B, "dispatch_rate", round(m["dispatch_rate_per_s"] or 0, 3), "1/s", needed=round(w / tt, 3), **common)
            emit(B, "rank_dead_events", m["rank_dead"], "count", events=m["events"], states=m["states"], **common)
            emit(
                B, "process_wall", round(r["process_wall_s"], 2), "s", note="whole mpirun, start-up included", **common
            )
    if "bayes" in res and "random" in res:
        b, r_ = res["bayes"], res["random"]
        common = {"ranks": a.ranks, "workers": w, "trials": trials, "trial_time": tt}
        emit(
            B, "bayes_minus_random_idle_frac_max", round(b["idle_frac_max"] - r_["idle_frac_max"], 5), "ratio", **common
        )
        emit(B, "bayes_minus_random_gap_median", round(b["gap_median_s"] - r_["gap_median_s"], 4), "s", **common)
        if b["service_median_s"] is not None and r_["service_median_s"] is not None:  # None: asked ahead
            emit(
                B,
                "bayes_minus_random_service_median",
                round(b["service_median_s"] - r_["service_median_s"], 4),
                "s",
                **common,
            )
    if res:

        def f(v: Optional[float], scale: float = 1.0, nd: int = 1) -> str:
            return "-" if v is None else f"{v * scale:.{nd}f}"

        lines = [
            f"\n{a.ranks} ranks ({w} workers), {trials} trials of {tt:g} s\n",
            "| optimizer | study wall (s) | idle max (%) | idle median (%) | gap median / p99 / max (ms) "
            "| coord median (ms) | service median / last-100 / max (ms) | dispatch/s | rank-dead |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for opt, m in res.items():
            lines.append(
                f"| {opt} | {f(m['study_wall_s'])} | {f(m['idle_frac_max'], 100, 2)} | "
                f"{f(m['idle_frac_median'], 100, 2)} | {f(m['gap_median_s'], 1e3)} / {f(m['gap_p99_s'], 1e3)} / "
                f"{f(m['gap_max_s'], 1e3)} | {f(m['coord_median_s'], 1e3)} | {f(m['service_median_s'], 1e3)} / "
                f"{f(m['service_last100_median_s'], 1e3)} / {f(m['service_max_s'], 1e3)} | "
                f"{f(m['dispatch_rate_per_s'], 1, 2)} | {m['rank_dead']} |"
            )
        print("\n".join(lines), file=sys.stderr, flush=True)
    return 0 if res else 1


if __name__ == "__main__":
    sys.exit(main())
