"""Per-trial callbacks on rank 0: ``rd.optimize(callbacks=[...])`` and YAML ``callbacks:``.

Each callback is called as ``callback(trial, study)`` by the coordinator (rank 0, or the rank
that took over) right after a trial ends and its ``tell`` record is journalled: ``trial`` is the
finished trial as in ``result.trials`` (a :class:`~rdhpo_hpc.trial.TrialRecord`: COMPLETE, PRUNED
or FAILED), ``study`` the study so far (a :class:`~rdhpo_hpc.results.StudyResult` whose
``trials`` are the finished ones in the order they ended, with ``best_trial``, ``direction`` and
``path``).  Callbacks run in the coordinator's loop: a slow one delays the next dispatch.  One that
raises is logged once (with its exception's last line) and called again for later trials; the
study goes on.  On ``--resume`` the study view starts with the trials the journal holds; only
trials ending from then on are passed to callbacks.

In YAML a callback is an import path, ``package.module:function`` or ``package.module.function``
(``file.py:function`` too), resolved when the config is validated: a bad path is a config error
before any trial runs.
"""

from __future__ import annotations

import inspect
import traceback
from typing import Any, Callable, Mapping, Optional, Sequence

from .errors import ConfigError
from .log import logger
from .results import StudyResult, result_from_records
from .trial import TrialRecord

Callback = Callable[[TrialRecord, StudyResult], Any]


def resolve(spec: Any, where: str = "callbacks") -> Callback:
    """A callable, or the function named by an import path; ConfigError names a bad one."""
    if callable(spec):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"{where}: expected an import path 'package.module:function' or a callable, got {spec!r}")
    if ":" in spec:
        mod_name, _, fn_name = spec.rpartition(":")
    else:
        mod_name, _, fn_name = spec.rpartition(".")
    if not mod_name or not fn_name:
        raise ConfigError(f"{where}: {spec!r} is not an import path 'package.module:function'")
    from .config import load_function

    return load_function(mod_name, fn_name, spec, where)


def callback_list(value: Any, where: str = "callbacks") -> list[Any]:
    """Validate a ``callbacks`` setting (None, or a list of import paths / callables); every
    path is imported now.  Returns the list as given (paths stay strings: the config is shipped
    to every rank)."""
    if value is None:
        return []
    if callable(value) or isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where!r} must be a list of import paths 'package.module:function', got {value!r}")
    for i, spec in enumerate(value):
        _check_signature(resolve(spec, f"{where}[{i}]"), f"{where}[{i}] {callback_name(spec)!r}")
    return list(value)


def _check_signature(fn: Callable, where: str) -> None:
    """ConfigError unless ``fn`` can be called as ``fn(trial, study)`` (unreadable signatures pass)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(None, None)
    except TypeError:
        raise ConfigError(
            f"{where}: a callback is called as callback(trial, study), but its signature is {sig}"
        ) from None


def callback_name(spec: Any) -> str:
    """How a callback is named in the results file and in messages."""
    if isinstance(spec, str):
        return spec
    name = getattr(spec, "__qualname__", None) or type(spec).__qualname__
    return f"{getattr(spec, '__module__', '') or ''}:{name}".lstrip(":")


def _last_line(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    return lines[-1].strip() if lines else repr(exc)


class CallbackRunner:
    """A record listener of the coordinator's :class:`~rdhpo_hpc.coordination.records.Recorder`:
    keeps the study view up to date from the journalled records and calls every callback when
    a ``tell`` record (a trial ended) goes by."""

    def __init__(self, callbacks: list[Any], direction: str, path: Optional[str] = None) -> None:
        self.callbacks = [(callback_name(c), resolve(c)) for c in callbacks]
        self.view = StudyResult(direction, [], [], [], [], {}, path=path)
        self._last: dict[int, dict] = {}  # trial id -> its latest attempt record (not yet told)
        self._curves: dict[int, dict[int, list[tuple[int, float]]]] = {}  # trial -> attempt -> reports
        self.failures: dict[str, int] = {}  # callback name -> times it raised

    def seed(self, records: Sequence[Mapping[str, Any]]) -> None:
        """The trials of an earlier run (``--resume``, takeover), without calling anyone."""
        for r in records:
            self.note(r)

    def __call__(self, record: Mapping[str, Any]) -> None:
        trial = self.note(record)
        if trial is not None:
            self.call(trial)

    def note(self, record: Mapping[str, Any]) -> Optional[TrialRecord]:
        """Add a record to the view; the finished trial when it is a ``tell``."""
        k = record.get("k")
        if k == "attempt":
            self.view.attempts.append(dict(record))
            self._last[record["trial_id"]] = dict(record)
        elif k == "report":
            self.view.reports.append(dict(record))
            if record.get("decision") != "fenced":
                attempts = self._curves.setdefault(record["trial_id"], {})
                attempts.setdefault(record["attempt"], []).append((record["step"], record["value"]))
        elif k == "event":
            self.view.events.append(dict(record))
        elif k == "worker":
            self.view.workers[record["rank"]] = dict(record)
        elif k == "study":
            self.view.study = {key: v for key, v in record.items() if key != "k"}
        elif k == "tell":
            tid = record["trial_id"]
            last = self._last.pop(tid, None)
            curves = self._curves.pop(tid, {})  # by trial: a tell costs nothing per running trial
            if last is not None:  # the attempt that counted: journalled just before its tell
                trial = result_from_records([last]).trials[0]
                if isinstance(trial.extra, dict):  # its learning curve: [(step, value), ...]
                    trial.extra["reports"] = curves.get(last["attempt"], [])
                self.view.trials.append(trial)
                return trial
        return None

    def call(self, trial: TrialRecord) -> None:
        for name, fn in self.callbacks:
            try:
                fn(trial, self.view)
            except Exception as exc:  # noqa: BLE001 - a user's callback must never end the study
                n = self.failures[name] = self.failures.get(name, 0) + 1
                if n == 1:
                    logger.warning(
                        "[rdhpo] callback %s raised on trial %d: %s (reported once; the study goes on)",
                        name,
                        trial.trial_id,
                        _last_line(exc),
                    )

    def close(self) -> None:
        """At the end: how often each failing callback raised."""
        for name, n in self.failures.items():
            if n > 1:
                logger.warning("[rdhpo] callback %s raised on %d trials in all", name, n)
