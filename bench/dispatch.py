"""Dispatch bench: trials/s through the coordinator with a trivial objective, side by side with
Optuna (4 processes on a JournalStorage file and on SQLite, random sampler) in the same run, and
the CPU an idle worker burns (percent of one core).

    python -m bench.dispatch [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import emit, run_mpi_study

B = "dispatch"


def _optuna_worker(storage_url: str, kind: str, n: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name="b", storage=_storage(storage_url, kind), sampler=optuna.samplers.RandomSampler()
    )
    study.optimize(
        lambda t: (
            t.suggest_float("x", -5, 5) ** 2
            + t.suggest_int("y", 1, 100) * 0
            + len(t.suggest_categorical("c", ["a", "b", "c"])) * 0
        ),
        n_trials=n,
    )


def _storage(url: str, kind: str):
    import optuna

    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url))
    return url


def optuna_rate(kind: str, trials: int, procs: int, tmp: str) -> float:
    """Trials/s of ``procs`` Optuna processes sharing one storage: trials / (last end - first start)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = os.path.join(tmp, "optuna.log") if kind == "journal" else f"sqlite:///{os.path.join(tmp, 'optuna.db')}"
    optuna.create_study(study_name="b", storage=_storage(url, kind))
    ctx = mp.get_context("fork")
    ps = [ctx.Process(target=_optuna_worker, args=(url, kind, trials // procs)) for _ in range(procs)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(timeout=600)
        if p.is_alive():
            p.kill()
    st = optuna.load_study(study_name="b", storage=_storage(url, kind)).get_trials(deepcopy=False)
    done = [t for t in st if t.datetime_complete is not None]
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    return len(done) / span


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    # rdhpo gets more trials than Optuna: its study wall time includes start-up (workers' Hello,
    # the first dispatches, ~0.1-0.2 s) which 200 trials at > 1000/s would not amortise
    trials = 2000 if a.quick else 5000
    optuna_trials = 300 if a.quick else 1000
    rates = {}
    with tempfile.TemporaryDirectory(prefix="rdhpo-bench-") as tmp:
        for n in (4, 16):
            r = run_mpi_study(n, "trivial", trials, os.path.join(tmp, f"d{n}.h5"), timeout=300)
            r0 = next((x for x in r["ranks"] if x["rank"] == 0), None)
            if r0 is None or not r0.get("study_wall_s"):
                emit(B, "error", r["rc"], "exit code", system="rdhpo", ranks=n)
                continue
            rates[f"rdhpo-{n}"] = trials / r0["study_wall_s"]
            emit(
                B,
                "trials_per_s",
                round(rates[f"rdhpo-{n}"], 1),
                "trials/s",
                system="rdhpo",
                ranks=n,
                workers=n - 1,
                trials=trials,
            )
        try:
            import optuna  # noqa: F401

            have_optuna = True
        except ImportError:
            have_optuna = False
            emit(B, "skipped", 0, "", system="optuna", note="optuna not installed (pip install optuna)")
        if have_optuna:
            for kind in ("journal", "sqlite"):
                sub = os.path.join(tmp, kind)
                os.makedirs(sub)
                rates[f"optuna-{kind}"] = optuna_rate(kind, optuna_trials, 4, sub)
                emit(
                    B,
                    "trials_per_s",
                    round(rates[f"optuna-{kind}"], 1),
                    "trials/s",
                    system=f"optuna-{kind}",
                    processes=4,
                    trials=optuna_trials,
                )
        for mine in ("rdhpo-4", "rdhpo-16"):
            for other in ("optuna-journal", "optuna-sqlite"):
                if mine in rates and other in rates:
                    emit(B, "ratio", round(rates[mine] / rates[other], 2), "x", numerator=mine, denominator=other)
        # idle workers: 4 ranks, one 3 s trial -> two workers wait the whole study
        r = run_mpi_study(4, "sleep", 1, os.path.join(tmp, "idle.h5"), trial_time=3.0, timeout=120)
        busy = {x["rank"] for x in r["ranks"] if x["rank"] == 0}
        idle = [x for x in r["ranks"] if x["rank"] not in busy]
        from rdhpo_hpc.api import load_results

        try:
            ran = {a_["rank"] for a_ in load_results(os.path.join(tmp, "idle.h5")).attempts}
        except Exception:  # noqa: BLE001
            ran = set()
        idle = [x for x in idle if x["rank"] not in ran]
        if idle:
            pct = max(100 * x["cpu_s"] / x["wall_s"] for x in idle)
            emit(
                B,
                "idle_worker_cpu",
                round(pct, 2),
                "% of a core",
                ranks=4,
                idle_workers=len(idle),
                wall_s=round(idle[0]["wall_s"], 2),
                note="worst idle worker; includes its gossip thread",
            )
        r0 = next((x for x in r["ranks"] if x["rank"] == 0), None)
        if r0:
            emit(B, "coordinator_cpu_while_waiting", round(100 * r0["cpu_s"] / r0["wall_s"], 2), "% of a core", ranks=4)
    return 0


if __name__ == "__main__":
    sys.exit(main())
