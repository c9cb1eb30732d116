"""Hierarchical search space: leaf parameters plus categorical choices that own sub-spaces.

A trial's config is a flat dict of the *active* parameters only (inactive ones are absent).
Names must be unique along any one path from the root; different branches may reuse a name
(``mlp`` and ``cnn`` may both have ``dropout``).  Every dimension also has a unique ``key``
(``model=cnn/dropout``) that optimizers use for encoding.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from ..errors import ConfigError
from .params import Categorical, Fixed, Float, Int, Param


class Choice(Categorical):
    """A categorical parameter whose values may own sub-spaces, active only for that value.

    ``Choice({"mlp": Space(width=Int(16, 256)), "svm": Space(C=Float(1e-2, 1e2, log=True)), "linear": None})``
    """

    def __init__(
        self,
        branches: Union[Mapping[Any, Any], Sequence[Any]],
        conditional: Optional[Mapping[Any, Any]] = None,
        name: str = "",
    ) -> None:
        if isinstance(branches, Mapping):
            choices, conditional = list(branches.keys()), dict(branches)
        else:
            choices, conditional = list(branches), dict(conditional or {})
        super().__init__(choices=choices, name=name)
        where = name or "Choice"
        self.branches: dict[Any, Space] = {}
        for value, sub in conditional.items():
            if not any(value == c for c in self.choices):
                raise ConfigError(
                    f"{where}: sub-space given for unknown choice value {value!r}; choices are {self.choices!r}"
                )
            if sub is None:
                continue
            if isinstance(sub, Mapping):
                sub = Space(sub)
            if not isinstance(sub, Space):
                raise ConfigError(f"{where}: sub-space of {value!r} must be a Space or mapping, got {sub!r}")
            self.branches[value] = sub

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Choice) and self.to_dict() == other.to_dict()

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if self.branches:
            d["conditional"] = {v: s.to_dict() for v, s in self.branches.items()}
        return d


@dataclass(frozen=True)
class Dim:
    """One dimension of the flattened space; active when every (choice key, value) in ``when`` holds."""

    key: str
    name: str
    param: Param
    when: tuple[tuple[str, Any], ...] = ()


class Space:
    """A (possibly conditional) search space.  ``Space(lr=Float(...), model=Choice({...}))``."""

    def __init__(self, params: Optional[Mapping[str, Any]] = None, /, **kwargs: Any) -> None:
        items = dict(params or {})
        items.update(kwargs)
        self.params: dict[str, Param] = {}
        for name, p in items.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"search space: parameter names must be non-empty strings, got {name!r}")
            self.params[name] = p if isinstance(p, Param) else param_from_spec(name, p)
            if not self.params[name].name:
                self.params[name].name = name
        self.dims: list[Dim] = []
        self._flatten(self, prefix="", when=(), seen=frozenset())

    # -- construction --------------------------------------------------------------------------
    def _flatten(self, space: "Space", prefix: str, when: tuple[tuple[str, Any], ...], seen: frozenset[str]) -> None:
        for name, p in space.params.items():
            path = f"{prefix}{name}"
            if name in seen:
                raise ConfigError(f"search space: parameter {name!r} is defined twice along the path '{path}'")
            self.dims.append(Dim(key=path, name=name, param=p, when=when))
        names = seen | set(space.params)
        for name, p in space.params.items():
            if isinstance(p, Choice):
                for value, sub in p.branches.items():
                    self._flatten(sub, f"{prefix}{name}={value}/", when + ((f"{prefix}{name}", value),), names)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], where: str = "space") -> "Space":
        if not isinstance(spec, Mapping) or not spec:
            raise ConfigError(f"'{where}' must be a non-empty mapping of parameter names to ranges, got {spec!r}")
        return cls({name: param_from_spec(f"{where}.{name}", s) for name, s in spec.items()})

    def to_dict(self) -> dict[str, Any]:
        return {name: p.to_dict() for name, p in self.params.items()}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Space({self.to_dict()!r})"

    # -- queries -------------------------------------------------------------------------------
    @property
    def is_conditional(self) -> bool:
        return any(d.when for d in self.dims)

    def active_dims(self, config: Mapping[str, Any]) -> list[Dim]:
        """The dimensions active for ``config`` (decided by the choice values in it)."""
        chosen: dict[str, Any] = {}
        out = []
        for d in self.dims:  # parents come before their branches in self.dims
            if all(k in chosen and chosen[k] == v for k, v in d.when):
                out.append(d)
                if d.name in config:
                    chosen[d.key] = config[d.name]
        return out

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw one config; only parameters of the chosen branches are present."""
        return self._walk(lambda d: d.param.sample(rng))

    def decode(self, u: Union[Sequence[float], np.ndarray]) -> dict[str, Any]:
        """Map a point of the unit cube (one coordinate per dim, inactive ones ignored) to a config."""
        index = {d.key: i for i, d in enumerate(self.dims)}
        return self._walk(lambda d: d.param.decode(u[index[d.key]]))

    def encode(self, config: Mapping[str, Any], inactive: float = 0.5) -> np.ndarray:
        """One coordinate per dim in [0, 1]; inactive dims get ``inactive``."""
        active = {d.key for d in self.active_dims(config)}
        return np.array(
            [d.param.encode(config[d.name]) if d.key in active else inactive for d in self.dims], dtype=float
        )

    def _walk(self, value_of: Callable[[Dim], Any]) -> dict[str, Any]:
        config: dict[str, Any] = {}
        chosen: dict[str, Any] = {}
        for d in self.dims:
            if not d.when or all(k in chosen and chosen[k] == v for k, v in d.when):
                config[d.name] = chosen[d.key] = value_of(d)
        return config

    def validate(self, config: Mapping[str, Any]) -> None:
        """Raise ConfigError unless ``config`` holds exactly the active params with valid values."""
        active = self.active_dims(config)
        for d in active:
            if d.name not in config:
                raise ConfigError(f"config is missing parameter {d.key!r}")
            if not d.param.contains(config[d.name]):
                raise ConfigError(f"parameter {d.key!r}: value {config[d.name]!r} is outside {d.param.to_dict()}")
        extra = set(config) - {d.name for d in active}
        if extra:
            raise ConfigError(f"config has parameters that are not active in the space: {sorted(extra)}")

    def grid(self, degree: Union[None, int, Mapping[str, int]] = None) -> Iterator[dict[str, Any]]:
        """Every grid point; ``degree`` is points per numeric dim (or a dict name/key -> points).

        For conditional spaces the grid is the union over branches: inside each branch the same
        degree applies.  A numeric param with ``step`` and no degree uses every step.
        """
        yield from self._grid(self, degree, "")

    def _grid(self, space: "Space", degree: Any, prefix: str) -> Iterator[dict[str, Any]]:
        axes = []
        for name, p in space.params.items():
            deg = degree
            if isinstance(degree, Mapping):
                deg = degree.get(f"{prefix}{name}", degree.get(name))
            values = p.grid(deg)
            if isinstance(p, Choice):
                opts = []
                for v in values:
                    sub = p.branches.get(v)
                    if sub is None:
                        opts.append({name: v})
                    else:
                        opts.extend({name: v, **s} for s in self._grid(sub, degree, f"{prefix}{name}={v}/"))
                axes.append(opts)
            else:
                axes.append([{name: v} for v in values])
        for combo in itertools.product(*axes):
            out: dict[str, Any] = {}
            for part in combo:
                out.update(part)
            yield out

    def grid_size(self, degree: Union[None, int, Mapping[str, int]] = None) -> int:
        return sum(1 for _ in self.grid(degree))


