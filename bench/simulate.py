"""Simulator: the real coordinator loop, optimizer and scheduler, with thousands of simulated
workers in simulated time.

    python -m bench.simulate --workers 1000 --trials 20000 [--optimizer asha] [--fail 0.02] [--json]

What is real: :class:`rdhpo_hpc.coordinator.CoordinatorLoop` and everything under it (trial
table, message handlers, dispatch, pipelining, prefetch, the end of the study), and the
optimizer + scheduler of ``rdhpo_hpc.strategy.make_strategy``.  What is simulated: the node (a
:class:`SimNode` in place of :class:`rdhpo_hpc.node.Node`, same protocol: ``coordination/
port.py``), the workers and time.  Records are counted, not kept (``--journal``: also written to
a real JSON-lines journal, whose cost is then part of the loop's).

* A worker says ``Hello`` at a random time in the first 0.1 s, then runs the tasks it is sent
  one after the other, in arrival order (as a real worker does).  An attempt's full-budget
  duration is drawn from a log-normal distribution (``--median``, ``--sigma``); with a numeric
  budget (multi-fidelity schedulers, PBT) it reports after every epoch (``epoch = duration x 1 /
  max_budget``) and, at a decision step (``decide_from`` of its Task / the latest Decision: the
  scheduler's next rung), waits for the decision, as a real worker does (``--wait-every-report``:
  at every report, the protocol before decision steps); a stopped attempt ends PRUNED (a stop
  that arrives while it trains: at the end of that epoch).  Values come from a smooth test
  function of the params with a learning curve over the epochs.
* Messages take ``--latency`` seconds each way.
* Failures: ``--fail`` of the workers crash (ULFM-like: the coordinator hears ``PeerDown(mpi-failure)``
  ``--detect`` seconds later), ``--hang`` of them hang (``gossip-timeout`` after ``--t-fail``, killed
  at the end).  Each failure happens when a random fraction (0..0.9) of the trials has ended,
  so failures are spread over the study whatever its length.
* Time: the clock moves only while the coordinator waits for a message.  By default the CPU
  time the loop spends between two waits is added to the clock, so a slow coordinator (a slow
  optimizer) delays its replies as it would on a real machine; the workers' events that fell due
  meanwhile happen at their own times (their messages wait in the coordinator's inbox); with
  ``--no-charge`` the run is deterministic (the same seed gives the same records).

Output: utilisation = busy worker-time / available worker-time (a worker is available from the
start until it fails or the study ends; busy while it runs an attempt, whether it counts or not,
except while it waits for a decision: ``decision_wait_share`` is that waiting's share of the
attempts' time); ``useful_utilisation`` counts only attempts whose result counted; ``utilisation_until_last_start``
stops the clock when the last new trial was dispatched, i.e. leaves out the tail where the last
trials run and the others have nothing left to do; a re-run of an attempt lost late in the study
is part of that tail); ``ideal_utilisation`` is what a coordinator
that costs nothing would reach with the same attempts, their compute time (:func:`ideal_utilisation`:
the tail is the workload's) and ``utilisation_vs_ideal`` the share of it this one keeps), and coordinator CPU per
trial = the process CPU time of the whole simulation / trials (simulated workers included:
an upper bound; ``loop_cpu_ms_per_trial`` is the loop's own share; ``memory_kb_per_trial``: growth
of the process's resident memory over the run / trials); ``median_attempt_s``: the median compute
time of the attempts that ran (with ASHA most stop at the first rung: ``--median`` is the full
budget's).  ``--json``: one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import heapq
import io
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import rdhpo_hpc as rd
from rdhpo_hpc.api import build_config
from rdhpo_hpc.coordinator import CoordinatorLoop
from rdhpo_hpc.messages import Decision, Hello, PeerDown, Report, Result, Stop, Task
from rdhpo_hpc.storage.base import MultiStore, Store
from rdhpo_hpc.storage.journal import JournalStore
from rdhpo_hpc.strategy import make_strategy

SPACE = rd.Space(
    x=rd.Float(0.0, 1.0),
    y=rd.Float(-1.0, 1.0),
    lr=rd.Float(1e-4, 1e-1, log=True),
    width=rd.Int(16, 256, log=True),
    act=rd.Categorical(["relu", "tanh", "gelu"]),
)

#: per optimizer: options that make the simulated study sensible (override with --option k=v)
DEFAULT_OPTIONS: dict[str, dict] = {
    "asha": {"min_budget": 1, "max_budget": 27, "eta": 3},
    "sh": {"min_budget": 1, "max_budget": 27, "eta": 3},
    "hyperband": {"min_budget": 1, "max_budget": 27, "eta": 3},
    "bohb": {"min_budget": 1, "max_budget": 27, "eta": 3},
    "pbt": {"population": 64, "interval": 3, "max_budget": 30},
    "bayes": {"n_initial": 10},
}


def loss_of(params: dict) -> float:
    """A smooth test function of the params (minimum 0 near x=0.3, y=0, lr=3e-3, width=90)."""
    act = {"relu": 0.0, "tanh": 0.05, "gelu": 0.02}.get(params.get("act"), 0.1)
    return (
        (params["x"] - 0.3) ** 2
        + params["y"] ** 2
        + (math.log10(params["lr"]) + 2.5) ** 2 / 4
        + (math.log2(params["width"]) - 6.5) ** 2 / 20
        + act
    )


def curve(params: dict, step: float) -> float:
    """The value after ``step`` epochs: approaches loss_of(params) like 1 / sqrt(step)."""
    return loss_of(params) + 0.5 / math.sqrt(max(step, 1e-9))


def never_called(config: dict, ctx: Any) -> float:  # the objective lives in the simulated workers
    raise RuntimeError("simulated")


# -- the simulated world ---------------------------------------------------------------------------
class SimStore(Store):
    """Counts records instead of keeping them (100,000 trials are millions of records); checks
    that every trial is told exactly once; optionally a digest of every record, in order."""

    def __init__(self, digest: bool = False) -> None:
        self.kinds: collections.Counter = collections.Counter()
        self.tells: collections.Counter = collections.Counter()
        self.attempts: collections.Counter = collections.Counter()
        self.events: collections.Counter = collections.Counter()
        self.counted: set = set()  # (trial, attempt) whose result counted
        self.created: set = set()  # trial ids dispatched or asked
        self.last_start = 0.0  # when the last new trial was dispatched (not a re-run of a lost attempt)
        self.started: set = set()  # trial ids dispatched at least once
        self.end: Optional[dict] = None
        self._hash = hashlib.sha256() if digest else None

    def append(self, record: dict) -> None:
        k = record["k"]
        self.kinds[k] += 1
        if k == "tell":
            self.tells[record["trial_id"]] += 1
        elif k == "attempt":
            self.attempts[record["state"]] += 1
            if record["state"] != "LOST":
                self.counted.add((record["trial_id"], record["attempt"]))
        elif k == "event":
            self.events[record["kind"]] += 1
        elif k in ("dispatch", "ask"):
            if k == "ask" or record["new"]:
                self.created.add(record["trial_id"])
            if k == "dispatch" and record["trial_id"] not in self.started:  # its first attempt
                self.started.add(record["trial_id"])  # (asked ahead: an ask, then dispatch new=False)
                self.last_start = record["time"]
        elif k == "end":
            self.end = dict(record)
        if self._hash is not None:
            self._hash.update(json.dumps(record, sort_keys=True, default=str).encode())

    def records(self) -> list[dict]:
        return []

    def digest(self) -> str:
        return self._hash.hexdigest() if self._hash is not None else ""


class SimTransport:
    reports_failures = True

    def __init__(self) -> None:
        self.crashed: set[int] = set()  # failures the runtime reported (ULFM)

    def failed(self) -> set[int]:
        return self.crashed

    def host(self) -> str:
        return "sim"

    def shrink_method(self, exclude: set) -> str:
        return "shrink" if set(exclude) <= self.crashed else "create_group"


@dataclass
class SimWorker:
    rank: int
    alive: bool = True  # False once crashed or hung (it does nothing more)
    queue: collections.deque = field(default_factory=collections.deque)  # tasks not started
    task: Optional[Task] = None  # the attempt it runs
    token: int = 0  # invalidates the events of an abandoned attempt
    started: float = 0.0
    step: int = 0  # epochs done in this attempt
    last_value: Optional[float] = None
    epoch: float = 0.0  # seconds per epoch of this attempt
    last_step: int = 0  # the attempt's final epoch (0: no reports)
    awaiting: bool = False  # it reported and waits for the decision
    decide_from: Optional[int] = 0  # it waits at its first report with step >= this (None: never)
    wait_start: float = 0.0
    waited: float = 0.0  # seconds this attempt waited for decisions
    waits: list = field(default_factory=list)  # (start, end) of every wait for a decision
    stopped: set = field(default_factory=set)  # attempts the coordinator told to stop
    busy: float = 0.0  # seconds spent running attempts
    useful: float = 0.0  # ... whose result counted
    down_at: Optional[float] = None  # when it crashed / hung
    spans: list = field(default_factory=list)  # (trial, attempt, start, end, waited) of its attempts


class Sim:
    """Discrete events in simulated time; the coordinator pulls them through :class:`SimNode`."""

    def __init__(
        self,
        workers: int,
        trials: int,
        rng: random.Random,
        median: float,
        sigma: float,
        latency: float,
        detect: float,
        t_fail: float,
        fail: float,
        hang: float,
        ref_budget: Optional[float],
        charge: float,
        wait_every_report: bool = False,
    ) -> None:
        self.now = 0.0
        self.rng = rng
        self.median, self.sigma, self.latency, self.detect, self.t_fail = median, sigma, latency, detect, t_fail
        self.ref_budget = ref_budget
        self.charge = charge
        self.wait_every_report = wait_every_report  # the protocol before decision steps
        self._events: list = []
        self._seq = 0
        self.workers = [SimWorker(r) for r in range(workers + 1)]  # index 0: the coordinator
        self.budget_of: dict[int, float] = {}
        self.results_sent = 0
        self.messages = 0
        self.killed: list = []
        n_fail, n_hang = round(fail * workers), round(hang * workers)
        doomed = rng.sample(range(1, workers + 1), min(workers, n_fail + n_hang))
        # (results ended before it, rank, kind): a failure happens once that many trials ended
        self.failures = sorted(
            (int(rng.uniform(0, 0.9) * trials), r, "crash" if i < n_fail else "hang") for i, r in enumerate(doomed)
        )
        self.node = SimNode(self, workers + 1)
        for w in self.workers[1:]:
            self.at(rng.uniform(0.0, 0.1), self._hello, w)
        self.loop_cpu = 0.0
        self._cpu_mark: Optional[float] = None

    def clock(self) -> float:
        return self.now

    def at(self, t: float, fn: Callable, *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, self._seq, fn, args))

    def run_until(self, t: float, inbox: collections.deque) -> None:
        """Process the events due by ``t``; stop early at the first one that gives the
        coordinator a message."""
        ev = self._events
        while ev and ev[0][0] <= t:
            when, _, fn, args = heapq.heappop(ev)
            now, self.now = self.now, when  # at its own time: a busy loop delays messages, not work
            fn(*args)
            self.now = max(now, when)
            if inbox:
                return
        self.now = max(self.now, t)

    # -- CPU time of the coordinator (between two waits) -----------------------------------------
    def enter_wait(self) -> None:
        if self._cpu_mark is not None:
            spent = time.thread_time() - self._cpu_mark
            self.loop_cpu += spent
            if self.charge:
                self.now += spent * self.charge

    def leave_wait(self) -> None:
        self._cpu_mark = time.thread_time()  # the loop's thread only, as LoadMeter measures it

    # -- messages ---------------------------------------------------------------------------------
    def to_coordinator(self, src: int, msg: Any) -> None:
        self.messages += 1
        self.at(self.now + self.latency, self.node.inbox.append, (src, msg))

    def to_worker(self, dest: int, msg: Any) -> None:
        w = self.workers[dest]
        if w.alive:
            self.messages += 1
            self.at(self.now + self.latency, self._deliver, w, msg)

    def _hello(self, w: SimWorker) -> None:
        if w.alive:
            self.to_coordinator(w.rank, Hello("sim", {"device": "sim"}, 100000 + w.rank))

    def _deliver(self, w: SimWorker, msg: Any) -> None:
        if not w.alive:
            return
        if isinstance(msg, Task):
            w.queue.append(msg)
            self.budget_of[msg.trial_id] = msg.budget
            if w.task is None:
                self._start(w)
        elif isinstance(msg, Decision):
            key = (msg.trial_id, msg.attempt)
            if not msg.proceed:
                w.stopped.add(key)
            if w.awaiting and (w.task.trial_id, w.task.attempt) == key:  # the answer to its report
                self._waited(w)
                if msg.proceed and key not in w.stopped:
                    w.decide_from = 0 if self.wait_every_report else msg.decide_from
                    self.at(self.now + w.epoch, self._epoch, w, w.token)
                else:
                    self._end(w, "PRUNED", w.last_value)
        elif isinstance(msg, Stop):
            w.alive = False

    # -- one attempt ------------------------------------------------------------------------------
    def _start(self, w: SimWorker) -> None:
        task = w.queue.popleft()
        w.task, w.token, w.started, w.last_value = task, w.token + 1, self.now, None
        w.decide_from, w.waited = 0 if self.wait_every_report else task.decide_from, 0.0
        full = self.median * math.exp(self.sigma * self.rng.gauss(0.0, 1.0))
        b = task.budget
        if isinstance(b, (int, float)) and not isinstance(b, bool):
            ref = self.ref_budget or float(b)
            first = self.budget_of.get(task.checkpoint_from, 0) if task.checkpoint_from is not None else 0
            w.step, w.last_step = int(first or 0), max(int(math.ceil(b)), 1)
            w.step = min(w.step, w.last_step - 1)
            w.epoch = full / ref
            self.at(self.now + w.epoch, self._epoch, w, w.token)
        else:
            w.step = w.last_step = 0
            self.at(self.now + full, self._finish, w, w.token)

    def _epoch(self, w: SimWorker, token: int) -> None:
        if not w.alive or w.token != token:
            return
        task = w.task
        key = (task.trial_id, task.attempt)
        w.step += 1
        value = curve(task.params, w.step)
        if key in w.stopped:
            w.last_value = value
            self._end(w, "PRUNED", value)
        elif w.step >= w.last_step:
            self._end(w, "COMPLETE", value)
        else:
            w.last_value = value
            wait = w.decide_from is not None and w.step >= w.decide_from
            self.to_coordinator(w.rank, Report(task.trial_id, task.attempt, w.step, value, {}, wait))
            if wait:
                w.awaiting, w.wait_start = True, self.now
            else:
                self.at(self.now + w.epoch, self._epoch, w, w.token)

    def _waited(self, w: SimWorker) -> None:
        """The decision ``w`` waited for arrived (or it failed waiting)."""
        if w.awaiting:
            w.awaiting = False
            w.waited += self.now - w.wait_start
            w.waits.append((w.wait_start, self.now))

    def _finish(self, w: SimWorker, token: int) -> None:
        if w.alive and w.token == token:
            self._end(w, "COMPLETE", loss_of(w.task.params))

    def _end(self, w: SimWorker, state: str, value: Optional[float]) -> None:
        task = w.task
        w.busy += self.now - w.started - w.waited
        w.spans.append((task.trial_id, task.attempt, w.started, self.now, w.waited))
        self.to_coordinator(
            w.rank,
            Result(
                task.trial_id,
                task.attempt,
                state,
                value,
                {"last_step": w.step} if w.step else {},
                "",
                {"start": w.started, "end": self.now},
            ),
        )
        w.task, w.awaiting = None, False
        w.token += 1
        self.results_sent += 1
        while self.failures and self.failures[0][0] <= self.results_sent:
            _, rank, kind = self.failures.pop(0)
            self._fail(self.workers[rank], kind)
        if w.alive and w.queue:
            self._start(w)

    def _fail(self, w: SimWorker, kind: str) -> None:
        if not w.alive:
            return
        w.alive = False
        w.down_at = self.now
        if w.task is not None:
            self._waited(w)
            w.busy += self.now - w.started - w.waited
            w.spans.append((w.task.trial_id, w.task.attempt, w.started, self.now, w.waited))
            w.task = None
        if kind == "crash":
            self.at(self.now + self.detect, self._verdict, w.rank, "mpi-failure", self.detect)
        else:
            self.at(self.now + self.t_fail, self._verdict, w.rank, "gossip-timeout", self.t_fail)

    def _verdict(self, rank: int, cause: str, latency: float) -> None:
        self.node.declare_dead(rank, cause == "mpi-failure")
        self.node.inbox.append((rank, PeerDown(rank, cause, latency)))

    def kill(self, targets: list, host: str) -> None:
        self.killed.extend(targets)


class SimNode:
    """The coordinator's node in the simulation (the ``NodePort`` of ``coordination/port.py``)."""

    def __init__(self, sim: Sim, size: int) -> None:
        self.sim, self.rank, self.size = sim, 0, size
        self.transport = SimTransport()
        self.unreachable: set[int] = set()
        self.inbox: collections.deque = collections.deque()
        self._dead: set[int] = set()
        self._alive: Optional[list[int]] = None
        self.shrunk: Optional[dict] = None

    def recv(self, timeout: float) -> Optional[tuple[int, Any]]:
        sim = self.sim
        sim.enter_wait()
        if not self.inbox:
            sim.run_until(sim.now, self.inbox)  # what arrived while the loop was busy
        if not self.inbox and timeout > 0:
            sim.run_until(sim.now + timeout, self.inbox)
        got = self.inbox.popleft() if self.inbox else None
        sim.leave_wait()
        return got

    def send(self, dest: int, msg: Any) -> None:
        self.sim.to_worker(dest, msg)

    def send_via(self, relay: int, dest: int, msg: Any) -> None:
        self.sim.to_worker(dest, msg)

    def declare_dead(self, rank: int, reported: bool) -> None:
        self._dead.add(rank)
        self._alive = None
        if reported:
            self.transport.crashed.add(rank)

    def alive(self) -> list[int]:
        if self._alive is None:
            self._alive = [r for r in range(self.size) if r not in self._dead]
        return list(self._alive)

    def is_alive(self, rank: int) -> bool:
        return rank not in self._dead

    def relay_for(self, dest: int) -> Optional[int]:
        return None

    def shrink(self, exclude: set, timeout: float, method: str = "") -> Optional[dict]:
        self.shrunk = {"method": method, "size": self.size - len(exclude), "duration": 0.0}
        return self.shrunk


