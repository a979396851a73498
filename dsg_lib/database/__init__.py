"""``AsyncDatabase``: lifecycle, tables and health for one ``DBConfig``.

Sessions and connections come from ``session.Acquirer`` (``db.acquire``),
transactions and retries from ``session/``, read routing from ``routing/``;
this class ties them to one database. Its table methods live in ``_tables``,
its routing methods in ``routing.ReadRoutingMixin`` and its health figures in
``_health``.

Examples:
    >>> import asyncio
    >>> from dsg_lib import AsyncDatabase, DBConfig
    >>> async def main():
    ...     async with AsyncDatabase(DBConfig({"database_uri": "sqlite://"})) as db:
    ...         return (await db.health_check())["ok"]
    >>> asyncio.run(main())
    True
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any, TypeVar

from loguru import logger
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase

from .. import session
from ..config import DBConfig, LegacyBase
from ..errors import InvalidInputError
from ..routing import ReadRoutingMixin
from ..session import Acquirer
from ..session import query_budget as _query_budget
from . import _health
from ._tables import TablesMixin

__all__ = ["AsyncDatabase"]

T = TypeVar("T")


class AsyncDatabase(TablesMixin, ReadRoutingMixin):
    """Sessions, transactions, tables and lifecycle on top of a `DBConfig`.

    One instance (e.g. module level) serves any number of event loops one
    after the other: each loop gets connections of its own (see `DBConfig`).

    Args:
        db_config: The configuration that owns the engine.
        base: A ``DeclarativeBase`` subclass whose models this database manages.
            Without it, ``Base`` is a new declarative base on ``db_config.metadata``.

    Attributes:
        Base: The declarative base to declare models on.
        db_config: The configuration.
        acquire: Hands out this database's sessions and connections (used by
            ``DatabaseOperations``; see ``dsg_lib.session.Acquirer``).

    Examples:
        >>> from sqlalchemy import Integer
        >>> from sqlalchemy.orm import mapped_column
        >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
        >>> class Note(db.Base):
        ...     __tablename__ = "notes"
        ...     id = mapped_column(Integer, primary_key=True)
        >>> "notes" in db.Base.metadata.tables
        True
    """

    Base: type[DeclarativeBase]

    def __init__(self, db_config: DBConfig, base: type[DeclarativeBase] | None = None) -> None:
        if not isinstance(db_config, DBConfig):
            raise InvalidInputError(f"AsyncDatabase needs a DBConfig, got {type(db_config).__name__}")
        if base is not None and not (isinstance(base, type) and issubclass(base, DeclarativeBase)):
            raise InvalidInputError("base must be a subclass of sqlalchemy.orm.DeclarativeBase")
        self.db_config = db_config
        if base is None:
            base = type("Base", (DeclarativeBase,), {"metadata": db_config.metadata})
        self.Base = base
        self.acquire = Acquirer(db_config)
        # db.scoped(...) reaches the classes of these registries in any statement
        session.tenancy.remember(base.registry)
        session.tenancy.remember(LegacyBase.registry)
        self._created: set[str] = set()
        self._extra_metadata: list[MetaData] = []
        db_config.retain()

    @property
    def engine(self) -> AsyncEngine:
        """The primary ``AsyncEngine`` (of the running event loop).

        Examples:
            >>> AsyncDatabase(DBConfig({"database_uri": "sqlite://"})).engine.dialect.name
            'sqlite'
        """
        return self.db_config.engine

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> AsyncDatabase:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    async def connect(self, timeout: float = 10.0) -> None:
        """Wait until the database answers ``SELECT 1``, retrying with backoff.

        Also re-opens a database closed by `disconnect`.

        Args:
            timeout: Seconds to keep trying.

        Raises:
            DatabaseUnavailableError: no answer within ``timeout``.

        Examples:
            >>> import asyncio
            >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
            >>> asyncio.run(db.connect(timeout=2))
            >>> asyncio.run(db.disconnect())
        """
        if not self.acquire.is_open:
            self.db_config.retain()
            self.acquire.is_open = True
        await session.wait_until_ready(self.acquire.ping, self.db_config.safe_url, timeout)

    async def disconnect(self) -> None:
        """Close this database's hold on the pool. Idempotent; later use raises ``NotConnectedError``.

        Other ``AsyncDatabase`` objects on the same `DBConfig` keep working:
        the pool (and an in-memory database) closes when the last one disconnects.

        Examples:
            >>> import asyncio
            >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
            >>> asyncio.run(db.disconnect())
        """
        if not self.acquire.is_open:
            return
        self.acquire.is_open = False
        self._created.clear()
        await self.db_config.release()
        logger.info("dsg_lib: disconnected from {}", self.db_config.safe_url)

    @property
    def is_connected(self) -> bool:
        """False after `disconnect` until `connect`.

        Examples:
            >>> AsyncDatabase(DBConfig({"database_uri": "sqlite://"})).is_connected
            True
        """
        return self.acquire.is_open

    # ------------------------------------------------------------------ sessions
    @asynccontextmanager
    async def get_db_session(self) -> AsyncIterator[AsyncSession]:
        """Yield a fresh ``AsyncSession`` (``expire_on_commit=False``).

        It rolls back on error and is closed on exit; it never commits for you.
        Operations do not join it unless you pass it as ``session=``.

        Raises:
            NotConnectedError: after `disconnect`.

        Examples:
            >>> import asyncio
            >>> from sqlalchemy import text
            >>> async def main():
            ...     async with AsyncDatabase(DBConfig({"database_uri": "sqlite://"})) as db:
            ...         async with db.get_db_session() as session:
            ...             return (await session.execute(text("select 2"))).scalar()
            >>> asyncio.run(main())
            2
        """
        async with self.acquire.user_session() as session:
            yield session

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        """Run a block in one transaction: commit on success, roll back on any exception.

        Cancellation rolls back too, and the connection always returns to the
        pool. While the block runs, every ``DatabaseOperations`` call made in
        this task (and in tasks it starts) joins the transaction. A nested
        ``transaction()`` is a SAVEPOINT: its failure rolls back only itself.

        Raises:
            NotConnectedError: after `disconnect`.

        Examples:
            >>> import asyncio
            >>> from sqlalchemy import text
            >>> async def main():
            ...     async with AsyncDatabase(DBConfig({"database_uri": "sqlite://"})) as db:
            ...         async with db.transaction() as session:
            ...             await session.execute(text("create table t (x int)"))
            ...             await session.execute(text("insert into t values (1)"))
            ...         async with db.get_db_session() as session:
            ...             return (await session.execute(text("select count(*) from t"))).scalar()
            >>> asyncio.run(main())
            1
        """
        return session.transaction(self.acquire)

    def scoped(self, **values: Any) -> session.tenancy.TenantScope:
        """Scope every operation and ORM statement of this database to ``attribute=value`` (tenants).

        Inside ``async with db.scoped(tenant_id=42):`` every ``DatabaseOperations``
        call and every ORM statement on a session of this database, for each
        mapped class with a ``tenant_id`` attribute, reads, counts, updates and
        deletes only rows with ``tenant_id == 42`` and inserts them with it; a row
        naming another value is an ``InvalidInputError``. Classes without the
        attribute are untouched. Scopes are per task and nest (an inner scope adds
        names and replaces values). Your own Core statements and SQL text are not
        rewritten. See the "Tenant scoping" page of the docs.

        Args:
            **values: Attribute names and their values, e.g. ``tenant_id=42``.

        Raises:
            InvalidInputError: no names, or a value of None.
            ConfigurationError: SQLAlchemy older than 2.1 (it would not apply the
                scope inside a relationship's ``any()`` / ``has()``: fail closed).

        Examples:
            >>> import asyncio
            >>> from sqlalchemy import Integer, String
            >>> from sqlalchemy.orm import mapped_column
            >>> from dsg_lib import DatabaseOperations
            >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
            >>> class Memo(db.Base):
            ...     __tablename__ = "scoped_memos"
            ...     id = mapped_column(Integer, primary_key=True)
            ...     tenant_id = mapped_column(Integer, nullable=False)
            ...     text = mapped_column(String(40))
            >>> async def main():
            ...     ops = DatabaseOperations(db)
            ...     await db.create_tables()
            ...     async with db.scoped(tenant_id=1):
            ...         await ops.create_one(Memo(text="one's"))
            ...     async with db.scoped(tenant_id=2):
            ...         await ops.create_one(Memo(text="two's"))
            ...         return [(m.tenant_id, m.text) for m in await ops.find(Memo)]
            >>> asyncio.run(main())
            [(2, "two's")]
        """
        return session.tenancy.TenantScope(self.acquire, values)

    def query_budget(self, max_queries: int) -> _query_budget:
        """Fail the block if it issues more than ``max_queries`` statements (N+1 detection).

        Counts every statement this task (and tasks it starts) sends inside
        the block, through any session or connection, lazy loads included;
        transaction control (``BEGIN``, ``COMMIT``, ``SAVEPOINT``) is not
        counted. See `dsg_lib.observability.query_budget` (the same thing).

        Raises:
            QueryBudgetExceededError: at the end of the block, listing the
                statements (SQL text only, never values).

        Examples:
            >>> import asyncio
            >>> from sqlalchemy import text
            >>> async def main():
            ...     async with AsyncDatabase(DBConfig({"database_uri": "sqlite://"})) as db:
            ...         async with db.query_budget(max_queries=2) as budget:
            ...             async with db.get_db_session() as session:
            ...                 await session.execute(text("select 1"))
            ...         return budget.count
            >>> asyncio.run(main())
            1
        """
        return _query_budget(max_queries)

    def current_session(self) -> AsyncSession:
        """The session of the enclosing ``transaction()`` or request scope.

        Synchronous and free: under ``DBSessionMiddleware`` the request's
        session checks out its connection on its first statement.

        Raises:
            SessionMissingError: outside a ``transaction()`` / request scope.

        Examples:
            >>> import asyncio
            >>> async def main():
            ...     async with AsyncDatabase(DBConfig({"database_uri": "sqlite://"})) as db:
            ...         async with db.transaction() as session:
            ...             return db.current_session() is session
            >>> asyncio.run(main())
            True
        """
        return session.current_session(self.acquire)

    @contextmanager
    def pin(self, conn: AsyncConnection) -> Iterator[AsyncConnection]:
        """Run every session, transaction and operation of this database on ``conn``.

        The hook behind `dsg_lib.testing.isolated`: open a transaction on
        ``conn``, pin it, roll it back afterwards. Sessions join ``conn``'s
        transaction through savepoints, so their commits stay inside it.

        Raises:
            InvalidInputError: the database is already pinned.

        Examples:
            >>> import asyncio
            >>> from sqlalchemy import text
            >>> async def main():
            ...     async with AsyncDatabase(DBConfig({"database_uri": "sqlite://"})) as db:
            ...         async with db.engine.connect() as conn:
            ...             outer = await conn.begin()
            ...             with db.pin(conn):
            ...                 async with db.transaction() as session:
            ...                     await session.execute(text("create table p (x int)"))
            ...             await outer.rollback()
            ...         async with db.get_db_session() as session:
            ...             found = await session.execute(text("select name from sqlite_master"))
            ...             return found.all()
            >>> asyncio.run(main())
            []
        """
        with self.acquire.pin(conn):
            yield conn

    async def run_in_transaction(
        self,
        fn: Callable[[AsyncSession], Awaitable[T]],
        retries: int = 3,
        *,
        backoff: float = 0.05,
        unavailable_timeout: float | None = None,
    ) -> T:
        """Run ``await fn(session)`` in ``transaction()``, re-running it on conflicts.

        A deadlock or serialization failure (``TransactionConflictError``) rolls
        the whole unit back and runs ``fn`` again from the start, up to
        ``retries`` more times, sleeping a jittered exponential backoff between
        tries. Inside an already open transaction it runs once, as a savepoint.

        Args:
            fn: The unit of work. It may run more than once: keep side effects
                outside the database idempotent.
            retries: How many times to re-run after a conflict.
            backoff: The first sleep in seconds; it doubles each retry (at most 1 s).
            unavailable_timeout: Seconds to keep re-running after
                ``DatabaseUnavailableError`` (a failover in progress, e.g. a
                write refused by a read-only or shutting-down server). Default:
                the ``failover_timeout`` config key when set (a database behind
                a proxy), else 15 when the URI lists several hosts, else 0 (no retry).

        Returns:
            What ``fn`` returned.

        Raises:
            TransactionConflictError: still conflicting after ``retries`` re-runs.
            DatabaseUnavailableError: still unavailable after ``unavailable_timeout``.

        Examples:
            >>> import asyncio
            >>> from sqlalchemy import text
            >>> async def main():
            ...     async with AsyncDatabase(DBConfig({"database_uri": "sqlite://"})) as db:
            ...         async def work(session):
            ...             return (await session.execute(text("select 40 + 2"))).scalar()
            ...         return await db.run_in_transaction(work, retries=2)
            >>> asyncio.run(main())
            42
        """
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidInputError(f"retries must be an int >= 0, got {retries!r}")
        if unavailable_timeout is None:
            unavailable_timeout = session.default_unavailable_timeout(
                self.db_config.option("failover_timeout"), self.db_config.multi_host
            )
        retrier = session.Retrier(retries, backoff, unavailable_timeout)
        return await session.run_in_transaction(self.acquire, fn, retrier)

    # ------------------------------------------------------------------ health
    def pool_status(self) -> dict[str, int]:
        """Pool counters: ``size``, ``checked_in``, ``checked_out``, ``overflow``.

        Examples:
            >>> AsyncDatabase(DBConfig({"database_uri": "sqlite://"})).pool_status()["checked_out"]
            0
        """
        return _health.pool_status(self.engine)

    async def health_check(self, timeout: float = 5.0) -> dict[str, Any]:
        """Run ``SELECT 1`` and report; never raises for an unreachable database.

        Returns:
            ``{"ok": bool, "latency_ms": float, "dialect": str, "pool": {...}}``
            plus ``"error"`` (a message without secrets) when not ok.

        Examples:
            >>> import asyncio
            >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
            >>> sorted(asyncio.run(db.health_check()))
            ['dialect', 'latency_ms', 'ok', 'pool']
            >>> asyncio.run(db.disconnect())
        """
        result = await _health.ping_report(self.acquire, self.db_config.dialect, timeout)
        result["pool"] = self.pool_status()
        if self.db_config.replicas:
            result["replicas"] = self.db_config.replicas.status()
        return result

    def __repr__(self) -> str:
        state = "open" if self.acquire.is_open else "closed"
        return f"AsyncDatabase({self.db_config.safe_url!r}, {state})"
