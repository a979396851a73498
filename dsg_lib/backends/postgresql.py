"""PostgreSQL through asyncpg: timeouts, PgBouncer, multi-host URIs, COPY, WAL tokens (private)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors.codes import PG_FAILOVER, PG_NO_WRITABLE_HOST
from ._base import ServerBackend, on_conflict_upsert
from ._consistency_tokens import format_lsn

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.sql.dml import Insert

__all__ = ["PostgreSQLBackend"]


class PostgreSQLBackend(ServerBackend):
    """PostgreSQL: asyncpg, driver-level autocommit outside transactions, asyncpg's own multi-host walk.

    Examples:
        >>> PostgreSQLBackend().default_port, PostgreSQLBackend().copy
        (5432, True)
    """

    name = "postgresql"
    title = "PostgreSQL"
    default_port = 5432
    driver_multi_host = True
    writable_session_attrs = ("read-write", "primary")
    returning = True
    atomic_executemany = True  # asyncpg's executemany is one atomic pipeline
    copy = True
    stream_needs_transaction = True  # server-side cursors live only inside a transaction
    in_as_array_from = 1000  # an expanded IN list stops at 32,767 bind parameters
    bind_limit = 32767

    def configure_driver(
        self, kwargs: dict[str, Any], connect_args: dict[str, Any], library: dict[str, Any], timeout: float
    ) -> None:
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

    def autocommit_options(self, library: dict[str, Any]) -> dict[str, Any]:
        """Driver-level autocommit (a flag in asyncpg); not behind PgBouncer, where asyncpg's
        prepare and execute round trips stay on one server connection only inside a transaction.

        Examples:
            >>> PostgreSQLBackend().autocommit_options({"pgbouncer": True})
            {}
        """
        return {} if library.get("pgbouncer") else {"isolation_level": "AUTOCOMMIT"}

    async def ping(self, driver: Any) -> None:
        # the simple-query protocol: no prepared statement, so safe behind PgBouncer
        await driver.execute("SELECT 1")

    def multi_host_url(self, url: URL, hosts: list[tuple[str, int | None]]) -> URL:
        """The dialect's multi-host URL: no host/port, one ``host=h:p`` per host.

        With an IPv6 host the ``host=h1,h2&port=p1,p2`` form is used instead
        (an address has colons of its own).

        Examples:
            >>> from sqlalchemy.engine import make_url
            >>> url = make_url("postgresql+asyncpg://u@x/db")
            >>> PostgreSQLBackend().multi_host_url(url, [("a", 1), ("b", None)]).query["host"]
            ('a:1', 'b:5432')
        """
        query = dict(url.query)
        if any(":" in host for host, _ in hosts):
            query["host"] = ",".join(host for host, _ in hosts)
            query["port"] = ",".join(str(port or self.default_port) for _, port in hosts)
        else:
            query["host"] = tuple(f"{host}:{port or self.default_port}" for host, port in hosts)
        # URL.set() ignores None: build the URL again without host and port
        return URL.create(
            url.drivername, username=url.username, password=url.password, database=url.database, query=query
        )

    def connect_moves_on(self, exc: BaseException) -> bool:
        """A host that refuses, hangs, is not writable or is starting / shutting down: try the next.

        A wrong password or database name stops at the first host that says so
        (the others would say the same).

        Examples:
            >>> PostgreSQLBackend().connect_moves_on(ValueError("bad password"))
            False
        """
        for item in _causes(exc):
            if (
                isinstance(item, (OSError, asyncio.TimeoutError))
                or type(item).__name__ in PG_NO_WRITABLE_HOST
            ):
                return True
            sqlstate = str(getattr(item, "sqlstate", "") or "")
            if sqlstate in PG_FAILOVER or sqlstate.startswith("08"):
                return True
        return False

    def discard_after(self, exc: BaseException) -> bool:
        """asyncpg refused a value mid-statement, or the server moved (read-only, shutting down).

        asyncpg refusing a value after it sent Parse/Describe leaves the server
        mid-statement ("active", holding the statement's locks) until the next
        message; a server that became read-only or is shutting down is no
        longer the primary. Such a connection never goes back to the pool.

        Examples:
            >>> PostgreSQLBackend().discard_after(ValueError())
            False
        """
        return any(
            getattr(e, "sqlstate", None) in PG_FAILOVER
            or (type(e).__module__.startswith("asyncpg") and getattr(e, "severity", None) is None)
            for e in _chain(exc)
        )

    def upsert_statement(
        self, table: Table, rows: list[dict[str, Any]], conflict: Sequence[str], update: Sequence[str]
    ) -> Insert:
        from sqlalchemy.dialects import postgresql

        return on_conflict_upsert(postgresql.insert, table, rows, conflict, update)

    @property
    def stores_time_zones(self) -> bool:
        return True

    @property
    def wal_tokens(self) -> bool:
        return True

    async def primary_token(self, conn: AsyncConnection) -> str:
        """``pg_current_wal_lsn()``: at or after the commit record of every transaction that has
        already returned from COMMIT, so a replica that replayed that far sees all of them."""
        lsn = (await conn.execute(text("SELECT pg_current_wal_lsn()::text"))).scalar_one()
        return format_lsn(str(lsn))


def _unique_statement_name() -> str:
    return f"__dsg_lib_{uuid.uuid4().hex}__"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception linked from it (cause, context, ``orig``, ``driver_error``)."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        current = todo.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        links = (current.__cause__, current.__context__, getattr(current, "orig", None))
        todo.extend((*links, getattr(current, "driver_error", None)))


def _causes(exc: BaseException | None) -> list[BaseException]:
    """``exc``, then SQLAlchemy's ``orig`` or the ``__cause__`` of each, in turn."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = getattr(exc, "orig", None) or exc.__cause__
    return seen
