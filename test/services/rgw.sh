#!/usr/bin/env bash
# Starts or stops a single-node Ceph RADOS Gateway on 127.0.0.1 for tests.
#
#   bash test/services/rgw.sh start   # prints HVBACKUP_TEST_S3_* lines on stdout
#   bash test/services/rgw.sh stop    # stops the daemons this script started
#
# The cluster is one monitor (msgr v2 only), one OSD on memstore and one
# radosgw with the beast frontend, all without cephx. Data lives in RAM, so a
# stop loses everything. Only the variable lines go to stdout; progress and
# failures go to stderr, and daemon output goes to log files in the data dir.
#
# Environment:
#   HVBACKUP_RGW_DIR   data dir (default /tmp/hvb-rgw). Keep it short: Ceph
#                      admin socket paths must stay under 107 characters.
#   HVBACKUP_RGW_PORT  HTTP port of radosgw (default 7480, the next free port
#                      is taken if 7480 is busy)
#
# Tested with Ceph 16.2.15 (Debian 12 packages).
set -euo pipefail

data_dir=${HVBACKUP_RGW_DIR:-/tmp/hvb-rgw}
access_key=hvbackup-test
secret_key=hvbackup-test-secret-0123456789
region=us-east-1

export CEPH_CONF="$data_dir/ceph.conf"

log() {
  echo "rgw.sh: $*" >&2
}

# Reports whether PID is a live process. A daemon whose parent exited is
# reparented to PID 1 and, without an init that reaps, stays a zombie after
# it dies. kill -0 still succeeds on a zombie, so this reads the state.
process_alive() {
  local pid=$1 state
  [[ -r /proc/$pid/status ]] || return 1
  state=$(awk '/^State:/ { print $2 }' "/proc/$pid/status")
  [[ -n $state && $state != Z && $state != X ]]
}

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

first_free_port() {
  local port=$1
  while ! port_free "$port"; do
    port=$((port + 1))
    if ((port > 65000)); then
      log "no free TCP port on 127.0.0.1 from $1 upwards"
      return 1
    fi
  done
  echo "$port"
}

http_status() {
  curl --silent --output /dev/null --max-time 2 --write-out '%{http_code}' "$1" || true
}

print_variables() {
  echo "HVBACKUP_TEST_S3_ENDPOINT=http://127.0.0.1:$1"
  echo "HVBACKUP_TEST_S3_ACCESS_KEY=$access_key"
  echo "HVBACKUP_TEST_S3_SECRET_KEY=$secret_key"
  echo "HVBACKUP_TEST_S3_REGION=$region"
}

