"""``AsyncDatabase``: sessions, transactions, tables and lifecycle for one ``DBConfig``.

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

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from loguru import logger
from sqlalchemy import MetaData, Table, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase

from . import config as _config
from .config import DBConfig, _managed_session, _shielded
from .errors import (
    DatabaseError,
    DatabaseUnavailableError,
    InvalidInputError,
    NotConnectedError,
    SessionMissingError,
    TransactionConflictError,
)
from .observability import _hooks as _observe
from .observability import query_budget as _query_budget

__all__ = ["AsyncDatabase"]

T = TypeVar("T")


class _TaskLock:
    """An asyncio lock that the task holding it may take again (re-entrant per task).

    Operations joining one transaction from several tasks take turns on its
    session; the same task never waits for itself (e.g. an update issued while
    it iterates a stream).
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if self._owner is task and task is not None:
            self._depth += 1
            return
        await self._lock.acquire()
        self._owner, self._depth = task, 1

    async def __aexit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()


@dataclass
class _Scope:
    """One level of an open ``transaction()``: its session and the lock its users take turns on.

    A nested ``transaction()`` (SAVEPOINT) is a child level on the same session.
    The task that opens it holds the parent level's lock until it ends, so
    sibling tasks cannot interleave their statements with the savepoint; tasks
    started inside it use the child level's lock among themselves. ``closed``
    is set when the level ends: a task that outlives its transaction then runs
    on the nearest open level, or on its own.
    """

    session: AsyncSession
    parent: _Scope | None = None
    lock: _TaskLock = field(default_factory=_TaskLock)
    closed: bool = False


