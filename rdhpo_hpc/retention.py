"""Checkpoint retention (``checkpoints: {keep: best|last|N|all}``): rank 0 deletes the checkpoint
directories of finished trials (``CHECKPOINTS/trial-ID``) that nothing needs any more.

Called by the coordinator after every live ``tell`` (the hook :attr:`Study.on_tell`, attached
after any replay), with the scheduler already told.  Kept, always: the trials the scheduler may
still start from (:meth:`Scheduler.checkpoints_needed`: a configuration that promote mode may
promote, a PBT member's latest trial or a planned exploit's donor) and the ``checkpoint_from`` of
every trial not finished yet (running, queued, re-queued); then, by ``keep``: ``best`` the best
trial's (as ``result.best_trial``), ``N`` the last ``N`` finished trials' (``last`` = 1),
``all`` every one (nothing is deleted, the default).  Deletion is ``shutil.rmtree`` on rank 0, so
the directory must be one that rank 0 can reach (a shared file system, as PBT and promote mode
need anyway).
"""

from __future__ import annotations

import collections
import os
import shutil
from typing import Any, Mapping, Optional, Sequence, Union

from . import validate
from .errors import ConfigError
from .log import logger
from .trial import TrialState

Keep = Union[str, int]  # "all", "best" or a count of the last finished trials


def checkpoint_settings(value: Any, where: str = "checkpoints") -> tuple[Optional[str], Keep]:
    """``checkpoints:`` as (directory or None, keep): a directory path, or a mapping with ``dir``
    and ``keep`` (``all`` | ``best`` | ``last`` | an integer >= 1)."""
    if value is None:
        return None, "all"
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value), "all"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where!r} must be a directory path or a mapping with 'dir' and 'keep', got {value!r}")
    bad = set(value) - {"dir", "keep"}
    if bad:
        raise ConfigError(f"unknown key(s) {sorted(bad)} in {where!r}; allowed: ['dir', 'keep']")
    d = value.get("dir")
    if d is not None and (not isinstance(d, (str, os.PathLike)) or not os.fspath(d)):
        raise ConfigError(f"'{where}.dir' must be a directory path, got {d!r}")
    return (None if d is None else os.fspath(d)), keep_setting(value.get("keep", "all"), f"{where}.keep")


def keep_setting(keep: Any, where: str = "checkpoints.keep") -> Keep:
    if keep in ("all", "best"):
        return str(keep)
    if keep == "last":
        return 1
    if isinstance(keep, str):
        raise ConfigError(f"'{where}' must be 'all', 'best', 'last' or an integer >= 1, got {keep!r}")
    return validate.integer(keep, f"'{where}' (all, best, last or an integer)", 1)


class Retention:
    """Deletes unneeded checkpoints of finished trials; see the module docstring.

    ``study`` is the coordinator's :class:`~rdhpo_hpc.coordination.study.Study`.  Two hooks: ``__call__`` listens to
    the journalled records (which open trials start from a checkpoint), ``on_tell`` runs after
    each live tell."""

    def __init__(self, root: str, keep: Keep, study: Any) -> None:
        self.root, self.keep, self.study = root, keep, study
        self.finished: collections.OrderedDict[int, None] = collections.OrderedDict()  # told, maybe on disk
        self.parents: dict[int, int] = {}  # open trial -> the trial whose checkpoint it starts from
        self.deleted = 0

    def seed(self, records: Sequence[Mapping[str, Any]]) -> None:
        """The records of an earlier run (``--resume``, takeover)."""
        for r in records:
            self(r)
            if r.get("k") == "tell":
                self.finished[r["trial_id"]] = None

    def __call__(self, record: Mapping[str, Any]) -> None:
        k = record.get("k")
        if k in ("ask", "dispatch") and record.get("checkpoint_from") is not None:
            self.parents[record["trial_id"]] = record["checkpoint_from"]
        elif k == "tell":
            self.parents.pop(record["trial_id"], None)

    def on_tell(self, trial_id: int, state: TrialState, value: Optional[float]) -> None:
        self.finished[trial_id] = None
        self.finished.move_to_end(trial_id)
        keep = self.needed()
        for tid in [t for t in self.finished if t not in keep]:
            del self.finished[tid]
            path = os.path.join(self.root, f"trial-{tid}")
            if os.path.isdir(path):
                try:
                    shutil.rmtree(path)
                    self.deleted += 1
                except OSError as exc:  # e.g. a worker still writes there: left, not fatal
                    logger.warning("[rdhpo] could not delete checkpoint %s: %s", path, exc)

    def needed(self) -> set[int]:
        """Trial ids whose checkpoints must stay now."""
        needed = set(getattr(self.study.scheduler, "checkpoints_needed", set)())
        needed.update(self.parents.values())
        if self.keep == "all":
            needed.update(self.finished)
        elif self.keep == "best":
            if self.study.best is not None:
                needed.add(self.study.best[1])
        else:
            needed.update(list(self.finished)[-int(self.keep) :])
        return needed
