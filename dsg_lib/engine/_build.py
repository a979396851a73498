"""Engine construction with per-dialect production defaults (private)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from typing import Any

from loguru import logger
from sqlalchemy import event, pool
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .._own_listeners import own
from ..backends import LAST_USED, PASS_THROUGH, install_size_guard, server_in_transaction
from ..errors import TransactionEndedError

DEFAULT_BUSY_TIMEOUT_MS = 5000
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MYSQL_RECYCLE = 3600
DEFAULT_PRE_PING_WINDOW_MS = 1000
#: execution option of a connection whose transactions dsg_lib owns (``transaction()``,
#: sessions): before each statement and the COMMIT, check the database has not ended it
GUARD = "dsg_lib_guard"
#: `GUARD` value of a session that is not a ``transaction()`` block (``get_db_session()``): a
#: statement after the database ended the transaction begins a new one, as it would on a
#: connection without driver autocommit (plain SQLAlchemy), instead of failing
BEGIN_AGAIN = "begin_again"
#: execution option: the statement that begins this connection's next transaction
#: (instead of the dialect's BEGIN); see `snapshot_options`
BEGIN_WITH = "dsg_lib_begin"
#: connection info key: a statement of a guarded MySQL transaction failed, so the
#: transaction state the driver holds is stale (error packets carry no status flags)
_STALE = "dsg_lib_tx_state_stale"


def is_memory_sqlite(url: URL) -> bool:
    """True for ``:memory:``, an empty database, or a ``mode=memory`` URI."""
    database = url.database or ""
    return database in ("", ":memory:") or "mode=memory" in database or (url.query.get("mode") == "memory")


class MemoryKeeper:
    """Holds one plain sqlite3 connection so a named in-memory database outlives pool churn."""

    def __init__(self) -> None:
        self.name = f"file:dsg_lib_mem_{uuid.uuid4().hex}?mode=memory&cache=shared"
        self._conn: sqlite3.Connection | None = None
        self.open()

    def open(self) -> None:
        if self._conn is None:
            self._conn = sqlite3.connect(self.name, uri=True, check_same_thread=False)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def build_engine(
    url: URL, backend: str, options: dict[str, Any], library: dict[str, Any]
) -> tuple[AsyncEngine, MemoryKeeper | None]:
    """Create the ``AsyncEngine`` for ``url`` with ``options`` plus dialect defaults."""
    kwargs = dict(options)
    kwargs.pop("future", None)  # SQLAlchemy 2 engines are always "future"
    connect_args: dict[str, Any] = dict(kwargs.pop("connect_args", None) or {})
    keeper: MemoryKeeper | None = None

    if backend == "sqlite":
        if is_memory_sqlite(url):
            keeper = MemoryKeeper()
            url = url.set(database=keeper.name, query={"uri": "true"})
            kwargs["poolclass"] = pool.AsyncAdaptedQueuePool
            kwargs["pool_size"] = 1
            kwargs["max_overflow"] = 0
        else:
            # SQLAlchemy < 2.0.38 defaults file databases to NullPool; the pool keys
            # (pool_size, pool_timeout, ...) and the behaviour must not depend on the version.
            kwargs["poolclass"] = pool.AsyncAdaptedQueuePool
        kwargs.setdefault("pool_pre_ping", False)
        # Reset returned connections only when a transaction is open (see
        # _install_conditional_reset): each ROLLBACK is a hop to aiosqlite's thread.
        kwargs["pool_reset_on_return"] = None
    elif backend in PASS_THROUGH:
        kwargs.setdefault("pool_pre_ping", True)  # SQLAlchemy's own pre-ping: no dsg_lib hooks here
    else:
        # dsg_lib pings idle connections itself (is_alive, called by _acquire): one round
        # trip and only past pre_ping_window_ms, where SQLAlchemy's pre-ping costs up to
        # three on every checkout (and breaks on some SQLAlchemy/PyMySQL pairs).
        kwargs.pop("pool_pre_ping", None)
        timeout = library.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
        if backend == "postgresql":
            connect_args.setdefault("timeout", timeout)
            if library.get("statement_timeout_ms"):
                settings = dict(connect_args.get("server_settings") or {})
                settings.setdefault("statement_timeout", str(library["statement_timeout_ms"]))
                connect_args["server_settings"] = settings
            if library.get("pgbouncer"):
                # Transaction-mode poolers hand each transaction a different server
                # connection: named prepared statements must not be cached or reused.
                connect_args["statement_cache_size"] = 0
                connect_args["prepared_statement_cache_size"] = 0
                connect_args["prepared_statement_name_func"] = _unique_statement_name
        else:
            connect_args.setdefault("connect_timeout", max(1, int(timeout)))
            kwargs.setdefault("pool_recycle", DEFAULT_MYSQL_RECYCLE)
            # The server commits a lone statement by itself; transactions are begun
            # explicitly (_install_explicit_begin). A statement outside a transaction
            # then leaves none open: no COMMIT or ROLLBACK round trip follows it.
            connect_args.setdefault("autocommit", True)
            # Reset returned connections ourselves: ROLLBACK only when the server says a
            # transaction is open (see _install_conditional_reset), not on every return.
            kwargs["pool_reset_on_return"] = None
    if connect_args:
        kwargs["connect_args"] = connect_args

    engine = create_async_engine(url, **kwargs)
    _install_usage_clock(engine)
    if backend in ("mysql", "mariadb", "sqlite"):
        _install_conditional_reset(engine, backend)
        _install_transaction_guard(engine, backend)
    if backend in ("mysql", "mariadb"):
        install_size_guard(engine)  # values too big for a column or a packet: refused before sending
    if backend == "sqlite":
        _install_sqlite_hooks(engine, library, memory=keeper is not None)
    elif backend in ("mysql", "mariadb"):
        _install_explicit_begin(engine, "START TRANSACTION")
        if library.get("statement_timeout_ms"):
            _install_mysql_timeout(engine, int(library["statement_timeout_ms"]))
    if library.get("slow_query_ms") is not None:
        _install_slow_query_log(engine, float(library["slow_query_ms"]))
    return engine, keeper


def _install_usage_clock(engine: AsyncEngine) -> None:
    """Stamp each connection when it goes back to the pool, for the pre-ping window."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(dbapi_conn: Any, record: Any) -> None:
        if dbapi_conn is not None:  # None: invalidated, the next one is fresh
            record.info[LAST_USED] = time.monotonic()


