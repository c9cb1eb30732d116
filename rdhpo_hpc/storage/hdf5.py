"""HDF5 view of the record log — the only module that imports h5py.

Layout (schema_version 1; every table is a group with one 1-D column dataset per field, so
``pandas.DataFrame({c: f["trials"][c][:] for c in f["trials"]})`` reads a table):

* ``/study`` attrs: config (YAML text), space, optimizer, options, direction, seed, versions,
  schema_version, start_time, end_time, end_status.
* ``/trials``: one row per ended attempt: seq, trial_id, attempt, state, value, budget, rank,
  host, device, start_time, end_time, error, params (JSON), info (JSON), metrics (JSON),
  checkpoint_from (-1 = none).
* ``/reports``: seq, trial_id, attempt, step, value, metrics (JSON), time, decision.
* ``/events``: seq, time, kind, rank, detail, latency.
* ``/workers``: seq, rank, host, pid, device, device_name, memory_bytes, time.
* ``/dispatches``: seq, trial_id, attempt, rank, time, new, params (JSON), budget,
  checkpoint_from, info (JSON) — with ``/tells`` (seq, trial_id, state, value) and ``/asks``
  (suggestions asked ahead of dispatch by optimizers that prefetch) the log that ``--resume`` replays.

Text is UTF-8 variable-length strings; missing numbers are NaN (floats) or -1 (ints).
Rows are buffered and written by ``flush`` at most every ``interval`` seconds (the coordinator
calls it after each loop turn; writing HDF5 row by row cost ~12 ms per trial) and at close;
the JSON-lines journal next to the file is the per-record crash-safe log, from which
:func:`rebuild_from_records` can rewrite the file atomically (temp file + ``os.replace``).
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Iterable, Optional

import numpy as np

from .base import Store

SCHEMA_VERSION = 1

_I, _F, _S, _J, _B = "int", "float", "str", "json", "bool"
TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "attempt": (
        "trials",
        {
            "seq": _I,
            "trial_id": _I,
            "attempt": _I,
            "state": _S,
            "value": _F,
            "budget": _F,
            "rank": _I,
            "host": _S,
            "device": _S,
            "start_time": _F,
            "end_time": _F,
            "error": _S,
            "params": _J,
            "info": _J,
            "metrics": _J,
            "checkpoint_from": _I,
        },
    ),
    "report": (
        "reports",
        {"seq": _I, "trial_id": _I, "attempt": _I, "step": _I, "value": _F, "metrics": _J, "time": _F, "decision": _S},
    ),
    "event": ("events", {"seq": _I, "time": _F, "kind": _S, "rank": _I, "detail": _S, "latency": _F}),
    "worker": (
        "workers",
        {"seq": _I, "rank": _I, "host": _S, "pid": _I, "device": _S, "device_name": _S, "memory_bytes": _I, "time": _F},
    ),
    "dispatch": (
        "dispatches",
        {
            "seq": _I,
            "trial_id": _I,
            "attempt": _I,
            "rank": _I,
            "time": _F,
            "new": _B,
            "params": _J,
            "budget": _F,
            "checkpoint_from": _I,
            "info": _J,
        },
    ),
    "tell": ("tells", {"seq": _I, "trial_id": _I, "state": _S, "value": _F}),
    "ask": (
        "asks",
        {"seq": _I, "trial_id": _I, "time": _F, "params": _J, "budget": _F, "checkpoint_from": _I, "info": _J},
    ),
}


def _h5():
    import h5py

    return h5py


def _str_dtype():
    return _h5().string_dtype(encoding="utf-8")


_JSON = json.JSONEncoder(default=str).encode  # built once (json.dumps(default=) builds one per call)


def _cell(kind: str, v: Any) -> Any:
    if kind == _I:
        return -1 if v is None else int(v)
    if kind == _F:
        return math.nan if v is None else float(v)
    if kind == _B:
        return bool(v)
    if kind == _J:
        return _JSON(v if v is not None else {})
    return "" if v is None else str(v)


def _dtype(kind: str) -> Any:
    return {_I: np.int64, _F: np.float64, _B: np.bool_}.get(kind) or _str_dtype()


class HDF5Store(Store):
    """Buffers rows per table and appends them to the file on ``flush``."""

    def __init__(self, path: str, mode: str = "a", interval: float = 1.0) -> None:
        self.path = path
        self.interval = interval
        self.file = _h5().File(path, mode)
        self._buf: dict[str, list[dict]] = {k: [] for k in TABLES}
        self._columns: dict[tuple[str, str], Any] = {}
        self._study_attrs: dict = {}
        self._seq = self._next_seq()
        self._last_write = -math.inf

    def _next_seq(self) -> int:
        top = -1
        for _, (group, _cols) in TABLES.items():
            if group in self.file and len(self.file[group]["seq"]):
                top = max(top, int(self.file[group]["seq"][-1]))
        return top + 1

    def append(self, record: dict) -> None:
        kind = record.get("k")
        if kind in ("study", "end"):
            self._study_attrs.update({key: v for key, v in record.items() if key != "k"})
        elif kind in TABLES:
            self._buf[kind].append({**record, "seq": self._seq})
        self._seq += 1

    def flush(self) -> None:
        """Write buffered rows when ``interval`` has passed since the last write."""
        if time.monotonic() - self._last_write >= self.interval:
            self.write()

    def write(self) -> None:
        """Write every buffered row and flush the file now."""
        self._last_write = time.monotonic()
        if self._study_attrs:
            study = self.file.require_group("study")
            for key, v in self._study_attrs.items():
                study.attrs[key] = v if isinstance(v, (str, int, float, bool)) else json.dumps(v, default=str)
            study.attrs["schema_version"] = SCHEMA_VERSION
            self._study_attrs = {}
        for kind, rows in self._buf.items():
            if rows:
                self._write_rows(kind, rows)
                self._buf[kind] = []
        self.file.flush()

    def _write_rows(self, kind: str, rows: list[dict]) -> None:
        group_name, cols = TABLES[kind]
        group = self.file.require_group(group_name)
        for col, ck in cols.items():
            data = [_cell(ck, r.get(col)) for r in rows]
            ds = self._columns.get((group_name, col))
            if ds is None:
                if col not in group:
                    group.create_dataset(col, shape=(0,), maxshape=(None,), chunks=(512,), dtype=_dtype(ck))
                ds = self._columns[(group_name, col)] = group[col]
            n = ds.shape[0]
            ds.resize((n + len(rows),))
            ds[n:] = np.array(data, dtype=object if ds.dtype.kind == "O" else ds.dtype)

    def close(self) -> None:
        if self.file.id.valid:
            self.write()
            self.file.close()

    def records(self) -> list[dict]:
        self.write()
        return read_records(self.path, self.file)


def read_records(path: str, file: Any = None) -> list[dict]:
    """The record log stored in an HDF5 results file, in the original order."""
    own = file is None
    f = _h5().File(path, "r") if own else file
    try:
        out: list[tuple[int, dict]] = []
        if "study" in f:
            attrs = {k: _attr(v) for k, v in f["study"].attrs.items()}
            out.append((-2, {"k": "study", **{k: v for k, v in attrs.items() if k not in ("end_status", "end_time")}}))
            if "end_status" in attrs:
                out.append(
                    (1 << 62, {"k": "end", "end_status": attrs["end_status"], "end_time": attrs.get("end_time")})
                )
        for kind, (group_name, cols) in TABLES.items():
            if group_name not in f:
                continue
            g = f[group_name]
            n = min(g[c].shape[0] for c in cols if c in g)
            columns = {c: g[c][:n] for c in cols if c in g}
            for i in range(n):
                rec: dict = {"k": kind}
                for c, ck in cols.items():
                    if c in columns:
                        rec[c] = _read_cell(ck, columns[c][i])
                out.append((rec["seq"], rec))
        out.sort(key=lambda p: p[0])
        return [r for _, r in out]
    finally:
        if own:
            f.close()


def _attr(v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, str) and v[:1] in "{[":
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v.item() if hasattr(v, "item") else v


def _read_cell(kind: str, v: Any) -> Any:
    if kind == _I:
        v = int(v)
        return None if v == -1 else v
    if kind == _F:
        v = float(v)
        return None if math.isnan(v) else v
    if kind == _B:
        return bool(v)
    if isinstance(v, bytes):
        v = v.decode()
    return json.loads(v) if kind == _J else v


def rebuild_from_records(path: str, records: Iterable[dict]) -> None:
    """Write a fresh results file from records: temp file, then ``os.replace`` (atomic)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    store = HDF5Store(tmp, mode="w")
    for r in records:
        store.append(r)
    store.close()
    os.replace(tmp, path)


