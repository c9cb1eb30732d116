"""Schedulers by name; see :mod:`rdhpo_hpc.strategy` for the user-facing strategy names."""

from .base import Scheduler

REGISTRY: dict[str, str] = {"fifo": "rdhpo_hpc.schedulers.base:Scheduler"}
REGISTRY["sh"] = "rdhpo_hpc.schedulers.sh:SuccessiveHalving"
REGISTRY["hyperband"] = "rdhpo_hpc.schedulers.hyperband:Hyperband"
REGISTRY["asha"] = "rdhpo_hpc.schedulers.asha:ASHA"
REGISTRY["pbt"] = "rdhpo_hpc.schedulers.pbt:PBT"

__all__ = ["REGISTRY", "Scheduler"]
