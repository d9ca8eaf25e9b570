# Shared by tools/slurm.sh and tools/sge.sh (sourced): an instance of a
# scheduler is a directory holding its files and, in `started`, the pids of
# the daemons started for it, in order of starting.

say() { echo "tools/$tool: $*" >&2; }

# Waits up to 10 s for file $1 to be written; else shows the ends of the log
# files $2... and fails.
wait_for_file() {
  local file="$1" i
  shift
  for i in $(seq 1 100); do [ -s "$file" ] && return 0; sleep 0.1; done
  say "no $file after 10 s"
  tail -n 20 "$@" >&2 || true
  return 1
}

# Stops the daemons recorded in dir/started, last started first, waiting up
# to 5 s before killing those left; then removes the directory.
stop_started() {
  local dir="$1" pids pid i alive
  if [ -f "$dir/started" ]; then
    pids="$(tac "$dir/started")"
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
    for i in $(seq 1 50); do
      alive=0
      for pid in $pids; do if kill -0 "$pid" 2>/dev/null; then alive=1; fi; done
      [ "$alive" -eq 0 ] && break
      sleep 0.1
    done
    for pid in $pids; do kill -9 "$pid" 2>/dev/null || true; done
  fi
  rm -rf "$dir"
}

# For `run`: starts a private instance (the tool's install, start_in and
# stop_in), runs the command "$@" with variable `$flag` set to true (for the
# tests to insist on the scheduler), stops the instance even if the command
# fails, and exits with the command's status.
run_private() {
  local flag="$1" status=0
  shift
  [ "$#" -gt 0 ] || { say "run needs a command"; exit 2; }
  install
  private="$(mktemp -d "/tmp/mirai-${tool%.sh}-run.XXXXXX")"
  trap 'stop_in "$private"' EXIT
  start_in "$private"
  export "$flag=true"
  "$@" || status=$?
  exit "$status"
}
