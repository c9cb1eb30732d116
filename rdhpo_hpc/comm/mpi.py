"""MPI transport over mpi4py — the only module of the package that imports mpi4py.

Pickled objects with ``isend`` / ``improbe`` (matched probe, so receiving is thread-safe),
send requests kept until they complete.  With Open MPI's ULFM (``mpirun --with-ft ulfm``) a
failed peer shows up as MPI_ERR_PROC_FAILED: we acknowledge it (``Ack_failed``, so any-source
receives keep working) and report the rank in ``failed()``.  Any other MPI exception on a peer
operation is treated as possible failure of that peer, as the field notes advise.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Optional

from .base import Transport


def _mpi():
    import mpi4py

    mpi4py.rc.thread_level = "multiple"  # the pump thread and the loop thread may both call MPI
    from mpi4py import MPI

    return MPI


def launched_under_mpi() -> bool:
    """True when this process was started by mpirun/srun with more than one rank."""
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        if int(os.environ.get(var, "1") or 1) > 1:
            return True
    return False


def finalize() -> None:
    """``MPI_Finalize`` when MPI is up (the caller bounds it: it can hang on failed peers)."""
    try:
        MPI = _mpi()
        if MPI.Is_initialized() and not MPI.Is_finalized():
            MPI.Finalize()
    except Exception:  # noqa: BLE001 - the process is about to exit anyway
        pass


class MPITransport(Transport):
    """Nonblocking point-to-point on a private duplicate of ``COMM_WORLD``."""

    def __init__(self) -> None:
        MPI = self.MPI = _mpi()
        self.world = MPI.COMM_WORLD
        self.comm = self.world.Dup()
        self.comm.Set_errhandler(MPI.ERRORS_RETURN)
        # a second private communicator for the end-of-study shrink: Create_group / Shrink exchange
        # internal messages on their parent, which the pump's any-tag improbe on ``comm`` would steal
        self.ctrl = self.world.Dup()
        self.ctrl.Set_errhandler(MPI.ERRORS_RETURN)
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.pending: list[tuple[int, Any]] = []
        self._failed: set[int] = set()
        self._fail_classes = {
            getattr(MPI, n) for n in ("ERR_PROC_FAILED", "ERR_PROC_FAILED_PENDING", "ERR_REVOKED") if hasattr(MPI, n)
        }
        self.reports_failures = self._ulfm_available()
        self._group = self.comm.Get_group()
        self._next_check = 0.0
        self.bad_messages = 0
        self.check_interval = 0.05  # Get_failed is cheap; an any-source improbe may never raise

    def _ulfm_available(self) -> bool:
        try:
            self.comm.Get_failed()
            return hasattr(self.comm, "Ack_failed")
        except Exception:  # noqa: BLE001 - NotImplementedError or MPI.Exception without ULFM
            return False

    # -- failures ----------------------------------------------------------------------------
    def _absorb(self, exc: Exception, peer: Optional[int] = None) -> None:
        """Turn an MPI exception into failure evidence (acknowledged so receives go on)."""
        if self.reports_failures:
            try:
                self.comm.Ack_failed()
                group = self.comm.Get_failed()
                n = group.Get_size()
                if n:
                    ranks = self.MPI.Group.Translate_ranks(group, list(range(n)), self._group)
                    self._failed.update(r for r in ranks if r is not None and r >= 0)
                group.Free()
            except Exception:  # noqa: BLE001
                pass
        if peer is not None and peer != self.rank:
            self._failed.add(peer)

    def _check_failed(self) -> None:
        """ULFM: ranks the runtime knows failed, without waiting for an operation to raise."""
        try:
            group = self.comm.Get_failed()
            n = group.Get_size()
            if n:
                ranks = self.MPI.Group.Translate_ranks(group, list(range(n)), self._group)
                new = {r for r in ranks if r is not None and r >= 0} - self._failed
                if new:
                    self._failed.update(new)
                    self.comm.Ack_failed()
            group.Free()
        except Exception:  # noqa: BLE001
            pass

    def failed(self) -> set[int]:
        if self.reports_failures:
            now = time.monotonic()
            if now >= self._next_check:
                self._next_check = now + self.check_interval
                self._check_failed()
        return set(self._failed)

    def shrink_method(self, exclude: set) -> str:
        self._check_failed()
        return "shrink" if set(exclude) - {self.rank} <= self._failed else "create_group"

    def shrink(self, exclude: set, timeout: float, method: str = "") -> Optional[dict]:
        """End of study: a communicator of the survivors and one collective on it.

        ``Comm.Shrink`` only when every excluded rank is reported failed by MPI (it waits for a
        hung rank otherwise, FIELD_NOTES); else ``Create_group`` over the survivors (collective
        over the group members only).  Then ``Agree`` (a fault-tolerant all-reduce AND) so the
        survivors agree the study ended.  Every survivor must use the same ``method`` (the
        coordinator picks it and sends it with ``Stop``).  Runs in a helper thread, bounded by
        ``timeout``; returns {"method", "size", "duration", "agreed"} or {"method", "error"}.
        """
        exclude = set(exclude) - {self.rank}
        method = method or self.shrink_method(exclude)
        out: dict = {"method": method}

        def go() -> None:
            t0 = time.perf_counter()
            try:
                if method == "shrink":
                    self.ctrl.Ack_failed()
                    new = self.ctrl.Shrink()
                else:
                    keep = [r for r in range(self.size) if r not in exclude]
                    grp = self._group.Incl(keep)
                    new = self.ctrl.Create_group(grp, tag=77)
                    grp.Free()
                new.Set_errhandler(self.MPI.ERRORS_RETURN)
                agreed = new.Agree(1) if hasattr(new, "Agree") else (new.Barrier() or 1)
                out.update(size=new.Get_size(), duration=time.perf_counter() - t0, agreed=int(agreed))
                new.Free()
            except Exception as exc:  # noqa: BLE001
                out.update(error=f"{type(exc).__name__}: {exc}", duration=time.perf_counter() - t0)

        th = threading.Thread(target=go, daemon=True, name="rdhpo-shrink")
        th.start()
        th.join(timeout)
        if th.is_alive():
            out.update(error=f"timed out after {timeout}s", duration=timeout)
        return out

    # -- messages ------------------------------------------------------------------------------
    def isend(self, dest: int, msg: Any) -> None:
        if dest in self._failed:
            return
        try:
            self.pending.append((dest, self.comm.isend(msg, dest=dest, tag=msg.TAG)))
        except self.MPI.Exception as exc:
            self._absorb(exc, dest)

    def poll(self) -> Optional[tuple[int, Any]]:
        status = self.MPI.Status()
        try:
            message = self.comm.improbe(source=self.MPI.ANY_SOURCE, tag=self.MPI.ANY_TAG, status=status)
            if message is None:
                return None
            return status.Get_source(), message.recv()
        except self.MPI.Exception as exc:
            self._absorb(exc, status.Get_source() if status.Get_source() >= 0 else None)
            return None
        except Exception:  # noqa: BLE001 - an undecodable message is dropped, never fatal
            self.bad_messages += 1
            return None

    def progress(self) -> int:
        still = []
        for dest, req in self.pending:
            try:
                if not req.Test():
                    if dest in self._failed:
                        self._cancel(req)
                    else:
                        still.append((dest, req))
            except self.MPI.Exception as exc:
                self._absorb(exc, dest)
        self.pending = still
        return len(still)

    @staticmethod
    def _cancel(req: Any) -> None:
        try:
            req.Cancel()
            req.Free()
        except Exception:  # noqa: BLE001 - cancelling a send to a dead rank is best effort
            pass

    def host(self) -> str:
        return self.MPI.Get_processor_name()

    def broadcast_startup(self, obj: Any) -> Any:
        """Blocking broadcast from rank 0: used once, before any work or failure."""
        return self.comm.bcast(obj, root=0)

    def share_arrays(self, load: Callable[[], tuple]) -> Optional[tuple]:
        """Start-up collective (every rank calls it, before any failure can occur): the lowest
        rank of each node runs ``load() -> (arrays, meta)`` and broadcasts the arrays to the
        node's other ranks, so the file is read once per node.  A node-local ``Bcast`` rather
        than a shared-memory window: Open MPI warns that its one-sided (osc) components are not
        tested under ULFM after a failure.  Returns ``(arrays, meta)``, or None on every rank of
        a node whose leader could not load (the ranks then read for themselves and report)."""
        import numpy as np

        node = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED)
        try:
            leader = node.Get_rank() == 0
            arrays: dict = {}
            meta = None
            if leader:
                try:
                    arrays, meta = load()
                except Exception:  # noqa: BLE001 - every rank falls back to its own read
                    arrays, meta = {}, None
            layout = node.bcast(
                None if meta is None else (meta, {k: (a.shape, a.dtype.str) for k, a in arrays.items()}), root=0
            )
            if layout is None:
                return None
            meta, shapes = layout
            out = {}
            for key, (shape, dtype) in shapes.items():
                buf = np.ascontiguousarray(arrays[key]) if leader else np.empty(shape, dtype=dtype)
                node.Bcast(buf, root=0)
                out[key] = buf
            return out, meta
        finally:
            node.Free()

    def close(self) -> None:
        self.progress()
        for _, req in self.pending:
            self._cancel(req)
        self.pending = []
