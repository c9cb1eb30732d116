"""Study configuration: one YAML file (or the keyword arguments of ``rd.optimize``), validated on
rank 0 before any work.  Every error names the key, the bad value and what is allowed.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Optional

from . import validate
from .callbacks import callback_list, callback_name
from .retention import checkpoint_settings
from .errors import ConfigError
from .membership import KINDS as MEMBERSHIPS
from .space import Space

TOP_KEYS = {
    "name",
    "seed",
    "direction",
    "metric",
    "objective",
    "space",
    "optimizer",
    "budget",
    "output",
    "fault_tolerance",
    "faults",
    "progress_interval",
    "checkpoints",
    "device",
    "callbacks",
    "initial_points",
}
FT_DEFAULTS = {
    "gossip_interval": 0.5,
    "fanout": 2,
    "t_fail": 10.0,
    "max_retries": 2,
    "trial_time_limit": None,
    "takeover": True,
    "decision_timeout": 60.0,
    "end_grace": 10.0,
    "startup_timeout": 300.0,
    "membership": "auto",
}
BUDGET_KEYS = ("max_trials", "max_wall_time", "max_failures")
BUILTIN_METRICS = {"val_loss": "minimize", "val_accuracy": "maximize", "val_error": "minimize"}
MAX_YAML_DEPTH = 100  # nested mappings / lists; a real config needs ~10 (PyYAML recurses per level)


@dataclass
class FaultTolerance:
    """Heartbeat and recovery settings (YAML ``fault_tolerance:``; keyword args of rd.optimize)."""

    gossip_interval: float = 0.5  # seconds between heartbeats
    fanout: int = 2  # peers each heartbeat vector goes to
    t_fail: float = 10.0  # silence after which a rank is declared dead
    max_retries: int = 2  # re-runs of a trial whose worker died or hung, then FAILED
    trial_time_limit: Optional[float] = None  # seconds per attempt; then stopped, then killed
    takeover: bool = True  # with ULFM, the lowest live rank replaces a dead rank 0
    decision_timeout: float = 60.0  # a worker waits this long for an answer to a report
    end_grace: float = 10.0  # at the end, how long to wait for ranks to acknowledge Stop
    startup_timeout: float = 300.0  # launch -> coordinator running; else the supervisor ends the job
    membership: str = "auto"  # failure detector: "swim" | "gossip" | "auto" (swim from 64 ranks; rdhpo_hpc.membership)


@dataclass
class StudyConfig:
    space: Space
    objective: Any  # {"builtin": {...}} | {"function": "pkg.mod:fn"} | callable
    name: str = "study"
    seed: int = 0
    direction: str = "minimize"
    metric: str = "value"
    optimizer: str = "random"
    options: dict = field(default_factory=dict)
    max_trials: int = 20
    max_wall_time: Optional[float] = None
    max_failures: Optional[int] = None  # stop after this many FAILED trials; None: when the first 5 all fail
    output: Optional[str] = None
    ft: FaultTolerance = field(default_factory=FaultTolerance)
    faults: list = field(default_factory=list)
    progress_interval: float = 5.0
    checkpoints: Optional[str] = None  # directory for trial checkpoints (default: next to output)
    checkpoint_keep: Any = "all"  # "all" | "best" | N: which finished trials keep checkpoints
    callbacks: list = field(default_factory=list)  # callback(trial, study) on rank 0: paths / callables
    initial_points: list = field(default_factory=list)  # configurations evaluated first
    device: str = "auto"
    source_text: str = ""  # the YAML text, stored in /study

    def describe(self) -> dict:
        """Metadata stored in the results file's /study attributes."""
        return {
            "name": self.name,
            "seed": self.seed,
            "direction": self.direction,
            "metric": self.metric,
            "optimizer": self.optimizer,
            "options": self.options,
            "max_trials": self.max_trials,
            "initial_points": self.initial_points,
            "callbacks": [callback_name(c) for c in self.callbacks],
            "checkpoint_keep": self.checkpoint_keep,
            "max_wall_time": self.max_wall_time,
            "max_failures": self.max_failures,
            "space": self.space.to_dict(),
            "config": self.source_text,
            "fault_tolerance": asdict(self.ft),
            "objective": self.objective
            if not callable(self.objective)
            else getattr(self.objective, "__qualname__", repr(self.objective)),
        }


