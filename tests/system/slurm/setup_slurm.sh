#!/usr/bin/env bash
# Start a one-node SLURM test cluster on this machine (root, Debian 12, no systemd).
# Idempotent: a second run with the cluster up only checks it (about 1 s).
#
# MEASURED on the project's machine kind (Debian 12, 2 cores, root, no systemd; slurm-wlm 22.05.8,
# munge 0.5.15, Open MPI 5.0.11 wheel, 2026-11):
# Setup
#  - Fresh machine: apt-get update + install slurm-wlm munge (+ libpmix-dev) + start: 60-70 s
#    (update 15 s, slurm+munge 30 s, libpmix-dev 15 s, daemons 4 s). Already installed, daemons
#    down: about 4-5 s. Cluster up: 0.1-3 s (only checks). The package's postinst creates the
#    munge key; policy-rc.d (exit 101) stops apt from starting services: this script starts them.
#  - proctrack/cgroup works here (cgroup v1 freezer mounted) and is used: it also kills processes
#    re-parented to init at job end. proctrack/linuxproc loses those (seen: orphaned MPI ranks and
#    a batch script's children outliving their job). Fallback to linuxproc is automatic.
#  - `slurmd -C` gives the node line; RealMemory = 90 % of `free -m` (node not drained).
#  - Job start latency (sbatch -> first line of the script): 0.85-0.95 s; `srun` step ~0.1 s.
#  - libpmix.so (libpmix-dev) is needed by Slurm's mpi/pmix plugin; with it
#    `srun --mpi=pmix` starts the wheel's mpi4py ranks (4 ranks, allreduce ok), but the wheel's
#    PMIx prints harmless "Sorry! ... help-pmix-mca-base.txt" noise per rank.
#  - A job with more tasks than CPUs and no --overcommit is NOT rejected: it stays PENDING forever
#    (Reason=PartitionConfig). --ntasks-per-node above the CPU count is rejected even with
#    --overcommit. With --overcommit the allocation has 1 CPU (SLURM_CPUS_ON_NODE=1).
# Signals (batch script = the shell SLURM starts; mpirun runs inside the batch step)
#  - --signal=B:USR1@N reaches the batch shell only; observed at 7-21 s after start for
#    N = 40..100 s before the limit (early by up to ~9 s, late by up to ~4 s; the sbatch man page
#    allows up to 60 s early). --signal=USR1@N (no B:) signals only srun steps: nothing arrives when
#    the ranks were started by mpirun. A batch shell without a USR1 trap is killed -> job FAILED.
#  - scancel --signal=USR1 --batch: the batch shell only. --full: the shell and every descendant
#    (each gets it once directly; a forwarding trap then delivers it a second time). Without
#    --batch/--full: srun steps only.
#  - bash `wait` returns >128 when a trapped signal arrives: wait again while the child lives.
#  - mpirun (prterun) forwards SIGUSR1 to every rank. SIGTERM/SIGINT/SIGHUP sent to mpirun INSIDE an
#    allocation make it exit 1 at once and leave the ranks running (re-parented to init); outside
#    SLURM, or with PRTE_MCA_plm=^slurm, it forwards SIGTERM to the ranks. srun forwards SIGUSR1
#    to its tasks; SIGTERM to srun cancels the step (tasks SIGKILLed).
#  - Plain scancel and the time limit (cgroup proctrack): SIGTERM to the batch shell only, SIGKILL
#    to everything after KillWait (5 s here). Time limit enforced 20-25 s late (84 s for --time=1).
#    (With linuxproc the batch shell's child also got the time-limit SIGTERM.)
# Requeue
#  - `scontrol requeue $SLURM_JOB_ID` from inside the job: accepted, and the running batch script
#    is killed at once ("CANCELLED ... DUE TO JOB REQUEUE"): it must be the script's last action.
#    It is also accepted while a scancel'ed job is COMPLETING: the script must not requeue after
#    SIGTERM, or a user's scancel brings the job back.
#  - The requeued job keeps its id; EligibleTime = requeue + cred_expire + 1 s (11 s here with
#    AuthInfo=cred_expire=10; default 120 s); with sched_interval=2,bf_interval=1 it starts 11-13 s
#    after the requeue. SLURM_RESTART_COUNT is unset in the first run and 1 in the second;
#    scontrol shows Restarts=1. jobcomp/filetxt logs the requeue as JobState=PENDING.
#  - `#SBATCH --requeue` + JobRequeue=1 both work; --open-mode=append keeps both runs' output.
# Open MPI inside an allocation (as root: OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)
#  - `mpirun -n 4 --oversubscribe python -c 'mpi4py ...'` works (1.3 s); without --oversubscribe
#    under --overcommit it fails at once ("bind ... more cpus than are available", rc 213).
#  - `mpirun --with-ft ulfm` works: a SIGKILLed rank -> survivors get an error, Shrink -> size 3,
#    barrier ok, mpirun rc 0. `ompi_info` prints "FT MPI support: yes".
#  - Rank 0 exiting 3 -> mpirun (plain and --with-ft ulfm) and srun exit 3.
#  - mpirun puts every rank in its own process group (pgid tracking would lose them).
#
# Exit codes: 0 cluster up; 2 not root; 3 apt failed; 4 munge failed; 5 slurm daemons failed.
# Environment:
#   RDHPO_SLURM_CPUS   declare this many CPUs for the node instead of the real count
#                      (uses SlurmdParameters=config_overrides, so the node is not drained)
#   RDHPO_SLURM_FORCE_RESTART=1   restart the daemons even if they are up with this config
set -u -o pipefail

