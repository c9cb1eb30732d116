"""A virtual cluster for the system tests: 4 nodes, each a Linux network namespace (root only).

Layout (``ensure_cluster()`` builds it, ``teardown_cluster()`` removes every piece of it)::

    host:   bridge rdhpobr0 10.231.7.254/24, veth rdv1..rdv4 (host sides) on it,
            slurmctld of the cluster "rdhpo-vcluster" (ports 6917/6918, its own state/spool/pid/log)
    nodeN:  network namespace nodeN, eth0 = 10.231.7.N/24 (peer of rdvN), lo up,
            slurmd -N nodeN in its own UTS namespace (host name nodeN)
    /etc/hosts: "10.231.7.N nodeN # rdhpo-vcluster" (only lines with that tag are ever removed)

Traffic stays on loopback and on 10.231.7.0/24 (the namespaces have no other route).

Usage (``tests/system`` is on sys.path while pytest runs; fixtures in ``conftest_cluster.py``)::

    import vcluster as vc
    reason = vc.ensure_cluster()            # None when up, else why not (skip reason)
    cmd, env = vc.mpirun_command(["-m", "rdhpo_hpc", "run", cfg], hosts={"node1": 1, "node2": 2})
    with vc.ClusterJob(cmd, env, log=tmp / "job.log") as job:   # killed (all nodes) on exit
        rc = job.wait(90)
    job_id = vc.sbatch([script, cfg], extra_args=["-N3"], env={...}, cwd=tmp)
    status = vc.wait_job(job_id, timeout=120)        # a slurm_cluster.JobStatus ("COMPLETED")
    vc.crash_node("node3"); vc.link_down("node2"); vc.netem("node2", loss=20, delay_ms=100)
    vc.partition("node1", "node2"); vc.heal("node1", "node2"); vc.reset()   # faults cleared
    vc.tcp_probe("node1", "node2")   # connect time (s) or None;  vc.udp_probe(...) -> (sent, got, rtt)
    vc.teardown_cluster()

Measured facts (Debian 12, 2 cores, Open MPI 5.0.11 wheel, slurm-wlm 22.05.8, 2026-12):

* Setup: fresh machine, install.sh (apt-get update + slurm-wlm munge libpmix-dev) 16 s; then
  network + munged + slurmctld + 4 slurmd + nodes idle 0.6-0.8 s; up already: 0.1-0.3 s
  (checks only); teardown 0.7 s.
* ``PRTE_MCA_rmaps_default_mapping_policy=:oversubscribe`` (``mpi_helpers.MPI_ENV``, the
  Makefile) makes ``mpirun --host node1:1,node2:2,...`` map BYCORE and put EVERY rank on the
  first node (the daemons on the others start and stay idle).  :func:`mpirun_command` passes
  ``--map-by slot:oversubscribe`` (fills node1's slots, then node2's...) and drops the variable;
  :func:`slurm_env` drops it too.
* ``mpirun`` itself runs inside node1's namespace (host name node1), so node1 in ``--host`` is
  the local node and the out-of-band channel stays on the subnet.
* Inside an allocation PRRTE takes the slots per node from SLURM_TASKS_PER_NODE (block layout:
  ``-N3 -n5`` gives 3,1,1) and ``--host node1:1,...`` only filters nodes unless the mapping
  allows oversubscription: ``--host node1:1,node2:2,node3:2 --map-by slot:oversubscribe`` (or
  a rankfile / ``--map-by seq`` with ``:oversubscribe``) places the ranks as written.  Relative
  ``--host +n0:1,...`` filters but ignores the counts.  ``sbatch -m arbitrary`` with
  SLURM_HOSTFILE leaves SLURM_TASKS_PER_NODE unset and mpirun fails ("SLURM resource allocator
  expects SLURM_TASKS_PER_NODE").  The nodes declare 4 CPUs each on 2 real cores: mpirun's default
  core binding then refuses ("bind ... more cpus than are available"): pass ``--bind-to none``.
* ``ip netns exec`` mounts a fresh /sys: no cgroup hierarchy inside a node.  slurmd fails without
  ``CgroupAutomount=yes`` in cgroup.conf ("No filesystem mounted on /sys/fs/cgroup"); the cluster
  uses proctrack/linuxproc and task/none, and :func:`kill_job_processes` removes job leftovers.
* The daemons run as ``vc-slurmctld`` / ``vc-slurmd`` (symlinks): setup_slurm.sh finds the
  one-node cluster's daemons by process name and would otherwise stop (or count) ours.
* Kernel of this machine kind (6.18): no sch_netem, sch_prio, act_gact (so ``tc ... netem``
  answers "Specified qdisc kind is unknown"); it has clsact, u32, mirred, ifb, tun.  Partitions
  are clsact filters redirecting to a DOWN ifb (dropped); loss/delay use kernel netem where the
  kernel has it, else the userspace shaper (vcluster/shaper.py; 20 MB TCP through a 150 ms
  delay: 2.2 s, every byte arrived).
* SLURM marks a crashed node DOWN 15-18 s after :func:`crash_node` (SlurmdTimeout=10).

Every subprocess has a timeout.  Environment: RDHPO_SKIP_CLUSTER=1 skips (ensure_cluster gives
a reason), RDHPO_REQUIRE_CLUSTER=1 makes the fixtures fail instead of skip,
RDHPO_VCLUSTER_KEEP=1 leaves the cluster up at the end of the session (debugging).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

HERE = Path(__file__).resolve().parent
VC_DIR = HERE / "vcluster"
AGENT = VC_DIR / "agent.sh"
INSTALL_SCRIPT = VC_DIR / "install.sh"
PROBE = VC_DIR / "probe.py"
OPENLOG_DIR = VC_DIR / "openlog"  # sitecustomize.py: logs open() of watched files
REPO = HERE.parent.parent

NODES: Tuple[str, ...] = ("node1", "node2", "node3", "node4")
NET_PREFIX = "10.231.7"
SUBNET = f"{NET_PREFIX}.0/24"
BRIDGE = "rdhpobr0"
BRIDGE_ADDR = f"{NET_PREFIX}.254"
HOSTS_TAG = "# rdhpo-vcluster"
HOSTS_FILE = Path("/etc/hosts")
NODE_IF = "eth0"

CLUSTER_NAME = "rdhpo-vcluster"
PARTITION = "vc"
CTLD_PORT = 6917
SLURMD_PORT = 6918
SRUN_PORTS = "60001-60200"
SLURMD_TIMEOUT_S = 10
NODE_CPUS = 4  # declared (config_overrides): lets --ntasks-per-node=4 jobs in
NODE_MEMORY_MB = 1000
BASE = Path("/run/rdhpo-vcluster")
CONF_DIR = BASE / "etc"
SLURM_CONF = CONF_DIR / "slurm.conf"
STATE_DIR = BASE / "state"
SPOOL_DIR = BASE / "spool"
RUN_DIR = BASE / "run"
LOG_DIR = Path("/var/log/rdhpo-vcluster")
JOBCOMP_LOG = LOG_DIR / "jobcomp.log"
MUNGE_MARK = BASE / "started-munged"
# The daemons run under names of their own (symlinks to the real binaries), so that tools that
# find SLURM daemons by name (tests/system/slurm/setup_slurm.sh: `ps ... comm == slurmd`) never
# mistake ours for the one-node cluster's, or kill them.
BIN_DIR = BASE / "bin"
CTLD_NAME = "vc-slurmctld"
SLURMD_NAME = "vc-slurmd"

CMD_TIMEOUT_S = 30.0
INSTALL_TIMEOUT_S = 560.0
SETUP_ALLOWANCE_S = 660.0  # apt (fresh machine: 16-70 s measured) + daemons, with margin

MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_btl": "self,sm,tcp",
}
# mpirun options for jobs that cross nodes (TCP between nodes, OOB on the subnet)
MPI_NET_ARGS = (
    "--mca",
    "btl",
    "self,sm,tcp",
    "--mca",
    "btl_tcp_if_include",
    SUBNET,
    "--mca",
    "oob_tcp_if_include",
    SUBNET,
)


class ClusterError(RuntimeError):
    """A command of the virtual cluster failed."""


# ============================================================================ small helpers


def _run(
    cmd: Sequence[Union[str, os.PathLike]],
    timeout: float = CMD_TIMEOUT_S,
    check: bool = True,
    env: Optional[Mapping[str, str]] = None,
    input: Optional[str] = None,
    cwd: Union[str, os.PathLike, None] = None,
) -> subprocess.CompletedProcess:
    cmd = [str(c) for c in cmd]
    try:
        p = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            env=None if env is None else dict(env),
            cwd=None if cwd is None else str(cwd),
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise ClusterError(f"{' '.join(cmd)} timed out after {timeout:g} s") from exc
    except FileNotFoundError as exc:
        raise ClusterError(f"{cmd[0]} not found ({exc})") from exc
    if check and p.returncode != 0:
        raise ClusterError(f"{' '.join(cmd)} exited {p.returncode}: {(p.stderr or p.stdout).strip()}")
    return p


def addr(node: str) -> str:
    """The node's address on the subnet (node3 -> 10.231.7.3)."""
    return f"{NET_PREFIX}.{_index(node)}"


