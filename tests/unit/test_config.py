"""Study config validation: every bad input is a ConfigError that quotes the key and the value."""

from __future__ import annotations

import textwrap

import pytest

from rdhpo_hpc import config as cfgmod
from rdhpo_hpc.config import from_dict, from_yaml
from rdhpo_hpc.errors import ConfigError
from rdhpo_hpc.launch import validate_for_run

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def base(**over):
    d = {"objective": {"function": "math:sqrt"}, "space": dict(SPACE)}
    d.update(over)
    return d


def raises_quoting(data, *words):
    with pytest.raises(ConfigError) as err:
        from_dict(data)
    msg = str(err.value)
    for w in words:
        assert w in msg, f"{w!r} not in message {msg!r}"
    return msg


def test_minimal_valid_config_has_documented_defaults():
    c = from_dict(base())
    assert c.optimizer == "random" and c.direction == "minimize" and c.max_trials == 20
    assert c.ft.t_fail == 10.0 and c.ft.max_retries == 2 and c.ft.takeover is True


def test_builtin_metric_sets_direction():
    c = from_dict(base(objective={"builtin": {"model": "mlp", "dataset": "digits"}}, metric="val_accuracy"))
    assert c.direction == "maximize"


def test_quickstart_config_is_valid():
    c = from_yaml("configs/quickstart.yaml")
    assert c.max_trials == 24 and c.optimizer == "random" and len(c.space.dims) == 7


@pytest.mark.parametrize(
    "data, words",
    [
        (base(bogus=1), ["bogus"]),
        (base(optimizer="simulated_annealing"), ["simulated_annealing", "random", "grid"]),
        (base(optimizer={"name": "random", "temperature": 3}), ["temperature", "random"]),
        (base(optimizer={"name": "grid", "degree": 0}), ["degree", "0"]),
        (base(optimizer={"name": "grid", "degree": {"x": "many"}}), ["degree", "many"]),
        (base(optimizer=42), ["optimizer", "42"]),
        (base(space={}), ["space", "{}"]),
        ({"objective": {"function": "math:sqrt"}}, ["space"]),
        (base(budget={"max_trials": 0}), ["budget.max_trials", "0"]),
        (base(budget={"max_trials": -3}), ["budget.max_trials", "-3"]),
        (base(budget={"max_trials": 2.5}), ["budget.max_trials", "2.5"]),
        (base(budget={"max_trials": "ten"}), ["budget.max_trials", "ten"]),
        (base(budget={"max_trials": True}), ["budget.max_trials", "True"]),
        (base(budget={"max_trails": 5}), ["max_trails"]),
        (base(budget={"max_wall_time": 0}), ["budget.max_wall_time", "0"]),
        (base(direction="up"), ["direction", "up"]),
        (base(fault_tolerance={"gossip": 1}), ["fault_tolerance", "gossip"]),
        (base(fault_tolerance={"fanout": 0}), ["fault_tolerance.fanout", "0"]),
        (base(fault_tolerance={"t_fail": -1}), ["fault_tolerance.t_fail", "-1"]),
        (base(fault_tolerance={"t_fail": 0.5, "gossip_interval": 0.5}), ["t_fail", "0.5"]),
        (base(fault_tolerance={"max_retries": "two"}), ["fault_tolerance.max_retries", "two"]),
        (base(fault_tolerance={"trial_time_limit": 0}), ["fault_tolerance.trial_time_limit", "0"]),
        (base(fault_tolerance={"takeover": "no"}), ["fault_tolerance.takeover", "no"]),
        (base(fault_tolerance=[1, 2]), ["fault_tolerance", "[1, 2]"]),
        (base(objective={"builtin": {"dataset": "digits"}, "function": "m:f"}), ["builtin", "function"]),
        (base(objective={"function": "no_colon_here"}), ["objective.function", "no_colon_here"]),
        (base(objective=None), ["objective"]),
        (base(objective={"builtin": {"model": "mlp"}}), ["dataset"]),
        (base(objective={"builtin": {"model": "mlp", "dataset": "/no/such/data.npz"}}), ["/no/such/data.npz"]),
        (base(objective={"builtin": {"model": "transformer", "dataset": "digits"}}), ["transformer"]),
        (base(objective={"builtin": {"dataset": "digits"}}, metric="f1"), ["metric", "f1"]),
        (base(seed="abc"), ["seed", "abc"]),
        (base(device="tpu"), ["device", "tpu"]),
        (base(progress_interval=0), ["progress_interval", "0"]),
        (base(space={"x": {"type": "float", "low": 3, "high": 1}}), ["space.x", "3", "1"]),
    ],
)
def test_bad_config_is_rejected_with_key_and_value(data, words):
    raises_quoting(data, *words)


