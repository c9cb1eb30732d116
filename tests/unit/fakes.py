"""Test double of TrialContext for unit tests of objectives (no coordinator)."""
from __future__ import annotations

from typing import List, Optional, Tuple

from rdhpo_hpc.errors import TrialPruned


class FakeCtx:
    """The parts of TrialContext the objective uses; records every report."""

    def __init__(self, budget: Optional[float] = None, prune_at: Optional[int] = None,
                 checkpoint_dir: Optional[str] = None, checkpoint_from: Optional[str] = None,
                 trial_id: int = 7) -> None:
        self.budget, self.device, self.rank, self.trial_id = budget, "cpu", 0, trial_id
        self.checkpoint_dir, self.checkpoint_from = checkpoint_dir, checkpoint_from
        self.prune_at = prune_at
        self.reports: List[Tuple[int, float, dict]] = []

    def report(self, step: int, value: float, **metrics: float) -> None:
        self.reports.append((step, value, metrics))
        if self.prune_at is not None and step >= self.prune_at:
            raise TrialPruned(f"pruned at {step}")

    @property
    def steps(self) -> List[int]:
        return [s for s, _, _ in self.reports]