def load_yaml(path: str) -> tuple[dict, str]:
    import yaml

    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        _check_depth(yaml, path, text)
        data = yaml.safe_load(text)
    except RecursionError:  # backstop: _check_depth keeps well below the interpreter's limit
        raise ConfigError(
            f"config file {path!r} is nested too deeply to read (more than {MAX_YAML_DEPTH} levels of mappings / lists)"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"config file {path!r} is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping of keys, got {type(data).__name__}")
    return data, text


def _check_depth(yaml: Any, path: str, text: str) -> None:
    """Refuse a document nested more than MAX_YAML_DEPTH levels before PyYAML's recursive
    composer turns it into a RecursionError.  The event parser is iterative, so this is safe."""
    depth = 0
    for ev in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                m = ev.start_mark
                raise ConfigError(
                    f"config file {path!r} is nested too deeply: more than {MAX_YAML_DEPTH} "
                    f"levels of mappings / lists at line {m.line + 1}, column {m.column + 1}"
                )
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def from_yaml(path: str, overrides: Optional[Mapping[str, Any]] = None) -> StudyConfig:
    data, text = load_yaml(path)
    data = dict(data)
    for k, v in (overrides or {}).items():
        data[k] = v
    base = os.path.dirname(os.path.abspath(path))
    return from_dict(data, source_text=text, base_dir=base)


def from_dict(data: Mapping[str, Any], source_text: str = "", base_dir: str = ".") -> StudyConfig:
    """Validate a config mapping (the YAML document) into a :class:`StudyConfig`."""
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(TOP_KEYS)}")
    if "space" not in data:
        raise ConfigError("'space' is required: a mapping of parameter names to ranges")
    space = data["space"] if isinstance(data["space"], Space) else Space.from_dict(data["space"])
    objective = _objective(data.get("objective"))
    metric = data.get("metric", "val_loss" if "builtin" in objective else "value")
    if "builtin" in objective:
        if metric not in BUILTIN_METRICS:
            raise ConfigError(
                f"'metric' must be one of {sorted(BUILTIN_METRICS)} for a builtin objective, got {metric!r}"
            )
        objective["builtin"]["metric"] = metric
        from .training import make_builtin_objective  # cheap: checks keys and the dataset path

        make_builtin_objective({"device": data.get("device", "auto"), **objective["builtin"]})
    direction = data.get("direction", BUILTIN_METRICS.get(metric, "minimize"))
    if direction not in ("minimize", "maximize"):
        raise ConfigError(f"'direction' must be 'minimize' or 'maximize', got {direction!r}")
    opt = data.get("optimizer", "random")
    if isinstance(opt, str):
        opt_name, options = opt, {}
    elif isinstance(opt, Mapping) and isinstance(opt.get("name"), str):
        options = {k: v for k, v in opt.items() if k not in ("name", "options")}
        options.update(opt.get("options") or {})
        opt_name = opt["name"]
    else:
        raise ConfigError(f"'optimizer' must be a name or a mapping with 'name' and options, got {opt!r}")
    budget = data.get("budget") or {}
    if not isinstance(budget, Mapping):
        raise ConfigError(f"'budget' must be a mapping with max_trials / max_wall_time / max_failures, got {budget!r}")
    bad = set(budget) - set(BUDGET_KEYS)
    if bad:
        raise ConfigError(f"unknown key(s) {sorted(bad)} in 'budget'; allowed: {list(BUDGET_KEYS)}")
    ft = fault_tolerance(data.get("fault_tolerance") or {})
    seed = data.get("seed", 0)
    validate.integer(seed, "'seed'")
    output = data.get("output")
    if output is not None:
        if not isinstance(output, str) or not output:
            raise ConfigError(f"'output' must be a file path, got {output!r}")
        if output.endswith(("/", os.sep)):
            raise ConfigError(f"'output' must be a results file path, not a directory, got {output!r}")
        output = output if os.path.isabs(output) else os.path.normpath(os.path.join(os.getcwd(), output))
    faults = data.get("faults") or []
    if not isinstance(faults, list):
        raise ConfigError(f"'faults' must be a list, got {faults!r}")
    from .faults import parse_faults

    parse_faults(faults)  # validated here; ranks are checked against the job size at launch
    device = data.get("device", "auto")
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"'device' must be 'auto', 'cpu' or 'cuda', got {device!r}")
    checkpoints, checkpoint_keep = checkpoint_settings(data.get("checkpoints"))  # a directory, or {dir, keep}
    cfg = StudyConfig(
        space=space,
        objective=objective,
        name=str(data.get("name", "study")),
        seed=seed,
        direction=direction,
        metric=metric,
        optimizer=opt_name,
        options=dict(options),
        max_trials=validate.integer(budget.get("max_trials", 20), "'budget.max_trials'", 1, whole_floats=True),
        max_wall_time=validate.number(
            budget.get("max_wall_time"), "'budget.max_wall_time'", 0, lo_open=True, allow_none=True
        ),
        max_failures=max_failures(budget.get("max_failures"), "'budget.max_failures'"),
        output=output,
        ft=ft,
        faults=faults,
        progress_interval=validate.number(data.get("progress_interval", 5.0), "'progress_interval'", 0, lo_open=True),
        checkpoints=checkpoints,
        checkpoint_keep=checkpoint_keep,
        callbacks=callback_list(data.get("callbacks")),
        initial_points=data.get("initial_points") or [],
        device=device,
        source_text=source_text,
    )
    check_strategy(cfg)
    return cfg


