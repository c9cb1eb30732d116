"""The built-in objective: train a built-in model on a dataset, report after every epoch.

``make_builtin_objective(spec)`` is called by the CLI / api on every rank (cheap: no torch import,
no data loading); rank 0 may call ``.check_data()`` to fail early on an unreadable dataset.  The
worker calls the returned object as ``objective(config, ctx) -> float`` once per attempt.

spec keys (all but ``dataset`` optional)::

    model        mlp | cnn (torch) | svm | random_forest | gradient_boosting | logistic_regression
                 (scikit-learn, see families.py)   default mlp (config["model"] overrides it)
    dataset      digits | mnist1d | path.npz | path.h5 | path.hdf5
    metric       val_loss | val_accuracy | val_error     default val_loss
    epochs       int >= 1                        default 20 (used when ctx.budget is None)
    budget_kind  epochs | data_fraction          default epochs
    device       auto | cpu | cuda | cuda:N      default auto (= ctx.device)
    amp          none | bf16 | fp16              default none (CUDA only; no-op on CPU)
    seed         int                             default 0 (mixed with config and trial id)
    num_threads  int >= 0                        default 1 (torch threads per process; 0 = torch default)
    params       dict of default hyper-parameters (the trial config overrides them)

config keys read: model, lr, lr_decay, batch_size, optimizer (adam|sgd|adamw), weight_decay,
momentum, width, depth, dropout, activation, channels, kernel, layers, pool (stride|max), epochs,
seed;
for the scikit-learn families the keys listed in families.py (C, gamma, n_estimators, ...).
A config's ``model`` picks the family per trial, so one study can compare classifiers
(a conditional space whose ``model`` choice owns each family's hyper-parameters).  Keys a family
does not use (the shared lr / batch_size beside a ``model`` choice) are ignored by it.

``lr_decay`` (in (0, 1], default 1 = constant): exponential learning-rate schedule, epoch ``e``
(counted from the start of training, also across a checkpoint resume) trains with
``lr * lr_decay ** (e - 1)``, so a resumed run follows the same schedule as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import warnings
from typing import Any, Dict, Mapping, Tuple

from ..errors import ConfigError
from .datasets import check_dataset_spec, load_dataset
from .families import FAMILY_PARAMS, SKLEARN_FAMILIES, family_settings
from .params import get_choice, get_float, get_int

TORCH_MODELS = ("mlp", "cnn")
MODELS = TORCH_MODELS + SKLEARN_FAMILIES

METRICS = {"val_loss": "minimize", "val_accuracy": "maximize", "val_error": "minimize"}
OPTIMIZERS = ("adam", "sgd", "adamw")
AMP = ("none", "bf16", "fp16")
BUDGET_KINDS = ("epochs", "data_fraction")
SPEC_KEYS = (
    "model",
    "dataset",
    "metric",
    "epochs",
    "budget_kind",
    "device",
    "amp",
    "seed",
    "num_threads",
    "params",
    "type",
)
CKPT_NAME = "ckpt.pt"
EVAL_CHUNK = 8192
_threads_set = False


class BuiltinObjective:
    """Callable ``objective(config, ctx) -> float`` built from a validated spec."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        if not isinstance(spec, Mapping):
            raise ConfigError(f"objective: expected a mapping of {', '.join(SPEC_KEYS)}, got {spec!r}")
        unknown = sorted(set(spec) - set(SPEC_KEYS))
        if unknown:
            raise ConfigError(f"objective: unknown key(s) {unknown}; allowed: {', '.join(SPEC_KEYS)}")
        if "dataset" not in spec:
            raise ConfigError("objective: missing key 'dataset'; allowed: digits, mnist1d or a .npz/.h5/.hdf5 path")
        self.spec = dict(spec)
        self.model = get_choice(spec, "model", "mlp", MODELS)
        self.dataset = spec["dataset"]
        check_dataset_spec(self.dataset)
        self.metric = get_choice(spec, "metric", "val_loss", tuple(METRICS))
        self.epochs = get_int(spec, "epochs", 20)
        self.budget_kind = get_choice(spec, "budget_kind", "epochs", BUDGET_KINDS)
        self.device = str(spec.get("device", "auto")).lower()
        if self.device not in ("auto", "cpu", "cuda") and not (
            self.device.startswith("cuda:") and self.device[5:].isdigit()
        ):
            raise ConfigError(f"device: got {spec.get('device')!r}; allowed: auto, cpu, cuda, cuda:N")
        self.amp = get_choice(spec, "amp", "none", AMP)
        self.seed = get_int(spec, "seed", 0, lo=0)
        self.num_threads = get_int(spec, "num_threads", 1, lo=0)
        params = spec.get("params", {}) or {}
        if not isinstance(params, Mapping):
            raise ConfigError(f"params: got {params!r}; allowed: a mapping of hyper-parameter defaults")
        self.params = dict(params)

    @property
    def direction(self) -> str:
        """ "minimize" or "maximize", following ``metric``."""
        return METRICS[self.metric]

    def check_data(self) -> None:
        """Load the dataset now (rank 0, before any work) so a bad file fails with one clear message."""
        load_dataset(self.dataset, self.seed)

    def check_space(self, space: Any) -> None:
        """Fail early (rank 0) on a ``model`` choice naming no family, and on categorical values a
        scikit-learn family would reject (``penalty: [l1]``); raises ConfigError naming the path."""
        for d in getattr(space, "dims", []):
            values = getattr(d.param, "choices", None)
            if values is None and hasattr(d.param, "value"):
                values = [d.param.value]
            if values is None:
                continue
            if d.name == "model":
                for v in values:
                    if not isinstance(v, str) or v.lower() not in MODELS:
                        raise ConfigError(
                            f"space '{d.key}': model {v!r} is not a built-in family; allowed: {', '.join(MODELS)}"
                        )
                continue
            fams = [str(v).lower() for k, v in d.when if k.rsplit("/", 1)[-1] == "model"]
            fam = fams[-1] if fams else (self.model if "model" not in self.params else None)
            if fam in FAMILY_PARAMS and d.name in FAMILY_PARAMS[fam]:
                for v in values:
                    try:
                        family_settings(fam, {d.name: v})
                    except ConfigError as exc:
                        raise ConfigError(f"space '{d.key}': {exc}") from None

    def __call__(self, config: Mapping[str, Any], ctx: Any) -> float:
        p = {**self.params, "model": self.model, **dict(config)}
        family = p["model"].lower() if isinstance(p["model"], str) else p["model"]
        if family in SKLEARN_FAMILIES:
            return _train_sklearn(self, family, p, dict(config), ctx)
        if family not in TORCH_MODELS:
            raise ConfigError(f"model: got {p['model']!r}; allowed: {', '.join(MODELS)}")
        return _train(self, dict(config), ctx)

    def __repr__(self) -> str:
        return f"BuiltinObjective({self.spec!r})"