log() { echo "[setup_slurm] $*" >&2; }

SLURM_CONF=/etc/slurm/slurm.conf
CGROUP_CONF=/etc/slurm/cgroup.conf
LOG_DIR=/var/log/slurm
CTLD_LOG=$LOG_DIR/slurmctld.log
SLURMD_LOG=$LOG_DIR/slurmd.log
MARKER="# generated by rdhpo tests/system/slurm/setup_slurm.sh"
FALLBACK_FILE=/etc/slurm/rdhpo-proctrack-fallback

diagnostics() {
    log "---- diagnostics ----"
    pgrep -a -x 'munged|slurmctld|slurmd|slurmstepd' >&2 || true
    timeout 5 sinfo -N -l >&2 2>&1 || true
    timeout 5 sinfo -R >&2 2>&1 || true
    for f in "$CTLD_LOG" "$SLURMD_LOG" /var/log/munge/munged.log; do
        if [ -f "$f" ]; then log "tail $f"; tail -n 25 "$f" >&2; fi
    done
}

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (uid $(id -u))"; exit 2
fi

# one setup at a time (parallel test processes): a second caller waits, then finds the cluster up
exec 9>/run/rdhpo-setup-slurm.lock
if command -v flock >/dev/null 2>&1 && ! flock -w 280 9; then
    log "another setup_slurm.sh holds /run/rdhpo-setup-slurm.lock for more than 280 s"; exit 5
fi

# ---------------------------------------------------------------- install
export DEBIAN_FRONTEND=noninteractive
if ! command -v sbatch >/dev/null 2>&1 || ! command -v slurmctld >/dev/null 2>&1 \
        || ! command -v slurmd >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    t0=$(date +%s)
    log "installing slurm-wlm and munge"
    timeout 120 apt-get update -q >&2 || { log "apt-get update failed"; exit 3; }
    timeout 240 apt-get install -y -q -o DPkg::Lock::Timeout=60 --no-install-recommends slurm-wlm munge >&2 \
        || { log "apt-get install slurm-wlm munge failed"; exit 3; }
    # libpmix-dev provides the unversioned libpmix.so that Slurm's mpi/pmix plugin dlopens:
    # with it `srun --mpi=pmix` launches the Open MPI wheel's ranks. Optional.
    timeout 120 apt-get install -y -q -o DPkg::Lock::Timeout=60 --no-install-recommends libpmix-dev >&2 \
        || log "libpmix-dev not installed: srun --mpi=pmix will not work (mpirun does)"
    log "install took $(( $(date +%s) - t0 )) s"
fi

# ---------------------------------------------------------------- munge
install -d -o munge -g munge -m 0700 /etc/munge
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key --force >&2
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

pids_of() {  # live (non-zombie) processes with this exact name
    ps -eo pid=,stat=,comm= | awk -v n="$1" '$3 == n && $2 !~ /^Z/ {printf "%s ", $1}'
}

munge_ok() { timeout 5 munge -n 2>/dev/null | timeout 5 unmunge >/dev/null 2>&1; }

