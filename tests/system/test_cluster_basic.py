"""The virtual cluster (tests/system/vcluster.py): 4 network-namespace nodes, Open MPI and SLURM
across them, and the fault helpers the fault tests use — each checked for the effect intended.

Then two real studies across nodes: plain ``mpirun`` (rank 0 on node1, workers on node2 and
node3) and ``sbatch slurm/rdhpo-multinode.sbatch -N3`` (rank 0 alone on the first node) with the
built-in objective on a dataset file that every node reads once (observed with an audit hook that
logs each process's ``open()`` of the file: vcluster/openlog/sitecustomize.py).

Needs root; sets the cluster up on first use (apt installs slurm-wlm + munge on a fresh machine)
and tears it down at the end of the session.  RDHPO_SKIP_CLUSTER=1 skips.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import vcluster as vc
from conftest_cluster import vcluster, vcluster_net, vcluster_session  # noqa: F401

SETUP_S = vc.setup_allowance()
HERE = Path(__file__).resolve().parent
OBJ = HERE / "objectives.py"
MULTINODE_SBATCH = vc.REPO / "slurm" / "rdhpo-multinode.sbatch"

pytestmark = [pytest.mark.cluster, pytest.mark.system]

HELLO = """
import os, socket
from mpi4py import MPI
c = MPI.COMM_WORLD
total = c.allreduce(c.Get_rank())
c.Barrier()
print("HELLO", c.Get_rank(), MPI.Get_processor_name(), socket.gethostname(),
      os.readlink("/proc/self/ns/net"), total, flush=True)