def test_function_objective_that_does_not_import_is_rejected_before_work():
    c = from_dict(base(objective={"function": "nosuchpkg.mod:fn"}))
    with pytest.raises(ConfigError) as err:
        validate_for_run(c)
    assert "nosuchpkg.mod" in str(err.value)
    c = from_dict(base(objective={"function": "math:no_such_fn"}))
    with pytest.raises(ConfigError, match="no_such_fn"):
        validate_for_run(c)


def write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def test_malformed_yaml_names_file_and_line(tmp_path):
    p = write(
        tmp_path,
        """\
        name: broken
        space:
          x: {type: float, low: 0, high: 1
        objective: {function: "math:sqrt"}
        """,
    )
    with pytest.raises(ConfigError) as err:
        from_yaml(p)
    msg = str(err.value)
    assert "c.yaml" in msg and "YAML" in msg and "line" in msg


def test_yaml_that_is_not_a_mapping(tmp_path):
    p = write(tmp_path, "- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        from_yaml(p)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        from_yaml(str(tmp_path / "nope.yaml"))


def test_yaml_conditional_space_and_grid_options(tmp_path):
    p = write(
        tmp_path,
        """\
        objective: {function: "math:sqrt"}
        optimizer: {name: grid, degree: {lr: 3}, shuffle: true}
        space:
          lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
          model:
            type: categorical
            choices: [mlp, linear]
            conditional:
              mlp: {width: {type: int, low: 8, high: 10}}
        budget: {max_trials: 7}
        """,
    )
    c = from_yaml(p)
    assert c.optimizer == "grid" and c.options == {"degree": {"lr": 3}, "shuffle": True}
    assert c.max_trials == 7
    assert c.space.grid_size({"lr": 3}) == 3 * (3 + 1)
    assert "conditional" in c.source_text  # the YAML text is kept for /study


def test_yaml_unknown_choice_value_in_conditional(tmp_path):
    p = write(
        tmp_path,
        """\
        objective: {function: "math:sqrt"}
        space:
          model:
            type: categorical
            choices: [mlp, linear]
            conditional:
              cnn: {width: {type: int, low: 8, high: 10}}
        """,
    )
    with pytest.raises(ConfigError) as err:
        from_yaml(p)
    assert "space.model" in str(err.value) and "'cnn'" in str(err.value)


def test_unknown_optimizer_is_rejected_from_yaml(tmp_path):
    p = write(
        tmp_path,
        """\
        objective: {function: "math:sqrt"}
        optimizer: hyperopt9000
        space: {x: {type: float, low: 0, high: 1}}
        """,
    )
    with pytest.raises(ConfigError, match="hyperopt9000"):
        from_yaml(p)


def test_rd_optimize_rejects_bad_arguments_before_running():
    import rdhpo_hpc as rd

    calls = []
    space = rd.Space(x=rd.Float(0, 1))
    with pytest.raises(ConfigError, match="max_trials"):
        rd.optimize(lambda c, ctx: calls.append(1), space, max_trials=0)
    with pytest.raises(ConfigError, match="sideways"):
        rd.optimize(lambda c, ctx: calls.append(1), space, direction="sideways")
    with pytest.raises(ConfigError, match="nope"):
        rd.optimize(lambda c, ctx: calls.append(1), space, optimizer="nope")
    with pytest.raises(ConfigError, match="colour"):
        rd.optimize(lambda c, ctx: calls.append(1), space, colour="red")
    assert calls == []


def test_ft_defaults_match_dataclass():
    ft = cfgmod.fault_tolerance({})
    for k, v in cfgmod.FT_DEFAULTS.items():
        assert getattr(ft, k) == v


@pytest.mark.parametrize("optimizer", ["asha", "hyperband", "sh", "bohb", "pbt"])
def test_data_fraction_budget_needs_promote_mode_with_a_rung_scheduler(optimizer):
    d = {
        "space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}},
        "objective": {"builtin": {"model": "mlp", "dataset": "digits", "budget_kind": "data_fraction"}},
        "optimizer": optimizer,
    }
    with pytest.raises(ConfigError, match=f"'data_fraction' cannot be used with optimizer '{optimizer}'"):
        from_dict(d)
    if optimizer != "pbt":
        d["optimizer"] = {"name": optimizer, "mode": "promote", "min_budget": 1 / 9, "max_budget": 1}
        assert from_dict(d).options["mode"] == "promote"
        d["optimizer"]["max_budget"] = 27
        with pytest.raises(ConfigError, match="'max_budget' is a fraction .* got 27"):
            from_dict(d)
    d["optimizer"] = "random"
    assert from_dict(d).optimizer == "random"


# -- bad input that used to end in a traceback or in a study of FAILED trials ---------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("shape", ["flow_mapping", "flow_list", "block"])
def test_yaml_nested_thousands_of_levels_is_a_config_error(tmp_path, shape):
    d = 5000
    if shape == "flow_mapping":
        text = "x: " + "{a: " * d + "1" + "}" * d + "\n"
    elif shape == "flow_list":
        text = "x: " + "[" * d + "1" + "]" * d + "\n"
    else:
        text = "".join("  " * i + f"k{i}:\n" for i in range(d)) + "  " * d + "1\n"
    p = tmp_path / "deep.yaml"
    p.write_text("objective: {function: 'math:sqrt'}\nspace:\n  y: {type: float, low: 0, high: 1}\n" + text)
    with pytest.raises(ConfigError) as err:
        from_yaml(str(p))
    msg = str(err.value)
    assert "deep.yaml" in msg and "nested too deeply" in msg and str(cfgmod.MAX_YAML_DEPTH) in msg, msg
    assert "line" in msg


def test_yaml_nesting_up_to_the_limit_is_read(tmp_path):
    def nested(levels):  # the top-level mapping is level 1
        p = tmp_path / f"nested{levels}.yaml"
        p.write_text("a: " + "{a: " * (levels - 1) + "1" + "}" * (levels - 1) + "\n")
        return str(p)

    data, _ = cfgmod.load_yaml(nested(cfgmod.MAX_YAML_DEPTH))
    depth, node = 0, data
    while isinstance(node, dict):
        node, depth = node["a"], depth + 1
    assert depth == cfgmod.MAX_YAML_DEPTH and node == 1
    with pytest.raises(ConfigError, match="nested too deeply"):
        cfgmod.load_yaml(nested(cfgmod.MAX_YAML_DEPTH + 1))


def test_output_with_a_trailing_separator_is_rejected():
    raises_quoting(base(output="results/"), "output", "results/")


def _builtin_cfg(dataset, **over):
    return from_dict(
        base(
            objective={"builtin": {"model": "mlp", "dataset": str(dataset), "epochs": 1}},
            space={"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
            **over,
        )
    )


def test_unreadable_dataset_file_is_rejected_before_the_study(tmp_path):
    import os

    junk = tmp_path / "junk.npz"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(ConfigError) as err:
        validate_for_run(_builtin_cfg(junk))
    msg = str(err.value)
    assert str(junk) in msg and "not a .npz archive" in msg and "x_train, y_train, x_val, y_val" in msg, msg
    h5 = tmp_path / "junk.h5"
    h5.write_bytes(b"not hdf5 " * 100)
    with pytest.raises(ConfigError, match="not an HDF5 file.*x_train, y_train, x_val, y_val"):
        validate_for_run(_builtin_cfg(h5))


def test_dataset_without_the_expected_arrays_is_rejected_before_the_study(tmp_path):
    import numpy as np

    p = tmp_path / "wrong.npz"
    np.savez(p, features=np.zeros((10, 3)), labels=np.zeros(10, dtype=int))
    with pytest.raises(ConfigError) as err:
        validate_for_run(_builtin_cfg(p))
    msg = str(err.value)
    for w in (str(p), "x_train, y_train, x_val, y_val", "x, y", "['features', 'labels']"):
        assert w in msg, (w, msg)


def test_valid_dataset_file_passes_validate_for_run(tmp_path):
    import numpy as np

    p = tmp_path / "good.npz"
    rng = np.random.default_rng(0)
    np.savez(p, x=rng.normal(size=(20, 4)), y=rng.integers(0, 2, 20))
    validate_for_run(_builtin_cfg(p))


@pytest.mark.parametrize("kind", ["text", "foreign_h5", "directory"])
def test_validate_for_run_refuses_an_output_that_is_not_a_results_file(tmp_path, kind):
    out = tmp_path / "out.h5"
    if kind == "text":
        out.write_text("my notes\n")
    elif kind == "foreign_h5":
        import h5py

        with h5py.File(out, "w") as f:
            f["data"] = [1, 2, 3]
            f.create_group("study")  # even a /study group without rdhpo's schema_version
    else:
        out.mkdir()
    before = out.read_bytes() if out.is_file() else None
    with pytest.raises(ConfigError) as err:
        validate_for_run(from_dict(base(output=str(out))))
    msg = str(err.value)
    assert str(out) in msg, msg
    assert ("is a directory" if kind == "directory" else "is not an rdhpo results file") in msg, msg
    assert (out.read_bytes() if out.is_file() else None) == before