# -- one run ---------------------------------------------------------------------------------------
def simulate(
    workers: int = 100,
    trials: int = 1000,
    optimizer: str = "random",
    fail: float = 0.0,
    hang: float = 0.0,
    median: float = 60.0,
    sigma: float = 0.5,
    latency: float = 0.0005,
    detect: float = 0.05,
    t_fail: float = 10.0,
    seed: int = 0,
    charge: float = 1.0,
    options: Optional[dict] = None,
    digest: bool = False,
    journal: Optional[str] = None,
    loop_class: Callable[..., Any] = CoordinatorLoop,
    wait_every_report: bool = False,
) -> dict:
    """Run one simulated study; returns the measurements (see the module docstring).
    ``charge``: the share of the loop's CPU time added to the clock (0: none; 0.5: a loop twice
    as fast); ``journal``: also write the real JSON-lines journal to this path (its cost is the
    coordinator's on a real run); ``loop_class``: another loop to compare against."""
    cpu0, wall0, rss0 = time.process_time(), time.perf_counter(), _rss_kb()
    opts = {**DEFAULT_OPTIONS.get(optimizer, {}), **(options or {})}
    ft = {"t_fail": t_fail, "gossip_interval": min(0.5, t_fail / 4), "end_grace": 1.0, "max_retries": 2}
    cfg = build_config(
        never_called, SPACE, optimizer, trials, "minimize", seed, None, {**opts, **ft, "progress_interval": 1e9}
    )
    opt, sched = make_strategy(cfg.optimizer, cfg.space, cfg.direction, cfg.seed, **cfg.options)
    ref = getattr(sched, "max_budget", None)
    sim = Sim(
        workers,
        trials,
        random.Random(seed),
        median,
        sigma,
        latency,
        detect,
        t_fail,
        fail,
        hang,
        float(ref) if isinstance(ref, (int, float)) else None,
        charge,
        wait_every_report,
    )
    counts = SimStore(digest)
    store: Store = counts if journal is None else MultiStore(JournalStore(journal), counts)
    # the loop's CPU as the simulated clock was charged with it (none with --no-charge: deterministic)
    kwargs = {"kill": sim.kill, "cpu": lambda: sim.loop_cpu * charge} if loop_class is CoordinatorLoop else {}
    loop = loop_class(cfg, sim.node, store, opt, sched, clock=sim.clock, out=io.StringIO(), start_time=0.0, **kwargs)
    code = loop.run()
    store.close()
    store = counts
    end = sim.now
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    rss = _rss_kb() - rss0
    avail = sum((w.down_at if w.down_at is not None else end) for w in sim.workers[1:])
    busy = sum(w.busy for w in sim.workers[1:])
    useful = sum(e - s - d for w in sim.workers[1:] for tid, att, s, e, d in w.spans if (tid, att) in store.counted)
    cut = store.last_start  # until the last attempt started: without the tail of the last ones
    avail_cut = sum(min(w.down_at if w.down_at is not None else end, cut) for w in sim.workers[1:])
    busy_cut = sum(max(0.0, min(e, cut) - s) for w in sim.workers[1:] for _, _, s, e, _ in w.spans)
    busy_cut -= sum(max(0.0, min(e, cut) - s) for w in sim.workers[1:] for s, e in w.waits)
    waited = sum(d for w in sim.workers[1:] for *_, d in w.spans)
    told = len(store.tells)
    computed = [e - s - d for w in sim.workers[1:] for _, _, s, e, d in w.spans]  # per attempt
    ideal = ideal_utilisation(computed, workers)
    util = busy / avail if avail > 0 else 0.0
    complete = (store.end or {}).get("end_status") == "complete"
    return {
        "workers": workers,
        "trials": told,
        "max_trials": trials,
        "optimizer": optimizer,
        "utilisation": round(util, 4),
        "ideal_utilisation": round(ideal, 4),
        "utilisation_vs_ideal": round(util / ideal, 4) if ideal > 0 else 0.0,
        "useful_utilisation": round(useful / avail, 4) if avail > 0 else 0.0,
        "utilisation_until_last_start": round(busy_cut / avail_cut, 4) if avail_cut > 0 else 0.0,
        "decision_wait_share": round(waited / (busy + waited), 4) if busy + waited > 0 else 0.0,
        "coordinator_cpu_ms_per_trial": round(1e3 * cpu / max(told, 1), 4),
        "loop_cpu_ms_per_trial": round(1e3 * sim.loop_cpu / max(told, 1), 4),
        "memory_kb_per_trial": round(rss / max(told, 1), 3),
        "exit_code": int(code),
        "end_status": (store.end or {}).get("end_status"),
        "each_trial_once": set(store.tells.values()) <= {1} and (not complete or set(store.tells) == store.created),
        "created": len(store.created),
        "attempts": dict(store.attempts),
        "crashed": round(fail * workers),
        "hung": round(hang * workers),
        "killed": len(sim.killed),
        "events": dict(store.events),
        "messages": sim.messages,
        "sim_seconds": round(end, 3),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "median_s": median,
        "median_attempt_s": round(statistics.median(computed), 3) if computed else 0.0,
        "sigma": sigma,
        "fail": fail,
        "hang": hang,
        "seed": seed,
        "charge": charge,
        "wait_every_report": wait_every_report,
        "journal": journal is not None,
        **({"digest": store.digest()} if digest else {}),
    }