"""


def _hello_lines(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        if line.startswith("HELLO "):
            _, rank, proc, host, net, total = line.split()
            out[int(rank)] = (proc, host, net, int(total))
    return out


# ------------------------------------------------------------------------------ Open MPI


@pytest.mark.timeout(SETUP_S + 60)
def test_mpirun_ranks_on_four_nodes_differ_and_a_collective_works(vcluster_net, tmp_path):
    script = tmp_path / "hello.py"
    script.write_text(HELLO)
    cmd, env = vc.mpirun_command([script], hosts={n: 1 for n in vc.NODES})
    with vc.ClusterJob(cmd, env, log=tmp_path / "hello.log", cwd=tmp_path) as job:
        rc = job.wait(45)
    text = job.text()
    assert rc == 0, text
    got = _hello_lines(text)
    assert sorted(got) == [0, 1, 2, 3], text
    for rank, (proc, host, _, total) in got.items():
        assert proc == host == vc.NODES[rank], text  # Get_processor_name per node
        assert total == 6, text  # allreduce across the 4 nodes
    assert len({net for _, _, net, _ in got.values()}) == 4, text  # 4 network namespaces


# ------------------------------------------------------------------------------ fault helpers


@pytest.mark.timeout(SETUP_S + 60)
def test_link_down_cuts_the_node_off_and_link_up_restores_it(vcluster_net):
    assert vc.tcp_probe("node1", "node2") is not None
    vc.link_down("node2")
    assert vc.tcp_probe("node1", "node2", timeout=1.5) is None
    assert vc.tcp_probe("node2", "node3", timeout=1.5) is None
    assert vc.tcp_probe("node1", "node3") is not None  # the others are unaffected
    vc.link_up("node2")
    deadline = time.monotonic() + 10
    while vc.tcp_probe("node1", "node2", timeout=1.5) is None:
        assert time.monotonic() < deadline, "node2 unreachable 10 s after link_up"


@pytest.mark.timeout(SETUP_S + 90)
def test_netem_delays_and_drops_what_the_node_sends(vcluster_net, tmp_path):
    base = vc.tcp_probe("node1", "node2")
    assert base is not None and base < 0.1, base
    vc.netem("node2", delay_ms=150)
    slow = vc.tcp_probe("node1", "node2")  # the SYN-ACK leaves node2 150 ms late
    assert slow is not None and slow >= 0.15, slow
    vc.netem("node2", loss=50)
    sent, got, _ = vc.udp_probe("node1", "node2", count=200)
    assert 0.25 * sent <= got <= 0.75 * sent, (sent, got)  # echoes from node2: ~half lost
    sent, got, _ = vc.udp_probe("node1", "node3", count=100)
    assert got == sent, (sent, got)  # another node: nothing lost
    vc.clear_netem("node2")
    sent, got, rtt = vc.udp_probe("node1", "node2", count=100)
    assert got == sent and rtt < 0.05, (sent, got, rtt)
    # MPI across a lossy, slow node still works (TCP retransmits)
    vc.netem("node2", loss=5, delay_ms=30)
    script = tmp_path / "hello.py"
    script.write_text(HELLO)
    cmd, env = vc.mpirun_command([script], hosts={n: 1 for n in vc.NODES})
    with vc.ClusterJob(cmd, env, log=tmp_path / "hello.log", cwd=tmp_path) as job:
        rc = job.wait(45)
    assert rc == 0 and len(_hello_lines(job.text())) == 4, job.text()
    print(f"netem backend: {vc.netem_backend()}")


@pytest.mark.timeout(SETUP_S + 90)
def test_partition_cuts_only_the_traffic_between_two_nodes(vcluster_net):
    vc.partition("node1", "node2")
    assert vc.tcp_probe("node1", "node2", timeout=1.5) is None
    assert vc.tcp_probe("node2", "node1", timeout=1.5) is None
    for src, dst in (
        ("node1", "node3"),
        ("node3", "node1"),
        ("node2", "node3"),
        ("node3", "node2"),
        ("node2", "node4"),
    ):
        assert vc.tcp_probe(src, dst) is not None, (src, dst)
    vc.netem("node2", delay_ms=100)  # netem and a partition together
    assert vc.tcp_probe("node1", "node2", timeout=1.5) is None
    t = vc.tcp_probe("node3", "node2")
    assert t is not None and t >= 0.1, t
    vc.heal("node1", "node2")
    t = vc.tcp_probe("node1", "node2")
    assert t is not None and t >= 0.1, t  # healed; the delay stays until cleared
    vc.clear_netem("node2")
    assert vc.tcp_probe("node2", "node1") is not None


@pytest.mark.timeout(SETUP_S + 90)
def test_crash_node_kills_every_process_of_the_node_and_slurm_notices(vcluster):
    victim = "node3"
    sleeper = subprocess.Popen(vc.in_node(victim, ["sleep", "300"]), start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not any(vc._comm(p) == "sleep" for p in vc.ns_pids(victim)):
            assert time.monotonic() < deadline, "the sleeper did not start in the node"
            time.sleep(0.05)
        slurmd = vc.slurmd_pid(victim)
        assert slurmd is not None
        t0 = time.monotonic()
        killed = vc.crash_node(victim)
        assert slurmd in killed
        assert sleeper.wait(timeout=5) == -9
        assert vc.ns_pids(victim) == []
        assert vc.slurmd_pid(victim) is None
        while not vc.node_states().get(victim, "").startswith("down"):  # SlurmdTimeout=10
            assert time.monotonic() - t0 < 45, vc.node_states()
            time.sleep(0.5)
        down_after = time.monotonic() - t0
        others = vc.node_states()
        assert all(others[n] in vc.USABLE for n in vc.NODES if n != victim), others
        vc.restart_node(victim, wait=30)  # ReturnToService=2
        assert vc.node_states()[victim] in vc.USABLE
        print(f"crash_node: SLURM marked {victim} DOWN after {down_after:.1f} s")
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        sleeper.wait(timeout=5)


# ------------------------------------------------------------------------------ SLURM


@pytest.mark.timeout(SETUP_S + 60)
def test_slurm_steps_run_on_every_node(vcluster):
    p = vc.scmd(["srun", "-N4", "-n4", "hostname"], timeout=30)
    assert sorted(p.stdout.split()) == list(vc.NODES), p.stdout + p.stderr
    p = vc.scmd(
        [
            "srun",
            "-N2",
            "-n2",
            "-w",
            "node2,node4",
            "sh",
            "-c",
            "echo $(hostname) $(ip -o -4 addr show dev eth0 | awk '{print $4}')",
        ],
        timeout=30,
    )
    got = sorted(tuple(line.split()) for line in p.stdout.splitlines())
    assert got == [("node2", "10.231.7.2/24"), ("node4", "10.231.7.4/24")], p.stdout + p.stderr


# ------------------------------------------------------------------------------ studies


def _write_config(tmp: Path, objective: dict, space: dict, max_trials: int, name: str, **extra) -> Path:
    import yaml

    cfg = {
        "name": name,
        "seed": 1,
        "objective": objective,
        "space": space,
        "budget": {"max_trials": max_trials},
        "output": str(tmp / "out.h5"),
        "fault_tolerance": {"gossip_interval": 0.2, "t_fail": 2.5, "end_grace": 3, "max_retries": 2},
        "progress_interval": 1,
        **extra,
    }
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _check_trials(out: Path, n: int):
    """Every trial COMPLETE and counted once (from the HDF5 file itself); returns the result."""
    from rdhpo_hpc.results import result_from_records
    from rdhpo_hpc.storage.hdf5 import read_records

    res = result_from_records(read_records(str(out)), str(out))
    assert sorted(t.trial_id for t in res.trials) == list(range(n))
    assert [t.state for t in res.trials] == ["COMPLETE"] * n, [(t.trial_id, t.state, t.error) for t in res.trials]
    done = collections.Counter(a["trial_id"] for a in res.attempts if a["state"] == "COMPLETE")
    assert set(done.values()) == {1}, f"a trial counted twice: {done}"
    assert res.finished, res.end
    return res


def _journal(out: Path) -> list:
    from rdhpo_hpc.storage.journal import journal_path, read_journal

    return read_journal(journal_path(str(out)))


def _coordinator_host(records: list) -> str:
    (start,) = [r for r in records if r.get("k") == "event" and r.get("kind") == "coordinator-start"]
    return dict(kv.split("=", 1) for kv in start["detail"].split() if "=" in kv)["host"]


@pytest.mark.timeout(SETUP_S + 120)
def test_plain_mpirun_study_rank0_on_node1_workers_on_node2_and_node3(vcluster_net, tmp_path):
    n = 20
    cfg = _write_config(
        tmp_path, {"function": f"{OBJ}:sleepy"}, {"x": {"type": "float", "low": 0.0, "high": 1.0}}, n, "vc-mpirun"
    )
    cmd, env = vc.mpirun_command(
        ["-m", "rdhpo_hpc", "run", str(cfg)], hosts={"node1": 1, "node2": 2, "node3": 2}
    )  # --map-by slot: in order
    with vc.ClusterJob(cmd, env, log=tmp_path / "mpirun.log", cwd=tmp_path) as job:
        rc = job.wait(90)
    text = job.text()
    assert rc == 0, text
    assert "study finished" in text, text
    res = _check_trials(tmp_path / "out.h5", n)
    recs = _journal(tmp_path / "out.h5")
    workers = {r["rank"]: r["host"] for r in recs if r.get("k") == "worker"}
    assert workers == {1: "node2", 2: "node2", 3: "node3", 4: "node3"}, workers
    assert _coordinator_host(recs) == "node1"
    ran_on = {workers[a["rank"]] for a in res.attempts if a["state"] == "COMPLETE"}
    assert ran_on == {"node2", "node3"}, ran_on
    print(f"plain mpirun study: {n} trials over node1-3 in {job.wall:.1f} s")


def _digits_file(path: Path) -> Path:
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    np.savez(path, x=d.data.astype("float32"), y=d.target.astype("int64"))
    return path


@pytest.mark.timeout(SETUP_S + 180)
def test_sbatch_multinode_study_rank0_alone_dataset_read_once_per_node(vcluster, tmp_path):
    """``sbatch -N3 -n5 -w node1,node2,node3 slurm/rdhpo-multinode.sbatch``: SLURM's block layout
    is 3,1,1 tasks, so the placement comes from mpirun: RDHPO_MPIRUN_ARGS carries
    ``--host node1:1,node2:2,node3:2 --map-by slot:oversubscribe`` (rank 0 alone on node1, two
    workers on each other node; inside the allocation mpirun starts its daemons with srun),
    ``--bind-to none`` (the nodes declare more CPUs than there are cores) and the subnet options."""
    n = 16
    data = _digits_file(tmp_path / "digits.npz")
    cfg = _write_config(
        tmp_path,
        {"builtin": {"model": "mlp", "dataset": str(data), "epochs": 3, "num_threads": 1}},
        {
            "lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
            "width": {"type": "int", "low": 16, "high": 64},
        },
        n,
        "vc-sbatch",
        metric="val_loss",
        optimizer="random",
    )
    opens, log = tmp_path / "opens.jsonl", tmp_path / "job.out"
    mpirun_args = [
        "--bind-to",
        "none",
        "--host",
        "node1:1,node2:2,node3:2",
        "--map-by",
        "slot:oversubscribe",
        *vc.MPI_NET_ARGS,
    ]
    env = {"RDHPO_VENV": sys.prefix, "RDHPO_MPIRUN_ARGS": " ".join(mpirun_args), **vc.open_log_env([data], opens)}
    t0 = time.monotonic()
    job = vc.sbatch(
        [MULTINODE_SBATCH, cfg],
        env=env,
        cwd=tmp_path,
        extra_args=["-N3", "-n5", "-w", "node1,node2,node3", f"--output={log}", "--time=5"],
    )
    try:
        status = vc.wait_job(job, timeout=150)
    finally:
        vc.cancel(job)
    wall = time.monotonic() - t0
    text = log.read_text(errors="replace") if log.exists() else ""
    assert status == "COMPLETED" and status.exit_code == 0, f"{status} {status.fields.get('ExitCode')}\n{text}"
    assert "launcher mpirun" in text and "study finished" in text, text
    res = _check_trials(tmp_path / "out.h5", n)
    recs = _journal(tmp_path / "out.h5")
    workers = {r["rank"]: r["host"] for r in recs if r.get("k") == "worker"}
    assert workers == {1: "node2", 2: "node2", 3: "node3", 4: "node3"}, workers
    assert _coordinator_host(recs) == "node1"  # rank 0 alone on the first node

    # the dataset file: opened by exactly one process per node, the node's lowest rank
    readers = collections.defaultdict(set)
    for o in vc.read_open_log(opens):
        readers[o["host"]].add((o["rank"], o["pid"]))
    assert {h: sorted(r for r, _ in v) for h, v in readers.items()} == {
        "node1": ["0"],
        "node2": ["1"],
        "node3": ["3"],
    }, dict(readers)
    # ... and the ranks that never opened it trained on the broadcast copy
    trained = {a["rank"] for a in res.attempts if a["state"] == "COMPLETE"}
    assert {2, 4} <= trained, trained
    print(f"sbatch -N3 study: {n} trials in {wall:.1f} s (submit to COMPLETED)")


# ------------------------------------------------------------------------------ teardown (last)


@pytest.mark.timeout(SETUP_S + 120)
def test_teardown_leaves_nothing_and_setup_rebuilds(vcluster):
    t0 = time.monotonic()
    vc.teardown_cluster()
    down_s = time.monotonic() - t0
    assert vc.leftovers() == []
    hosts = Path("/etc/hosts").read_text()
    assert vc.HOSTS_TAG not in hosts and "node1" not in vc._netns_list()
    t0 = time.monotonic()
    assert vc.ensure_cluster() is None  # from nothing (packages installed)
    up_s = time.monotonic() - t0
    assert vc.wait_nodes(timeout=10)
    print(
        f"teardown {down_s:.1f} s, setup from nothing (packages installed) {up_s:.1f} s; "
        f"setups in this process: {[{k: round(v, 1) for k, v in d.items()} for d in vc.ensure_cluster.setups]}"
    )