_TYPES: dict[str, Callable[..., Param]] = {
    "float": Float,
    "int": Int,
    "categorical": Categorical,
    "fixed": Fixed,
    "choice": Choice,
}


def param_from_spec(where: str, spec: Any) -> Param:
    """Build a parameter from its YAML form.

    ``{type: float, low: 1e-4, high: 0.1, log: true, step: ...}``, ``{type: int, ...}``,
    ``{type: categorical, choices: [...], conditional: {value: {sub-space}}}``, ``{type: fixed,
    value: 3}``; a plain list is a categorical, a plain scalar a fixed value.
    """
    if isinstance(spec, Param):
        return spec
    if isinstance(spec, Space):
        raise ConfigError(f"{where}: a sub-space must hang under a categorical choice, got a Space")
    if isinstance(spec, list):
        return Categorical(spec, name=where)
    if not isinstance(spec, Mapping):
        return Fixed(spec, name=where)
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in _TYPES:
        raise ConfigError(f"{where}: 'type' must be one of {sorted(_TYPES)}, got {kind!r}")
    if "conditional" in spec and kind not in ("categorical", "choice"):
        raise ConfigError(
            f"{where}: 'conditional' sub-spaces need a categorical parameter, but this one has type {kind!r}"
        )
    allowed = {
        "float": {"low", "high", "log", "step"},
        "int": {"low", "high", "log", "step"},
        "categorical": {"choices", "conditional"},
        "choice": {"choices", "conditional"},
        "fixed": {"value"},
    }[kind]
    unknown = set(spec) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)} for type {kind!r}; allowed: {sorted(allowed)}")
    try:
        if kind in ("categorical", "choice"):
            if "choices" not in spec:
                raise ConfigError(f"{where}: 'choices' is required for type {kind!r}")
            cond = spec.get("conditional") or {}
            if not isinstance(cond, Mapping):
                raise ConfigError(f"{where}.conditional must map choice values to sub-spaces, got {cond!r}")
            if not cond:
                return Categorical(spec["choices"], name=where)
            subs = {}
            for value, sub in cond.items():
                subs[value] = None if sub is None else Space.from_dict(sub, f"{where}={value}") if sub else None
            return Choice(spec["choices"], conditional=subs, name=where)
        if kind in ("float", "int"):
            for k in ("low", "high"):
                if k not in spec:
                    raise ConfigError(f"{where}: '{k}' is required for type {kind!r}")
        return _TYPES[kind](**spec, name=where)
    except TypeError as exc:  # wrong argument shapes from YAML
        raise ConfigError(f"{where}: invalid parameter spec {spec!r}: {exc}") from None
