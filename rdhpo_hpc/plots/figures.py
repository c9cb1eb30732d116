"""The figures.  Matplotlib is imported here only, lazily, with the non-interactive Agg backend.

Each ``plot_*`` function takes loaded results (:class:`~rdhpo_hpc.results.StudyResult`) and an
output path stem (no extension), writes one file per requested format, and returns the paths
written (empty when the study holds nothing to draw).
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence, Union

import numpy as np

from . import data as D

Formats = Union[str, Sequence[str]]
DPI = 90


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _formats(fmt: Formats) -> list[str]:
    items = fmt.split(",") if isinstance(fmt, str) else list(fmt)
    out = [f.strip().lower().lstrip(".") for f in items if f.strip()]
    bad = [f for f in out if f not in ("png", "pdf", "svg")]
    if bad:
        raise ValueError(f"plot format must be png, pdf or svg, got {bad[0]!r}")
    return out or ["png"]


def _save(fig: Any, stem: str, fmt: Formats, dpi: int = DPI) -> list[str]:
    plt = _plt()
    os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
    paths = []
    for f in _formats(fmt):
        p = f"{stem}.{f}"
        fig.savefig(p, dpi=dpi, bbox_inches="tight")
        paths.append(p)
    plt.close(fig)
    return paths


def _as_list(results: Any) -> list:
    return list(results) if isinstance(results, (list, tuple)) else [results]


# 1. optimisation history ------------------------------------------------------------------------
def plot_history(results: Any, stem: str, fmt: Formats = "png") -> list[str]:
    """Each trial's value and the best so far vs wall time and vs trial count; studies overlaid."""
    studies = _as_list(results)
    hs = [(r, D.history(r)) for r in studies]
    if not any(np.isfinite(h["value"]).any() for _, h in hs):
        return []
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (res, h) in enumerate(hs):
        c = colors[i % len(colors)]
        lab = D.study_label(res)
        for ax, x in ((axes[0], h["time"]), (axes[1], h["index"])):
            comp = np.array([s == "COMPLETE" for s in h["state"]])
            ax.scatter(x[comp], h["value"][comp], s=12, color=c, alpha=0.55, lw=0)
            oth = ~comp & np.isfinite(h["value"])
            if oth.any():
                ax.scatter(x[oth], h["value"][oth], s=14, color=c, alpha=0.5, marker="x", lw=0.8)
            ax.step(x, h["best"], where="post", color=c, lw=1.8, label=f"{lab} best")
    minimize = studies[0].direction != "maximize"
    for ax, xl in ((axes[0], "wall time since study start (s)"), (axes[1], "trials finished")):
        ax.set_xlabel(xl)
        ax.set_ylabel(f"{studies[0].study.get('metric', 'value')} ({'min' if minimize else 'max'})")
        ax.grid(alpha=0.3)
        _maybe_log_y(ax, np.concatenate([h["value"] for _, h in hs]))
    axes[0].set_title("Optimization history (dots: trials, x: pruned/failed; line: best so far)", fontsize=9)
    axes[1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _save(fig, stem, fmt)


def _maybe_log_y(ax: Any, v: np.ndarray) -> None:
    v = v[np.isfinite(v)]
    if len(v) and v.min() > 0 and v.max() / v.min() > 100:
        ax.set_yscale("log")


# 2. hyper-parameters ---------------------------------------------------------------------------
def plot_parallel(res: Any, stem: str, fmt: Formats = "png") -> list[str]:
    """Parallel coordinates of the hyper-parameters, one line per COMPLETE trial coloured by value.

    Absent (conditional) parameters break the line; categoricals sit at evenly spaced levels."""
    tab = D.param_table(res)
    if not tab["names"] or len(tab["value"]) < 2:
        return []
    plt = _plt()
    names = tab["names"]
    cols = [tab["columns"][n] for n in names]
    y = tab["value"]
    fig, ax = plt.subplots(figsize=(max(6, 1.5 * (len(names) + 1)), 4.5))
    norm_cols = []
    for c in cols:
        x = c["x"]
        if c["kind"] == "cat":
            n = max(len(c["labels"]) - 1, 1)
            norm_cols.append(x / n)
        else:
            ok = np.isfinite(x)
            lo, hi = (x[ok].min(), x[ok].max()) if ok.any() else (0, 1)
            norm_cols.append((x - lo) / (hi - lo) if hi > lo else np.where(ok, 0.5, np.nan))
    vlo, vhi = np.nanmin(y), np.nanmax(y)
    norm_cols.append((y - vlo) / (vhi - vlo) if vhi > vlo else np.full_like(y, 0.5))
    M = np.column_stack(norm_cols)
    cmap = plt.get_cmap("viridis_r" if res.direction != "maximize" else "viridis")
    order = np.argsort(y)[::-1] if res.direction != "maximize" else np.argsort(y)  # best drawn last
    xs = np.arange(M.shape[1])
    for i in order:
        ax.plot(xs, M[i], color=cmap((y[i] - vlo) / (vhi - vlo) if vhi > vlo else 0.5), alpha=0.6, lw=1)
        ax.scatter(xs, M[i], color=cmap((y[i] - vlo) / (vhi - vlo) if vhi > vlo else 0.5), s=6)
    for j, c in enumerate(cols):
        ax.axvline(j, color="k", lw=0.6)
        if c["kind"] == "cat":
            n = max(len(c["labels"]) - 1, 1)
            for k, lab in enumerate(c["labels"]):
                ax.text(j + 0.03, k / n, lab, fontsize=7, va="center")
        else:
            ok = np.isfinite(c["x"])
            if ok.any():
                lo, hi = c["x"][ok].min(), c["x"][ok].max()
                f = (lambda v: f"{10**v:.3g}") if c["log"] else (lambda v: f"{v:.3g}")
                ax.text(j + 0.03, 0, f(lo), fontsize=7, va="bottom")
                ax.text(j + 0.03, 1, f(hi), fontsize=7, va="top")
    ax.axvline(len(cols), color="k", lw=0.6)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(
        [n + (" (log)" if c["log"] else "") for n, c in zip(names, cols)] + ["value"], rotation=20, fontsize=8
    )
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(cols) + 0.4)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(vlo, vhi))
    fig.colorbar(sm, ax=ax, label=res.study.get("metric", "value"), pad=0.01)
    ax.set_title(f"Parallel coordinates, {len(y)} complete trials (gaps: parameter inactive)", fontsize=9)
    return _save(fig, stem, fmt, dpi=75)  # many translucent lines: keep the PNG small


