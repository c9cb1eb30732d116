"""Suggestion latency of model-based optimizers at 500 / 2,000 / 10,000 observations.

    python -m bench.optimizer_latency            # sizes 500/2000/10000 (about 10 minutes on 2 cores)
    python -m bench.optimizer_latency --quick    # sizes 100/2000, batches of 100, smaller caps (~80 s)
    python -m bench.optimizer_latency --with-skopt   # add the scikit-optimize contenders (slow)

6-D mixed space (log float, log int, int, float, two categoricals).  Each contender gets n random
observations, then ``reps`` timed rounds of "tell the last suggestion, ask the next one" (the
median is the table's number), then a *batch*: ``--batch`` (1,000) asks in a row with no tell in
between, as the coordinator does when it fills 1,000 idle workers (so the last asks see 999
pending suggestions).  Every (contender, n, part) runs in a child process with a time cap
(``--cap``, ``--batch-cap`` seconds): "did not finish in X s" is reported, and the larger sizes of
a contender that did not finish are not tried.  ``bayes (exact)`` is ``bayes`` with the caps off
(``max_points`` and ``max_liars`` huge: one GP over every observation and every pending point,
the method before the caps).  Every contender runs with one BLAS / torch thread (the
coordinator's share of a node whose cores train).  Prints one JSON line per measurement and
Markdown tables with the ratio of each contender to Optuna's GPSampler measured in the same run
(the peer) where it finished.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
import warnings
from typing import Any, Optional, cast

import numpy as np

from bench.common import emit
from rdhpo_hpc.optimizers import make_optimizer
from rdhpo_hpc.space import Categorical, Float, Int, Space
from rdhpo_hpc.trial import TrialState

SPACE = Space(
    lr=Float(1e-4, 1e-1, log=True),
    width=Int(16, 256, log=True),
    depth=Int(1, 4),
    dropout=Float(0.0, 0.5),
    act=Categorical(["relu", "tanh", "gelu"]),
    batch=Categorical([32, 64, 128]),
)
PEER = "optuna-gp"


def f(c: dict) -> float:
    return (
        (math.log10(c["lr"]) + 2.5) ** 2
        + (math.log2(c["width"]) - 6) ** 2 / 4
        + (c["depth"] - 2) ** 2 / 4
        + (c["dropout"] - 0.2) ** 2
        + 0.3 * (c["act"] != "gelu")
        + 0.1 * (c["batch"] != 64)
    )


def history(n: int, seed: int = 0) -> list[tuple[dict, float]]:
    rng = np.random.default_rng(seed)
    return [(c, f(c)) for c in (SPACE.sample(rng) for _ in range(n))]


class Ours:
    def __init__(self, name: str, **opts) -> None:
        self.name, self.opts = name, opts

    def setup(self, hist):
        self.opt = make_optimizer(self.name, SPACE, seed=0, **self.opts)
        for i, (c, v) in enumerate(hist):  # the coordinator's replay path: pending, then tell
            self.opt.pending[i] = c
            self.opt.tell(i, TrialState.COMPLETE, v)
        self.tid = len(hist)
        self.cur = self.opt.ask(self.tid)

    def step(self):
        self.opt.tell(self.tid, TrialState.COMPLETE, f(self.cur))
        self.tid += 1
        self.cur = self.opt.ask(self.tid)

    def ask_only(self):
        self.tid += 1
        self.opt.ask(self.tid)


class Optuna:
    def __init__(self, kind: str) -> None:
        self.kind = kind

    def setup(self, hist):
        import optuna
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        warnings.filterwarnings("ignore")
        self.d = {
            "lr": FloatDistribution(1e-4, 1e-1, log=True),
            "width": IntDistribution(16, 256, log=True),
            "depth": IntDistribution(1, 4),
            "dropout": FloatDistribution(0.0, 0.5),
            "act": CategoricalDistribution(["relu", "tanh", "gelu"]),
            "batch": CategoricalDistribution([32, 64, 128]),
        }
        sampler = {"gp": lambda: optuna.samplers.GPSampler(seed=0), "tpe": lambda: optuna.samplers.TPESampler(seed=0)}[
            self.kind
        ]()
        self.study = optuna.create_study(sampler=sampler)
        self.study.add_trials([optuna.trial.create_trial(params=c, distributions=self.d, value=v) for c, v in hist])
        self.trial = self.study.ask(self.d)

    def step(self):
        self.study.tell(self.trial, f(self.trial.params))
        self.trial = self.study.ask(self.d)

    def ask_only(self):
        self.study.ask(self.d)


class SkoptDefaults:
    def setup(self, hist):
        from skopt import Optimizer
        from skopt.space import Categorical as C, Integer, Real

        warnings.filterwarnings("ignore")
        self.opt = Optimizer(
            [
                Real(1e-4, 1e-1, prior="log-uniform"),
                Integer(16, 256, prior="log-uniform"),
                Integer(1, 4),
                Real(0.0, 0.5),
                C(["relu", "tanh", "gelu"]),
                C([32, 64, 128]),
            ],
            base_estimator="GP",
            random_state=0,
        )
        self.keys = ["lr", "width", "depth", "dropout", "act", "batch"]
        self.opt.tell([[c[k] for k in self.keys] for c, _ in hist], [v for _, v in hist])
        self.x = self.opt.ask()

    def step(self):
        self.opt.tell(self.x, f(dict(zip(self.keys, self.x))))
        self.x = self.opt.ask()

    def ask_only(self):
        self.opt.ask()  # scikit-optimize keeps no pending points: each answer is the same kind


EXACT = {"max_points": 10**9, "max_liars": 10**9}
MAX_N = {"bayes (exact)": 2000}  # beyond: a 10,000 x 10,000 Cholesky per ask (minutes, GBs)
MAX_N_QUICK = {"bayes (exact)": 100, "optuna-gp": 100}  # --quick stays within the runner's 110 s


def contenders(with_skopt: bool = False) -> dict:
    c = {
        "random": lambda: Ours("random"),
        "optuna-tpe": lambda: Optuna("tpe"),
        "optuna-gp": lambda: Optuna("gp"),
        "bayes": lambda: Ours("bayes"),
        "bayes (exact)": lambda: Ours("bayes", **EXACT),
    }
    if with_skopt:
        c["bayes (skopt backend)"] = lambda: Ours("bayes", backend="skopt")
        c["skopt defaults"] = SkoptDefaults
    return c


def _threads() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def child(name: str, n: int, part: str, reps: int, batch: int, cap: float) -> None:
    """One measurement in this process: prints a JSON line with the times in seconds;
    ``done`` < the planned count when the measured part ran past ``cap`` seconds."""
    _threads()
    c = contenders(True)[name]()
    t = time.perf_counter()
    c.setup(history(n))  # ends with the first ask: a full model fit for bayes
    setup = time.perf_counter() - t
    t0, times, cpu = time.perf_counter(), [], []
    for _ in range(reps if part == "latency" else batch):
        t, tc = time.perf_counter(), time.process_time()
        c.step() if part == "latency" else c.ask_only()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - tc)
        if time.perf_counter() - t0 > cap:
            break
    planned = reps if part == "latency" else batch
    print(json.dumps({"setup": setup, "times": times, "cpu": cpu, "planned": planned}), flush=True)


def measure(name: str, n: int, part: str, args: argparse.Namespace, cap: float) -> Optional[dict]:
    """Run ``child`` in a subprocess of its own: its result, or None when the measured part ran
    past ``cap`` seconds (the child stops itself; it is killed at 2 cap + 60 s, set-up included)."""
    cmd = [sys.executable, "-m", "bench.optimizer_latency", "--child", name, str(n), part]
    cmd += ["--reps", str(args.reps), "--batch", str(args.batch), "--cap", str(cap)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=2 * cap + 60, start_new_session=True)
    except subprocess.TimeoutExpired:
        return None
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{name}@{n} {part} failed (rc {out.returncode}): {out.stderr[-2000:]}")
    r = cast(dict, json.loads(lines[-1]))
    return r if len(r["times"]) == r["planned"] else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--batch", type=int, default=1000, help="asks in a row without tells")
    ap.add_argument("--cap", type=float, default=None, help="seconds per latency measurement")
    ap.add_argument("--batch-cap", type=float, default=None, help="seconds per batch measurement")
    ap.add_argument("--with-skopt", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated contenders")
    ap.add_argument("--child", nargs=3, metavar=("NAME", "N", "PART"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        name, n, part = args.child
        child(name, int(n), part, args.reps, args.batch, args.cap or 1e9)
        return
    sizes = [100, 2000] if args.quick else [500, 2000, 10000]
    cap = args.cap or (20.0 if args.quick else 60.0)
    bcap = args.batch_cap or (5.0 if args.quick else 30.0)
    if args.quick:
        args.batch = min(args.batch, 100)
    names = [k for k in contenders(args.with_skopt) if not args.only or k in args.only.split(",")]
    lat: dict[str, dict[int, Any]] = {k: {} for k in names}
    lat_cpu: dict[str, dict[int, Any]] = {k: {} for k in names}
    batch_cpu: dict[str, dict[int, Any]] = {k: {} for k in names}
    setup: dict[str, dict[int, Any]] = {k: {} for k in names}
    batch: dict[str, dict[int, Any]] = {k: {} for k in names}
    t_all = time.perf_counter()
    for name in names:
        for part, table, limit in (("latency", lat, cap), ("batch", batch, bcap)):
            for n in sizes:
                if n > (MAX_N_QUICK if args.quick else MAX_N).get(name, n):
                    table[name][n] = "skip"
                    (lat_cpu if part == "latency" else batch_cpu)[name][n] = "skip"
                    continue
                if any(v is None for v in table[name].values()):
                    table[name][n] = "skip"  # did not finish at a smaller n
                    (lat_cpu if part == "latency" else batch_cpu)[name][n] = "skip"
                    continue
                r = measure(name, n, part, args, limit)
                if r is None:
                    table[name][n] = None
                    (lat_cpu if part == "latency" else batch_cpu)[name][n] = None
                    emit("optimizer_latency", f"{name}@{n}/{part}", None, "s", observations=n, cap_s=limit)
                    continue
                if part == "latency":
                    med = statistics.median(r["times"])
                    lat[name][n], setup[name][n] = med, r["setup"]
                    lat_cpu[name][n] = statistics.median(r["cpu"])
                    emit(
                        "optimizer_latency",
                        f"{name}@{n}",
                        round(med * 1e3, 3),
                        "ms",
                        observations=n,
                        reps=len(r["times"]),
                        max_ms=round(max(r["times"]) * 1e3, 3),
                        setup_ms=round(r["setup"] * 1e3, 3),
                        cpu_ms=round(lat_cpu[name][n] * 1e3, 3),
                    )
                else:
                    batch[name][n] = sum(r["times"])
                    batch_cpu[name][n] = sum(r["cpu"])
                    emit(
                        "optimizer_latency",
                        f"{name}@{n}/batch{args.batch}",
                        round(batch[name][n], 3),
                        "s",
                        observations=n,
                        asks=args.batch,
                        cpu_s=round(batch_cpu[name][n], 3),
                    )
    print(
        f"\nMedian tell+ask latency, 6-D mixed space, one BLAS/torch thread (total bench time "
        f"{time.perf_counter() - t_all:.0f} s); ratio = contender / {PEER} (same run)\n"
    )
    _table(lat, sizes, cap, 1e3, "ms")
    print("\nThe same, CPU time of the process (what the ask costs, without the waits of a loaded machine)\n")
    _table(lat_cpu, sizes, cap, 1e3, "ms")
    print("\nSetup: load n observations and answer the first ask (for bayes a GP hyper-parameter fit from scratch)\n")
    _table(setup, sizes, cap, 1e3, "ms")
    print(f"\nBatch: {args.batch} asks in a row after n observations, no tells (pending grows to {args.batch - 1})\n")
    _table(batch, sizes, bcap, 1.0, "s")
    print("\nThe same, CPU time\n")
    _table(batch_cpu, sizes, bcap, 1.0, "s")
    print("\nThe same, CPU time per ask (amortised over the batch)\n")
    _table(batch_cpu, sizes, bcap, 1e3 / args.batch, "ms")
    print(f"\nload average at the end: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")


def _table(table: dict, sizes: list, cap: float, scale: float, unit: str) -> None:
    print("| optimizer | " + " | ".join(f"n={n}" for n in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name, row in table.items():
        cells = []
        for n in sizes:
            v = row.get(n, "skip")
            if v == "skip":
                cells.append("not run")
                continue
            if v is None:
                cells.append(f"did not finish in {cap:.0f} s")
                continue
            peer = table.get(PEER, {}).get(n)
            ratio = f" ({v / peer:.3g}x)" if isinstance(peer, float) and peer > 0 else ""
            x = v * scale
            cells.append((f"{x:.1f}" if x >= 1 else f"{x:.3f}") + f" {unit}{ratio}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
