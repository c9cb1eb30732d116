"""Optimizer quality: median simple regret (best value found - optimum) after N sequential trials.

    python -m bench.quality                 # 10 seeds (about 5 minutes on 2 idle cores)
    python -m bench.quality --quick         # 3 seeds
    python -m bench.quality --quick --with-skopt   # add scikit-optimize defaults (slow)

Functions (bench/functions.py): Branin (2-D, 30 trials), Hartmann-6 (6-D, 60 trials) and
Hartmann-6 seen through noise (sd 0.05, full fidelity; 60 trials; the regret is taken at the
noise-free value of the trial that looked best).  Contenders: random, bayes, evolution (ours,
defaults) vs Optuna TPE and GPSampler (defaults).  One BLAS / torch thread each.  Prints JSON
lines and a Markdown table with the ratio of each contender's regret to the peers' (same run).

Caps part (``--part caps``, not in ``all``): ``bayes`` with its caps against ``bayes (exact)``
(``max_points``/``max_liars`` off: one GP over every observation and every pending trial) where
the exact GP still runs: sequential Hartmann-6 and Branin with a low cap (``max_points`` 48, so
that most asks of a 150/90-trial study use the active set), and Hartmann-6 with 64 trials always
pending (tell the oldest, ask a new one: every ask past ``max_liars`` = 32 pending is a wave ask:
the epoch's model, updated for the nearest pending trial), 256 trials.  Same seeds, same start.

Held-out part (``--part heldout``, not in ``all``; issue 15 item 4): BBOB functions
(bench/bbob.py: ellipsoids f2 / f10, Rosenbrock f8, bent cigar f12, Rastrigin f15) in 4-D, 40
sequential trials, instance = seed; random, bayes, bayes without its output warp
(``bayes-nowarp``) and Optuna's GPSampler; median regret and quartiles.

Multi-fidelity part (``--part mf``; both parts by default): the noisy Hartmann-6 with its fidelity
drift, seen in ``MF_STEPS = 9`` steps (a report at step s sees fidelity s / 9; one step is one unit
of compute, a full evaluation 9 units).  rdhpo ``asha``, ``hyperband``, ``bohb``, ``mobster`` (min_budget 1,
max_budget 9, eta 3; in-process, 1 worker, stop-at-rung), ``asha-promote``, ``bohb-promote`` (their
``mode: promote``; a promoted trial resumes at the step its previous rung reached) and Optuna TPE +
HyperbandPruner(1, 9, 3) (sequential) each get 60 x 9 = 540 units, counted over every report by the same meter as
bench/multifidelity.py; full-fidelity random / bayes / Optuna TPE (60 trials, the first part)
are the reference.  Regret = noise-free full-fidelity value of the incumbent (the trial whose
full-fidelity observation looked best) - optimum, after 180 and 540 units.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import statistics
import time
import warnings

import numpy as np

from bench.common import emit
from bench.functions import FUNCTIONS
from rdhpo_hpc.optimizers import make_optimizer
from rdhpo_hpc.trial import TrialState

TRIALS = {"branin": 30, "hartmann6": 60, "hartmann6_mf_noisy": 60}
MF_FN, MF_STEPS, MF_MIN, MF_ETA = "hartmann6_mf_noisy", 9, 1, 3
MF_UNITS = TRIALS[MF_FN] * MF_STEPS  # 60 full-fidelity evaluations
MF_POINTS = (MF_UNITS // 3, MF_UNITS)
MF_REFS = ("random", "bayes", "optuna-tpe")  # full fidelity, from the first part
MF_CONTENDERS = ("asha", "hyperband", "bohb", "mobster", "asha-promote", "bohb-promote", "optuna-tpe-hb")
PROMOTE = "-promote"  # the rung scheduler in mode "promote": one trial per rung, resumed at its step


def run_ours(name: str, space, fn, n: int, seed: int, noise_rng, **opts) -> list[tuple[float, float]]:
    opt = make_optimizer(name, space, seed=seed, **opts)
    out = []
    for t in range(n):
        c = opt.ask(t)
        seen = fn(c, rng=noise_rng)
        opt.tell(t, TrialState.COMPLETE, seen)
        out.append((seen, fn(c)))
    return out


def run_optuna(kind: str, space, fn, n: int, seed: int, noise_rng) -> list[tuple[float, float]]:
    import optuna
    from optuna.distributions import FloatDistribution

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    dists = {d.name: FloatDistribution(d.param.low, d.param.high) for d in space.dims}
    sampler = optuna.samplers.GPSampler(seed=seed) if kind == "gp" else optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(sampler=sampler)
    out = []
    for _ in range(n):
        tr = study.ask(dists)
        seen = fn(tr.params, rng=noise_rng)
        study.tell(tr, seen)
        out.append((seen, fn(tr.params)))
    return out


def run_skopt(space, fn, n: int, seed: int, noise_rng) -> list[tuple[float, float]]:
    from skopt import Optimizer
    from skopt.space import Real

    warnings.filterwarnings("ignore")
    names = [d.name for d in space.dims]
    opt = Optimizer([Real(d.param.low, d.param.high) for d in space.dims], base_estimator="GP", random_state=seed)
    out = []
    for _ in range(n):
        x = opt.ask()
        c = dict(zip(names, x))
        seen = fn(c, rng=noise_rng)
        opt.tell(x, seen)
        out.append((seen, fn(c)))
    return out


def mf_objective(fn, noise_rng, meter, seen_full: list):
    """objective(config, ctx): one report per fidelity step up to ``ctx.budget`` (the top rung);
    every full-fidelity observation goes to ``seen_full`` as (units spent, seen value, config)."""

    def objective(config: dict, ctx) -> float:
        v, start = float("nan"), 0
        if ctx.checkpoint_from:  # promote mode: resume at the step the previous rung reached
            with open(os.path.join(ctx.checkpoint_from, "step"), encoding="utf-8") as fh:
                start = int(fh.read())
        for s in range(start + 1, int(round(ctx.budget)) + 1):
            v = fn(config, budget=s / MF_STEPS, rng=noise_rng)
            if s == MF_STEPS and not meter.spent:
                seen_full.append((len(meter.trace) + 1, v, dict(config)))
            ctx.report(s, v)
            if ctx.checkpoint_dir:
                os.makedirs(ctx.checkpoint_dir, exist_ok=True)
                with open(os.path.join(ctx.checkpoint_dir, "step"), "w", encoding="utf-8") as fh:
                    fh.write(str(s))
        return v

    return objective


def run_mf(name: str, space, fn, seed: int, noise_rng) -> dict:
    """One multi-fidelity study of ``MF_UNITS`` units; returns the full-fidelity observations."""
    import contextlib
    import io

    from bench.multifidelity import Meter, metered, run_optuna_study

    meter, seen_full = Meter(MF_UNITS), []
    obj = mf_objective(fn, noise_rng, meter, seen_full)
    if name == "optuna-tpe-hb":
        spec = {d.name: {"type": "float", "low": d.param.low, "high": d.param.high} for d in space.dims}
        out = run_optuna_study(
            obj, spec, "minimize", seed, meter, MF_STEPS, prune=True, min_budget=MF_MIN, eta=MF_ETA, timeout=120.0
        )
        trials, pruned = out["trials"], out["pruned"]
    else:
        import rdhpo_hpc as rd

        with contextlib.redirect_stdout(io.StringIO()):
            mode = "promote" if name.endswith(PROMOTE) else "stop"
            res = rd.optimize(
                metered(obj, meter),
                space,
                optimizer=name.removesuffix(PROMOTE),
                mode=mode,
                max_trials=MF_UNITS,
                seed=seed,
                workers=1,
                min_budget=MF_MIN,
                max_budget=MF_STEPS,
                eta=MF_ETA,
                progress_interval=1e6,
                gossip_interval=0.2,
                t_fail=30.0,
                max_wall_time=120.0,
            )
        trials, pruned = meter.counts({t.trial_id for t in res.trials if t.state == "PRUNED"})
    return {"seen_full": seen_full, "units": len(meter.trace), "trials": trials, "pruned": pruned}


def regret_at(seen_full: list, units: int, fn, fmin: float) -> float:
    """Noise-free regret of the config whose full-fidelity observation looked best within ``units``."""
    got = [x for x in seen_full if x[0] <= units]
    if not got:
        return float("nan")
    return fn(min(got, key=lambda x: x[1])[2]) - fmin


def mf_part(seeds: int, ref_traces: dict) -> None:
    """The multi-fidelity table; ``ref_traces[name][seed]`` = full-fidelity traces from the first part
    (computed here for any reference that is missing)."""
    space, fn, fmin = FUNCTIONS[MF_FN]
    refs = {
        "random": lambda *a: run_ours("random", *a),
        "bayes": lambda *a: run_ours("bayes", *a),
        "optuna-tpe": lambda *a: run_optuna("tpe", *a),
    }
    rows: dict[str, dict] = {}
    t_all = time.perf_counter()
    for name in MF_REFS + MF_CONTENDERS:
        per: dict[int, list] = {p: [] for p in MF_POINTS}
        trials = pruned = 0
        t = time.perf_counter()
        for seed in range(seeds):
            noise_rng = np.random.default_rng(1000 + seed)
            if name in MF_REFS:
                trace = (ref_traces.get(name) or {}).get(seed)
                if trace is None:
                    trace = refs[name](space, fn, TRIALS[MF_FN], seed, noise_rng)
                seen_full = [((i + 1) * MF_STEPS, sv, None, tv) for i, (sv, tv) in enumerate(trace)]
                for p in MF_POINTS:
                    got = [x for x in seen_full if x[0] <= p]
                    per[p].append(min(got, key=lambda x: x[1])[3] - fmin)
                trials += len(trace)
            else:
                out = run_mf(name, space, fn, seed, noise_rng)
                for p in MF_POINTS:
                    per[p].append(regret_at(out["seen_full"], p, fn, fmin))
                trials += out["trials"]
                pruned += out["pruned"]
        med = {p: statistics.median(v) for p, v in per.items()}
        rows[name] = {
            "med": med,
            "trials": trials / seeds,
            "pruned": pruned / max(1, trials),
            "secs": time.perf_counter() - t,
        }
        for p in MF_POINTS:
            emit(
                "quality",
                f"{MF_FN}/multifidelity/{name}",
                round(med[p], 6),
                "regret",
                units=p,
                full_evals=p // MF_STEPS,
                steps=MF_STEPS,
                seeds=seeds,
                fidelity="full" if name in MF_REFS else f"{MF_MIN}..{MF_STEPS} steps, eta {MF_ETA}",
                per_seed=[round(v, 5) for v in per[p]],
            )
    ref = rows["optuna-tpe-hb"]["med"]
    print(
        f"\nMulti-fidelity {MF_FN}: median regret over {seeds} seeds at the same compute (units = "
        f"evaluations x fidelity steps, a full evaluation = {MF_STEPS}; total "
        f"{time.perf_counter() - t_all:.0f} s); in brackets: regret / optuna-tpe-hb\n"
    )
    print(
        "| contender | fidelity | "
        + " | ".join(f"{p} units ({p // MF_STEPS} full evals)" for p in MF_POINTS)
        + " | trials/seed (pruned) | seconds |"
    )
    print("|---|---|" + "---|" * len(MF_POINTS) + "---|---|")
    for name, r in rows.items():
        cells = [
            f"{r['med'][p]:.3g} ({r['med'][p] / ref[p]:.2g})" if ref[p] else f"{r['med'][p]:.3g}" for p in MF_POINTS
        ]
        fid = "full" if name in MF_REFS else f"steps {MF_MIN}..{MF_STEPS}, eta {MF_ETA}"
        print(
            f"| {name} | {fid} | " + " | ".join(cells) + f" | {r['trials']:.0f} ({r['pruned']:.0%}) | {r['secs']:.0f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--with-skopt", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated contenders")
    ap.add_argument(
        "--part",
        choices=["all", "single", "mf", "caps", "heldout"],
        default="all",
        help="single-fidelity table, multi-fidelity table, or both",
    )
    args = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    seeds = args.seeds or (3 if args.quick else 10)
    runners = {
        "random": lambda *a: run_ours("random", *a),
        "evolution": lambda *a: run_ours("evolution", *a),
        "bayes": lambda *a: run_ours("bayes", *a),
        "optuna-tpe": lambda *a: run_optuna("tpe", *a),
        "optuna-gp": lambda *a: run_optuna("gp", *a),
    }
    if args.with_skopt:
        runners["skopt defaults"] = run_skopt
    if args.only:
        runners = {k: v for k, v in runners.items() if k in args.only.split(",")}
    ref_traces: dict[str, dict[int, list]] = {}
    if args.part == "caps":
        caps_part(seeds)
        return
    if args.part == "heldout":
        heldout_part(args, seeds)
        return
    if args.part != "mf":
        single_part(args, runners, seeds, ref_traces)
    if args.part != "single":
        mf_part(seeds, ref_traces)


CAPS_EXACT = {"max_points": 10**9, "max_liars": 10**9}
CAPS_CASES = (  # (function, trials, trials pending at once, contender -> options)
    ("hartmann6", 150, 1, {"bayes (exact)": CAPS_EXACT, "bayes, max_points 48": {"max_points": 48}}),
    ("branin", 90, 1, {"bayes (exact)": CAPS_EXACT, "bayes, max_points 48": {"max_points": 48}}),
    ("hartmann6", 256, 64, {"bayes (exact)": CAPS_EXACT, "bayes (wave asks)": {}}),
)


def run_pending(space, fn, n: int, q: int, seed: int, opts: dict) -> list[float]:
    """``n`` trials of ``bayes`` with ``q`` pending at once (tell the oldest, then ask); values."""
    opt = make_optimizer("bayes", space, seed=seed, **opts)
    pending, out, tid = [], [], 0
    while len(out) < n:
        while tid < n and len(pending) < q:
            pending.append((tid, opt.ask(tid)))
            tid += 1
        t, c = pending.pop(0)
        v = fn(c)
        opt.tell(t, TrialState.COMPLETE, v)
        out.append(v)
    return out


def caps_part(seeds: int) -> None:
    """The capped ``bayes`` against the exact GP (median regret and seconds per study)."""
    print(f"\nbayes with caps vs the exact GP, median simple regret over {seeds} seeds (seconds per study)\n")
    print("| function (trials, pending) | contender | median regret | per seed | s/study |")
    print("|---|---|---|---|---|")
    for fname, n, q, variants in CAPS_CASES:
        space, fn, fmin = FUNCTIONS[fname]
        for label, opts in variants.items():
            vals, t = [], time.perf_counter()
            for seed in range(seeds):
                vals.append(min(run_pending(space, fn, n, q, seed, opts)) - fmin)
            secs = (time.perf_counter() - t) / seeds
            med = statistics.median(vals)
            emit(
                "quality",
                f"{fname}/caps/{label}",
                med,
                "regret",
                trials=n,
                pending=q,
                seeds=seeds,
                per_seed=[round(v, 5) for v in vals],
                s_per_study=round(secs, 1),
            )
            print(f"| {fname} ({n}, {q}) | {label} | {med:.3g} | {' '.join(f'{v:.2g}' for v in vals)} | {secs:.0f} |")


HELDOUT_DIM, HELDOUT_TRIALS = 4, 40
HELDOUT_NAMES = ("random", "bayes", "bayes-nowarp", "optuna-gp")  # bayes-nowarp: output_warp none


def heldout_part(args, seeds: int) -> None:
    """BBOB functions (bench/bbob.py) in 4-D, 40 sequential trials, instance = seed: median
    simple regret of random, bayes (with and without its output warp) and Optuna's GPSampler
    (same run), with the spread."""
    from bench.bbob import BBOB, make

    names = [n for n in HELDOUT_NAMES if not args.only or n in args.only.split(",")]
    print(
        f"\nBBOB, {HELDOUT_DIM}-D, {HELDOUT_TRIALS} trials, {seeds} seeds (instance = seed): "
        "median regret [quartiles]\n"
    )
    print("| function | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for fname, fid in BBOB.items():
        cells = []
        for name in names:
            vals, t = [], time.perf_counter()
            for seed in range(seeds):
                space, fn, fmin = make(fid, HELDOUT_DIM, seed)
                run = run_optuna("gp", space, fn, HELDOUT_TRIALS, seed, None) if name == "optuna-gp" else None
                opts = {"output_warp": "none"} if name == "bayes-nowarp" else {}
                trace = run or run_ours(name.removesuffix("-nowarp"), space, fn, HELDOUT_TRIALS, seed, None, **opts)
                vals.append(min(v for _, v in trace) - fmin)
            q1, med, q3 = np.percentile(vals, [25, 50, 75])
            emit(
                "quality",
                f"bbob/{fname}/{name}",
                float(med),
                "regret",
                trials=HELDOUT_TRIALS,
                dim=HELDOUT_DIM,
                seeds=seeds,
                per_seed=[float(f"{v:.4g}") for v in vals],
                secs=round(time.perf_counter() - t, 1),
            )
            cells.append(f"{med:.3g} [{q1:.2g}, {q3:.2g}]")
        print(f"| {fname} | " + " | ".join(cells) + " |", flush=True)


def single_part(args, runners: dict, seeds: int, ref_traces: dict) -> None:
    regret: dict[str, dict[str, float]] = {}
    secs: dict[str, float] = {k: 0.0 for k in runners}
    t_all = time.perf_counter()
    for fname, (space, fn, fmin) in FUNCTIONS.items():
        noisy = fname.endswith("noisy")
        regret[fname] = {}
        for name, runner in runners.items():
            vals = []
            for seed in range(seeds):
                noise_rng = np.random.default_rng(1000 + seed) if noisy else None
                t = time.perf_counter()
                trace = runner(space, fn, TRIALS[fname], seed, noise_rng)
                secs[name] += time.perf_counter() - t
                if fname == MF_FN and name in MF_REFS:
                    ref_traces.setdefault(name, {})[seed] = trace
                best_seen = min(range(len(trace)), key=lambda i: trace[i][0])
                vals.append(trace[best_seen][1] - fmin)
            regret[fname][name] = statistics.median(vals)
            emit(
                "quality",
                f"{fname}/{name}",
                regret[fname][name],
                "regret",
                trials=TRIALS[fname],
                seeds=seeds,
                per_seed=[round(v, 5) for v in vals],
            )
    names = list(runners)
    print(
        f"\nMedian simple regret after N trials over {seeds} seeds (lower is better; total "
        f"{time.perf_counter() - t_all:.0f} s); in brackets: regret / optuna-tpe, regret / optuna-gp\n"
    )
    print("| function (N) | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for fname, row in regret.items():
        cells = []
        for name in names:
            r = row[name]
            ratios = [f"{r / row[p]:.2g}" if row.get(p) else "-" for p in ("optuna-tpe", "optuna-gp") if p in row]
            cells.append(f"{r:.3g}" + (f" ({' / '.join(ratios)})" if ratios else ""))
        print(f"| {fname} ({TRIALS[fname]}) | " + " | ".join(cells) + " |")
    print(
        "\nseconds spent per contender (all functions and seeds): " + ", ".join(f"{k} {v:.0f}" for k, v in secs.items())
    )


if __name__ == "__main__":
    main()
