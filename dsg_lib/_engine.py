"""Engine construction with per-dialect production defaults (private)."""

from __future__ import annotations

import sqlite3
import time
import uuid
from typing import Any

from loguru import logger
from sqlalchemy import event, pool
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util.concurrency import await_

from ._sizes import install_size_guard

DEFAULT_BUSY_TIMEOUT_MS = 5000
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MYSQL_RECYCLE = 3600


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
    cheap_ping = False

    if backend == "sqlite":
        if is_memory_sqlite(url):
            keeper = MemoryKeeper()
            url = url.set(database=keeper.name, query={"uri": "true"})
            kwargs["poolclass"] = pool.AsyncAdaptedQueuePool
            kwargs["pool_size"] = 1
            kwargs["max_overflow"] = 0
        kwargs.setdefault("pool_pre_ping", False)
    else:
        # Our own pre-ping (one round trip, see _install_cheap_ping) replaces SQLAlchemy's,
        # which on asyncpg costs BEGIN + SELECT + ROLLBACK on every checkout.
        cheap_ping = kwargs.pop("pool_pre_ping", True)
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
            # Reset returned connections ourselves: ROLLBACK only when the server says a
            # transaction is open (see _install_mysql_reset), not on every return.
            kwargs["pool_reset_on_return"] = None
    if connect_args:
        kwargs["connect_args"] = connect_args

    engine = create_async_engine(url, **kwargs)
    if backend != "sqlite" and cheap_ping:
        _install_cheap_ping(engine, backend)
    if backend in ("mysql", "mariadb"):
        _install_mysql_reset(engine)
        install_size_guard(engine)  # values too big for a column or a packet: refused before sending
    if backend == "sqlite":
        _install_sqlite_hooks(engine, library, memory=keeper is not None)
    elif backend in ("mysql", "mariadb") and library.get("statement_timeout_ms"):
        _install_mysql_timeout(engine, int(library["statement_timeout_ms"]))
    if library.get("slow_query_ms") is not None:
        _install_slow_query_log(engine, float(library["slow_query_ms"]))
    return engine, keeper


def autocommit_options(backend: str, library: dict[str, Any]) -> dict[str, Any]:
    """Execution options that run a statement without BEGIN/COMMIT round trips, where free.

    PostgreSQL: driver-level autocommit (a flag in asyncpg). SQLite: skip our
    ``BEGIN`` hook. Not behind PgBouncer (asyncpg prepares and executes in
    separate round trips that only a transaction keeps on one server
    connection) and not on MySQL/MariaDB, where switching autocommit costs
    round trips of its own.
    """
    if backend == "postgresql" and not library.get("pgbouncer"):
        return {"isolation_level": "AUTOCOMMIT"}
    if backend == "sqlite":
        return {"dsg_lib_autocommit": True}
    return {}


def _install_cheap_ping(engine: AsyncEngine, backend: str) -> None:
    """Check a pooled connection is alive before handing it out, in one round trip.

    A connection that fails the ping is discarded and the pool connects a fresh
    one (SQLAlchemy's ``DisconnectionError`` protocol), so a server restart or a
    killed backend costs nothing but the reconnect. Fresh connections skip it.
    """

    def ping(dbapi_conn: Any) -> None:
        driver = dbapi_conn.driver_connection
        if backend == "postgresql":
            await_(driver.execute("SELECT 1"))  # simple-query protocol: no prepared statement, pooler-safe
        else:
            await_(driver.ping(False))  # COM_PING

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        if not record.info.pop("dsg_lib_fresh", False):
            try:
                ping(dbapi_conn)
            except Exception as exc:
                raise sa_exc.DisconnectionError(f"pre-ping failed: {type(exc).__name__}") from exc

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        record.info["dsg_lib_fresh"] = True


def _install_mysql_reset(engine: AsyncEngine) -> None:
    """Roll back a connection returned to the pool only if it is inside a transaction.

    The MySQL protocol reports the transaction state in every reply, so this
    check costs no round trip; SQLAlchemy's default reset sends ROLLBACK always.
    """

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_conn: Any, record: Any, reset_state: Any) -> None:
        if reset_state.terminate_only:
            return
        status = getattr(dbapi_conn.driver_connection, "get_transaction_status", None)
        if status is None or status():
            dbapi_conn.rollback()


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

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin,
        # so SAVEPOINT and transactional DDL work.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy}")
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        if timeout_ms:
            _install_sqlite_deadline(dbapi_conn, record, int(timeout_ms))

    if timeout_ms:
        seconds = int(timeout_ms) / 1000.0

        @event.listens_for(sync_engine, "before_cursor_execute")
        def _arm(conn: Connection, cursor: Any, statement: str, params: Any, ctx: Any, many: bool) -> None:
            conn.info.setdefault("dsg_lib_deadline", [0.0])[0] = time.monotonic() + seconds

        @event.listens_for(sync_engine, "after_cursor_execute")
        def _disarm(conn: Connection, cursor: Any, statement: str, params: Any, ctx: Any, many: bool) -> None:
            conn.info.setdefault("dsg_lib_deadline", [0.0])[0] = 0.0

        @event.listens_for(sync_engine, "handle_error")
        def _disarm_on_error(context: Any) -> None:
            if context.connection is not None:
                context.connection.info.setdefault("dsg_lib_deadline", [0.0])[0] = 0.0

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get("dsg_lib_autocommit") or options.get("isolation_level") == "AUTOCOMMIT":
            return  # a read outside a transaction: each statement commits by itself
        conn.exec_driver_sql(begin)


def _install_sqlite_deadline(dbapi_conn: Any, record: Any, timeout_ms: int) -> None:
    """Abort a statement that runs past ``timeout_ms`` via sqlite3's progress handler.

    The deadline is armed by ``before_cursor_execute`` (see ``_arm_sqlite_deadline``).
    """
    state = record.info.setdefault("dsg_lib_deadline", [0.0])

    def _check() -> int:
        return 1 if state[0] and time.monotonic() > state[0] else 0

    await_(dbapi_conn.driver_connection.set_progress_handler(_check, 1000))


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

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _before(conn: Connection, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if context is not None:
            context._dsg_lib_started = time.perf_counter()  # per statement: nothing left behind on errors

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _after(conn: Connection, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        started = getattr(context, "_dsg_lib_started", None)
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