def plot_slices(res: Any, stem: str, fmt: Formats = "png") -> list[str]:
    """One scatter per hyper-parameter: value vs that parameter (trials where it is active)."""
    tab = D.param_table(res)
    if not tab["names"] or len(tab["value"]) < 1:
        return []
    plt = _plt()
    n = len(tab["names"])
    ncol = min(n, 4)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.7 * nrow), squeeze=False, sharey=True)
    y = tab["value"]
    order = np.arange(len(y))
    rng = np.random.default_rng(0)
    for k, name in enumerate(tab["names"]):
        ax = axes[k // ncol][k % ncol]
        c = tab["columns"][name]
        ok = np.isfinite(c["x"])
        x = c["x"][ok]
        if c["kind"] == "cat":
            x = x + rng.uniform(-0.15, 0.15, len(x))
            ax.set_xticks(range(len(c["labels"])))
            ax.set_xticklabels(c["labels"], fontsize=7, rotation=20)
        elif c["log"]:
            x = 10**x
            ax.set_xscale("log")
        ax.scatter(x, y[ok], c=order[ok], cmap="plasma", s=12, alpha=0.8)
        if c["kind"] != "cat" and c["log"] and len(x):
            _log_ticks(ax, float(np.min(x)), float(np.max(x)))
        ax.set_xlabel(f"{name}  ({ok.sum()}/{len(y)} trials)", fontsize=8)
        ax.grid(alpha=0.3)
        if k % ncol == 0:
            ax.set_ylabel(res.study.get("metric", "value"), fontsize=8)
    for k in range(n, nrow * ncol):
        axes[k // ncol][k % ncol].axis("off")
    fig.suptitle("Slice plot (colour: trial order, dark = early)", fontsize=9)
    fig.tight_layout()
    return _save(fig, stem, fmt)


def _log_ticks(ax: Any, lo: float, hi: float, most: int = 4) -> None:
    """At most ``most`` labelled ticks on a log x axis, one significant digit each: matplotlib's
    own formatter labels minor ticks too when the data span under a few decades, and they overlap."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    if not (0 < lo <= hi):
        return
    ticks = sorted({float(f"{v:.1g}") for v in np.geomspace(lo, hi, most)})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.0e}" if v < 1e-2 or v >= 1e4 else f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="x", labelsize=7)


def plot_importance(res: Any, stem: str, fmt: Formats = "png") -> list[str]:
    """Bar chart of parameter importance (see :func:`data.importance`); refused (nothing drawn,
    a message on the ``rdhpo`` logger) with fewer than ``data.MIN_IMPORTANCE_TRIALS`` COMPLETE trials."""
    tab = D.param_table(res)
    n = len(tab["value"])
    if tab["names"] and n < D.MIN_IMPORTANCE_TRIALS:
        from ..log import logger

        logger.info(
            "[rdhpo] importance plot not drawn: it would rest on %d COMPLETE trial(s); at least %d are needed",
            n,
            D.MIN_IMPORTANCE_TRIALS,
        )
        return []
    imp, method = D.importance(tab, seed=int(res.study.get("seed") or 0))
    if method == "none":
        return []
    plt = _plt()
    items = sorted(imp.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(items) + 1.2))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#2b8cbe")
    ax.set_xlabel("importance (share)")
    few = " (few: indicative only)" if n < 3 * D.MIN_IMPORTANCE_TRIALS else ""
    ax.set_title(f"Hyper-parameter importance ({method}) from {n} COMPLETE trials{few}", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, stem, fmt)


# 3. learning curves and PBT lineage ------------------------------------------------------------
def plot_curves(res: Any, stem: str, fmt: Formats = "png") -> list[str]:
    """Every attempt's reported curve; the end of each is marked by its outcome (pruned: X)."""
    cs = D.curves(res)
    if not cs:
        return []
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    marks = {"COMPLETE": "o", "PRUNED": "X", "FAILED": "v", "LOST": "s", "RUNNING": ">"}
    seen = set()
    for c in cs:
        col = D.STATE_COLORS.get(c["state"], "k")
        ax.plot(c["step"], c["value"], color=col, alpha=0.45, lw=1)
        lab = c["state"] if c["state"] not in seen else None
        seen.add(c["state"])
        ax.scatter(
            c["step"][-1:],
            c["value"][-1:],
            color=col,
            marker=marks.get(c["state"], "o"),
            s=40 if c["state"] == "PRUNED" else 14,
            zorder=3,
            label=lab,
            edgecolors="k" if c["state"] == "PRUNED" else "none",
            linewidths=0.5,
        )
    ax.set_xlabel("step (report)")
    ax.set_ylabel(res.study.get("metric", "value"))
    _maybe_log_y(ax, np.concatenate([c["value"] for c in cs]))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="attempt outcome (end marker)", title_fontsize=8)
    ax.set_title(f"Learning curves of {len(cs)} attempts", fontsize=9)
    fig.tight_layout()
    return _save(fig, stem, fmt)


def plot_lineage(res: Any, stem: str, fmt: Formats = "png") -> list[str]:
    """PBT: one row per population member, a segment per trial coloured by value, arrows from the
    parent whose checkpoint a trial started from."""
    rows = D.lineage(res)
    if not rows:
        return []
    plt = _plt()
    vals = np.array([r["value"] if D.finite(r["value"]) else np.nan for r in rows], float)
    vlo, vhi = (np.nanmin(vals), np.nanmax(vals)) if np.isfinite(vals).any() else (0.0, 1.0)
    cmap = plt.get_cmap("viridis_r" if res.direction != "maximize" else "viridis")
    by_id = {r["trial_id"]: r for r in rows}
    members = sorted({r["member"] for r in rows}, key=str)
    row_of = {m: i for i, m in enumerate(members)}
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(members) + 1.8))
    for r in rows:
        v = r["value"]
        col = cmap((v - vlo) / (vhi - vlo) if D.finite(v) and vhi > vlo else 0.5) if D.finite(v) else "#bbbbbb"
        yy = row_of[r["member"]]
        ax.plot([r["start"], r["end"]], [yy, yy], color=col, lw=5, solid_capstyle="butt")
        p = by_id.get(r["parent"])
        if p is not None and (p["member"] != r["member"] or r.get("exploit")):
            ax.annotate(
                "",
                xy=(r["start"], yy),
                xytext=(p["end"], row_of[p["member"]]),
                arrowprops={"arrowstyle": "->", "color": "#555555", "lw": 0.7},
            )
    ax.set_yticks(range(len(members)))
    ax.set_yticklabels([f"member {m}" for m in members], fontsize=7)
    ax.set_xlabel("wall time since study start (s)")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(vlo, vhi))
    fig.colorbar(sm, ax=ax, label=res.study.get("metric", "value"), pad=0.01)
    ax.set_title("Population lineage (arrows: exploit = copy of another member's checkpoint)", fontsize=9)
    fig.tight_layout()
    return _save(fig, stem, fmt)


