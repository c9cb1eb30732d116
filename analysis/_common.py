"""Shared argument handling of the analysis scripts (thin wrappers over rdhpo_hpc.plots)."""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(description: str, kinds: tuple, default_inputs: tuple = ()) -> int:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "results",
        nargs="*" if default_inputs else "+",
        default=list(default_inputs),
        help="results files (.h5, or the .h5.journal of a running/crashed study)"
        + (f"; default {' '.join(default_inputs)}" if default_inputs else ""),
    )
    p.add_argument("--out", default="plots", help="output directory (default: plots)")
    p.add_argument("--format", default="png", help="png, pdf, svg or a comma list (default: png)")
    a = p.parse_args()
    from rdhpo_hpc.plots import plot_all  # after parsing: --help stays fast

    try:
        written = plot_all(a.results, a.out, fmt=a.format, only=kinds)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for w in written:
        print(w)
    if not written:
        print("nothing to plot", file=sys.stderr)
    return 0
