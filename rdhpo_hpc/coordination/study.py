"""The search side as the coordinator sees it: optimizer + scheduler, and the tally of what
they were told (counts per state, the best trial); the optimizer's state for the journal's
``snapshot`` records (:meth:`Study.snapshot`, read back by ``replay.py``).  Pure: no I/O, no clock."""

from __future__ import annotations

import collections
import hashlib
import json
from typing import Any, Callable, Optional

from ..snapshot import pack
from ..trial import Suggestion, TrialState, best_first


class Study:
    def __init__(self, optimizer: Any, scheduler: Any) -> None:
        self.optimizer, self.scheduler = optimizer, scheduler
        self.counts: collections.Counter[str] = collections.Counter()  # per state; LOST per attempt
        self.best: Optional[tuple[tuple[float, float], int]] = None  # (best_first key, trial id)
        #: called as ``f(trial_id, state, value)`` at the end of every ``tell`` (optimizer and
        #: scheduler told, best updated); ``launch.coordinate`` attaches checkpoint retention here
        #: after any replay, so only live tells reach it
        self.on_tell: list[Callable[[int, TrialState, Optional[float]], None]] = []
        self.snapshot_asks = 0  # the optimizer's ask count at the latest snapshot
        self._fingerprint: Optional[str] = None

    @property
    def dispatch_ahead(self) -> bool:
        """The scheduler's declared capability: work may be handed out before it is needed."""
        return bool(getattr(self.scheduler, "dispatch_ahead", False))

    @property
    def prefetch(self) -> bool:
        """The optimizer declares slow asks worth doing ahead (model-based optimizers)."""
        return bool(getattr(self.optimizer, "prefetch", False))

    def suggest(self, trial_id: int) -> Optional[Suggestion]:
        sug: Optional[Suggestion] = self.scheduler.next_trial(self.optimizer, trial_id)
        return sug

    def exhausted(self) -> bool:
        return bool(self.scheduler.exhausted(self.optimizer))

    # -- snapshots ---------------------------------------------------------------------------------
    def suggest_logged(self, trial_id: int, params: dict[str, Any]) -> Optional[Suggestion]:
        """Replay before a snapshot: :meth:`suggest`, with the optimizer answering ``params`` (as
        logged) without computing a suggestion; the scheduler decides as it did."""
        answer = getattr(self.optimizer, "logged_answer", None)
        if answer is None:  # an optimizer without snapshots: ask again
            return self.suggest(trial_id)
        with answer(trial_id, params):
            return self.suggest(trial_id)

    def fingerprint(self) -> Optional[str]:
        """A digest of what a snapshot must have been written by to be restored here: the
        optimizer's name, seed and options (None: this optimizer has no snapshots)."""
        opt = self.optimizer
        if self._fingerprint is None and callable(getattr(opt, "snapshot_state", None)):
            try:
                what = {"optimizer": opt.name, "seed": opt.seed, "options": pack(opt.opts)}
            except TypeError:  # an option JSON cannot hold: no snapshots
                self._fingerprint = ""
            else:
                self._fingerprint = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]
        return self._fingerprint or None

    def snapshot(self) -> Optional[dict[str, Any]]:
        """Called by the coordinator right after it recorded a new trial: the fields of a
        ``snapshot`` record once ``snapshot_every`` asks passed since the latest one, else None."""
        opt = self.optimizer
        every = getattr(opt, "snapshot_every", None)
        if every is None or opt.asks - self.snapshot_asks < every:
            return None
        strategy = self.fingerprint()
        if strategy is None:
            return None
        self.snapshot_asks = opt.asks
        return {"asks": opt.asks, "strategy": strategy, "optimizer": opt.snapshot_state()}

    def decode_snapshot(self, fields: Any) -> dict[str, Any]:
        """The optimizer's state held by a snapshot record; ``ValueError`` when it cannot be
        restored here (another optimizer, seed or options; malformed)."""
        if self.fingerprint() is None or fields.get("strategy") != self.fingerprint():
            raise ValueError("written by another optimizer configuration (name, seed or options)")
        if not isinstance(fields.get("asks"), int):
            raise ValueError(f"no ask count: {fields.get('asks')!r:.80}")
        values: dict[str, Any] = self.optimizer.decode_state(fields.get("optimizer"))
        return values

    def restore_snapshot(self, fields: Any, values: dict[str, Any]) -> None:
        """Replay, at the snapshot record ``fields``: the optimizer's state as it was then."""
        self.snapshot_asks = fields["asks"]
        self.optimizer.set_state({**values, "asks": fields["asks"]})  # asks that gave None count too

    def report(self, trial_id: int, step: int, value: float) -> bool:
        return bool(self.scheduler.on_report(trial_id, step, value))

    def replay_report(self, trial_id: int, step: int, value: float, proceed: bool) -> None:
        """Replay: a report the scheduler answered ``proceed`` (as logged)."""
        self.scheduler.replay_report(trial_id, step, value, proceed)

    def next_decision(self, trial_id: int) -> Optional[int]:
        """The step at which the trial's worker next waits for a decision (sent with its Task and
        with each Decision); every report (0) for a scheduler that does not say."""
        decide = getattr(self.scheduler, "next_decision", None)
        return 0 if decide is None else decide(trial_id)

    def tell(self, trial_id: int, state: TrialState, value: Optional[float], budget: Any) -> None:
        self.optimizer.tell(trial_id, state, value)
        self.scheduler.on_result(trial_id, state, value)
        self.counts[state.value] += 1
        if value is not None and state == TrialState.COMPLETE:
            key = best_first(budget, self.optimizer.loss(value))  # as result.best_trial
            if self.best is None or key < self.best[0]:
                self.best = (key, trial_id)
        for hook in self.on_tell:
            hook(trial_id, state, value)

    def progress_line(self, elapsed: float, done: int, total: int, running: int, live: int, workers: int) -> str:
        el = int(elapsed)
        c = self.counts
        best = "-" if self.best is None else f"{self.optimizer.sign * self.best[0][1]:.5g} (trial {self.best[1]})"
        return (
            f"[rdhpo {el // 3600:02d}:{el % 3600 // 60:02d}:{el % 60:02d}] "
            f"trials {done}/{total} done, {running} running | complete "
            f"{c['COMPLETE']} pruned {c['PRUNED']} failed {c['FAILED']} "
            f"lost {c['LOST']} | best {best} | workers {live}/{workers} live"
        )
