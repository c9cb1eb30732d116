"""The optimizer role: decides *which config* to try next (pure ask/tell; no I/O, no MPI).

Called only by the coordinator's event loop (rank 0, or the rank that took over):

* ``ask(trial_id)`` when a worker is idle and the scheduler wants a new trial;
* ``tell(trial_id, state, value)`` once for every trial that reaches a terminal state —
  COMPLETE, PRUNED (value = last reported), FAILED (value None: objective error, or the trial
  was lost on more workers than the retry cap allows).  LOST attempts that are re-queued are
  not told: the trial is still pending.

State is rebuilt on ``--resume`` (and takeover) by replaying the logged ask/tell calls in order
with the same seed, so an optimizer must be deterministic given (seed, call sequence); no pickling.
Replay does not re-run the asks before the journal's newest ``snapshot`` record: there ``ask``
answers the logged params without calling ``_suggest`` (:meth:`Optimizer.logged_answer`), then
:meth:`Optimizer.set_state` restores what ``_suggest`` changed — the RNG and the attributes named
in ``ask_state``.  Contract (``tests/unit/test_snapshot.py``): everything else is a function of
the asks' results and the tells, and ``tell`` uses no state that only ``_suggest`` keeps up to date.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional

import numpy as np

from ..errors import ConfigError
from ..snapshot import pack, unpack
from ..space import Space
from ..trial import TrialState


class Optimizer:
    """Base class: keeps pending params and the finished history; subclasses implement ``_suggest``."""

    name = "base"
    #: True for slow (model-based) asks: under the FIFO scheduler the coordinator then asks ahead
    #: while every worker is busy, up to one suggestion per worker, so that a wave of workers
    #: finishing together is not served one ask at a time
    prefetch = False
    #: option name -> default; options not listed here are rejected with a clear message
    options: dict[str, Any] = {}
    #: asks between two ``snapshot`` records of the journal: a resume re-runs at most this many
    #: asks (optimizers with slow asks snapshot after every one).  None: no snapshots, a resume
    #: asks again for every trial.  Set it once ``ask_state`` is complete (test_snapshot.py checks)
    snapshot_every: Optional[int] = None
    #: attributes that ``_suggest`` changes besides ``rng``: saved by value in a snapshot
    ask_state: tuple[str, ...] = ()

    def __init__(self, space: Space, direction: str = "minimize", seed: int = 0, **options: Any) -> None:
        if direction not in ("minimize", "maximize"):
            raise ConfigError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
        unknown = set(options) - set(self.options)
        if unknown:
            raise ConfigError(
                f"optimizer {self.name!r}: unknown option(s) {sorted(unknown)}; "
                f"allowed: {sorted(self.options) or 'none'}"
            )
        self.space = space
        self.direction = direction
        self.sign = 1.0 if direction == "minimize" else -1.0
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.opts = {**self.options, **options}
        self.pending: dict[int, dict[str, Any]] = {}
        #: finished trials in tell order: (trial_id, params, state, value)
        self.history: list[tuple[int, dict[str, Any], TrialState, Optional[float]]] = []
        self.asks = 0  # calls of ask so far
        self._logged: Optional[tuple[int, dict[str, Any]]] = None  # replay: the next ask's answer

    # -- hooks called by the coordinator ------------------------------------------------------
    def ask(self, trial_id: int) -> Optional[dict[str, Any]]:
        """A new config for ``trial_id``, or None when nothing can be suggested now."""
        logged, self._logged = self._logged, None
        params = logged[1] if logged is not None and logged[0] == trial_id else self._suggest(trial_id)
        self.asks += 1
        if params is not None:
            self.pending[trial_id] = params
        return params

    def enqueued(self, trial_id: int, params: dict[str, Any]) -> None:
        """Called by :class:`~rdhpo_hpc.strategy.Enqueued` instead of ``ask`` when a user-given
        configuration runs as ``trial_id``: kept pending like an asked one, so ``tell`` makes it
        an observation.  Optimizers that keep more per asked trial extend this."""
        self.pending[trial_id] = dict(params)

    def tell(self, trial_id: int, state: TrialState, value: Optional[float]) -> None:
        """The trial ended; ``value`` is in the user's direction (None when FAILED)."""
        params = self.pending.pop(trial_id, None)
        if params is None:
            return  # not ours (e.g. a replayed trial from an older study), or told twice
        state = TrialState(state)
        if value is not None and not np.isfinite(value):
            state, value = TrialState.FAILED, None
        self.history.append((trial_id, params, state, value))
        self._observe(trial_id, params, state, value)

    @property
    def exhausted(self) -> bool:
        """True when ``ask`` will never return a config again (e.g. the grid is done)."""
        return False

    def wants_pending(self) -> bool:
        return True

    # -- replay and snapshots (coordination/replay.py, coordination/study.py) ---------------------
    @contextlib.contextmanager
    def logged_answer(self, trial_id: int, params: dict[str, Any]) -> Iterator[None]:
        """Replay before a snapshot: inside, ``ask(trial_id)`` returns ``params`` (as logged)
        without calling ``_suggest``; everything else ``ask`` does happens as usual."""
        self._logged = (trial_id, params)
        try:
            yield
        finally:
            self._logged = None

    def state(self) -> dict[str, Any]:
        """What ``_suggest`` changed, by name: ``rng`` and the ``ask_state`` attributes."""
        return {"rng": self.rng, **{name: getattr(self, name) for name in self.ask_state}}

    def set_state(self, values: dict[str, Any]) -> None:
        """Called by the replay at a snapshot: restore what :meth:`state` returned then."""
        for name, v in values.items():
            setattr(self, name, v)

    def snapshot_state(self) -> dict[str, Any]:
        """:meth:`state` as plain JSON (the ``snapshot`` record's ``optimizer`` field)."""
        return {name: pack(v) for name, v in self.state().items()}

    def decode_state(self, packed: Any) -> dict[str, Any]:
        """The values of a :meth:`snapshot_state`, for :meth:`set_state`; ``ValueError`` when it
        is malformed or was written by an optimizer with other state (nothing is changed)."""
        names = set(self.state())
        if not isinstance(packed, dict) or set(packed) != names:
            got = sorted(packed) if isinstance(packed, dict) else type(packed).__name__
            raise ValueError(f"snapshot of optimizer {self.name!r}: expected fields {sorted(names)}, got {got}")
        values = {name: unpack(v) for name, v in packed.items()}
        if not isinstance(values["rng"], np.random.Generator):
            raise ValueError(f"snapshot of optimizer {self.name!r}: 'rng' is no random generator")
        return values

    # -- for subclasses ------------------------------------------------------------------------
    def _suggest(self, trial_id: int) -> Optional[dict[str, Any]]:
        raise NotImplementedError

    def _observe(self, trial_id: int, params: dict[str, Any], state: TrialState, value: Optional[float]) -> None:
        """Called after ``tell`` recorded the trial; model-based optimizers update here."""

    def loss(self, value: float) -> float:
        """The value turned into a loss to minimise."""
        return self.sign * float(value)

    def observations(self) -> list[tuple[dict[str, Any], float]]:
        """(params, loss) of every trial with a finite value (COMPLETE and PRUNED)."""
        return [(p, self.loss(v)) for _, p, s, v in self.history if v is not None]
