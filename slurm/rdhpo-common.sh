# The body of slurm/rdhpo.sbatch, slurm/rdhpo-multinode.sbatch and slurm/rdhpo-python.sbatch,
# sourced with the script's arguments: CONFIG [rdhpo run args], or, when the job script sets
# RDHPO_KIND=python, SCRIPT.py [script args] (a Python-API script, run under the same launcher).
# Not a job script itself.
# shellcheck shell=bash
# RDHPO_EARLY_STOP: a signal that came while the job script was still finding this file.

# ---- signals ----
# Signals: SLURM's warning (--signal=B:USR1@120) and `scancel --signal=USR1 --batch` reach this
# shell only. Forward them to the supervisor (`rdhpo supervise`), which passes SIGUSR1 on to the
# launcher and so to every rank; rank 0 then stops the study cleanly and exits 3, and this script
# requeues the job.
# SIGTERM (plain scancel, time limit, preemption) is forwarded as SIGUSR1 too, so rank 0 closes
# the results cleanly, but the job is then NOT requeued by this script (a user's scancel must
# end the job). It is not forwarded as SIGTERM: a SIGTERM sent to mpirun inside an allocation
# makes mpirun exit at once and leaves its ranks running.
# The traps come first: SIGUSR1's default action would kill this shell (the job then FAILS).
# Every wait is bounded by the supervisor: ranks still running RDHPO_STOP_GRACE seconds (default
# 90, less than the 120 s warning) after the stop request are killed (exit 3, requeued); so are
# ranks left running after the study ended, and a job whose start-up or coordinator hangs (see
# docs/reliability.md, "The job always ends").
CHILD=""
GOT_TERM=${RDHPO_EARLY_TERM:-0}
STOP_REQUESTED=${RDHPO_EARLY_STOP:-0}
# shellcheck disable=SC2317  # called from the traps
forward() {
    if [ "$1" = TERM ]; then GOT_TERM=1; fi
    if [ -n "$CHILD" ]; then
        echo "[rdhpo.sbatch] got SIG$1 at $(date +%T): asking rank 0 to stop (SIGUSR1 to the launcher)"
        kill -USR1 "$CHILD" 2>/dev/null
    else
        echo "[rdhpo.sbatch] got SIG$1 at $(date +%T), before the launch: not starting the study"
    fi
    STOP_REQUESTED=1
}
trap 'forward USR1' USR1
trap 'forward TERM' TERM

# ---- site setup: module load lines here ----
# module load openmpi/5.0      # an Open MPI 5 with ULFM lets rdhpo survive lost ranks
# module load cuda/12

# ---- virtual environment ----
RDHPO_VENV=${RDHPO_VENV:-${SLURM_SUBMIT_DIR:-$PWD}/.venv}
if [ -f "$RDHPO_VENV/bin/activate" ]; then
    # shellcheck disable=SC1091
    source "$RDHPO_VENV/bin/activate"
fi

# ---- checks ----
KIND=${RDHPO_KIND:-config}
if [ "$KIND" = python ]; then
    WHAT="Python script"
    USAGE="sbatch slurm/rdhpo-python.sbatch SCRIPT.py [script args]"
else
    WHAT="config file"
    USAGE="sbatch slurm/rdhpo.sbatch CONFIG.yaml [rdhpo run args]"
fi
if [ $# -lt 1 ] || [ -z "$1" ]; then
    echo "rdhpo.sbatch: error: missing the study ${WHAT% file}; usage: $USAGE" >&2
    exit 2
fi
CONFIG=$1
shift
if [ ! -f "$CONFIG" ]; then
    echo "rdhpo.sbatch: error: $WHAT '$CONFIG' does not exist (working directory $PWD)" >&2
    exit 2
fi

# ---- launcher: mpirun with ULFM when the MPI library has it, else srun ----
# RDHPO_LAUNCHER=auto|mpirun|srun  (default auto); RDHPO_MPIRUN_ARGS / RDHPO_SRUN_ARGS: extra args.
NTASKS=${SLURM_NTASKS:-${SLURM_NPROCS:-}}
if [ -z "$NTASKS" ] && [ -n "${SLURM_NTASKS_PER_NODE:-}" ] && [ -n "${SLURM_JOB_NUM_NODES:-}" ]; then
    PER_NODE=${SLURM_NTASKS_PER_NODE%%(*}     # "4" or "4(x2)"
    NTASKS=$(( PER_NODE * SLURM_JOB_NUM_NODES ))
fi
NTASKS=${NTASKS:-4}
LAUNCHER=${RDHPO_LAUNCHER:-auto}
ulfm_available() {
    command -v mpirun >/dev/null 2>&1 || return 1
    timeout 30 mpirun --version 2>/dev/null | grep -q "Open MPI" || return 1
    local info
    info=$(dirname "$(command -v mpirun)")/ompi_info
    [ -x "$info" ] || info=$(command -v ompi_info) || return 1
    timeout 30 "$info" 2>/dev/null | grep -q "FT MPI support: yes"
}
if [ "$LAUNCHER" = auto ]; then
    if ulfm_available; then LAUNCHER=mpirun; else LAUNCHER=srun; fi
fi

allocated_cpus() {  # total CPUs of the allocation, from SLURM_JOB_CPUS_PER_NODE ("2(x3),1")
    local total=0 item n m
    for item in $(echo "${SLURM_JOB_CPUS_PER_NODE:-}" | tr ',' ' '); do
        n=${item%%(*}
        m=1
        case "$item" in *"(x"*) m=${item##*(x}; m=${m%)} ;; esac
        total=$(( total + n * m ))
    done
    echo "$total"
}

case "$LAUNCHER" in
    mpirun)
        if [ "$(id -u)" = 0 ]; then   # test clusters run as root; Open MPI refuses without these
            export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
        fi
        LAUNCH=(mpirun -n "$NTASKS")
        if timeout 30 mpirun --with-ft ulfm --version >/dev/null 2>&1; then
            LAUNCH+=(--with-ft ulfm)
        fi
        # more tasks than allocated CPUs (sbatch --overcommit): mpirun would refuse to map them
        CPUS=$(allocated_cpus)
        if [ "${CPUS:-0}" -gt 0 ] && [ "$NTASKS" -gt "$CPUS" ]; then
            LAUNCH+=(--oversubscribe)
        fi
        # shellcheck disable=SC2206
        LAUNCH+=(${RDHPO_MPIRUN_ARGS:-})
        ;;
    srun)
        # shellcheck disable=SC2206
        LAUNCH=(srun -n "$NTASKS" ${RDHPO_SRUN_ARGS:-})
        ;;
    *)
        echo "rdhpo.sbatch: error: RDHPO_LAUNCHER must be auto, mpirun or srun, got '$LAUNCHER'" >&2
        exit 2
        ;;