def can_open(path: str) -> bool:
    """True when ``path`` is a readable rdhpo results file: an HDF5 file whose ``/study`` group
    carries ``schema_version`` (written with the study's first row).  False for anything else:
    missing, a directory or other non-regular file (a FIFO would block the open), a torn or
    foreign file."""
    if not os.path.isfile(path):
        return False
    try:
        with _h5().File(path, "r") as f:
            study = f.get("study")
            return isinstance(study, _h5().Group) and "schema_version" in study.attrs
    except Exception:  # noqa: BLE001 - any failure to open means "needs rebuilding"
        return False


def is_empty(path: str) -> bool:
    """True for a regular file that is an HDF5 file holding nothing (no member, no attribute): what
    ``HDF5Store(path, "w")`` leaves before its first write.  Replacing it loses no data."""
    if not os.path.isfile(path):
        return False
    try:
        with _h5().File(path, "r") as f:
            return len(f) == 0 and len(f.attrs) == 0
    except Exception:  # noqa: BLE001 - not HDF5, torn, unreadable
        return False


def try_read(path: str) -> Optional[list[dict]]:
    return read_records(path) if can_open(path) else None


def is_hdf5_file(path: str) -> bool:
    """True when ``path`` is an HDF5 file (any content)."""
    import h5py

    return bool(h5py.is_hdf5(path))


