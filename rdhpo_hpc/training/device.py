"""Device binding: which accelerator a worker uses, and a description of it for the results file.

``pick_device`` is called once by each worker at start-up with its index among the ranks of its
node; ``describe_device`` by the worker when it registers (stored under ``/workers``).
torch is imported only when CUDA has to be asked about.
"""

from __future__ import annotations

import os
import platform
import re
import warnings
from typing import Any, Dict

from ..errors import ConfigError

PREFER = ("auto", "cpu", "cuda")
_warned_no_cuda = False


def _cuda_count() -> int:
    import torch  # lazy: a CPU-only rank never needs it here

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def pick_device(rank_local_index: int, prefer: str = "auto") -> str:
    """Device string for the worker with node-local index ``rank_local_index``.

    ``prefer``: "auto" (CUDA if visible, else CPU), "cpu", "cuda" (warns once and falls back to
    CPU when no GPU is visible), or "cuda:N" (pinned).  GPUs are shared round-robin
    (``cuda:{i % n}``); CUDA_VISIBLE_DEVICES is respected because torch only counts visible ones.
    """
    global _warned_no_cuda
    p = str(prefer).lower()
    m = re.fullmatch(r"cuda:(\d+)", p)
    if p not in PREFER and not m:
        raise ConfigError(f"device: got {prefer!r}; allowed: auto, cpu, cuda, cuda:N")
    if p == "cpu":
        return "cpu"
    n = _cuda_count()
    if n == 0:
        if p != "auto" and not _warned_no_cuda:
            _warned_no_cuda = True
            warnings.warn(
                f"device {prefer!r} requested but no CUDA device is visible "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); "
                "using cpu",
                RuntimeWarning,
                stacklevel=2,
            )
        return "cpu"
    if m:
        return f"cuda:{int(m.group(1)) % n}"
    return f"cuda:{int(rank_local_index) % n}"


def describe_device(device: str) -> Dict[str, Any]:
    """``{"device", "name", "memory_bytes"}`` for ``device`` (GPU model and memory, or CPU and RAM)."""
    if str(device).startswith("cuda"):
        import torch

        props = torch.cuda.get_device_properties(torch.device(device))
        return {"device": str(device), "name": props.name, "memory_bytes": int(props.total_memory)}
    return {"device": str(device), "name": _cpu_name(), "memory_bytes": _ram_bytes()}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"{platform.machine()} x{os.cpu_count()}"  # platform.processor() forks uname: slow


def _ram_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def free_memory() -> None:
    """Release cached accelerator memory; called by the worker after each attempt (after an OOM)."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")  # never import torch just to free nothing
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
