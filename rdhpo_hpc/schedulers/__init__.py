"""Schedulers by name; see :mod:`rdhpo_hpc.strategy` for the user-facing strategy names."""
from .base import Scheduler

REGISTRY: dict[str, str] = {"fifo": "rdhpo_hpc.schedulers.base:Scheduler"}

__all__ = ["REGISTRY", "Scheduler"]
