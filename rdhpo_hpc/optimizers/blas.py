"""One BLAS thread for the models' linear algebra (``with one_blas_thread(): ...``).

Used by the GP-based samplers around each ask: on a loaded node (workers training on every core)
multi-threaded OpenBLAS spins, and a 200 x 200 Cholesky went from 1.7 ms to 72 ms (measured on the
2-core development machine under load).  Without threadpoolctl (it comes with scikit-learn) this
is a no-op.
"""

from __future__ import annotations

import contextlib
from typing import Any

_CONTROLLER: Any = None


def one_blas_thread() -> Any:
    """A context manager that limits BLAS to one thread inside it."""
    global _CONTROLLER
    if _CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController

            _CONTROLLER = ThreadpoolController()
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            _CONTROLLER = False
    if _CONTROLLER is False:
        return contextlib.nullcontext()
    return _CONTROLLER.limit(limits=1)