def make_builtin_objective(spec: Mapping[str, Any]) -> BuiltinObjective:
    """Validate ``spec`` (see module docstring) and return the objective; raises ConfigError."""
    return BuiltinObjective(spec)


# --------------------------------------------------------------------------- training


def _train(obj: BuiltinObjective, config: Dict[str, Any], ctx: Any) -> float:
    import torch
    import torch.nn.functional as F

    from .models import build_model

    _setup_threads(obj.num_threads)
    p = {**obj.params, "model": obj.model, **config}
    ds = load_dataset(obj.dataset, obj.seed)
    device = _resolve_device(obj.device, ctx)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    budget = getattr(ctx, "budget", None)
    if obj.budget_kind == "epochs":
        epochs = _budget_epochs(budget) if budget is not None else get_int(p, "epochs", obj.epochs)
        fraction = 1.0
    else:
        epochs = get_int(p, "epochs", obj.epochs)
        fraction = 1.0 if budget is None else get_float({"budget": budget}, "budget", 1.0, 0.0, 1.0, lo_open=True)
    opt_name = get_choice(p, "optimizer", "adam", OPTIMIZERS)
    lr = get_float(p, "lr", 1e-2 if opt_name == "sgd" else 1e-3, 0.0, lo_open=True)
    lr_decay = get_float(p, "lr_decay", 1.0, 0.0, 1.0, lo_open=True)
    wd = get_float(p, "weight_decay", 1e-2 if opt_name == "adamw" else 0.0)
    momentum = get_float(p, "momentum", 0.9, 0.0, 1.0, hi_open=True)
    batch_size = get_int(p, "batch_size", 64)
    seed = get_int(p, "seed", 0, lo=0) if "seed" in p else _derive_seed(obj.seed, config, ctx)

    torch.manual_seed(seed)
    model = build_model(p, ds).to(device)
    opt: torch.optim.Optimizer
    if opt_name == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=wd)
    else:
        cls = torch.optim.Adam if opt_name == "adam" else torch.optim.AdamW
        fused = device.split(":")[0] in ("cpu", "cuda")  # fused Adam: about 3x faster steps on CPU
        opt = cls(model.parameters(), lr=lr, weight_decay=wd, fused=fused)
    x_tr, y_tr, x_va, y_va = _device_tensors(ds, device)
    if fraction < 1.0:  # nested subsets: a larger fraction always contains a smaller one
        n_keep = max(1, int(math.ceil(fraction * ds.n_train - 1e-9)))
        idx = torch.from_numpy(_subset_order(ds, obj.seed)[:n_keep]).to(device)
        x_tr, y_tr = x_tr[idx], y_tr[idx]
    n = int(x_tr.shape[0])
    batch_size = min(batch_size, n)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)

    start = 0
    ckpt_from = getattr(ctx, "checkpoint_from", None)
    if ckpt_from and obj.budget_kind == "epochs":  # a data-fraction budget restarts on the larger subset
        start = _load_checkpoint(os.path.join(ckpt_from, CKPT_NAME), model, opt, gen, p, opt_name)
        for g in opt.param_groups:  # the new config's hyper-parameters win (PBT explore)
            g["lr"], g["weight_decay"] = lr, wd
            if opt_name == "sgd":
                g["momentum"] = momentum

    use_amp = obj.amp != "none" and device.startswith("cuda")
    amp_dtype = torch.bfloat16 if obj.amp == "bf16" else torch.float16
    autocast = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if use_amp else contextlib.nullcontext
    scaler = torch.amp.GradScaler("cuda") if use_amp and obj.amp == "fp16" else None

    def evaluate() -> Tuple[float, float]:
        model.eval()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        with torch.inference_mode(), autocast():
            for i in range(0, int(x_va.shape[0]), EVAL_CHUNK):
                out = model(x_va[i : i + EVAL_CHUNK]).float()
                loss_sum += F.cross_entropy(out, y_va[i : i + EVAL_CHUNK], reduction="sum")
                correct += (out.argmax(1) == y_va[i : i + EVAL_CHUNK]).sum()
        m = int(x_va.shape[0])
        return loss_sum.item() / m, correct.item() / m

    ckpt_dir = getattr(ctx, "checkpoint_dir", None)
    trial_id = getattr(ctx, "trial_id", None)
    value = float("nan")
    for epoch in range(start + 1, max(epochs, start) + 1):
        if lr_decay != 1.0:
            for g in opt.param_groups:
                g["lr"] = lr * lr_decay ** (epoch - 1)
        model.train()
        total = torch.zeros((), device=device)
        perm = torch.randperm(n, device=device, generator=gen)
        for i in range(0, n, batch_size):
            b = perm[i : i + batch_size]
            with autocast():
                loss = F.cross_entropy(model(x_tr[b]), y_tr[b])
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            total += loss.detach().float() * int(b.shape[0])
        train_loss = total.item() / n
        val_loss, val_acc = evaluate()
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            raise FloatingPointError(
                f"trial {trial_id}: training diverged at epoch {epoch} (train_loss={train_loss}, "
                f"val_loss={val_loss}) with optimizer={opt_name} lr={lr:g} batch_size={batch_size}"
            )
        value = _metric(obj.metric, val_loss, val_acc)
        if ckpt_dir:
            _save_checkpoint(ckpt_dir, model, opt, gen, epoch, p, opt_name, trial_id)
        ctx.report(epoch, value, val_accuracy=val_acc, val_loss=val_loss, train_loss=train_loss)
    if start >= epochs:  # resumed at or past the budget: evaluate only
        val_loss, val_acc = evaluate()
        value = _metric(obj.metric, val_loss, val_acc)
        if not math.isfinite(val_loss):
            raise FloatingPointError(
                f"trial {trial_id}: val_loss is {val_loss} for the checkpoint at epoch {start} from {ckpt_from!r}"
            )
        if ckpt_dir and os.path.abspath(ckpt_dir) != os.path.abspath(ckpt_from or ""):
            _save_checkpoint(ckpt_dir, model, opt, gen, start, p, opt_name, trial_id)
        ctx.report(start, value, val_accuracy=val_acc, val_loss=val_loss)  # no training: no train_loss
    return float(value)


