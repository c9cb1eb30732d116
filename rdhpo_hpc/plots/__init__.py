"""Analysis plots of rdhpo results files — the only place that imports matplotlib (lazily, Agg).

Everything is read from the results file through :func:`rdhpo_hpc.api.load_results`, which also
reads a running or crashed study from its journal::

    from rdhpo_hpc.plots import plot_all
    plot_all(["results/a.h5", "results/b.h5"], "plots", fmt="png")   # -> list of files written

``bench/out/results.jsonl`` files among the paths give the scaling plot.
"""

from __future__ import annotations

import os
from typing import Any, Sequence, Union

from .data import importance, param_table
from .figures import (
    plot_curves,
    plot_families,
    plot_history,
    plot_importance,
    plot_lineage,
    plot_parallel,
    plot_scaling,
    plot_slices,
    plot_timeline,
)

__all__ = [
    "load",
    "plot_all",
    "plot_curves",
    "plot_families",
    "plot_history",
    "plot_importance",
    "plot_lineage",
    "plot_parallel",
    "plot_params",
    "plot_scaling",
    "plot_slices",
    "plot_timeline",
    "importance",
    "param_table",
]

#: per-study plots rendered by plot_all, in order: (file suffix, function)
PER_STUDY = (
    ("history", plot_history),
    ("parallel", plot_parallel),
    ("slices", plot_slices),
    ("importance", plot_importance),
    ("curves", plot_curves),
    ("lineage", plot_lineage),
    ("timeline", plot_timeline),
    ("families", plot_families),
)


def load(path_or_result: Any) -> Any:
    """A StudyResult from a path (HDF5 file or its journal), or the object itself."""
    if isinstance(path_or_result, (str, os.PathLike)):
        from ..api import load_results

        p = os.fspath(path_or_result)
        if p.endswith(".journal"):  # the journal of results.h5 is results.h5.journal
            p = p[: -len(".journal")]
        return load_results(p)
    return path_or_result


def plot_params(results: Any, stem: str, fmt: Union[str, Sequence[str]] = "png") -> list[str]:
    """Parallel coordinates, slices and importance: ``{stem}_parallel``, ``_slices``, ``_importance``."""
    res = load(results)
    return (
        plot_parallel(res, f"{stem}_parallel", fmt)
        + plot_slices(res, f"{stem}_slices", fmt)
        + plot_importance(res, f"{stem}_importance", fmt)
    )


def _stem(path: str, taken: set) -> str:
    base = os.path.splitext(os.path.basename(path))[0] or "study"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


def plot_all(
    paths: Union[str, Sequence[str]], out_dir: str, fmt: Union[str, Sequence[str]] = "png", only: Sequence[str] = ()
) -> list[str]:
    """Render every applicable plot of the results files ``paths`` into ``out_dir``.

    Per study ``{name}_{kind}.{fmt}`` for kind in history, parallel, slices, importance, curves
    (when /reports has rows), lineage (PBT), timeline, families (when params hold ``model``);
    ``history_all`` overlays several studies; ``*.jsonl`` bench files give ``scaling``.
    ``only`` restricts the kinds.  Returns the paths written.
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    os.makedirs(out_dir, exist_ok=True)
    want = set(only) if only else None
    written: list[str] = []
    jsonl = [os.fspath(p) for p in paths if os.fspath(p).endswith(".jsonl")]
    studies: list[Any] = []
    taken: set[str] = set()
    for p in paths:
        p = os.fspath(p)
        if p.endswith(".jsonl"):
            continue
        res = load(p)
        stem = os.path.join(out_dir, _stem(p, taken))
        studies.append(res)
        for kind, fn in PER_STUDY:
            if want is None or kind in want:
                written += fn(res, f"{stem}_{kind}", fmt)
    if len(studies) > 1 and (want is None or "history" in want):
        written += plot_history(studies, os.path.join(out_dir, "history_all"), fmt)
    if jsonl and (want is None or "scaling" in want):
        written += plot_scaling(jsonl, os.path.join(out_dir, "scaling"), fmt)
    return written
