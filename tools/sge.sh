#!/usr/bin/env bash
# A single-node Grid Engine (Debian's gridengine, Son of Grid Engine 8.1.9)
# on this machine, for the tests of cluster_config("qsub").
#
#   tools/sge.sh install      install gridengine-master, -exec and -client
#   tools/sge.sh start        start a Grid Engine cell here (unless ours runs),
#                             and write the variables that reach it to
#                             $MIRAI_SGE_DIR/env, for `. $MIRAI_SGE_DIR/env`
#   tools/sge.sh stop         stop what `start` started (only that)
#   tools/sge.sh run CMD...   start a private cell, run CMD with SGE_ROOT,
#                             SGE_CELL and its ports set, then stop it (even
#                             if CMD fails)
#
# An instance is a cell of its own (SGE_CELL) whose files all live in one
# directory: its bootstrap, configuration, classic spool and execd spool;
# only the cell's name is linked from $SGE_ROOT, where Grid Engine looks for
# cells. So the package's own default cell is left alone, and instances in
# separate network namespaces (as `make r-check` runs them) do not meet.
# Jobs run as root (min_uid 0), in one queue of 8 slots on this host, and
# the scheduler runs every second.
set -euo pipefail
tool=sge.sh
# shellcheck source=tools/daemons-lib.sh
. "$(dirname "$0")/daemons-lib.sh"

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo -E"; fi


export SGE_ROOT=/var/lib/gridengine
lib=/usr/lib/gridengine

install() {
  command -v sge_qmaster >/dev/null && command -v sge_execd >/dev/null &&
    command -v qsub >/dev/null && return 0
  say "installing gridengine-master gridengine-exec gridengine-client"
  $sudo apt-get update -qq
  # The packages' own cell is configured for this host, unattended.
  local host
  host="$(hostname)"
  printf '%s\n' \
    "gridengine-common shared/gridengineconfig boolean true" \
    "gridengine-common shared/gridenginecell string default" \
    "gridengine-common shared/gridenginesqmaster string $host" |
    $sudo debconf-set-selections
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    gridengine-master gridengine-exec gridengine-client >/dev/null
}

# Whether the queue of the cell in SGE_CELL takes jobs: its line in
# `qstat -f` shows no state (such as 'au' before the execd has reported).
answers() {
  local line
  line="$(timeout 10 qstat -f 2>/dev/null | awk '$1 ~ /^all[.]q@/')" || return 1
  [ -n "$line" ] && [ "$(echo "$line" | awk '{ print NF }')" -eq 5 ]
}

