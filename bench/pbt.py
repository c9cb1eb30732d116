"""PBT vs random search (and ASHA) at equal compute on MNIST-1D, where the learning-rate schedule
matters: the final *test* accuracy of the model each strategy picks, over seeds.

Task: the built-in 1-D ``cnn`` (16 channels, 2 stride-2 layers, batch 128) trained with SGD
(momentum 0.9) on MNIST-1D, 3000 train / 1000 validation (both from MNIST-1D's training set) /
1000 test (its test set; never seen by a strategy).  The value a strategy optimises is the
validation accuracy after the trial's last epoch (no best-epoch picking: an unstable high
learning rate that ends badly loses, so a decaying schedule pays).  A constant learning rate is
the weak point PBT is meant to fix: it changes lr / weight decay *during* training.

Contenders, each with the same compute (``population * max_budget`` trained epochs, counted over
every trial by the meter of bench/multifidelity.py; diverged trials count what they trained):

* ``random``: random search over a constant lr (1e-3..1, log) and weight decay (1e-6..1e-2, log),
  every trial ``max_budget`` epochs;
* ``random-decay``: the same plus ``lr_decay`` in [0.8, 1] (lr of epoch e = lr * lr_decay^(e-1)),
  i.e. random search over a schedule too (the fair peer: it may find a decay as well);
* ``asha-decay``: ASHA (stop mode, min_budget = interval, eta 2, max_budget) on that space;
* ``pbt``: PBT over the constant-lr space (``population`` members, ``interval`` epochs per trial,
  lr and weight decay mutable); ``pbt-decay`` (``--methods``): PBT over the decay space.

Each study's pick is the finished trial with the best validation accuracy (a trial that
completed its budget, PRUNED ones excluded); its checkpoint is evaluated on the test set.
"Accuracy vs compute": the same pick among the trials finished within 25 / 50 / 100 % of the
compute.  PBT checks: the trials resumed from a checkpoint (first reported epoch > 1, at the
parent's epoch + 1) and their first-epoch validation accuracy vs fresh trials' (weights loaded).

Each seed runs in its own subprocess (``--procs`` at a time, killed at ``--time-limit``).  An
epoch costs about 0.09 s of one core.

    python -m bench.pbt --quick        # 2 seeds, population 4, 6 epochs: a smoke test, < 1 minute
    python -m bench.pbt                # 10 seeds, population 8, 24 epochs, interval 3 (192 epochs a study)
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse
import io
import json
import statistics
import sys
import time
from typing import Any, Optional

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import OUT_DIR, emit, run_seed_children
from bench.multifidelity import Meter, metered

B = "pbt"
DATA = os.path.join(OUT_DIR, "pbt_mnist1d.npz")
ROWS = os.path.join(OUT_DIR, "pbt_rows.jsonl")  # every run's per-seed rows (--reuse)
PARAMS = {"model": "cnn", "optimizer": "sgd", "momentum": 0.9, "channels": 16, "layers": 2, "batch_size": 128}
SPACE = {
    "lr": {"type": "float", "low": 1.0e-3, "high": 1.0, "log": True},
    "weight_decay": {"type": "float", "low": 1.0e-6, "high": 1.0e-2, "log": True},
}
SPACE_DECAY = {**SPACE, "lr_decay": {"type": "float", "low": 0.8, "high": 1.0}}
METHODS = ["random", "random-decay", "asha-decay", "pbt", "pbt-decay"]
DEFAULT_METHODS = ["random", "random-decay", "asha-decay", "pbt"]
FRACTIONS = (0.25, 0.5, 1.0)


def make_data(path: str = DATA) -> str:
    """MNIST-1D as train 3000 / val 1000 (a fixed split of its training set) / test 1000 (its test set)."""
    import numpy as np

    from rdhpo_hpc.training.datasets import load_dataset

    if os.path.isfile(path):
        return path
    ds = load_dataset("mnist1d")
    perm = np.random.default_rng(0).permutation(ds.n_train)
    tr, va = perm[:3000], perm[3000:]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}.npz"
    np.savez(
        tmp,
        x_train=ds.x_train[tr],
        y_train=ds.y_train[tr],
        x_val=ds.x_train[va],
        y_val=ds.y_train[va],
        x_test=ds.x_val,
        y_test=ds.y_val,
    )
    os.replace(tmp, path)
    return path


class StepCtx:
    """Forwards to the real ctx; remembers each trial's first reported (epoch, value)."""

    def __init__(self, ctx: Any, first: dict) -> None:
        self._ctx, self._first = ctx, first

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def report(self, step: int, value: float, **metrics: float) -> None:
        self._first.setdefault(self._ctx.trial_id, (int(step), float(value)))
        self._ctx.report(step, value, **metrics)


