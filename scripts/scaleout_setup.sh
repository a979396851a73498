#!/usr/bin/env bash
# scaleout_setup.sh - local "scaled out" PostgreSQL topology for dsg_lib tests/CI.
#
#   primary    127.0.0.1:5432  (existing Debian cluster, e.g. 15/main)
#   replica    127.0.0.1:5433  (streaming hot standby, Debian cluster 15/dsg_replica)
#   pgbouncer  127.0.0.1:6432  (transaction pooling -> primary; database "test")
#
# Usage:
#   scripts/scaleout_setup.sh [setup]      # idempotent; default action
#   scripts/scaleout_setup.sh status       # exit 0 only if everything is healthy
#   scripts/scaleout_setup.sh stop-replica # fast shutdown of the replica (fallback tests)
#   scripts/scaleout_setup.sh start-replica# start it again, wait until streaming
#   scripts/scaleout_setup.sh teardown     # remove replica, slot, pgbouncer instance
#
# Needs root (re-execs itself with `sudo -n` when available). Does not need systemd.
# Everything can be overridden with environment variables (see below).
set -Eeuo pipefail

PRIMARY_HOST=127.0.0.1
PRIMARY_PORT="${DSG_PRIMARY_PORT:-5432}"
REPLICA_PORT="${DSG_REPLICA_PORT:-5433}"
PGB_PORT="${DSG_PGBOUNCER_PORT:-6432}"
REPLICA_NAME="${DSG_REPLICA_CLUSTER:-dsg_replica}"
SLOT="${DSG_REPLICATION_SLOT:-dsg_lib_replica}"
REPL_USER="${DSG_REPLICATION_USER:-replicator}"
APP_DB="${DSG_DB:-test}"
PGB_USERS="${DSG_PGBOUNCER_USERS:-postgres root}"
PGB_INI="${DSG_PGBOUNCER_INI:-/etc/pgbouncer/dsg_lib.ini}"
PGB_USERLIST="${PGB_INI%.ini}_userlist.txt"
PGB_PIDFILE=/var/run/postgresql/dsg_lib_pgbouncer.pid
PGB_LOG=/var/log/postgresql/dsg_lib_pgbouncer.log
PROBE_TABLE=dsg_lib_replica_probe   # lives in the "postgres" database, not in $APP_DB
WAIT_SECS="${DSG_WAIT_SECS:-30}"   # max wait for replica to stream after start
LOCK_FILE=/run/lock/dsg_lib_scaleout.lock
export PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-5}"   # never hang on a port that accepts but does not speak

ME="scaleout_setup"
log() { echo "[$ME] $*" >&2; }
die() { echo "[$ME] ERROR: $*" >&2; exit 1; }
trap 'rc=$?; echo "[$ME] ERROR: command failed (exit $rc) at line $LINENO: $BASH_COMMAND" >&2; exit $rc' ERR