# 4. worker timeline ----------------------------------------------------------------------------
_EVENT_STYLE = {
    "rank-dead": ("X", "#d7301f"),
    "requeue": ("o", "#e6550d"),
    "shrink": ("D", "#756bb1"),
    "takeover": ("*", "#31a354"),
    "resume": ("P", "#3182bd"),
    "interrupt": ("s", "#636363"),
    "retries-exhausted": ("v", "#a50f15"),
    "terminate-hung": ("x", "#000000"),
}


def plot_timeline(res: Any, stem: str, fmt: Formats = "png") -> list[str]:
    """One row per rank, a bar per attempt coloured by outcome, events from /events marked."""
    tl = D.timeline(res)
    if not tl["bars"] and not tl["events"]:
        return []
    plt = _plt()
    from matplotlib.patches import Patch

    ranks = tl["ranks"]
    row = {r: i for i, r in enumerate(ranks)}
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(ranks) + 2.2))
    by_state: dict[str, list] = {}
    for b in tl["bars"]:
        by_state.setdefault(b["state"], []).append((b["start"], max(b["end"] - b["start"], 1e-3), row[b["rank"]]))
    for state, segs in by_state.items():
        ax.barh(
            [s[2] for s in segs],
            [s[1] for s in segs],
            left=[s[0] for s in segs],
            height=0.7,
            color=D.STATE_COLORS.get(state, "k"),
            edgecolor="white",
            linewidth=0.3,
        )
    handles = [
        Patch(color=D.STATE_COLORS[s], label=s) for s in ("COMPLETE", "PRUNED", "FAILED", "LOST") if s in by_state
    ]
    seen = set()
    stacked: dict[tuple, int] = {}
    for e in tl["events"]:
        m, c = _EVENT_STYLE.get(e["kind"], ("|", "#444444"))
        yy = row.get(e["rank"], -0.8) if isinstance(e["rank"], int) and e["rank"] >= 0 else -0.8
        key = (round(e["time"] / max(tl["end"] or 1.0, 1e-9) * 60), yy)  # events at the same spot: stack them
        yy += 0.28 * stacked.get(key, 0)
        stacked[key] = stacked.get(key, 0) + 1
        h = ax.scatter(
            [e["time"]],
            [yy],
            marker=m,
            color=c,
            s=70,
            zorder=4,
            edgecolors="k",
            linewidths=0.4,
            label=e["kind"] if e["kind"] not in seen else None,
        )
        if e["kind"] not in seen:
            handles.append(h)
            seen.add(e["kind"])
        if e["kind"] == "rank-dead":
            txt = f"dead, detected {e['latency']:.2f}s" if D.finite(e["latency"]) else "dead"
            ax.annotate(txt, (e["time"], yy), xytext=(4, 6), textcoords="offset points", fontsize=7, color=c)
        elif e["kind"] in ("takeover", "shrink", "resume"):
            txt = e["kind"] + (f" {1e3 * e['latency']:.0f} ms" if D.finite(e["latency"]) else "")
            ax.annotate(
                txt, (e["time"], yy), xytext=(-6, -10), textcoords="offset points", fontsize=7, color=c, ha="right"
            )
    if tl["end"] is not None:
        ax.axvline(tl["end"], color="k", ls="--", lw=0.8)
    ax.set_yticks(
        list(range(len(ranks)))
        + ([-0.8] if any(not (isinstance(e["rank"], int) and e["rank"] >= 0) for e in tl["events"]) else [])
    )
    ax.set_yticklabels(
        [f"rank {r}" + (" (coord.)" if r == 0 else "") for r in ranks]
        + (["study"] if len(ax.get_yticks()) > len(ranks) else []),
        fontsize=7,
    )
    ax.invert_yaxis()
    ax.set_xlim(left=0)
    ax.set_xlabel("wall time since study start (s)")
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"Worker timeline: {len(tl['bars'])} attempts, {len(tl['events'])} events", fontsize=9)
    fig.tight_layout()
    return _save(fig, stem, fmt)


