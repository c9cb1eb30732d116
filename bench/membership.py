"""Membership protocols in simulated time, N = 100 ... 100,000 ranks (a bench, not a test).

    .venv/bin/python -m bench.membership --n 100,1000,10000,100000 [--loss 0.01] [--json] [--quick]
    .venv/bin/python -m bench.membership --n 100,1000 --protocol gossip     # the old vector gossip
    .venv/bin/python -m bench.membership --real 8,16,32 --real-trials 700   # real mpirun studies

The real :mod:`rdhpo_hpc.membership` objects (``swim`` or ``gossip``), one per rank, exchange
their message bodies through an event queue: simulated clock, each message lost with probability
``--loss`` and delayed ``--delay`` x U(0.5, 1.5).  ``--faults`` ranks crash (silent for good) and
as many hang (silent, then resume with their old state after every live rank has declared them
dead: they must stay dead), staggered after a warm-up.  Bytes are the pickled size of the
``Gossip`` message the node would send (the node counts the same: ``Node.gossip_bytes``).

Printed per (protocol, N): detection time of a crash and of a hang from the fault to the verdict
at rank 0 (the coordinator) and at the last live rank (median and max over the faults); messages
and bytes sent per rank per second in the steady state (1 s to the end of the warm-up, no fault
yet: mean over ranks), the busiest rank over the whole run and the mean over the whole run (the
probes of failed ranks add to it); false verdicts (a live rank declared dead by anyone).

Prints one JSON line per run (the bench runner's format: ``bench``, ``metric``, ``value``, ``unit``),
then a Markdown table (not with ``--json``).

``--real N[,N...]`` runs a short study per N (sleep objective, ``--real-trials`` trials) under
``mpirun --with-ft ulfm -n N --oversubscribe`` with ``fault_tolerance.membership: swim``, checks that
every trial completed once, and prints the ranks' measured membership messages/bytes per second
(median; the node's direct coordinator pings counted apart), the share of probes that went
indirect, the distribution of direct-probe round trips and every ``rank-dead`` event, next to the
simulation of the same N and settings twice: with ``--delay``, and with one-way delays drawn from
the measured round trips / 2 (ratios real / simulated).  The real figures come twice: over each
node's whole life (start-up and shutdown included), and in the steady window in which every node
was up (``steady_*``: from per-second counts on the ranks' shared wall clock), which is what the
simulation measures.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import pickle
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rdhpo_hpc.membership import make
from rdhpo_hpc.messages import Gossip

TICK, MSG = 0, 1


@dataclass
class Fault:
    rank: int
    kind: str  # "crash" | "hang"
    at: float
    seen: int = 0  # live ranks that have declared it dead
    at_coordinator: Optional[float] = None
    at_all: Optional[float] = None


@dataclass
class Outcome:
    protocol: str
    n: int
    loss: float
    seconds: float  # simulated
    wall_s: float
    faults: list[Fault] = field(default_factory=list)
    msgs_per_rank_s: float = 0.0
    bytes_per_rank_s: float = 0.0
    max_bytes_rank_s: float = 0.0
    bytes_with_faults: float = 0.0  # mean over the live ranks, whole run (probes of the failed ranks too)
    max_msg_bytes: int = 0
    false_verdicts: int = 0  # (observer, live rank) pairs
    falsely_dead: int = 0  # distinct live ranks declared dead by someone
    revived: int = 0  # a dead verdict undone (must be 0)
    undetected: int = 0
    indirect_fraction: float = 0.0  # swim: probes that needed helpers
    suspicions: int = 0  # raised by a rank's own failed probe (swim): each one refuted, or a verdict
    min_slack_s: Optional[float] = None  # least time left before a verdict when a suspicion was lifted


def _wrap_overhead() -> int:
    """Bytes the Gossip wrapper adds to a pickled body (constant)."""
    body = (0, 1, -1, ())
    return len(pickle.dumps(Gossip(body, 0), pickle.HIGHEST_PROTOCOL)) - len(
        pickle.dumps(body, pickle.HIGHEST_PROTOCOL)
    )


def simulate(
    protocol: str,
    n: int,
    loss: float = 0.0,
    interval: float = 0.5,
    fanout: int = 2,
    t_fail: float = 10.0,
    faults: int = 3,
    delay: float = 0.005,
    warmup: float = 5.0,
    seed: int = 0,
    duration: float = 10.0,
    delays: Optional[list[float]] = None,
) -> Outcome:
    """One run; see the module docstring.  ``delays``: one-way delays to draw from (an empirical
    distribution, e.g. half the probe round trips of a real run) instead of ``delay`` x U(0.5, 1.5)."""
    wall0 = time.perf_counter()
    rng = random.Random(seed)
    nodes = [
        make(protocol, r, n, 0.0, interval, fanout, t_fail, rng=random.Random(rng.getrandbits(64))) for r in range(n)
    ]
    check_on_receive = protocol == "swim"  # the vector gossip's check is O(N): at its ticks only
    wrap = _wrap_overhead()
    victims = rng.sample(range(1, n), min(2 * faults, n - 1))
    flist = [Fault(r, "crash" if i % 2 == 0 else "hang", warmup + i * interval * 0.37) for i, r in enumerate(victims)]
    by_rank = {f.rank: f for f in flist}
    down: set[int] = set()  # crashed or hung right now
    live_count = n - len(flist)
    sent = [0] * n
    sent_bytes = [0] * n
    steady = [0, 0]  # messages, bytes sent by every rank in [1 s, warm-up end): no fault yet
    probes = [0, 0]  # swim: probes sent, probes that went indirect
    max_msg = 0
    false_pairs = 0
    falsely: set[int] = set()
    heap: list[tuple[float, int, int, int, int, Any]] = []
    counter = 0
    scheduled = [0.0] * n
    for r, m in enumerate(nodes):
        scheduled[r] = m.next_due()
        heap.append((scheduled[r], counter, TICK, r, -1, None))
        counter += 1
    heapq.heapify(heap)
    fault_i = 0
    t_end = warmup + (len(flist) * interval + 3 * t_fail + 30 * interval if flist else duration)  # upper bound
    resume_at: dict[int, float] = {}
    finish: Optional[float] = None
    t = 0.0

    def verdicts(obs: int, now: float) -> None:
        nonlocal false_pairs
        for v in nodes[obs].check(now):
            if obs in by_rank:
                continue  # a resumed hung rank's own stale verdicts: it is fenced anyway
            f = by_rank.get(v.rank)
            if f is None:
                false_pairs += 1
                falsely.add(v.rank)
                continue
            if obs == 0 and f.at_coordinator is None:
                f.at_coordinator = now
            f.seen += 1
            if f.seen == live_count and f.at_all is None:
                f.at_all = now

    def send(src: int, out: list, now: float) -> None:
        nonlocal counter, max_msg
        for dest, body in out:
            b = len(pickle.dumps(body, pickle.HIGHEST_PROTOCOL)) + wrap
            sent[src] += 1
            sent_bytes[src] += b
            if 1.0 <= now < warmup:
                steady[0] += 1
                steady[1] += b
            max_msg = max(max_msg, b)
            if loss and rng.random() < loss:
                continue
            d = rng.choice(delays) if delays else delay * (0.5 + rng.random())
            heapq.heappush(heap, (now + d, counter, MSG, dest, src, body))
            counter += 1

    def reschedule(r: int) -> None:
        nonlocal counter
        nd = nodes[r].next_due()
        if nd < scheduled[r] or scheduled[r] <= t:
            scheduled[r] = max(nd, t)
            heapq.heappush(heap, (scheduled[r], counter, TICK, r, -1, None))
            counter += 1

    while heap:
        t, _, kind, r, src, body = heapq.heappop(heap)
        while fault_i < len(flist) and flist[fault_i].at <= t:
            down.add(flist[fault_i].rank)
            fault_i += 1
        if flist and finish is None and fault_i == len(flist) and all(f.at_all is not None for f in flist):
            finish = t + 2.0  # hung ranks resume now; 2 s more to see that they stay dead
            for f in flist:
                if f.kind == "hang":
                    resume_at[f.rank] = t
        if t > t_end or (finish is not None and t > finish):
            break
        for h in [h for h, at in resume_at.items() if at <= t]:
            del resume_at[h]
            down.discard(h)
            scheduled[h] = t
            heapq.heappush(heap, (t, counter, TICK, h, -1, None))
            counter += 1
        if r in down:
            continue  # a crashed or hung rank does nothing; messages to it are lost
        m = nodes[r]
        if kind == TICK:
            if t < scheduled[r]:
                continue  # superseded by an earlier wake-up
            out = m.tick(t)
            if check_on_receive:
                probes[0] += sum(1 for _, b in out if b[0] == 0)  # swim.PING: only our own probes at a tick
                probes[1] += any(b[0] == 2 for _, b in out)  # swim.PING_REQ: this probe went indirect
            send(r, out, t)
            verdicts(r, t)
            scheduled[r] = t
            reschedule(r)
        else:
            out = m.receive(src, body, t)
            send(r, out, t)
            if check_on_receive:
                verdicts(r, t)
                reschedule(r)
    seconds = t
    alive_ranks = [r for r in range(n) if r not in by_rank]
    revived = sum(1 for f in flist for r in alive_ranks[:50] if nodes[r].is_alive(f.rank) and f.at_all is not None)
    out = Outcome(protocol, n, loss, seconds, time.perf_counter() - wall0, flist)
    out.msgs_per_rank_s = steady[0] / n / (warmup - 1.0)
    out.bytes_per_rank_s = steady[1] / n / (warmup - 1.0)
    out.bytes_with_faults = sum(sent_bytes[r] for r in alive_ranks) / len(alive_ranks) / seconds
    out.max_bytes_rank_s = max(sent_bytes[r] for r in alive_ranks) / seconds
    out.max_msg_bytes = max_msg
    out.false_verdicts, out.falsely_dead, out.revived = false_pairs, len(falsely), revived
    out.undetected = sum(1 for f in flist if f.at_all is None)
    out.indirect_fraction = probes[1] / probes[0] if probes[0] else 0.0
    out.suspicions = sum(getattr(m, "raised", 0) for m in nodes)
    slack = min((getattr(nodes[r], "slack", float("inf")) for r in alive_ranks), default=float("inf"))
    out.min_slack_s = None if slack == float("inf") else round(slack, 2)
    return out


def _quantile(xs: list[float], q: float) -> float:
    """The q-quantile of sorted ``xs`` (nearest rank)."""
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _stats(xs: list[float]) -> tuple[Optional[float], Optional[float]]:
    return (round(statistics.median(xs), 2), round(max(xs), 2)) if xs else (None, None)


def row(o: Outcome) -> dict:
    d: dict[str, Any] = {"bench": "membership", "metric": f"{o.protocol}_bytes_per_rank_n{o.n}", "unit": "B/s"}
    d.update(value=round(o.bytes_per_rank_s, 1), protocol=o.protocol, n=o.n, loss=o.loss)
    for kind in ("crash", "hang"):
        fs = [f for f in o.faults if f.kind == kind]
        d[f"{kind}_coord_med_s"], d[f"{kind}_coord_max_s"] = _stats(
            [f.at_coordinator - f.at for f in fs if f.at_coordinator is not None]
        )
        d[f"{kind}_all_med_s"], d[f"{kind}_all_max_s"] = _stats([f.at_all - f.at for f in fs if f.at_all is not None])
    d.update(
        msgs_per_rank_s=round(o.msgs_per_rank_s, 2),
        bytes_per_rank_s=round(o.bytes_per_rank_s, 1),
        max_bytes_rank_s=round(o.max_bytes_rank_s, 1),
        bytes_with_faults=round(o.bytes_with_faults, 1),
        max_msg_bytes=o.max_msg_bytes,
        false_verdicts=o.false_verdicts,
        falsely_dead=o.falsely_dead,
        undetected=o.undetected,
        indirect_fraction=round(o.indirect_fraction, 4),
        suspicions=o.suspicions,
        min_slack_s=o.min_slack_s,
        revived=o.revived,
        sim_s=round(o.seconds, 1),
        wall_s=round(o.wall_s, 1),
    )
    return d


COLUMNS = [
    ("protocol", "protocol"),
    ("n", "N"),
    ("loss", "loss"),
    ("crash_coord_med_s", "crash: rank 0 med"),
    ("crash_coord_max_s", "max"),
    ("crash_all_med_s", "crash: all med"),
    ("crash_all_max_s", "max"),
    ("hang_coord_med_s", "hang: rank 0 med"),
    ("hang_coord_max_s", "max"),
    ("hang_all_med_s", "hang: all med"),
    ("hang_all_max_s", "max"),
    ("msgs_per_rank_s", "msgs/s/rank"),
    ("bytes_per_rank_s", "B/s/rank"),
    ("max_bytes_rank_s", "B/s busiest"),
    ("bytes_with_faults", "B/s/rank whole run"),
    ("max_msg_bytes", "largest msg B"),
    ("false_verdicts", "false verdicts"),
    ("suspicions", "suspicions raised"),
    ("min_slack_s", "least slack s"),
    ("wall_s", "wall s"),
]


def table(rows: list[dict]) -> str:
    head = "| " + " | ".join(h for _, h in COLUMNS) + " |"
    sep = "|" + "---|" * len(COLUMNS)
    body = ["| " + " | ".join(str(r.get(k)) for k, _ in COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body])


# -- a real mpirun study ---------------------------------------------------------------------------
RANK_SHIM = """
import json, os, sys, time
import rdhpo_hpc.node as node
from rdhpo_hpc.membership import swim
out_dir = sys.argv[1]
orig_start, orig_close, orig_send = node.Node.start, node.Node.close, node.Node._send_membership
orig_tick, orig_receive = swim.Swim.tick, swim.Swim.receive
def start(self):
    self._bench_t0, self._bench_start = time.monotonic(), time.time()
    self._bench_m = [0, 0]  # membership messages, bytes (the node's counters also hold direct pings)
    self._bench_bins = {}  # whole second (wall clock, shared by the ranks of this host) -> [msgs, bytes]
    return orig_start(self)
