"""Issue 15's goal on synthetic multi-fidelity families: compute to reach random search's final best.

    python -m bench.mf_goal                         # every family of bench/mf_functions.py, 10 seeds
    python -m bench.mf_goal --max-budget 9                      # the same on budgets 1..9
    python -m bench.mf_goal --families lcurve,conditional --seeds 5 --methods hyperband,mobster
    python -m bench.mf_goal --quick                             # 3 seeds, 3 families: a smoke test

For each family and seed: full-budget ``random`` runs 20 trials (20 x ``max_budget`` units of
compute; one unit = one fidelity step = one report).  The family's *target* is the median over
seeds of random's final best (the noise-free full-fidelity value of the trial whose observation
looked best).  Every other method gets the same 20 x ``max_budget`` units; its *fraction* is the
compute spent when its incumbent (the trial with the best observation at ``max_budget``) first has a
noise-free value <= the target, divided by random's 20 x ``max_budget``; a seed that never gets
there is censored (shown as ">1").  Table: median fraction [25th-75th percentile] and seeds that
reached it, per family and method; last row: the median over families of the per-family medians.
One JSON line per (family, method) in the bench runner's format (``fraction_of_random_compute``,
with every seed's fraction; ``None`` = censored).

Methods: ``random`` (the reference), rdhpo strategies by name (``hyperband``, ``asha``, ``bohb``,
``mobster``, ...; ``NAME-promote`` for ``mode: promote``; ``NAME@label`` for a variant whose
options are ``--options``' entry ``NAME@label``), ``optuna-tpe-hb`` (Optuna TPE +
HyperbandPruner(min_budget, max_budget, eta), the same budgets).  The rdhpo strategies run through
:func:`rdhpo_hpc.strategy.make_strategy` in a sequential driver that calls the scheduler and the
optimizer exactly as the coordinator does with one worker (next_trial, on_report per step, tell +
on_result), without processes or threads: a study takes milliseconds to seconds.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse
import json
import math
import statistics
import sys
import time
from typing import Any, Optional

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import emit
from bench.mf_functions import FAMILIES, Family, evaluate
from rdhpo_hpc.space import Categorical, Float, Int, Space
from rdhpo_hpc.strategy import make_strategy
from rdhpo_hpc.trial import TrialState

N_RANDOM = 20
PROMOTE = "-promote"
DEFAULT_METHODS = ["random", "hyperband", "asha", "optuna-tpe-hb", "bohb", "mobster"]
QUICK_FAMILIES = ["hartmann6_mf_noisy", "lcurve", "conditional"]

#: one full-fidelity observation: (units spent when it was made, observed value, noise-free value)
Obs = tuple[int, float, float]


def run_random(fam: Family, seed: int, R: int) -> list[Obs]:
    rng, noise = np.random.default_rng(seed), np.random.default_rng(10_000 + seed)
    out = []
    for i in range(N_RANDOM):
        c = fam.space.sample(rng)
        out.append(((i + 1) * R, evaluate(fam, c, 1.0, noise), fam.f(c, 1.0)))
    return out


def run_rdhpo(name: str, fam: Family, seed: int, R: int, eta: int, cap: int, options: dict) -> list[Obs]:
    """A sequential one-worker study of strategy ``name`` until ``cap`` units are spent
    (``NAME@label``: strategy ``NAME``, a variant with its own ``--options`` entry)."""
    name = name.split("@")[0]
    promote = name.endswith(PROMOTE)
    opt, sched = make_strategy(
        name.removesuffix(PROMOTE),
        fam.space,
        seed=seed,
        min_budget=1,
        max_budget=R,
        eta=eta,
        mode="promote" if promote else "stop",
        **options,
    )
    noise = np.random.default_rng(10_000 + seed)
    units, tid, out = 0, 0, []
    reached: dict[int, int] = {}  # trial -> last step trained (its "checkpoint")
    while units < cap:
        sug = sched.next_trial(opt, tid)
        if sug is None:
            break
        start = reached.get(sug.checkpoint_from, 0) if sug.checkpoint_from is not None else 0
        state, v = TrialState.COMPLETE, math.nan
        for s in range(start + 1, int(round(sug.budget)) + 1):
            if units >= cap:
                break
            v = evaluate(fam, sug.params, s / R, noise)
            units += 1
            reached[tid] = s
            if s == R:
                out.append((units, v, fam.f(sug.params, 1.0)))
            if not sched.on_report(tid, s, v):
                state = TrialState.PRUNED
                break
        opt.tell(tid, state, v)
        sched.on_result(tid, state, v)
        tid += 1
    return out


def optuna_params(trial: Any, space: Space) -> dict:
    """Define-by-run sampling of an rdhpo Space (conditional dims only when their branch is chosen)."""
    out: dict[str, Any] = {}
    chosen: dict[str, Any] = {}
    for d in space.dims:
        if not all(k in chosen and chosen[k] == v for k, v in d.when):
            continue
        p = d.param
        if isinstance(p, Categorical):
            out[d.name] = trial.suggest_categorical(d.key, p.choices)
        elif isinstance(p, Int):
            out[d.name] = trial.suggest_int(d.key, p.low, p.high, log=p.log)
        elif isinstance(p, Float):
            out[d.name] = trial.suggest_float(d.key, p.low, p.high, log=p.log)
        else:
            out[d.name] = p.sample(np.random.default_rng(0))
        chosen[d.key] = out[d.name]
    return out


def run_optuna_hb(fam: Family, seed: int, R: int, eta: int, cap: int) -> list[Obs]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=R, reduction_factor=eta),
    )
    noise = np.random.default_rng(10_000 + seed)
    units, out = 0, []
    while units < cap:
        tr = study.ask()
        c = optuna_params(tr, fam.space)
        v, pruned = math.nan, False
        for s in range(1, R + 1):
            if units >= cap:
                break
            v = evaluate(fam, c, s / R, noise)
            units += 1
            if s == R:
                out.append((units, v, fam.f(c, 1.0)))
            tr.report(v, s)
            if tr.should_prune():
                pruned = True
                break
        if pruned:
            study.tell(tr, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(tr, v)
    return out


def final_best(obs: list[Obs], units: int) -> float:
    """Noise-free value of the incumbent (best observation at full fidelity) within ``units``."""
    got = [o for o in obs if o[0] <= units]
    return min(got, key=lambda o: o[1])[2] if got else math.inf


def first_reach(obs: list[Obs], target: float) -> Optional[int]:
    best_seen = math.inf
    for units, seen, true in obs:  # in the order they were made
        if seen < best_seen:
            best_seen = seen
            if true <= target:
                return units
    return None


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(np.minimum(np.array(xs, dtype=float), 1e9), q))  # inf (censored) -> large


def fmt(x: float) -> str:
    return ">1" if not math.isfinite(x) or x > 1 else f"{x:.2f}"


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--max-budget", type=int, default=27)
    ap.add_argument("--eta", type=int, default=3)
    ap.add_argument("--options", default="{}", help='JSON: method -> options, e.g. \'{"bohb": {"top_n_percent": 30}}\'')
    ap.add_argument("--quick", action="store_true", help=f"3 seeds on {','.join(QUICK_FAMILIES)}: a smoke test")
    a = ap.parse_args(argv)
    if a.quick:
        a.seeds, a.families = 3, ",".join(QUICK_FAMILIES)
    fams = [f for f in a.families.split(",") if f]
    bad = [f for f in fams if f not in FAMILIES]
    if bad:
        ap.error(f"unknown famil(y/ies) {bad}; allowed {sorted(FAMILIES)}")
    methods = [m for m in a.methods.split(",") if m and m != "random"]
    options = json.loads(a.options)
    R, cap = a.max_budget, N_RANDOM * a.max_budget
    table: dict[str, dict[str, float]] = {}
    secs: dict[str, float] = {m: 0.0 for m in methods}
    lines = [
        f"fraction of random's compute ({N_RANDOM} x {R} units) to reach random's median final best; "
        f"median [25%-75%] (seeds reached) over {a.seeds} seeds; budgets 1..{R}, eta {a.eta}",
        "",
        "| family | random | " + " | ".join(methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for fam_name in fams:
        fam = FAMILIES[fam_name]
        rand = [run_random(fam, s, R) for s in range(a.seeds)]
        target = statistics.median(final_best(o, cap) for o in rand)
        cells, table[fam_name] = [], {}
        for m in ["random"] + methods:
            fr = []
            for s in range(a.seeds):
                t0 = time.perf_counter()
                if m == "random":
                    obs = rand[s]
                elif m == "optuna-tpe-hb":
                    obs = run_optuna_hb(fam, s, R, a.eta, cap)
                else:
                    obs = run_rdhpo(m, fam, s, R, a.eta, cap, options.get(m, {}))
                if m != "random":
                    secs[m] += time.perf_counter() - t0
                hit = first_reach(obs, target)
                fr.append(hit / cap if hit is not None else math.inf)
            med = statistics.median(fr)
            table[fam_name][m] = med
            reached = sum(math.isfinite(x) for x in fr)
            cells.append(f"{fmt(med)} [{fmt(percentile(fr, 25))}-{fmt(percentile(fr, 75))}] ({reached})")
            emit(
                "mf_goal",
                "fraction_of_random_compute",
                round(med, 4) if math.isfinite(med) else None,
                "x",
                family=fam_name,
                method=m,
                max_budget=R,
                eta=a.eta,
                seeds=a.seeds,
                reached=reached,
                target=target,
                per_seed=[round(x, 4) if math.isfinite(x) else None for x in fr],
            )
        lines.append(f"| {fam_name} | " + " | ".join(cells) + " |")
    agg = {m: statistics.median(table[f][m] for f in fams) for m in ["random"] + methods}
    lines.append("| **median over families** | " + " | ".join(fmt(agg[m]) for m in ["random"] + methods) + " |")
    wins = {m: sum(table[f][m] <= 0.25 for f in fams) for m in methods}
    best = {m: sum(table[f][m] <= min(table[f][x] for x in methods) for f in fams) for m in methods}
    lines += [
        "",
        "families at <= 0.25: " + ", ".join(f"{m} {w}/{len(fams)}" for m, w in wins.items()),
        "families where it is the best (ties count): " + ", ".join(f"{m} {w}/{len(fams)}" for m, w in best.items()),
        "seconds per method (all families and seeds): " + ", ".join(f"{m} {v:.0f}" for m, v in secs.items()),
    ]
    print("\n" + "\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