if ! munge_ok; then
    stale=$(pids_of munged)
    if [ -n "$stale" ]; then
        log "munged runs but does not answer: restarting it"
        # shellcheck disable=SC2086
        kill $stale 2>/dev/null; sleep 1
    fi
    rm -f /run/munge/munged.pid
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged >&2 9>&- || true
    ok=0
    for _ in $(seq 1 50); do
        if munge_ok; then ok=1; break; fi
        sleep 0.2
    done
    if [ $ok -ne 1 ]; then log "munged does not work"; diagnostics; exit 4; fi
fi

# ---------------------------------------------------------------- slurm.conf
HOST=$(hostname -s)
# Hardware as slurmd sees it, so the node is not drained for "low socket*core*thread count".
HW=$(slurmd -C 2>/dev/null | head -n 1)
hw() { echo "$HW" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
CPUS=$(hw CPUs); [ -n "$CPUS" ] || CPUS=$(nproc)
BOARDS=$(hw Boards); SOCKETS=$(hw SocketsPerBoard); CORES=$(hw CoresPerSocket); THREADS=$(hw ThreadsPerCore)
MEM_TOTAL=$(free -m | awk '/^Mem:/ {print $2}')
REALMEM=$(( MEM_TOTAL * 9 / 10 ))   # 10 % margin: the node must not report less than this
[ "$REALMEM" -ge 100 ] || REALMEM=100

if [ -n "${RDHPO_SLURM_CPUS:-}" ]; then
    # A virtual CPU count (e.g. 8 on a 2-core machine): jobs with more tasks than real
    # cores then need no --overcommit. config_overrides keeps the node from being drained.
    NODE_HW="CPUs=$RDHPO_SLURM_CPUS"
elif [ -n "$BOARDS" ] && [ -n "$SOCKETS" ] && [ -n "$CORES" ] && [ -n "$THREADS" ]; then
    NODE_HW="CPUs=$CPUS Boards=$BOARDS SocketsPerBoard=$SOCKETS CoresPerSocket=$CORES ThreadsPerCore=$THREADS"
else
    NODE_HW="CPUs=$CPUS"
fi

# Process tracking: proctrack/cgroup (cgroup v1 freezer, as on this machine kind) also kills
# processes that were re-parented to init (e.g. MPI ranks orphaned by a dying mpirun);
# proctrack/linuxproc loses those. Fall back to linuxproc when cgroup v1 is missing or
# slurmd will not start with it.
choose_proctrack() {
    if [ -n "${RDHPO_SLURM_PROCTRACK:-}" ]; then echo "$RDHPO_SLURM_PROCTRACK"; return; fi
    # an earlier run found that cgroup does not work here: do not retry (and restart) each time
    if [ -s "$FALLBACK_FILE" ]; then cat "$FALLBACK_FILE"; return; fi
    if [ -d /sys/fs/cgroup/freezer ] && grep -q ' /sys/fs/cgroup/freezer ' /proc/mounts; then
        echo cgroup
    else
        echo linuxproc
    fi
}

NEW_CONF=$(mktemp)
trap 'rm -f "$NEW_CONF"' EXIT

write_conf() {  # proctrack -> $NEW_CONF
    cat > "$NEW_CONF" <<CONF
$MARKER
ClusterName=rdhpo-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s)
AuthInfo=cred_expire=10
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$CTLD_LOG
SlurmdLogFile=$SLURMD_LOG
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/$1
# no CPU binding or memory limits: many ranks share the 2 cores
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# one line per job end and per requeue, kept after the record left slurmctld's memory
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
PropagateResourceLimits=NONE
SchedulerType=sched/backfill
# main loop every 2 s, backfill every 1 s: a requeued job starts soon after its BeginTime
SchedulerParameters=sched_interval=2,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
JobRequeue=1
ReturnToService=2
# finished jobs stay visible to scontrol/squeue for 300 s (no accounting database here)
MinJobAge=300
KillWait=5
OverTimeLimit=0
InactiveLimit=0
SlurmdTimeout=60
SlurmctldTimeout=60
MessageTimeout=10
NodeName=$HOST NodeAddr=127.0.0.1 $NODE_HW RealMemory=$REALMEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
}

install -d -m 0755 /etc/slurm "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd

