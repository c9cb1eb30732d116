"""Append-only JSON-lines journal: the durable log the coordinator writes before acting.

Each record is written and flushed at once (survives a SIGKILL of the writer); ``fsync`` runs at
most every ``fsync_interval`` seconds and at close (survives a power loss up to that window).
A torn last line (kill in mid-write) is skipped when reading.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Callable, Optional

from .base import Store

_fast_loads: Optional[Callable[[bytes], Any]]
try:  # about 3x faster than json on a journal's records: the ``fast`` extra (optional)
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - depends on the environment
    _fast_loads = None
_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_RUN = b"0" * 19


def _long_int(line: bytes) -> bool:
    """True when ``line`` may hold an integer beyond 64 bits, which orjson reads as a float: a
    run of 19 or more digits that is not a fraction's (a string's digits count too)."""
    t = line.translate(_ZEROS)
    i = t.find(_RUN)
    while i >= 0:
        if i == 0 or t[i - 1] != 0x2E:  # not after a '.'
            return True
        i += len(_RUN)
        while i < len(t) and t[i] == 0x30:
            i += 1
        i = t.find(_RUN, i)
    return False


def _loads(line: bytes) -> Any:
    """One line's JSON, exactly as ``json.loads`` reads it: by orjson unless the line may hold
    what orjson reads otherwise (long integers; NaN literals, which orjson refuses)."""
    if _fast_loads is not None and not _long_int(line):
        try:
            return _fast_loads(line)
        except ValueError:
            pass
    return json.loads(line)


def journal_path(results_path: str) -> str:
    return results_path + ".journal"


def heartbeat_path(results_path: str) -> str:
    """The coordinator's heartbeat file: its mtime is refreshed by the coordinating rank's pump
    thread (:class:`~rdhpo_hpc.node.Node`) and watched by the supervisor (``rdhpo launch``)."""
    return results_path + ".alive"


def _default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def _clean(obj: Any) -> Any:
    """JSON has no NaN: store non-finite floats as None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


# built once: json.dumps with keyword arguments builds a new encoder on every call (hot path)
_STRICT = json.JSONEncoder(default=_default, separators=(",", ":"), allow_nan=False).encode
_LENIENT = json.JSONEncoder(default=_default, separators=(",", ":")).encode


class JournalStore(Store):
    def __init__(self, path: str, fsync_interval: float = 1.0) -> None:
        self.path = path
        self.fsync_interval = fsync_interval
        _drop_torn_tail(path)  # a writer killed mid-line: never glue the next record onto it
        self._fh = open(path, "a", encoding="utf-8")
        self._last_sync = time.monotonic()
        self._dirty = False

    def append(self, record: dict) -> None:
        try:  # fast path: most records hold no NaN / inf (JSON has none)
            line = _STRICT(record)
        except ValueError:
            line = _LENIENT(_clean(record))
        self._fh.write(line + "\n")
        self._fh.flush()
        self._dirty = True

    def flush(self) -> None:
        if self._dirty and time.monotonic() - self._last_sync >= self.fsync_interval:
            self._sync()

    def _sync(self) -> None:
        os.fsync(self._fh.fileno())
        self._last_sync = time.monotonic()
        self._dirty = False

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            self._sync()
            self._fh.close()

    def records(self) -> list[dict]:
        return read_journal(self.path)


def _drop_torn_tail(path: str) -> None:
    """Truncate a journal to its last complete line (after a SIGKILL of the previous writer)."""
    if not os.path.exists(path):
        return
    with open(path, "rb+") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


def parse_lines(data: bytes, stop_at_bad: bool = False) -> tuple[list[dict], int]:
    """The records of the complete (newline-ended) lines of ``data``, and how many bytes they span.

    The one JSON-lines parser of the package: the replay (:func:`read_journal`), ``rdhpo watch``
    (:func:`read_from`) and the supervisor's tail all read through it.  A line that is no JSON
    object is skipped, or with ``stop_at_bad`` ends the read there (replay never reads past
    damage); a torn last line is never parsed (it is the writer's, still being written)."""
    out: list[dict] = []
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            return out, pos
        try:
            rec = _loads(data[pos:nl])
        except ValueError:  # UnicodeDecodeError included
            rec = None
        if isinstance(rec, dict):
            out.append(rec)
        elif stop_at_bad:
            return out, pos
        pos = nl + 1


def read_journal(path: str) -> list[dict]:
    """All complete records of a journal, up to a torn last line or the first damaged one."""
    with open(path, "rb") as fh:
        return parse_lines(fh.read(), stop_at_bad=True)[0]


def read_from(path: str, offset: int, chunk: int = 8 << 20) -> tuple[list[dict], int]:
    """Incremental read-only tail (``rdhpo watch``, the supervisor): the records of the complete
    lines from byte ``offset`` on, and the offset just after the last complete line.  A torn or
    half-written last line is left for the next call (so a writer that truncates it on resume is
    read right); a complete line that is no JSON record is skipped.  Reads about ``chunk`` bytes
    per call (more only while no line has ended)."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(chunk)
        while data and b"\n" not in data and len(data) % chunk == 0:  # one line longer than chunk
            more = fh.read(chunk)
            if not more:
                break
            data += more
    out, used = parse_lines(data)
    return out, offset + used


_SNIFF = 1 << 20


def is_journal(path: str) -> bool:
    """True when ``path`` is a regular file that a :class:`JournalStore` wrote: empty (created,
    nothing appended yet), or its first line is a JSON record with a kind ``k`` (a first line
    torn by a kill in mid-write still starts with ``{"k":``).  Reads at most 1 MiB."""
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF)
    except OSError:
        return False
    if not head:
        return True
    line, nl, _ = head.partition(b"\n")
    if not nl:
        return line.startswith(b'{"k":')
    try:
        rec = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(rec, dict) and "k" in rec


def maybe_read_journal(results_path: str) -> Optional[list[dict]]:
    """The journal's records, or None when there is none (or the file there is no journal:
    :func:`rdhpo_hpc.storage.paths.check_output_path` refuses to touch such a file)."""
    p = journal_path(results_path)
    return read_journal(p) if is_journal(p) else None
