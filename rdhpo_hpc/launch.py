"""Roles by rank: picks the transport and the store, starts the node, runs coordinator or worker.

Shared by the CLI (``rdhpo run``) and the Python API (``rd.optimize``).  Under mpirun every rank
calls :func:`run_study`; without mpirun (one process) the coordinator runs in the calling
thread and one worker in a second thread over the in-process transport — the same loops.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, TextIO

from .comm.base import Transport
from . import hooks
from .comm.inproc import Hub
from .config import StudyConfig, make_objective
from .coordination import records as rec
from .coordinator import CoordinatorLoop
from .errors import ConfigError
from .faults import Fault, FaultPlan, check_ranks, parse_faults
from .node import GossipSettings, Node
from .results import StudyResult, result_from_records
from .storage.base import MemoryStore, MultiStore, Store
from .storage.journal import JournalStore, is_journal, journal_path, maybe_read_journal
from .strategy import make_strategy, warn_initial_design
from .exitcodes import ExitCode
from .log import logger
from .storage.journal import heartbeat_path
from .worker import WorkerLoop


@dataclass
class Outcome:
    exit_code: int
    result: Optional[StudyResult]  # on the coordinator rank only
    rank: int = 0
    error: Optional[str] = None  # the ConfigError message when the study was rejected
    finalize: bool = False  # MPI_Finalize is safe: the coordinator said no peer failed


def settings_of(cfg: StudyConfig) -> GossipSettings:
    ft = cfg.ft
    return GossipSettings(
        gossip_interval=ft.gossip_interval, fanout=ft.fanout, t_fail=ft.t_fail, membership=ft.membership
    )


# -- the results store --------------------------------------------------------------------------
def existing_records(path: str) -> Optional[list[dict]]:
    """Records of an earlier run: the journal when present (it is the complete log), else HDF5."""
    recs = maybe_read_journal(path)
    if recs is None and os.path.exists(path):
        from .storage.hdf5 import try_read

        recs = try_read(path)
    return recs


def has_records(path: str) -> bool:
    """``existing_records(path) is not None`` without reading the records (a 100,000-trial
    journal takes seconds to parse)."""
    if is_journal(journal_path(path)):
        return True
    from .storage.hdf5 import can_open

    return can_open(path)


def open_store(cfg: StudyConfig, resume: bool, overwrite: bool) -> tuple[Store, list[dict]]:
    """Journal + HDF5 view for a study with an output path; returns (store, records to replay)."""
    if cfg.output is None:
        return MemoryStore(), []
    from .storage.hdf5 import HDF5Store, catch_up
    from .storage.paths import check_output_path

    path = cfg.output
    check_output_path(path)  # never replace a file that is not rdhpo's (nor a directory)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    old = existing_records(path) if (os.path.exists(path) or os.path.exists(journal_path(path))) else None
    if old is not None and not resume and not overwrite:
        raise ConfigError(
            f"output {path!r} already holds a study; pass --resume to continue it or --overwrite to start afresh"
        )
    if old is not None and resume:
        study = next((r for r in old if r.get("k") == "study"), {})
        if study.get("space") not in (None, cfg.space.to_dict()) or study.get("optimizer") not in (None, cfg.optimizer):
            raise ConfigError(
                f"--resume: {path!r} holds a study with a different space or optimizer "
                f"({study.get('optimizer')!r}); use another output path"
            )
        old = [r for r in old if r.get("k") != "end"]
        catch_up(path, old)  # the HDF5 view made whole again from the log (rows missing appended)
        journal = JournalStore(journal_path(path))  # created when missing; a torn last line dropped
        if os.path.getsize(journal.path) == 0:  # the records came from the HDF5 file
            for r in old:
                journal.append(r)
        return MultiStore(journal, HDF5Store(path, "a")), old
    for p in (path, journal_path(path)):
        if os.path.exists(p):
            os.remove(p)
    return MultiStore(JournalStore(journal_path(path)), HDF5Store(path, "w")), []


# -- roles --------------------------------------------------------------------------------------
def coordinate(
    cfg: StudyConfig,
    node: Node,
    resume: bool = False,
    overwrite: bool = False,
    out: TextIO = sys.stdout,
    versions: Optional[dict] = None,
    on_loop: Callable[[CoordinatorLoop], None] = lambda loop: None,
    takeover_from: Optional[int] = None,
) -> Outcome:
    """Run the coordinator role.  ``takeover_from``: this rank replaces that dead coordinator
    (ULFM): the journal is replayed and attempts still running on live workers are adopted."""
    loop, store, old = start_coordinator(cfg, node, resume, overwrite, out, versions, takeover_from)
    close_hooks = hooks.attach(loop, cfg, old)  # callbacks, checkpoint retention: trials from now on
    on_loop(loop)
    try:
        code = loop.run()
    finally:
        close_hooks()
        store.close()
    records = store.records() if cfg.output is None else existing_records(cfg.output) or []
    return Outcome(code, result_from_records(records, cfg.output), node.rank, finalize=loop.finalize_ok)


def start_coordinator(
    cfg: StudyConfig,
    node: Any,
    resume: bool = False,
    overwrite: bool = False,
    out: TextIO = sys.stdout,
    versions: Optional[dict] = None,
    takeover_from: Optional[int] = None,
) -> tuple[CoordinatorLoop, Store, list[dict]]:
    """Everything before the coordinator's first dispatch: the store opened (the journal read and
    the HDF5 view caught up on resume / takeover), the loop built and the journal replayed.
    Returns (loop, store, records replayed).  ``bench/resume.py`` times it."""
    if takeover_from is not None:
        resume, overwrite = True, False
    with _gc_paused():  # ~1M records: the cyclic GC would re-scan them again and again
        store, old = open_store(cfg, resume, overwrite)
        optimizer, scheduler = make_strategy(
            cfg.optimizer, cfg.space, cfg.direction, cfg.seed, initial_points=cfg.initial_points, **cfg.options
        )
        if takeover_from is None:  # with the study's final settings (command-line overrides included)
            warn_initial_design(cfg.optimizer, optimizer, cfg.max_trials)
        loop = CoordinatorLoop(cfg, node, store, optimizer, scheduler, out=out)
        if takeover_from is not None:
            _fence_old_coordinator(old, takeover_from, node)
            loop.replay(old, adopt=True)
            loop.event(
                "takeover",
                node.rank,
                f"rank {node.rank} replaces coordinator rank {takeover_from}: "
                f"replayed {len(old)} records{_replay_note(loop)}, {len(loop.orphans)} running attempts "
                f"to adopt, {len(loop.requeue)} trials re-queued",
            )
            print(
                f"[rdhpo] rank {node.rank} took over as coordinator (rank {takeover_from} is dead)",
                file=out,
                flush=True,
            )
        elif old:
            loop.replay(old)
            loop.event(
                "resume",
                node.rank,
                f"replayed {len(old)} records{_replay_note(loop)}; {len(loop.requeue)} trials re-queued",
            )
            print(
                f"[rdhpo] resuming {cfg.output}: {loop.table.done} trials done, {len(loop.requeue)} to re-run",
                file=out,
                flush=True,
            )
        else:
            store.append(rec.study(cfg.describe(), loop.start_time, versions))
        if len(old) >= _FREEZE_AT:  # what survives (table, history) is never scanned again
            gc.freeze()
    return loop, store, old


_FREEZE_AT = 10_000  # records: below, the collector's first passes after the replay are short


def _replay_note(loop: CoordinatorLoop) -> str:
    r = loop.replayed
    if r is None or r.snapshot_trial is None:
        return " (every suggestion asked again)"
    return f" (optimizer state from the snapshot of trial {r.snapshot_trial}, {r.asked} asks run again)"


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while the journal is read and replayed (it would scan the
    growing heap of records again and again: 2-5x the time at 100,000 trials)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _fence_old_coordinator(records: list[dict], old: int, node: Node) -> None:
    """A coordinator declared dead by gossip may only be hung: SIGKILL it (same host) before
    writing, so it can never append to the files again.  Not needed when MPI saw it fail."""
    if old in node.transport.failed():
        return
    from .procs import kill_local

    start = [
        r for r in records if r.get("k") == "event" and r.get("kind") == "coordinator-start" and r.get("rank") == old
    ]
    if start:
        kv = dict(part.split("=", 1) for part in (start[-1].get("detail") or "").split() if "=" in part)
        if kv.get("pid", "").isdigit():
            kill_local([(kv.get("host", ""), int(kv["pid"]))], node.transport.host())


def work(cfg: StudyConfig, node: Node, local_index: int = 0, hard_exit: Callable[[], None] = lambda: None) -> Outcome:
    from .training import describe_device, pick_device

    objective = make_objective(cfg)
    prefer = cfg.device if cfg.device != "auto" else "auto"
    device = pick_device(local_index, prefer) if _uses_torch(cfg) else "cpu"
    info = describe_device(device) if _uses_torch(cfg) else {"device": "cpu"}
    ckpt = hooks.checkpoint_root(cfg)
    loop = WorkerLoop(
        node,
        objective,
        info,
        checkpoint_root=ckpt,
        trial_time_limit=cfg.ft.trial_time_limit,
        decision_timeout=cfg.ft.decision_timeout,
        hard_exit=hard_exit,
        on_trial_end=_free_device_memory if _uses_torch(cfg) else (lambda: None),
    )
    loop.shrink_timeout = max(cfg.ft.end_grace, 1.0)
    code = loop.run()
    return Outcome(code, None, node.rank, finalize=loop.finalize_ok)


def _uses_torch(cfg: StudyConfig) -> bool:
    return isinstance(cfg.objective, dict) and "builtin" in cfg.objective or cfg.device == "cuda"


def _free_device_memory() -> None:
    """After each attempt: release cached GPU memory (matters after a CUDA out-of-memory error)."""
    from .training import device

    getattr(device, "free_memory", lambda: None)()


# -- serial / in-process ------------------------------------------------------------------------
def run_inprocess(
    cfg: StudyConfig,
    workers: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    out: TextIO = sys.stdout,
    hub: Optional[Hub] = None,
    on_loop: Callable[[CoordinatorLoop], None] = lambda loop: None,
) -> Outcome:
    """Coordinator in this thread, ``workers`` worker threads, over the in-process transport."""
    hub = hub or Hub(workers + 1)
    faults = parse_faults(cfg.faults)
    check_ranks(faults, hub.size)

    def on_fault(rank: int) -> Callable[[Fault], None]:
        return lambda f: hub.kill(rank) if f.kind == "kill" else hub.stop(rank)

    nodes = [
        Node(hub.transport(r), settings_of(cfg), faults=FaultPlan(faults, r), on_fault=on_fault(r)).start()
        for r in range(hub.size)
    ]
    threads = []
    for r in range(1, hub.size):
        t = threading.Thread(
            target=_worker_thread, args=(cfg, nodes[r], r - 1, hub), daemon=True, name=f"rdhpo-worker-{r}"
        )
        t.start()
        threads.append(t)
    try:
        outcome = coordinate(cfg, nodes[0], resume, overwrite, out, on_loop=on_loop)
    except BaseException:  # e.g. the output already holds a study: release the workers at once
        from .messages import Stop

        for r in range(1, hub.size):
            nodes[0].send(r, Stop(ExitCode.FAILED, "coordinator error"))
        raise
    finally:
        nodes[0].close()
        for t in threads:
            t.join(timeout=cfg.ft.end_grace)
        for n in nodes[1:]:
            n.close(drain_timeout=0.1)
    return outcome


def _worker_thread(cfg: StudyConfig, node: Node, index: int, hub: Hub) -> None:
    try:
        work(cfg, node, index, hard_exit=lambda: hub.kill(node.rank))
    except Exception as exc:  # noqa: BLE001 - a broken worker thread is a dead rank, like under MPI
        logger.error("[rdhpo] worker %d failed: %s: %s", node.rank, type(exc).__name__, exc)
        hub.kill(node.rank)


# -- under MPI ------------------------------------------------------------------------------------
def run_mpi(
    make_cfg: Callable[[], StudyConfig],
    transport: Transport,
    resume: bool = False,
    overwrite: bool = False,
    out: TextIO = sys.stdout,
    resume_rule: Optional[Callable[[str], bool]] = None,
    local_objective: Optional[Callable] = None,
) -> Outcome:
    """Every rank calls this.  Rank 0 builds and validates the config, then tells every rank
    (one start-up broadcast) either the config or the error, so that all ranks exit non-zero
    together on bad input."""
    rank = transport.rank
    cfg, error = None, None
    if rank == 0:
        try:
            cfg = make_cfg()
            if resume_rule is not None and cfg.output:
                resume = resume_rule(cfg.output)
            validate_for_run(cfg)
            check_ranks(parse_faults(cfg.faults), transport.size)
            check_output(cfg, resume, overwrite)
        except ConfigError as exc:
            error = str(exc)
    shipped = None
    if cfg is not None and error is None:
        shipped = dataclasses.replace(cfg, objective=None) if callable(cfg.objective) else cfg
        if any(callable(c) for c in cfg.callbacks):  # the API's: rank 0's own; paths travel
            shipped = dataclasses.replace(shipped, callbacks=[c for c in cfg.callbacks if isinstance(c, str)])
    shipped, error, coordinator_host = transport.broadcast_startup((shipped, error, transport.host()))
    if error is not None:
        startup_done()
        if rank == 0:
            logger.error("rdhpo: error: %s", error)
        return Outcome(ExitCode.CONFIG, None, rank, error)
    if rank != 0:
        cfg = shipped if shipped.objective is not None else dataclasses.replace(shipped, objective=local_objective)
    assert cfg is not None  # rank 0 built it (no error), the others got it
    share_dataset(cfg, transport)
    node = Node(
        transport,
        settings_of(cfg),
        takeover=cfg.ft.takeover,
        faults=FaultPlan(parse_faults(cfg.faults), rank),
        on_fault=_signal_self,
    )
    if cfg.output:  # the coordinating rank's pump keeps it fresh: the supervisor's liveness signal
        node.beat_file = heartbeat_path(cfg.output)
    node.start()
    startup_done()
    if rank == 0:
        install_stop_signals()
        outcome = coordinate(cfg, node, resume, overwrite, out, on_loop=bind_signals)
        node.close(drain_timeout=cfg.ft.end_grace)
        _note_failures(node)
        return outcome
    # workers keep the recording handlers of install_stop_signals: the coordinator decides
    local = int(os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK", os.environ.get("SLURM_LOCALID", rank)))
    if transport.host() == coordinator_host:
        local -= 1  # rank 0 shares this node and takes no GPU: workers use GPUs 0, 1, ...
    try:
        outcome = work(cfg, node, max(local, 0), hard_exit=lambda: os.kill(os.getpid(), signal.SIGKILL))
    except ConfigError as exc:  # e.g. dataset unreadable on this node: a dead rank, not a hang
        logger.error("rdhpo: rank %d: error: %s", rank, exc)
        node.close(drain_timeout=0.5)
        os.kill(os.getpid(), signal.SIGKILL)
    if outcome.exit_code == ExitCode.COORDINATOR_LOST and node.takeover and node.coordinator == rank:
        # ULFM takeover: the lowest live rank becomes the coordinator, from the durable journal
        old = min((r for r in range(node.size) if not node.is_alive(r)), default=0)
        outcome = coordinate(cfg, node, out=out, on_loop=bind_signals, takeover_from=old)
    if node.cut_off:
        # a partition, not a death: the coordinator lives on (its heartbeat file is fresh) and
        # counts this rank as failed. Leave as a failed rank does (SIGKILL): an exit code of 4
        # reaching Open MPI's launcher once the link heals would make it end the whole job.
        logger.warning(
            "[rdhpo] rank %d: cut off from coordinator rank %d, which is still running the study; this rank leaves",
            rank,
            node.coordinator,
        )
        node.close(drain_timeout=0.5)
        os.kill(os.getpid(), signal.SIGKILL)
    node.close(drain_timeout=2.0)
    _note_failures(node)
    return outcome


def share_dataset(cfg: StudyConfig, transport: Transport) -> bool:
    """Read a built-in objective's dataset once per node and hand it to the node's other ranks.

    Every rank calls this right after the start-up broadcast, before the node starts — no failure
    can have happened yet, so the collective cannot hang on a dead peer.  Returns True when the
    arrays came from the node's shared copy; otherwise each worker reads the data itself."""
    spec = cfg.objective.get("builtin") if isinstance(cfg.objective, dict) else None
    if not spec or not spec.get("dataset") or transport.size < 2:
        return False
    from .training.datasets import adopt_dataset, export_dataset

    dataset, seed = spec["dataset"], int(spec.get("seed", 0))
    shared = transport.share_arrays(lambda: export_dataset(dataset, seed))
    if shared is None:
        return False
    adopt_dataset(dataset, seed, *shared)
    return True