show_logs() {
  local file
  for file in "$data_dir"/log/*.log; do
    [[ -f $file ]] || continue
    echo "---- last lines of $file" >&2
    tail -n 25 "$file" >&2
  done
}

fail() {
  log "start failed: $*"
  show_logs
  stop_daemons
  exit 1
}

# Polls COMMAND until it succeeds, for at most SECONDS seconds.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      fail "$what did not happen within ${seconds}s"
    fi
    sleep 0.1
  done
}

osd_up() {
  [[ $(ceph osd dump --format plain 2>/dev/null | awk '$1 == "osd.0" { print $2 }') == up ]]
}

rgw_responds() {
  [[ $(http_status "http://127.0.0.1:$1/") == 200 ]]
}

write_config() {
  local mon_port=$1 rgw_port=$2 fsid=$3
  cat >"$CEPH_CONF" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_port]
mon initial members = a
ms bind msgr1 = false
ms bind msgr2 = true
auth cluster required = none
auth service required = none
auth client required = none
# Without crc modes radosgw retries get_initial_auth_request (-13) for 300 s.
ms mon client mode = crc
ms client mode = crc
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
# Short paxos intervals make map updates, and so the start, fast (about 1 s here).
paxos propose interval = 0.01
paxos min wait = 0.001
osd mon shutdown timeout = 1
run dir = $data_dir/run
admin socket = $data_dir/run/\$name.asok
log file = $data_dir/log/\$name.log

[mon.a]
mon data = $data_dir/mon
public addr = v2:127.0.0.1:$mon_port

[osd.0]
osd data = $data_dir/osd
osd objectstore = memstore

[client.rgw.0]
rgw data = $data_dir/rgw
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw dns name = 127.0.0.1
rgw zonegroup = default
rgw zone = default
# memstore frees deleted data only at garbage collection, so collect often.
rgw gc obj min wait = 30
rgw gc processor period = 30
EOF
}

# Starts NAME's daemon (ARGS..., run in the foreground with -f) in the
# background and records its PID, which is the PID that stop kills.
start_daemon() {
  local name=$1
  shift
  "$@" >>"$data_dir/log/$name.out" 2>&1 </dev/null &
  echo $! >"$data_dir/run/$name.pid"
}

stop_one() {
  local name=$1 pid file="$data_dir/run/$1.pid"
  [[ -f $file ]] || return 0
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] || return 0

  if process_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while process_alive "$pid" && ((SECONDS < deadline)); do
      sleep 0.1
    done
    if process_alive "$pid"; then
      log "$name (pid $pid) ignored SIGTERM for 10 s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "$file"
}

# Stops radosgw before the OSD and the OSD before the monitor, so no daemon
# waits on a peer that is already gone.
stop_daemons() {
  [[ -d $data_dir/run ]] || return 0
  stop_one client.rgw.0
  stop_one osd.0
  stop_one mon.a
}

start() {
  if [[ -f $data_dir/rgw.port ]]; then
    local port
    port=$(<"$data_dir/rgw.port")
    if rgw_responds "$port"; then
      log "radosgw already running on 127.0.0.1:$port (data dir $data_dir)"
      print_variables "$port"
      return 0
    fi
    log "found a stale instance in $data_dir, stopping it"
    stop_daemons
  fi
  rm -rf "$data_dir"

  for tool in monmaptool ceph-mon ceph-osd radosgw radosgw-admin ceph curl uuidgen; do
    command -v "$tool" >/dev/null || { log "missing command: $tool (install ceph-mon ceph-osd radosgw curl uuid-runtime)"; exit 1; }
  done

  local rgw_port mon_port fsid osd_uuid
  rgw_port=$(first_free_port "${HVBACKUP_RGW_PORT:-7480}")
  mon_port=$(first_free_port 3310)
  fsid=$(uuidgen)
  osd_uuid=$(uuidgen)

  mkdir -p "$data_dir"/{mon,osd,rgw,run,log}
  write_config "$mon_port" "$rgw_port" "$fsid"
  log "starting Ceph in $data_dir (mon 127.0.0.1:$mon_port, radosgw 127.0.0.1:$rgw_port)"

  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$data_dir/monmap" >>"$data_dir/log/setup.log" 2>&1 ||
    fail "monmaptool --create"
  ceph-mon --mkfs -i a --monmap "$data_dir/monmap" >>"$data_dir/log/setup.log" 2>&1 ||
    fail "ceph-mon --mkfs"
  start_daemon mon.a ceph-mon -i a -f
  wait_for 30 "monitor quorum" timeout 5 ceph mon stat

  local osd_id
  osd_id=$(timeout 20 ceph osd new "$osd_uuid" 2>>"$data_dir/log/setup.log") || fail "ceph osd new"
  [[ $osd_id == 0 ]] || fail "ceph osd new returned id '$osd_id', expected 0"
  ceph-osd -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$data_dir/log/setup.log" 2>&1 ||
    fail "ceph-osd --mkfs"
  start_daemon osd.0 ceph-osd -i 0 -f
  wait_for 30 "osd.0 up" osd_up

  timeout 60 radosgw-admin user create --uid test --display-name test \
    --access-key "$access_key" --secret-key "$secret_key" >>"$data_dir/log/setup.log" 2>&1 ||
    fail "radosgw-admin user create"

  start_daemon client.rgw.0 radosgw -n client.rgw.0 -f
  wait_for 60 "radosgw answering HTTP 200 on 127.0.0.1:$rgw_port" rgw_responds "$rgw_port"

  echo "$rgw_port" >"$data_dir/rgw.port"
  log "radosgw ready on 127.0.0.1:$rgw_port"
  print_variables "$rgw_port"
}

stop() {
  if [[ ! -d $data_dir ]]; then
    log "nothing to stop: $data_dir does not exist"
    return 0
  fi
  stop_daemons
  rm -rf "$data_dir"
  log "stopped and removed $data_dir"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