def read_arrays(path: str) -> dict[str, Any]:
    """Every top-level dataset of an HDF5 file as a numpy array (a dataset file's arrays)."""
    import h5py
    import numpy as np

    with h5py.File(path, "r") as f:
        return {k: np.asarray(f[k][()]) for k in f.keys() if isinstance(f[k], h5py.Dataset)}


def catch_up(path: str, records: list[dict]) -> str:
    """Make the HDF5 view at ``path`` hold ``records`` (a journal's, ``end`` left out) at the least
    cost — on ``--resume`` and takeover, before the first dispatch: "kept" when it already holds
    them all, "appended" when its rows are those of a prefix of ``records`` (a writer killed
    after its last flush; the rows of the rest are appended in order), else "rebuilt"
    (:func:`rebuild_from_records`: a torn, foreign or unreadable file).  The ``end`` attributes
    of the previous run are removed, as a rebuild from ``records`` would."""
    start = _rows_end(path, records) if can_open(path) else None
    if start is None:
        rebuild_from_records(path, records)
        return "rebuilt"
    try:
        with _h5().File(path, "a") as f:
            for key in ("end_status", "end_time", "exit_code"):
                if key in f["study"].attrs:
                    del f["study"].attrs[key]
        if start == len(records):
            return "kept"
        store = HDF5Store(path, "a")
        try:
            for r in records[start:]:
                store.append(r)
            store.write()
        finally:
            store.file.close()
    except OSError:  # readable but not writable: a heap torn by a writer's SIGKILL ("bad heap index")
        rebuild_from_records(path, records)
        return "rebuilt"
    return "appended"


def _rows_end(path: str, records: list[dict]) -> Optional[int]:
    """The index in ``records`` up to which the file holds every row and beyond which none, or
    None when its rows are no prefix of them (a table with columns of unequal length included)."""
    counts: dict[str, int] = {}
    last: dict[str, int] = {}
    with _h5().File(path, "r") as f:
        for kind, (group, cols) in TABLES.items():
            g = f.get(group)
            lengths = {g[c].shape[0] for c in cols if c in g} if g is not None else {0}
            if len(lengths) != 1 or (g is not None and any(c not in g for c in cols)):
                return None
            counts[kind] = lengths.pop()
            if counts[kind] and "trial_id" in cols:
                last[kind] = int(g["trial_id"][counts[kind] - 1])
    seen = dict.fromkeys(TABLES, 0)
    lo, hi = 0, len(records)  # the prefix ends after every row held and before every row missing
    for i, r in enumerate(records):
        k = r.get("k")
        if k not in seen:
            continue
        n = seen[k] = seen[k] + 1
        if n == counts[k]:
            lo = max(lo, i + 1)
            if k in last and r.get("trial_id") != last[k]:
                return None
        elif n == counts[k] + 1:
            hi = min(hi, i)
    if any(seen[k] < counts[k] for k in TABLES) or lo > hi:
        return None
    return lo
