"""The study ``rdhpo watch`` reads: a results path checked once (:func:`open_source`), then its
journal read incrementally by byte offset (:meth:`JournalSource.poll`, every refresh) and its
heartbeat file's mtime (:meth:`JournalSource.beat`).  Read-only: nothing is locked or written,
the HDF5 file is never opened, so it runs beside a live job (a login node on a shared file
system).  A journal replaced under the same name (``--overwrite``: another inode, or other first
bytes) is read again from the start.
"""

from __future__ import annotations

import os
from typing import Optional

from ..node import read_beat
from ..storage.journal import heartbeat_path, is_journal, journal_path, read_from
from .state import StudyView

SUFFIX = ".journal"
HEAD = 256


class WatchError(Exception):
    """Bad input: the path is no results file (the CLI prints it and exits 2)."""


def resolve(path: str) -> str:
    """The results path of ``path`` (a results file, or its journal); raises :class:`WatchError`."""
    if path.endswith(SUFFIX) and is_journal(path):
        return path[: -len(SUFFIX)]
    jp = journal_path(path)
    if os.path.isdir(path):
        raise WatchError(f"{path!r} is a directory, not a results file")
    if not os.path.exists(jp):
        if os.path.exists(path):
            raise WatchError(
                f"{path!r} is not a results file of a study: there is no journal {jp!r} beside it "
                f"(`rdhpo watch` reads the journal; `rdhpo show` reads a finished results file)"
            )
        raise WatchError(f"no results file {path!r} (nor its journal {jp!r}): has the study started?")
    if not is_journal(jp):
        raise WatchError(f"{jp!r} is not a study journal (its first line is no rdhpo record)")
    return path


class JournalSource:
    """A results path's journal, folded into :attr:`view` as it grows."""

    def __init__(self, results: str) -> None:
        self.results = results
        self.journal = journal_path(results)
        self.view = StudyView()
        self._offset = 0
        self._ino: Optional[int] = None
        self._head = b""  # the first bytes read: tells a replaced journal

    def poll(self) -> bool:
        """Fold the records appended since the last call; True when there were any."""
        try:
            st = os.stat(self.journal)
        except OSError:
            return False  # gone for a moment (replaced): keep what we have
        if st.st_ino != self._ino or st.st_size < self._offset or self._head != self._read_head(len(self._head)):
            self.view, self._offset, self._ino, self._head = StudyView(), 0, st.st_ino, b""
        changed = False
        while st.st_size > self._offset:
            try:
                records, offset = read_from(self.journal, self._offset)
            except OSError:
                break
            if offset == self._offset:
                break  # only a line still being written
            for r in records:
                self.view.apply(r)
            self._offset, changed = offset, True
        if not self._head and self._offset:
            self._head = self._read_head(min(HEAD, self._offset))
        return changed

    def _read_head(self, n: int) -> bytes:
        """The journal's first ``n`` bytes: another study's journal under the same name (an inode
        number reused after ``--overwrite``) starts otherwise (its study record's start time)."""
        if n == 0:
            return b""
        try:
            with open(self.journal, "rb") as fh:
                return fh.read(n)
        except OSError:
            return b""

    def beat(self) -> Optional[tuple[float, int]]:
        """(mtime, rank) of the coordinator's heartbeat file, None when there is none."""
        return read_beat(heartbeat_path(self.results))


def open_source(path: str) -> JournalSource:
    """Check ``path`` (raises :class:`WatchError`) and read what its journal holds so far."""
    src = JournalSource(resolve(path))
    src.poll()
    return src