class AsyncDatabase:
    """Sessions, transactions, tables and lifecycle on top of a `DBConfig`.

    Args:
        db_config: The configuration that owns the engine.
        base: A ``DeclarativeBase`` subclass whose models this database manages.
            Without it, ``Base`` is a new declarative base on ``db_config.metadata``.

    Attributes:
        Base: The declarative base to declare models on.
        db_config: The configuration.
        engine: The ``AsyncEngine``.

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
        self.engine = db_config.engine
        if base is None:
            base = type("Base", (DeclarativeBase,), {"metadata": db_config.metadata})
        self.Base = base
        self._sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )
        self._scope: ContextVar[_Scope | None] = ContextVar(f"dsg_lib_scope_{id(self)}", default=None)
        self._route: ContextVar[str | None] = ContextVar(f"dsg_lib_route_{id(self)}", default=None)
        self._closed = False
        self._created: set[str] = set()
        self._extra_metadata: list[MetaData] = []
        self._pinned: AsyncConnection | None = None

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
        if self._closed:
            self.db_config._reopen()
            self._closed = False
        deadline = time.monotonic() + timeout
        delay = 0.05
        attempt = 0
        reason = "timed out"
        cause: BaseException | None = None
        last_error: DatabaseUnavailableError | None = None
        while True:
            attempt += 1
            try:
                await asyncio.wait_for(self._ping(), timeout=max(deadline - time.monotonic(), 0.001))
            except DatabaseUnavailableError as exc:
                last_error = exc
                reason, cause = exc.details, exc
            except asyncio.TimeoutError as exc:
                # A last attempt cut short by the deadline keeps the previous, more useful reason.
                reason = f"timed out; last error: {last_error.details}" if last_error else "timed out"
                cause = last_error or exc
            else:
                logger.info("dsg_lib: connected to {}", self.db_config.safe_url)
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DatabaseUnavailableError(
                    f"{self.db_config.safe_url} did not answer within {timeout:g}s "
                    f"({attempt} attempts): {reason}"
                ) from cause
            logger.warning(
                "dsg_lib: database not ready (attempt {}), retrying in {:.2f}s: {}",
                attempt,
                min(delay, remaining),
                reason,
            )
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 2.0)

    async def _ping(self) -> None:
        with self.db_config.errors():
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

    async def disconnect(self) -> None:
        """Close every pooled connection. Idempotent; later use raises ``NotConnectedError``.

        Examples:
            >>> import asyncio
            >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
            >>> asyncio.run(db.disconnect())
        """
        if self._closed:
            return
        self._closed = True
        self._created.clear()
        await self.db_config.dispose()
        logger.info("dsg_lib: disconnected from {}", self.db_config.safe_url)

    @property
    def is_connected(self) -> bool:
        """False after `disconnect` until `connect`.

        Examples:
            >>> AsyncDatabase(DBConfig({"database_uri": "sqlite://"})).is_connected
            True
        """
        return not self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise NotConnectedError(
                f"the database {self.db_config.safe_url} was disconnected; call connect() first"
            )

    # ------------------------------------------------------------------ sessions
    def _new_session(self) -> AsyncSession:
        self._check_open()
        if self._pinned is not None:
            # dsg_lib.testing: every session joins the test's outer transaction
            return AsyncSession(
                bind=self._pinned, expire_on_commit=False, join_transaction_mode="create_savepoint"
            )
        return self._sessionmaker()

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
        async with _managed_session(self._new_session(), self.db_config.errors, commit=False) as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
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
        parent = self._active_scope()
        if parent is not None:
            with _observe.transaction(self.db_config, nested=True):
                async with self._savepoint(parent) as session:
                    yield session
            return
        session = self._new_session()
        scope = _Scope(session)
        token = self._scope.set(scope)
        try:
            with _observe.transaction(self.db_config, nested=False):
                async with _managed_session(session, self.db_config.errors, commit=True):
                    await session.begin()
                    yield session
        finally:
            scope.closed = True
            self._scope.reset(token)

    @asynccontextmanager
    async def _savepoint(self, parent: _Scope) -> AsyncIterator[AsyncSession]:
        # Hold the parent level for the whole savepoint: a sibling task's statements
        # must not land inside it (and be rolled back with it).
        async with parent.lock:
            scope = _Scope(parent.session, parent=parent)
            token = self._scope.set(scope)
            try:
                with self.db_config.errors():
                    nested = await parent.session.begin_nested()
                    try:
                        yield parent.session
                    except BaseException:
                        await _shielded(_rollback_savepoint(nested))
                        raise
                    await nested.commit()
            finally:
                scope.closed = True
                self._scope.reset(token)

    def _active_scope(self) -> _Scope | None:
        """The innermost open transaction level visible from this task, if any."""
        scope = self._scope.get()
        while scope is not None and scope.closed:
            scope = scope.parent
        return scope

    def query_budget(self, max_queries: int) -> _query_budget:
        """Fail the block if it issues more than ``max_queries`` statements (N+1 detection).

        Counts every statement this task (and tasks it starts) sends inside
        the block, through any session or connection, lazy loads included;
        transaction control (``BEGIN``, ``COMMIT``, ``SAVEPOINT``) is not
        counted. See `dsg_lib.observability.query_budget`.

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
        scope = self._active_scope()
        if scope is None:
            raise SessionMissingError(
                "no session in this context: call current_session() inside "
                "'async with db.transaction()' or a request handled by DBSessionMiddleware"
            )
        return scope.session

    @asynccontextmanager
    async def _op_session(
        self,
        session: AsyncSession | None = None,
        *,
        write: bool,
        single_statement: bool = False,
        autocommit: bool = True,
    ) -> AsyncIterator[AsyncSession]:
        """The session an operation runs in.

        A caller-owned ``session`` is used as is and never committed; inside
        ``transaction()`` its session is joined. Otherwise a write of several
        statements runs in a short transaction of its own, while a read or a
        write of one statement (atomic by itself) runs without BEGIN/COMMIT
        round trips where the dialect allows it (PostgreSQL, SQLite). Reads go
        to a read replica when configured.
        """
        if session is not None:
            with self.db_config.errors():
                yield session
            return
        scope = self._active_scope()
        if scope is not None:
            async with scope.lock:
                with self.db_config.errors():
                    yield scope.session
            return
        self._check_open()
        if write and self._route.get() == "replica":
            raise InvalidInputError("a write operation inside 'async with db.read_only()'")
        if self._pinned is not None or (write and not single_statement):
            own = self._new_session()
            async with _managed_session(own, self.db_config.errors, commit=write):
                yield own
            return
        # The hot path of every operation outside a transaction: kept flat on purpose.
        with self.db_config.errors():
            if write:
                conn = await self._primary_connection(autocommit)
            else:
                conn = await self._read_connection(autocommit)
        bound = AsyncSession(bind=conn, expire_on_commit=False)
        try:
            with self.db_config.errors():
                yield bound
                if write:
                    await bound.commit()
        except BaseException:
            await _shielded(_discard(conn, bound))
            raise
        await _release(conn, bound)

    @asynccontextmanager
    async def _op_connection(
        self, session: AsyncSession | None = None, *, write: bool, single_statement: bool = True
    ) -> AsyncIterator[AsyncConnection]:
        """Like ``_op_session`` for Core statements: a connection, with no ORM session when none is needed."""
        if (
            session is not None
            or self._pinned is not None
            or self._active_scope() is not None
            or (write and not single_statement)
        ):
            async with self._op_session(session, write=write, single_statement=single_statement) as joined:
                yield await joined.connection()
            return
        self._check_open()
        if write and self._route.get() == "replica":
            raise InvalidInputError("a write operation inside 'async with db.read_only()'")
        with self.db_config.errors():
            conn = await (self._primary_connection(True) if write else self._read_connection(True))
        try:
            with self.db_config.errors():
                yield conn
                if write:
                    await conn.commit()
        except BaseException:
            await _shielded(_discard(conn))
            raise
        await _release(conn)

    async def _primary_connection(self, autocommit: bool = False) -> AsyncConnection:
        engine = self.db_config.autocommit_engine if autocommit else self.engine
        return await (_observe.checkout(self.db_config, engine) if _observe.ACTIVE else engine.connect())

    async def _read_connection(self, autocommit: bool = True) -> AsyncConnection:
        """A connection for a read outside a transaction: a healthy replica, else the primary."""
        replicas = self.db_config.replicas
        if replicas and self._route.get() != "primary":
            for replica in replicas.candidates():
                engine = replica.autocommit_engine if autocommit else replica.engine
                try:
                    conn = await (
                        _observe.checkout(self.db_config, engine) if _observe.ACTIVE else engine.connect()
                    )
                except (DatabaseError, OSError, asyncio.TimeoutError, SQLAlchemyError) as exc:
                    replicas.mark_down(replica, self.db_config.translate(exc).details)
                    continue
                replicas.mark_used(replica)
                return conn
            if self._route.get() == "replica":
                logger.warning("dsg_lib: no healthy read replica; read_only() block reads the primary")
        return await self._primary_connection(autocommit)

    @asynccontextmanager
    async def primary(self) -> AsyncIterator[None]:
        """Send this block's reads to the primary (read-your-writes after a write).

        Examples:
            >>> import asyncio
            >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
            >>> async def main():
            ...     async with db.primary():
            ...         return (await db.health_check())["ok"]
            >>> asyncio.run(main())
            True
            >>> asyncio.run(db.disconnect())
        """
        async with self._routed("primary"):
            yield

    @asynccontextmanager
    async def read_only(self) -> AsyncIterator[None]:
        """Send this block's reads to a read replica and refuse writes made through operations.

        With no healthy replica the reads go to the primary (with a warning).

        Raises:
            InvalidInputError: a ``DatabaseOperations`` write inside the block.

        Examples:
            >>> import asyncio
            >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
            >>> async def main():
            ...     async with db.read_only():
            ...         return (await db.health_check())["ok"]
            >>> asyncio.run(main())
            True
            >>> asyncio.run(db.disconnect())
        """
        async with self._routed("replica"):
            yield

    @asynccontextmanager
    async def _routed(self, route: str) -> AsyncIterator[None]:
        token = self._route.set(route)
        try:
            yield
        finally:
            self._route.reset(token)

    def _in_scope(self) -> bool:
        return self._active_scope() is not None

    async def run_in_transaction(
        self,
        fn: Callable[[AsyncSession], Awaitable[T]],
        retries: int = 3,
        *,
        backoff: float = 0.05,
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
            backoff: The first sleep in seconds; it doubles each retry.

        Returns:
            What ``fn`` returned.

        Raises:
            TransactionConflictError: still conflicting after ``retries`` re-runs.

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
        if self._active_scope() is not None:
            async with self.transaction() as session:
                return await fn(session)
        attempt = 0
        while True:
            try:
                async with self.transaction() as session:
                    return await fn(session)
            except TransactionConflictError as exc:
                if attempt >= retries:
                    raise
                attempt += 1
                sleep = backoff * (2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
                logger.warning(
                    "dsg_lib: transaction conflict ({}), retry {}/{} in {:.3f}s",
                    exc.details[:120],
                    attempt,
                    retries,
                    sleep,
                )
                await asyncio.sleep(sleep)

    # ------------------------------------------------------------------ tables
    def _metadatas(self) -> list[MetaData]:
        found: list[MetaData] = []
        legacy = _config._LegacyBase.metadata
        for metadata in (self.Base.metadata, self.db_config.metadata, legacy, *self._extra_metadata):
            if metadata.tables and all(metadata is not m for m in found):
                found.append(metadata)
        return found

    def _resolve_tables(self, items: tuple[Any, ...]) -> list[Table]:
        tables: list[Table] = []
        for item in items:
            table = item if isinstance(item, Table) else getattr(item, "__table__", None)
            if not isinstance(table, Table):
                raise InvalidInputError(f"expected a mapped model class or a Table, got {item!r}")
            tables.append(table)
        return tables

    async def create_tables(self, *models_or_tables: Any) -> None:
        """Create tables that do not exist yet (idempotent).

        Args:
            *models_or_tables: Mapped classes or ``Table`` objects. None means
                every table of ``Base`` (and of the legacy ``database_config.BASE``).

        Examples:
            >>> import asyncio
            >>> from sqlalchemy import Integer
            >>> from sqlalchemy.orm import mapped_column
            >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
            >>> class Tag(db.Base):
            ...     __tablename__ = "tags"
            ...     id = mapped_column(Integer, primary_key=True)
            >>> asyncio.run(db.create_tables(Tag))
            >>> asyncio.run(db.disconnect())
        """
        await self._run_ddl(models_or_tables, create=True)

    async def add_models(self, *models: Any) -> None:
        """Register models (from any declarative base) and create their tables the first time.

        Later calls with the same models do nothing; ``drop_tables()`` and
        ``clean()`` include them.

        Examples:
            >>> import asyncio
            >>> from sqlalchemy import Integer
            >>> from sqlalchemy.orm import DeclarativeBase, mapped_column
            >>> class OtherBase(DeclarativeBase):
            ...     pass
            >>> class Plugin(OtherBase):
            ...     __tablename__ = "plugins"
            ...     id = mapped_column(Integer, primary_key=True)
            >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
            >>> asyncio.run(db.add_models(Plugin))
            >>> asyncio.run(db.disconnect())
        """
        tables = self._resolve_tables(models)
        for table in tables:
            if all(table.metadata is not m for m in (*self._metadatas(), *self._extra_metadata)):
                self._extra_metadata.append(table.metadata)
        new = [t for t in tables if t.fullname not in self._created]
        if new:
            await self.create_tables(*new)

    async def clean(self) -> None:
        """Drop every table this database knows (``Base``, legacy ``BASE``, ``add_models``). For tests.

        Examples:
            >>> import asyncio
            >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
            >>> asyncio.run(db.clean())
            >>> asyncio.run(db.disconnect())
        """
        await self.drop_tables()

    async def drop_tables(self, *models_or_tables: Any) -> None:
        """Drop tables that exist (idempotent); no arguments drops every table of ``Base``.

        Examples:
            >>> import asyncio
            >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
            >>> asyncio.run(db.drop_tables())
            >>> asyncio.run(db.disconnect())
        """
        await self._run_ddl(models_or_tables, create=False)

    async def _run_ddl(self, items: tuple[Any, ...], *, create: bool) -> None:
        self._check_open()
        groups: dict[int, tuple[MetaData, list[Table] | None]] = {}
        if items:
            for table in self._resolve_tables(items):
                groups.setdefault(id(table.metadata), (table.metadata, []))[1].append(table)  # type: ignore[union-attr]
        else:
            for metadata in self._metadatas():
                groups[id(metadata)] = (metadata, None)
        with self.db_config.errors():
            async with self._ddl_connection() as conn:
                for metadata, tables in groups.values():
                    if create:
                        await conn.run_sync(metadata.create_all, tables=tables, checkfirst=True)
                    else:
                        await conn.run_sync(metadata.drop_all, tables=tables, checkfirst=True)
        names = [t.fullname for m, ts in groups.values() for t in (ts or m.tables.values())]
        if create:
            self._created.update(names)
        else:
            self._created.difference_update(names)
        logger.info("dsg_lib: {} tables {}", "created" if create else "dropped", sorted(names))

    @asynccontextmanager
    async def _ddl_connection(self) -> AsyncIterator[AsyncConnection]:
        if self._pinned is not None:
            async with self._pinned.begin_nested():
                yield self._pinned
            return
        async with self.engine.begin() as conn:
            yield conn

    # ------------------------------------------------------------------ health
    def pool_status(self) -> dict[str, int]:
        """Pool counters: ``size``, ``checked_in``, ``checked_out``, ``overflow``.

        Examples:
            >>> AsyncDatabase(DBConfig({"database_uri": "sqlite://"})).pool_status()["checked_out"]
            0
        """
        pool: Any = self.engine.pool
        status = {"size": 0, "checked_in": 0, "checked_out": 0, "overflow": 0}
        for key, method in (
            ("size", "size"),
            ("checked_in", "checkedin"),
            ("checked_out", "checkedout"),
            ("overflow", "overflow"),
        ):
            fn = getattr(pool, method, None)
            if callable(fn):
                status[key] = int(fn())
        return status

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
        start = time.perf_counter()
        result: dict[str, Any] = {"ok": True, "latency_ms": 0.0, "dialect": self.db_config.dialect}
        try:
            self._check_open()
            await asyncio.wait_for(self._ping(), timeout=timeout)
        except (DatabaseError, asyncio.TimeoutError) as exc:
            result["ok"] = False
            result["error"] = (
                exc.details if isinstance(exc, DatabaseError) else f"timed out after {timeout:g}s"
            )
        result["latency_ms"] = round((time.perf_counter() - start) * 1000.0, 3)
        result["pool"] = self.pool_status()
        if self.db_config.replicas:
            result["replicas"] = self.db_config.replicas.status()
        return result

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"AsyncDatabase({self.db_config.safe_url!r}, {state})"


async def _discard(conn: AsyncConnection, session: AsyncSession | None = None) -> None:
    """Roll back and release after a failed operation (run shielded from cancellation)."""
    try:
        if session is not None:
            try:
                await session.rollback()
            finally:
                await session.close()
        else:
            await conn.rollback()
    finally:
        await conn.close()


async def _release(conn: AsyncConnection, session: AsyncSession | None = None) -> None:
    """Return the connection to the pool after a successful operation, whatever happens."""
    try:
        try:
            if session is not None:
                await session.close()
        finally:
            await conn.close()
    except asyncio.CancelledError:
        await _shielded(conn.invalidate())
        raise


async def _rollback_savepoint(nested: Any) -> None:
    if nested.is_active:
        await nested.rollback()
