"""`Backend`: what dsg_lib does differently on one family of databases (private).

``DBConfig`` picks the backend once from the URL (`backend_for`); the rest of
dsg_lib asks it instead of comparing dialect names. The base class is what a
pass-through dialect (oracle, mssql, cockroachdb: accepted as devsetgo-lib
did, untested) gets: SQLAlchemy's own defaults and no dsg_lib hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import DateTime
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.types import TypeEngine

from ._consistency_tokens import PRIMARY_TOKEN

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sqlalchemy import Table
    from sqlalchemy.sql.dml import Insert

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "Backend", "Keeper", "ServerBackend", "on_conflict_upsert"]

DEFAULT_CONNECT_TIMEOUT = 10.0


class Keeper(Protocol):
    """Something an engine needs kept open beside its pool (SQLite's in-memory database)."""

    def open(self) -> None:
        """Open it again (after `close`)."""

    def close(self) -> None:
        """Let it go."""


class Backend:
    """How dsg_lib drives one family of databases; subclasses in ``sqlite``, ``postgresql``, ``mysql``.

    Attributes:
        name: ``"sqlite"``, ``"postgresql"``, ``"mysql"`` (MySQL and MariaDB) or
            the pass-through dialect's name.
        title: The name as people write it, for messages.
        default_port: The port of a host given without one (None: no server).
        server: A database server (pre-ping, per-host connect timeouts, failover).
        embedded: A database in the application's process (no hosts).
        driver_multi_host: The driver walks a multi-host list itself (asyncpg).
        writable_session_attrs: ``target_session_attrs`` values asking for a
            writable host (a dedicated message when none is).
        returning: ``INSERT ... RETURNING`` counts the rows inserted.
        atomic_executemany: One ``executemany`` is atomic without a transaction.
        copy: Bulk loads may use ``COPY``.
        stream_needs_transaction: Server-side cursors live only in a transaction.
        lock_read_for_update: A row read to be updated must be read with a
            shared lock (REPEATABLE READ reads a snapshot otherwise).
        bare_numeric: ``(precision, scale)`` of a ``Numeric`` declared without them.
        decimal_digits: Significant digits a stored decimal keeps (None: exact).
        like_ignores_case: ``LIKE`` ignores case (contains/startswith/endswith
            need a case-sensitive form).
        in_as_array_from: An ``IN`` list this long is sent as one array
            parameter (None: always expanded).
        packet_limited: One statement must fit a packet (``max_allowed_packet``).
        batch_migrations: Alembic runs ``ALTER`` as batch (copy and move)
            operations, with foreign keys off during the run and checked at its end.
        bind_limit: Bind parameters one statement may carry.
        default_pool_recycle: Seconds after which a pooled connection is
            replaced (-1: never), unless the config says otherwise.

    Examples:
        >>> Backend().server, Backend().default_port
        (False, None)
    """

    name = "other"
    title = "this database"
    default_port: int | None = None
    server = False
    embedded = False
    driver_multi_host = False
    writable_session_attrs: tuple[str, ...] = ()
    returning = False
    atomic_executemany = False
    copy = False
    stream_needs_transaction = False
    lock_read_for_update = False
    bare_numeric: tuple[int, int] | None = None
    decimal_digits: int | None = None
    like_ignores_case = False
    in_as_array_from: int | None = None
    packet_limited = False
    batch_migrations = False
    bind_limit = 999
    default_pool_recycle = -1

    # ------------------------------------------------------------------ engine
    def configure_engine(
        self, url: URL, kwargs: dict[str, Any], connect_args: dict[str, Any], library: dict[str, Any]
    ) -> tuple[URL, Keeper | None]:
        """Set this backend's defaults into ``kwargs`` / ``connect_args``.

        Returns:
            The URL to connect to, and what must be kept open beside the pool (or None).

        Examples:
            >>> from sqlalchemy.engine import make_url
            >>> kwargs = {}
            >>> _ = Backend().configure_engine(make_url("mssql+aioodbc://h/db"), kwargs, {}, {})
            >>> kwargs
            {'pool_pre_ping': True}
        """
        kwargs.setdefault("pool_pre_ping", True)  # SQLAlchemy's own pre-ping: no dsg_lib hooks here
        return url, None

    def install_hooks(self, engine: AsyncEngine, library: dict[str, Any], memory: bool) -> None:
        """Install this backend's engine hooks (transactions, timeouts, size guard).

        Examples:
            >>> Backend().install_hooks(None, {}, memory=False)  # none
        """

    def is_memory(self, url: URL) -> bool:
        """True for a database that lives in memory.

        Examples:
            >>> from sqlalchemy.engine import make_url
            >>> Backend().is_memory(make_url("mssql+aioodbc://h/db"))
            False
        """
        return False

    def autocommit_options(self, library: dict[str, Any]) -> dict[str, Any]:
        """Execution options that run a lone statement without BEGIN/COMMIT round trips.

        Examples:
            >>> Backend().autocommit_options({})
            {}
        """
        return {}

    def snapshot_options(self) -> dict[str, Any] | None:
        """Execution options making the next transaction one read snapshot; None: reads are per statement.

        Examples:
            >>> Backend().snapshot_options() is None
            True
        """
        return None

    def server_in_transaction(self, driver: Any) -> bool:
        """What the driver knows, without a round trip, of whether the server is in a transaction.

        Examples:
            >>> Backend().server_in_transaction(object())
            True
        """
        return True

    async def ping(self, driver: Any) -> None:
        """One round trip on the driver connection; raises when it is dead."""
        raise NotImplementedError(f"{self.name}: dsg_lib does not ping (SQLAlchemy's pre-ping does)")

    # ------------------------------------------------------------------ hosts and failover
    def multi_host_url(self, url: URL, hosts: list[tuple[str, int | None]]) -> URL:
        """The URL for a multi-host URI's ``hosts`` (dsg_lib walks the hosts itself unless the driver does).

        Examples:
            >>> from sqlalchemy.engine import make_url
            >>> str(Backend().multi_host_url(make_url("mssql+aioodbc://h/db"), [("a", 1)]))
            'mssql+aioodbc://h/db'
        """
        return url

    def connect_moves_on(self, exc: BaseException) -> bool:
        """Whether a failed connect to one host of several should try the next one.

        Examples:
            >>> Backend().connect_moves_on(OSError())
            True
        """
        return True

    def discard_after(self, exc: BaseException) -> bool:
        """Whether a connection that raised ``exc`` must not go back to the pool.

        Examples:
            >>> Backend().discard_after(ValueError())
            False
        """
        return False

    def system_name(self, dialect: Dialect) -> str:
        """OpenTelemetry's ``db.system.name`` of the server behind ``dialect``.

        Examples:
            >>> from sqlalchemy.dialects import sqlite
            >>> Backend().system_name(sqlite.dialect())
            'sqlite'
        """
        return str(dialect.name)

    # ------------------------------------------------------------------ SQL
    def upsert_statement(
        self, table: Table, rows: list[dict[str, Any]], conflict: Sequence[str], update: Sequence[str]
    ) -> Insert:
        """One multi-row ``INSERT ... ON CONFLICT`` / ``ON DUPLICATE KEY UPDATE`` statement.

        ``conflict`` names the unique columns, ``update`` the columns a
        conflicting row takes from the new one (none: keep the old row).
        """
        raise NotImplementedError(f"upsert is not supported on {self.name}")

    def utc_datetime_type(self, dialect: Dialect) -> TypeEngine[Any]:
        """The column type storing a UTC timestamp with microseconds.

        Examples:
            >>> from sqlalchemy.dialects import sqlite
            >>> Backend().utc_datetime_type(sqlite.dialect()).timezone
            True
        """
        return dialect.type_descriptor(DateTime(timezone=True))

    @property
    def stores_time_zones(self) -> bool:
        """The timestamp column keeps the time zone (else a naive UTC value is stored).

        Examples:
            >>> Backend().stores_time_zones
            False
        """
        return False

    # ------------------------------------------------------------------ consistency tokens
    @property
    def wal_tokens(self) -> bool:
        """Consistency tokens carry a WAL position (else `PRIMARY_TOKEN`: read the primary).

        Examples:
            >>> Backend().wal_tokens
            False
        """
        return False

    async def primary_token(self, conn: AsyncConnection) -> str:
        """The token for everything committed so far, read on a primary connection."""
        return PRIMARY_TOKEN

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class ServerBackend(Backend):
    """A database server: dsg_lib pings idle connections itself and bounds each connect per host."""

    server = True

    def configure_engine(
        self, url: URL, kwargs: dict[str, Any], connect_args: dict[str, Any], library: dict[str, Any]
    ) -> tuple[URL, Keeper | None]:
        # dsg_lib pings idle connections itself (is_alive, called by session/_acquire): one round
        # trip and only past pre_ping_window_ms, where SQLAlchemy's pre-ping costs up to
        # three on every checkout (and breaks on some SQLAlchemy/PyMySQL pairs).
        kwargs.pop("pool_pre_ping", None)
        self.configure_driver(
            kwargs, connect_args, library, library.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
        )
        return url, None

    def configure_driver(
        self, kwargs: dict[str, Any], connect_args: dict[str, Any], library: dict[str, Any], timeout: float
    ) -> None:
        """Set the driver's connect arguments and the pool options (``timeout``: connect_timeout)."""


def on_conflict_upsert(
    insert: Callable[[Table], Any],
    table: Table,
    rows: list[dict[str, Any]],
    conflict: Sequence[str],
    update: Sequence[str],
) -> Insert:
    """``INSERT ... ON CONFLICT (conflict) DO UPDATE / DO NOTHING ... RETURNING`` (PostgreSQL, SQLite).

    The conflict columns are returned for each row written, so the caller counts them.
    """
    stmt: Any = insert(table).values(rows)
    stmt = (
        stmt.on_conflict_do_update(index_elements=list(conflict), set_={c: stmt.excluded[c] for c in update})
        if update
        else stmt.on_conflict_do_nothing(index_elements=list(conflict))
    )
    return stmt.returning(*[table.c[c] for c in conflict])  # type: ignore[no-any-return]
