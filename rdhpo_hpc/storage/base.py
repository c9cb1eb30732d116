"""Results store interface.  Everything the coordinator learns is a *record* (a flat dict with a
kind ``k``) appended in order; stores only persist records, so the same sequence can be replayed
(``--resume``), rebuilt into HDF5, or turned into a :class:`rdhpo_hpc.results.StudyResult`.

Record kinds: ``study`` (config and metadata, first), ``dispatch`` (an attempt handed to a rank;
``new`` when the scheduler created the trial), ``report`` (intermediate metric and the
decision), ``attempt`` (an attempt ended: COMPLETE / PRUNED / FAILED / LOST), ``tell`` (a trial's
final outcome given to the optimizer), ``event`` (failures, detections, shrinks, takeovers,
signals), ``worker`` (a rank's host and device), ``end`` (the study finished or stopped).

Only the coordinator writes (single writer); appends happen on its event loop.
"""

from __future__ import annotations

from typing import Iterable


class Store:
    """Append-only record sink."""

    def append(self, record: dict) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Make everything appended so far survive a kill of this process."""

    def close(self) -> None:
        self.flush()

    def records(self) -> list[dict]:
        """Everything appended so far (for tests and replay)."""
        raise NotImplementedError


class MemoryStore(Store):
    """Keeps records in a list (tests, and the serial API without an output file)."""

    def __init__(self, records: Iterable[dict] = ()) -> None:
        self._records = list(records)

    def append(self, record: dict) -> None:
        self._records.append(record)

    def records(self) -> list[dict]:
        return list(self._records)


class MultiStore(Store):
    """Appends to several stores in order (journal first, then the HDF5 view)."""

    def __init__(self, *stores: Store) -> None:
        self.stores = stores

    def append(self, record: dict) -> None:
        for s in self.stores:
            s.append(record)

    def flush(self) -> None:
        for s in self.stores:
            s.flush()

    def close(self) -> None:
        for s in self.stores:
            s.close()

    def records(self) -> list[dict]:
        return self.stores[0].records()
