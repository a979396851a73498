"""SQLite through aiosqlite: WAL files, one shared in-memory database, interrupts for timeouts (private)."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, pool
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ._base import Backend, Keeper, on_conflict_upsert
from ._transaction_hooks import install_conditional_reset, install_explicit_begin, install_transaction_guard

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy import Table
    from sqlalchemy.sql.dml import Insert

__all__ = ["DEFAULT_BUSY_TIMEOUT_MS", "MemoryKeeper", "SQLiteBackend", "is_memory_sqlite"]

DEFAULT_BUSY_TIMEOUT_MS = 5000


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


class SQLiteBackend(Backend):
    """SQLite: an embedded file (WAL, ``busy_timeout``, foreign keys on) or one shared in-memory database.

    Examples:
        >>> SQLiteBackend().returning, SQLiteBackend().server
        (True, False)
    """

    name = "sqlite"
    title = "SQLite"
    embedded = True
    returning = True
    decimal_digits = 15
    like_ignores_case = True
    batch_migrations = True
    bind_limit = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999

    def configure_engine(
        self, url: URL, kwargs: dict[str, Any], connect_args: dict[str, Any], library: dict[str, Any]
    ) -> tuple[URL, Keeper | None]:
        keeper: MemoryKeeper | None = None
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
        # install_conditional_reset): each ROLLBACK is a hop to aiosqlite's thread.
        kwargs["pool_reset_on_return"] = None
        return url, keeper

    def install_hooks(self, engine: AsyncEngine, library: dict[str, Any], memory: bool) -> None:
        install_conditional_reset(engine, self)
        install_transaction_guard(engine, self, stale_after_error=False)
        _install_sqlite_hooks(engine, library, memory)

    def is_memory(self, url: URL) -> bool:
        return is_memory_sqlite(url)

    def autocommit_options(self, library: dict[str, Any]) -> dict[str, Any]:
        return {"dsg_lib_autocommit": True}  # skip the explicit BEGIN (install_explicit_begin)

    def server_in_transaction(self, driver: Any) -> bool:
        # aiosqlite reads the flag of its sqlite3 connection without a thread hop
        return bool(getattr(driver, "in_transaction", True))

    def upsert_statement(
        self, table: Table, rows: list[dict[str, Any]], conflict: Sequence[str], update: Sequence[str]
    ) -> Insert:
        from sqlalchemy.dialects import sqlite

        return on_conflict_upsert(sqlite.insert, table, rows, conflict, update)


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
    install_explicit_begin(engine, begin)


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
