"""Resume of a large study: seconds until the coordinator is ready to dispatch.

    python -m bench.resume --trials 100000 --optimizer random asha bayes [--workers 1000] [--json]

Per optimizer:

1. **Write** the study: the study record, then the real coordinator loop, optimizer and scheduler
   with simulated workers in simulated time (:func:`bench.simulate.simulate`, 2% of the workers
   crash) appending to the real journal ``OUTPUT.journal``; the HDF5 view is built from it.
   ``bayes`` cannot ask 100,000 times in a bench (each ask costs milliseconds to a second):
   while writing, its ``_suggest`` draws at random from its own RNG (asks, prefetch, records and
   snapshots are the real ones), so the journal has the real shape and snapshots.
2. **resume** — :func:`rdhpo_hpc.launch.start_coordinator` with ``resume=True`` on the finished
   study, as ``rdhpo run --resume`` does: everything before the first dispatch (journal read,
   HDF5 view caught up, strategy built, replay), with the time of each part.
3. **takeover** — the same with ``takeover_from`` on the journal of a coordinator killed at 90%
   of the study (trials running on live workers are adopted) whose HDF5 view missed its last
   2,000 records (rows appended on catch-up).
4. **full** — the replay alone without the snapshot records and judging every report again
   (what an old journal gets: every suggestion asked again; not for ``bayes``) and whether its
   state, the answers to the unfinished trials' next reports and the next suggestions equal those
   of the fast replay (``exact``).

``--first-ask``: also time the first real ask after the resume (model-based optimizers: one
suggestion at this many observations, issue 16 item 2's concern, not the resume's).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Any, Iterator, Optional

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import io

from bench.simulate import DEFAULT_OPTIONS, SPACE, never_called, simulate
from rdhpo_hpc import launch
from rdhpo_hpc.api import build_config
from rdhpo_hpc.coordination import records as rec
from rdhpo_hpc.coordination.replay import replay
from rdhpo_hpc.coordination.study import Study
from rdhpo_hpc.coordination.table import TrialTable
from rdhpo_hpc.coordinator import CoordinatorLoop
from rdhpo_hpc.optimizers.bayes import BayesOptimizer
from rdhpo_hpc.storage import hdf5
from rdhpo_hpc.storage.journal import JournalStore, journal_path, read_journal
from rdhpo_hpc.strategy import make_strategy


class _Transport:
    def failed(self) -> set:
        return {0}  # the old coordinator: MPI saw it fail (nothing to fence)

    def host(self) -> str:
        return "bench"


class StubNode:
    """What the coordinator needs from a node before its first dispatch; every rank alive."""

    def __init__(self, size: int, rank: int = 0) -> None:
        self.size, self.rank, self.transport, self.unreachable = size, rank, _Transport(), set()

    def is_alive(self, rank: int) -> bool:
        return rank != 0 or self.rank == 0

    def alive(self) -> list[int]:
        return [r for r in range(self.size) if self.is_alive(r)]


def config(optimizer: str, trials: int, seed: int, output: Optional[str]) -> Any:
    opts = {**DEFAULT_OPTIONS.get(optimizer, {}), "progress_interval": 1e9}
    return build_config(never_called, SPACE, optimizer, trials, "minimize", seed, output, opts)


@contextmanager
def random_bayes_asks() -> Iterator[None]:
    """While writing: ``bayes`` suggests at random from its own RNG (a real ask per trial is hours)."""
    real = BayesOptimizer._suggest

    def cheap(self: BayesOptimizer, trial_id: int) -> Any:
        self._n_asked += 1
        return self.space.sample(self.rng)

    BayesOptimizer._suggest = cheap  # type: ignore[method-assign]
    try:
        yield
    finally:
        BayesOptimizer._suggest = real  # type: ignore[method-assign]


def write_study(out: str, optimizer: str, trials: int, workers: int, seed: int) -> dict:
    t0 = time.perf_counter()
    cfg = config(optimizer, trials, seed, out)
    store = JournalStore(journal_path(out))
    store.append(rec.study(cfg.describe(), 0.0))
    store.close()
    with random_bayes_asks() if optimizer == "bayes" else _nothing():
        sim = simulate(
            workers, trials, optimizer, fail=0.02, median=10.0, seed=seed, charge=False, journal=journal_path(out)
        )
    records = read_journal(journal_path(out))
    hdf5.rebuild_from_records(out, [r for r in records if r["k"] != "end"])
    return {
        "write_s": round(time.perf_counter() - t0, 1),
        "records": len(records),
        "trials_told": sim["trials"],
        "journal_mb": round(os.path.getsize(journal_path(out)) / 1e6, 1),
        "snapshots": sum(1 for r in records if r["k"] == "snapshot"),
    }


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextmanager
def timed_parts(parts: dict) -> Iterator[None]:
    """Time the journal read, the HDF5 catch-up and the replay inside ``start_coordinator``."""
    saved = (launch.existing_records, hdf5.catch_up, CoordinatorLoop.replay)

    def wrap(name: str, fn: Any) -> Any:
        def timed(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                parts[name] = round(parts.get(name, 0.0) + time.perf_counter() - t, 3)

        return timed

    launch.existing_records = wrap("read_s", saved[0])  # type: ignore[assignment]
    hdf5.catch_up = wrap("hdf5_s", saved[1])  # type: ignore[assignment]
    CoordinatorLoop.replay = wrap("replay_s", saved[2])  # type: ignore[method-assign]
    try:
        yield
    finally:
        launch.existing_records, hdf5.catch_up, CoordinatorLoop.replay = saved  # type: ignore[method-assign]


def time_start(cfg: Any, workers: int, takeover: bool) -> dict:
    parts: dict = {}
    node = StubNode(workers + 1, rank=1 if takeover else 0)
    t, cpu = time.perf_counter(), time.process_time()
    with timed_parts(parts):
        loop, store, old = launch.start_coordinator(
            cfg, node, resume=True, out=io.StringIO(), takeover_from=0 if takeover else None
        )
    ready, cpu = time.perf_counter() - t, time.process_time() - cpu
    r = loop.replayed
    out = {
        "ready_s": round(ready, 2),
        "ready_cpu_s": round(cpu, 2),
        **parts,
        "snapshot_trial": r.snapshot_trial if r else None,
        "asks_rerun": r.asked if r else None,
        "done": loop.table.done,
        "requeued": len(loop.requeue),
        "orphans": len(loop.orphans),
    }
    out["_loop"], out["_store"], out["_old"] = loop, store, old
    return out


def state_of(optimizer: str, cfg: Any, records: list, fast: bool) -> tuple[float, Any]:
    """Replay ``records`` into a fresh state — unless ``fast``, the full replay: without the
    snapshot records and with every report judged again by the scheduler (not its logged
    decision); returns (seconds, comparable state: table, optimizer, scheduler, the answers to
    the next reports of the unfinished trials, the next 3 suggestions)."""
    opt, sched = make_strategy(cfg.optimizer, cfg.space, cfg.direction, cfg.seed, **cfg.options)
    if not fast:
        records = [r for r in records if r.get("k") != "snapshot"]
        sched.replay_report = lambda tid, step, value, proceed: sched.on_report(tid, step, value)
    table, study = TrialTable(), Study(opt, sched)
    t = time.perf_counter()
    replay(records, table, study, {})
    dt = time.perf_counter() - t
    sched_state = sched.state() if hasattr(sched, "state") else None
    running = sorted(tid for tid, e in table.trials.items() if not e.done)
    answers = [[sched.on_report(tid, step, 1.0 / step) for step in (1, 3, 9)] for tid in running]
    nxt = []
    for tid in range(table.next_id, table.next_id + 3):
        s = study.suggest(tid)
        nxt.append(None if s is None else (s.params, s.budget))
    return dt, (
        table.next_id,
        table.done,
        list(table.requeue),
        len(opt.history),
        sorted(opt.pending),
        sched_state,
        answers,
        nxt,
    )


def bench_one(optimizer: str, trials: int, workers: int, seed: int, tmp: str, first_ask: bool) -> dict:
    out = os.path.join(tmp, f"{optimizer}.h5")
    row: dict = {"optimizer": optimizer, "trials": trials, "workers": workers}
    row.update(write_study(out, optimizer, trials, workers, seed))
    cfg = config(optimizer, trials, seed, out)
    records = read_journal(journal_path(out))

    res = time_start(cfg, workers, takeover=False)
    loop, store = res.pop("_loop"), res.pop("_store")
    res.pop("_old")
    if first_ask:
        t = time.perf_counter()
        loop.study.suggest(loop.table.next_id)
        res["first_ask_s"] = round(time.perf_counter() - t, 2)
    store.close()
    row["resume"] = res

    # takeover: a coordinator killed at 90%; its HDF5 view flushed up to 2,000 records earlier
    cut = [r for r in records if r["k"] != "end"][: int(len(records) * 0.9)]
    with open(journal_path(out), "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, separators=(",", ":")) + "\n" for r in cut)
    hdf5.rebuild_from_records(out, cut[:-2000])
    tk = time_start(cfg, workers, takeover=True)
    tk.pop("_store").close()
    tk.pop("_loop"), tk.pop("_old")
    row["takeover"] = tk

    if optimizer != "bayes":
        t_fast, s_fast = state_of(optimizer, cfg, cut, fast=True)
        t_full, s_full = state_of(optimizer, cfg, cut, fast=False)
        row["full"] = {"replay_s": round(t_full, 2), "fast_replay_s": round(t_fast, 2), "exact": s_fast == s_full}
    return row


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=100000)
    p.add_argument("--optimizer", nargs="+", default=["random", "asha", "bayes"])
    p.add_argument("--workers", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--first-ask", action="store_true", help="also time the first real ask after the resume")
    p.add_argument("--json", action="store_true", help="one JSON object per optimizer")
    a = p.parse_args(argv)
    for name in a.optimizer:
        with tempfile.TemporaryDirectory(prefix="rdhpo-resume-") as tmp:
            row = bench_one(name, a.trials, a.workers, a.seed, tmp, a.first_ask)
        if a.json:
            print(json.dumps(row), flush=True)
            continue
        r, t, f = row["resume"], row["takeover"], row.get("full")
        print(
            f"{name:>7} {row['trials']:>7} trials, {row['records']:>8} records ({row['journal_mb']} MB, "
            f"{row['snapshots']} snapshots): resume ready {r['ready_s']:.2f} s (CPU {r['ready_cpu_s']:.2f}; "
            f"read {r.get('read_s', 0):.2f}, "
            f"hdf5 {r.get('hdf5_s', 0):.2f}, replay {r.get('replay_s', 0):.2f}; {r['asks_rerun']} asks re-run) | "
            f"takeover at 90% ready {t['ready_s']:.2f} s (CPU {t['ready_cpu_s']:.2f}; read {t.get('read_s', 0):.2f}, "
            f"hdf5 {t.get('hdf5_s', 0):.2f}, replay "
            f"{t.get('replay_s', 0):.2f}, {t['orphans']} adopted)"
            + (
                f" | replay without snapshots {f['replay_s']:.2f} s vs {f['fast_replay_s']:.2f} s, exact {f['exact']}"
                if f
                else ""
            )
            + (f" | first ask {r['first_ask_s']:.2f} s" if "first_ask_s" in r else ""),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