esac

# ---- the study ----
# RDHPO_PYTHON_ENTRY is a testing hook: the test suite puts a stand-in program here.
PYTHON=$(command -v python || command -v python3)
if [ -z "$PYTHON" ] || ! "$PYTHON" -c "import rdhpo_hpc" 2>/dev/null; then
    echo "rdhpo.sbatch: error: no python with rdhpo_hpc found (RDHPO_VENV=$RDHPO_VENV does not exist?)" >&2
    exit 2
fi
if [ "$KIND" = python ]; then
    # rd.optimize under RDHPO_REQUEUEABLE=1 continues an existing results file (unless the script
    # passes resume= or overwrite=) and exits with the study's code when it stopped resumably
    export RDHPO_REQUEUEABLE=1
    CMD=("${LAUNCH[@]}" "$PYTHON" "$CONFIG" "$@")
else
    # shellcheck disable=SC2206
    ENTRY=(${RDHPO_PYTHON_ENTRY:-$PYTHON -m rdhpo_hpc})
    RESUME=(--resume-if-exists)    # a requeued (or resubmitted) job continues its results file
    for a in "$@"; do
        case "$a" in --resume|--overwrite) RESUME=() ;; esac
    done
    CMD=("${LAUNCH[@]}" "${ENTRY[@]}" run "$CONFIG" "${RESUME[@]}" "$@")
fi

echo "[rdhpo.sbatch] job ${SLURM_JOB_ID:-?} restart ${SLURM_RESTART_COUNT:-0} on ${SLURM_JOB_NODELIST:-$(hostname)}, $NTASKS tasks, launcher $LAUNCHER"
echo "[rdhpo.sbatch] launch: $(printf '%q ' "${CMD[@]}")"

if [ "$STOP_REQUESTED" = 1 ]; then
    RC=3    # the warning came before the launch: as if the study had stopped at once
else
    # the supervisor runs the launcher and ends the job when the study has ended, hung or never
    # started, whatever MPI does; its exit code is the study's (rdhpo_hpc/exitcodes.py)
    "$PYTHON" -m rdhpo_hpc supervise -- "${CMD[@]}" &
    CHILD=$!
    # `wait` returns early (status > 128) when a trapped signal arrives: wait again until the
    # supervisor has really exited.
    while :; do
        wait "$CHILD"
        RC=$?
        if [ "$RC" -gt 128 ] && kill -0 "$CHILD" 2>/dev/null; then continue; fi
        break
    done
    echo "[rdhpo.sbatch] launcher exited with $RC at $(date +%T)"
fi

# 3 stopped on request, 5 start-up failed, 6 study not finished (a node or rank 0 lost): all
# resumable from the results file, so the job is requeued; 0 done, 1 failed, 2 bad input: not.
case "$RC" in
    3|5|6)
        MAX=${RDHPO_MAX_REQUEUES:-20}
        case "$RC" in
            3) WHY="study stopped early" ;;
            5) WHY="start-up failed (a rank died or hung before the study began)" ;;
            *) WHY="study not finished (a node, link or the coordinator was lost)" ;;
        esac
        if [ "$GOT_TERM" = 1 ]; then
            echo "[rdhpo.sbatch] stopped by SIGTERM (scancel, time limit or preemption): not requeued; resubmit the same command to resume"
            exit "$RC"
        fi
        if [ -z "${SLURM_JOB_ID:-}" ]; then
            echo "[rdhpo.sbatch] $WHY; not in a SLURM job, so not requeued: rerun to resume"
            exit "$RC"
        fi
        if [ "${SLURM_RESTART_COUNT:-0}" -ge "$MAX" ]; then
            echo "[rdhpo.sbatch] $WHY, but already requeued $MAX times (RDHPO_MAX_REQUEUES): not requeued" >&2
            exit "$RC"
        fi
        echo "[rdhpo.sbatch] $WHY: requeueing job $SLURM_JOB_ID (it resumes from the results file)"
        # SLURM ends this script as soon as the requeue is accepted: nothing below runs then.
        if scontrol requeue "$SLURM_JOB_ID"; then
            exit 0
        fi
        echo "[rdhpo.sbatch] scontrol requeue failed: resubmit the same command to resume" >&2
        exit "$RC"
        ;;
esac
exit "$RC"