def _train_sklearn(obj: BuiltinObjective, family: str, p: Dict[str, Any], config: Dict[str, Any], ctx: Any) -> float:
    """A scikit-learn family (families.py) on the same data, metrics and budget as the nets."""
    from .families import train_family

    family_settings(family, p)  # bad hyper-parameters fail before the data is loaded
    ds = load_dataset(obj.dataset, obj.seed)
    budget = getattr(ctx, "budget", None)
    x_tr, y_tr = ds.x_train, ds.y_train
    units = None
    if obj.budget_kind == "epochs":
        units = _budget_epochs(budget) if budget is not None else None
    elif budget is not None:
        fraction = get_float({"budget": budget}, "budget", 1.0, 0.0, 1.0, lo_open=True)
        if fraction < 1.0:  # the same nested subsets as the networks
            n_keep = max(1, int(math.ceil(fraction * ds.n_train - 1e-9)))
            idx = _subset_order(ds, obj.seed)[:n_keep]
            x_tr, y_tr = x_tr[idx], y_tr[idx]
    seed = get_int(p, "seed", 0, lo=0) if "seed" in p else _derive_seed(obj.seed, config, ctx)
    last = [float("nan")]

    def report(step: int, val_loss: float, val_acc: float) -> None:
        trial_id = getattr(ctx, "trial_id", None)
        if not math.isfinite(val_loss):
            raise FloatingPointError(f"trial {trial_id}: model {family!r} gave val_loss={val_loss} at step {step}")
        last[0] = _metric(obj.metric, val_loss, val_acc)
        ctx.report(step, last[0], val_accuracy=val_acc, val_loss=val_loss)

    train_family(
        family,
        p,
        x_tr,
        y_tr,
        ds.x_val,
        ds.y_val,
        ds.n_classes,
        units,
        report,
        seed,
        obj.num_threads,
        checkpoint_dir=getattr(ctx, "checkpoint_dir", None),
        checkpoint_from=getattr(ctx, "checkpoint_from", None),
        trial_id=getattr(ctx, "trial_id", None),
    )
    return float(last[0])


