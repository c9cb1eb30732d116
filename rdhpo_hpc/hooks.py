"""What rank 0 runs beside the loop after each trial: the user's callbacks and checkpoint
retention.  :func:`attach` is called by ``launch.coordinate`` once the coordinator's state is
rebuilt (after any replay), so only trials that end from then on reach them."""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Optional, Sequence

from .callbacks import CallbackRunner
from .retention import Retention


def checkpoint_root(cfg: Any) -> Optional[str]:
    """Where trial checkpoints go: ``checkpoints.dir``, else ``OUTPUT_checkpoints`` beside the
    results file, else none (the API then gives a temporary directory)."""
    if cfg.checkpoints:
        return str(cfg.checkpoints)
    return os.path.splitext(cfg.output)[0] + "_checkpoints" if cfg.output else None


def attach(loop: Any, cfg: Any, old: Sequence[Mapping[str, Any]]) -> Callable[[], None]:
    """Hook callbacks and retention into ``loop`` (a ``CoordinatorLoop``); ``old``: the records
    replayed.  Returns what to call at the end."""
    closers: list[Callable[[], None]] = []
    if cfg.callbacks:
        runner = CallbackRunner(cfg.callbacks, cfg.direction, cfg.output)
        runner.view.study = cfg.describe()  # an earlier run's study record replaces it
        runner.seed(old)
        loop.record.listeners.append(runner)
        closers.append(runner.close)
    root = checkpoint_root(cfg)
    keep = getattr(cfg, "checkpoint_keep", "all")
    if root and keep != "all":
        retention = Retention(root, keep, loop.study)
        retention.seed(old)
        loop.record.listeners.append(retention)
        loop.study.on_tell.append(retention.on_tell)

    def close() -> None:
        for c in closers:
            c()

    return close