def autocommit_options(backend: str, library: dict[str, Any]) -> dict[str, Any]:
    """Execution options that run a statement without BEGIN/COMMIT round trips, where free.

    PostgreSQL: driver-level autocommit (a flag in asyncpg). SQLite and
    MySQL/MariaDB: skip our explicit ``BEGIN`` (`_install_explicit_begin`).
    Not behind PgBouncer (asyncpg prepares and executes in separate round trips
    that only a transaction keeps on one server connection).
    """
    if backend == "postgresql" and not library.get("pgbouncer"):
        return {"isolation_level": "AUTOCOMMIT"}
    if backend in ("sqlite", "mysql", "mariadb"):
        return {"dsg_lib_autocommit": True}
    return {}


def snapshot_options(backend: str) -> dict[str, Any] | None:
    """Execution options that make the next transaction one read snapshot, or None where
    a plain statement-per-statement read is what the backend gives anyway.

    MySQL/MariaDB: ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` (a snapshot
    for the whole transaction under REPEATABLE READ, the server default).
    PostgreSQL (READ COMMITTED) and SQLite keep their per-statement reads.
    """
    if backend in ("mysql", "mariadb"):
        return {BEGIN_WITH: "START TRANSACTION WITH CONSISTENT SNAPSHOT"}
    return None


def _install_conditional_reset(engine: AsyncEngine, backend: str) -> None:
    """Roll back a connection returned to the pool only if it is inside a transaction.

    The MySQL protocol reports the transaction state in every reply and
    sqlite3 tracks it in ``in_transaction``, so this check costs no round trip
    (or thread hop); SQLAlchemy's default reset sends ROLLBACK always.
    """

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_conn: Any, record: Any, reset_state: Any) -> None:
        if reset_state.terminate_only:
            return
        driver = dbapi_conn.driver_connection
        if backend == "sqlite":
            # aiosqlite reads the flag of its sqlite3 connection without a thread hop
            if getattr(driver, "in_transaction", True):
                dbapi_conn.rollback()
            return
        status = getattr(driver, "get_transaction_status", None)
        if status is None or status():
            dbapi_conn.rollback()


