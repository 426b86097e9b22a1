#!/usr/bin/env bash
# Single-node Slurm on this host for the scheduler tests and CI: `slurm.sh up` starts munged,
# slurmctld and slurmd if they are not already answering (idempotent, ~10 s from cold);
# `slurm.sh down` stops only the daemons that `up` started (listed in $STATE/started).
# A slurm.conf that this script did not write is never overwritten.
set -euo pipefail
STATE=/run/fwbench-slurm
CONF=/etc/slurm/slurm.conf
MARK='# written by fwbench tests/daemons/slurm.sh'
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo -n"

ready() { timeout 5 sinfo -h -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; }

up() {
  if ready; then echo "slurm.sh: Slurm already answers ($(sinfo -h -o '%N %T %c CPUs'))"; return 0; fi
  $sudo mkdir -p "$STATE"
  host=$(hostname -s)
  if ! pgrep -x munged >/dev/null; then
    if [ ! -s /etc/munge/munge.key ]; then
      $sudo mkdir -p /etc/munge
      $sudo dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
    $sudo chown munge:munge /etc/munge/munge.key
    $sudo chmod 400 /etc/munge/munge.key
    $sudo mkdir -p /run/munge /var/log/munge /var/lib/munge
    $sudo chown munge:munge /run/munge /var/log/munge /var/lib/munge
    $sudo runuser -u munge -- /usr/sbin/munged
    echo munged | $sudo tee -a "$STATE/started" >/dev/null
  fi
  if [ ! -e "$CONF" ] || grep -qF "$MARK" "$CONF"; then
    # Addresses are loopback: no dependence on how the host name resolves.
    cpus=$(nproc)
    mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    $sudo mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
    $sudo tee "$CONF" >/dev/null <<CONF
$MARK
ClusterName=fwbench-local
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=2048
MpiDefault=none
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  fi
  if ! pgrep -x slurmctld >/dev/null; then
    $sudo /usr/sbin/slurmctld
    echo slurmctld | $sudo tee -a "$STATE/started" >/dev/null
  fi
  if ! pgrep -x slurmd >/dev/null; then
    $sudo /usr/sbin/slurmd
    echo slurmd | $sudo tee -a "$STATE/started" >/dev/null
  fi
  for _ in $(seq 1 60); do
    if ready; then echo "slurm.sh: Slurm up ($(sinfo -h -o '%N %T %c CPUs'))"; return 0; fi
    sleep 0.5
  done
  echo "slurm.sh: Slurm did not become ready in 30 s; see /var/log/slurm/slurmctld.log and slurmd.log" >&2
  return 1
}

down() {
  [ -f "$STATE/started" ] || { echo "slurm.sh: nothing started by slurm.sh to stop"; return 0; }
  # Reverse order of start: slurmd, slurmctld, munged.
  for d in slurmd slurmctld munged; do
    grep -qx "$d" "$STATE/started" || continue
    case $d in
      munged) pid=$(cat /run/munge/munged.pid 2>/dev/null || true) ;;
      *) pid=$(cat "$STATE/$d.pid" 2>/dev/null || true) ;;
    esac
    if [ -n "$pid" ] && $sudo kill "$pid" 2>/dev/null; then
      for _ in $(seq 1 50); do $sudo kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      echo "slurm.sh: stopped $d (pid $pid)"
    fi
  done
  $sudo rm -f "$STATE/started"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