def _metric(name: str, val_loss: float, val_acc: float) -> float:
    return {"val_loss": val_loss, "val_accuracy": val_acc, "val_error": 1.0 - val_acc}[name]


def _budget_epochs(budget: Any) -> int:
    """ctx.budget -> whole epochs (truncated, at least 1; 2.9999999 counts as 3)."""
    b = get_float({"budget": budget}, "budget", 1.0, 0.0, lo_open=True)
    return max(1, int(round(b)) if abs(b - round(b)) < 1e-6 else int(b))


def _derive_seed(base: int, config: Mapping[str, Any], ctx: Any) -> int:
    """Stable seed from the spec seed, the config and the trial id (same inputs -> same run)."""
    text = json.dumps([base, getattr(ctx, "trial_id", None), config], sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def _setup_threads(n: int) -> None:
    global _threads_set
    if not _threads_set and n > 0:
        import torch

        torch.set_num_threads(n)
    _threads_set = True


def _resolve_device(spec_device: str, ctx: Any) -> str:
    from .device import pick_device

    ctx_dev = getattr(ctx, "device", None)
    if spec_device == "auto":
        return str(ctx_dev) if ctx_dev else pick_device(getattr(ctx, "rank", 0) or 0)
    if spec_device == "cuda" and ctx_dev and str(ctx_dev).startswith("cuda"):
        return str(ctx_dev)
    return pick_device(getattr(ctx, "rank", 0) or 0, spec_device)


def _device_tensors(ds: Any, device: str) -> Tuple[Any, Any, Any, Any]:
    """The dataset as tensors on ``device``, copied once per process and device."""
    import torch

    t = ds.tensors.get(device)
    if t is None:
        t = tuple(torch.from_numpy(a).to(device) for a in (ds.x_train, ds.y_train, ds.x_val, ds.y_val))
        ds.tensors[device] = t
    return t


def _subset_order(ds: Any, seed: int) -> Any:
    import numpy as np

    key = ("order", seed)
    if key not in ds.tensors:
        ds.tensors[key] = np.random.default_rng(seed).permutation(ds.n_train)
    return ds.tensors[key]


def _plain(v: Any) -> Any:
    """Config values as plain Python (numpy scalars -> numbers) so ``torch.load(weights_only)`` works."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "item") and callable(v.item):
        try:
            return v.item()
        except (ValueError, TypeError):
            return str(v)
    return v if isinstance(v, (str, int, float, bool, type(None))) else str(v)


def _save_checkpoint(
    ckpt_dir: str, model: Any, opt: Any, gen: Any, epoch: int, params: Mapping[str, Any], opt_name: str, trial_id: Any
) -> None:
    """Write ``<ckpt_dir>/ckpt.pt`` atomically (temp file + os.replace)."""
    import torch

    os.makedirs(ckpt_dir, exist_ok=True)
    state = {
        "epoch": int(epoch),
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "optimizer_name": opt_name,
        "params": _plain(dict(params)),
        "trial_id": _plain(trial_id),
        "torch_rng": torch.get_rng_state(),
        "gen_rng": gen.get_state(),
    }
    if gen.device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(gen.device)
    path = os.path.join(ckpt_dir, CKPT_NAME)
    tmp = f"{path}.tmp.{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: str, model: Any, opt: Any, gen: Any, params: Mapping[str, Any], opt_name: str) -> int:
    """Load ``path`` into model / optimizer / RNGs; return its epoch (0 and a warning if absent)."""
    import torch

    if not os.path.isfile(path):
        warnings.warn(f"checkpoint {path!r} not found; training from scratch", RuntimeWarning, stacklevel=1)
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        old = {k: state.get("params", {}).get(k) for k in ("model", "width", "depth", "channels", "kernel", "layers")}
        raise RuntimeError(
            f"checkpoint {path!r} does not fit this trial's model: checkpoint "
            f"architecture {old}, this trial {{model: {params.get('model')!r}, ...}}: "
            f"{e}"
        ) from e
    if state.get("optimizer_name") == opt_name:
        opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    gen.set_state(state["gen_rng"])
    if gen.device.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"], gen.device)
    return int(state["epoch"])