def ideal_utilisation(durations: list[float], workers: int) -> float:
    """Utilisation of the same attempts (in the order they started) on ``workers`` workers by a
    coordinator that costs nothing: no latency, no failures, each attempt to the first free worker.
    What is left below 1 is the workload's own tail (the last attempts run while the others have
    nothing left to do); ``utilisation / ideal`` is the share that the coordinator keeps."""
    if not durations or workers < 1:
        return 0.0
    free = [0.0] * workers
    for d in durations:
        heapq.heapreplace(free, free[0] + d)
    return sum(durations) / (workers * max(free))


def _rss_kb() -> float:
    """Resident memory of this process now (KiB), from /proc; 0 where there is none."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024
    except (OSError, ValueError, IndexError):
        return 0.0


def _option(text: str) -> tuple[str, Any]:
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, nargs="+", default=[1000])
    p.add_argument("--trials", type=int, default=20000)
    p.add_argument("--optimizer", nargs="+", default=["random"], help="random, asha, bayes, pbt, ...")
    p.add_argument("--fail", type=float, default=0.02, help="fraction of workers that crash (default 0.02)")
    p.add_argument("--hang", type=float, default=0.0, help="fraction of workers that hang")
    p.add_argument(
        "--median",
        type=float,
        default=60.0,
        help="median seconds of a full-budget attempt (a multi-fidelity scheduler stops most attempts"
        " earlier: the output's median attempt is what ran)",
    )
    p.add_argument("--sigma", type=float, default=0.5, help="log-normal sigma of trial durations")
    p.add_argument("--latency", type=float, default=0.0005, help="one-way message latency, s")
    p.add_argument("--detect", type=float, default=0.05, help="crash detection latency (ULFM), s")
    p.add_argument("--t-fail", type=float, default=10.0, help="hang detection (gossip), s")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-charge",
        dest="charge",
        action="store_const",
        const=0.0,
        help="do not add the loop's CPU time to the simulated clock (deterministic)",
    )
    p.add_argument(
        "--charge",
        type=float,
        default=1.0,
        help="share of the loop's CPU time added to the clock (default 1; 0.5: what if it were twice as fast)",
    )
    p.set_defaults(charge=1.0)  # both options above set it
    p.add_argument(
        "--option",
        action="append",
        default=[],
        type=_option,
        metavar="KEY=VALUE",
        help="strategy option, e.g. --option eta=4 (JSON values)",
    )
    p.add_argument(
        "--journal",
        action="store_true",
        help="write the real journal (to a temporary file): its CPU cost is part of the loop's",
    )
    p.add_argument(
        "--wait-every-report",
        action="store_true",
        help="workers wait for a decision at every report (the protocol before decision steps)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per run")
    a = p.parse_args(argv)
    for n in a.workers:
        for name in a.optimizer:
            with tempfile.TemporaryDirectory(prefix="rdhpo-sim-") as tmp:
                r = simulate(
                    n,
                    a.trials,
                    name,
                    a.fail,
                    a.hang,
                    a.median,
                    a.sigma,
                    a.latency,
                    a.detect,
                    a.t_fail,
                    a.seed,
                    a.charge,
                    dict(a.option),
                    journal=os.path.join(tmp, "sim.journal") if a.journal else None,
                    wait_every_report=a.wait_every_report,
                )
            if a.json:
                print(json.dumps(r), flush=True)
            else:
                print(
                    f"{name:>10} workers {n:>6} trials {r['trials']:>7} (median attempt "
                    f"{r['median_attempt_s']:.2f} s): utilisation {r['utilisation']:.3f} "
                    f"(ideal {r['ideal_utilisation']:.3f}: {r['utilisation_vs_ideal']:.3f} of it; "
                    f"useful {r['useful_utilisation']:.3f}, until the last start "
                    f"{r['utilisation_until_last_start']:.3f}; waiting for decisions "
                    f"{r['decision_wait_share']:.3f}), coordinator CPU "
                    f"{r['coordinator_cpu_ms_per_trial']:.3f} ms/trial (loop {r['loop_cpu_ms_per_trial']:.3f}), "
                    f"memory {r['memory_kb_per_trial']:.2f} KiB/trial, "
                    f"exit {r['exit_code']}, each trial once: {r['each_trial_once']}, "
                    f"{r['sim_seconds']:.0f} s simulated in {r['wall_s']:.1f} s",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
