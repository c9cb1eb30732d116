"""Command line: ``rdhpo run CONFIG``, ``rdhpo show RESULTS.h5 [--trials]``, ``rdhpo export RESULTS.h5
--csv OUT``, ``rdhpo plot RESULTS.h5``, ``rdhpo --version``."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import TYPE_CHECKING, Optional, Sequence

from .errors import ConfigError
from .exitcodes import ExitCode

if TYPE_CHECKING:
    from .config import StudyConfig


STATES = ("COMPLETE", "PRUNED", "FAILED", "LOST")


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="rdhpo", description="Reliable distributed hyper-parameter optimization.")
    p.add_argument("--version", action="version", version=f"rdhpo {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a study from a YAML config (under mpirun: rank 0 coordinates)")
    run.add_argument("config", help="study YAML file")
    run.add_argument("--output", help="results file (overrides the config's 'output')")
    run.add_argument("--resume", action="store_true", help="continue the study in the results file")
    run.add_argument(
        "--resume-if-exists",
        action="store_true",
        help="resume when the results file exists (used by the SLURM script on requeue)",
    )
    run.add_argument("--overwrite", action="store_true", help="replace an existing results file")
    run.add_argument("--max-trials", type=int, help="override budget.max_trials")
    run.add_argument("--workers", type=int, default=1, help="worker threads when run without mpirun (default 1)")
    launch = sub.add_parser(
        "launch",
        help="run a study under mpirun with the supervisor that always ends "
        "the job (one machine; on SLURM use slurm/rdhpo.sbatch)",
    )
    launch.add_argument("-n", "--np", type=int, default=4, help="MPI ranks: 1 coordinator + N-1 workers (default 4)")
    launch.add_argument(
        "run_args", nargs=argparse.REMAINDER, metavar="CONFIG [run options]", help="what `rdhpo run` takes"
    )
    supervise = sub.add_parser(
        "supervise",
        help="run a launcher command (mpirun/srun ... rdhpo run CONFIG) "
        "and end the job when the study ended, hung or never started",
    )
    supervise.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- LAUNCHER ...")
    show = sub.add_parser("show", help="summarise a results file")
    show.add_argument("results")
    show.add_argument("--by", default=None, help="also group by this categorical (e.g. model)")
    show.add_argument(
        "--trials", action="store_true", help="list the trials (state, value, rank, duration, params, error)"
    )
    show.add_argument(
        "--state", type=str.upper, choices=STATES, help="list only the trials in this state (implies --trials)"
    )
    export = sub.add_parser("export", help="write a results file's trials as a table (CSV or Parquet; needs pandas)")
    export.add_argument("results")
    to = export.add_mutually_exclusive_group(required=True)
    to.add_argument("--csv", metavar="OUT", help="write CSV to OUT")
    to.add_argument("--parquet", metavar="OUT", help="write Parquet to OUT (needs pyarrow)")
    export.add_argument("--attempts", action="store_true", help="one row per attempt (LOST ones too), not per trial")
    export.add_argument("--overwrite", action="store_true", help="replace OUT when it exists")
    plot = sub.add_parser("plot", help="render the analysis plots of a results file")
    plot.add_argument("results", nargs="+")
    plot.add_argument("--out", default="plots", help="output directory (default: plots)")
    plot.add_argument("--format", default="png", choices=["png", "pdf", "svg"])
    watch = sub.add_parser("watch", help="live view of a running (or finished, or crashed) study, from its journal")
    watch.add_argument("results", help="results file (or its .journal)")
    watch.add_argument("--once", action="store_true", help="print one snapshot and exit")
    watch.add_argument(
        "--follow", action="store_true", help="stay open after the study ended (default: exit with the last screen)"
    )
    watch.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (default 1)")
    watch.add_argument("--plain", action="store_true", help="plain lines even in a terminal")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command in ("launch", "supervise"):
        return _supervise(args)
    if args.command == "show":
        return _show(args)
    if args.command == "export":
        return _export(args)
    if args.command == "watch":
        from .watch.app import command

        return command(args)
    return _plot(args)


def _run(args: argparse.Namespace) -> int:
    from .comm.mpi import launched_under_mpi
    from .launch import bind_signals, exit_process, has_records, install_stop_signals, run_inprocess, run_mpi

    def make_cfg() -> "StudyConfig":
        return run_config(args)

    def resume_flag(cfg_output: str) -> bool:
        return args.resume or (args.resume_if_exists and has_records(cfg_output))

    install_stop_signals()
    if launched_under_mpi():
        from .comm.mpi import MPITransport
        from .launch import guard_startup

        guard_startup(float(os.environ.get("RDHPO_STARTUP_TIMEOUT") or 330))
        transport = MPITransport()
        try:
            outcome = run_mpi(make_cfg, transport, resume=False, overwrite=args.overwrite, resume_rule=resume_flag)
        except BaseException:  # a bug, not bad input: die so that ULFM sees it (sys.exit would hang peers)
            import signal
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
            raise
        if outcome.result is not None:
            _print_summary(outcome.result)
            _print_resume_hint(args, outcome.exit_code, transport.size)
        exit_process(outcome.exit_code, clean_finalize=outcome.finalize and outcome.exit_code == 0)
        return outcome.exit_code
    try:
        cfg = make_cfg()
        assert cfg.output is not None  # run_config always sets it
        from .launch import validate_for_run

        validate_for_run(cfg)
        outcome = run_inprocess(
            cfg,
            workers=max(args.workers, 1),
            resume=resume_flag(cfg.output),
            overwrite=args.overwrite,
            on_loop=bind_signals,
        )
    except ConfigError as exc:
        print(f"rdhpo: error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    if outcome.result is not None:
        _print_summary(outcome.result)
        _print_resume_hint(args, outcome.exit_code, None)
    return outcome.exit_code


def _print_resume_hint(args: argparse.Namespace, code: int, ranks: Optional[int]) -> None:
    """After a stop that ``--resume`` continues (exit 3, 5, 6): the exact command that does it."""
    from .exitcodes import RESUMABLE

    if code not in RESUMABLE:
        return
    rest = [args.config] + (["--output", args.output] if args.output else []) + ["--resume"]
    if args.max_trials is not None:
        rest += ["--max-trials", str(args.max_trials)]
    cmd = " ".join(
        shlex.quote(w) for w in (["rdhpo", "launch", "-n", str(ranks)] if ranks else ["rdhpo", "run"]) + rest
    )
    note = "; under SLURM the job script requeues it and resumes by itself" if os.environ.get("SLURM_JOB_ID") else ""
    print(f"[rdhpo] to continue this study: {cmd}{note}", flush=True)


def run_config(args: argparse.Namespace) -> "StudyConfig":
    """The study config of ``rdhpo run`` arguments: the YAML with the command line's overrides."""
    from .config import from_yaml

    cfg = from_yaml(args.config, {})
    if args.output:
        if args.output.endswith(("/", os.sep)):
            raise ConfigError(f"--output must be a results file path, not a directory, got {args.output!r}")
        cfg.output = os.path.abspath(args.output)
    if args.max_trials is not None:
        if args.max_trials < 1:
            raise ConfigError(f"--max-trials must be >= 1, got {args.max_trials}")
        cfg.max_trials = args.max_trials
    if cfg.output is None:
        cfg.output = os.path.abspath(os.path.join("results", f"{cfg.name}.h5"))
    return cfg


