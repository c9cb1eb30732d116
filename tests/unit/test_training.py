"""Unit tests of rdhpo_hpc.training: datasets, models, device binding, the built-in objective."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # skip where torch is absent; import cost paid at collection

from rdhpo_hpc.context import TrialContext
from rdhpo_hpc.errors import ConfigError, TrialPruned
from rdhpo_hpc.training import build_model, describe_device, load_dataset, make_builtin_objective, pick_device
from rdhpo_hpc.training import datasets as ds_mod

from fakes import FakeCtx


def digits_obj(**kw: Any):
    return make_builtin_objective({"model": "mlp", "dataset": "digits", "epochs": 3, **kw})


# ----------------------------------------------------------------------------- datasets


def test_digits_mlp_learns_and_reports_every_epoch() -> None:
    obj = digits_obj(metric="val_accuracy")
    assert obj.direction == "maximize"
    ctx = FakeCtx(budget=5)
    acc = obj({"lr": 3e-3, "width": 64}, ctx)
    assert acc > 0.85
    assert ctx.steps == [1, 2, 3, 4, 5]
    assert ctx.reports[-1][1] == acc
    assert set(ctx.reports[0][2]) >= {"val_accuracy", "val_loss", "train_loss"}
    ds = load_dataset("digits")
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.input_shape == (64,) and ds.image_shape == (1, 8, 8) and ds.n_classes == 10
    assert len(ds.x_train) + len(ds.x_val) == 1797


def test_mnist1d_shapes_and_global_rng_untouched() -> None:
    ds_mod._CACHE.pop(("mnist1d", 0), None)  # force a fresh generation
    random.seed(123)
    np.random.seed(123)
    py_state, np_state = random.getstate(), np.random.get_state()
    ds = load_dataset("mnist1d")
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    assert ds.x_train.shape == (4000, 40) and ds.x_val.shape == (1000, 40)
    assert ds.y_train.shape == (4000,) and ds.n_classes == 10
    assert ds.input_shape == (40,) and ds.image_shape == (1, 40)
    assert load_dataset("mnist1d") is ds  # cached per process


def test_cnn_1d_on_mnist1d_runs() -> None:
    obj = make_builtin_objective({"model": "cnn", "dataset": "mnist1d", "metric": "val_error"})
    ctx = FakeCtx(budget=2)
    err = obj({"lr": 3e-3, "channels": 16}, ctx)
    assert 0.0 <= err < 0.9 and ctx.steps == [1, 2]
    model = build_model({"model": "cnn", "pool": "max"}, load_dataset("mnist1d"))
    assert any(type(m).__name__ == "Conv1d" for m in model.modules())


def test_cnn_2d_on_digits_and_model_family_from_config() -> None:
    model = build_model({"model": "cnn", "layers": 3}, load_dataset("digits"))
    assert any(type(m).__name__ == "Conv2d" for m in model.modules())
    ctx = FakeCtx(budget=1)
    loss = digits_obj()({"model": "cnn", "channels": 8}, ctx)  # config["model"] overrides spec
    assert math.isfinite(loss) and ctx.steps == [1]


def test_npz_and_h5_user_datasets(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)).astype(np.float64)
    y = (x[:, 0] > 0).astype(np.int32)
    p_split = tmp_path / "split.npz"
    np.savez(p_split, x_train=x[:40], y_train=y[:40], x_val=x[40:], y_val=y[40:])
    ds = load_dataset(str(p_split))
    assert ds.x_train.shape == (40, 6) and ds.x_val.shape == (10, 6) and ds.n_classes == 2
    assert ds.x_train.dtype == np.float32 and ds.y_val.dtype == np.int64
    np.testing.assert_allclose(ds.x_val, x[40:].astype(np.float32))

    p_xy = tmp_path / "xy.npz"
    np.savez(p_xy, x=x, y=y)
    ds = load_dataset(str(p_xy))
    assert (len(ds.x_train), len(ds.x_val)) == (40, 10)

    import h5py

    p_h5 = tmp_path / "d.h5"
    with h5py.File(p_h5, "w") as f:
        f["x"], f["y"] = x.reshape(50, 2, 3), y
    ds = load_dataset(str(p_h5))
    assert ds.image_shape == (2, 3) and ds.input_shape == (6,)
    ctx = FakeCtx(budget=1)
    assert math.isfinite(make_builtin_objective({"dataset": str(p_h5), "model": "cnn"})({}, ctx))


def test_dataset_errors_name_the_problem(tmp_path) -> None:
    missing = str(tmp_path / "nope.npz")
    with pytest.raises(ConfigError, match="nope.npz"):
        load_dataset(missing)
    with pytest.raises(ConfigError, match="nope.npz"):
        make_builtin_objective({"dataset": missing})  # checked when the objective is built
    bad = tmp_path / "bad.npz"
    np.savez(bad, features=np.zeros((4, 2)))
    with pytest.raises(ConfigError, match="x_train.*found \\['features'\\]"):
        load_dataset(str(bad))
    with pytest.raises(ConfigError, match="cifar.*digits"):
        load_dataset("cifar")


# ----------------------------------------------------------------------------- objective


def test_pruned_propagates_from_report() -> None:
    ctx = FakeCtx(budget=5, prune_at=2)
    with pytest.raises(TrialPruned):
        digits_obj()({}, ctx)
    assert ctx.steps == [1, 2]


def test_works_with_real_trial_context() -> None:
    seen: list = []

    def hook(step: int, value: float, metrics: dict) -> bool:
        seen.append(step)
        return step < 2

    ctx = TrialContext(trial_id=1, attempt=0, budget=4, send_report=hook)
    with pytest.raises(TrialPruned):
        digits_obj()({}, ctx)
    assert seen == [1, 2] and ctx.last_step == 2


def test_checkpoint_save_and_resume(tmp_path) -> None:
    obj = digits_obj(metric="val_loss")
    cfg = {"lr": 2e-3, "dropout": 0.1}
    full = obj(cfg, FakeCtx(budget=4))

    d = str(tmp_path / "t7")
    first = FakeCtx(budget=2, checkpoint_dir=d)
    obj(cfg, first)
    assert first.steps == [1, 2] and os.path.isfile(os.path.join(d, "ckpt.pt"))
    resumed = FakeCtx(budget=4, checkpoint_dir=d, checkpoint_from=d)
    value = obj(cfg, resumed)
    assert resumed.steps == [3, 4]
    assert value == pytest.approx(full, rel=1e-5)  # RNG state travels with the checkpoint

    again = FakeCtx(budget=3, checkpoint_from=d)  # budget <= saved epoch: evaluate only
    assert obj(cfg, again) == pytest.approx(value, rel=1e-6)
    assert again.steps == [4]

    child = FakeCtx(budget=5, checkpoint_from=d, checkpoint_dir=str(tmp_path / "child"))
    obj({**cfg, "lr": 1e-4, "optimizer": "sgd"}, child)  # PBT-style: new hyper-parameters
    assert child.steps == [5] and os.path.isfile(str(tmp_path / "child" / "ckpt.pt"))

    with pytest.raises(RuntimeError, match="does not fit"):
        obj({**cfg, "width": 32}, FakeCtx(budget=5, checkpoint_from=d))


def test_lr_decay_follows_the_absolute_epoch_across_a_resume(tmp_path) -> None:
    obj = digits_obj(metric="val_loss")
    cfg = {"lr": 3e-3, "lr_decay": 0.5, "seed": 1}
    d_full, d_half, d_rest = (str(tmp_path / n) for n in ("full", "half", "rest"))
    full = obj(cfg, FakeCtx(budget=4, checkpoint_dir=d_full))
    state = torch.load(os.path.join(d_full, "ckpt.pt"), weights_only=True)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(3e-3 * 0.5**3)  # epoch 4
    obj(cfg, FakeCtx(budget=2, checkpoint_dir=d_half))
    assert obj(cfg, FakeCtx(budget=4, checkpoint_dir=d_rest, checkpoint_from=d_half)) == pytest.approx(full, rel=1e-5)
    assert obj({**cfg, "lr_decay": 1.0}, FakeCtx(budget=4)) != pytest.approx(full, rel=1e-3)
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match="lr_decay"):
            obj({**cfg, "lr_decay": bad}, FakeCtx(budget=1))


def test_divergence_raises_floating_point_error() -> None:
    with pytest.raises(FloatingPointError, match="diverged"):
        digits_obj()({"optimizer": "sgd", "lr": 1e6, "momentum": 0.9}, FakeCtx(budget=2))


def test_reproducible_and_budget_kinds() -> None:
    obj = digits_obj()
    a, b = obj({"lr": 1e-3}, FakeCtx(budget=1)), obj({"lr": 1e-3}, FakeCtx(budget=1))
    assert a == b
    frac = make_builtin_objective({"dataset": "digits", "budget_kind": "data_fraction", "epochs": 2})
    ctx = FakeCtx(budget=0.25)
    assert math.isfinite(frac({}, ctx)) and ctx.steps == [1, 2]
    with pytest.raises(ConfigError, match="budget"):
        frac({}, FakeCtx(budget=1.5))
    ctx = FakeCtx(budget=None)
    obj({"epochs": 2}, ctx)  # no budget: config epochs, then spec epochs
    assert ctx.steps == [1, 2]


def test_config_errors_quote_key_and_value() -> None:
    with pytest.raises(ConfigError, match="metric.*'acc'.*val_loss"):
        make_builtin_objective({"dataset": "digits", "metric": "acc"})
    with pytest.raises(ConfigError, match="unknown key.*'epoch'"):
        make_builtin_objective({"dataset": "digits", "epoch": 3})
    with pytest.raises(ConfigError, match="activation.*'swish'.*relu"):
        digits_obj()({"activation": "swish"}, FakeCtx(budget=1))
    with pytest.raises(ConfigError, match="optimizer.*'rmsprop'"):
        digits_obj()({"optimizer": "rmsprop"}, FakeCtx(budget=1))
    with pytest.raises(ConfigError, match="width.*0"):
        digits_obj()({"width": 0}, FakeCtx(budget=1))


# ----------------------------------------------------------------------------- device


def test_device_binding() -> None:
    assert pick_device(3, "cpu") == "cpu"
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n == 0:
        assert pick_device(1) == "cpu"
        from rdhpo_hpc.training import device as dev_mod

        dev_mod._warned_no_cuda = False
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            assert pick_device(0, "cuda") == "cpu" and pick_device(1, "cuda") == "cpu"
        assert sum("no CUDA device" in str(x.message) for x in w) == 1  # warned once
    else:
        assert pick_device(n + 1) == f"cuda:{1 % n}"
    with pytest.raises(ConfigError, match="device.*'tpu'"):
        pick_device(0, "tpu")
    info = describe_device("cpu")
    assert info["device"] == "cpu" and info["name"] and info["memory_bytes"] > 0
    from rdhpo_hpc.training.device import free_memory

    free_memory()  # no-op without a GPU


def test_package_import_does_not_load_torch() -> None:
    code = "import sys, rdhpo_hpc.training; print('torch' in sys.modules, 'sklearn' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    assert out.stdout.split() == ["False", "False"], out.stderr