# 5. model families -----------------------------------------------------------------------------
def plot_families(res: Any, stem: str, fmt: Formats = "png", key: str = "model") -> list[str]:
    """Value vs wall time coloured by ``params[key]`` (the model family), best per family marked."""
    h = D.history(res)
    fams = [p.get(key) for p in h["params"]]
    if not any(f is not None for f in fams):
        return []
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    minimize = res.direction != "maximize"
    for i, fam in enumerate(sorted({f for f in fams if f is not None}, key=str)):
        sel = np.array([f == fam and s == "COMPLETE" for f, s in zip(fams, h["state"])])
        if not sel.any():
            continue
        c = colors[i % len(colors)]
        x, v = h["time"][sel], h["value"][sel]
        ax.scatter(x, v, color=c, s=16, alpha=0.7, label=f"{fam} ({sel.sum()})")
        ok = np.isfinite(v)
        if ok.any():
            run = np.minimum.accumulate(v[ok]) if minimize else np.maximum.accumulate(v[ok])
            ax.step(x[ok], run, where="post", color=c, lw=1.2)
    ax.set_xlabel("wall time since study start (s)")
    ax.set_ylabel(res.study.get("metric", "value"))
    _maybe_log_y(ax, h["value"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title=key, title_fontsize=8)
    ax.set_title(f"Value vs wall time per {key} (line: best so far of each)", fontsize=9)
    fig.tight_layout()
    return _save(fig, stem, fmt)


# 6. scaling ------------------------------------------------------------------------------------
def plot_scaling(jsonl_paths: Any, stem: str, fmt: Formats = "png") -> list[str]:
    """Speed-up and parallel efficiency vs workers, from ``bench/out/results.jsonl``."""
    rows = [r for p in _as_list(jsonl_paths) for r in D.scaling_rows(p)]
    sp = sorted((r["workers"], r["value"], r.get("trial_time")) for r in rows if r["metric"] == "speedup")
    ef = sorted((r["workers"], r["value"], r.get("trial_time")) for r in rows if r["metric"] == "efficiency")
    if not sp and not ef:
        return []
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, pts, ylab in ((axes[0], sp, "speed-up over 1 worker"), (axes[1], ef, "parallel efficiency")):
        for tt in sorted({p[2] for p in pts}, key=lambda v: (v is None, v)):
            sel = [p for p in pts if p[2] == tt]
            ax.plot([p[0] for p in sel], [p[1] for p in sel], "o-", label=f"trial {tt} s" if tt else "measured")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("workers (ranks - 1)")
        ax.set_ylabel(ylab)
        ax.grid(alpha=0.3)
    ws = sorted({p[0] for p in sp + ef})
    axes[0].plot(ws, ws, "k--", lw=0.8, label="ideal")
    axes[0].set_yscale("log", base=2)
    axes[1].axhline(1.0, color="k", ls="--", lw=0.8)
    axes[1].axhline(0.95, color="#d7301f", ls=":", lw=0.8, label="goal 0.95")
    axes[1].set_ylim(0, 1.1)
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle("Scaling of the sleep objective (study wall time from the results file)", fontsize=9)
    fig.tight_layout()
    return _save(fig, stem, fmt)
