"""Plain-JSON encoding of optimizer state for the journal's ``snapshot`` records (no pickle: a
results file never runs code when it is read).

:func:`pack` turns a value into JSON that survives the journal exactly — numpy arrays (their
bytes, base64), non-finite floats, tuples, dicts with any keys, integers beyond 64 bits (JSON
readers may turn those into floats) and ``numpy.random.Generator`` states — and :func:`unpack`
turns it back (dicts with plain string keys stay JSON objects).  Anything else raises
``TypeError``; a malformed packed value raises ``ValueError`` (the replay then falls back to an
older snapshot, see ``coordination/replay.py``).
"""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np

_INT64 = 1 << 63


def pack(v: Any) -> Any:
    """``v`` as JSON-able data that :func:`unpack` turns back into an equal value."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, np.integer)):
        v = int(v)
        return v if -_INT64 <= v < _INT64 else {"$i": hex(v)}  # hex: no long digit run (journal.py)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if math.isfinite(v) else {"$f": repr(v)}
    if isinstance(v, np.ndarray):
        a = np.ascontiguousarray(v)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"snapshot: arrays of dtype {a.dtype} are not supported")
        return {"$a": base64.b64encode(a.tobytes()).decode("ascii"), "dtype": a.dtype.str, "shape": list(a.shape)}
    if isinstance(v, np.random.Generator):
        return {"$rng": pack(v.bit_generator.state)}
    if isinstance(v, list):
        return [pack(x) for x in v]
    if isinstance(v, tuple):
        return {"$t": [pack(x) for x in v]}
    if isinstance(v, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in v):
            return {k: pack(x) for k, x in v.items()}
        return {"$d": [[pack(k), pack(x)] for k, x in v.items()]}
    raise TypeError(f"snapshot: cannot encode a value of type {type(v).__name__}")


def unpack(d: Any) -> Any:
    """The value that :func:`pack` encoded as ``d``; ``ValueError`` when ``d`` is malformed."""
    if d is None or isinstance(d, (bool, str, int, float)):
        return d
    if isinstance(d, list):
        return [unpack(x) for x in d]
    if not isinstance(d, dict):
        raise ValueError(f"snapshot: malformed value {d!r:.80}")
    if not any(isinstance(k, str) and k.startswith("$") for k in d):
        return {k: unpack(x) for k, x in d.items()}
    try:
        if "$i" in d:
            return int(d["$i"], 16)
        if "$f" in d:
            return float(d["$f"])
        if "$a" in d:
            raw = base64.b64decode(d["$a"].encode("ascii"), validate=True)
            return np.frombuffer(raw, dtype=np.dtype(d["dtype"])).reshape(d["shape"]).copy()
        if "$rng" in d:
            state = unpack(d["$rng"])
            bit_generator = getattr(np.random, state["bit_generator"])()
            bit_generator.state = state
            return np.random.Generator(bit_generator)
        if "$t" in d:
            return tuple(unpack(x) for x in d["$t"])
        if "$d" in d:
            return {unpack(k): unpack(x) for k, x in d["$d"]}
    except (KeyError, TypeError, AttributeError, ValueError) as exc:  # binascii.Error is a ValueError
        raise ValueError(f"snapshot: malformed value {d!r:.80}: {exc}") from exc
    raise ValueError(f"snapshot: unknown encoding {sorted(d)!r}")
