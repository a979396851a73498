#!/usr/bin/env bash
# pg_auto_failover.sh - a local pg_auto_failover formation for dsg_lib's HA tests.
#
#   monitor  127.0.0.1:5441   (pg_auto_failover monitor)
#   node1    127.0.0.1:5442   } one primary + one synchronous quorum standby,
#   node2    127.0.0.1:5443   } database "dsg_ha", user postgres, trust auth
#
# Usage (as root; idempotent):
#   scripts/pg_auto_failover.sh start         # create on first use, start, wait until primary+secondary
#   scripts/pg_auto_failover.sh stop          # stop secondary, then primary, then monitor
#   scripts/pg_auto_failover.sh status        # exit 0 only when there is a primary and a secondary
#   scripts/pg_auto_failover.sh primary       # print the port of the current primary
#   scripts/pg_auto_failover.sh failover      # planned failover (pg_autoctl perform failover), waits
#   scripts/pg_auto_failover.sh kill-primary  # SIGKILL the primary's pg_autoctl and postgres
#   scripts/pg_auto_failover.sh start-node N  # (re)start node N (1|2) after a kill; it rejoins
#   scripts/pg_auto_failover.sh wait-healthy  # wait until primary + secondary again
#   scripts/pg_auto_failover.sh teardown      # stop and delete everything
#
# State lives under $DSG_HA_DIR (default /var/tmp/dsg_lib_ha/paf). TEST-ONLY settings:
# the monitor's health checks are aggressive and pgautofailover.primary_demote_timeout
# is 5 s (the default is 30 s) so that a killed primary fails over in seconds; these
# values are unsafe in production (a slow but alive primary could be demoted).
set -Eeuo pipefail

BASE="${DSG_HA_DIR:-/var/tmp/dsg_lib_ha}/paf"
MON_PORT="${DSG_PAF_MONITOR_PORT:-5441}"
NODE_PORTS=("${DSG_PAF_NODE1_PORT:-5442}" "${DSG_PAF_NODE2_PORT:-5443}")
DBNAME="${DSG_PAF_DB:-dsg_ha}"
HOST=127.0.0.1
PGBIN=/usr/lib/postgresql/15/bin
SOCK="$BASE/sock"
ME=pg_auto_failover
export PGCONNECT_TIMEOUT=3

log() { echo "[$ME] $*" >&2; }
die() { echo "[$ME] ERROR: $*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "must run as root"

pgdata() { if [[ $1 == monitor ]]; then echo "$BASE/monitor"; else echo "$BASE/node$1"; fi; }
port_of() { if [[ $1 == monitor ]]; then echo "$MON_PORT"; else echo "${NODE_PORTS[$(($1 - 1))]}"; fi; }

# pg_autoctl keeps its config/state under the XDG folders; keep them in ours.
as_pg() {
    runuser -u postgres -- env XDG_CONFIG_HOME="$BASE/xdg/config" XDG_DATA_HOME="$BASE/xdg/data" \
        XDG_RUNTIME_DIR="$BASE/xdg/run" PGHOST="$SOCK" PATH="$PGBIN:$PATH" "$@"
}
q() { psql -X -q -A -t -h "$HOST" -p "$1" -U postgres -d "${3:-postgres}" -c "$2" 2>/dev/null; }
answers() { "$PGBIN/pg_isready" -q -h "$HOST" -p "$1" -t 1 >/dev/null 2>&1; }

wait_for() {  # wait_for SECONDS CMD...
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do ((SECONDS < deadline)) || return 1; sleep 0.3; done
}

ensure_package() {
    [[ -x /usr/bin/pg_autoctl && -f /usr/lib/postgresql/15/lib/pgautofailover.so ]] && return 0
    log "installing postgresql-15-auto-failover"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q postgresql-15-auto-failover >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 || true; apt-get install -y -q postgresql-15-auto-failover >/dev/null; }
}

ensure_dirs() {
    mkdir -p "$BASE/xdg/config" "$BASE/xdg/data" "$BASE/xdg/run" "$SOCK" "$BASE/log"
    chown -R postgres:postgres "$BASE"
    chmod 0700 "$BASE/xdg/run"
}

# initdb ourselves: pg_autoctl ignores PGHOST for the socket directory and sizes
# shared_buffers from the machine's memory.
init_cluster() {  # init_cluster WHICH
    local d; d=$(pgdata "$1")
    [[ -f "$d/PG_VERSION" ]] && return 0
    as_pg "$PGBIN/initdb" -D "$d" -U postgres --auth=trust --no-sync >/dev/null
    cat >>"$d/postgresql.conf" <<EOF
# dsg_lib HA test settings (scripts/pg_auto_failover.sh)
listen_addresses = '$HOST'
port = $(port_of "$1")
unix_socket_directories = '$SOCK'
shared_buffers = 32MB
max_connections = 100
checkpoint_completion_target = 0
fsync = on
EOF
}

