"""Slices plot: log-axis tick labels never overlap; importance plot: says how many trials it
rests on and is not drawn from too few."""

from __future__ import annotations

import itertools

import pytest

import rdhpo_hpc as rd
from rdhpo_hpc.plots import data as D
from rdhpo_hpc.plots import figures

pytestmark = pytest.mark.timeout(60)

SPACE = rd.Space(
    narrow=rd.Float(1.2e-3, 4.5e-3, log=True),  # under a decade: matplotlib labels minor ticks too
    wide=rd.Float(1e-7, 1e2, log=True),
    width=rd.Int(8, 40, log=True),
    plain=rd.Float(0.0, 1.0),
)


def objective(cfg: dict, ctx) -> float:
    return cfg["plain"] + 0.1 * cfg["width"] + cfg["narrow"] * 100


def _res(n: int):
    return rd.optimize(objective, SPACE, max_trials=n, seed=0, progress_interval=3600)


def _figures(monkeypatch):
    """Capture the figures the plot functions save."""
    figs = []
    real = figures._save

    def keep(fig, stem, fmt, dpi=figures.DPI):
        fig.canvas.draw()
        figs.append((fig, fig.canvas.get_renderer()))  # before the figure is closed
        return real(fig, stem, fmt, dpi)

    monkeypatch.setattr(figures, "_save", keep)
    return figs


def _overlaps(ax, renderer) -> list[tuple[str, str]]:
    labels = [t for t in ax.get_xticklabels(minor=False) + ax.get_xticklabels(minor=True) if t.get_text()]
    labels = [t for t in labels if t.get_visible()]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in labels]
    return [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if ba.overlaps(bb)]


def test_slices_log_axis_labels_do_not_overlap(monkeypatch, tmp_path):
    figs = _figures(monkeypatch)
    assert figures.plot_slices(_res(14), str(tmp_path / "s"), "png")
    fig, renderer = figs[-1]
    axes = [ax for ax in fig.axes if ax.get_xlabel()]
    log_axes = [ax for ax in axes if ax.get_xscale() == "log"]
    assert len(log_axes) == 3  # narrow, wide, width
    for ax in log_axes:
        texts = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert 2 <= len(texts) <= 4, texts  # labelled, but only a few
        assert _overlaps(ax, renderer) == [], ax.get_xlabel()


def test_importance_says_how_many_trials_and_refuses_too_few(monkeypatch, tmp_path, capsys):
    figs = _figures(monkeypatch)
    few = _res(D.MIN_IMPORTANCE_TRIALS - 1)
    capsys.readouterr()
    assert figures.plot_importance(few, str(tmp_path / "few"), "png") == []
    err = capsys.readouterr().err
    assert (
        f"rest on {D.MIN_IMPORTANCE_TRIALS - 1} COMPLETE trial" in err and f"at least {D.MIN_IMPORTANCE_TRIALS}" in err
    )
    enough = _res(D.MIN_IMPORTANCE_TRIALS)
    assert figures.plot_importance(enough, str(tmp_path / "ok"), "png")
    title = figs[-1][0].axes[0].get_title()
    assert f"from {D.MIN_IMPORTANCE_TRIALS} COMPLETE trials" in title and "indicative" in title
