#!/usr/bin/env bash
# patroni.sh - a local Patroni cluster behind HAProxy for dsg_lib's HA tests.
#
#   etcd     127.0.0.1:2479 (client), :2480 (peer)      one member: Patroni's DCS
#   node N   PostgreSQL 127.0.0.1:545N, REST API :845N  N = 1..3; one leader, one synchronous standby
#   HAProxy  127.0.0.1:5450 -> the leader (REST check OPTIONS /primary), stats 127.0.0.1:7450
#   database "dsg_ha", user postgres, trust auth (test only)
#
# Usage (as root; idempotent):
#   scripts/patroni.sh start            # create on first use, start, wait until healthy (~15 s the first time)
#   scripts/patroni.sh stop             # stop HAProxy, the replicas, the leader, then etcd
#   scripts/patroni.sh status           # exit 0 only when healthy (leader + 2 streaming replicas, one
#                                       # synchronous, HAProxy routing to the leader)
#   scripts/patroni.sh leader           # print the PostgreSQL port of the current leader
#   scripts/patroni.sh switchover       # planned: patronictl switchover --force, waits until healthy
#   scripts/patroni.sh kill-leader      # SIGKILL the leader's postmaster (Patroni fails over to the sync standby)
#   scripts/patroni.sh wait-leader [S]  # wait (S s, default 60) until a leader takes writes through HAProxy
#   scripts/patroni.sh wait-healthy [S] # wait (S s, default 120) until healthy again
#   scripts/patroni.sh url-haproxy      # the single-host URI through HAProxy
#   scripts/patroni.sh url-multihost    # the multi-host URI (target_session_attrs=read-write)
#   scripts/patroni.sh teardown         # stop and delete everything
#
# State lives under $DSG_HA_DIR (default /var/tmp/dsg_lib_ha/patroni). HAProxy uses the timing of
# Patroni's own template (check every 3 s, down after 3 failures, up after 2 successes,
# on-marked-down shutdown-sessions). TEST-ONLY Patroni settings: loop_wait 1 s, ttl 10 s and
# primary_start_timeout 0 (a crashed leader fails over at once instead of being restarted), so
# that events settle in seconds; the defaults (10 s, 30 s, 300 s) are the safe production values.
set -Eeuo pipefail

BASE="${DSG_HA_DIR:-/var/tmp/dsg_lib_ha}/patroni"
DBNAME="${DSG_PATRONI_DB:-dsg_ha}"
HOST=127.0.0.1
NODES=(1 2 3)
ETCD_PORT=2479
ETCD_PEER_PORT=2480
PROXY_PORT=5450
STATS_PORT=7450
PGBIN=/usr/lib/postgresql/15/bin
SOCK="$BASE/sock"
SCOPE=dsg_lib_patroni
ME=patroni
export PGCONNECT_TIMEOUT=3

log() { echo "[$ME] $*" >&2; }
die() { echo "[$ME] ERROR: $*" >&2; exit 1; }
[[ $EUID -eq 0 ]] || die "must run as root"

pg_port() { echo $((5450 + $1)); }
api_port() { echo $((8450 + $1)); }
datadir() { echo "$BASE/node$1"; }
conf() { echo "$BASE/node$1.yml"; }

