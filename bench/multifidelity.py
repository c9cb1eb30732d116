"""Multi-fidelity bench: compute (total trained epochs) that ASHA, Hyperband and BOHB need to reach
a target validation accuracy on scikit-learn digits, against random search at the full budget.

In-process (coordinator + 2 worker threads), the built-in MLP objective, a few seeds.  Every
report is one trained epoch; "epochs to target" counts every epoch reported by any trial, in the
order the coordinator received them, up to the first report with ``val_accuracy >= target``.
A run that never reaches the target counts as its total epochs and is marked censored (``>``).

    python -m bench.multifidelity [--quick] [--seeds 3] [--target 0.98]
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import emit  # noqa: E402

B = "multifidelity"
SPACE = {"lr": {"type": "float", "low": 1.0e-5, "high": 1.0, "log": True},
         "width": {"type": "int", "low": 4, "high": 256, "log": True},
         "depth": {"type": "int", "low": 1, "high": 3},
         "dropout": {"type": "float", "low": 0.0, "high": 0.6},
         "weight_decay": {"type": "float", "low": 1.0e-6, "high": 1.0e-1, "log": True},
         "batch_size": {"type": "categorical", "choices": [16, 64, 256]},
         "activation": {"type": "categorical", "choices": ["relu", "tanh"]}}
MIN_B, MAX_B, ETA = 1, 9, 3
#: strategy -> (max_trials, options); multi-fidelity gets more trials for a similar epoch cap
STRATEGIES = {"random": (60, {"budget": MAX_B}),
              "asha": (90, {"min_budget": MIN_B, "max_budget": MAX_B, "eta": ETA}),
              "hyperband": (68, {"min_budget": MIN_B, "max_budget": MAX_B, "eta": ETA}),
              "bohb": (68, {"min_budget": MIN_B, "max_budget": MAX_B, "eta": ETA})}


def run_one(strategy: str, seed: int, target: float, workers: int) -> dict:
    import rdhpo_hpc as rd
    from rdhpo_hpc.training import make_builtin_objective
    objective = make_builtin_objective({"model": "mlp", "dataset": "digits", "metric": "val_accuracy",
                                        "num_threads": 1, "seed": seed})
    trials, opts = STRATEGIES[strategy]
    t0 = time.monotonic()
    res = _optimize(rd, objective, strategy, trials, seed, workers, opts)
    wall = time.monotonic() - t0
    epochs, hit = 0, None
    for r in res.reports:
        if r.get("decision") not in ("continue", "stop"):
            continue
        epochs += 1
        if hit is None and r["value"] >= target:
            hit = epochs
    best = res.best_trial
    return {"strategy": strategy, "seed": seed, "epochs_to_target": hit if hit is not None else epochs,
            "censored": hit is None, "total_epochs": epochs, "trials": len(res.trials),
            "pruned": sum(t.state == "PRUNED" for t in res.trials),
            "best_complete": None if best is None else round(best.value, 4), "wall_s": round(wall, 1)}


def _optimize(rd, objective, strategy, trials, seed, workers, opts):  # noqa: ANN001, ANN202
    old = sys.stdout
    sys.stdout = io.StringIO()                   # the progress lines
    try:
        return rd.optimize(objective, rd.Space.from_dict(SPACE), optimizer=strategy, max_trials=trials,
                           direction="maximize", seed=seed, workers=workers, progress_interval=1e6,
                           gossip_interval=0.2, t_fail=30.0, **opts)
    finally:
        sys.stdout = old


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--target", type=float, default=0.98)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="one seed")
    a = ap.parse_args(argv)
    seeds = range(1 if a.quick else a.seeds)
    rows: dict[str, list[dict]] = {s: [] for s in STRATEGIES}
    for seed in seeds:
        for s in STRATEGIES:
            row = run_one(s, seed, a.target, a.workers)
            rows[s].append(row)
            emit(B, "epochs_to_target", row["epochs_to_target"], "epochs", target=a.target, **row)
    ref = statistics.median(r["epochs_to_target"] for r in rows["random"])
    print(f"\nepochs to reach val_accuracy >= {a.target} on digits (MLP), {len(seeds)} seed(s), "
          f"{a.workers} workers; budgets {MIN_B}..{MAX_B} epochs, eta {ETA}")
    print(f"{'strategy':<10} {'per seed':<28} {'median':>7} {'ratio':>6} {'pruned':>7} {'wall_s':>7}")
    for s, rs in rows.items():
        med = statistics.median(r["epochs_to_target"] for r in rs)
        per = ", ".join(f"{'>' if r['censored'] else ''}{r['epochs_to_target']}" for r in rs)
        pr = sum(r["pruned"] for r in rs) / max(1, sum(r["trials"] for r in rs))
        print(f"{s:<10} {per:<28} {med:>7.0f} {med / ref:>6.2f} {pr:>7.0%} "
              f"{sum(r['wall_s'] for r in rs):>7.1f}")
        emit(B, "epochs_ratio_vs_random", round(med / ref, 3), "x", strategy=s, target=a.target,
             seeds=len(seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