def _index(node: str) -> int:
    if node not in NODES:
        raise ValueError(f"unknown node {node!r}; nodes: {', '.join(NODES)}")
    return NODES.index(node) + 1


def host_veth(node: str) -> str:
    """The host side of the node's veth pair (node2 -> rdv2)."""
    return f"rdv{_index(node)}"


def in_node(node: str, argv: Sequence[Union[str, os.PathLike]], uts: bool = True) -> List[str]:
    """argv that runs ``argv`` inside the node: its network namespace and (uts=True) a UTS
    namespace whose host name is the node's name."""
    argv = [str(a) for a in argv]
    if not uts:
        return ["ip", "netns", "exec", node, *argv]
    return ["ip", "netns", "exec", node, "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', node, *argv]


def _netns_list() -> List[str]:
    try:
        p = _run(["ip", "netns", "list"], check=False, timeout=10)
    except ClusterError:
        return []
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def ns_pids(node: str) -> List[int]:
    """Every process in the node's network namespace (``ip netns pids``)."""
    if not Path(f"/run/netns/{node}").exists():
        return []
    try:
        p = _run(["ip", "netns", "pids", node], check=False, timeout=10)
    except ClusterError:
        return []
    return [int(x) for x in p.stdout.split() if x.isdigit()]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _kill(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _pids_named(name: str) -> List[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and _comm(int(d.name)) == name and _alive(int(d.name)):
            out.append(int(d.name))
    return out


def _read_pid(path: Path) -> Optional[int]:
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _alive(pid) else None


# ============================================================================ network


def _link_exists(name: str, netns: Optional[str] = None) -> bool:
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["link", "show", name]
    try:
        return _run(cmd, check=False, timeout=10).returncode == 0
    except ClusterError:
        return False


def _network_complete() -> bool:
    try:
        br = _run(["ip", "-o", "-4", "addr", "show", "dev", BRIDGE], check=False, timeout=10)
        if f"{BRIDGE_ADDR}/24" not in br.stdout:
            return False
        if not _flags_up(_run(["ip", "-o", "link", "show", "dev", BRIDGE], check=False, timeout=10).stdout):
            return False
        names = set(_netns_list())
        for node in NODES:
            if node not in names:
                return False
            a = _run(["ip", "-n", node, "-o", "-4", "addr", "show", "dev", NODE_IF], check=False, timeout=10)
            if f"{addr(node)}/24" not in a.stdout:
                return False
            if not _flags_up(
                _run(["ip", "-n", node, "-o", "link", "show", "dev", "lo"], check=False, timeout=10).stdout
            ):
                return False
            link = _run(["ip", "-o", "link", "show", "dev", host_veth(node)], check=False, timeout=10).stdout
            if f"master {BRIDGE}" not in link:
                return False
    except ClusterError:
        return False
    return _hosts_ok()


def _flags_up(link_line: str) -> bool:
    """``ip -o link show`` line: is the interface administratively up (``<...,UP,...>``)?"""
    m = re.search(r"<([^>]*)>", link_line)
    return bool(m) and "UP" in m.group(1).split(",")


def _subnet_taken_elsewhere() -> Optional[str]:
    """A route to our /24 (or an address in it) on a device that is not ours: do not touch it."""
    try:
        routes = _run(["ip", "-o", "route", "show", SUBNET], check=False, timeout=10).stdout
        addrs = _run(["ip", "-o", "-4", "addr", "show"], check=False, timeout=10).stdout
    except ClusterError:
        return None
    for line in routes.splitlines() + [a for a in addrs.splitlines() if f" {NET_PREFIX}." in a]:
        parts = line.split()
        dev = parts[parts.index("dev") + 1] if "dev" in parts else (parts[1] if len(parts) > 1 else "")
        if dev and dev != BRIDGE:
            return f"subnet {SUBNET} is already used on this machine (device {dev}): {line.strip()}"
    return None


def _net_setup() -> None:
    _net_teardown()
    taken = _subnet_taken_elsewhere()
    if taken:
        raise ClusterError(taken)
    _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    _run(["ip", "addr", "add", f"{BRIDGE_ADDR}/24", "dev", BRIDGE])
    _run(["ip", "link", "set", BRIDGE, "up"])
    for node in NODES:
        p = _run(["ip", "netns", "add", node], check=False)
        if p.returncode != 0:
            raise ClusterError(f"ip netns add {node} refused: {p.stderr.strip()}")
        _run(["ip", "link", "add", host_veth(node), "type", "veth", "peer", "name", NODE_IF, "netns", node])
        _run(["ip", "link", "set", host_veth(node), "master", BRIDGE])
        _run(["ip", "link", "set", host_veth(node), "up"])
        _run(["ip", "-n", node, "link", "set", "lo", "up"])
        _run(["ip", "-n", node, "addr", "add", f"{addr(node)}/24", "dev", NODE_IF])
        _run(["ip", "-n", node, "link", "set", NODE_IF, "up"])
        # IPv4 on the subnet only: no IPv6 link-local chatter (DAD, router solicitations)
        _run(
            in_node(
                node, ["sh", "-c", "p=/proc/sys/net/ipv6/conf/all/disable_ipv6; [ ! -e $p ] || echo 1 > $p"], uts=False
            ),
            check=False,
        )
    for link in (BRIDGE, *map(host_veth, NODES)):
        p = Path(f"/proc/sys/net/ipv6/conf/{link}/disable_ipv6")
        if p.exists():
            try:
                p.write_text("1\n")
            except OSError:
                pass
    _hosts_write()


def _net_teardown() -> None:
    for node in NODES:
        _kill(ns_pids(node))
    for node in NODES:
        if Path(f"/run/netns/{node}").exists() or node in _netns_list():
            _run(["ip", "netns", "del", node], check=False)
    for node in NODES:
        if _link_exists(host_veth(node)):
            _run(["ip", "link", "del", host_veth(node)], check=False)
    if _link_exists(BRIDGE):
        _run(["ip", "link", "set", BRIDGE, "down"], check=False)
        _run(["ip", "link", "del", BRIDGE], check=False)
    _hosts_remove()
    # `ip netns del` frees the namespace (and the veth) asynchronously
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_link_exists(host_veth(n)) for n in NODES):
        time.sleep(0.1)


def _hosts_lines() -> List[str]:
    return [f"{addr(n)} {n} {HOSTS_TAG}" for n in NODES]


def _hosts_ok() -> bool:
    try:
        have = HOSTS_FILE.read_text().splitlines()
    except OSError:
        return False
    return [line for line in have if line.rstrip().endswith(HOSTS_TAG)] == _hosts_lines()


def _hosts_write() -> None:
    """Replace our tagged lines; written in place (/etc/hosts may be a bind mount)."""
    text = HOSTS_FILE.read_text() if HOSTS_FILE.exists() else ""
    keep = [line for line in text.splitlines() if not line.rstrip().endswith(HOSTS_TAG)]
    with open(HOSTS_FILE, "w") as f:
        f.write("\n".join(keep + _hosts_lines()) + "\n")


def _hosts_remove() -> None:
    try:
        text = HOSTS_FILE.read_text()
    except OSError:
        return
    lines = text.splitlines()
    keep = [line for line in lines if not line.rstrip().endswith(HOSTS_TAG)]
    if keep != lines:
        with open(HOSTS_FILE, "w") as f:
            f.write("\n".join(keep) + ("\n" if keep else ""))


# ============================================================================ faults
#
# All faults act on what a node SENDS (its eth0 egress), as netem on eth0 would:
#   partition(a, b)  clsact egress filters on a's and b's eth0 (u32 on the destination address)
#                    that redirect the packets to a DOWN ifb device ("vcdrop"): mirred drops
#                    them.  Needs only clsact, u32, mirred and ifb (no prio, no netem, no gact).
#   netem(node, ...) kernel netem as eth0's root qdisc when the kernel has sch_netem; otherwise
#                    the userspace shaper (vcluster/shaper.py): a clsact egress filter redirects
#                    every frame to its TAP device, it drops / holds them and sends them on.
#                    Seen: a 6.18 test kernel without CONFIG_NET_SCH_NETEM, _PRIO, NET_ACT_GACT.
# The clsact hook runs before the root qdisc, so partitions and kernel netem combine; the
# partition filters (pref 1xx) come before the shaper's (pref 1000).

_faults: Dict[str, Dict] = {}  # node -> {"netem": {...} or None, "blocked": set of nodes}
_shapers: Dict[str, Tuple[int, str]] = {}  # node -> (pid, tap) of its running shaper
SHAPER = VC_DIR / "shaper.py"
DROP_DEV = "vcdrop"
SHAPER_PREF = 1000
_netem_backend: List[str] = []


def _tc(node: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return _run(["tc", "-n", node, *args], check=check, timeout=10)


def netem_backend() -> str:
    """ "kernel" (tc netem) or "user" (vcluster/shaper.py); RDHPO_VCLUSTER_NETEM=kernel|user forces
    one.  Probed once per process on an ifb device in node4 (the cluster must be up)."""
    forced = os.environ.get("RDHPO_VCLUSTER_NETEM")
    if forced in ("kernel", "user"):
        return forced
    if not _netem_backend:
        node, dev = NODES[-1], "vcprobe"
        _run(["ip", "-n", node, "link", "add", dev, "type", "ifb"], check=False, timeout=10)
        try:
            ok = _tc(node, "qdisc", "add", "dev", dev, "root", "netem", "delay", "1ms", check=False).returncode == 0
        finally:
            _run(["ip", "-n", node, "link", "del", dev], check=False, timeout=10)
        _netem_backend.append("kernel" if ok else "user")
    return _netem_backend[0]


def _ensure_clsact(node: str) -> None:
    if "clsact" not in _tc(node, "qdisc", "show", "dev", NODE_IF, check=False).stdout:
        _tc(node, "qdisc", "add", "dev", NODE_IF, "clsact")


def _shaper_pidfile(node: str) -> Path:
    return RUN_DIR / f"shaper-{node}.pid"


def _start_shaper(node: str, loss: Optional[float], delay_ms: Optional[float], jitter_ms: Optional[float]) -> None:
    old = _shapers.get(node)
    tap = "vcshp1" if old and old[1] == "vcshp0" else "vcshp0"
    cmd = [
        sys.executable,
        str(SHAPER),
        node,
        "--tap",
        tap,
        "--dev",
        NODE_IF,
        "--loss",
        str(loss or 0),
        "--delay-ms",
        str(delay_ms or 0),
        "--jitter-ms",
        str(jitter_ms or 0),
    ]
    p = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, start_new_session=True
    )
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    line = p.stdout.readline().strip() if sel.select(timeout=10) else ""
    sel.close()
    if line != "ready":
        _kill([p.pid])
        err = p.stderr.read() if p.poll() is not None else ""
        raise ClusterError(f"shaper for {node} did not start: {line!r} {err.strip()[-500:]}")
    p.stdout.close()
    p.stderr.close()
    _ensure_clsact(node)
    # (u32 "replace" without a handle would ADD a second filter: delete, then add; for the few
    # ms between, the node's traffic passes unshaped)
    _tc(node, "filter", "del", "dev", NODE_IF, "egress", "pref", str(SHAPER_PREF), check=False)
    _tc(
        node,
        "filter",
        "add",
        "dev",
        NODE_IF,
        "egress",
        "pref",
        str(SHAPER_PREF),
        "protocol",
        "all",
        "u32",
        "match",
        "u32",
        "0",
        "0",
        "action",
        "mirred",
        "egress",
        "redirect",
        "dev",
        tap,
    )
    if old:
        _kill([old[0]])
    _shapers[node] = (p.pid, tap)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    _shaper_pidfile(node).write_text(f"{p.pid} {tap}\n")


def _stop_shaper(node: str) -> None:
    pid: Optional[int] = None
    if node in _shapers:
        pid = _shapers.pop(node)[0]
    elif _shaper_pidfile(node).exists():
        pid = _read_pid(_shaper_pidfile(node))
    if Path(f"/run/netns/{node}").exists():
        _tc(node, "filter", "del", "dev", NODE_IF, "egress", "pref", str(SHAPER_PREF), check=False)
    if pid and _alive(pid) and str(SHAPER) in _cmdline(pid):
        _kill([pid])
    _shaper_pidfile(node).unlink(missing_ok=True)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _state(node: str) -> Dict:
    _index(node)
    return _faults.setdefault(node, {"netem": None, "blocked": set()})


def netem(
    node: str, loss: Optional[float] = None, delay_ms: Optional[float] = None, jitter_ms: Optional[float] = None
) -> str:
    """Packet loss (percent) and/or delay (+ jitter) on everything the node sends (its eth0
    egress); replaces an earlier netem of the node; no arguments = none.  Partitions stay.
    Returns the backend used ("kernel" or "user", see :func:`netem_backend`)."""
    st = _state(node)
    st["netem"] = {"loss": loss, "delay_ms": delay_ms, "jitter_ms": jitter_ms} if (loss or delay_ms) else None
    backend = netem_backend()
    if backend == "kernel":
        if st["netem"]:
            args: List[str] = []
            if delay_ms:
                args += ["delay", f"{delay_ms}ms"] + ([f"{jitter_ms}ms"] if jitter_ms else [])
            if loss:
                args += ["loss", f"{loss}%"]
            _tc(node, "qdisc", "replace", "dev", NODE_IF, "root", "netem", *args)
        else:
            _tc(node, "qdisc", "del", "dev", NODE_IF, "root", check=False)
    elif st["netem"]:
        _start_shaper(node, loss, delay_ms, jitter_ms)
    else:
        _stop_shaper(node)
    return backend


def clear_netem(node: str) -> None:
    """Remove :func:`netem` loss/delay (partitions stay)."""
    netem(node)


def _block_pref(peer: str) -> str:
    return str(100 + _index(peer))


def partition(a: str, b: str) -> None:
    """Cut only the traffic between nodes a and b (both directions); all other traffic flows."""
    if a == b:
        raise ValueError("partition needs two different nodes")
    for x, y in ((a, b), (b, a)):
        st = _state(x)
        if y in st["blocked"]:
            continue
        if not _link_exists(DROP_DEV, x):
            _run(["ip", "-n", x, "link", "add", DROP_DEV, "type", "ifb"])  # stays DOWN: a sink
        _ensure_clsact(x)
        _tc(x, "filter", "del", "dev", NODE_IF, "egress", "pref", _block_pref(y), check=False)
        _tc(
            x,
            "filter",
            "add",
            "dev",
            NODE_IF,
            "egress",
            "pref",
            _block_pref(y),
            "protocol",
            "ip",
            "u32",
            "match",
            "ip",
            "dst",
            f"{addr(y)}/32",
            "action",
            "mirred",
            "egress",
            "redirect",
            "dev",
            DROP_DEV,
        )
        st["blocked"].add(y)


def heal(a: str, b: str) -> None:
    """Undo :func:`partition` (a, b)."""
    for x, y in ((a, b), (b, a)):
        _tc(x, "filter", "del", "dev", NODE_IF, "egress", "pref", _block_pref(y), check=False)
        _state(x)["blocked"].discard(y)


def link_down(node: str) -> None:
    """Take the host side of the node's veth down: the node loses its network (carrier off)."""
    _run(["ip", "link", "set", host_veth(node), "down"])


def link_up(node: str) -> None:
    _run(["ip", "link", "set", host_veth(node), "up"])


def crash_node(node: str) -> List[int]:
    """SIGKILL every process in the node's namespace at once (its slurmd too), as if the machine
    died; the namespace and its network (and a netem shaper, which runs outside it) stay.
    Returns the pids killed.  :func:`restart_node` (or :func:`reset`) brings slurmd back; SLURM
    marks the node DOWN after SlurmdTimeout."""
    killed: List[int] = []
    for _ in range(10):  # processes forked meanwhile: again
        pids = [p for p in ns_pids(node) if p != os.getpid()]
        if not pids:
            break
        _kill(pids, signal.SIGSTOP)  # nobody reacts to the others' deaths
        _kill(pids, signal.SIGKILL)
        killed += pids
        time.sleep(0.05)
    return sorted(set(killed))


def clear_faults() -> None:
    """Every link up, no netem, no partition (also those set by another process)."""
    _faults.clear()
    for node in NODES:
        _stop_shaper(node)
        if Path(f"/run/netns/{node}").exists():
            _tc(node, "qdisc", "del", "dev", NODE_IF, "clsact", check=False)
            _tc(node, "qdisc", "del", "dev", NODE_IF, "root", check=False)
            if _link_exists(DROP_DEV, node):
                _run(["ip", "-n", node, "link", "del", DROP_DEV], check=False)
        if _link_exists(host_veth(node)):
            _run(["ip", "link", "set", host_veth(node), "up"], check=False)
    for pid in _pids_with(str(SHAPER)):  # shapers whose pid file is gone
        if " --tap " in _cmdline(pid):
            _kill([pid])


def _pids_with(text: str) -> List[int]:
    return [
        int(d.name)
        for d in Path("/proc").iterdir()
        if d.name.isdigit() and int(d.name) != os.getpid() and text in _cmdline(int(d.name))
    ]


# ============================================================================ probes


def _start_server(node: str, seconds: float) -> Tuple[subprocess.Popen, int]:
    p = subprocess.Popen(
        in_node(node, [sys.executable, PROBE, "serve", addr(node), str(seconds)], uts=False),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )
    line = ""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    if sel.select(timeout=10):
        line = p.stdout.readline().strip()
    sel.close()
    if not line.isdigit():
        _stop(p)
        raise ClusterError(
            f"probe server on {node} did not start: {line!r} {p.stderr.read() if p.poll() is not None else ''}"
        )
    return p, int(line)


def _stop(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.communicate(timeout=5)
    except (subprocess.TimeoutExpired, ValueError):
        pass


def tcp_probe(src: str, dst: str, timeout: float = 2.0) -> Optional[float]:
    """Connect from a process in ``src`` to a listener in ``dst`` (python sockets): the connect
    time in seconds, or None when it failed (refused, unreachable, or no answer in ``timeout``)."""
    server, port = _start_server(dst, timeout + 10)
    try:
        out = _run(
            in_node(src, [sys.executable, PROBE, "tcp", addr(dst), str(port), str(timeout)], uts=False),
            timeout=timeout + 15,
            check=False,
        ).stdout.strip()
    finally:
        _stop(server)
    try:
        return float(out)
    except ValueError:
        return None


def udp_probe(src: str, dst: str, count: int = 100, wait: float = 1.0) -> Tuple[int, int, float]:
    """``count`` UDP datagrams from ``src`` to an echo in ``dst``: (sent, echoes received,
    median round trip in s, -1 when none came back)."""
    server, port = _start_server(dst, count * 0.01 + wait + 15)
    try:
        out = _run(
            in_node(src, [sys.executable, PROBE, "udp", addr(dst), str(port), str(count), str(wait)], uts=False),
            timeout=count * 0.02 + wait + 20,
            check=False,
        ).stdout.split()
    finally:
        _stop(server)
    if len(out) != 3:
        raise ClusterError(f"udp probe {src}->{dst} printed {out!r}")
    return int(out[0]), int(out[1]), float(out[2])


# ============================================================================ MPI across nodes


def _hosts_arg(hosts: Union[str, Mapping[str, int], Sequence[str]]) -> Tuple[str, int]:
    if isinstance(hosts, str):
        items = [h.split(":") for h in hosts.split(",") if h]
        pairs = [(h[0], int(h[1]) if len(h) > 1 else 1) for h in items]
    elif isinstance(hosts, Mapping):
        pairs = [(h, int(s)) for h, s in hosts.items()]
    else:
        pairs = [(h, 1) for h in hosts]
    for h, _ in pairs:
        _index(h)
    return ",".join(f"{h}:{s}" for h, s in pairs), sum(s for _, s in pairs)


def mpi_env(extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """Environment for an mpirun across nodes: this process's environment (MPI rank variables of
    an outer job removed), the root variables, the repository on PYTHONPATH, unbuffered Python,
    and no ``PRTE_MCA_rmaps_default_mapping_policy`` (it would put every rank on node1)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OMPI_COMM_WORLD", "PMIX_", "PMI_", "OMPI_MCA_orte", "PRTE_MCA_ess", "SLURM_"))
    }
    env.pop("PRTE_MCA_rmaps_default_mapping_policy", None)
    env.update(MPI_ENV)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")])
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env


def mpirun_path() -> str:
    here = Path(sys.executable).parent / "mpirun"
    if here.exists():
        return str(here)
    found = shutil.which("mpirun")
    if not found:
        raise ClusterError("mpirun not found (install the 'local' extra)")
    return found


def mpirun_command(
    args: Sequence[Union[str, os.PathLike]],
    hosts: Union[str, Mapping[str, int], Sequence[str]],
    n: Optional[int] = None,
    python: bool = True,
    launch_node: str = "node1",
    map_by: Optional[str] = "slot:oversubscribe",
    ft: bool = True,
    mpirun_args: Sequence[str] = (),
    env: Optional[Mapping[str, str]] = None,
) -> Tuple[List[str], Dict[str, str]]:
    """(argv, env) of ``mpirun`` over virtual nodes, started inside ``launch_node``.

    hosts: ``{"node1": 1, "node2": 2}``, ``"node1:1,node2:2"`` or ``["node1", "node2"]`` (1 slot
    each); n defaults to the total slots.  The default ``--map-by slot:oversubscribe`` fills the
    nodes in the order given (rank 0 on the first).  ``--with-ft ulfm`` when ft.  Daemons on other
    nodes are started through :data:`AGENT` (``--mca plm_ssh_agent``); TCP and out-of-band traffic
    use only the subnet.  ``args`` are the Python interpreter's (python=True) or a full command.
    """
    host_str, slots = _hosts_arg(hosts)
    cmd = [mpirun_path()]
    if ft:
        cmd += ["--with-ft", "ulfm"]
    cmd += ["--mca", "plm_ssh_agent", str(AGENT), "--host", host_str, "-n", str(n or slots)]
    if map_by:
        cmd += ["--map-by", map_by]
    cmd += list(MPI_NET_ARGS) + list(mpirun_args)
    cmd += ([sys.executable] if python else []) + [str(a) for a in args]
    return in_node(launch_node, cmd), mpi_env(env)


class ClusterJob:
    """A command (e.g. from :func:`mpirun_command`) in its own session, output to ``log``.

    ``wait(timeout)`` returns the exit code, or kills everything and raises TimeoutError (with the
    log tail).  ``kill()`` (also on leaving a ``with`` block) SIGKILLs the session and every job
    process left on the cluster's nodes (:func:`kill_job_processes`: not the slurmds)."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Optional[Mapping[str, str]] = None,
        log: Union[str, os.PathLike, None] = None,
        cwd: Union[str, os.PathLike, None] = None,
    ) -> None:
        self.argv = list(argv)
        self.log = Path(log) if log else Path(f"/tmp/vcluster-job-{os.getpid()}-{time.monotonic_ns()}.log")
        self.fh = open(self.log, "w")
        self.t0 = time.monotonic()
        self.wall: Optional[float] = None
        self.p = subprocess.Popen(
            self.argv,
            stdout=self.fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=None if env is None else dict(env),
            cwd=None if cwd is None else str(cwd),
            start_new_session=True,
        )

    def wait(self, timeout: float) -> int:
        try:
            rc = self.p.wait(timeout=max(0.1, timeout - (time.monotonic() - self.t0)))
        except subprocess.TimeoutExpired:
            left = processes_report()
            self.kill()
            raise TimeoutError(
                f"job did not end within {timeout:g} s; processes on the nodes:\n{left}\n"
                f"log tail:\n{self.text()[-3000:]}"
            ) from None
        self.wall = time.monotonic() - self.t0
        return rc

    def poll(self) -> Optional[int]:
        return self.p.poll()

    def text(self) -> str:
        try:
            self.fh.flush()
        except ValueError:
            pass
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        kill_job_processes()
        try:
            self.fh.close()
        except ValueError:
            pass

    def __enter__(self) -> "ClusterJob":
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


DAEMONS = (SLURMD_NAME,)


def kill_job_processes(nodes: Iterable[str] = NODES, keep: Sequence[str] = DAEMONS) -> List[int]:
    """SIGKILL every process in the nodes' namespaces except the daemons (slurmd); returns them."""
    killed: List[int] = []
    for _ in range(5):
        pids = [p for node in nodes for p in ns_pids(node) if p != os.getpid() and _comm(p) not in keep and _alive(p)]
        if not pids:
            break
        _kill(pids)
        killed += pids
        time.sleep(0.1)
    return sorted(set(killed))


def processes_report(nodes: Iterable[str] = NODES) -> str:
    """``ps`` lines of the processes in each node (diagnosis of a job that does not end)."""
    out = []
    for node in nodes:
        pids = ns_pids(node)
        if not pids:
            out.append(f"{node}: (no processes)")
            continue
        try:
            ps = _run(
                ["ps", "-o", "pid,ppid,stat,wchan:20,etime,args", "-p", ",".join(map(str, pids))],
                check=False,
                timeout=10,
            ).stdout
        except ClusterError as exc:
            ps = str(exc)
        out.append(f"{node}:\n{ps.rstrip()}")
    return "\n".join(out)


# ============================================================================ SLURM


def slurm_env(extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """This process's environment with SLURM_CONF pointing at the virtual cluster (SLURM_* of an
    outer job and PRTE_MCA_rmaps_default_mapping_policy removed), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.pop("PRTE_MCA_rmaps_default_mapping_policy", None)  # would put every rank on one node
    env["SLURM_CONF"] = str(SLURM_CONF)
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env


def scmd(
    args: Sequence[Union[str, os.PathLike]],
    timeout: float = CMD_TIMEOUT_S,
    check: bool = True,
    env: Optional[Mapping[str, str]] = None,
    cwd: Union[str, os.PathLike, None] = None,
) -> subprocess.CompletedProcess:
    """Run a SLURM client command (sinfo, scontrol, squeue...) against the virtual cluster."""
    return _run(args, timeout=timeout, check=check, env=slurm_env(env), cwd=cwd)


def _render_conf() -> str:
    nodes = "\n".join(
        f"NodeName={n} NodeAddr={addr(n)} CPUs={NODE_CPUS} RealMemory={NODE_MEMORY_MB} State=UNKNOWN" for n in NODES
    )
    tpl = string.Template((VC_DIR / "slurm.conf.in").read_text())
    return tpl.substitute(
        conf=SLURM_CONF,
        cluster_name=CLUSTER_NAME,
        host=socket.gethostname().split(".")[0],
        bridge_addr=BRIDGE_ADDR,
        ctld_port=CTLD_PORT,
        slurmd_port=SLURMD_PORT,
        srun_ports=SRUN_PORTS,
        state_dir=STATE_DIR,
        spool_dir=SPOOL_DIR,
        run_dir=RUN_DIR,
        log_dir=LOG_DIR,
        slurmd_timeout=SLURMD_TIMEOUT_S,
        node_lines=nodes,
        partition=PARTITION,
        node_list=",".join(NODES),
    )


def _write_conf() -> bool:
    """Write slurm.conf and cgroup.conf; True when slurm.conf changed."""
    for d in (CONF_DIR, STATE_DIR, SPOOL_DIR, RUN_DIR, LOG_DIR):
        d.mkdir(parents=True, exist_ok=True)
    text = _render_conf()
    old = SLURM_CONF.read_text() if SLURM_CONF.exists() else None
    SLURM_CONF.write_text(text)
    (CONF_DIR / "cgroup.conf").write_text((VC_DIR / "cgroup.conf").read_text())
    return old != text


def _munge_ok() -> bool:
    try:
        m = subprocess.run(["munge", "-n"], capture_output=True, timeout=5)
        if m.returncode != 0:
            return False
        u = subprocess.run(["unmunge"], input=m.stdout, capture_output=True, timeout=5)
        return u.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _ensure_munge() -> None:
    if _munge_ok():
        return
    for d, mode in (("/etc/munge", 0o700), ("/run/munge", 0o755), ("/var/log/munge", 0o700), ("/var/lib/munge", 0o700)):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, mode)
        shutil.chown(d, "munge", "munge")
    key = Path("/etc/munge/munge.key")
    if not key.exists() or key.stat().st_size == 0:
        if shutil.which("mungekey"):
            _run(["mungekey", "--create", f"--keyfile={key}", "--force"])
        else:
            key.write_bytes(os.urandom(1024))
    shutil.chown(key, "munge", "munge")
    os.chmod(key, 0o400)
    stale = _pids_named("munged")
    if stale:
        _kill(stale, signal.SIGTERM)
        time.sleep(1)
    Path("/run/munge/munged.pid").unlink(missing_ok=True)
    _run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=False)
    BASE.mkdir(parents=True, exist_ok=True)
    MUNGE_MARK.write_text("1\n")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _munge_ok():
            return
        time.sleep(0.2)
    raise ClusterError("munged would not start")


def _daemon_bin(name: str, real: str) -> str:
    """BIN_DIR/name, a symlink to the real daemon (its process name is then ``name``)."""
    target = shutil.which(real) or f"/usr/sbin/{real}"
    link = BIN_DIR / name
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink() or os.readlink(link) != target:
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    return str(link)


def _ctld_pid() -> Optional[int]:
    return _read_pid(RUN_DIR / "slurmctld.pid")


def slurmd_pid(node: str) -> Optional[int]:
    """The node's live slurmd (by its pid file, checked to be in the node's namespace)."""
    pid = _read_pid(RUN_DIR / f"slurmd-{node}.pid")
    if pid is not None and _comm(pid) == SLURMD_NAME and pid in ns_pids(node):
        return pid
    for p in ns_pids(node):
        if _comm(p) == SLURMD_NAME and _alive(p):
            return p
    return None


def _ctld_answers() -> bool:
    try:
        return "UP" in scmd(["scontrol", "ping"], timeout=10, check=False).stdout
    except ClusterError:
        return False


def _start_ctld() -> None:
    pid = _ctld_pid()
    if pid:
        _kill([pid], signal.SIGTERM)
        _wait_gone([pid], 10)
    p = _run([_daemon_bin(CTLD_NAME, "slurmctld"), "-f", SLURM_CONF, "-c", "-i"], check=False, env=slurm_env())
    if p.returncode != 0:
        raise ClusterError(f"slurmctld would not start: {p.stderr.strip()} {_tail(LOG_DIR / 'slurmctld.log')}")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if _ctld_answers():
            return
        time.sleep(0.2)
    raise ClusterError(f"slurmctld does not answer: {_tail(LOG_DIR / 'slurmctld.log')}")


def start_slurmd(node: str) -> None:
    """(Re)start the node's slurmd inside the node: ``ip netns exec NODE unshare --uts sh -c
    "hostname NODE; slurmd -f CONF -N NODE"``.  slurmd daemonizes and stays in the namespaces."""
    old = slurmd_pid(node)
    if old:
        _kill([old], signal.SIGTERM)
        _wait_gone([old], 10)
    (SPOOL_DIR / node).mkdir(parents=True, exist_ok=True)
    p = _run(
        in_node(node, [_daemon_bin(SLURMD_NAME, "slurmd"), "-f", SLURM_CONF, "-N", node]),
        check=False,
        env=slurm_env(),
        timeout=30,
    )
    if p.returncode != 0:
        raise ClusterError(
            f"slurmd on {node} would not start: {p.stderr.strip()} {_tail(LOG_DIR / f'slurmd-{node}.log')}"
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if slurmd_pid(node):
            return
        time.sleep(0.1)
    raise ClusterError(f"slurmd on {node} exited right after start: {_tail(LOG_DIR / f'slurmd-{node}.log')}")


def restart_node(node: str, wait: float = 30.0) -> None:
    """After :func:`crash_node`: start the node's slurmd again and wait (bounded) until SLURM
    uses the node again (ReturnToService=2; a DOWN node is resumed if it stays down)."""
    if not slurmd_pid(node):
        start_slurmd(node)
    wait_nodes([node], timeout=wait)


def node_states() -> Dict[str, str]:
    """{node: state} from sinfo (e.g. "idle", "alloc", "down*", "idle*" = not responding)."""
    p = scmd(["sinfo", "-h", "-N", "-o", "%N %T"], timeout=10, check=False)
    out: Dict[str, str] = {}
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = parts[1].lower()
    return out


USABLE = ("idle", "mixed", "allocated", "completing")
_NOT_RESPONDING_S = 12.0  # see wait_nodes


def wait_nodes(nodes: Iterable[str] = NODES, timeout: float = 30.0, states: Sequence[str] = USABLE) -> Dict[str, str]:
    """Wait (bounded) until every node is in one of ``states``; resumes DOWN/DRAINED ones once.
    A node still "not responding" (``down*``, ``idle*``) after ``_NOT_RESPONDING_S`` gets its
    slurmd restarted once: after a long link cut slurmctld may not ping it again within the wait,
    and a fresh slurmd registers at once (seen in CI: node3 ``down*`` 40 s after its link came up)."""
    nodes = list(nodes)
    deadline = time.monotonic() + timeout
    resumed: Set[str] = set()
    restarted: Set[str] = set()
    t0 = time.monotonic()
    st: Dict[str, str] = {}
    while True:
        st = node_states()
        bad = [n for n in nodes if st.get(n, "?") not in states]
        if not bad:
            return st
        waited = time.monotonic() - t0
        if waited > 2:
            for n in bad:
                s = st.get(n, "")
                if n not in resumed and (s.startswith(("down", "drain", "fail")) and not s.endswith("*")):
                    scmd(["scontrol", "update", f"nodename={n}", "state=resume"], check=False, timeout=10)
                    resumed.add(n)
                elif n not in restarted and s.endswith("*") and waited > _NOT_RESPONDING_S:
                    restarted.add(n)
                    try:
                        start_slurmd(n)
                    except ClusterError:
                        pass  # the wait below still bounds it and says which node
        if time.monotonic() > deadline:
            raise ClusterError(f"nodes not usable after {timeout:g} s: {st}")
        time.sleep(0.3)


def _slurm_up() -> bool:
    return _ctld_pid() is not None and _ctld_answers() and all(slurmd_pid(n) for n in NODES)


def _wait_gone(pids: Iterable[int], timeout: float) -> None:
    pids = list(pids)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    _kill([p for p in pids if _alive(p)])


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


# ---------------------------------------------------------------------------- jobs


def sbatch(
    script_args: Sequence[Union[str, os.PathLike]],
    env: Optional[Mapping[str, str]] = None,
    extra_args: Iterable[str] = (),
    cwd: Union[str, os.PathLike, None] = None,
) -> str:
    """``sbatch --parsable [extra_args] SCRIPT ARGS`` on the virtual cluster; returns the job id.
    ``env`` is added to this process's environment (the job inherits it: --export=ALL)."""
    cmd = ["sbatch", "--parsable", *[str(a) for a in extra_args], *[str(a) for a in script_args]]
    p = scmd(cmd, env=env, cwd=cwd)
    job = p.stdout.strip().split(";")[0]
    if not job.isdigit():
        raise ClusterError(f"sbatch gave no job id: {p.stdout!r} {p.stderr!r}")
    _submitted[job] = time.time()
    return job


_submitted: Dict[str, float] = {}


def job_info(job: str) -> Optional[Dict[str, str]]:
    from slurm_cluster import _parse_fields

    p = scmd(["scontrol", "show", "job", "-o", str(job)], check=False, timeout=10)
    if p.returncode != 0 or not p.stdout.strip():
        return None
    return _parse_fields(p.stdout)


def _jobcomp(job: str) -> Optional[Dict[str, str]]:
    from slurm_cluster import _parse_fields

    try:
        lines = JOBCOMP_LOG.read_text(errors="replace").splitlines()
    except OSError:
        return None
    found = None
    for line in lines:
        if line.startswith(f"JobId={job} "):
            found = _parse_fields(line)
    return found


def wait_job(job: str, timeout: float, poll: float = 0.5, hopeless_after: float = 10.0):
    """Wait (bounded) for a final state; returns a ``slurm_cluster.JobStatus`` (a str such as
    "COMPLETED" with .restarts, .exit_code...).  TimeoutError after ``timeout``; ClusterError when
    PENDING for ``hopeless_after`` s with a reason that never resolves."""
    from slurm_cluster import HOPELESS_REASONS, TERMINAL_STATES, JobStatus

    deadline = time.monotonic() + timeout
    last: Optional[Dict[str, str]] = None
    hopeless: Optional[float] = None
    while True:
        info = job_info(job)
        if info is None:
            rec = _jobcomp(job)
            if rec is not None and rec.get("JobState") in TERMINAL_STATES:
                return JobStatus(rec)
        else:
            last = info
            if info.get("JobState") in TERMINAL_STATES:
                return JobStatus(info)
            if info.get("JobState") == "PENDING" and info.get("Reason") in HOPELESS_REASONS:
                hopeless = hopeless or time.monotonic()
                if time.monotonic() - hopeless > hopeless_after:
                    raise ClusterError(f"job {job} cannot start: PENDING, Reason={info.get('Reason')}")
            else:
                hopeless = None
        if time.monotonic() >= deadline:
            seen = None if last is None else f"{last.get('JobState')} (Reason={last.get('Reason')})"
            raise TimeoutError(f"job {job} not finished after {timeout:g} s; last state {seen}")
        time.sleep(poll)


def cancel(job: Optional[str] = None) -> None:
    """scancel one job, or (None) every job on the virtual cluster; never raises."""
    try:
        scmd(["scancel", str(job)] if job else ["scancel", "--partition", PARTITION], check=False, timeout=15)
    except ClusterError:
        pass


def active_jobs() -> List[str]:
    try:
        p = scmd(["squeue", "-h", "-o", "%i %T"], check=False, timeout=10)
    except ClusterError:
        return []
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


# ============================================================================ the cluster

_faults_checked: List[bool] = []
_failed: Dict[bool, str] = {}  # slurm? -> the reason setup failed (not retried in this process)


def setup_allowance() -> float:
    """Seconds a test's timeout should add for :func:`ensure_cluster`: a little when the cluster
    is up (a test may have torn it down and the next one rebuilds it: about 5 s), the apt budget
    when the packages are missing."""
    if os.environ.get("RDHPO_SKIP_CLUSTER") == "1":
        return 0.0
    try:
        if _network_complete() and _slurm_up():
            return 15.0
        if _packages_installed():
            return 60.0
    except Exception:  # noqa: BLE001
        pass
    return SETUP_ALLOWANCE_S


def _packages_installed() -> bool:
    return all(shutil.which(c) for c in ("sbatch", "srun", "scontrol", "sinfo", "slurmctld", "slurmd", "munged"))


def ensure_cluster(slurm: bool = True) -> Optional[str]:
    """Bring the virtual cluster up; idempotent (0.2-0.5 s when it is up: only checks).

    Returns None when it is up, else the reason it cannot be (for pytest.skip):
    RDHPO_SKIP_CLUSTER=1, not root, no ``ip``/``tc``/``unshare``, the subnet is used by something
    else, ``ip netns add`` refused, apt failed, munged/slurmctld/slurmd would not start or the
    nodes stay down.  A failure is remembered: later calls in this process return it at once.
    ``slurm=False``: only the network (the nodes, for plain mpirun jobs).
    ``ensure_cluster.last_s``: seconds of the last successful call; ``ensure_cluster.setups``: one
    dict of seconds per call that set something up (total, network, install, slurm)."""
    if os.environ.get("RDHPO_SKIP_CLUSTER") == "1":
        return "virtual cluster disabled by RDHPO_SKIP_CLUSTER=1"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return f"virtual cluster needs root (network namespaces), uid {os.getuid()}"
    for tool in ("ip", "tc", "unshare"):
        if shutil.which(tool) is None:
            return f"virtual cluster needs '{tool}' (iproute2 / util-linux)"
    for need_slurm, why in _failed.items():
        if need_slurm <= slurm:  # a network failure also fails a SLURM setup
            return why
    t0 = time.monotonic()
    timings: Dict[str, float] = {}
    try:
        if not _network_complete():
            _net_setup()
            timings["network"] = time.monotonic() - t0
        elif not _faults_checked:
            clear_faults()  # left over from a session that was killed
        _faults_checked.append(True)
        if slurm:
            t1 = time.monotonic()
            if not _packages_installed():
                reason = _install()
                if reason:
                    _failed[True] = reason
                    return reason
                timings["install"] = time.monotonic() - t1
            t1 = time.monotonic()
            _ensure_munge()
            changed = _write_conf()
            if changed or not _slurm_up():
                _stop_slurm()
                _start_ctld()
                for node in NODES:
                    start_slurmd(node)
            wait_nodes(NODES, timeout=40)
            timings["slurm"] = time.monotonic() - t1
    except (ClusterError, OSError) as exc:
        why = (
            f"virtual cluster: {exc}"
            if isinstance(exc, ClusterError)
            else f"virtual cluster: {type(exc).__name__}: {exc}"
        )
        _failed[slurm] = why
        return why
    ensure_cluster.last_s = time.monotonic() - t0  # type: ignore[attr-defined]
    if len(timings) > (1 if slurm else 0) or "install" in timings:  # something was set up
        ensure_cluster.setups.append({"total": ensure_cluster.last_s, **timings})  # type: ignore[attr-defined]
    return None


ensure_cluster.setups = []  # type: ignore[attr-defined]   # [{"total", "network", "install", "slurm"}] s


def _install() -> Optional[str]:
    p = subprocess.Popen(
        ["bash", str(INSTALL_SCRIPT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        out, err = p.communicate(timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.communicate(timeout=10)
        return f"virtual cluster: installing slurm-wlm/munge took more than {INSTALL_TIMEOUT_S:g} s"
    if p.returncode == 0:
        return None
    tail = "\n".join((err or out).strip().splitlines()[-10:])
    what = {2: "needs root", 3: "apt-get install slurm-wlm munge failed"}.get(
        p.returncode, f"install.sh exited {p.returncode}"
    )
    return f"virtual cluster: {what}\n{tail}"


def _stop_slurm() -> None:
    pids = [p for p in [_ctld_pid()] if p]
    for node in NODES:
        for p in ns_pids(node):
            if _comm(p) in (SLURMD_NAME, "slurmstepd"):
                pids.append(p)
    for f in RUN_DIR.glob("slurmd-*.pid") if RUN_DIR.exists() else []:
        pid = _read_pid(f)
        if pid and _comm(pid) == SLURMD_NAME:
            pids.append(pid)
    _kill(pids, signal.SIGTERM)
    _wait_gone(pids, 10)


def reset(wait: float = 40.0) -> None:
    """Between tests: cancel every job, kill job processes left on the nodes, clear faults (links
    up, no netem/partition), restart slurmds that died (crash_node), wait until nodes are usable."""
    clear_faults()
    slurm = SLURM_CONF.exists() and _ctld_pid() is not None
    if slurm:
        cancel()
        deadline = time.monotonic() + 15
        while active_jobs() and time.monotonic() < deadline:
            time.sleep(0.3)
    kill_job_processes()
    if slurm:
        for node in NODES:
            if not slurmd_pid(node):
                start_slurmd(node)
        wait_nodes(NODES, timeout=wait)


def teardown_cluster() -> None:
    """Remove everything :func:`ensure_cluster` made: jobs and processes on the nodes, slurmd,
    slurmctld (and munged when this module started it and no other slurmctld uses it), the
    namespaces, veths, bridge, the tagged /etc/hosts lines and the state directory (logs in
    /var/log/rdhpo-vcluster stay).  Never raises; safe to call when nothing is up."""
    try:
        if SLURM_CONF.exists() and _ctld_pid():
            cancel()
    except Exception:  # noqa: BLE001
        pass
    try:
        clear_faults()
    except Exception:  # noqa: BLE001
        pass
    try:
        _stop_slurm()
    except Exception:  # noqa: BLE001
        pass
    for node in NODES:
        _kill(ns_pids(node))
    try:
        _net_teardown()
    except Exception:  # noqa: BLE001
        pass
    if MUNGE_MARK.exists() and not _pids_named("slurmctld"):
        munged = _pids_named("munged")
        _kill(munged, signal.SIGTERM)
        _wait_gone(munged, 5)
    shutil.rmtree(BASE, ignore_errors=True)


def leftovers() -> List[str]:
    """What of the cluster is still there (empty after a clean teardown): for checks."""
    out = []
    names = set(_netns_list())
    out += [f"netns {n}" for n in NODES if n in names]
    out += [f"link {link}" for link in [BRIDGE, *map(host_veth, NODES)] if _link_exists(link)]
    try:
        out += [
            f"/etc/hosts: {line}" for line in HOSTS_FILE.read_text().splitlines() if line.rstrip().endswith(HOSTS_TAG)
        ]
    except OSError:
        pass
    host_net = os.readlink("/proc/self/ns/net")
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or not _alive(int(d.name)):
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            net = os.readlink(d / "ns" / "net")
        except OSError:
            continue
        comm = _comm(int(d.name))
        if comm in (CTLD_NAME, SLURMD_NAME) or str(BASE) in cmd or str(SHAPER) in cmd:
            out.append(f"daemon {d.name} {comm}: {cmd[:120]}")
        elif net != host_net:
            out.append(f"process {d.name} in another network namespace: {cmd[:120]}")
    return out


# ============================================================================ misc for tests


def open_log_env(watch: Iterable[Union[str, os.PathLike]], log: Union[str, os.PathLike]) -> Dict[str, str]:
    """Env vars that make every Python process of a job log its open() of the ``watch`` files
    to ``log`` (JSON lines: host, pid, rank, path): see vcluster/openlog/sitecustomize.py.
    Merge the PYTHONPATH with care: this puts the hook directory first."""
    return {
        "VCLUSTER_WATCH_OPEN": os.pathsep.join(str(w) for w in watch),
        "VCLUSTER_OPEN_LOG": str(log),
        "PYTHONPATH": os.pathsep.join([str(OPENLOG_DIR), str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        ),
    }


def read_open_log(log: Union[str, os.PathLike]) -> List[dict]:
    try:
        return [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def shell_quote(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


if __name__ == "__main__":  # python tests/system/vcluster.py up|down|status
    what = sys.argv[1] if len(sys.argv) > 1 else "status"
    if what == "up":
        r = ensure_cluster()
        print(r or f"virtual cluster up ({getattr(ensure_cluster, 'last_s', 0):.1f} s)")
        sys.exit(1 if r else 0)
    elif what == "down":
        teardown_cluster()
        print("left:", leftovers() or "nothing")
    else:
        print("network complete:", _network_complete(), "| slurm up:", _slurm_up() if SLURM_CONF.exists() else False)
        print("left:", leftovers() or "nothing")
