#!/usr/bin/env bash
# Install what the virtual cluster needs (Debian 12, root): slurm-wlm + munge (+ libpmix-dev),
# the same packages and apt steps as tests/system/slurm/setup_slurm.sh, and nothing else
# (ip, tc, unshare come with iproute2 / util-linux). Idempotent: does nothing when installed.
# Holds the same lock as setup_slurm.sh so two installs never race for dpkg.
# Exit codes: 0 ok; 2 not root; 3 apt failed.
set -u -o pipefail
log() { echo "[vcluster-install] $*" >&2; }
if [ "$(id -u)" -ne 0 ]; then log "must run as root (uid $(id -u))"; exit 2; fi
have_all() {
    for c in sbatch srun scontrol sinfo slurmctld slurmd munged munge unmunge ip tc unshare; do
        command -v "$c" >/dev/null 2>&1 || return 1
    done
}
have_all && exit 0
exec 9>/run/rdhpo-setup-slurm.lock
if command -v flock >/dev/null 2>&1 && ! flock -w 280 9; then
    log "another setup holds /run/rdhpo-setup-slurm.lock for more than 280 s"; exit 3
fi
have_all && exit 0
export DEBIAN_FRONTEND=noninteractive
t0=$(date +%s)
for c in ip tc unshare; do
    command -v "$c" >/dev/null 2>&1 || { log "$c missing (iproute2 / util-linux)"; exit 3; }
done
log "installing slurm-wlm and munge"
timeout 120 apt-get update -q >&2 || { log "apt-get update failed"; exit 3; }
timeout 240 apt-get install -y -q -o DPkg::Lock::Timeout=60 --no-install-recommends slurm-wlm munge >&2 \
    || { log "apt-get install slurm-wlm munge failed"; exit 3; }
timeout 120 apt-get install -y -q -o DPkg::Lock::Timeout=60 --no-install-recommends libpmix-dev >&2 \
    || log "libpmix-dev not installed: srun --mpi=pmix will not work (mpirun does)"
log "install took $(( $(date +%s) - t0 )) s"
have_all || { log "still missing a command after the install"; exit 3; }
exit 0
