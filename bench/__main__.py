"""``python -m bench [--quick] [--only NAME ...]``: run every bench module, collect the results.

Every module ``bench/<name>.py`` (not ``common``, not ``_*``) is run as ``python -m bench.<name>
[--quick]`` in a subprocess with a timeout; each JSON line it prints to stdout
(``{"bench", "metric", "value", "unit", ...}``) goes to ``bench/out/results.jsonl``, and a
Markdown table of all of them to ``bench/out/results.md``.  Quick mode fits in 5 minutes, full in 30.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
# cheap system figures first, the long quality runs last (a module the time budget cuts is reported)
ORDER = [
    "scaling",
    "dispatch",
    "coordinator_cost",
    "reliability",
    "suggest_idle",
    "optimizer_latency",
    "quality",
    "multifidelity",
]
SKIP = {"common", "__init__", "__main__"}


def _is_bench(path: str) -> bool:
    """A bench module runs as a script; helpers (common.py, functions.py, ...) do not."""
    try:
        with open(path, encoding="utf-8") as fh:
            return "__main__" in fh.read()
    except OSError:
        return False


def discover() -> list[str]:
    found = {
        f[:-3]
        for f in os.listdir(HERE)
        if f.endswith(".py") and f[:-3] not in SKIP and not f.startswith("_") and _is_bench(os.path.join(HERE, f))
    }
    return [n for n in ORDER if n in found] + sorted(found - set(ORDER))


# Sizes the runner passes in quick mode, so that every module runs within the 5-minute budget (a
# smoke run of each: the quality figures need their own full commands, see docs/bench.md).
QUICK_ARGS = {
    "scaling": ["--quick", "--ranks", "2", "4", "16", "32"],
    "reliability": ["--quick", "--only", "crash", "cost"],
    "suggest_idle": ["--quick", "--optimizers", "bayes"],
    "optimizer_latency": ["--quick", "--reps", "2"],
    "quality": ["--quick", "--seeds", "1", "--part", "single"],
    "multifidelity": ["--quick", "--seeds", "1", "--cap", "27"],
    "chaos": ["--seeds", "2", "--json"],
    "simulate": ["--workers", "100", "--trials", "1000", "--json"],
}


# Full mode: sizes chosen to fit 30 minutes on 2 cores from per-module times measured one by one
# (a 2-minute soak instead of 10, 5 quality seeds, 2 multi-fidelity seeds); the headline runs of
# each module have their own commands in docs/bench.md.
FULL_ARGS = {
    "reliability": ["--soak-seconds", "120"],
    "quality": ["--seeds", "5"],
    "multifidelity": ["--seeds", "2", "--cap", "162"],  # the 10-seed, 540-epoch table: docs/schedulers.md
    "mf_goal": ["--seeds", "3"],  # the 10-seed tables: python -m bench.mf_goal (docs/schedulers.md)
    "pbt": ["--seeds", "2"],  # the 10-seed table: python -m bench.pbt (docs/bench.md)
    "chaos": ["--seeds", "10", "--json"],  # the 50-schedule runs have their own commands (docs/bench.md)
    "simulate": ["--workers", "1000", "--trials", "20000", "--json"],
}


def module_args(name: str, quick: bool) -> list[str]:
    return QUICK_ARGS.get(name, ["--quick"]) if quick else FULL_ARGS.get(name, [])


def run_module(name: str, quick: bool, timeout: float) -> tuple[int, float, list[dict], str]:
    cmd = [sys.executable, "-m", f"bench.{name}"] + module_args(name, quick)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t = time.monotonic()
    p = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)  # the module's own process group (mpirun and its ranks)
        out, err = p.communicate()
        rc = 124
    rows = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(r, dict) and "bench" in r and "metric" in r:
                rows.append(r)
    return rc, time.monotonic() - t, rows, err


_MAIN_KEYS = ("bench", "metric", "value", "unit", "module", "date", "machine", "quick")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def markdown(rows: list[dict], runs: list[dict], meta: dict) -> str:
    lines = [f"# Bench results ({'quick' if meta['quick'] else 'full'}) — {meta['date']}, {meta['machine']}", ""]
    lines += ["| module | exit | seconds | measurements |", "|---|---|---|---|"]
    lines += [f"| {r['module']} | {r['rc']} | {r['seconds']:.0f} | {r['n']} |" for r in runs]
    lines += ["", "| bench | metric | value | unit | details |", "|---|---|---|---|---|"]
    for r in rows:
        det = ", ".join(f"{k}={_fmt(v)}" for k, v in r.items() if k not in _MAIN_KEYS)
        lines.append(f"| {r['bench']} | {r['metric']} | {_fmt(r['value'])} | {r.get('unit', '')} | {det} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes; the whole run fits in 5 minutes")
    p.add_argument("--only", nargs="+", help="run only these modules")
    p.add_argument("--out", default=OUT, help="output directory (default bench/out)")
    p.add_argument(
        "--machine", default=os.environ.get("RDHPO_BENCH_MACHINE", f"{os.cpu_count()}-core {platform.machine()}")
    )
    a = p.parse_args(argv)
    total = 285.0 if a.quick else 1780.0
    per = 110.0 if a.quick else 900.0
    mods = [m for m in discover() if not a.only or m in a.only]
    os.makedirs(a.out, exist_ok=True)
    meta = {"date": datetime.date.today().isoformat(), "machine": a.machine, "quick": a.quick}
    start = time.monotonic()
    rows, runs = [], []
    jsonl = os.path.join(a.out, "results.jsonl")
    with open(jsonl, "w", encoding="utf-8") as fh:
        for m in mods:
            left = total - (time.monotonic() - start)
            if left < 10:
                runs.append({"module": m, "rc": "skipped (time)", "seconds": 0.0, "n": 0})
                continue
            print(f"[bench] {m} ...", file=sys.stderr, flush=True)
            rc, secs, got, err = run_module(m, a.quick, min(per, left))
            if rc != 0:
                print(f"[bench] {m} exited {rc}: {err.strip()[-800:]}", file=sys.stderr, flush=True)
            for r in got:
                r.setdefault("module", m)
                r.update({k: v for k, v in meta.items() if k not in r})
                fh.write(json.dumps(r) + "\n")
                print(json.dumps(r), flush=True)
            fh.flush()
            rows += got
            runs.append({"module": m, "rc": rc, "seconds": secs, "n": len(got)})
    with open(os.path.join(a.out, "results.md"), "w", encoding="utf-8") as fh:
        fh.write(markdown(rows, runs, meta))
    print(
        f"[bench] {len(rows)} measurements from {len(runs)} modules in {time.monotonic() - start:.0f}s -> {jsonl}",
        file=sys.stderr,
        flush=True,
    )
    return 0 if all(r["rc"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
