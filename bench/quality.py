"""Optimizer quality: median simple regret (best value found - optimum) after N sequential trials.

    python -m bench.quality                 # 10 seeds (about 5 minutes on 2 idle cores)
    python -m bench.quality --quick         # 3 seeds
    python -m bench.quality --quick --with-skopt   # add scikit-optimize defaults (slow)

Functions (bench/functions.py): Branin (2-D, 30 trials), Hartmann-6 (6-D, 60 trials) and
Hartmann-6 seen through noise (sd 0.05, full fidelity; 60 trials; the regret is taken at the
noise-free value of the trial that looked best).  Contenders: random, bayes, evolution (ours,
defaults) vs Optuna TPE and GPSampler (defaults).  One BLAS / torch thread each.  Prints JSON
lines and a Markdown table with the ratio of each contender's regret to the peers' (same run).
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

from bench.common import emit  # noqa: E402
from bench.functions import FUNCTIONS  # noqa: E402
from rdhpo_hpc.optimizers import make_optimizer  # noqa: E402
from rdhpo_hpc.trial import TrialState  # noqa: E402

TRIALS = {"branin": 30, "hartmann6": 60, "hartmann6_mf_noisy": 60}


def run_ours(name: str, space, fn, n: int, seed: int, noise_rng) -> list[tuple[float, float]]:
    opt = make_optimizer(name, space, seed=seed)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--with-skopt", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated contenders")
    args = ap.parse_args()
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass
    seeds = args.seeds or (3 if args.quick else 10)
    runners = {"random": lambda *a: run_ours("random", *a), "evolution": lambda *a: run_ours("evolution", *a),
               "bayes": lambda *a: run_ours("bayes", *a), "optuna-tpe": lambda *a: run_optuna("tpe", *a),
               "optuna-gp": lambda *a: run_optuna("gp", *a)}
    if args.with_skopt:
        runners["skopt defaults"] = run_skopt
    if args.only:
        runners = {k: v for k, v in runners.items() if k in args.only.split(",")}
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
                best_seen = min(range(len(trace)), key=lambda i: trace[i][0])
                vals.append(trace[best_seen][1] - fmin)
            regret[fname][name] = statistics.median(vals)
            emit("quality", f"{fname}/{name}", regret[fname][name], "regret", trials=TRIALS[fname], seeds=seeds,
                 per_seed=[round(v, 5) for v in vals])
    names = list(runners)
    print(f"\nMedian simple regret after N trials over {seeds} seeds (lower is better; total "
          f"{time.perf_counter() - t_all:.0f} s); in brackets: regret / optuna-tpe, regret / optuna-gp\n")
    print("| function (N) | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for fname, row in regret.items():
        cells = []
        for name in names:
            r = row[name]
            ratios = [f"{r / row[p]:.2g}" if row.get(p) else "-" for p in ("optuna-tpe", "optuna-gp") if p in row]
            cells.append(f"{r:.3g}" + (f" ({' / '.join(ratios)})" if ratios else ""))
        print(f"| {fname} ({TRIALS[fname]}) | " + " | ".join(cells) + " |")
    print("\nseconds spent per contender (all functions and seeds): "
          + ", ".join(f"{k} {v:.0f}" for k, v in secs.items()))


if __name__ == "__main__":
    main()
