"""User-facing strategy names -> (optimizer, scheduler) pair, with options split between them.

``optimizer="asha"`` means random sampling inside the ASHA scheduler; ``"bohb"`` model-based
sampling inside Hyperband, and so on.  Options go to whichever of the two declares them.

User-given configurations (``rd.optimize(enqueue=[...])``, YAML ``initial_points:``) are served
first by :class:`Enqueued`, a thin wrapper around the optimizer; their results are told to the
optimizer like any other, so they count as observations.
"""

from __future__ import annotations

import collections
import importlib
from typing import Any, Mapping, Optional, Sequence, Union

from .errors import ConfigError
from .log import logger
from .optimizers import REGISTRY as OPTIMIZERS
from .optimizers import Optimizer
from .schedulers import REGISTRY as SCHEDULERS
from .schedulers import Scheduler
from .space import Space
from .space.params import Fixed

#: strategy name -> (optimizer name, scheduler name)
STRATEGIES: dict[str, tuple[str, str]] = {"random": ("random", "fifo"), "grid": ("grid", "fifo")}
# multi-fidelity and population strategies (schedulers/): random sampling inside, BOHB model-based
STRATEGIES["sh"] = ("random", "sh")
STRATEGIES["hyperband"] = ("random", "hyperband")
STRATEGIES["asha"] = ("random", "asha")
STRATEGIES["bohb"] = ("bohb", "hyperband")
STRATEGIES["mobster"] = ("mobster", "asha")  # MOBSTER: ASHA with a GP over (config, budget)
STRATEGIES["pbt"] = ("random", "pbt")
STRATEGIES["bayes"] = ("bayes", "fifo")
STRATEGIES["evolution"] = ("evolution", "fifo")


def _load(path: str) -> Any:
    module, cls = path.split(":")
    return getattr(importlib.import_module(module), cls)


def strategy_names() -> list[str]:
    return sorted(STRATEGIES)


def make_strategy(
    name: str,
    space: Space,
    direction: str = "minimize",
    seed: int = 0,
    *,
    initial_points: Sequence[Mapping[str, Any]] = (),
    **options: Any,
) -> tuple[Union[Optimizer, Enqueued], Scheduler]:
    """Build the optimizer and scheduler of strategy ``name``; unknown options raise ConfigError.
    ``initial_points``: configurations evaluated first, in order (checked against ``space``)."""
    if name not in STRATEGIES:
        raise ConfigError(f"unknown optimizer {name!r}; allowed: {strategy_names()}")
    opt_name, sched_name = STRATEGIES[name]
    opt_cls, sched_cls = _load(OPTIMIZERS[opt_name]), _load(SCHEDULERS[sched_name])
    unknown = set(options) - set(opt_cls.options) - set(sched_cls.options)
    if unknown:
        allowed = sorted(set(opt_cls.options) | set(sched_cls.options))
        raise ConfigError(f"optimizer {name!r}: unknown option(s) {sorted(unknown)}; allowed: {allowed}")
    opt_opts = {k: v for k, v in options.items() if k in opt_cls.options}
    sched_opts = {k: v for k, v in options.items() if k in sched_cls.options and k not in opt_opts}
    optimizer = opt_cls(space, direction=direction, seed=seed, **opt_opts)
    scheduler = sched_cls(direction=direction, seed=seed, **sched_opts)
    points = check_initial_points(space, initial_points)
    return (Enqueued(optimizer, points) if points else optimizer), scheduler


def check_initial_points(space: Space, points: Any, where: str = "initial_points") -> list[dict[str, Any]]:
    """The user's configurations, each checked against ``space`` (a fixed parameter may be left
    out); a bad one raises ConfigError naming its index, the key and the value."""
    if points is None:
        return []
    if isinstance(points, Mapping) or not isinstance(points, (list, tuple)):
        raise ConfigError(f"{where!r} must be a list of configurations (mappings), got {points!r}")
    out = []
    for i, p in enumerate(points):
        if not isinstance(p, Mapping):
            raise ConfigError(f"{where}[{i}] must be a mapping of parameter names to values, got {p!r}")
        config = dict(p)
        for d in space.active_dims(config):
            if isinstance(d.param, Fixed) and d.name not in config:
                config[d.name] = d.param.value
        try:
            space.validate(config)
        except ConfigError as exc:
            raise ConfigError(f"{where}[{i}] {config!r}: {exc}") from None
        out.append(config)
    return out


class Enqueued:
    """The optimizer, with user-given configurations served first.

    ``ask`` returns the queued configurations in order (told to the wrapped optimizer through
    :meth:`Optimizer.enqueued`, so their results become its observations), then asks the
    optimizer.  Deterministic: the coordinator's replay asks again in logged order and gets the
    same configurations for the same trial ids.  Everything else is the wrapped optimizer's."""

    def __init__(self, optimizer: Optimizer, points: Sequence[dict[str, Any]]) -> None:
        self.inner = optimizer
        self.queue: collections.deque[dict[str, Any]] = collections.deque(dict(p) for p in points)

    def ask(self, trial_id: int) -> Optional[dict[str, Any]]:
        if self.queue:
            params = self.queue.popleft()
            self.inner.enqueued(trial_id, params)
            return dict(params)
        return self.inner.ask(trial_id)

    @property
    def exhausted(self) -> bool:
        return not self.queue and bool(self.inner.exhausted)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (copy / unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


def initial_design_warning(name: str, optimizer: Any, max_trials: int) -> Optional[str]:
    """A warning when a model-based optimizer never leaves its initial (random) design: its
    ``n_initial`` is at least ``max_trials``.  None when the study gets past it."""
    inner = getattr(optimizer, "inner", optimizer)
    n_initial = getattr(inner, "n_initial", None)
    if not isinstance(n_initial, int) or n_initial < max_trials:
        return None
    return (
        f"[rdhpo] warning: optimizer {name!r} starts with {n_initial} initial random points "
        f"(n_initial, default max(10, 2 x dimensions)) but max_trials is {max_trials}: the model is "
        f"never used and the study is a random search; raise max_trials above {n_initial} or set n_initial lower"
    )


def warn_initial_design(name: str, optimizer: Any, max_trials: int) -> None:
    """Log :func:`initial_design_warning` once, where the study's strategy is checked (rank 0)."""
    msg = initial_design_warning(name, optimizer, max_trials)
    if msg is not None:
        logger.warning(msg)
