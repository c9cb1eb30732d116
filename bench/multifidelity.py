"""Multi-fidelity bench on a real task: best validation accuracy vs epochs spent and vs trials, and
the epochs each strategy needs to reach a target accuracy, on MNIST-1D (the built-in 1-D CNN;
budget = epochs).

Task (``--task mnist1d``, the default): the built-in ``cnn`` on MNIST-1D (generated offline, 4000
train / 1000 val) over 8 hyper-parameters — lr 1e-4..0.3 (log), channels 8..64 (log int), layers
1..4, kernel {3, 5, 7}, pool {stride, max}, dropout 0..0.5, weight decay 1e-6..1e-2 (log), batch
size {64, 128, 256} — with ``min_budget 1``, ``max_budget 27``, ``eta 3`` (rungs 1, 3, 9, 27
epochs).  ``--task mnist1d_mlp`` (the built-in MLP, max_budget 9) and ``--task digits`` are the
earlier settings.

Contenders, all on the same total compute (``--cap`` trained epochs per study, counted over every
trial) and the same seeds (default set; ``--methods`` adds ``bayes`` and ``optuna-tpe``):

* rdhpo ``random`` at the full budget (every trial trains ``max_budget`` epochs),
* rdhpo ``mobster-promote`` (ASHA with a GP over config and budget), ``asha-promote`` and
  ``hyperband-promote`` (``mode: promote``: one trial per rung, promoted trials resume from the
  previous rung's checkpoint), in-process with ``--workers`` (default 1) worker threads;
  ``--methods`` also takes ``asha``, ``hyperband``, ``bohb`` and ``mobster`` in the scheduler's
  default ``mode: stop``, and ``bohb-promote``,
* ``NAME@label``: a variant of strategy ``NAME`` with the options of ``--options``' entry
  ``NAME@label`` (e.g. ``mobster-promote@rule`` with ``'{"mobster-promote@rule": {"acq_budget": "mobster"}}'``),
* Optuna TPE + ``HyperbandPruner(min_budget, max_budget, eta)``, sequential, the same built-in
  objective driven through a small ctx adapter (``trial.report`` / ``trial.should_prune``);
  ``optuna-tpe`` is Optuna TPE at the full budget.

Every ``ctx.report`` is one trained epoch.  A meter wrapped around ``ctx`` counts them over all
trials of a study in the order they are reported and ends the study at ``--cap`` epochs (the next
report, or the next trial, raises; the study then drains its remaining trials without training).
"epochs to target" = the index of the first report with ``val_accuracy >= target``; a study that
never gets there is censored (``>cap``).  The headline is COCO's expected running time, ERT = the
epochs of all seeds (each until the target, or its whole study: a censored seed counts all its
compute) / the seeds that reached it, and its ratio to full-budget random search's and to Optuna
TPE + HyperbandPruner's ERT (same run).  ``--target auto`` (default for MNIST-1D) = the median over
seeds of full-budget random search's best accuracy at the cap, rounded down to 0.005, so random
search reaches it in about half the seeds or more (a target random search can reach at this
compute, not one tuned against it).  "vs trials" = the best value reported by the first n trials,
trials ordered by their first epoch.  ``--more-targets`` adds one ERT table per target; the default
for MNIST-1D is ``auto@162,0.93,0.95``: ``auto@N`` is random search's median best at N epochs (162
= 6 full-budget trials, the easy target of a smaller study) and 0.93 / 0.95 are what a researcher
usually wants.  The default cap, 540 epochs, is 20 full-budget trials: issue 15's goal is stated
against the best that 20 full-budget random trials reach.  ``--paired METHOD`` adds, under each ERT
table, METHOD against each other contender seed by seed: the seeds where it needs fewer epochs and
the ERT ratio with a 90% bootstrap interval over the seeds (is a lead more than seed-to-seed luck?).

Each seed runs in its own subprocess (``--procs`` at a time, killed at ``--time-limit``); a seed that
did not finish every contender is left out of the medians.  One CNN epoch costs 0.05-0.8 s on one
core (0.25 s on average over the space).

    python -m bench.multifidelity --quick          # 2 seeds, cap 54 epochs: a smoke test, < 100 s
    python -m bench.multifidelity                  # 10 seeds, cap 540 epochs (about an hour on 2 cores)
    python -m bench.multifidelity --task mnist1d_mlp --seeds 6      # the earlier MLP setting
    python -m bench.multifidelity --task digits --target 0.98 --seeds 3
    python -m bench.multifidelity --seeds 20 --paired mobster-promote@top --from-rows ROWS  # stored rows
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse
import gzip
import io
import json
import math
import random
import re
import statistics
import sys
import threading
import time
from typing import Any, Callable, Optional

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import emit, run_seed_children

B = "multifidelity"
TASKS = {
    # A 1-D CNN on MNIST-1D (built-in "cnn", budget = epochs): what a researcher would search.
    "mnist1d": {
        "objective": {"model": "cnn", "dataset": "mnist1d", "metric": "val_accuracy"},
        "label": "MNIST-1D CNN",
        "max_budget": 27,
        "cap": 540,  # 20 full-budget trials, the reference of issue 15's goal
        "quick_cap": 54,
        "space": {
            "lr": {"type": "float", "low": 1.0e-4, "high": 0.3, "log": True},
            "channels": {"type": "int", "low": 8, "high": 64, "log": True},
            "layers": {"type": "int", "low": 1, "high": 4},
            "kernel": {"type": "categorical", "choices": [3, 5, 7]},
            "pool": {"type": "categorical", "choices": ["stride", "max"]},
            "dropout": {"type": "float", "low": 0.0, "high": 0.5},
            "weight_decay": {"type": "float", "low": 1.0e-6, "high": 1.0e-2, "log": True},
            "batch_size": {"type": "categorical", "choices": [64, 128, 256]},
        },
    },
    # The previous headline task: an MLP, which levels off near 0.6 on MNIST-1D.
    "mnist1d_mlp": {
        "objective": {"model": "mlp", "dataset": "mnist1d", "metric": "val_accuracy"},
        "label": "MNIST-1D MLP",
        "max_budget": 9,
        "cap": 162,
        "quick_cap": 81,
        "space": {
            "lr": {"type": "float", "low": 1.0e-4, "high": 0.3, "log": True},
            "width": {"type": "int", "low": 8, "high": 256, "log": True},
            "depth": {"type": "int", "low": 1, "high": 3},
            "dropout": {"type": "float", "low": 0.0, "high": 0.5},
            "batch_size": {"type": "categorical", "choices": [64, 128, 256]},
        },
    },
    "digits": {
        "objective": {"model": "mlp", "dataset": "digits", "metric": "val_accuracy"},
        "label": "digits MLP",
        "max_budget": 9,
        "cap": 162,
        "quick_cap": 81,
        "space": {
            "lr": {"type": "float", "low": 1.0e-5, "high": 1.0, "log": True},
            "width": {"type": "int", "low": 4, "high": 256, "log": True},
            "depth": {"type": "int", "low": 1, "high": 3},
            "dropout": {"type": "float", "low": 0.0, "high": 0.6},
            "weight_decay": {"type": "float", "low": 1.0e-6, "high": 1.0e-1, "log": True},
            "batch_size": {"type": "categorical", "choices": [16, 64, 256]},
            "activation": {"type": "categorical", "choices": ["relu", "tanh"]},
        },
    },
}
METHODS = [
    "random",
    "bayes",
    "asha",
    "hyperband",
    "bohb",
    "asha-promote",
    "hyperband-promote",
    "bohb-promote",
    "mobster",
    "mobster-promote",
    "optuna-tpe",
    "optuna-tpe-hb",
]
DEFAULT_METHODS = ["random", "mobster-promote", "optuna-tpe-hb", "asha-promote", "hyperband-promote"]
FULL = {"random", "bayes", "optuna-tpe"}  # every trial trains max_budget epochs
REF_RANDOM, REF_OPTUNA = "random", "optuna-tpe-hb"
PROMOTE = "-promote"  # suffix: the rung scheduler in mode "promote" (checkpoint resume)


# -- compute accounting, shared with bench/quality.py ------------------------------------------------
class BudgetSpent(Exception):
    """Raised by a metered report (or at a trial's start) once the study's compute is spent."""


class Meter:
    """Counts reports (one per epoch / fidelity step) over all trials of one study, thread-safe, in
    the order they are made; ``trace`` holds the reported values in that order, at most ``cap``."""

    def __init__(self, cap: int) -> None:
        self.cap, self.trace, self._lock = int(cap), [], threading.Lock()
        self.ids: list = []  # the trial of each entry of ``trace``
        self.trials: set = set()  # ids of trials that trained at least one counted epoch
        self.cut: set = set()  # ids of trials stopped by the cap mid-way

    @property
    def spent(self) -> bool:
        return len(self.trace) >= self.cap

    def tick(self, value: float, trial_id: Any = None) -> None:
        with self._lock:
            if len(self.trace) >= self.cap:
                self.cut.add(trial_id)
                raise BudgetSpent(f"compute cap of {self.cap} reached")
            self.trace.append(float(value))
            self.ids.append(trial_id)
            self.trials.add(trial_id)

    def counts(self, pruned_ids: set) -> tuple[int, int]:
        """(trials that trained, of which stopped by their scheduler / pruner, not by the cap)."""
        return len(self.trials), len((pruned_ids & self.trials) - self.cut)


class MeteredCtx:
    """An rdhpo ctx whose ``report`` goes through a :class:`Meter` first (everything else forwarded)."""

    def __init__(self, ctx: Any, meter: Meter) -> None:
        self._ctx, self._meter = ctx, meter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def report(self, step: int, value: float, **metrics: float) -> None:
        self._meter.tick(value, self._ctx.trial_id)
        self._ctx.report(step, value, **metrics)


def metered(objective: Callable, meter: Meter) -> Callable:
    def run(config: dict, ctx: Any) -> float:
        if meter.spent:
            raise BudgetSpent("compute cap reached before the trial started")
        return objective(config, MeteredCtx(ctx, meter))

    return run


class OptunaCtx:
    """The ctx an rdhpo objective expects, driven by an Optuna trial: ``report`` counts the epoch,
    calls ``trial.report`` and raises ``optuna.TrialPruned`` when ``trial.should_prune()``."""

    def __init__(self, trial: Any, budget: float, meter: Meter, prune: bool) -> None:
        self.trial, self.budget, self.meter, self.prune = trial, budget, meter, prune
        self.trial_id, self.attempt, self.device, self.rank = trial.number, 0, "cpu", 0
        self.checkpoint_dir = self.checkpoint_from = None
        self.last_step: Optional[int] = None
        self.last_value: Optional[float] = None

    def report(self, step: int, value: float, **metrics: float) -> None:
        import optuna

        self.meter.tick(value, self.trial_id)
        self.last_step, self.last_value = int(step), float(value)
        self.trial.report(float(value), int(step))
        if self.prune and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step}")


def optuna_suggest(trial: Any, space: dict) -> dict:
    """A config from an Optuna trial, for a flat ``Space.from_dict`` mapping (float / int / categorical)."""
    out = {}
    for name, d in space.items():
        if d["type"] == "float":
            out[name] = trial.suggest_float(name, d["low"], d["high"], log=bool(d.get("log")))
        elif d["type"] == "int":
            out[name] = trial.suggest_int(name, d["low"], d["high"], log=bool(d.get("log")))
        else:
            out[name] = trial.suggest_categorical(name, d["choices"])
    return out


def run_optuna_study(
    objective: Callable,
    space: dict,
    direction: str,
    seed: int,
    meter: Meter,
    max_budget: int,
    prune: bool,
    min_budget: int = 1,
    eta: int = 3,
    max_trials: int = 100000,
    timeout: Optional[float] = None,
) -> dict:
    """Optuna TPE (optionally + HyperbandPruner) on an rdhpo-style ``objective(config, ctx)``, run
    sequentially until ``meter`` is spent.  Returns counts and the study."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    pruner = (
        optuna.pruners.HyperbandPruner(min_resource=min_budget, max_resource=max_budget, reduction_factor=eta)
        if prune
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)

    def fn(trial: Any) -> float:
        params = optuna_suggest(trial, space)
        ctx = OptunaCtx(trial, max_budget, meter, prune)
        try:
            if meter.spent:
                raise BudgetSpent("compute cap reached before the trial started")
            return objective(params, ctx)
        except BudgetSpent:
            study.stop()
            raise optuna.TrialPruned("compute cap reached") from None

    study.optimize(fn, n_trials=max_trials, timeout=timeout, catch=(FloatingPointError,))
    trials, pruned = meter.counts({t.number for t in study.trials if t.state.name == "PRUNED"})
    return {"study": study, "trials": trials, "pruned": pruned}