def _signal_self(fault: Fault) -> None:
    """Fault injection under MPI: this rank crashes (SIGKILL) or hangs (SIGSTOP) itself."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL if fault.kind == "kill" else signal.SIGSTOP)


_PEER_TROUBLE: list = []


def _note_failures(node: Node) -> None:
    """Remember that a peer died, hung or was cut off: MPI_Finalize could then hang."""
    if node.alive() != list(range(node.size)) or node.unreachable or node.routes or node.transport.failed():
        _PEER_TROUBLE.append(True)


def check_output(cfg: StudyConfig, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an existing study unless asked to resume or overwrite it, and to touch a
    file at the output path that is not rdhpo's (whatever the flags)."""
    from .storage.paths import check_output_path

    if cfg.output:
        check_output_path(cfg.output)
    if cfg.output and not resume and not overwrite and has_records(cfg.output):
        raise ConfigError(
            f"output {cfg.output!r} already holds a study; pass --resume to continue it or --overwrite to start afresh"
        )


def validate_for_run(cfg: StudyConfig) -> None:
    """Checks that need more than the YAML: the output path is usable (no directory, no foreign
    file there), the objective imports, the built-in objective's dataset loads (rank 0, before
    anything is written: a bad file is one message, not a study of FAILED trials)."""
    if cfg.output:
        from .storage.paths import check_output_path

        check_output_path(cfg.output)
    if isinstance(cfg.objective, dict):
        obj = make_objective(cfg)  # imports the function / checks the built-in spec and dataset path
        check_space = getattr(obj, "check_space", None)  # built-in: model families in the space
        if callable(check_space):
            check_space(cfg.space)
        check_data = getattr(obj, "check_data", None)  # built-in: load (and cache) the dataset
        if callable(check_data):
            check_data()


