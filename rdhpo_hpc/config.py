"""Study configuration: one YAML file (or the keyword arguments of ``rd.optimize``), validated on
rank 0 before any work.  Every error names the key, the bad value and what is allowed.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Optional

from .errors import ConfigError
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
}
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
    output: Optional[str] = None
    ft: FaultTolerance = field(default_factory=FaultTolerance)
    faults: list = field(default_factory=list)
    progress_interval: float = 5.0
    checkpoints: Optional[str] = None  # directory for trial checkpoints (default: next to output)
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
            "max_wall_time": self.max_wall_time,
            "space": self.space.to_dict(),
            "config": self.source_text,
            "fault_tolerance": asdict(self.ft),
            "objective": self.objective
            if not callable(self.objective)
            else getattr(self.objective, "__qualname__", repr(self.objective)),
        }


def _num(key: str, v: Any, low: float, integer: bool = False, allow_none: bool = False, strict: bool = False) -> Any:
    if v is None and allow_none:
        return None
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    if ok and integer:
        ok = float(v).is_integer()
    if not ok or (v <= low if strict else v < low):
        kind = "an integer" if integer else "a number"
        cmp = ">" if strict else ">="
        raise ConfigError(f"'{key}' must be {kind} {cmp} {low}{' or null' if allow_none else ''}, got {v!r}")
    return int(v) if integer else float(v)


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
        raise ConfigError(f"'budget' must be a mapping with max_trials / max_wall_time, got {budget!r}")
    bad = set(budget) - {"max_trials", "max_wall_time"}
    if bad:
        raise ConfigError(f"unknown key(s) {sorted(bad)} in 'budget'; allowed: ['max_trials', 'max_wall_time']")
    ft = fault_tolerance(data.get("fault_tolerance") or {})
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"'seed' must be an integer, got {seed!r}")
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
    cfg = StudyConfig(
        space=space,
        objective=objective,
        name=str(data.get("name", "study")),
        seed=seed,
        direction=direction,
        metric=metric,
        optimizer=opt_name,
        options=dict(options),
        max_trials=_num("budget.max_trials", budget.get("max_trials", 20), 1, integer=True),
        max_wall_time=_num("budget.max_wall_time", budget.get("max_wall_time"), 0, allow_none=True, strict=True),
        output=output,
        ft=ft,
        faults=faults,
        progress_interval=_num("progress_interval", data.get("progress_interval", 5.0), 0, strict=True),
        checkpoints=data.get("checkpoints"),
        device=device,
        source_text=source_text,
    )
    check_strategy(cfg)
    return cfg


def fault_tolerance(d: Mapping[str, Any]) -> FaultTolerance:
    if not isinstance(d, Mapping):
        raise ConfigError(f"'fault_tolerance' must be a mapping, got {d!r}")
    bad = set(d) - set(FT_DEFAULTS)
    if bad:
        raise ConfigError(f"unknown key(s) {sorted(bad)} in 'fault_tolerance'; allowed: {sorted(FT_DEFAULTS)}")
    v = {**FT_DEFAULTS, **d}
    ft = FaultTolerance(
        gossip_interval=_num("fault_tolerance.gossip_interval", v["gossip_interval"], 0, strict=True),
        fanout=_num("fault_tolerance.fanout", v["fanout"], 1, integer=True),
        t_fail=_num("fault_tolerance.t_fail", v["t_fail"], 0, strict=True),
        max_retries=_num("fault_tolerance.max_retries", v["max_retries"], 0, integer=True),
        trial_time_limit=_num(
            "fault_tolerance.trial_time_limit", v["trial_time_limit"], 0, allow_none=True, strict=True
        ),
        takeover=_bool("fault_tolerance.takeover", v["takeover"]),
        decision_timeout=_num("fault_tolerance.decision_timeout", v["decision_timeout"], 0, strict=True),
        end_grace=_num("fault_tolerance.end_grace", v["end_grace"], 0),
        startup_timeout=_num("fault_tolerance.startup_timeout", v["startup_timeout"], 0, strict=True),
    )
    if ft.t_fail <= 2 * ft.gossip_interval:
        raise ConfigError(
            f"'fault_tolerance.t_fail' must exceed twice gossip_interval ({ft.gossip_interval!r}), got {ft.t_fail!r}"
        )
    return ft


def _bool(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"'{key}' must be true or false, got {v!r}")
    return v


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
    """Build the optimizer once so unknown names / options fail before any work."""
    from .strategy import STRATEGIES, make_strategy

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
    if isinstance(top, (int, float)) and not isinstance(top, bool) and top > 1:
        raise ConfigError(
            f"optimizer {cfg.optimizer!r}: 'max_budget' is a fraction of the training data "
            f"with budget_kind 'data_fraction' and must be <= 1, got {top!r}"
        )


def import_function(spec: str) -> Callable:
    """``package.module:function`` or ``path/to/file.py:function``."""
    mod_name, _, fn_name = spec.rpartition(":")
    try:
        if mod_name.endswith(".py"):
            if not os.path.isfile(mod_name):
                raise ConfigError(f"objective.function: file {mod_name!r} does not exist")
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
        raise ConfigError(
            f"objective.function: cannot import {mod_name!r} from {spec!r}: {type(exc).__name__}: {exc}"
        ) from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise ConfigError(f"objective.function: {spec!r} names no function {fn_name!r} in {mod_name!r}")
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
