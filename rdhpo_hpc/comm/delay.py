"""Messages held back until a due time: the one delay line of both fault injectors.

Used by :class:`~rdhpo_hpc.comm.inproc.Hub` (link delays of the in-process transport, called by
every rank's pump under the hub's lock) and :class:`~rdhpo_hpc.node.Node` (the fault plan's
``delay`` entries, called by the node's pump thread only).  Not thread-safe by itself.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, TypeVar

T = TypeVar("T")


class DelayLine(Generic[T]):
    """Items released in due-time order; items due at the same time keep the order they were held."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._seq = itertools.count()

    def hold(self, due: float, item: T) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), item))

    def release(self, now: float) -> list[T]:
        """Remove and return every item due at or before ``now``, earliest first."""
        out: list[T] = []
        while self._heap and self._heap[0][0] <= now:
            out.append(heapq.heappop(self._heap)[2])
        return out

    def __len__(self) -> int:
        return len(self._heap)