def send(self, out, now):
    before = (self.gossip_sent, self.gossip_bytes)
    orig_send(self, out, now)
    if hasattr(self, "_bench_m"):
        self._bench_m[0] += self.gossip_sent - before[0]
        self._bench_m[1] += self.gossip_bytes - before[1]
        b = self._bench_bins.setdefault(int(time.time()), [0, 0])
        b[0] += self.gossip_sent - before[0]
        b[1] += self.gossip_bytes - before[1]
def tick(self, now):
    out = orig_tick(self, now)
    st = self.__dict__.setdefault("_bench", {"probes": 0, "indirect": 0, "rtt": []})
    st["probes"] += sum(1 for _, b in out if b[0] == swim.PING)
    st["indirect"] += any(b[0] == swim.PING_REQ for _, b in out)
    return out
def receive(self, src, body, now):
    p = self.probe
    if body[0] == swim.ACK and p is not None and body[1] == p[1] and src == p[0]:
        st = self.__dict__.setdefault("_bench", {"probes": 0, "indirect": 0, "rtt": []})
        if len(st["rtt"]) < 4000:
            st["rtt"].append(now - p[2])  # a direct probe's round trip, as the rank saw it
    return orig_receive(self, src, body, now)
def close(self, *a, **kw):
    if self._thread is not None and not getattr(self, "_bench_done", False):
        self._bench_done = True
        st = getattr(self.membership, "_bench", {})
        with open(os.path.join(out_dir, f"rank{self.rank}.json"), "w") as fh:
            json.dump({"rank": self.rank, "sent": self.gossip_sent, "bytes": self.gossip_bytes,
                       "m_sent": self._bench_m[0], "m_bytes": self._bench_m[1],
                       "seconds": time.monotonic() - self._bench_t0,
                       "t_start": self._bench_start, "t_close": time.time(),
                       "bins": sorted([k, *v] for k, v in self._bench_bins.items()),
                       "probes": st.get("probes", 0), "indirect": st.get("indirect", 0),
                       "rtts": st.get("rtt", []),
                       "incarnation": getattr(self.membership, "incarnation", 0),
                       "dead": len(getattr(self.membership, "dead", {}))}, fh)
    return orig_close(self, *a, **kw)