def max_failures(v: Any, what: str) -> Optional[int]:
    """The failure limit (YAML ``budget.max_failures``, ``rd.optimize(max_failures=...)``)."""
    return validate.integer(v, what, 1, allow_none=True, whole_floats=True)


def fault_tolerance(d: Mapping[str, Any]) -> FaultTolerance:
    if not isinstance(d, Mapping):
        raise ConfigError(f"'fault_tolerance' must be a mapping, got {d!r}")
    bad = set(d) - set(FT_DEFAULTS)
    if bad:
        raise ConfigError(f"unknown key(s) {sorted(bad)} in 'fault_tolerance'; allowed: {sorted(FT_DEFAULTS)}")
    v = {**FT_DEFAULTS, **d}
    ft = FaultTolerance(
        gossip_interval=validate.number(v["gossip_interval"], "'fault_tolerance.gossip_interval'", 0, lo_open=True),
        fanout=validate.integer(v["fanout"], "'fault_tolerance.fanout'", 1, whole_floats=True),
        t_fail=validate.number(v["t_fail"], "'fault_tolerance.t_fail'", 0, lo_open=True),
        max_retries=validate.integer(v["max_retries"], "'fault_tolerance.max_retries'", 0, whole_floats=True),
        trial_time_limit=validate.number(
            v["trial_time_limit"], "'fault_tolerance.trial_time_limit'", 0, lo_open=True, allow_none=True
        ),
        takeover=validate.flag(v["takeover"], "'fault_tolerance.takeover'"),
        decision_timeout=validate.number(v["decision_timeout"], "'fault_tolerance.decision_timeout'", 0, lo_open=True),
        end_grace=validate.number(v["end_grace"], "'fault_tolerance.end_grace'", 0),
        startup_timeout=validate.number(v["startup_timeout"], "'fault_tolerance.startup_timeout'", 0, lo_open=True),
        membership=_membership(v["membership"]),
    )
    if ft.t_fail <= 2 * ft.gossip_interval:
        raise ConfigError(
            f"'fault_tolerance.t_fail' must exceed twice gossip_interval ({ft.gossip_interval!r}), got {ft.t_fail!r}"
        )
    return ft


def _membership(v: Any) -> str:
    if v not in MEMBERSHIPS:
        raise ConfigError(f"'fault_tolerance.membership' must be one of {', '.join(map(repr, MEMBERSHIPS))}, got {v!r}")
    return str(v)