_STOP_REQUEST: list = []


def install_stop_signals() -> None:
    """SIGUSR1 / SIGTERM / SIGINT ask the coordinator to stop cleanly (exit 3, requeue-able).

    Installed first thing on every rank (mpirun forwards SIGUSR1 to all ranks, and a warning can
    come during start-up, when the default action would kill the rank): on workers the signal is
    only recorded — the coordinator decides and sends Stop."""

    def handler(signum: int, frame: Any) -> None:
        _STOP_REQUEST.append(signal.Signals(signum).name)
        for loop in _LOOPS:
            loop.request_stop(f"signal {signal.Signals(signum).name}")

    for sig in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


_LOOPS: list = []


def bind_signals(loop: CoordinatorLoop) -> None:
    """``on_loop`` hook: a signal that came before the loop existed still stops it."""
    _LOOPS.append(loop)
    if _STOP_REQUEST:
        loop.request_stop(f"signal {_STOP_REQUEST[0]}")


def exit_process(code: int, clean_finalize: bool) -> None:
    """End this rank: MPI_Finalize only when no peer failed (it can hang on dead or hung peers),
    bounded by a watchdog; otherwise leave at once (the results are already safe)."""
    sys.stdout.flush()
    sys.stderr.flush()
    if code:
        # Open MPI's launcher can drop the last output of a rank that exits at once after
        # writing it (seen: the one bad-input message of rank 0 lost in ~1 run of 5): let it read
        time.sleep(0.5)
    if clean_finalize and not _PEER_TROUBLE:
        # watchdog that needs no GIL (MPI_Finalize may spin holding it): SIGALRM's default action
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(20)
        from .comm.mpi import finalize

        finalize()
    os._exit(code)


def guard_startup(timeout: float) -> None:
    """Called first thing on every rank under MPI, before MPI initialises.

    Ties this rank's life to its parent (the MPI daemon or mpirun: when the supervisor kills it,
    the kernel kills this rank, stopped or not), and bounds start-up from inside the process
    without needing the GIL (MPI initialisation holds it): if :func:`startup_done` is not called
    within ``timeout`` seconds (MPI waiting for a rank that died, a start-up collective on a hung
    rank), SIGALRM's default action ends the rank, so the job ends even without the supervisor
    (which prints the one message about it)."""
    from .procs import die_with_parent

    die_with_parent()
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(max(int(math.ceil(timeout)), 1))


def startup_done() -> None:
    """Start-up finished on this rank (the node runs): cancel the :func:`guard_startup` bound."""
    signal.alarm(0)
