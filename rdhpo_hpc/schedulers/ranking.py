"""A rung's ranking: its recorded ``(loss, root)`` pairs kept sorted, for the rung schedulers
(:mod:`.rungs`).

A list kept sorted by insertion moves half of itself on every insert (quadratic in the values a
rung has seen) and compares tuples scattered over the heap.  Here the pairs sit in sorted blocks
of at most ``2 * LOAD``: an insert or a removal moves one block, a rank is a bisection of the
block maxima plus a sum of block sizes.  Inserts are buffered until the ranking is next read;
a large buffer (the journal replay reads no ranking while it applies logged decisions, see
``RungScheduler.replay_report``) is merged by one numpy sort instead of one insert per pair.
"""

from __future__ import annotations

import bisect
import itertools
from typing import Iterator

import numpy as np

Entry = tuple[float, int]  # (loss, root): ties broken by configuration id


class Ranking:
    """A sorted multiset of :data:`Entry` with list-like ``bisect_left`` / ``remove`` / ``head``."""

    LOAD = 1000

    def __init__(self) -> None:
        self._blocks: list[list[Entry]] = []  # sorted, each non-empty, concatenated in order
        self._maxes: list[Entry] = []  # the last entry of each block
        self._sizes: list[int] = []  # len() of each block
        self._sorted = 0  # entries in the blocks
        self._new: list[Entry] = []  # added since the ranking was last read

    def __len__(self) -> int:
        return self._sorted + len(self._new)

    def __iter__(self) -> Iterator[Entry]:
        self._merge()
        return itertools.chain.from_iterable(self._blocks)

    def add(self, item: Entry) -> None:
        """Insert ``item`` (after every equal entry, as ``bisect.insort``); sorted in when read."""
        self._new.append(item)

    def remove(self, item: Entry) -> None:
        """Remove one entry equal to ``item``; ``ValueError`` when there is none (as ``list.remove``)."""
        self._merge()
        i = bisect.bisect_left(self._maxes, item)
        block = self._blocks[i] if i < len(self._blocks) else []
        j = bisect.bisect_left(block, item)
        if j == len(block) or block[j] != item:
            raise ValueError(f"{item!r} is not in the ranking")
        del block[j]
        self._sorted -= 1
        if block:
            self._sizes[i] -= 1
            self._maxes[i] = block[-1]
        else:
            del self._blocks[i], self._maxes[i], self._sizes[i]

    def bisect_left(self, item: Entry) -> int:
        """How many entries are smaller than ``item``."""
        self._merge()
        i = bisect.bisect_left(self._maxes, item)
        if i == len(self._maxes):
            return self._sorted
        return sum(self._sizes[:i]) + bisect.bisect_left(self._blocks[i], item)

    def head(self, n: int) -> Iterator[Entry]:
        """The ``n`` smallest entries, in order."""
        return itertools.islice(self, max(0, n))

    # -- internals -----------------------------------------------------------------------------
    def _merge(self) -> None:
        """Sort the buffered inserts in: one by one when few, else all entries sorted anew."""
        new = self._new
        if not new:
            return
        self._new = []
        if len(new) > max(64, self._sorted // 8):
            self._rebuild(new)
            return
        for item in new:
            self._insert(item)

    def _insert(self, item: Entry) -> None:
        self._sorted += 1
        maxes = self._maxes
        if not maxes:
            self._blocks.append([item])
            maxes.append(item)
            self._sizes.append(1)
            return
        i = bisect.bisect_right(maxes, item)
        if i == len(maxes):  # beyond every entry: at the end of the last block
            i -= 1
            block = self._blocks[i]
            block.append(item)
            maxes[i] = item
        else:
            block = self._blocks[i]
            bisect.insort(block, item)
        self._sizes[i] += 1
        if len(block) > 2 * self.LOAD:  # split: blocks stay small, their count ~ n / LOAD
            half = block[self.LOAD :]
            del block[self.LOAD :]
            self._blocks.insert(i + 1, half)
            maxes.insert(i, block[-1])
            self._sizes[i : i + 1] = [len(block), len(half)]

    def _rebuild(self, new: list[Entry]) -> None:
        """Every entry sorted by (loss, root) with numpy (the order of tuples: ``-0.0 == 0.0``,
        losses are never NaN), then cut into blocks of ``LOAD``; stable, so equal entries keep
        their insertion order."""
        entries = [e for block in self._blocks for e in block] + new
        losses = np.array([e[0] for e in entries], dtype=np.float64)
        roots = np.array([e[1] for e in entries], dtype=np.int64)
        order = np.lexsort((roots, losses))
        pairs = list(zip(losses[order].tolist(), roots[order].tolist()))
        self._blocks = [pairs[i : i + self.LOAD] for i in range(0, len(pairs), self.LOAD)]
        self._maxes = [b[-1] for b in self._blocks]
        self._sizes = [len(b) for b in self._blocks]
        self._sorted = len(pairs)