node.Node.start, node.Node.close, node.Node._send_membership = start, close, send
swim.Swim.tick, swim.Swim.receive = tick, receive
from rdhpo_hpc.cli import main
sys.exit(main(sys.argv[2:]))
"""


def real(n: int, trials: int, interval: float, t_fail: float, timeout: float) -> dict:
    """A study under mpirun with the swim membership; per-rank gossip counters from every node."""
    sys.path.insert(0, str(REPO / "tests" / "system"))
    from mpi_helpers import mpi_env, mpirun_path

    mpirun = mpirun_path()
    if mpirun is None:
        raise SystemExit("mpirun not found (make install: Open MPI from the package index)")
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        (tmpd / "shim.py").write_text(RANK_SHIM)
        stats = tmpd / "stats"
        stats.mkdir()
        cfg = tmpd / "study.yaml"
        cfg.write_text(
            "name: membership-real\nseed: 0\n"
            f"objective: {{function: '{REPO / 'tests' / 'system' / 'objectives.py'}:sleepy'}}\n"
            "space: {x: {type: float, low: 0.0, high: 1.0}}\n"
            f"budget: {{max_trials: {trials}}}\n"
            f"output: {tmpd / 'out.h5'}\n"
            f"fault_tolerance: {{membership: swim, gossip_interval: {interval}, t_fail: {t_fail}, end_grace: 5}}\n"
        )
        env = mpi_env({"RDHPO_TEST_STEP_S": "0.05", "RDHPO_TEST_STEPS": "2"})
        cmd = [mpirun, "--with-ft", "ulfm", "-n", str(n), sys.executable, str(tmpd / "shim.py"), str(stats)]
        cmd += ["run", str(cfg)]
        t0 = time.monotonic()
        proc = subprocess.Popen(
            cmd, env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        try:
            text, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            text, _ = proc.communicate()
            raise SystemExit(f"mpirun did not end within {timeout} s:\n{text[-3000:]}") from None
        wall = time.monotonic() - t0
        from rdhpo_hpc.api import load_results

        res = load_results(str(tmpd / "out.h5"))
        done = [t for t in res.trials if t.state == "COMPLETE"]
        ids = [t.trial_id for t in done]
        per = [json.loads(p.read_text()) for p in sorted(stats.glob("rank*.json"))]
        from rdhpo_hpc.storage.journal import read_journal

        journal = read_journal(str(tmpd / "out.h5.journal"))
        deaths = [{k: e.get(k) for k in ("rank", "detail", "latency")} for e in journal if e.get("kind") == "rank-dead"]
    rates = [p["bytes"] / p["seconds"] for p in per]
    workers = [p["bytes"] / p["seconds"] for p in per if p["rank"] != 0]
    msgs = [p["sent"] / p["seconds"] for p in per if p["rank"] != 0]
    m_bytes = [p["m_bytes"] / p["seconds"] for p in per]
    m_msgs = [p["m_sent"] / p["seconds"] for p in per]
    rtts = sorted(x for p in per for x in p["rtts"])
    probes = sum(p["probes"] for p in per)
    steady = _steady_window(per)
    return {
        "n": n,
        "exit_code": proc.returncode,
        "wall_s": round(wall, 1),
        "trials_complete": len(done),
        "trials_unique": len(set(ids)),
        "ranks_reporting": len(per),
        "rank0_bytes_s": round(next((p["bytes"] / p["seconds"] for p in per if p["rank"] == 0), float("nan")), 1),
        "worker_bytes_s_median": round(statistics.median(workers), 1) if workers else None,
        "worker_bytes_s_max": round(max(workers), 1) if workers else None,
        "worker_msgs_s_median": round(statistics.median(msgs), 2) if msgs else None,
        "all_bytes_s_mean": round(statistics.fmean(rates), 1) if rates else None,
        "swim_bytes_s_median": round(statistics.median(m_bytes), 1) if m_bytes else None,
        "swim_msgs_s_median": round(statistics.median(m_msgs), 2) if m_msgs else None,
        **steady,
        "indirect_fraction": round(sum(p["indirect"] for p in per) / probes, 3) if probes else None,
        "rtt_samples": len(rtts),
        "probe_rtt_p50_p90_p99_max_s": [round(_quantile(rtts, q), 4) for q in (0.5, 0.9, 0.99, 1.0)] if rtts else None,
        "rtts": rtts,
        "rank_dead_events": deaths,  # false verdicts (rank, cause, seconds silent): nothing was killed
        "refutations": sum(p.get("incarnation", 0) for p in per),  # times a rank was suspected and answered
        "tail": text[-600:] if proc.returncode else "",
    }


def _steady_window(per: list[dict]) -> dict:
    """Membership load in the steady state, as the simulation measures it: whole seconds from
    2 s after the last rank's node started to 1 s before the first one closed (no rank starting or
    leaving), median over ranks of bytes and messages per second; empty when that window is
    shorter than 3 s."""
    lo = int(max(p["t_start"] for p in per)) + 3  # the first whole second 2 s after the last start
    hi = int(min(p["t_close"] for p in per)) - 1  # the whole seconds before that end 1 s before
    if hi - lo < 3:
        return {}
    msgs, byts = [], []
    for p in per:
        inside = [(m, b) for sec, m, b in p["bins"] if lo <= sec < hi]
        msgs.append(sum(m for m, _ in inside) / (hi - lo))
        byts.append(sum(b for _, b in inside) / (hi - lo))
    return {
        "steady_s": hi - lo,
        "steady_swim_bytes_s_median": round(statistics.median(byts), 1),
        "steady_swim_msgs_s_median": round(statistics.median(msgs), 2),
    }


def compare_real(n: int, a: argparse.Namespace) -> dict:
    """A real run of ``n`` ranks next to the simulation of the same N and settings, twice: with the
    ``--delay`` model, and with one-way delays drawn from the real run's probe round trips / 2
    (their whole distribution, tail included; drawn independently per message, whereas a
    descheduled rank delays all its messages at once).  Ratios are real / simulated."""
    r = real(n, a.real_trials, a.interval, a.t_fail, a.real_timeout)
    rtts = r.pop("rtts")
    for key, delays in (("sim", None), ("sim_real_rtt", [x / 2 for x in rtts] or None)):
        o = simulate(
            "swim", n, 0.0, a.interval, a.fanout, a.t_fail, faults=0, delay=a.delay, seed=a.seed, delays=delays
        )
        r[f"{key}_bytes_per_rank_s"], r[f"{key}_msgs_per_rank_s"] = (
            round(o.bytes_per_rank_s, 1),
            round(o.msgs_per_rank_s, 2),
        )
        r[f"{key}_indirect_fraction"] = round(o.indirect_fraction, 3)
        if r["swim_bytes_s_median"]:
            r[f"ratio_real_to_{key}_bytes"] = round(r["swim_bytes_s_median"] / o.bytes_per_rank_s, 2)
        if r.get("steady_swim_bytes_s_median"):
            r[f"ratio_steady_to_{key}_bytes"] = round(r["steady_swim_bytes_s_median"] / o.bytes_per_rank_s, 2)
    return r


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.membership", description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="100,1000,10000", help="comma-separated rank counts")
    ap.add_argument("--protocol", default="swim", help="swim, gossip or both (comma-separated)")
    ap.add_argument("--loss", type=float, default=0.0, help="probability that a message is lost")
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--fanout", type=int, default=2)
    ap.add_argument("--t-fail", type=float, default=10.0)
    ap.add_argument("--faults", type=int, default=3, help="crashes (and as many hangs) per run")
    ap.add_argument("--delay", type=float, default=0.005, help="mean one-way message delay, s")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds before the first fault (load measured from 1 s)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds after the warm-up when --faults 0")
    ap.add_argument("--gossip-max", type=int, default=2000, help="largest N simulated for the vector gossip")
    ap.add_argument("--json", action="store_true", help="only the JSON lines (one per run), no table")
    ap.add_argument("--quick", action="store_true", help="N = 100, 1000 only (the bench runner's smoke size)")
    ap.add_argument("--real", default="", help="real mpirun studies of these many ranks (comma-separated)")
    ap.add_argument("--real-trials", type=int, default=200)
    ap.add_argument("--real-timeout", type=float, default=240.0)
    a = ap.parse_args(argv)
    try:
        ns = [100, 1000] if a.quick else [int(x) for x in a.n.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--n must be comma-separated integers, got {a.n!r}")
    protocols = [p.strip() for p in a.protocol.split(",") if p.strip()]
    bad = [p for p in protocols if p not in ("swim", "gossip")]
    if bad or not protocols:
        ap.error(f"--protocol must be swim and/or gossip, got {a.protocol!r}")
    if any(n < 3 for n in ns):
        ap.error(f"--n values must be >= 3, got {a.n!r}")
    if a.warmup <= 1.0:
        ap.error(f"--warmup must exceed 1 s (the load is measured from 1 s to its end), got {a.warmup!r}")
    if not 0 <= a.loss < 1:
        ap.error(f"--loss must be in [0, 1), got {a.loss!r}")
    if a.real:
        ok = True
        for n in [int(x) for x in a.real.split(",") if x.strip()]:
            r = compare_real(n, a)
            print(json.dumps(r) if a.json else "\n".join(f"{k}: {v}" for k, v in r.items()) + "\n", flush=True)
            ok = ok and r["exit_code"] == 0 and r["trials_complete"] == r["trials_unique"] == a.real_trials
        return 0 if ok else 1
    rows = []
    for p in protocols:
        for n in ns:
            if p == "gossip" and n > a.gossip_max:
                continue
            o = simulate(p, n, a.loss, a.interval, a.fanout, a.t_fail, a.faults, a.delay, a.warmup, a.seed, a.duration)
            rows.append(row(o))
            print(json.dumps(rows[-1]), flush=True)
    if not a.json:
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