def held_out_accuracy(ckpt_dir: str, config: dict, ds: Any, x_test: Any, y_test: Any) -> float:
    """Accuracy on the test set of the model saved in ``ckpt_dir`` (the trial's last epoch)."""
    import torch

    from rdhpo_hpc.training.models import build_model

    model = build_model({**PARAMS, **config}, ds)
    model.load_state_dict(torch.load(os.path.join(ckpt_dir, "ckpt.pt"), weights_only=True)["model"])
    model.eval()
    with torch.inference_mode():
        return float((model(x_test).argmax(1) == y_test).float().mean())


def run_method(method: str, seed: int, a: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    import rdhpo_hpc as rd
    from rdhpo_hpc.training import make_builtin_objective
    from rdhpo_hpc.training.datasets import load_dataset

    spec = {"model": "cnn", "dataset": DATA, "metric": "val_accuracy", "num_threads": 1, "seed": seed, "params": PARAMS}
    objective = make_builtin_objective(spec)
    ds = load_dataset(DATA, seed)
    with np.load(DATA) as z:
        x_test, y_test = torch.from_numpy(z["x_test"].astype("float32")), torch.from_numpy(z["y_test"])
    cap = a.population * a.max_budget
    meter = Meter(cap)
    first: dict = {}
    finished: list = []  # (epochs spent when it ended, val acc, test acc, trial id), in end order
    inner = metered(objective, meter)

    def run(config: dict, ctx: Any) -> float:
        value = inner(config, StepCtx(ctx, first))
        test = held_out_accuracy(ctx.checkpoint_dir, config, ds, x_test, y_test)
        finished.append((len(meter.trace), float(value), test, ctx.trial_id))
        return value

    kind, _, variant = method.partition("-")
    space = SPACE_DECAY if variant == "decay" else SPACE
    opts: dict = {}
    if kind == "random":
        opts, max_trials = {"budget": a.max_budget}, 2 * a.population + 2  # room for diverged trials
    elif kind == "asha":
        opts = {"min_budget": a.interval, "max_budget": a.max_budget, "eta": 2}
        max_trials = cap
    else:
        opts = {"population": a.population, "interval": a.interval, "max_budget": a.max_budget}
        opts["mutable"] = sorted(space)
        max_trials = 2 * cap // a.interval
    t0 = time.monotonic()
    old = sys.stdout
    sys.stdout = io.StringIO()  # the progress lines
    try:
        res = rd.optimize(
            run,
            rd.Space.from_dict(space),
            optimizer=kind,
            max_trials=max_trials,
            direction="maximize",
            seed=seed,
            workers=1,
            progress_interval=1e6,
            gossip_interval=0.2,
            t_fail=30.0,
            max_wall_time=a.study_timeout,
            **opts,
        )
    finally:
        sys.stdout = old
    row: dict = {"method": method, "seed": seed, "epochs": len(meter.trace), "wall_s": round(time.monotonic() - t0, 1)}
    for f in FRACTIONS:
        done = [r for r in finished if r[0] <= round(f * cap)]
        pick = max(done, key=lambda r: (r[1], -r[3])) if done else None
        row[f"val@{f}"], row[f"test@{f}"] = (pick[1], pick[2]) if pick else (None, None)
    row["failed"] = sum(1 for t in res.trials if t.state == "FAILED" and t.trial_id in meter.trials)
    if kind == "pbt":
        infos = {t.trial_id: (t.extra or {}).get("info") or {} for t in res.trials}
        resumed = [t for t, i in infos.items() if i.get("parent_trial") is not None and t in first]
        ends = {t: ep for ep, _v, _te, t in finished}
        steps = {t: len([x for x in meter.ids if x == t]) for t in first}
        row["exploits"] = sum(1 for i in infos.values() if i.get("exploited_from") is not None)
        row["resumed"] = len(resumed)
        # resumed at the parent's last epoch + 1 (= generation * interval + 1)
        row["resumed_at_parent_epoch"] = sum(
            1 for t in resumed if first[t][0] == infos[t]["generation"] * a.interval + 1
        )
        row["first_acc_resumed"] = statistics.median([first[t][1] for t in resumed]) if resumed else None
        fresh = [t for t, i in infos.items() if i.get("generation") == 0 and t in first]
        row["first_acc_fresh"] = statistics.median([first[t][1] for t in fresh]) if fresh else None
        row["epochs_per_trial"] = sorted({steps[t] for t in ends if t in steps})
        pick = max(finished, key=lambda r: (r[1], -r[3]))[3] if finished else None
        chain = []  # the pick's lineage, oldest first: (generation, lr, weight decay, val acc)
        params = {t.trial_id: t.params for t in res.trials}
        values = {t: v for _e, v, _te, t in finished}
        while pick is not None:
            chain.append(
                (
                    infos[pick].get("generation"),
                    round(params[pick]["lr"], 4),
                    float(f"{params[pick]['weight_decay']:.2g}"),
                    values.get(pick),
                )
            )
            pick = infos[pick].get("parent_trial")
        row["pick_lineage"] = chain[::-1]
    return row


def child(a: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(1)
    for m in a.methods.split(","):
        print(json.dumps({"run": run_method(m, a.seed, a)}), flush=True)
    return 0


def run_seeds(a: argparse.Namespace, methods: list[str]) -> tuple[list[dict], list[str]]:
    """Every seed in a child process (its own session), ``a.procs`` at a time, killed at the time limit."""
    sizes = ["--population", str(a.population), "--max-budget", str(a.max_budget), "--interval", str(a.interval)]

    def cmd(s: int) -> list[str]:
        return [sys.executable, "-m", "bench.pbt", "--child", "--seed", str(s), "--methods", ",".join(methods)] + [
            *sizes,
            "--study-timeout",
            str(a.study_timeout),
        ]

    return run_seed_children(cmd, a.seeds, a.procs, a.time_limit)


def _sizes(a: argparse.Namespace) -> list[int]:
    return [a.population, a.max_budget, a.interval]


def load_rows(a: argparse.Namespace) -> list[dict]:
    """The rows saved in ROWS by earlier runs with these sizes, the latest per (method, seed)."""
    if not os.path.isfile(ROWS):
        return []
    out: dict = {}
    with open(ROWS, encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            if r.get("sizes") == _sizes(a) and r["seed"] < a.seeds:
                out[(r["method"], r["seed"])] = r
    return list(out.values())


def save_rows(a: argparse.Namespace, rows: list[dict]) -> None:
    os.makedirs(OUT_DIR, exist_ok=True)
    with open(ROWS, "a", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps({**r, "sizes": _sizes(a)}) + "\n")


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], statistics.median(xs), q[2]


def emit_quartiles(metric: str, xs: list[float], **extra: Any) -> tuple[float, float, float]:
    """Emit the median accuracy of ``xs`` with its quartiles; returns (p25, median, p75)."""
    lo, med, hi = quartiles(xs)
    emit(B, metric, round(med, 4), "accuracy", p25=round(lo, 4), p75=round(hi, 4), seeds=len(xs), **extra)
    return lo, med, hi


def report(a: argparse.Namespace, methods: list[str], rows: list[dict], notes: list[str], wall: float) -> int:
    for n in notes:
        print(f"[pbt] {n}", file=sys.stderr, flush=True)
    by_seed: dict = {}
    for r in rows:
        by_seed.setdefault(r["seed"], {})[r["method"]] = r
    seeds = sorted(s for s, d in by_seed.items() if set(methods) <= set(d))
    if not seeds:
        print("[pbt] no seed finished every contender", file=sys.stderr)
        return 1
    cap = a.population * a.max_budget
    sizes = dict(population=a.population, max_budget=a.max_budget, interval=a.interval, cap_epochs=cap)
    head = "| method | " + " | ".join(f"test acc @ {int(f * 100)} % compute" for f in FRACTIONS) + " | val acc (pick) |"
    lines = [head, "|---" * (len(FRACTIONS) + 2) + "|"]
    for m in methods:
        cells = []
        for f in FRACTIONS:
            xs = [by_seed[s][m][f"test@{f}"] for s in seeds if by_seed[s][m][f"test@{f}"] is not None]
            if not xs:
                cells.append("-")
                continue
            lo, med, hi = emit_quartiles(f"test_accuracy@{f}", xs, method=m, **sizes)
            cells.append(f"{med:.3f} [{lo:.3f}-{hi:.3f}]" + (f" ({len(xs)})" if len(xs) < len(seeds) else ""))
        lo, med, hi = emit_quartiles(
            "val_accuracy_of_pick", [by_seed[s][m]["val@1.0"] for s in seeds], method=m, **sizes
        )
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {med:.3f} [{lo:.3f}-{hi:.3f}] |")
    for m in methods:
        if m == "random":
            continue
        diffs = (
            [by_seed[s][m]["test@1.0"] - by_seed[s]["random"]["test@1.0"] for s in seeds] if "random" in methods else []
        )
        if diffs:
            wins = sum(d > 0 for d in diffs)
            emit(
                B,
                "test_accuracy_minus_random",
                round(statistics.median(diffs), 4),
                "accuracy",
                method=m,
                wins=wins,
                ties=sum(d == 0 for d in diffs),
                seeds=len(seeds),
                **sizes,
            )
            lines.append(
                f"\n{m} - random (test, paired by seed): median {statistics.median(diffs):+.3f}, "
                f"better on {wins}/{len(seeds)} seeds"
            )
    for m in methods:
        if not m.startswith("pbt"):
            continue
        rs = [by_seed[s][m] for s in seeds]
        resumed = sum(r["resumed"] for r in rs)
        at_epoch = sum(r["resumed_at_parent_epoch"] for r in rs)
        fa = [r["first_acc_resumed"] for r in rs if r["first_acc_resumed"] is not None]
        ff = [r["first_acc_fresh"] for r in rs if r["first_acc_fresh"] is not None]
        emit(B, "pbt_resumed_at_parent_epoch", at_epoch, "trials", method=m, resumed=resumed, **sizes)
        emit(B, "pbt_exploits_per_study", statistics.median(r["exploits"] for r in rs), "trials", method=m, **sizes)
        if fa and ff:
            emit(
                B,
                "pbt_first_epoch_val_acc",
                round(statistics.median(fa), 4),
                "accuracy",
                method=m,
                fresh=round(statistics.median(ff), 4),
                **sizes,
            )
            lines.append(
                f"\n{m}: {at_epoch}/{resumed} resumed trials started at their parent's epoch + 1; "
                f"median first-epoch val acc {statistics.median(fa):.3f} resumed vs {statistics.median(ff):.3f}"
                f" fresh; median {statistics.median(r['exploits'] for r in rs)} exploits a study"
            )
        for s, r in zip(seeds, rs):
            lrs = " ".join(f"{c[1]:.3g}" for c in r.get("pick_lineage", []))
            lines.append(f"  seed {s} pick lr by generation: {lrs} (test {r['test@1.0']:.3f})")
    emit(B, "wall", round(wall, 1), "s", seeds=len(seeds), methods=methods, **sizes)
    print(f"\nMNIST-1D CNN, SGD; {len(seeds)} seeds; {cap} epochs a study; median [25th-75th percentile]\n")
    print("\n".join(lines), flush=True)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.pbt", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 seeds, population 4, max_budget 6, interval 2")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--population", type=int, default=None)
    ap.add_argument("--max-budget", type=int, default=None)
    ap.add_argument("--interval", type=int, default=None)
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS), help=f"comma-separated, of {METHODS}")
    ap.add_argument("--procs", type=int, default=2, help="seeds run at once")
    ap.add_argument("--time-limit", type=float, default=3600.0, help="seconds for all seeds")
    ap.add_argument("--study-timeout", type=float, default=600.0)
    ap.add_argument(
        "--reuse",
        default="",
        help=f"comma-separated methods whose rows are read from {ROWS} (saved by an earlier run of the same sizes)",
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    small = dict(seeds=2, population=4, max_budget=6, interval=2)
    full = dict(seeds=10, population=8, max_budget=24, interval=3)
    for k, v in (small if a.quick else full).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    methods = a.methods.split(",")
    bad = set(methods) - set(METHODS)
    if bad:
        ap.error(f"unknown method(s) {sorted(bad)}; allowed: {METHODS}")
    if a.child:
        return child(a)
    make_data()
    t0 = time.monotonic()
    reuse = set(a.reuse.split(",")) if a.reuse else set()
    old = [r for r in load_rows(a) if r["method"] in reuse and r["method"] in methods]
    rows, notes = run_seeds(a, [m for m in methods if m not in reuse]) if set(methods) - reuse else ([], [])
    save_rows(a, rows)
    rows += old
    return report(a, methods, rows, notes, time.monotonic() - t0)


if __name__ == "__main__":
    sys.exit(main())