def resolve_run_args(cmd: Sequence[str]) -> Optional["StudyConfig"]:
    """The config of the ``run CONFIG ...`` inside a launcher command line (for the supervisor)."""
    for i, word in enumerate(cmd[:-1]):
        if word == "run" and os.path.isfile(cmd[i + 1]):
            args, _ = _parser().parse_known_args(list(cmd[i:]))
            return run_config(args)
    return None


def _supervise(args: argparse.Namespace) -> int:
    from .supervise import mpirun_command, supervise

    if args.command == "supervise":
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not cmd:
            print(
                "rdhpo: error: supervise needs a command: rdhpo supervise -- mpirun ... rdhpo run CONFIG",
                file=sys.stderr,
            )
            return ExitCode.CONFIG
        return supervise(cmd)
    if args.np < 2:
        print(
            f"rdhpo: error: launch needs -n >= 2 (a coordinator and a worker), got {args.np}; "
            f"`rdhpo run CONFIG` runs a study in one process",
            file=sys.stderr,
        )
        return ExitCode.CONFIG
    if not args.run_args or not os.path.isfile(args.run_args[0]):
        print(
            f"rdhpo: error: launch needs a config file: rdhpo launch -n 4 CONFIG.yaml, got "
            f"{args.run_args[0] if args.run_args else 'nothing'!r}",
            file=sys.stderr,
        )
        return ExitCode.CONFIG
    if os.geteuid() == 0:  # Open MPI refuses root without these (containers, test machines)
        os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    try:
        cmd = mpirun_command(args.np, args.run_args)
    except FileNotFoundError as exc:
        print(f"rdhpo: error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    return supervise(cmd)


def _print_summary(res) -> None:
    from .results import summary_lines

    print(
        "\n".join(
            ["[rdhpo] study finished" if res.finished else "[rdhpo] study stopped"]
            + ["  " + line for line in summary_lines(res)]
            + ([f"  results: {res.path}"] if res.path else [])
        ),
        flush=True,
    )


def _show(args: argparse.Namespace) -> int:
    from .api import load_results
    from .results import best_lines, error_lines, family_table, summary_lines, trial_lines

    try:
        res = load_results(args.results)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"rdhpo: error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    print(
        f"{args.results}: study {res.study.get('name', '?')!r}, optimizer {res.study.get('optimizer')}, {_status(res)}"
    )
    for line in summary_lines(res) + best_lines(res) + error_lines(res):
        print("  " + line)
    if args.trials or args.state:
        for line in trial_lines(res, args.state):
            print("  " + line)
    key = args.by or ("model" if any("model" in t.params for t in res.trials) else None)
    if key:
        print(f"  per {key}:")
        for fam, row in sorted(family_table(res, key).items(), key=lambda kv: str(kv[0])):
            best = "-" if row["best_value"] is None else f"{row['best_value']:.5g}"
            print(
                f"    {fam!s:>19}: {row['trials']:4d} trials, compute {row['compute_s']:8.1f}s, best {best}"
                f"  {row['best_params'] or ''}"
            )
    return 0


def _status(res) -> str:
    if res.finished:
        return "finished"
    if res.end is not None:
        code = res.end.get("exit_code")
        return f"stopped ({res.end.get('end_status')}{'' if code is None else f', exit code {code}'})"
    return "not finished (running or crashed)"


def _export(args: argparse.Namespace) -> int:
    from .api import load_results
    from .frame import export

    out, fmt = (args.csv, "csv") if args.csv else (args.parquet, "parquet")
    try:
        res = load_results(args.results)
        n = export(res, out, fmt, attempts=args.attempts, overwrite=args.overwrite)
    except (ConfigError, FileNotFoundError, ValueError, OSError) as exc:
        print(f"rdhpo: error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    print(f"{out}: {n} {'attempts' if args.attempts else 'trials'}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from .plots import plot_all  # the only matplotlib user, imported lazily

    try:
        written = plot_all(args.results, args.out, fmt=args.format)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"rdhpo: error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    for p in written:
        print(p)
    if not written:
        print("rdhpo: nothing to plot (no finished trials yet)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
