#!/usr/bin/env bash
# Start or stop the libvirt daemons (virtlogd, libvirtd) that the tests use.
#
#   test/services/libvirtd.sh start   starts them unless qemu:///system already
#                                     responds, waits until it does, then prints
#                                     HVBACKUP_TEST_LIBVIRT=1 on stdout
#   test/services/libvirtd.sh stop    stops only the daemons this script started,
#                                     by the PIDs it recorded, once no other
#                                     caller still uses them
#   test/services/libvirtd.sh restart [SECONDS]
#                                     stops the libvirtd this script started by
#                                     its PID, waits SECONDS (default 0) and
#                                     starts it again; virtlogd, the running
#                                     domains and the caller records stay. It
#                                     refuses (status 3) while a test run other
#                                     than the caller's own uses libvirtd, unless
#                                     HVBACKUP_TEST_LIBVIRT_RESTART_FORCE=1 is set
#                                     by someone who checked that those callers
#                                     are idle (a shell that only keeps the
#                                     daemons up, for example).
#
# Only the KEY=VALUE line goes to stdout; every message goes to stderr.
# The machine has no systemd, so the daemons run with --daemon and write their
# PID files under the state directory. They run below test/services/reaper.py,
# which reaps exited QEMU processes when PID 1 does not.
#
# Several test runs share one machine and one libvirtd. Each `start` records
# the PID of its caller (the test runner) under users/, and `stop` removes it.
# The daemons are stopped only when no recorded caller is still alive, so one
# run finishing never pulls libvirtd away from another run.
set -euo pipefail

STATE_DIR="${HVBACKUP_TEST_LIBVIRT_STATE:-/run/hvbackup-test-libvirt}"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
URI="qemu:///system"
START_TIMEOUT_SECONDS=60
STOP_TIMEOUT_SECONDS=30

log() { echo "libvirtd.sh: $*" >&2; }

responds() {
  virsh -c "$URI" version >/dev/null 2>&1
}

# Return success when the process exists and has not exited. PID 1 on this
# kind of machine may not reap orphans, so an exited daemon can linger as a
# zombie (state Z), which `kill -0` still accepts.
process_alive() {
  local pid="$1"
  local state
  # The state follows the parenthesised command name, which may contain spaces.
  state="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != "Z" ]]
}

# Return success when the PID file names a live process.
pid_alive() {
  local pid_file="$1"
  [[ -s "$pid_file" ]] && process_alive "$(cat "$pid_file")"
}

show_log_tail() {
  local file
  for file in "$STATE_DIR/reaper.log" "$STATE_DIR/virtlogd.log" "$STATE_DIR/libvirtd.log"; do
    if [[ -s "$file" ]]; then
      echo "--- last lines of $file ---" >&2
      tail -n 20 "$file" >&2
    fi
  done
}

# Build the command that starts one daemon, unless it already runs.
daemon_command() {
  local name="$1"
  local pid_file="$STATE_DIR/$name.pid"

  if pid_alive "$pid_file"; then
    log "$name is already running with PID $(cat "$pid_file")"
    return
  fi

  # libvirt reads its log destination from LIBVIRT_LOG_OUTPUTS, where level 3 is warnings.
  printf '%s\0' -- env "LIBVIRT_LOG_OUTPUTS=3:file:$STATE_DIR/$name.log" "$name" --daemon --pid-file "$pid_file"
  touch "$STATE_DIR/$name.started-here"
}

