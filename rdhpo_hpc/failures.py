"""Trial errors as a user reads them (pure; no I/O).

A FAILED attempt's ``error`` is the text the worker recorded: ``Type: message`` on the first line,
then (for an exception) the last frames of its traceback.  Used by the coordinator (the first
failure of each distinct error is logged once, :class:`FirstFailures`), by ``rdhpo show`` and by
``StudyResult.errors()`` (failures grouped by error).
"""

from __future__ import annotations

import re
from typing import Iterable, Optional

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")


def headline(error: str) -> str:
    """The error's first line: ``RuntimeError: boom`` (an empty error: ``(no error text)``)."""
    first = (error or "").strip().splitlines()
    return first[0].strip() if first else "(no error text)"


def where(error: str) -> str:
    """The last ``File "...", line N, in fn`` line of the error's traceback, or ``""``."""
    frames = [ln.strip() for ln in (error or "").splitlines() if ln.strip().startswith('File "')]
    return frames[-1] if frames else ""


def error_key(error: str) -> str:
    """What makes two errors "the same error": the headline with its numbers blanked and the
    place it was raised (``exploded at x=0.93`` and ``exploded at x=0.97`` are one error)."""
    return _NUMBER.sub("#", headline(error)) + " @ " + where(error)


def group_errors(failed: Iterable[tuple[int, str]]) -> list[tuple[str, str, list[int]]]:
    """``(trial id, error)`` pairs -> ``(headline of the first, where, trial ids)`` per distinct
    error, the most frequent first (ties: the earliest trial first)."""
    groups: dict[str, tuple[str, str, list[int]]] = {}
    for tid, error in failed:
        key = error_key(error)
        if key not in groups:
            groups[key] = (headline(error), where(error), [])
        groups[key][2].append(tid)
    return sorted(groups.values(), key=lambda g: (-len(g[2]), min(g[2])))


class FirstFailures:
    """Remembers which distinct errors were seen; :meth:`first` is True once per error."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def first(self, error: str) -> bool:
        key = error_key(error)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    @staticmethod
    def message(trial_id: int, params: dict, error: str, results: Optional[str]) -> str:
        """The one message logged for the first failure of an error."""
        at = where(error)
        hint = f"`rdhpo show {results}`" if results else "the returned result's `errors()`"
        return (
            f"[rdhpo] trial {trial_id} FAILED: {headline(error)}\n"
            + (f"  at {at}\n" if at else "")
            + f"  params: {params}\n"
            + f"  (later trials failing with this error are not printed again; all errors: {hint})"
        )
