"""Transport interface: nonblocking point-to-point messages between ranks.

Only :class:`rdhpo_hpc.node.Node`'s pump thread calls a transport (one thread, so the MPI
implementation needs no locking).  Implementations: ``mpi.py`` (the only mpi4py import) and
``inproc.py`` (threads in one process, with fault injection for tests).
"""

from __future__ import annotations

from typing import Any, Callable, Optional


class Transport:
    """Point-to-point, nonblocking, any-source receive; reports peers the runtime saw fail."""

    rank: int = 0
    size: int = 1
    #: True when the runtime itself reports failed peers (ULFM); gossip is the fallback
    reports_failures: bool = False

    def isend(self, dest: int, msg: Any) -> None:
        """Start sending ``msg`` to ``dest``; the buffer is kept until the send completes.

        Never blocks and never raises for a dead peer: the failure shows up in ``failed()``.
        """
        raise NotImplementedError

    def poll(self) -> Optional[tuple[int, Any]]:
        """One received ``(source, msg)``, or None when nothing is waiting."""
        raise NotImplementedError

    def progress(self) -> int:
        """Complete what pending sends can complete; return how many are still pending."""
        return 0

    def failed(self) -> set[int]:
        """Ranks the runtime reported as failed so far (ULFM); empty otherwise."""
        return set()

    def shrink_method(self, exclude: set) -> str:
        """ "shrink" when the runtime reports every excluded rank failed, else "create_group"."""
        return "create_group"

    def shrink(self, exclude: set, timeout: float, method: str = "") -> Optional[dict]:
        """End of study (ULFM): agree with the survivors on a communicator without ``exclude``.

        Collective over every rank not in ``exclude``; bounded by ``timeout``.  Returns
        ``{"method", "size", "duration", ...}`` or None when the transport has no such thing."""
        return None

    def host(self) -> str:
        import socket

        return socket.gethostname()

    def close(self) -> None:
        """Release resources; pending sends that cannot complete are abandoned."""

    # start-up only (before any failure can occur): rank 0 -> everyone, blocking
    def broadcast_startup(self, obj: Any) -> Any:
        return obj

    def share_arrays(self, load: Callable[[], tuple]) -> Optional[tuple]:
        """Start-up collective: one rank per node calls ``load() -> (arrays, meta)`` and the
        node's other ranks get the same arrays without reading the file.  None = not shared
        (each rank loads for itself).  In one process every thread already shares memory."""
        return None