# Start the missing daemons under reaper.py, which reaps the QEMU processes
# that libvirtd leaves behind when PID 1 does not (see reaper.py). The
# argument names the reaper's PID file: a restart starts another reaper,
# because the first one still has to reap the QEMU processes it adopted.
start_daemons() {
  local reaper="${1:-reaper}"
  local -a commands=()
  local part
  while IFS= read -r -d '' part; do commands+=("$part"); done < <(daemon_command virtlogd; daemon_command libvirtd)
  if (( ${#commands[@]} == 0 )); then
    return
  fi

  if ! command -v python3 >/dev/null; then
    log "python3 not found; it runs test/services/reaper.py, which libvirtd needs here. Install python3 and retry."
    exit 1
  fi

  log "starting ${commands[*]} (logs: $STATE_DIR/*.log)"
  # setsid and the redirections detach the reaper from the caller's terminal
  # and pipes. 9>&- keeps it from inheriting the lock descriptor, which would
  # hold the lock for its whole life and block every later start or stop.
  setsid python3 "$SCRIPT_DIR/reaper.py" "$STATE_DIR/$reaper.pid" "${commands[@]}" \
    </dev/null >>"$STATE_DIR/reaper.log" 2>&1 9>&- &
  touch "$STATE_DIR/$reaper.started-here"
}

# Stop one daemon that this script started, by its recorded PID.
stop_daemon() {
  local name="$1"
  local pid_file="$STATE_DIR/$name.pid"

  if [[ ! -e "$STATE_DIR/$name.started-here" ]]; then
    return
  fi
  rm -f "$STATE_DIR/$name.started-here"

  if ! pid_alive "$pid_file"; then
    log "$name is not running any more; nothing to stop"
    return
  fi

  local pid
  pid="$(cat "$pid_file")"
  log "stopping $name (PID $pid)"
  terminate "$name" "$pid"
}

# Send SIGTERM to a daemon and wait until it has exited; fail after the timeout.
terminate() {
  local name="$1"
  local pid="$2"
  kill -TERM "$pid"

  local waited=0
  while process_alive "$pid"; do
    if (( waited >= STOP_TIMEOUT_SECONDS * 10 )); then
      log "$name (PID $pid) did not exit within ${STOP_TIMEOUT_SECONDS}s after SIGTERM; stop it by hand: kill $pid"
      return 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

# Remove caller records whose process has exited, then count the rest.
count_live_users() {
  local file
  local count=0
  for file in "$STATE_DIR"/users/*; do
    [[ -e "$file" ]] || continue
    if process_alive "$(basename "$file")"; then
      count=$((count + 1))
    else
      rm -f "$file"
    fi
  done
  echo "$count"
}

wait_until_responds() {
  local waited=0
  until responds; do
    if (( waited >= START_TIMEOUT_SECONDS * 10 )); then
      log "libvirtd did not respond on $URI within ${START_TIMEOUT_SECONDS}s"
      show_log_tail
      log "check the log above, then try: virsh -c $URI version"
      exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  log "libvirtd responds on $URI"
}

start() {
  if ! responds; then
    mkdir -p /run/libvirt
    start_daemons
    wait_until_responds
  else
    log "libvirtd already responds on $URI; using it as it is"
  fi

  # Record the caller only when this script owns the daemons, so that `stop`
  # can tell whether another run still needs them.
  if [[ -e "$STATE_DIR/libvirtd.started-here" ]]; then
    touch "$STATE_DIR/users/$PPID"
  fi
  echo "HVBACKUP_TEST_LIBVIRT=1"
}

stop() {
  rm -f "$STATE_DIR/users/$PPID"

  local users
  users="$(count_live_users)"
  if (( users > 0 )); then
    log "$users other test run(s) still use libvirtd; leaving it running"
    return
  fi

  stop_daemon libvirtd
  stop_daemon virtlogd
  stop_daemon reaper

  # Reapers that restarts added; each may still reap QEMU processes until here.
  local marker
  for marker in "$STATE_DIR"/reaper-restart-*.started-here; do
    [[ -e "$marker" ]] || continue
    stop_daemon "$(basename "$marker" .started-here)"
  done
}

# Return success when PID is this script's process or one of its ancestors.
is_own_ancestor() {
  local target="$1"
  local pid=$$
  while [[ -n "$pid" ]] && (( pid > 1 )); do
    [[ "$pid" == "$target" ]] && return 0
    pid="$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)"
  done
  return 1
}

restart() {
  local down_seconds="${1:-0}"
  if [[ ! "$down_seconds" =~ ^[0-9]+([.][0-9]+)?$ ]]; then
    log "invalid down time '$down_seconds': expected seconds, for example 5 or 0.5"
    exit 2
  fi
  if [[ ! -e "$STATE_DIR/libvirtd.started-here" ]]; then
    log "libvirtd was not started by this script; not restarting a daemon that others may run"
    exit 3
  fi

  # Another run would see its libvirt calls fail, so restart only a daemon
  # that no test run other than the caller's own uses.
  local file
  for file in "$STATE_DIR"/users/*; do
    [[ -e "$file" ]] || continue
    local user
    user="$(basename "$file")"
    if process_alive "$user" && ! is_own_ancestor "$user"; then
      if [[ "${HVBACKUP_TEST_LIBVIRT_RESTART_FORCE:-}" == 1 ]]; then
        log "caller $user is registered too; restarting anyway because HVBACKUP_TEST_LIBVIRT_RESTART_FORCE=1"
        continue
      fi
      log "test run $user also uses libvirtd; not restarting it (see HVBACKUP_TEST_LIBVIRT_RESTART_FORCE in this script)"
      exit 3
    fi
  done

  local pid_file="$STATE_DIR/libvirtd.pid"
  if ! pid_alive "$pid_file"; then
    log "libvirtd is not running; use: $0 start"
    exit 1
  fi
  local pid
  pid="$(cat "$pid_file")"
  log "restarting libvirtd (PID $pid), down for ${down_seconds}s"
  terminate libvirtd "$pid" || exit 1

  sleep "$down_seconds"
  start_daemons "reaper-restart-$$"
  wait_until_responds
}

main() {
  local action="${1:-}"
  mkdir -p "$STATE_DIR/users"

  # One start or stop at a time, because parallel test runs call this script.
  exec 9>"$STATE_DIR/lock"
  flock 9

  case "$action" in
    start) start ;;
    stop) stop ;;
    restart) restart "${@:2}" ;;
    *)
      log "unknown action '${action}'; use: $0 start|stop|restart [SECONDS]"
      exit 2
      ;;
  esac
}

main "$@"
