#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try `ecasweep submit` (and to test it
# in CI). Needs root and Debian/Ubuntu. Idempotent: run it again and it only checks the cluster is
# up. Installs slurm-wlm and munge with apt-get if they are missing, writes /etc/slurm/slurm.conf
# (one node named after this host, one partition "local", every core and 90% of the memory), starts
# munged, slurmctld and slurmd, and waits until the node takes jobs.
#
#   sudo scripts/slurm-local.sh          # then: sinfo; sbatch --wrap hostname; squeue
#   sudo scripts/slurm-local.sh --stop   # stop the three daemons
set -euo pipefail

CONF=/etc/slurm/slurm.conf
STATE=/var/lib/slurm-local
LOGS=/var/log/slurm-local

stop() {
    for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
        if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            kill "$(cat "$pidfile")"
        fi
    done
}

if [ "${1:-}" = "--stop" ]; then
    stop
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "slurm-local.sh: run as root (it writes /etc/slurm and starts daemons)" >&2
    exit 2
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge
fi

# Already up and taking jobs: nothing to do.
if scontrol ping 2>/dev/null | grep -q "is UP" && sinfo -h -o %T 2>/dev/null | grep -qE "idle|mix|alloc"; then
    echo "slurm-local: already running"
    sinfo
    exit 0
fi

node=$(hostname -s)
cpus=$(nproc)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))   # MiB

mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" "$LOGS"
cat > "$CONF.new" <<EOF
# Written by ecasweep's scripts/slurm-local.sh: a one-node cluster on localhost.
ClusterName=ecasweep-local
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
# No cgroups: track job processes through /proc, bind no tasks.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
# Without a default, a job would take the node's whole memory and jobs would run one at a time.
DefMemPerCPU=$(( memory / cpus ))
SchedulerType=sched/backfill
JobRequeue=1
ReturnToService=2
MpiDefault=none
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
mv "$CONF.new" "$CONF"

# munged refuses to start without its socket directory, owned by its user.
mkdir -p /run/munge
chown munge:munge /run/munge
chmod 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
if ! { [ -f /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; }; then
    runuser -u munge -- munged
fi

stop_daemon() {  # a daemon left from an earlier start with another config
    local pidfile=$1
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        kill "$(cat "$pidfile")"
        sleep 1
    fi
}
stop_daemon /run/slurmd.pid
stop_daemon /run/slurmctld.pid
slurmctld
slurmd

for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE "^(idle|mix|alloc)"; then
        echo "slurm-local: node $node up ($cpus CPUs, $memory MiB)"
        sinfo
        exit 0
    fi
    sleep 1
done
echo "slurm-local: the node did not come up; see $LOGS/slurmctld.log and $LOGS/slurmd.log" >&2
sinfo >&2 || true
exit 1
