"""A results file as an Optuna journal (``JournalStorage`` file), so that ``optuna-dashboard
OUT.log`` or ``optuna.load_study(storage=JournalStorage(JournalFileBackend(OUT)))`` can open an
rdhpo study.  Needs ``optuna`` (``pip install 'rdhpo_hpc[optuna]'``).

``export(results_path, out_path)`` writes one Optuna trial per rdhpo trial (its counted attempt):
params with their distributions from the search space (a fixed parameter as a one-value
categorical), the value (COMPLETE), the reported learning curve as intermediate values, state
COMPLETE / PRUNED / FAIL, and user attrs ``rdhpo_trial_id``, ``budget``, ``rank``, ``error``.
Trials still running or LOST for good are left out.  Written through Optuna's own API, so the
journal is in the format of the installed Optuna.
"""

from __future__ import annotations

import math
import os
from typing import Any, Optional

from . import require


def distributions_of(space: Any) -> dict[str, Any]:
    """Optuna distributions by parameter name (first dimension of that name wins)."""
    dist = require("optuna.distributions", "optuna")
    from ..space.params import Categorical, Fixed, Float, Int

    out: dict[str, Any] = {}
    for d in space.dims:
        p = d.param
        if d.name in out:
            continue
        if isinstance(p, Float):
            out[d.name] = dist.FloatDistribution(p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, Int):
            out[d.name] = dist.IntDistribution(p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, Categorical):
            out[d.name] = dist.CategoricalDistribution(list(p.choices))
        elif isinstance(p, Fixed):
            out[d.name] = dist.CategoricalDistribution([p.value])
    return out


def export(results_path: str, out_path: str, study_name: Optional[str] = None, overwrite: bool = False) -> int:
    """Write ``results_path``'s trials to the Optuna journal ``out_path``; returns how many.
    An existing ``out_path`` is refused unless ``overwrite``."""
    from ..api import load_results
    from ..space import Space

    optuna = require("optuna", "optuna")
    journal = require("optuna.storages.journal", "optuna")
    if os.path.exists(out_path) and not overwrite:
        raise FileExistsError(f"{out_path!r} exists; pass overwrite=True to replace it")
    res = load_results(results_path)
    space = Space.from_dict(res.study.get("space") or {})
    dists = distributions_of(space)
    if os.path.exists(out_path):
        os.remove(out_path)
    storage = optuna.storages.JournalStorage(journal.JournalFileBackend(out_path))
    name = study_name or str(res.study.get("name") or os.path.splitext(os.path.basename(results_path))[0])
    study = optuna.create_study(study_name=name, storage=storage, direction=res.direction)
    study.set_user_attr("rdhpo_results", os.path.abspath(results_path))
    curves: dict[tuple[int, int], dict[int, float]] = {}
    for r in res.reports:
        if r.get("decision") != "fenced" and r.get("value") is not None and math.isfinite(r["value"]):
            curves.setdefault((r["trial_id"], r["attempt"]), {})[int(r["step"])] = float(r["value"])
    states = {"COMPLETE": "COMPLETE", "PRUNED": "PRUNED", "FAILED": "FAIL"}
    n = 0
    for t in res.trials:
        if t.state not in states:
            continue
        value = t.value if t.state == "COMPLETE" and t.value is not None and math.isfinite(t.value) else None
        state = optuna.trial.TrialState[states[t.state] if t.state != "COMPLETE" or value is not None else "FAIL"]
        attrs = {"rdhpo_trial_id": t.trial_id, "budget": t.budget, "rank": t.rank, "error": t.error}
        if t.state == "PRUNED" and t.value is not None:
            attrs["last_value"] = t.value
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=value,
                params={k: v for k, v in t.params.items() if k in dists},
                distributions={k: dists[k] for k in t.params if k in dists},
                intermediate_values=curves.get((t.trial_id, t.attempt), {}),
                user_attrs=attrs,
            )
        )
        n += 1
    return n
