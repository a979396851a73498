"""MySQL and MariaDB (aiomysql, asyncmy): driver autocommit with explicit BEGIN, packet limits (private)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import TypeEngine

from ._base import ServerBackend
from ._size_guard import install_size_guard
from ._transaction_hooks import (
    BEGIN_WITH,
    install_conditional_reset,
    install_explicit_begin,
    install_transaction_guard,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy import Table
    from sqlalchemy.sql.dml import Insert

__all__ = ["DEFAULT_MYSQL_RECYCLE", "MySQLBackend"]

DEFAULT_MYSQL_RECYCLE = 3600


class MySQLBackend(ServerBackend):
    """MySQL and MariaDB (one backend: the dialect names both ``mysql``/``mariadb``).

    Connections run in driver autocommit: a lone statement commits by itself
    with no BEGIN/COMMIT round trip, and dsg_lib sends ``START TRANSACTION``
    where SQLAlchemy begins a transaction (``_transaction_hooks``).

    Examples:
        >>> MySQLBackend().default_port, MySQLBackend().bare_numeric
        (3306, (10, 0))
    """

    name = "mysql"
    title = "MySQL/MariaDB"
    default_port = 3306
    lock_read_for_update = True  # REPEATABLE READ reads a snapshot unless the read locks
    bare_numeric = (10, 0)  # a bare NUMERIC is DECIMAL(10, 0) there: 1.25 would become 1
    packet_limited = True
    bind_limit = 65535
    default_pool_recycle = DEFAULT_MYSQL_RECYCLE

    def configure_driver(
        self, kwargs: dict[str, Any], connect_args: dict[str, Any], library: dict[str, Any], timeout: float
    ) -> None:
        connect_args.setdefault("connect_timeout", max(1, int(timeout)))
        kwargs.setdefault("pool_recycle", self.default_pool_recycle)
        # The server commits a lone statement by itself; transactions are begun
        # explicitly (install_explicit_begin). A statement outside a transaction
        # then leaves none open: no COMMIT or ROLLBACK round trip follows it.
        connect_args.setdefault("autocommit", True)
        # Reset returned connections ourselves: ROLLBACK only when the server says a
        # transaction is open (see install_conditional_reset), not on every return.
        kwargs["pool_reset_on_return"] = None

    def install_hooks(self, engine: AsyncEngine, library: dict[str, Any], memory: bool) -> None:
        install_conditional_reset(engine, self)
        install_transaction_guard(engine, self, stale_after_error=True)
        install_size_guard(engine)  # values too big for a column or a packet: refused before sending
        install_explicit_begin(engine, "START TRANSACTION")
        if library.get("statement_timeout_ms"):
            _install_mysql_timeout(engine, int(library["statement_timeout_ms"]))

    def autocommit_options(self, library: dict[str, Any]) -> dict[str, Any]:
        return {"dsg_lib_autocommit": True}  # skip the explicit BEGIN (install_explicit_begin)

    def snapshot_options(self) -> dict[str, Any] | None:
        """``START TRANSACTION WITH CONSISTENT SNAPSHOT``: one snapshot for the whole
        transaction under REPEATABLE READ (the server default).

        Examples:
            >>> MySQLBackend().snapshot_options()
            {'dsg_lib_begin': 'START TRANSACTION WITH CONSISTENT SNAPSHOT'}
        """
        return {BEGIN_WITH: "START TRANSACTION WITH CONSISTENT SNAPSHOT"}

    def server_in_transaction(self, driver: Any) -> bool:
        """``SERVER_STATUS_IN_TRANS`` of the last reply (the drivers' ``get_transaction_status()``)."""
        status = getattr(driver, "get_transaction_status", None)
        return True if status is None else bool(status())

    async def ping(self, driver: Any) -> None:
        await driver.ping(False)  # COM_PING

    def system_name(self, dialect: Dialect) -> str:
        """``mariadb`` when the server says so (the dialect is ``mysql`` for both once connected)."""
        return "mariadb" if getattr(dialect, "is_mariadb", False) else str(dialect.name)

    def upsert_statement(
        self, table: Table, rows: list[dict[str, Any]], conflict: Sequence[str], update: Sequence[str]
    ) -> Insert:
        """``INSERT ... ON DUPLICATE KEY UPDATE``; with nothing to update, a no-op keeps the row."""
        from sqlalchemy.dialects import mysql

        stmt = mysql.insert(table).values(rows)
        if update:
            return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in update})
        first = next(iter(conflict))
        return stmt.on_duplicate_key_update({first: table.c[first]})

    def utc_datetime_type(self, dialect: Dialect) -> TypeEngine[Any]:
        from sqlalchemy.dialects import mysql

        return dialect.type_descriptor(mysql.DATETIME(fsp=6))  # microseconds, like the others


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