# -- one seed (child process) --------------------------------------------------------------------
def run_method(
    method: str,
    task: str,
    seed: int,
    cap: int,
    workers: int,
    min_b: int,
    max_b: int,
    eta: int,
    study_timeout: float,
    extra: Optional[dict] = None,
    random_cap: int = 0,
) -> dict:
    import rdhpo_hpc as rd
    from rdhpo_hpc.training import make_builtin_objective

    spec = {**TASKS[task]["objective"], "num_threads": 1, "seed": seed}
    objective = make_builtin_objective(spec)
    space = TASKS[task]["space"]
    name = method.split("@")[0]  # NAME@label: a variant of NAME with its own --options entry
    meter = Meter(random_cap if name == REF_RANDOM and random_cap else cap)
    t0 = time.monotonic()
    if name.startswith("optuna"):
        out = run_optuna_study(
            objective,
            space,
            "maximize",
            seed,
            meter,
            max_b,
            prune=name == "optuna-tpe-hb",
            min_budget=min_b,
            eta=eta,
            timeout=study_timeout,
        )
        trials, pruned = out["trials"], out["pruned"]
    else:
        if name in FULL:
            opts: dict = {"budget": max_b}
            max_trials = 2 * (meter.cap // max_b) + 2  # room for diverged (FAILED) trials
        else:
            opts = {"min_budget": min_b, "max_budget": max_b, "eta": eta}
            max_trials = cap  # every trial trains >= 1 epoch
            if name.endswith(PROMOTE):  # the scheduler's "promote" mode
                opts["mode"] = "promote"
            opts.update((extra or {}).get(method, {}))  # --options (and --bohb-options)
        old = sys.stdout
        sys.stdout = io.StringIO()  # the progress lines
        try:
            res = rd.optimize(
                metered(objective, meter),
                rd.Space.from_dict(space),
                optimizer=name.removesuffix(PROMOTE),
                max_trials=max_trials,
                direction="maximize",
                seed=seed,
                workers=workers,
                progress_interval=1e6,
                gossip_interval=0.2,
                t_fail=30.0,
                max_wall_time=study_timeout,
                **opts,
            )
        finally:
            sys.stdout = old
        trials, pruned = meter.counts({t.trial_id for t in res.trials if t.state == "PRUNED"})
    order = {t: i for i, t in enumerate(dict.fromkeys(meter.ids))}  # trials by their first epoch
    return {
        "method": method,
        "seed": seed,
        "trace": [round(v, 4) for v in meter.trace],
        "trial_index": [order[t] for t in meter.ids],
        "trials": trials,
        "pruned": pruned,
        "wall_s": round(time.monotonic() - t0, 1),
    }


def child(a: argparse.Namespace) -> int:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    from rdhpo_hpc.training.datasets import load_dataset

    load_dataset(TASKS[a.task]["objective"]["dataset"], a.seed)  # generate once, outside the clocks
    for m in a.methods.split(","):
        row = run_method(
            m,
            a.task,
            a.seed,
            a.cap,
            a.workers,
            a.min_budget,
            a.max_budget,
            a.eta,
            a.study_timeout,
            method_options(a),
            a.random_cap,
        )
        print(json.dumps({"run": row}), flush=True)
    return 0


def method_options(a: argparse.Namespace) -> dict:
    """``--options`` (method -> strategy options), with ``--bohb-options`` for bohb / bohb-promote."""
    out = json.loads(a.options)
    bohb = json.loads(a.bohb_options)
    for m in ("bohb", "bohb" + PROMOTE):
        out[m] = {**bohb, **out.get(m, {})}
    return out


# -- parent: seeds in subprocesses, then the tables ----------------------------------------------
def run_seeds(a: argparse.Namespace, methods: list[str]) -> tuple[list[dict], list[str]]:
    """Run every seed in a child process, ``a.procs`` at a time, all killed at ``a.time_limit``."""

    def cmd(s: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bench.multifidelity",
            "--child",
            "--seed",
            str(s),
            "--task",
            a.task,
            "--cap",
            str(a.cap),
            "--workers",
            str(a.workers),
            "--min-budget",
            str(a.min_budget),
            "--max-budget",
            str(a.max_budget),
            "--eta",
            str(a.eta),
            "--methods",
            ",".join(methods),
            "--study-timeout",
            str(a.study_timeout),
            "--bohb-options",
            a.bohb_options,
            "--options",
            a.options,
            "--random-cap",
            str(a.random_cap),
        ]

    return run_seed_children(cmd, a.seeds, a.procs, a.time_limit)


def read_rows(paths: list[str]) -> tuple[list[dict], list[str]]:
    """The runs stored by ``--child`` processes (their ``{"run": ...}`` stdout lines) in ``paths``
    (gzip-compressed where the name ends in ``.gz``)."""
    rows = []
    for path in paths:
        with gzip.open(path, "rt") if path.endswith(".gz") else open(path) as f:
            rows += [json.loads(line)["run"] for line in f if line.startswith('{"run"')]
    return rows, [f"tables from stored rows: {', '.join(paths)}"]


def first_reach(trace: list[float], target: float) -> Optional[int]:
    return next((i + 1 for i, v in enumerate(trace) if v >= target), None)


def best_at(trace: list[float], epochs: int) -> float:
    return max(trace[:epochs], default=float("nan"))


def best_of_trials(row: dict, n: int) -> float:
    """Best value reported by the first ``n`` trials of a study (in the order of their first epoch)."""
    idx = row.get("trial_index") or []
    return max((v for v, i in zip(row["trace"], idx) if i < n), default=float("nan"))


def ert(hits: list[Optional[int]], spent: list[int]) -> Optional[float]:
    """Expected running time (COCO/BBOB): epochs spent over all seeds, each until the target or, when
    it never got there, its whole study, divided by the number of seeds that reached the target."""
    n = sum(h is not None for h in hits)
    return sum(h if h is not None else e for h, e in zip(hits, spent)) / n if n else None


def ratio(x: Optional[float], ref: Optional[float]) -> Optional[float]:
    return round(x / ref, 3) if x is not None and ref is not None else None


def report(a: argparse.Namespace, methods: list[str], rows: list[dict], notes: list[str], wall: float) -> int:
    by = {(r["method"], r["seed"]): r for r in rows}
    seeds = sorted(s for s in range(a.seeds) if all((m, s) in by for m in methods))
    for n in notes:
        print(f"[multifidelity] {n}", file=sys.stderr, flush=True)
    if not seeds:
        print("[multifidelity] no seed finished every contender", file=sys.stderr)
        return 1
    cap = a.cap
    target, how = resolve_target(a.target, cap, seeds, by)
    emit(B, "target_val_accuracy", target, "val_accuracy", task=a.task, how=how, seeds=seeds, cap=cap)
    points = sorted({max(1, cap // 6), cap // 3, cap // 2, cap})
    head = TASKS[a.task]["label"] + (
        f", {len(seeds)} seeds {seeds}, cap {cap} epochs per study (random search: {a.random_cap}, the "
        f"columns stop at {cap}), budgets {a.min_budget}..{a.max_budget}, "
        f"eta {a.eta}; rdhpo in-process with {a.workers} worker(s), Optuna sequential; total {wall:.0f} s"
    )
    t1 = [
        f"### Median best val_accuracy reached vs epochs spent ({head})",
        "",
        "| method | " + " | ".join(f"{p} ep" for p in points) + " | trials/seed (pruned) | wall s/seed |",
        "|---|" + "---:|" * len(points) + "---:|---:|",
    ]
    for m in methods:
        for s in seeds:
            r = by[(m, s)]
            h = first_reach(r["trace"], target)
            emit(
                B,
                "epochs_to_target",
                h if h is not None else len(r["trace"]),
                "epochs",
                task=a.task,
                method=m,
                seed=s,
                censored=h is None,
                target=target,
                cap=cap,
                total_epochs=len(r["trace"]),
                best=best_at(r["trace"], cap),
                trials=r["trials"],
                pruned=r["pruned"],
                wall_s=r["wall_s"],
            )
        cells = []
        for p in points:
            v = statistics.median(best_at(by[(m, s)]["trace"], p) for s in seeds)
            cells.append(f"{v:.3f}")
            emit(
                B,
                "median_best_val_accuracy",
                round(v, 4),
                "val_accuracy",
                task=a.task,
                method=m,
                epochs=p,
                seeds=len(seeds),
            )
        tr = sum(by[(m, s)]["trials"] for s in seeds)
        pr = sum(by[(m, s)]["pruned"] for s in seeds) / max(1, tr)
        wl = sum(by[(m, s)]["wall_s"] for s in seeds) / len(seeds)
        t1.append(f"| {m} | " + " | ".join(cells) + f" | {tr / len(seeds):.0f} ({pr:.0%}) | {wl:.0f} |")
    n_points = [n for n in (3, 7, 15, 30, 60, 120) if any(n <= by[(m, s)]["trials"] for m in methods for s in seeds)]
    t3 = [
        "### Median best val_accuracy vs trials started (trials in the order of their first epoch; "
        "'-': some seed ran fewer trials)",
        "",
        "| method | " + " | ".join(f"{n} trials" for n in n_points) + " | epochs per trial |",
        "|---|" + "---:|" * len(n_points) + "---:|",
    ]
    for m in methods:
        cells = []
        for n in n_points:
            if any(by[(m, s)]["trials"] < n for s in seeds):
                cells.append("-")
                continue
            v = statistics.median(best_of_trials(by[(m, s)], n) for s in seeds)
            cells.append(f"{v:.3f}")
            emit(
                B,
                "median_best_val_accuracy_vs_trials",
                round(v, 4),
                "val_accuracy",
                task=a.task,
                method=m,
                trials=n,
                seeds=len(seeds),
            )
        ept = sum(len(by[(m, s)]["trace"]) for s in seeds) / max(1, sum(by[(m, s)]["trials"] for s in seeds))
        t3.append(f"| {m} | " + " | ".join(cells) + f" | {ept:.1f} |")
    t2 = ert_table(methods, seeds, by, target, how, a.task, cap, per_seed=True, focus=a.paired)
    for extra in a.more_targets:
        t, h = resolve_target(extra, cap, seeds, by)
        t2 += [""] + ert_table(methods, seeds, by, t, h, a.task, cap, per_seed=False, focus=a.paired)
    print("\n" + "\n".join(t1) + "\n\n" + "\n".join(t3) + "\n\n" + "\n".join(t2), flush=True)
    return 0


def resolve_target(spec: str, cap: int, seeds: list[int], by: dict) -> tuple[float, str]:
    """A target from ``spec``: a number, ``auto`` (the median over seeds of full-budget random
    search's best at ``cap`` epochs, rounded down to 0.005) or ``auto@N`` (the same at N epochs: the
    easy target of a smaller study).  Returns (target, how it was set)."""
    if not spec.startswith("auto"):
        return round(float(spec), 4), "given"
    at = int(spec.partition("@")[2] or cap)
    finals = [best_at(by[(REF_RANDOM, s)]["trace"], at) for s in seeds]
    target = math.floor(statistics.median(finals) / 0.005 + 1e-9) * 0.005
    return round(target, 4), f"auto: median over seeds of random's best at {at} epochs, rounded down to 0.005"


def paired(
    m: str, peer: str, hit: dict, spent: dict, resamples: int = 2000
) -> tuple[int, int, Optional[float], Optional[float], Optional[float]]:
    """``m`` against ``peer`` on the same seeds: seeds where ``m`` needs fewer epochs to the target
    (a censored seed counts its whole study), ties, and ERT(m) / ERT(peer) with its 90% bootstrap
    interval over seeds (``resamples`` resamples of the seeds, a fixed RNG: the same rows give the
    same interval)."""
    a = [h if h is not None else e for h, e in zip(hit[m], spent[m])]
    b = [h if h is not None else e for h, e in zip(hit[peer], spent[peer])]
    wins, ties = sum(x < y for x, y in zip(a, b)), sum(x == y for x, y in zip(a, b))
    n = len(a)

    def ratio_of(idx: list[int]) -> Optional[float]:
        ea = ert([hit[m][i] for i in idx], [spent[m][i] for i in idx])
        eb = ert([hit[peer][i] for i in idx], [spent[peer][i] for i in idx])
        return None if ea is None or eb is None else ea / eb

    whole = ratio_of(list(range(n)))
    rng = random.Random(0)
    boot = sorted(
        r for r in (ratio_of([rng.randrange(n) for _ in range(n)]) for _ in range(resamples)) if r is not None
    )
    if len(boot) < 0.9 * resamples:  # the peer often never reached the target: no interval
        return wins, ties, whole, None, None
    return wins, ties, whole, boot[int(0.05 * len(boot))], boot[int(0.95 * len(boot)) - 1]


def ert_table(
    methods: list[str],
    seeds: list[int],
    by: dict,
    target: float,
    how: str,
    task: str,
    cap: int,
    per_seed: bool,
    focus: Optional[str] = None,
) -> list[str]:
    """The ERT table at one target (and its JSON lines): epochs to the target, ratios to the peers;
    with ``focus``, a line comparing that method with each other one seed by seed (:func:`paired`)."""
    hit = {m: [first_reach(by[(m, s)]["trace"], target) for s in seeds] for m in methods}
    spent = {m: [len(by[(m, s)]["trace"]) for s in seeds] for m in methods}
    e = {m: ert(hit[m], spent[m]) for m in methods}
    out = [f"### Epochs to reach val_accuracy >= {target} ({how})", ""]
    if per_seed:
        out += ["ERT = epochs of all seeds (each until the target, or its whole study) / seeds that reached it.", ""]
    out += [
        f"| method | per seed | reached | ERT (epochs) | ERT / random | ERT / {REF_OPTUNA} |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for m in methods:
        per = ", ".join(str(h) if h is not None else f">{c}" for h, c in zip(hit[m], spent[m]))
        r1, r2 = ratio(e[m], e.get(REF_RANDOM)), ratio(e[m], e.get(REF_OPTUNA))
        reached = sum(h is not None for h in hit[m])
        out.append(
            f"| {m} | {per} | {reached}/{len(seeds)} | {'-' if e[m] is None else f'{e[m]:.0f}'} | "
            f"{'-' if r1 is None else f'{r1:.2f}'} | {'-' if r2 is None else f'{r2:.2f}'} |"
        )
        emit(
            B,
            "ert_epochs_to_target",
            None if e[m] is None else round(e[m], 1),
            "epochs",
            task=task,
            method=m,
            target=target,
            reached=reached,
            seeds=len(seeds),
            cap=cap,
        )
        emit(B, "ert_ratio_vs_random", r1, "x", task=task, method=m, target=target)
        emit(B, "ert_ratio_vs_optuna_tpe_hb", r2, "x", task=task, method=m, target=target)
    if focus in methods:
        cells = []
        for peer in (x for x in methods if x not in (focus, REF_RANDOM)):
            wins, ties, r, lo, hi = paired(focus, peer, hit, spent)
            span = "" if lo is None or hi is None else f" [{lo:.2f}-{hi:.2f}]"
            cells.append(
                f"vs {peer}: faster on {wins}/{len(seeds)} seeds ({ties} ties), ERT ratio "
                f"{'-' if r is None else f'{r:.2f}'}{span}"
            )
            emit(
                B,
                "ert_ratio_paired",
                None if r is None else round(r, 3),
                "x",
                task=task,
                method=focus,
                peer=peer,
                target=target,
                faster_seeds=wins,
                ties=ties,
                ci90=[lo, hi],
            )
        out += [
            "",
            f"{focus}, seed by seed (ERT ratio with its 90% bootstrap interval over seeds): " + "; ".join(cells),
        ]
    return out


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=sorted(TASKS), default="mnist1d")
    ap.add_argument(
        "--quick", action="store_true", help="2 seeds, a smaller cap (mnist1d 54 epochs, else 81), time limit 100 s"
    )
    ap.add_argument("--seeds", type=int, default=None, help="default 10 (quick 2)")
    ap.add_argument(
        "--cap",
        type=int,
        default=None,
        help="epochs per study (default mnist1d 540, else 162; quick: mnist1d 54, else 81)",
    )
    ap.add_argument("--target", default=None, help="val_accuracy or 'auto' (default auto; digits 0.98)")
    ap.add_argument(
        "--random-cap",
        type=int,
        default=None,
        help="epochs for the full-budget random search reference (default 2 x cap, quick: cap), "
        "so that its ERT at the harder targets is measured, not censored",
    )
    ap.add_argument(
        "--more-targets",
        default=None,
        help="comma-separated targets, one more ERT table each: val_accuracy, 'auto' or 'auto@EPOCHS' "
        "(default mnist1d: auto@162,0.93,0.95)",
    )
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS), help=f"comma-separated, from {','.join(METHODS)}")
    ap.add_argument("--workers", type=int, default=1, help="rdhpo worker threads per study")
    ap.add_argument("--procs", type=int, default=2, help="seeds run at once (one process each)")
    ap.add_argument("--min-budget", type=int, default=1)
    ap.add_argument("--max-budget", type=int, default=None, help="epochs (default per task: mnist1d 27, else 9)")
    ap.add_argument("--eta", type=int, default=3)
    ap.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="seconds for all seeds (default 7200; quick 100, as python -m bench --quick kills a module at 110 s)",
    )
    ap.add_argument(
        "--study-timeout",
        type=float,
        default=None,
        help="wall-clock bound of one study (default 2.5 s per epoch of --cap, at least 300)",
    )
    ap.add_argument("--bohb-options", default="{}", help="JSON options for bohb, e.g. '{\"top_n_percent\": 30}'")
    ap.add_argument(
        "--options",
        default="{}",
        help='JSON: method -> strategy options, e.g. \'{"mobster-promote": {"min_points": 5}}\'',
    )
    ap.add_argument(
        "--from-rows",
        default=None,
        help="comma-separated files with the '{\"run\": ...}' lines of earlier '--child' runs: the tables "
        "from those rows (same --cap / --seeds / --methods), nothing is trained; lets a long run be split",
    )
    ap.add_argument(
        "--paired",
        default=None,
        metavar="METHOD",
        help="compare METHOD seed by seed with each other method at every target: seeds where it is "
        "faster, and the ERT ratio with a 90%% bootstrap interval over seeds",
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        return child(a)
    task = TASKS[a.task]
    a.seeds = a.seeds or (2 if a.quick else 10)
    a.cap = a.cap or (task["quick_cap"] if a.quick else task["cap"])
    a.max_budget = a.max_budget or task["max_budget"]
    if a.random_cap is None:
        a.random_cap = a.cap if a.quick else 2 * a.cap
    a.time_limit = a.time_limit or (100.0 if a.quick else 7200.0)
    a.study_timeout = a.study_timeout or max(300.0, 2.5 * a.cap)
    a.target = a.target or ("0.98" if a.task == "digits" else "auto")
    if a.more_targets is None:
        a.more_targets = ("0.93,0.95" if a.cap <= 162 else "auto@162,0.93,0.95") if a.task == "mnist1d" else ""
    a.more_targets = [x for x in a.more_targets.split(",") if x]
    methods = [m for m in a.methods.split(",") if m]
    bad = [m for m in methods if m.split("@")[0] not in METHODS]
    for t in [a.target, *a.more_targets]:
        if not re.fullmatch(r"auto(@[1-9][0-9]*)?|[0-9]*\.?[0-9]+", t):
            ap.error(f"target {t!r}: give a val_accuracy (e.g. 0.93), 'auto' or 'auto@EPOCHS'")
    autos = [t for t in [a.target, *a.more_targets] if t.startswith("auto")]
    if bad or (autos and REF_RANDOM not in methods):
        ap.error(f"unknown method(s) {bad}; allowed {METHODS} (auto target needs random)")
    if a.paired is not None and a.paired not in methods:
        ap.error(f"--paired {a.paired!r} is not one of --methods {methods}")
    t0 = time.monotonic()
    rows, notes = read_rows(a.from_rows.split(",")) if a.from_rows else run_seeds(a, methods)
    return report(a, methods, rows, notes, time.monotonic() - t0)


if __name__ == "__main__":
    sys.exit(main())
