"""YAML ``callbacks:`` and ``initial_points:`` under a real ``mpirun`` (docs/callbacks.md)."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pytest
import yaml

from mpi_helpers import describe, run_mpi

from rdhpo_hpc.api import load_results

HERE = Path(__file__).resolve().parent


@pytest.mark.system
@pytest.mark.timeout(150)
def test_yaml_callbacks_and_initial_points_under_mpirun(mpirun, tmp_path):
    out = tmp_path / "cb.h5"
    points = [{"x": 0.3}, {"x": 0.95}]
    cfg = {
        "name": "cb",
        "seed": 4,
        "objective": {"function": f"{HERE / 'objectives.py'}:sleepy"},
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "optimizer": "evolution",
        "budget": {"max_trials": 10},
        "output": str(out),
        "initial_points": points,
        "callbacks": [
            f"{HERE / 'callbacks_for_tests.py'}:log_trial",
            f"{HERE / 'callbacks_for_tests.py'}:broken",
            "rdhpo_hpc.integrations.tensorboard.callback",
        ],
        "fault_tolerance": {"gossip_interval": 0.2, "t_fail": 5, "end_grace": 3},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {"RDHPO_TEST_STEP_S": "0.02", "RDHPO_TEST_STEPS": "2"}
    proc = run_mpi(["-m", "rdhpo_hpc", "run", str(path)], n=3, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, describe(proc)
    res = load_results(str(out))
    assert [t.params for t in res.trials[:2]] == points  # evaluated first, in order
    assert len(res.completed) == 10
    rows = [json.loads(line) for line in (tmp_path / "cb_callback.jsonl").read_text().splitlines()]
    assert sorted(r["trial_id"] for r in rows) == list(range(10))  # once per trial
    assert [r["so_far"] for r in rows] == list(range(1, 11))
    assert {r["pid"] for r in rows} == {int(_coordinator_pid(res))}  # all on rank 0
    by_id = {r["trial_id"]: r for r in rows}
    assert all(by_id[t.trial_id]["params"] == t.params and by_id[t.trial_id]["value"] == t.value for t in res.trials)
    assert proc.stderr.count("KeyError: 'tracker unreachable'") == 1, describe(proc)  # reported once
    assert glob.glob(str(tmp_path / "cb_tensorboard" / "events.out.tfevents.*")), describe(proc)


def _coordinator_pid(res) -> str:
    start = [e for e in res.events if e["kind"] == "coordinator-start"][0]
    return dict(kv.split("=", 1) for kv in start["detail"].split() if "=" in kv)["pid"]
