"""Stand-in for ``python -m rdhpo_hpc`` used to test slurm/rdhpo.sbatch (RDHPO_PYTHON_ENTRY hook).

Called as ``standin_entry.py run CONFIG [args...]`` once per rank (under mpirun or srun; needs no
MPI).  Every rank appends one line per event to $STANDIN_LOG (``rank=R restart=N event=...``) and
prints progress.  Rank 0 runs $STANDIN_SECONDS (default 60) and exits 0; on SIGUSR1 or SIGTERM it
exits 3 ("stopped early by a signal, requeue me").  Other ranks log the signal and exit 0 (or, with
STANDIN_WORKERS_HANG=1 in the first run, hang until killed).  In a
requeued job (SLURM_RESTART_COUNT >= 1) every rank runs $STANDIN_SECONDS_AFTER_RESTART (default 1)
and exits 0.
"""

import os
import signal
import sys
import time

RANK = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("SLURM_PROCID", "0")))
RESTART = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
LOG = os.environ.get("STANDIN_LOG")
T0 = time.time()


def log(event: str) -> None:
    line = f"rank={RANK} restart={RESTART} t={time.time() - T0:.2f} event={event}"
    print(f"[standin] {line}", flush=True)
    if LOG:
        with open(LOG, "a") as f:
            f.write(line + "\n")


def on_signal(signum, frame):
    log(f"signal-{signal.Signals(signum).name}")
    if RANK == 0:
        log("exit-3")
        os._exit(3)
    if os.environ.get("STANDIN_WORKERS_HANG") == "1" and RESTART == 0:
        log("hang")  # a worker that never exits: the batch script's watchdog must act
        while True:
            time.sleep(1)
    os._exit(0)


def main() -> int:
    for sig in (signal.SIGUSR1, signal.SIGTERM):
        signal.signal(sig, on_signal)
    args = sys.argv[1:]
    log("start args=" + ",".join(args))
    if len(args) < 2 or args[0] != "run":
        log("bad-args")
        return 2
    seconds = float(os.environ.get("STANDIN_SECONDS", "60"))
    if RESTART >= 1:
        seconds = float(os.environ.get("STANDIN_SECONDS_AFTER_RESTART", "1"))
    end = time.time() + seconds
    next_progress = time.time()
    while time.time() < end:
        if time.time() >= next_progress:
            print(f"[standin] rank {RANK} progress t={time.time() - T0:.1f}", flush=True)
            next_progress += 2.0
        time.sleep(0.05)
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