monitor_conf() {  # TEST-ONLY: detect a dead primary and fail over in seconds (re-applied on start)
    local d; d=$(pgdata monitor)
    cat >"$d/dsg_lib_ha.conf" <<EOF
# TEST-ONLY (scripts/pg_auto_failover.sh): unsafe in production, where a slow but
# alive primary must not be demoted this fast (defaults: 5 s checks, 20 s unhealthy, 30 s demote)
pgautofailover.health_check_period = 500
pgautofailover.health_check_timeout = 1000
pgautofailover.health_check_max_retries = 1
pgautofailover.health_check_retry_delay = 500
pgautofailover.node_considered_unhealthy_timeout = 2000
pgautofailover.primary_demote_timeout = 5000
EOF
    chown postgres:postgres "$d/dsg_lib_ha.conf"
    grep -q "dsg_lib_ha.conf" "$d/postgresql.conf" || echo "include_if_exists = 'dsg_lib_ha.conf'" >>"$d/postgresql.conf"
}

run_pid() { cat "$BASE/run_$1.pid" 2>/dev/null || true; }
running() {
    local pid; pid=$(run_pid "$1")
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == pg_autoctl ]]
}
start_service() {  # start_service WHICH: pg_autoctl run in the background
    running "$1" && return 0
    local d; d=$(pgdata "$1")
    local name=$1; [[ $1 == monitor ]] || name="node$1"
    rm -f "$BASE/run_$1.pid"
    # the pid written is pg_autoctl's own, and it leads its process group (setsid); it runs in
    # $BASE, not the caller's directory: Postgres started later by pg_autoctl (after a failover)
    # refuses to start when that directory is gone ("could not identify current directory")
    as_pg sh -c 'cd "$3" && echo $$ >"$1" && exec setsid pg_autoctl run --pgdata "$2"' sh "$BASE/run_$1.pid" "$d" "$BASE" \
        >>"$BASE/log/$name.log" 2>&1 </dev/null 9>&- &
    wait_for 5 test -s "$BASE/run_$1.pid"
}

MONITOR_URI="postgres://autoctl_node@$HOST:$MON_PORT/pg_auto_failover?sslmode=disable"

create_monitor() {
    [[ -f "$(pgdata monitor)/PG_VERSION" && -f "$BASE/monitor.created" ]] && return 0
    init_cluster monitor
    as_pg pg_autoctl create monitor --pgdata "$(pgdata monitor)" --pgport "$MON_PORT" \
        --hostname "$HOST" --auth trust --no-ssl >>"$BASE/log/monitor.log" 2>&1
    touch "$BASE/monitor.created"
}

create_node() {  # create_node N
    local n=$1 d; d=$(pgdata "$n")
    [[ -f "$BASE/node$n.created" ]] && return 0
    if ((n == 1)); then init_cluster 1; else rm -rf "$d"; fi
    as_pg pg_autoctl create postgres --pgdata "$d" --pgport "$(port_of "$n")" --hostname "$HOST" \
        --listen "$HOST" --name "node$n" --dbname "$DBNAME" --monitor "$MONITOR_URI" \
        --auth trust --no-ssl --replication-quorum true --candidate-priority 50 \
        >>"$BASE/log/node$n.log" 2>&1
    if ((n == 2)); then  # the standby was cloned by pg_basebackup; keep its small settings
        grep -q 'dsg_lib HA' "$d/postgresql.conf" || cat >>"$d/postgresql.conf" <<EOF
# dsg_lib HA test settings (scripts/pg_auto_failover.sh)
unix_socket_directories = '$SOCK'
shared_buffers = 32MB
checkpoint_completion_target = 0
EOF
    fi
    touch "$BASE/node$n.created"
}

# "primary:PORT" / "secondary:PORT" per answering node
role_of() { local r; r=$(q "$1" 'select pg_is_in_recovery()') || return 1; [[ $r == f ]] && echo primary || echo secondary; }
primary_port() {
    local p
    for p in "${NODE_PORTS[@]}"; do [[ "$(role_of "$p" 2>/dev/null)" == primary ]] && { echo "$p"; return 0; }; done
    return 1
}
node_of_port() { [[ $1 == "${NODE_PORTS[0]}" ]] && echo 1 || echo 2; }