start_in() {
  local dir="$1" host cell common
  host="$(hostname)"
  cell="$(basename "$dir")"
  common="$SGE_ROOT/$cell/common"
  mkdir -p "$dir/common" "$dir/qmaster" "$dir/execd" "$dir/tmp"
  ln -sfn "$dir" "$SGE_ROOT/$cell"
  echo "$SGE_ROOT/$cell" >"$dir/linked"
  export SGE_CELL="$cell" SGE_QMASTER_PORT=6444 SGE_EXECD_PORT=6445
  cat >"$common/bootstrap" <<EOF
# Version: 8.1.9
admin_user              none
default_domain          none
ignore_fqdn             true
spooling_method         classic
spooling_lib            libspoolc
spooling_params         $common;$dir/qmaster
binary_path             /usr/sbin
qmaster_spool_dir       $dir/qmaster
security_mode           none
job_spooling            true
listener_threads        2
worker_threads          2
scheduler_threads       1
EOF
  echo "$host" >"$common/act_qmaster"
  # Grid Engine takes a connection from 127.0.0.1 to come from the name that
  # address resolves to: the same host as this one.
  echo "$host localhost $(getent hosts 127.0.0.1 | awk '{ $1 = ""; print }')" >"$common/host_aliases"
  sed -e "s|^execd_spool_dir .*|execd_spool_dir $dir/execd|" \
      -e "s|^min_uid .*|min_uid 0|" -e "s|^min_gid .*|min_gid 0|" \
      -e "s|^reporting_params .*|reporting_params accounting=true reporting=false flush_time=00:00:01 joblog=false sharelog=00:00:00 accounting_flush_time=00:00:00|" \
      /usr/share/gridengine/default-configuration >"$dir/global"
  "$lib/spoolinit" classic libspoolc "$common;$dir/qmaster" init >/dev/null
  "$lib/spooldefaults" configuration "$dir/global" >/dev/null
  "$lib/spooldefaults" complexes /usr/share/gridengine/util/resources/centry >/dev/null
  "$lib/spooldefaults" usersets /usr/share/gridengine/util/resources/usersets >/dev/null
  "$lib/spooldefaults" managers root >/dev/null
  : >"$dir/started"
  sge_qmaster
  wait_for_file "$dir/qmaster/qmaster.pid" "$dir/qmaster/messages" || { stop_in "$dir"; return 1; }
  cat "$dir/qmaster/qmaster.pid" >>"$dir/started"
  local i
  for i in $(seq 1 100); do qconf -sh >/dev/null 2>&1 && break; sleep 0.1; done
  qconf -as "$host" >/dev/null 2>&1
  printf 'hostname %s\nload_scaling NONE\ncomplex_values NONE\nuser_lists NONE\nxuser_lists NONE\nprojects NONE\nxprojects NONE\nusage_scaling NONE\nreport_variables NONE\n' \
    "$host" >"$dir/exechost"
  qconf -Ae "$dir/exechost" >/dev/null 2>&1
  qconf -sq | sed -e "s|^qname .*|qname all.q|" -e "s|^hostlist .*|hostlist $host|" \
    -e "s|^slots .*|slots 8|" -e "s|^shell .*|shell /bin/sh|" -e "s|^pe_list .*|pe_list NONE|" \
    -e "s|^load_thresholds .*|load_thresholds NONE|" -e "s|^tmpdir .*|tmpdir $dir/tmp|" >"$dir/queue"
  qconf -Aq "$dir/queue" >/dev/null 2>&1
  qconf -ssconf | sed -e "s|^schedule_interval .*|schedule_interval 0:0:1|" \
    -e "s|^flush_submit_sec .*|flush_submit_sec 1|" -e "s|^flush_finish_sec .*|flush_finish_sec 1|" \
    >"$dir/scheduler"
  qconf -Msconf "$dir/scheduler" >/dev/null 2>&1
  sge_execd
  # The execd spools under the name it resolves itself to, not always $host.
  local pidfile="" f
  for i in $(seq 1 100); do
    for f in "$dir"/execd/*/execd.pid; do if [ -s "$f" ]; then pidfile="$f"; fi; done
    if [ -n "$pidfile" ]; then break; fi
    sleep 0.1
  done
  if [ -z "$pidfile" ]; then say "no execd.pid in $dir/execd after 10 s"; stop_in "$dir"; return 1; fi
  cat "$pidfile" >>"$dir/started"
  for i in $(seq 1 300); do
    if answers; then
      printf 'export SGE_ROOT=%s SGE_CELL=%s SGE_QMASTER_PORT=%s SGE_EXECD_PORT=%s\n' \
        "$SGE_ROOT" "$SGE_CELL" "$SGE_QMASTER_PORT" "$SGE_EXECD_PORT" >"$dir/env"
      say "Grid Engine $(qstat -help | head -n 1) runs cell $cell on $host ($dir)"
      return 0
    fi
    sleep 0.2
  done
  say "Grid Engine did not come up within 60 s:"
  qstat -f >&2 || true
  tail -n 20 "$dir/qmaster/messages" "$dir"/execd/*/messages >&2 || true
  stop_in "$dir"
  return 1
}


# Stops the daemons of the instance in `dir`, and removes the cell's link in
# SGE_ROOT.
stop_in() {
  if [ -f "$1/linked" ]; then rm -f "$(cat "$1/linked")"; fi
  stop_started "$1"
}

dir="${MIRAI_SGE_DIR:-/tmp/mirai-sge}"

case "${1:-}" in
  install) install ;;
  start)
    if [ -f "$dir/env" ]; then
      # shellcheck disable=SC1091
      . "$dir/env"
      if answers; then
        say "already running ($dir): . $dir/env"
        exit 0
      fi
    fi
    install
    stop_in "$dir"
    start_in "$dir"
    say "for its commands: . $dir/env"
    ;;
  stop) stop_in "$dir" ;;
  run)
    shift
    run_private MIRAI_TEST_SGE "$@"
    ;;
  *)
    echo "usage: tools/sge.sh install | start | stop | run COMMAND..." >&2
    exit 2
    ;;
esac
