"""Suggestion latency of model-based optimizers: median (tell + ask) time at n observations.

    python -m bench.optimizer_latency            # sizes 10/100/200/500 (about 5 minutes on 2 cores)
    python -m bench.optimizer_latency --quick    # sizes 10/100/500, skopt-based only up to 100

6-D mixed space (log float, log int, int, float, two categoricals).  Each contender gets n random
observations, then ``reps`` timed rounds of "tell the last suggestion, ask the next one".
Every contender runs with one BLAS / torch thread (the coordinator's share of a node whose
cores train).  Prints one JSON line per measurement and a Markdown table with the ratio of each
contender to Optuna's GPSampler measured in the same run (the peer).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import math
import statistics
import time
import warnings

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


def contenders():
    return {
        "random": (Ours("random"), False),
        "optuna-tpe": (Optuna("tpe"), False),
        "optuna-gp": (Optuna("gp"), False),
        "bayes (fast)": (Ours("bayes"), False),
        "bayes (skopt backend)": (Ours("bayes", backend="skopt"), True),
        "skopt defaults": (SkoptDefaults(), True),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    sizes = [10, 100, 500] if args.quick else [10, 100, 200, 500]
    skopt_max = 100 if args.quick else 500
    table: dict[str, dict[int, float]] = {}
    first: dict[str, dict[int, float]] = {}
    t_all = time.perf_counter()
    for name, (c, slow) in contenders().items():
        table[name], first[name] = {}, {}
        for n in sizes:
            if slow and n > skopt_max:
                continue
            reps = args.reps if not slow else (3 if n <= 100 else 1)
            t = time.perf_counter()
            c.setup(history(n))  # ends with the first ask: a full model fit for bayes
            first[name][n] = time.perf_counter() - t
            lat = []
            for _ in range(reps):
                t = time.perf_counter()
                c.step()
                lat.append(time.perf_counter() - t)
            med = statistics.median(lat)
            table[name][n] = med
            emit(
                "optimizer_latency",
                f"{name}@{n}",
                round(med * 1e3, 3),
                "ms",
                observations=n,
                reps=reps,
                max_ms=round(max(lat) * 1e3, 3),
                setup_ms=round(first[name][n] * 1e3, 3),
            )
    print(
        f"\nMedian tell+ask latency, 6-D mixed space, one BLAS/torch thread "
        f"(total bench time {time.perf_counter() - t_all:.0f} s); ratio = contender / {PEER} (same run)\n"
    )
    _table(table, sizes)
    print(
        "\nSetup: load n observations and answer the first ask (for bayes this ask includes a full "
        "GP hyper-parameter fit from scratch, the worst case of one ask)\n"
    )
    _table(first, sizes)


def _table(table: dict, sizes: list) -> None:
    print("| optimizer | " + " | ".join(f"n={n}" for n in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name, row in table.items():
        cells = []
        for n in sizes:
            if n not in row:
                cells.append("—")
                continue
            peer = table.get(PEER, {}).get(n)
            ratio = f" ({row[n] / peer:.3g}x)" if peer else ""
            ms = row[n] * 1e3
            cells.append((f"{ms:.1f}" if ms >= 1 else f"{ms:.3f}") + f" ms{ratio}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
