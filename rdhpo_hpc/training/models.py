"""Built-in model families, built per trial by :mod:`rdhpo_hpc.training.builtin`.

``mlp``: ``depth`` hidden layers of ``width`` units, ``activation``, ``dropout``.
``cnn``: ``layers`` conv blocks (conv ``kernel`` same-padding, ``channels``, activation; while the
signal is at least 4 long it is halved by ``pool``: "stride" = stride-2 conv (default, about 2x
faster on CPU) or "max" = max-pool 2, often a few points more accurate), then dropout and a linear
classifier.  1-D convolutions for ``(C, L)`` signals (mnist1d, 2-D files), 2-D for ``(C, H, W)``
images (digits, 4-D files).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from torch import nn

from ..errors import ConfigError
from .params import get_choice, get_float, get_int

MODELS = ("mlp", "cnn")
POOLS = ("stride", "max")
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}
MAX_SPATIAL = 8  # the CNN head averages each spatial dimension down to at most this many cells


def build_model(params: Mapping[str, Any], dataset: Any) -> nn.Module:
    """Build ``params["model"]`` (default "mlp") for ``dataset`` (input shape and class count).

    Missing hyper-parameters get defaults; bad ones raise :class:`ConfigError` quoting them.
    """
    kind = get_choice(params, "model", "mlp", MODELS)
    act = ACTIVATIONS[get_choice(params, "activation", "relu", tuple(ACTIVATIONS))]
    dropout = get_float(params, "dropout", 0.0, 0.0, 1.0, hi_open=True)
    n_out = int(dataset.n_classes)
    if kind == "mlp":
        width = get_int(params, "width", 128)
        depth = get_int(params, "depth", 2, lo=0)
        n_in = math.prod(dataset.input_shape)
        layers: list = [nn.Flatten()]
        for i in range(depth):
            layers += [nn.Linear(n_in if i == 0 else width, width), act()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(width if depth else n_in, n_out))
        return nn.Sequential(*layers)

    shape = tuple(int(s) for s in dataset.image_shape)
    if len(shape) not in (2, 3):
        raise ConfigError(
            f"model: 'cnn' needs samples shaped (C, L) or (C, H, W); dataset {dataset.name!r} has {shape}"
        )
    dims = len(shape) - 1
    channels = get_int(params, "channels", 32)
    kernel = get_int(params, "kernel", 5 if dims == 1 else 3)
    n_layers = get_int(params, "layers", 2)
    conv = nn.Conv1d if dims == 1 else nn.Conv2d
    blocks: list = [nn.Unflatten(1, shape)]
    c_in, spatial = shape[0], list(shape[1:])
    pool = get_choice(params, "pool", "stride", POOLS)
    for _ in range(n_layers):
        down = min(spatial) >= 4  # halve the signal while it is long enough
        stride = 2 if down and pool == "stride" else 1
        blocks += [conv(c_in, channels, kernel, stride=stride, padding=kernel // 2), act()]
        spatial = [(s + 2 * (kernel // 2) - kernel) // stride + 1 for s in spatial]
        if min(spatial) < 1:
            raise ConfigError(f"kernel: got {kernel}; too large for inputs of shape {shape}")
        if down and pool == "max":
            blocks.append((nn.MaxPool1d if dims == 1 else nn.MaxPool2d)(2))
            spatial = [s // 2 for s in spatial]
        c_in = channels
    if max(spatial) > MAX_SPATIAL:
        spatial = [min(s, MAX_SPATIAL) for s in spatial]
        blocks.append((nn.AdaptiveAvgPool1d if dims == 1 else nn.AdaptiveAvgPool2d)(tuple(spatial)))
    blocks.append(nn.Flatten())
    if dropout > 0:
        blocks.append(nn.Dropout(dropout))
    blocks.append(nn.Linear(channels * math.prod(spatial), n_out))
    return nn.Sequential(*blocks)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (recorded with a trial's metrics)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["build_model", "count_parameters", "MODELS", "ACTIVATIONS"]