def _objective(obj: Any) -> Any:
    if callable(obj):
        return obj
    if obj is None:
        raise ConfigError(
            "'objective' is required: {builtin: {model: ..., dataset: ...}} or {function: 'package.module:function'}"
        )
    if not isinstance(obj, Mapping) or len(set(obj) & {"builtin", "function"}) != 1:
        raise ConfigError(f"'objective' must have exactly one of 'builtin' or 'function', got {obj!r}")
    if "builtin" in obj:
        b = obj["builtin"]
        if not isinstance(b, Mapping):
            raise ConfigError(f"'objective.builtin' must be a mapping (model, dataset, epochs), got {b!r}")
        return {"builtin": dict(b)}
    fn = obj["function"]
    if not isinstance(fn, str) or ":" not in fn:
        raise ConfigError(f"'objective.function' must look like 'package.module:function', got {fn!r}")
    return {"function": fn}


def check_strategy(cfg: StudyConfig) -> None:
    """Build the optimizer once so unknown names / options / initial points fail before any work."""
    from .strategy import STRATEGIES, check_initial_points, make_strategy

    cfg.initial_points = check_initial_points(cfg.space, cfg.initial_points)
    make_strategy(cfg.optimizer, cfg.space, cfg.direction, cfg.seed, **cfg.options)
    builtin = cfg.objective.get("builtin") if isinstance(cfg.objective, Mapping) else None
    kind = (builtin or {}).get("budget_kind", "epochs")
    scheduler, mode = STRATEGIES[cfg.optimizer][1], cfg.options.get("mode", "stop")
    if kind != "data_fraction" or scheduler == "fifo":
        return
    if scheduler == "pbt" or mode != "promote":
        raise ConfigError(
            f"'objective.builtin.budget_kind' {kind!r} cannot be used with optimizer "
            f"{cfg.optimizer!r} in mode {mode!r}: it counts the "
            f"budget in reported epochs; use budget_kind 'epochs', 'mode: promote' (sh, "
            f"hyperband, asha, bohb: one trial per data fraction), or a single-fidelity "
            f"optimizer (random, grid, bayes, evolution)"
        )
    top = cfg.options.get("max_budget", 27)
    if validate.is_real(top) and top > 1:
        raise ConfigError(
            f"optimizer {cfg.optimizer!r}: 'max_budget' is a fraction of the training data "
            f"with budget_kind 'data_fraction' and must be <= 1, got {top!r}"
        )


def load_function(mod_name: str, fn_name: str, spec: str, where: str) -> Callable:
    """The function ``fn_name`` of module ``mod_name`` (a dotted name, or a ``.py`` file);
    ConfigError, prefixed with ``where``, names what could not be imported or found.  Used for
    ``objective.function`` and ``callbacks``."""
    try:
        if mod_name.endswith(".py"):
            if not os.path.isfile(mod_name):
                raise ConfigError(f"{where}: file {mod_name!r} does not exist")
            s = importlib.util.spec_from_file_location(os.path.basename(mod_name)[:-3], mod_name)
            assert s is not None and s.loader is not None  # always, for a .py file
            module = importlib.util.module_from_spec(s)
            s.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(mod_name)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's input
        raise ConfigError(f"{where}: cannot import {mod_name!r} from {spec!r}: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise ConfigError(f"{where}: {spec!r} names no function {fn_name!r} in {mod_name!r}")
    return fn


def import_function(spec: str) -> Callable:
    """``package.module:function`` or ``path/to/file.py:function``."""
    mod_name, _, fn_name = spec.rpartition(":")
    fn = load_function(mod_name, fn_name, spec, "objective.function")
    from .context import check_objective

    check_objective(fn, f"objective.function {spec!r}")
    return fn


def make_objective(cfg: StudyConfig) -> Callable:
    """The callable a worker runs: the user's function or a built-in trainer."""
    obj = cfg.objective
    if callable(obj):
        return obj
    if "function" in obj:
        return import_function(obj["function"])
    from .training import make_builtin_objective

    return make_builtin_objective({"device": cfg.device, **obj["builtin"]})
