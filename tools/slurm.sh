#!/usr/bin/env bash
# A single-node Slurm on this machine, for the tests of cluster_config().
#
#   tools/slurm.sh install      install Debian's slurm-wlm and munge if missing
#   tools/slurm.sh start        start Slurm here unless one already answers
#   tools/slurm.sh stop         stop what `start` started (only that)
#   tools/slurm.sh run CMD...   start a private Slurm, run CMD with SLURM_CONF
#                               naming it, then stop it (even if CMD fails)
#
# Everything of an instance lives in one directory: its munge key and socket,
# slurm.conf, state, spool, logs and pid files. So an instance never touches
# /etc/munge or another instance, and several can run at once in separate
# network namespaces (as `make r-check` does through tools/offline.sh, with
# `run`: there the daemons, the jobs and the tests share one loopback).
#
# `start` uses $MIRAI_SLURM_DIR (default /tmp/mirai-slurm) and, where the
# machine has no /etc/slurm/slurm.conf, links it there so that sbatch and
# squeue find it without SLURM_CONF. No systemd: munged, slurmctld and slurmd
# are started by hand. The node declares 8 CPUs, whatever the machine has
# (SlurmdParameters=config_overrides), so that 8 single-CPU jobs run at once,
# and the machine's memory.
set -euo pipefail
tool=slurm.sh
# shellcheck source=tools/daemons-lib.sh
. "$(dirname "$0")/daemons-lib.sh"

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo -E"; fi


install() {
  local missing=()
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
    command -v sbatch >/dev/null || missing+=(slurm-wlm)
  command -v munged >/dev/null || missing+=(munge)
  [ "${#missing[@]}" -eq 0 ] && return 0
  say "installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# Whether a controller answers for the configuration in SLURM_CONF (or the
# default one), with the node ready for jobs.
answers() {
  timeout 10 sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'
}

write_config() {
  local dir="$1" host="$2" memory
  # The node declares the machine's memory, so that jobs asking for some
  # (`#SBATCH --mem=2G`, as in cluster_config()'s example) can run.
  memory=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
  cat >"$dir/slurm.conf" <<EOF
ClusterName=mirai
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=600
CommunicationParameters=EnableIPv6
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=8 RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  # Slurm 23 and later start a cgroup plugin even with proctrack/linuxproc,
  # and fail where no cgroup file system is mounted (a chroot): disable it.
  local major
  major="$(slurmd -V | awk '{ split($2, v, "."); print v[1] }')"
  if [ "${major:-0}" -ge 23 ]; then
    echo "CgroupPlugin=disabled" >"$dir/cgroup.conf"
  fi
}

# Starts munged, slurmctld and slurmd for the instance in `dir`, recording
# their pids in dir/started; waits until the node takes jobs.
start_in() {
  local dir="$1" host
  host="$(hostname -s)"
  mkdir -p "$dir/state" "$dir/spool"
  chmod 0700 "$dir"
  dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
  chmod 0400 "$dir/munge.key"
  write_config "$dir" "$host"
  export SLURM_CONF="$dir/slurm.conf"
  : >"$dir/started"
  munged --force --socket="$dir/munge.socket" --key-file="$dir/munge.key" \
    --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" \
    --seed-file="$dir/munged.seed"
  cat "$dir/munged.pid" >>"$dir/started"
  slurmctld -i
  wait_for_file "$dir/slurmctld.pid" "$dir"/*.log || { stop_in "$dir"; return 1; }
  cat "$dir/slurmctld.pid" >>"$dir/started"
  slurmd
  wait_for_file "$dir/slurmd.pid" "$dir"/*.log || { stop_in "$dir"; return 1; }
  cat "$dir/slurmd.pid" >>"$dir/started"
  local i
  for i in $(seq 1 150); do
    if answers; then
      say "Slurm $(sinfo -V | awk '{ print $2 }') runs on node $host ($dir)"
      return 0
    fi
    sleep 0.2
  done
  say "Slurm did not come up within 30 s; the ends of its logs:"
  tail -n 20 "$dir"/*.log >&2 || true
  stop_in "$dir"
  return 1
}


stop_in() { stop_started "$1"; }

dir="${MIRAI_SLURM_DIR:-/tmp/mirai-slurm}"
link=/etc/slurm/slurm.conf

case "${1:-}" in
  install) install ;;
  start)
    if [ -f "$dir/started" ] && SLURM_CONF="$dir/slurm.conf" answers; then
      say "already running ($dir)"
      exit 0
    fi
    if [ ! -f "$dir/started" ] && answers; then
      say "a Slurm already answers here: nothing to start"
      exit 0
    fi
    install
    stop_in "$dir"
    start_in "$dir"
    if [ ! -e "$link" ]; then
      mkdir -p "$(dirname "$link")"
      ln -s "$dir/slurm.conf" "$link"
      echo "$link" >"$dir/linked"
    else
      say "$link exists: use SLURM_CONF=$dir/slurm.conf for this instance"
    fi
    ;;
  stop)
    if [ -f "$dir/linked" ] && [ "$(readlink "$link" || true)" = "$dir/slurm.conf" ]; then
      rm -f "$link"
    fi
    stop_in "$dir"
    ;;
  run)
    shift
    run_private MIRAI_TEST_SLURM "$@"
    ;;
  *)
    echo "usage: tools/slurm.sh install | start | stop | run COMMAND..." >&2
    exit 2
    ;;
esac
