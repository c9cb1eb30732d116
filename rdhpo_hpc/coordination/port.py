"""What the coordinator's loop needs from its node: :class:`rdhpo_hpc.node.Node` has it, and
so do the test double (``tests/unit/fakes.py``) and the simulator (``bench/simulate.py``)."""

from __future__ import annotations

from typing import Any, Optional, Protocol


class TransportFacts(Protocol):
    """The few facts about the transport under the node that the end of a study needs."""

    reports_failures: bool  # the runtime reports failed peers (ULFM): shrink at the end

    def failed(self) -> set[int]:
        """Ranks the runtime saw fail (a rank in it is dead, not hung: no SIGKILL needed)."""
        ...

    def host(self) -> str: ...

    def shrink_method(self, exclude: set[int]) -> str: ...


class NodePort(Protocol):
    rank: int
    size: int
    unreachable: set[int]  # alive by gossip, but silent on the direct link

    @property
    def transport(self) -> TransportFacts:  # read-only here: a Node's Transport is one
        ...

    def recv(self, timeout: float) -> Optional[tuple[int, Any]]:
        """The next (source, message) or local event (PeerDown, Coordinator), waiting at most
        ``timeout`` seconds; None when nothing came."""
        ...

    def send(self, dest: int, msg: Any) -> None: ...

    def send_via(self, relay: int, dest: int, msg: Any) -> None: ...

    def alive(self) -> list[int]: ...

    def is_alive(self, rank: int) -> bool: ...

    def relay_for(self, dest: int) -> Optional[int]:
        """A live rank that can forward a message to ``dest``, or None."""
        ...

    def shrink(self, exclude: set[int], timeout: float, method: str = "") -> Optional[dict[str, Any]]:
        """End of study (ULFM): stop the node, agree with the survivors on a communicator
        without ``exclude``; ``{"method", "size", "duration"[, "error"]}`` or None."""
        ...
