#!/usr/bin/env bash
# galera.sh - a local 3-node MariaDB Galera cluster for dsg_lib's HA tests.
#
#   node N (1..3): SQL 127.0.0.1:331N, gcomm 456N, IST 457N, SST (rsync) 458N
#   database "dsg_ha", user root@127.0.0.1 without password (test only)
#
# Usage (as root; idempotent):
#   scripts/galera.sh start          # create on first use; bootstrap node 1, join 2 and 3
#   scripts/galera.sh stop           # stop 3, 2, then 1 (node 1 bootstraps next time)
#   scripts/galera.sh status         # exit 0 only when all 3 nodes are Synced
#   scripts/galera.sh kill N         # SIGKILL node N's mariadbd
#   scripts/galera.sh restart N      # (re)start node N; after a kill it rejoins by IST
#   scripts/galera.sh wait-synced [N_NODES]   # wait until N_NODES (default 3) are Synced
#   scripts/galera.sh teardown       # stop and delete everything
#
# Never touches the system MariaDB (3306): every mariadbd runs with --defaults-file.
set -Eeuo pipefail

BASE="${DSG_HA_DIR:-/var/tmp/dsg_lib_ha}/galera"
RUN="$BASE/run"
DBNAME="${DSG_GALERA_DB:-dsg_ha}"
HOST=127.0.0.1
ME=galera
NODES=(1 2 3)

log() { echo "[$ME] $*" >&2; }
die() { echo "[$ME] ERROR: $*" >&2; exit 1; }
[[ $EUID -eq 0 ]] || die "must run as root"

sql_port() { echo $((3310 + $1)); }
cnf() { echo "$BASE/node$1.cnf"; }
datadir() { echo "$BASE/node$1"; }
sock() { echo "$RUN/node$1.sock"; }
pidfile() { echo "$RUN/node$1.pid"; }
errlog() { echo "$BASE/node$1.err"; }

wait_for() {  # wait_for SECONDS CMD...
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do ((SECONDS < deadline)) || return 1; sleep 0.3; done
}
sq() { mariadb --no-defaults -uroot -S "$(sock "$1")" -N -B -e "$2" 2>/dev/null; }
status_var() { sq "$1" "show global status like '$2'" | awk '{print $2}'; }
synced() { [[ "$(status_var "$1" wsrep_local_state_comment)" == Synced ]]; }
cluster_size() { status_var "$1" wsrep_cluster_size; }

write_cnf() {
    local n=$1
    cat >"$(cnf "$n")" <<EOF
# managed by dsg_lib scripts/galera.sh (test only)
[mysqld]
user = mysql
datadir = $(datadir "$n")
socket = $(sock "$n")
pid-file = $(pidfile "$n")
log-error = $(errlog "$n")
port = $(sql_port "$n")
bind-address = $HOST
skip-name-resolve
innodb_buffer_pool_size = 32M
innodb_log_file_size = 32M
innodb_flush_log_at_trx_commit = 2
performance_schema = OFF
binlog_format = ROW
default_storage_engine = InnoDB
innodb_autoinc_lock_mode = 2
wsrep_on = ON
wsrep_provider = /usr/lib/galera/libgalera_smm.so
wsrep_cluster_name = dsg_lib_galera
wsrep_cluster_address = gcomm://$HOST:4561,$HOST:4562,$HOST:4563
wsrep_node_name = node$n
wsrep_node_address = $HOST:$((4560 + n))
wsrep_node_incoming_address = $HOST:$(sql_port "$n")
# each node needs its own IST and SST ports on one host, or they collide
wsrep_provider_options = "gmcast.listen_addr=tcp://$HOST:$((4560 + n));ist.recv_addr=$HOST:$((4570 + n));gcache.size=64M"
wsrep_sst_method = rsync
wsrep_sst_receive_address = $HOST:$((4580 + n))
wsrep_slave_threads = 2
EOF
}

ensure_node_files() {
    local n=$1
    mkdir -p "$BASE" "$RUN"
    chown mysql:mysql "$RUN"
    write_cnf "$n"
    if [[ ! -d "$(datadir "$n")/mysql" ]]; then
        mkdir -p "$(datadir "$n")"; chown mysql:mysql "$(datadir "$n")"
        mariadb-install-db --defaults-file="$(cnf "$n")" --user=mysql --skip-test-db \
            --auth-root-authentication-method=normal >"$BASE/install$n.log" 2>&1 \
            || die "mariadb-install-db failed for node $n ($BASE/install$n.log)"
    fi
}

