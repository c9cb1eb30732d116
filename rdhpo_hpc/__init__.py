"""rdhpo_hpc: reliable distributed hyper-parameter optimization for deep learning on HPC clusters.

import rdhpo_hpc as rd
space = rd.Space(lr=rd.Float(1e-4, 1e-1, log=True), act=rd.Categorical(["relu", "tanh"]))
result = rd.optimize(objective, space, optimizer="random", max_trials=50)
"""

from .api import load_results, optimize
from .context import TrialContext
from .errors import ConfigError, TrialFailed, TrialPruned
from .results import StudyResult
from .space import Categorical, Choice, Fixed, Float, Int, Space

__version__ = "0.1.0"

__all__ = [
    "Categorical",
    "Choice",
    "ConfigError",
    "Fixed",
    "Float",
    "Int",
    "Space",
    "StudyResult",
    "TrialContext",
    "TrialFailed",
    "TrialPruned",
    "load_results",
    "optimize",
    "__version__",
]
