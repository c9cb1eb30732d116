"""Every command and snippet in README.md and docs/*.md runs as written.

The fenced blocks tagged ``bash``, ``python`` or ``yaml`` are extracted and run in one working
directory (a copy of ``configs/``), README first (its quick start makes ``results/quickstart.h5``,
which the other pages read), then each page in order:

* ``bash``: each line is one command (comments stripped), run with ``bash -c`` and the package's
  virtualenv first on PATH, as after ``. .venv/bin/activate``; it must exit 0.  A command that
  runs until the user quits (``rdhpo watch`` without ``--once``, on a study that is still open,
  or with ``--follow``) must still be running after a few seconds and have printed the study.
* ``python``: run as a script.  A page's fragment that uses ``objective`` / ``space`` without
  defining them runs after the README's API example, which defines them (the page says so).
* ``yaml``: a whole study config (it has ``objective``) is written to a file and run with
  ``rdhpo run`` (the README's under ``mpirun -n 4``, as the README runs one); a fragment
  (``optimizer: ...``, ``faults: ...``) is merged into the README's YAML study and validated as
  ``rdhpo run`` validates a config before any work.

A block that cannot run here says why in an HTML comment on the line before it:
``<!-- not run by the tests: REASON -->`` (a cluster's module system, a 30-minute benchmark).
Such blocks are listed in the test output; there may be at most ``MAX_NOT_RUN`` of them.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
import yaml

from mpi_helpers import REPO, mpi_env, mpirun_path

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "slurm" / "README.md"]
BLOCK = re.compile(
    r"(?:<!-- not run by the tests: (?P<why>[^>]*?) -->\n)?^```(?P<lang>\w*)[^\n]*\n(?P<body>.*?)^```", re.M | re.S
)
RUN = ("bash", "python", "yaml")
MAX_NOT_RUN = 6
LONG_RUNNING = re.compile(r"^rdhpo watch (?!.*--once)")


def blocks(page: Path):
    text = page.read_text()
    for m in BLOCK.finditer(text):
        if m.group("lang") in RUN:
            line = text.count("\n", 0, m.start("body")) + 1
            yield f"{page.relative_to(REPO)}:{line}", m.group("lang"), m.group("body"), m.group("why")


ALL = [b for page in PAGES if page.exists() for b in blocks(page)]


def _env(workdir: Path) -> dict:
    env = mpi_env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}"
    env["MPLBACKEND"] = "Agg"
    env.pop("RDHPO_SUPERVISED", None)
    return env


def _start(cmd, workdir: Path) -> subprocess.Popen:
    """Start ``cmd`` in its own session (so that its whole group can be killed), output captured."""
    return subprocess.Popen(
        cmd,
        cwd=workdir,
        env=_env(workdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _run(cmd, workdir: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run to the end; on timeout the whole group is SIGKILLed and the test fails."""
    p = _start(cmd, workdir)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        pytest.fail(f"{cmd!r} still running after {timeout} s:\n{out[-3000:]}")
    return subprocess.CompletedProcess(cmd, p.returncode, out, "")


def _run_until_quit(cmd: str, workdir: Path, seconds: float = 6.0) -> str:
    """A command that runs until the user quits: it must still run after ``seconds`` and have
    printed something; then its group is killed (as Ctrl-C would end it)."""
    p = _start(["bash", "-c", cmd], workdir)
    deadline = time.monotonic() + seconds
    while p.poll() is None and time.monotonic() < deadline:  # a finished study: it may end by itself
        time.sleep(0.2)
    alive = p.poll() is None
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:  # ended by itself, and so did its children
        pass
    out, _ = p.communicate(timeout=30)
    assert alive or p.returncode == 0, f"{cmd!r} exited {p.returncode}:\n{out[-3000:]}"
    assert out.strip(), f"{cmd!r} printed nothing"
    return out


def _commands(body: str):
    for raw in body.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line:
            yield line


@pytest.fixture
def workdir(tmp_path, mpirun):
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    return tmp_path


def _prelude() -> str:
    """The README's API example: the ``objective`` and ``space`` other pages' fragments use."""
    for where, lang, body, _ in ALL:
        if where.startswith("README.md") and lang == "python" and "def objective" in body:
            return body
    raise AssertionError("README.md has no Python example that defines objective and space")


def _readme_yaml() -> str:
    for where, lang, body, _ in ALL:
        if where.startswith("README.md") and lang == "yaml":
            return body
    raise AssertionError("README.md has no YAML study")