def _install_transaction_guard(engine: AsyncEngine, backend: str) -> None:
    """Refuse statements (and the COMMIT) of a guarded transaction the database already ended.

    SQLite connections (``isolation_level = None``) and MySQL/MariaDB ones
    (driver autocommit) commit each statement by itself outside a
    transaction. When the database ends a transaction on its own (an implicit
    commit by DDL, a deadlock victim, ``ON CONFLICT ROLLBACK``,
    ``RAISE(ROLLBACK)``), SQLAlchemy still believes it is open, and every
    later statement of the block would commit on its own. The driver reports
    the server's transaction state with each reply, so checking it before
    each statement costs no round trip. Only connections marked with `GUARD`
    are checked: DDL blocks (``create_tables``, a hand-written
    ``engine.begin()``) keep the plain SQLAlchemy behaviour.

    The check sits in the dialect's ``do_execute`` hooks (the last step
    before the driver call), not in ``before_cursor_execute``, so the engine
    keeps no cursor listener a compiled statement would have to honour.
    """
    sync_engine = engine.sync_engine
    message = (
        "the database ended this transaction by itself (an implicit commit by DDL, a deadlock, "
        "or a rollback by a constraint or trigger); the rest of the block is refused and the block fails"
    )

    def ended(conn: Connection) -> bool:
        if not conn.get_execution_options().get(GUARD) or conn.invalidated:
            return False
        raw = conn.connection
        if raw.info.pop(_STALE, False):
            # One COM_PING: its OK packet carries the server's current transaction state.
            try:
                raw.dbapi_connection.run_async(lambda driver: driver.ping(False))  # type: ignore[union-attr]
            except Exception:  # a broken connection: the statement itself will say so
                return False
        return not server_in_transaction(raw.driver_connection, backend)

    def check(cursor: Any, context: Any) -> None:
        conn = context.root_connection
        # in_transaction() is still False while the BEGIN itself runs (see _install_explicit_begin)
        if conn.in_transaction() and ended(conn):
            if conn.get_execution_options().get(GUARD) != BEGIN_AGAIN:
                raise TransactionEndedError(message)
            cursor.execute("BEGIN")  # what a connection without autocommit does by itself

    @event.listens_for(sync_engine, "do_execute")
    @own
    def _execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        check(cursor, context)
        return False  # not run here: the dialect runs it

    @event.listens_for(sync_engine, "do_executemany")
    @own
    def _executemany(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        check(cursor, context)
        return False

    @event.listens_for(sync_engine, "do_execute_no_params")
    @own
    def _execute_no_params(cursor: Any, statement: str, context: Any) -> bool:
        check(cursor, context)
        return False

    @event.listens_for(sync_engine, "commit")
    @own  # a no-op outside a guarded transaction, where a compiled statement runs
    def _commit(conn: Connection) -> None:
        if ended(conn) and conn.get_execution_options().get(GUARD) != BEGIN_AGAIN:
            raise TransactionEndedError(message)

    if backend == "sqlite":  # sqlite3 knows its state after an error too
        return

    @event.listens_for(sync_engine, "handle_error")
    @own
    def _failed(context: Any) -> None:
        conn = context.connection
        if conn is not None and not conn.invalidated and conn.get_execution_options().get(GUARD):
            conn.connection.info[_STALE] = True


def _unique_statement_name() -> str:
    return f"__dsg_lib_{uuid.uuid4().hex}__"


def _install_sqlite_hooks(engine: AsyncEngine, library: dict[str, Any], memory: bool) -> None:
    busy = int(library.get("busy_timeout_ms", DEFAULT_BUSY_TIMEOUT_MS))
    begin = (
        "BEGIN"
        if memory
        else ("BEGIN IMMEDIATE" if library.get("sqlite_begin", "immediate") == "immediate" else "BEGIN")
    )
    timeout_ms = library.get("statement_timeout_ms")
    sync_engine = engine.sync_engine
    # a file opened read-only (``?mode=ro&uri=true``, as `dsg-lib check` does) keeps its journal mode
    read_only = engine.url.query.get("mode") == "ro"

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin,
        # so SAVEPOINT and transactional DDL work.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy}")
        if not memory and not read_only:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    if timeout_ms:
        _install_sqlite_deadline(engine, int(timeout_ms) / 1000.0)
    _install_explicit_begin(engine, begin)


def _install_explicit_begin(engine: AsyncEngine, begin: str) -> None:
    """Send ``begin`` where SQLAlchemy begins a transaction, except on the autocommit engine.

    SQLite (``isolation_level = None``) and MySQL/MariaDB (connected with
    ``autocommit``) commit each statement by itself, so a transaction exists
    only where SQLAlchemy begins one: SAVEPOINTs and transactional DDL work,
    and a lone statement outside a transaction costs no COMMIT or ROLLBACK.
    """

    @event.listens_for(engine.sync_engine, "begin")
    @own  # a no-op outside a transaction, where a compiled statement runs
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get("dsg_lib_autocommit") or options.get("isolation_level") == "AUTOCOMMIT":
            return  # a statement outside a transaction: it commits by itself
        conn.connection.info.pop(_STALE, None)  # a new transaction: its state is known again
        conn.exec_driver_sql(options.get(BEGIN_WITH, begin))


class _StatementTimer:
    """Interrupts one running SQLite statement when its time limit passes.

    sqlite3 has no statement timeout; ``Connection.interrupt()`` (public in
    aiosqlite, and safe to call from the event loop while the statement runs
    in aiosqlite's worker thread) makes it fail with "interrupted". The timer
    is a loop callback, so arming it needs no await inside the synchronous
    ``before_cursor_execute`` hook.
    """

    def __init__(self, driver: Any, seconds: float) -> None:
        self.driver = driver
        self.active = True
        loop = asyncio.get_running_loop()
        self._handle = loop.call_later(seconds, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.active:
            loop.create_task(self._interrupt())

    async def _interrupt(self) -> None:
        # Re-checked here: the statement may have finished since the timer fired,
        # and an interrupt must never hit the next statement on this connection.
        if self.active:
            await self.driver.interrupt()

    def cancel(self) -> None:
        self.active = False
        self._handle.cancel()


def _install_sqlite_deadline(engine: AsyncEngine, seconds: float) -> None:
    """Abort a statement that runs longer than ``seconds`` (``statement_timeout_ms``)."""
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _arm(conn: Connection, cursor: Any, statement: str, params: Any, ctx: Any, many: bool) -> None:
        try:
            conn.info["dsg_lib_timer"] = _StatementTimer(conn.connection.driver_connection, seconds)
        except RuntimeError:  # no running loop (a synchronous caller): nothing to time
            conn.info.pop("dsg_lib_timer", None)

    def _disarm(conn: Connection | None) -> None:
        timer = conn.info.pop("dsg_lib_timer", None) if conn is not None else None
        if timer is not None:
            timer.cancel()

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _after(conn: Connection, cursor: Any, statement: str, params: Any, ctx: Any, many: bool) -> None:
        _disarm(conn)

    @event.listens_for(sync_engine, "handle_error")
    def _on_error(context: Any) -> None:
        _disarm(context.connection)


def _install_mysql_timeout(engine: AsyncEngine, timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"SET SESSION max_statement_time={timeout_ms / 1000.0:.3f}")
        except Exception:  # MySQL: only SELECTs can be limited, in ms
            cursor.execute(f"SET SESSION max_execution_time={timeout_ms}")
        finally:
            cursor.close()


def _install_slow_query_log(engine: AsyncEngine, threshold_ms: float) -> None:
    sync_engine = engine.sync_engine

    # The start time lives in the connection's info for the one statement in flight;
    # a failed statement's entry is dropped by handle_error, so it is never timed.
    @event.listens_for(sync_engine, "before_cursor_execute")
    def _before(conn: Connection, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        conn.info["dsg_lib_started"] = time.perf_counter()

    @event.listens_for(sync_engine, "handle_error")
    def _failed(context: Any) -> None:
        if context.connection is not None:
            context.connection.info.pop("dsg_lib_started", None)

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _after(conn: Connection, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        started = conn.info.pop("dsg_lib_started", None)
        if started is None:
            return
        elapsed = (time.perf_counter() - started) * 1000.0
        if elapsed >= threshold_ms:
            text = " ".join(statement.split())
            logger.warning(
                "dsg_lib: slow query ({:.1f} ms >= {:.0f} ms): {}",
                elapsed,
                threshold_ms,
                text[:500] + ("..." if len(text) > 500 else ""),
            )