pid_of() { local p; p=$(cat "$(pidfile "$1")" 2>/dev/null) || return 1; kill -0 "$p" 2>/dev/null && echo "$p"; }
alive() { pid_of "$1" >/dev/null && [[ -S "$(sock "$1")" ]] && sq "$1" 'select 1' >/dev/null; }

launch() {  # launch N EXTRA_ARGS...: mariadbd in the background, own session
    local n=$1; shift
    setsid mariadbd --defaults-file="$(cnf "$n")" "$@" </dev/null >>"$(errlog "$n")" 2>&1 9>&- &
}

bootstrap() {
    local g; g="$(datadir 1)/grastate.dat"
    [[ -f "$g" ]] && sed -i 's/^safe_to_bootstrap:.*/safe_to_bootstrap: 1/' "$g"
    launch 1 --wsrep-new-cluster
    wait_for 60 synced 1 || die "node 1 did not bootstrap ($(errlog 1))"
    sq 1 "CREATE DATABASE IF NOT EXISTS $DBNAME;
          CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
          GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;" \
        || die "could not create database/user on node 1"
}

recovered_position() {  # after a crash: ask InnoDB for the last committed GTID
    local n=$1 f; f=$(mktemp)
    mariadbd --defaults-file="$(cnf "$n")" --wsrep-recover --log-error="$f" >/dev/null 2>&1 || true
    chmod a+r "$f" 2>/dev/null || true
    sed -n 's/.*WSREP: Recovered position: *\([^ ]*\).*/\1/p' "$f" | tail -n1
    rm -f "$f"
}

start_node() {  # start_node N: join the running cluster (IST after a crash, SST when new)
    local n=$1 pos
    alive "$n" && return 0
    ensure_node_files "$n"
    rm -f "$(sock "$n")"
    pos=$(recovered_position "$n")
    if [[ -n "$pos" && "$pos" != *:-1 ]]; then
        launch "$n" --wsrep_start_position="$pos"
    else
        launch "$n"
    fi
    wait_for 90 synced "$n" || die "node $n did not sync ($(errlog "$n"))"
}

do_start() {
    exec 9>"$BASE.lock"; flock -w 300 9 || die "another $ME is running"
    local n any=0
    for n in "${NODES[@]}"; do ensure_node_files "$n"; alive "$n" && any=1; done
    if ((any == 0)); then bootstrap; fi
    for n in "${NODES[@]}"; do start_node "$n"; done
    wait_for 30 all_synced 3 || die "cluster not synced"
    log "cluster synced: $(for n in "${NODES[@]}"; do printf ':%s ' "$(sql_port "$n")"; done)"
}

all_synced() {  # all_synced SIZE: every alive node Synced in a cluster of SIZE
    local n cnt=0
    for n in "${NODES[@]}"; do
        alive "$n" || continue
        synced "$n" && [[ "$(cluster_size "$n")" == "$1" ]] && cnt=$((cnt + 1))
    done
    ((cnt == $1))
}

stop_node() {
    local n=$1 p
    p=$(pid_of "$n") || return 0
    kill -TERM "$p" 2>/dev/null || true
    wait_for 60 bash -c "! kill -0 $p 2>/dev/null" || kill -KILL "$p" 2>/dev/null || true
}

show_status() {
    local n
    for n in "${NODES[@]}"; do
        if alive "$n"; then
            echo "node$n :$(sql_port "$n") $(status_var "$n" wsrep_local_state_comment) size=$(cluster_size "$n")"
        else
            echo "node$n :$(sql_port "$n") down"
        fi
    done
}

case "${1:-status}" in
    start|up) do_start ;;
    stop|down) stop_node 3; stop_node 2; stop_node 1; log "stopped" ;;
    status) show_status; all_synced 3 ;;
    kill) p=$(pid_of "${2:?node number}") && kill -KILL "$p"; log "killed node$2" ;;
    restart) stop_node "${2:?node number}"; start_node "$2"; log "node$2 synced" ;;
    wait-synced) wait_for 90 all_synced "${2:-3}" || { show_status >&2; die "not synced"; } ;;
    teardown) stop_node 3; stop_node 2; stop_node 1; rm -rf "$BASE" "$BASE.lock"; log "removed $BASE" ;;
    -h|--help|help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown action '$1' (start|stop|status|kill N|restart N|wait-synced [N]|teardown)" ;;
esac
