"""A study's trials as a pandas DataFrame: ``StudyResult.to_dataframe()`` and ``rdhpo export``.

The only module that imports pandas (the ``data`` extra: ``pip install 'rdhpo_hpc[data]'``);
pyarrow is needed only to write Parquet.
"""

from __future__ import annotations

import math
import os
import tempfile
from typing import TYPE_CHECKING, Any, Optional

from .errors import ConfigError

if TYPE_CHECKING:
    from .results import StudyResult

COLUMNS = [
    "trial_id",
    "attempt",
    "state",
    "value",
    "budget",
    "rank",
    "host",
    "device",
    "start",
    "end",
    "duration",
    "error",
]
NEEDS = "pandas is needed for DataFrames and `rdhpo export`: pip install 'rdhpo_hpc[data]'"


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ConfigError(NEEDS) from None
    return pandas


def _row(a: dict, counted: Optional[bool]) -> dict:
    start, end = a.get("start_time"), a.get("end_time")
    known = start is not None and end is not None and math.isfinite(start) and math.isfinite(end)
    row = {
        "trial_id": int(a["trial_id"]),
        "attempt": int(a.get("attempt", 0)),
        "state": str(a["state"]),
        "value": math.nan if a.get("value") is None else float(a["value"]),
        "budget": a.get("budget"),
        "rank": int(a.get("rank", -1)),
        "host": a.get("host") or "",
        "device": a.get("device") or "",
        "start": start if known else math.nan,
        "end": end if known else math.nan,
        "duration": end - start if known else math.nan,  # type: ignore[operator]
        "error": a.get("error") or "",
    }
    if counted is not None:
        row["counted"] = counted
    for k, v in (a.get("params") or {}).items():
        row[f"params_{k}"] = v
    return row


def _counted(res: "StudyResult", t: Any) -> dict:
    """The attempt record that counts for trial ``t``: known to a result read from a record log;
    for a view built trial by trial (the callbacks' study) the matching attempt, else ``t`` itself."""
    if t.trial_id in res.counted:
        return res.counted[t.trial_id]
    for a in reversed(res.attempts):
        if a.get("trial_id") == t.trial_id and a.get("attempt") == t.attempt and a.get("state") == t.state:
            return a
    return {
        "trial_id": t.trial_id,
        "attempt": t.attempt,
        "state": t.state,
        "value": t.value,
        "budget": t.budget,
        "rank": t.rank,
        "error": t.error,
        "params": t.params,
    }


def to_dataframe(res: "StudyResult", attempts: bool = False) -> Any:
    """One row per trial (its counted attempt), or per ended attempt with ``attempts=True``."""
    pd = _pandas()
    if attempts:
        counted = {id(a) for a in res.counted.values()}
        rows = [_row(a, id(a) in counted) for a in res.attempts]
    else:
        rows = [_row(_counted(res, t), None) for t in res.trials]
    df = pd.DataFrame(rows)
    base = COLUMNS + (["counted"] if attempts else [])
    if df.empty:
        return pd.DataFrame(columns=base)
    params = sorted(c for c in df.columns if c.startswith("params_"))
    df = df[base + params]
    for c in ("start", "end"):
        df[c] = pd.to_datetime(df[c], unit="s", utc=True)
    return df.reset_index(drop=True)


def export(res: "StudyResult", out: str, fmt: str, attempts: bool = False, overwrite: bool = False) -> int:
    """Write the DataFrame to ``out`` (``fmt``: ``csv`` or ``parquet``) atomically; the number of rows.
    An existing ``out`` is kept (ConfigError) unless ``overwrite``."""
    if os.path.isdir(out):
        raise ConfigError(f"export: {out!r} is a directory; give a file path")
    if os.path.exists(out) and not overwrite:
        raise ConfigError(f"export: {out!r} already exists; pass --overwrite to replace it")
    df = to_dataframe(res, attempts)
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError("pyarrow is needed to write Parquet: pip install 'rdhpo_hpc[data]'") from None
        df = _arrow_ready(df)
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise ConfigError(f"export: the folder of {out!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".rdhpo-export-", dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # as a file written in place would be
    try:
        if fmt == "csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return len(df)


def _arrow_ready(df: Any) -> Any:
    """Columns of mixed Python types (a categorical of ints and strings, budgets and None) as
    Arrow can store them: numbers as float where all are numbers, else text."""
    pd = _pandas()
    out = df.copy()
    for c in out.columns:
        if out[c].dtype != object:
            continue
        values = [v for v in out[c] if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
        elif len({type(v) for v in values}) > 1:
            out[c] = out[c].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    return out