if [[ $EUID -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then exec sudo -n -E "$0" "$@"; fi
    die "must run as root (or with passwordless sudo)"
fi

# ---------------------------------------------------------------- helpers
q() {   # q PORT DB SQL  -> tuples only, unaligned; as superuser postgres over TCP
    PGOPTIONS="-c client_min_messages=warning" psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$PRIMARY_HOST" -p "$1" -U postgres -d "$2" -c "$3"
}
qp() { q "$PRIMARY_PORT" postgres "$1"; }
qr() { q "$REPLICA_PORT" postgres "$1"; }
answers() { pg_isready -q -h "$PRIMARY_HOST" -p "$1" -t 2 >/dev/null 2>&1; }
as_pg() { runuser -u postgres -- "$@"; }

# Locate primary cluster (version + name) by port.
PG_VER="" PRIMARY_NAME=""
find_primary() {
    local line
    line=$(pg_lsclusters -h 2>/dev/null | awk -v p="$PRIMARY_PORT" '$3==p {print $1, $2; exit}') || true
    [[ -n "$line" ]] || die "no PostgreSQL cluster configured on port $PRIMARY_PORT (pg_lsclusters; ls /etc/postgresql)"
    read -r PG_VER PRIMARY_NAME <<<"$line"
    [[ "$PRIMARY_NAME" != "$REPLICA_NAME" ]] || die "cluster on port $PRIMARY_PORT is the replica cluster itself?"
    PG_BIN="/usr/lib/postgresql/$PG_VER/bin"
    REPLICA_DATA="/var/lib/postgresql/$PG_VER/$REPLICA_NAME"
    REPLICA_CONF_DIR="/etc/postgresql/$PG_VER/$REPLICA_NAME"
}

replica_cluster_exists() { [[ -d "$REPLICA_CONF_DIR" ]] && pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VER" -v n="$REPLICA_NAME" '$1==v && $2==n {f=1} END {exit !f}'; }
replica_online() { pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VER" -v n="$REPLICA_NAME" '$1==v && $2==n && $4 ~ /^online/ {f=1} END {exit !f}'; }

replica_streaming() {
    answers "$REPLICA_PORT" || return 1
    [[ "$(qr 'select pg_is_in_recovery()' 2>/dev/null)" == t ]] || return 1
    [[ "$(qr 'select status from pg_stat_wal_receiver' 2>/dev/null)" == streaming ]] || return 1
}

# NB: daemons must not inherit fd 9 (the flock), hence the 9>&- on every start.
ctl_replica() { pg_ctlcluster --skip-systemctl-redirect "$@" "$PG_VER" "$REPLICA_NAME" 9>&-; }

wait_for() {  # wait_for SECONDS DESCRIPTION CMD...
    local secs=$1 what=$2; shift 2
    local deadline=$((SECONDS + secs))
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# ---------------------------------------------------------------- primary
ensure_primary_running() {
    if ! answers "$PRIMARY_PORT"; then
        log "primary $PG_VER/$PRIMARY_NAME not answering; starting it"
        pg_ctlcluster --skip-systemctl-redirect "$PG_VER" "$PRIMARY_NAME" start 9>&- || true
        wait_for 30 "primary" answers "$PRIMARY_PORT" || die "primary on port $PRIMARY_PORT does not answer"
    fi
}

NEED_RELOAD=0 NEED_RESTART=0
# set_min NAME MIN_INT  /  set_val NAME VALUE [ACCEPTABLE_REGEX]
set_min() {
    local cur; cur=$(qp "select setting from pg_settings where name='$1'")
    if ((cur < $2)); then alter_system "$1" "$2"; fi
}
set_val() {
    local cur; cur=$(qp "select setting from pg_settings where name='$1'")
    [[ "$cur" =~ ^(${3:-$2})$ ]] || alter_system "$1" "$2"
}
alter_system() {
    local ctx; ctx=$(qp "select context from pg_settings where name='$1'")
    log "primary: ALTER SYSTEM SET $1 = '$2' (context: $ctx)"
    qp "ALTER SYSTEM SET $1 = '$2'" >/dev/null
    if [[ "$ctx" == postmaster ]]; then NEED_RESTART=1; else NEED_RELOAD=1; fi
}

ensure_primary_config() {
    local hba; hba=$(qp 'show hba_file')
    [[ -f "$hba" ]] || die "pg_hba.conf not found at $hba"

    # role
    if [[ "$(qp "select count(*) from pg_roles where rolname='$REPL_USER' and rolreplication and rolcanlogin")" != 1 ]]; then
        log "primary: creating/altering role $REPL_USER (LOGIN REPLICATION)"
        qp "DO \$\$BEGIN
              IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname='$REPL_USER') THEN
                ALTER ROLE \"$REPL_USER\" WITH LOGIN REPLICATION;
              ELSE CREATE ROLE \"$REPL_USER\" WITH LOGIN REPLICATION; END IF; END\$\$" >/dev/null
    fi

    # pg_hba (first match wins; "all" does NOT match replication connections)
    local addr line
    for addr in 127.0.0.1/32 ::1/128; do
        line="host    replication     $REPL_USER      $addr    trust"
        if ! grep -Eq "^[[:space:]]*host[[:space:]]+replication[[:space:]]+($REPL_USER|all)[[:space:]]+$addr[[:space:]]+trust" "$hba"; then
            log "primary: appending to $hba: $line"
            grep -q 'dsg_lib scale-out' "$hba" || printf '\n# dsg_lib scale-out (scripts/scaleout_setup.sh)\n' >>"$hba"
            printf '%s\n' "$line" >>"$hba"
            NEED_RELOAD=1
        fi
    done

    # server settings (never lower anything)
    set_val wal_level replica 'replica|logical'
    set_min max_wal_senders 5
    set_min max_replication_slots 5
    set_val hot_standby on
    # cap WAL retained by an abandoned slot (replica stopped/torn down uncleanly);
    # a lost slot is detected below and the replica is rebuilt.
    [[ "$(qp "select setting from pg_settings where name='max_slot_wal_keep_size'")" != -1 ]] \
        || alter_system max_slot_wal_keep_size 2GB

    if ((NEED_RESTART)); then
        log "primary: restarting $PG_VER/$PRIMARY_NAME (postmaster-level setting changed)"
        pg_ctlcluster --skip-systemctl-redirect "$PG_VER" "$PRIMARY_NAME" restart 9>&-
        wait_for 30 "primary" answers "$PRIMARY_PORT" || die "primary did not come back after restart"
    elif ((NEED_RELOAD)); then
        qp 'select pg_reload_conf()' >/dev/null
        sleep 0.3
    fi
    local bad; bad=$(qp "select count(*) from pg_hba_file_rules where error is not null")
    [[ "$bad" == 0 ]] || die "pg_hba.conf ($hba) has errors: $(qp 'select line_number, error from pg_hba_file_rules where error is not null')"
}

slot_state() { qp "select coalesce(wal_status,'reserved') || ':' || case when active then 't' else 'f' end from pg_replication_slots where slot_name='$SLOT'"; }

drop_slot() {
    local i
    for i in $(seq 1 50); do
        [[ -z "$(slot_state)" ]] && return 0
        if [[ "$(slot_state)" == *:f ]]; then
            qp "select pg_drop_replication_slot('$SLOT') where exists (select 1 from pg_replication_slots where slot_name='$SLOT' and not active)" >/dev/null || true
        fi
        sleep 0.2
    done
    [[ -z "$(slot_state)" ]] || die "could not drop replication slot $SLOT (still active?)"
}

# ---------------------------------------------------------------- replica
write_replica_conf() {
    local f="$REPLICA_CONF_DIR/conf.d/90-dsg-lib-replica.conf" tmp
    mkdir -p "$REPLICA_CONF_DIR/conf.d"
    tmp=$(mktemp)
    {
        echo "# managed by dsg_lib scripts/scaleout_setup.sh"
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $REPLICA_PORT"
        echo "hot_standby = on"
        echo "hot_standby_feedback = on"
        echo "wal_receiver_status_interval = 1s"
        echo "max_standby_streaming_delay = 5s"
        echo "ssl = off"
        # a hot standby refuses to start if these are lower than on the primary
        local s
        for s in max_connections max_worker_processes max_wal_senders max_prepared_transactions max_locks_per_transaction; do
            echo "$s = $(qp "select setting from pg_settings where name='$s'")"
        done
    } >"$tmp"
    install -o postgres -g postgres -m 0644 "$tmp" "$f"
    rm -f "$tmp"
}

build_replica() {
    log "replica: (re)building $PG_VER/$REPLICA_NAME on port $REPLICA_PORT from primary :$PRIMARY_PORT"
    if replica_cluster_exists; then
        pg_dropcluster --stop "$PG_VER" "$REPLICA_NAME" >/dev/null 2>&1 9>&- || true
    fi
    if answers "$REPLICA_PORT"; then
        die "port $REPLICA_PORT is in use by something other than cluster $PG_VER/$REPLICA_NAME (see: ss -ltnp 'sport = :$REPLICA_PORT')"
    fi
    rm -rf "$REPLICA_CONF_DIR" "$REPLICA_DATA"

    # fresh slot so the base backup starts retaining WAL from now
    drop_slot
    qp "select pg_create_physical_replication_slot('$SLOT', true)" >/dev/null

    # Debian cluster skeleton (config in /etc, pg_lsclusters/pg_ctlcluster support),
    # then replace its initdb'd data directory by a base backup of the primary.
    pg_createcluster "$PG_VER" "$REPLICA_NAME" -p "$REPLICA_PORT" -d "$REPLICA_DATA" \
        --start-conf manual -- --no-sync >/dev/null
    write_replica_conf
    # same client auth rules as the primary (Debian's default for new clusters is
    # scram-sha-256 on TCP, which would reject the password-less test users)
    install -o postgres -g postgres -m 0640 "$(qp 'show hba_file')" "$REPLICA_CONF_DIR/pg_hba.conf"
    find "$REPLICA_DATA" -mindepth 1 -delete
    as_pg "$PG_BIN/pg_basebackup" -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$REPL_USER" \
        -D "$REPLICA_DATA" -X stream -c fast -R -S "$SLOT" --no-sync \
        || die "pg_basebackup from primary failed (pg_hba replication line for $REPL_USER? max_wal_senders?)"
    chmod 0700 "$REPLICA_DATA"
}

start_replica() {
    if ! replica_online; then
        ctl_replica start || {
            tail -n 20 "/var/log/postgresql/postgresql-$PG_VER-$REPLICA_NAME.log" >&2 || true
            return 1
        }
    fi
    wait_for "$WAIT_SECS" "replica streaming" replica_streaming
}

probe_replication() {   # test write on primary must become visible on replica
    local token; token="$(date +%s%N)-$$"
    qp "create table if not exists public.$PROBE_TABLE (id int primary key, token text not null, at timestamptz not null default now())" >/dev/null
    qp "insert into public.$PROBE_TABLE (id, token) values (1, '$token')
        on conflict (id) do update set token = excluded.token, at = now()" >/dev/null
    wait_for 15 "probe row" probe_visible "$token"
}
probe_visible() { [[ "$(qr "select token from public.$PROBE_TABLE where id = 1" 2>/dev/null)" == "$1" ]]; }

ensure_replica() {
    local st; st=$(slot_state)
    if [[ "$st" == lost:* || "$st" == unreserved:* ]]; then
        log "replica: slot $SLOT is $st; rebuilding replica"
        replica_cluster_exists && { ctl_replica stop >/dev/null 2>&1 || true; }
        build_replica
    elif replica_cluster_exists && [[ -n "$st" ]]; then
        # the primary's settings may have grown (e.g. max_connections): a hot standby with lower
        # values pauses recovery, so refresh the replica's copy and restart it when it changed
        local before; before=$(cat "$REPLICA_CONF_DIR"/conf.d/* 2>/dev/null | md5sum)
        write_replica_conf
        if [[ "$before" != "$(cat "$REPLICA_CONF_DIR"/conf.d/* | md5sum)" ]] && replica_online; then
            log "replica: settings changed; restarting"
            ctl_replica -m fast restart || true
        fi
        if replica_streaming; then
            :
        elif start_replica; then
            log "replica: started existing cluster $PG_VER/$REPLICA_NAME"
        else
            log "replica: existing cluster does not stream; rebuilding"
            build_replica
        fi
    else
        build_replica
    fi
    replica_streaming || start_replica \
        || die "replica on port $REPLICA_PORT is not streaming (log: /var/log/postgresql/postgresql-$PG_VER-$REPLICA_NAME.log)"
    probe_replication || die "a test write on the primary did not show up on the replica within 15s"
}

# ---------------------------------------------------------------- pgbouncer
PGB_INSTALLED_NOW=0
ensure_pgbouncer_pkg() {
    command -v pgbouncer >/dev/null 2>&1 && return 0
    log "pgbouncer: installing package"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q pgbouncer >/dev/null 2>&1; then
        apt-get update -q >/dev/null 2>&1 || true
        apt-get install -y -q pgbouncer >/dev/null || die "apt-get install pgbouncer failed"
    fi
    command -v pgbouncer >/dev/null 2>&1 || die "pgbouncer binary not found after install"
    PGB_INSTALLED_NOW=1
}

pgb_pid() {  # pid of *our* pgbouncer, or nothing
    local pid
    [[ -f "$PGB_PIDFILE" ]] || return 0
    pid=$(cat "$PGB_PIDFILE" 2>/dev/null) || return 0
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
        && [[ "$(cat /proc/$pid/comm 2>/dev/null)" == pgbouncer ]] && echo "$pid"
    return 0
}
pgb_works() {
    [[ "$(psql -X -q -A -t -h "$PRIMARY_HOST" -p "$PGB_PORT" -U postgres -d "$APP_DB" -c 'select 1' 2>/dev/null)" == 1 ]]
}

write_pgbouncer_conf() {  # returns 0 if the config changed
    local changed=1 tmp u
    mkdir -p "$(dirname "$PGB_INI")"
    tmp=$(mktemp)
    cat >"$tmp" <<EOF
; managed by dsg_lib scripts/scaleout_setup.sh
[databases]
$APP_DB = host=$PRIMARY_HOST port=$PRIMARY_PORT dbname=$APP_DB
* = host=$PRIMARY_HOST port=$PRIMARY_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir = /var/run/postgresql
auth_type = trust
auth_file = $PGB_USERLIST
admin_users = postgres
stats_users = postgres
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
min_pool_size = 0
server_reset_query =
ignore_startup_parameters = extra_float_digits
pidfile = $PGB_PIDFILE
logfile = $PGB_LOG
log_connections = 0
log_disconnections = 0
EOF
    cmp -s "$tmp" "$PGB_INI" || { install -o postgres -g postgres -m 0640 "$tmp" "$PGB_INI"; changed=0; }
    : >"$tmp"
    for u in $PGB_USERS; do printf '"%s" ""\n' "$u" >>"$tmp"; done
    cmp -s "$tmp" "$PGB_USERLIST" || { install -o postgres -g postgres -m 0640 "$tmp" "$PGB_USERLIST"; changed=0; }
    rm -f "$tmp"
    return $changed
}

ensure_pgbouncer() {
    ensure_pgbouncer_pkg
    local pid changed=1
    write_pgbouncer_conf && changed=0
    pid=$(pgb_pid)
    if [[ -n "$pid" ]]; then
        if ((changed == 0)); then log "pgbouncer: config changed, reloading (SIGHUP)"; kill -HUP "$pid"; sleep 0.3; fi
        pgb_works && return 0
        log "pgbouncer: running (pid $pid) but not answering; restarting"
        kill "$pid" 2>/dev/null || true
        wait_for 10 "pgbouncer exit" bash -c "! kill -0 $pid 2>/dev/null" || kill -9 "$pid" 2>/dev/null || true
    fi
    if answers "$PGB_PORT" || ss -ltnH "sport = :$PGB_PORT" 2>/dev/null | grep -q .; then
        # Debian/Ubuntu start the packaged pgbouncer service on 6432 right after install
        # (when systemd/invoke-rc.d allow it). Only stop it if we installed it just now.
        if ((PGB_INSTALLED_NOW)); then
            log "pgbouncer: stopping the distro pgbouncer service started by the package install"
            { systemctl stop pgbouncer || service pgbouncer stop; } >/dev/null 2>&1 || true
            wait_for 10 "port free" bash -c "! ss -ltnH 'sport = :$PGB_PORT' | grep -q ." || true
        fi
        if ss -ltnH "sport = :$PGB_PORT" 2>/dev/null | grep -q .; then
            if pgb_works; then
                log "pgbouncer: something else already serves $APP_DB on port $PGB_PORT; leaving it alone"
                return 0
            fi
            die "port $PGB_PORT is in use by another process (ss -ltnp 'sport = :$PGB_PORT'); stop it (e.g. 'service pgbouncer stop') and re-run"
        fi
    fi
    touch "$PGB_LOG"; chown postgres:postgres "$PGB_LOG"
    as_pg pgbouncer -d -q "$PGB_INI" 9>&- || { tail -n 20 "$PGB_LOG" >&2; die "pgbouncer failed to start"; }
    wait_for 15 "pgbouncer" pgb_works || { tail -n 20 "$PGB_LOG" >&2; die "pgbouncer on port $PGB_PORT does not serve database $APP_DB"; }
    log "pgbouncer: started (pid $(pgb_pid)) on 127.0.0.1:$PGB_PORT, pool_mode=transaction"
}

stop_pgbouncer() {
    local pid; pid=$(pgb_pid)
    if [[ -n "$pid" ]]; then
        kill -INT "$pid" 2>/dev/null || true   # SIGINT = safe shutdown; SIGTERM = immediate
        wait_for 5 "pgbouncer exit" bash -c "! kill -0 $pid 2>/dev/null" || kill -TERM "$pid" 2>/dev/null || true
        wait_for 5 "pgbouncer exit" bash -c "! kill -0 $pid 2>/dev/null" || kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PGB_PIDFILE" "$PGB_INI" "$PGB_USERLIST"
}

# ---------------------------------------------------------------- status / actions
status_line() {
    local p r b
    answers "$PRIMARY_PORT" && p="up" || p="DOWN"
    if replica_streaming; then r="streaming"; elif answers "$REPLICA_PORT"; then r="up-not-streaming"
    elif replica_cluster_exists; then r="stopped"; else r="absent"; fi
    if [[ -n "$(pgb_pid)" ]] && pgb_works; then b="up(transaction)"; elif pgb_works; then b="up(foreign)"; else b="down"; fi
    echo "scaleout: primary 127.0.0.1:$PRIMARY_PORT $p | replica 127.0.0.1:$REPLICA_PORT $r (slot $SLOT) | pgbouncer 127.0.0.1:$PGB_PORT $b -> db $APP_DB"
    [[ "$p" == up && "$r" == streaming && "$b" == up* ]]
}

main() {
    local action="${1:-setup}"
    exec 9>"$LOCK_FILE"
    flock -w 120 9 || die "another scaleout_setup.sh is running (lock $LOCK_FILE)"
    find_primary
    case "$action" in
        setup|up)
            ensure_primary_running
            ensure_primary_config
            ensure_replica
            ensure_pgbouncer
            status_line || die "setup finished but not everything is healthy"
            ;;
        start-replica)
            ensure_primary_running
            replica_cluster_exists || die "replica cluster $PG_VER/$REPLICA_NAME does not exist; run '$0 setup'"
            start_replica || die "replica did not start streaming (log: /var/log/postgresql/postgresql-$PG_VER-$REPLICA_NAME.log)"
            probe_replication || die "replica started but does not replay writes from the primary"
            status_line || true
            ;;
        stop-replica)
            if replica_cluster_exists && replica_online; then ctl_replica -m fast stop; fi
            wait_for 10 "replica down" bash -c "! pg_isready -q -h $PRIMARY_HOST -p $REPLICA_PORT -t 1" \
                || die "replica still answers on port $REPLICA_PORT"
            status_line || true
            ;;
        teardown|down)
            if replica_cluster_exists; then
                pg_dropcluster --stop "$PG_VER" "$REPLICA_NAME" || die "pg_dropcluster $PG_VER $REPLICA_NAME failed"
            fi
            rm -rf "$REPLICA_CONF_DIR" "$REPLICA_DATA"
            if answers "$PRIMARY_PORT"; then
                drop_slot
                qp "drop table if exists public.$PROBE_TABLE" >/dev/null
            fi
            stop_pgbouncer
            echo "scaleout: torn down (replica $PG_VER/$REPLICA_NAME, slot $SLOT, pgbouncer :$PGB_PORT); primary left running"
            ;;
        status)
            status_line || exit 1
            ;;
        -h|--help|help)
            sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
            ;;
        *) die "unknown action '$action' (setup|status|stop-replica|start-replica|teardown)";;
    esac
}

main "$@"