wait_for() {  # wait_for SECONDS CMD...
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do ((SECONDS < deadline)) || return 1; sleep 0.3; done
}
as_pg() { runuser -u postgres -- "$@"; }
q() { psql -X -q -A -t -h "$HOST" -p "$1" -U postgres -d "${3:-postgres}" -c "$2" 2>/dev/null; }
api() { curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$HOST:$(api_port "$1")/$2" 2>/dev/null; }

ensure_packages() {
    local missing=()
    [[ -x /usr/bin/patroni ]] || missing+=(patroni)
    /usr/bin/python3 -c 'import etcd' 2>/dev/null || missing+=(python3-etcd)
    [[ -x /usr/bin/etcd ]] || missing+=(etcd-server)
    [[ -x /usr/sbin/haproxy ]] || missing+=(haproxy)
    command -v curl >/dev/null || missing+=(curl)
    [[ -x $PGBIN/postgres ]] || missing+=(postgresql-15)
    ((${#missing[@]} == 0)) && return 0
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 || true; apt-get install -y -q "${missing[@]}" >/dev/null; }
}

write_configs() {
    mkdir -p "$BASE/log" "$SOCK" "$BASE/etcd"
    local n
    for n in "${NODES[@]}"; do
        cat >"$(conf "$n")" <<EOF
# managed by dsg_lib scripts/patroni.sh (test only)
scope: $SCOPE
namespace: /dsg_lib/
name: node$n
log:
  level: WARNING
restapi:
  listen: $HOST:$(api_port "$n")
  connect_address: $HOST:$(api_port "$n")
etcd3:
  hosts: $HOST:$ETCD_PORT
bootstrap:
  dcs:
    # TEST-ONLY timing (production defaults: ttl 30, loop_wait 10, retry_timeout 10,
    # primary_start_timeout 300)
    ttl: 10
    loop_wait: 1
    retry_timeout: 4
    primary_start_timeout: 0
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        max_connections: 100
  initdb:
    - encoding: UTF8
    - no-sync
  pg_hba:
    - local all all trust
    - host all all $HOST/32 trust
    - host replication all $HOST/32 trust
postgresql:
  listen: $HOST:$(pg_port "$n")
  connect_address: $HOST:$(pg_port "$n")
  data_dir: $(datadir "$n")
  bin_dir: $PGBIN
  pgpass: $BASE/pgpass.node$n
  authentication:
    superuser:
      username: postgres
    replication:
      username: postgres
    rewind:
      username: postgres
  parameters:
    unix_socket_directories: $SOCK
    shared_buffers: 32MB
  basebackup:
    - checkpoint: fast
EOF
    done
    cat >"$BASE/haproxy.cfg.new" <<EOF
# managed by dsg_lib scripts/patroni.sh (test only): Patroni's own HAProxy template timing
global
    maxconn 300

defaults
    mode tcp
    retries 2
    timeout client 30m
    timeout connect 4s
    timeout server 30m
    timeout check 5s

listen stats
    mode http
    bind $HOST:$STATS_PORT
    stats enable
    stats uri /

listen primary
    bind $HOST:$PROXY_PORT
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions
$(for n in "${NODES[@]}"; do echo "    server node$n $HOST:$(pg_port "$n") maxconn 100 check port $(api_port "$n")"; done)
EOF
    if ! cmp -s "$BASE/haproxy.cfg.new" "$BASE/haproxy.cfg"; then
        stop_pid haproxy 10  # a changed configuration: start HAProxy again with it
        mv "$BASE/haproxy.cfg.new" "$BASE/haproxy.cfg"
    fi
    rm -f "$BASE/haproxy.cfg.new"
    chown -R postgres:postgres "$BASE"
}

# ---------------------------------------------------------------- processes (pid files in $BASE)
pid_of() {  # pid_of NAME: the pid of a running etcd / haproxy / nodeN, else fail
    local p; p=$(cat "$BASE/$1.pid" 2>/dev/null) || return 1
    [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null && echo "$p"
}
launch() {  # launch NAME CMD...: in the background as postgres, its own session, cwd $BASE
    pid_of "$1" >/dev/null && return 0
    local name=$1; shift
    rm -f "$BASE/$name.pid"
    as_pg sh -c 'cd "$1" && echo $$ >"$2" && shift 2 && exec setsid "$@"' sh "$BASE" "$BASE/$name.pid" "$@" \
        >>"$BASE/log/$name.log" 2>&1 </dev/null 9>&- &
    wait_for 5 test -s "$BASE/$name.pid"
}
gone() { ! kill -0 "$1" 2>/dev/null; }
stop_pid() {  # stop_pid NAME [SECONDS]: TERM, then KILL
    local p; p=$(pid_of "$1") || { rm -f "$BASE/$1.pid"; return 0; }
    kill -TERM "$p" 2>/dev/null || true
    wait_for "${2:-30}" gone "$p" || kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
    rm -f "$BASE/$1.pid"
}

etcd_up() { curl -s --max-time 1 "http://$HOST:$ETCD_PORT/health" | grep -q '"health":"true"'; }
start_etcd() {
    launch etcd etcd --name dsg --data-dir "$BASE/etcd" \
        --listen-client-urls "http://$HOST:$ETCD_PORT" --advertise-client-urls "http://$HOST:$ETCD_PORT" \
        --listen-peer-urls "http://$HOST:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://$HOST:$ETCD_PEER_PORT" \
        --initial-cluster "dsg=http://$HOST:$ETCD_PEER_PORT" --initial-cluster-token "$SCOPE" \
        --initial-cluster-state new
    wait_for 30 etcd_up || die "etcd did not start (log: $BASE/log/etcd.log)"
}

# ---------------------------------------------------------------- cluster state
leader_node() {  # the node whose REST API says it is the primary
    local n
    for n in "${NODES[@]}"; do [[ "$(api "$n" primary)" == 200 ]] && { echo "$n"; return 0; }; done
    return 1
}
leader_port() { local n; n=$(leader_node) || return 1; pg_port "$n"; }
leader_moved_from() { local n; n=$(leader_node) && [[ $n != "$1" ]]; }
writable() { [[ "$(q "$1" 'select pg_is_in_recovery()')" == f ]]; }
proxy_state() {  # "node1:UP node2:DOWN ..." from HAProxy's stats
    curl -s --max-time 1 "http://$HOST:$STATS_PORT/;csv" 2>/dev/null \
        | awk -F, '$1 == "primary" && $2 ~ /^node/ { printf "%s:%s ", $2, $18 }'
}
proxy_routes_to_leader() {  # only the leader is UP in HAProxy, and it takes writes through it
    local n state; n=$(leader_node) || return 1
    state=$(proxy_state)
    [[ "$state" == *"node$n:UP"* ]] || return 1
    [[ "$(grep -o ':UP' <<<"$state" | wc -l)" == 1 ]] || return 1
    writable "$PROXY_PORT"
}
leader_ready() { local p; p=$(leader_port) && writable "$p" && proxy_routes_to_leader; }
healthy() {  # a leader, two streaming replicas (one synchronous), HAProxy routing to the leader
    local p; p=$(leader_port) || return 1
    writable "$p" || return 1
    [[ "$(q "$p" "select count(*) from pg_stat_replication where state = 'streaming'")" == 2 ]] || return 1
    [[ "$(q "$p" "select count(*) from pg_stat_replication where sync_state = 'sync'")" == 1 ]] || return 1
    proxy_routes_to_leader
}
show_status() {
    as_pg patronictl -c "$(conf 1)" list 2>/dev/null || echo "patronictl: cluster unreachable"
    echo "HAProxy :$PROXY_PORT: $(proxy_state)"
}

ensure_database() {
    local p; p=$(leader_port) || return 1
    [[ "$(q "$p" "select 1 from pg_database where datname = '$DBNAME'")" == 1 ]] && return 0
    q "$p" "CREATE DATABASE $DBNAME" >/dev/null
}

do_start() {
    ensure_packages
    mkdir -p "$BASE"
    exec 9>"$BASE.lock"; flock -w 300 9 || die "another $ME is running"
    local t0=$SECONDS n
    write_configs
    start_etcd
    for n in "${NODES[@]}"; do launch "node$n" patroni "$(conf "$n")"; done
    launch haproxy haproxy -db -f "$BASE/haproxy.cfg"  # its checks find the leader meanwhile
    wait_for 90 leader_port >/dev/null || { show_status >&2; die "no leader after 90 s (logs: $BASE/log)"; }
    wait_for 30 ensure_database || die "could not create database $DBNAME"
    wait_for 120 healthy || { show_status >&2; die "cluster not healthy after 120 s (logs: $BASE/log)"; }
    log "healthy in $((SECONDS - t0)) s: leader :$(leader_port), HAProxy :$PROXY_PORT"
}

do_stop() {
    [[ -d "$BASE" ]] || return 0
    stop_pid haproxy 10
    # the replicas (side by side), then the leader: each Patroni stops its PostgreSQL
    local n lead; lead=$(leader_node 2>/dev/null || echo 0)
    for n in "${NODES[@]}"; do ((n == lead)) || stop_pid "node$n" 60 & done
    wait
    ((lead == 0)) || stop_pid "node$lead" 60
    stop_pid etcd 10
    for n in "${NODES[@]}"; do  # a postmaster left behind by a killed Patroni
        if [[ -f "$(datadir "$n")/postmaster.pid" ]] && as_pg "$PGBIN/pg_ctl" -D "$(datadir "$n")" status >/dev/null 2>&1; then
            as_pg "$PGBIN/pg_ctl" -D "$(datadir "$n")" -m fast -w stop >/dev/null 2>&1 || true
        fi
    done
    log "stopped"
}

do_switchover() {
    healthy || die "cluster is not healthy; refusing a switchover"
    local before t0; before=$(leader_node); t0=$(date +%s.%N)
    as_pg patronictl -c "$(conf 1)" switchover "$SCOPE" --leader "node$before" --force >>"$BASE/log/switchover.log" 2>&1 \
        || die "patronictl switchover failed (log: $BASE/log/switchover.log)"
    wait_for 60 leader_moved_from "$before" || die "no new leader after the switchover"
    log "switchover node$before -> node$(leader_node) (:$(leader_port)) in $(echo "$(date +%s.%N) - $t0" | bc) s"
}

do_kill_leader() {
    local n pm; n=$(leader_node) || die "no leader"
    pm=$(head -n1 "$(datadir "$n")/postmaster.pid" 2>/dev/null) || die "no postmaster.pid for node$n"
    kill -KILL "$pm"
    log "killed the postmaster of leader node$n (:$(pg_port "$n"), pid $pm)"
}

case "${1:-status}" in
    start|up) do_start ;;
    stop|down) do_stop ;;
    status) show_status; healthy ;;
    leader) leader_port ;;
    switchover) do_switchover ;;
    kill-leader) do_kill_leader ;;
    wait-leader) wait_for "${2:-60}" leader_ready || { show_status >&2; die "no leader taking writes through HAProxy"; } ;;
    wait-healthy) wait_for "${2:-120}" healthy || { show_status >&2; die "not healthy"; } ;;
    url-haproxy) echo "postgresql://postgres@$HOST:$PROXY_PORT/$DBNAME" ;;
    url-multihost)
        echo "postgresql://postgres@$(for n in "${NODES[@]}"; do printf '%s:%s,' "$HOST" "$(pg_port "$n")"; done | sed 's/,$//')/$DBNAME?target_session_attrs=read-write"
        ;;
    teardown) do_stop; rm -rf "$BASE" "$BASE.lock"; log "removed $BASE" ;;
    -h|--help|help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown action '$1' (start|stop|status|leader|switchover|kill-leader|wait-leader [S]|wait-healthy [S]|url-haproxy|url-multihost|teardown)" ;;
esac