# healthy = the monitor says one primary and one secondary, synchronous replication on
healthy() {
    local states
    states=$(q "$MON_PORT" "select string_agg(reportedstate::text || '/' || goalstate::text, ',' order by nodeid) from pgautofailover.node" pg_auto_failover) || return 1
    [[ "$states" == "primary/primary,secondary/secondary" || "$states" == "secondary/secondary,primary/primary" ]] || return 1
    local p; p=$(primary_port) || return 1
    [[ -n "$(q "$p" "select 1 from pg_stat_replication where sync_state in ('sync','quorum')")" ]]
}

show_states() { q "$MON_PORT" "select nodename || ' :' || nodeport || ' ' || reportedstate || ' -> ' || goalstate from pgautofailover.node order by nodeid" pg_auto_failover || echo "monitor down"; }

do_start() {
    ensure_package
    ensure_dirs
    exec 9>"$BASE/lock"; flock -w 300 9 || die "another $ME is running"
    create_monitor
    monitor_conf
    start_service monitor
    wait_for 30 answers "$MON_PORT" || die "monitor did not start (log: $BASE/log/monitor.log)"
    q "$MON_PORT" 'select pg_reload_conf()' >/dev/null
    if [[ ! -f "$BASE/node1.created" ]]; then create_node 1; fi
    start_service 1
    wait_for 60 answers "${NODE_PORTS[0]}" || die "node1 did not start (log: $BASE/log/node1.log)"
    if [[ ! -f "$BASE/node2.created" ]]; then
        # fast base backup: without this the standby's pg_basebackup waits for a spread checkpoint
        wait_for 60 primary_port >/dev/null || die "no primary to clone from"
        q "$(primary_port)" 'CHECKPOINT' >/dev/null || true
        create_node 2
    fi
    start_service 2
    wait_for 120 healthy || { show_states >&2; die "formation not healthy after 120 s (logs: $BASE/log)"; }
    log "healthy: primary :$(primary_port)"
}

stop_one() {  # stop_one WHICH: graceful, then hard
    local pid; pid=$(run_pid "$1")
    if running "$1"; then
        kill -TERM "$pid" 2>/dev/null || true
        wait_for 30 bash -c "! kill -0 $pid 2>/dev/null" || kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    local d; d=$(pgdata "$1")
    if [[ -f "$d/postmaster.pid" ]] && as_pg pg_ctl -D "$d" status >/dev/null 2>&1; then
        as_pg pg_ctl -D "$d" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -f "$BASE/run_$1.pid"
}

do_stop() {
    [[ -d "$BASE" ]] || return 0
    # secondary first, then primary, then monitor: any other order swaps roles on restart
    local p first=2 second=1
    if p=$(primary_port 2>/dev/null); then
        [[ $(node_of_port "$p") == 2 ]] && { first=1; second=2; }
    fi
    stop_one "$first"; stop_one "$second"; stop_one monitor
    log "stopped"
}

kill_node() {  # kill_node N: SIGKILL pg_autoctl (its process group) and the postmaster
    local n=$1 pid d pm; pid=$(run_pid "$n"); d=$(pgdata "$n")
    pm=$(head -n1 "$d/postmaster.pid" 2>/dev/null || true)
    [[ -n "$pid" ]] && kill -KILL -- "-$pid" 2>/dev/null || true
    [[ -n "$pm" ]] && kill -KILL "$pm" 2>/dev/null || true
    rm -f "$BASE/run_$n.pid"
    log "killed node$n (:$(port_of "$n"))"
}

case "${1:-status}" in
    start|up) do_start ;;
    stop|down) do_stop ;;
    status) show_states; healthy ;;
    primary) primary_port ;;
    failover)
        healthy || die "formation is not healthy; refusing a planned failover"
        before=$(primary_port); t0=$(date +%s.%N)
        as_pg pg_autoctl perform failover --pgdata "$(pgdata monitor)" --wait 60 >>"$BASE/log/failover.log" 2>&1
        wait_for 60 healthy || die "not healthy after failover"
        log "failover :$before -> :$(primary_port) in $(echo "$(date +%s.%N) - $t0" | bc) s"
        ;;
    kill-primary)
        p=$(primary_port) || die "no primary"
        kill_node "$(node_of_port "$p")"
        ;;
    kill-node) kill_node "${2:?node number}" ;;
    start-node) ensure_dirs; start_service "${2:?node number}" ;;
    wait-healthy) wait_for "${2:-120}" healthy || { show_states >&2; die "not healthy"; } ;;
    teardown) do_stop; rm -rf "$BASE"; log "removed $BASE" ;;
    -h|--help|help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown action '$1' (start|stop|status|primary|failover|kill-primary|kill-node N|start-node N|wait-healthy|teardown)" ;;
esac