install_conf() {  # returns 0 when the file changed
    if cmp -s "$NEW_CONF" "$SLURM_CONF"; then return 1; fi
    if [ -f "$SLURM_CONF" ] && ! grep -qF "$MARKER" "$SLURM_CONF"; then
        cp -p "$SLURM_CONF" "$SLURM_CONF.rdhpo-backup.$(date +%s)"
        log "backed up an existing $SLURM_CONF"
    fi
    install -m 0644 "$NEW_CONF" "$SLURM_CONF"
    log "wrote $SLURM_CONF ($(grep '^ProctrackType' "$SLURM_CONF"))"
    return 0
}

# cgroup.conf is read by proctrack/cgroup only. No constraints: cgroups only track processes.
NEW_CGROUP="$MARKER
CgroupPlugin=cgroup/v1
CgroupAutomount=yes
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no"
if [ "$(cat "$CGROUP_CONF" 2>/dev/null)" != "$NEW_CGROUP" ]; then
    if [ -f "$CGROUP_CONF" ] && ! grep -qF "$MARKER" "$CGROUP_CONF"; then
        cp -p "$CGROUP_CONF" "$CGROUP_CONF.rdhpo-backup.$(date +%s)"
    fi
    printf '%s\n' "$NEW_CGROUP" > "$CGROUP_CONF"
fi

# ---------------------------------------------------------------- daemons
running() { [ -n "$(pids_of "$1")" ]; }
node_state() { timeout 5 sinfo -h -n "$HOST" -o %T 2>/dev/null | head -n 1; }

stop_daemon() {  # name: SIGTERM the daemon's pids, bounded wait, then SIGKILL
    local name=$1 pids
    pids=$(pids_of "$name")
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    kill $pids 2>/dev/null
    for _ in $(seq 1 50); do running "$name" || return 0; sleep 0.2; done
    log "$name did not stop on SIGTERM: SIGKILL"
    # shellcheck disable=SC2046
    kill -KILL $(pids_of "$name") 2>/dev/null; sleep 0.5
}

start_daemons() {  # returns 0 when the node is usable
    stop_daemon slurmd
    stop_daemon slurmctld
    log "starting slurmctld and slurmd (state cleared)"
    # -c: forget jobs and node states of an earlier run; -i: ignore unreadable state.
    slurmctld -c -i >&2 9>&- || { log "slurmctld failed to start"; return 1; }
    local ok=0
    for _ in $(seq 1 50); do
        if timeout 5 scontrol ping 2>/dev/null | grep -q "UP"; then ok=1; break; fi
        sleep 0.2
    done
    [ $ok -eq 1 ] || { log "slurmctld does not answer"; return 1; }
    slurmd -c >&2 9>&- || { log "slurmd failed to start"; return 1; }
    sleep 0.5
    running slurmd || { log "slurmd exited right after start"; return 1; }
    return 0
}

wait_node() {  # bounded wait for the node to be usable; resume it once if down/drained
    local t0 state="" resumed=0
    t0=$(date +%s)
    while [ $(( $(date +%s) - t0 )) -lt 30 ]; do
        state=$(node_state)
        case "$state" in
            idle|mixed|allocated|completing) log "cluster up: node $HOST is $state ($NODE_HW, RealMemory=$REALMEM, $(grep '^ProctrackType' "$SLURM_CONF"))"; return 0 ;;
            down*|drain*|fail*|unknown*|*\*)
                if [ $resumed -eq 0 ] && [ $(( $(date +%s) - t0 )) -ge 3 ]; then
                    log "node $HOST is '$state': resuming it"
                    timeout 5 scontrol update nodename="$HOST" state=resume >&2 || true
                    resumed=1
                fi ;;
        esac
        sleep 0.5
    done
    log "node $HOST did not become idle within 30 s (state '$state')"
    return 1
}

PROCTRACK=$(choose_proctrack)
write_conf "$PROCTRACK"
changed=0
install_conf && changed=1
if [ "$changed" = 1 ] || [ "${RDHPO_SLURM_FORCE_RESTART:-0}" = 1 ] \
        || ! running slurmctld || ! running slurmd || ! running munged; then
    if start_daemons && wait_node; then exit 0; fi
    if [ "$PROCTRACK" != linuxproc ] && [ -z "${RDHPO_SLURM_PROCTRACK:-}" ]; then
        diagnostics
        log "retrying with ProctrackType=proctrack/linuxproc"
        write_conf linuxproc
        install_conf || true
        if start_daemons && wait_node; then echo linuxproc > "$FALLBACK_FILE"; exit 0; fi
    fi
    diagnostics; exit 5
fi
wait_node && exit 0
diagnostics; exit 5
