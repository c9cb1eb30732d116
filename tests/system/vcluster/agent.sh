#!/bin/sh
# Remote-shell agent for the virtual cluster: `mpirun --mca plm_ssh_agent THIS_FILE` calls it
# like ssh: `agent [options] NODE COMMAND...`.  Leading options (ssh's -x, -T, -o X, -p N...) are
# dropped; COMMAND runs inside NODE's network namespace with its own UTS namespace whose host
# name is NODE, so gethostname()/MPI_Get_processor_name() differ per node.
# VCLUSTER_AGENT_LOG=FILE appends each call (for debugging).
while [ $# -gt 0 ]; do
    case "$1" in
        -o|-p|-l|-i|-F|-E|-b|-c|-m|-L|-R|-D|-J|-w) shift 2 ;;   # ssh options that take a value
        -*) shift ;;
        *) break ;;
    esac
done
if [ $# -lt 2 ]; then
    echo "vcluster agent: usage: agent [options] NODE COMMAND..." >&2
    exit 255
fi
NODE=$1
shift
case "$NODE" in *@*) NODE=${NODE#*@} ;; esac       # user@node
if [ -n "${VCLUSTER_AGENT_LOG:-}" ]; then
    printf '%s node=%s cmd=%s\n' "$(date +%T)" "$NODE" "$*" >> "$VCLUSTER_AGENT_LOG"
fi
if [ ! -e "/run/netns/$NODE" ]; then
    echo "vcluster agent: no such node (network namespace) '$NODE'" >&2
    exit 255
fi
# like ssh: the command words are joined with spaces and run by a shell on the node
exec ip netns exec "$NODE" unshare --uts sh -c "hostname \"\$0\" && exec sh -c \"\$1\"" "$NODE" "$*"