def check_quickstart(proc: subprocess.CompletedProcess, out: Path) -> None:
    """The quick start as a user runs it (README): 24 trained trials, each once, on every worker."""
    assert "[rdhpo] study finished" in proc.stdout, proc.stdout[-3000:]
    assert "trials: 24  COMPLETE=24" in proc.stdout, proc.stdout[-3000:]
    assert f"results: {out}" in proc.stdout
    best = re.search(r"best value: ([0-9.e+-]+)", proc.stdout)
    assert best and 0 < float(best.group(1)) < 1.0, proc.stdout[-3000:]  # digits val_loss, trained
    assert "Traceback" not in proc.stdout, proc.stdout[-3000:]
    with h5py.File(out, "r") as f:
        assert sorted(f["trials"]["trial_id"][:].tolist()) == list(range(24))  # every trial once
        assert {s.decode() for s in f["trials"]["state"][:]} == {"COMPLETE"}
        assert all(math.isfinite(v) and v > 0 for v in f["trials"]["value"][:])
        assert set(f["trials"]["rank"][:].tolist()) == {1, 2, 3}  # each worker rank did work
        assert sorted(f["workers"]["rank"][:].tolist()) == [1, 2, 3]
        assert f["study"].attrs["end_status"] == "complete"
        assert "quickstart" in f["study"].attrs["config"]
        assert f["reports"]["trial_id"].shape[0] == 24 * 12  # one report per epoch


def run_block(where: str, lang: str, body: str, workdir: Path) -> None:
    if lang == "bash":
        for cmd in _commands(body):
            if LONG_RUNNING.match(cmd):
                _run_until_quit(cmd, workdir)
                continue
            proc = _run(["bash", "-c", cmd], workdir)
            assert proc.returncode == 0, f"{where}: {cmd!r} exited {proc.returncode}:\n{proc.stdout[-4000:]}"
            if cmd.endswith("rdhpo run configs/quickstart.yaml"):
                check_quickstart(proc, workdir / "results" / "quickstart.h5")
            if cmd.startswith("rdhpo show results/quickstart.h5") and cmd.endswith("quickstart.h5"):
                assert "finished" in proc.stdout and "trials: 24" in proc.stdout and "best value" in proc.stdout
                for r in (1, 2, 3):
                    assert f"rank {r}:" in proc.stdout
    elif lang == "python":
        code = body
        if re.search(r"\b(objective|space)\b", body) and "def objective" not in body:
            code = _prelude() + "\n" + body
        script = workdir / "snippet.py"
        script.write_text(code)
        proc = _run([sys.executable, str(script)], workdir)
        assert proc.returncode == 0, f"{where}: the snippet failed:\n{code}\n---\n{proc.stdout[-4000:]}"
    elif "objective" not in yaml.safe_load(body):
        from rdhpo_hpc.config import from_dict

        study = {**yaml.safe_load(_readme_yaml()), **yaml.safe_load(body)}
        from_dict(study, base_dir=str(workdir))
    else:
        cfg = workdir / "snippet.yaml"
        cfg.write_text(body)
        cmd = ["rdhpo", "run", str(cfg), "--overwrite"]
        if where.startswith("README.md"):  # as the README runs a config; the other pages' ones serially
            cmd = [mpirun_path() or "mpirun", "-n", "4", *cmd]
        proc = _run(cmd, workdir)
        assert proc.returncode == 0, f"{where}: the config failed:\n{body}\n---\n{proc.stdout[-4000:]}"
        assert "study finished" in proc.stdout, proc.stdout[-3000:]


@pytest.mark.system
@pytest.mark.timeout(900)
def test_every_block_of_the_docs_runs_as_written(workdir):
    not_run = [(where, why) for where, _, _, why in ALL if why]
    assert len(not_run) <= MAX_NOT_RUN, not_run
    ran = 0
    for where, lang, body, why in ALL:  # README first: its quick start makes the results others read
        if why:
            print(f"not run: {where}: {why}")
            continue
        t0 = time.monotonic()
        run_block(where, lang, body, workdir)
        print(f"ran {where} ({lang}) in {time.monotonic() - t0:.1f} s")
        ran += 1
    assert ran >= 10, f"only {ran} blocks ran"
    assert any(w.startswith("README.md") and "rdhpo run configs/quickstart.yaml" in b for w, _, b, _ in ALL)
    assert (workdir / "results" / "quickstart.h5").exists()
