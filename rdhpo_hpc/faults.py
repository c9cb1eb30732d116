"""Fault injection plan (YAML ``faults:``, off by default).  Pure: parsing, validation, queries.

Entries (times are seconds after the rank's node started)::

    faults:
      - {cut: [0, 3], at: 2.0}            # drop every message between ranks 0 and 3 from t=2 s
      - {cut: [1, 2], at: 1.0, until: 5.0} # ... and heal the link at t=5 s
      - {delay: [0, 1], seconds: 0.5}     # every message between 0 and 1 arrives 0.5 s late
      - {kill: 2, at: 3.0}                # rank 2 SIGKILLs itself at t=3 s (a crash)
      - {stop: 2, at: 3.0}                # rank 2 SIGSTOPs itself at t=3 s (a hang)

The node applies cuts and delays in its pump thread (both ends of the link apply the same
rule, so the cut is symmetric); the launcher applies ``kill`` / ``stop`` (a signal under MPI,
``Hub.kill`` / ``Hub.stop`` in process).  Ranks are checked against the job size on rank 0
before any work (:func:`check_ranks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal, Optional, overload

from . import validate
from .errors import ConfigError

KINDS = ("cut", "delay", "kill", "stop")
_ALLOWED = {
    "cut": {"cut", "at", "until"},
    "delay": {"delay", "seconds", "at", "until"},
    "kill": {"kill", "at"},
    "stop": {"stop", "at"},
}


@dataclass(frozen=True)
class Fault:
    kind: str  # cut | delay | kill | stop
    ranks: tuple  # (a, b) for a link, (r,) for a rank
    at: float = 0.0  # start, seconds after the node started
    until: Optional[float] = None  # end (links only); None = for good
    seconds: float = 0.0  # delay only

    def active(self, elapsed: float) -> bool:
        return elapsed >= self.at and (self.until is None or elapsed < self.until)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {self.kind: list(self.ranks) if len(self.ranks) > 1 else self.ranks[0]}
        if self.at:
            d["at"] = self.at
        if self.until is not None:
            d["until"] = self.until
        if self.kind == "delay":
            d["seconds"] = self.seconds
        return d


@overload
def _time(where: str, key: str, v: Any, allow_none: Literal[False] = False, positive: bool = False) -> float: ...
@overload
def _time(where: str, key: str, v: Any, allow_none: bool = False, positive: bool = False) -> Optional[float]: ...
def _time(where: str, key: str, v: Any, allow_none: bool = False, positive: bool = False) -> Optional[float]:
    return validate.number(
        v, f"{where}: '{key}'", 0, lo_open=positive, allow_none=allow_none, kind="a number of seconds"
    )


def _rank(where: str, v: Any) -> int:
    return validate.integer(v, f"{where}: a rank", 0)


def parse_faults(items: Any) -> list[Fault]:
    """Validate the YAML ``faults:`` list; every error quotes the entry and the bad value."""
    if items is None:
        return []
    if not isinstance(items, (list, tuple)):
        raise ConfigError(f"'faults' must be a list of entries like {{cut: [0, 3], at: 2.0}}, got {items!r}")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, Fault):
            out.append(item)
            continue
        where = f"faults[{i}] {item!r}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: each fault must be a mapping with one of {list(KINDS)}")
        kinds = [k for k in KINDS if k in item]
        if len(kinds) != 1:
            raise ConfigError(f"{where}: each fault must have exactly one of {list(KINDS)}")
        kind = kinds[0]
        bad = set(item) - _ALLOWED[kind]
        if bad:
            raise ConfigError(
                f"{where}: unknown key(s) {sorted(bad)} for a '{kind}' fault; allowed: {sorted(_ALLOWED[kind])}"
            )
        at = _time(where, "at", item.get("at", 0.0))
        until = _time(where, "until", item.get("until"), allow_none=True)
        if until is not None and until <= at:
            raise ConfigError(f"{where}: 'until' ({until}) must be later than 'at' ({at})")
        target = item[kind]
        if kind in ("cut", "delay"):
            if not isinstance(target, (list, tuple)) or len(target) != 2:
                raise ConfigError(f"{where}: '{kind}' needs a pair of ranks like [0, 3], got {target!r}")
            a, b = (_rank(where, r) for r in target)
            if a == b:
                raise ConfigError(f"{where}: '{kind}' needs two different ranks, got {target!r}")
            seconds = _time(where, "seconds", item.get("seconds"), positive=True) if kind == "delay" else 0.0
            out.append(Fault(kind, (min(a, b), max(a, b)), at, until, seconds or 0.0))
        else:
            out.append(Fault(kind, (_rank(where, target),), at))
    return out


def check_ranks(faults: Iterable[Fault], size: int) -> None:
    """Every rank named by the plan exists in a job of ``size`` ranks."""
    for f in faults:
        for r in f.ranks:
            if r >= size:
                raise ConfigError(
                    f"faults: {f.to_dict()!r} names rank {r}, but the job has only {size} ranks (0..{size - 1})"
                )


class FaultPlan:
    """The part of a plan that concerns one rank; queried by its node's pump."""

    def __init__(self, faults: Iterable[Fault], rank: int) -> None:
        self.rank = rank
        self.links = [f for f in parse_faults(list(faults)) if f.kind in ("cut", "delay") and rank in f.ranks]
        self.self_faults = sorted(
            (f for f in parse_faults(list(faults)) if f.kind in ("kill", "stop") and f.ranks[0] == rank),
            key=lambda f: f.at,
        )

    def __bool__(self) -> bool:
        return bool(self.links or self.self_faults)

    def _peer(self, f: Fault) -> int:
        return f.ranks[1] if f.ranks[0] == self.rank else f.ranks[0]

    def cut(self, elapsed: float) -> set[int]:
        """Peers this rank neither sends to nor hears from at ``elapsed``."""
        return {self._peer(f) for f in self.links if f.kind == "cut" and f.active(elapsed)}

    def delay(self, peer: int, elapsed: float) -> float:
        """Extra seconds before a message to ``peer`` leaves this rank."""
        return max(
            (f.seconds for f in self.links if f.kind == "delay" and self._peer(f) == peer and f.active(elapsed)),
            default=0.0,
        )

    def due_self(self, elapsed: float) -> list[Fault]:
        """Kill / stop actions of this rank that are due now (each returned once)."""
        due = [f for f in self.self_faults if f.at <= elapsed]
        self.self_faults = [f for f in self.self_faults if f.at > elapsed]
        return due
