"""The one place that hands out connections and sessions, and cleans up after them (private).

Every statement dsg_lib runs gets its connection here: operations (reads,
writes, compiled statements), ``transaction()``, ``get_db_session()``, DDL and
health checks. So routing (replica or primary), the pre-ping window, test
pinning and the cancellation policy each exist once:

* a connection idle for longer than ``pre_ping_window_ms`` is pinged before
  use (a hot pool pays no round trip); a read outside a transaction whose
  connection turns out dead is run once more on a fresh one (`Acquirer.read`),
  a write never is;
* on any error the work is rolled back and the connection released, shielded
  from a second cancellation. A statement cancelled mid-flight is stopped on
  the server (`backends.StatementStopper`) and SQLAlchemy discards its
  connection instead of pooling it; the cancelled operation returns once the
  server has let go of the statement.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from loguru import logger
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from ..backends import BEGIN_AGAIN, GUARD, is_alive, keep_if_caught_up, pooled_connection
from ..errors import DatabaseUnavailableError, InvalidInputError, NotConnectedError
from . import _hooks
from ._context import active, route_of, wanted_of

if TYPE_CHECKING:
    from ..backends import Backend, StatementStopper
    from ..engine import Endpoint, ReplicaSet
    from ..errors import DatabaseError


class EngineConfig(Protocol):
    """What an `Acquirer` uses of its ``DBConfig`` (typed here: ``config/`` sits above this layer)."""

    dialect: str
    backend: Backend
    primary: Endpoint
    replicas: ReplicaSet
    pre_ping_window: float | None
    stopper: StatementStopper

    @property
    def safe_url(self) -> str:
        """The URL with the password masked."""

    def errors(self) -> AbstractContextManager[None]:
        """A block whose exceptions become `DatabaseError` s."""

    def translate(self, exc: BaseException) -> DatabaseError:
        """``exc`` as a `DatabaseError`."""


T = TypeVar("T")
Target = Literal["read", "write", "primary"]

#: how many pooled connections a checkout pings before it takes a new one
_MAX_DEAD_IN_A_ROW = 64


class Acquirer:
    """Hands out connections and sessions of one database and cleans up after them.

    ``DatabaseOperations`` and ``AsyncDatabase`` use it through ``db.acquire``.

    Attributes:
        config: The `DBConfig` whose engines it draws from.
        pinned: A connection every session and operation runs on (tests), or None.
        is_open: False between ``disconnect()`` and ``connect()``.
    """

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.backend = config.backend
        self.pinned: AsyncConnection | None = None
        self.is_open = True

    # ------------------------------------------------------------------ state
    def check_open(self) -> None:
        if not self.is_open:
            raise NotConnectedError(
                f"the database {self.config.safe_url} was disconnected; call connect() first"
            )

    def in_transaction(self) -> bool:
        """True inside a ``transaction()`` of this database (operations then join it)."""
        return active(self) is not None

    @contextmanager
    def pin(self, conn: AsyncConnection) -> Iterator[AsyncConnection]:
        """Run every session and operation on ``conn`` while the block runs."""
        if self.pinned is not None:
            raise InvalidInputError("a database can be pinned to one connection at a time")
        self.pinned = conn
        try:
            yield conn
        finally:
            self.pinned = None

    # ------------------------------------------------------------------ connections
    async def checkout(self, engine: AsyncEngine) -> AsyncConnection:
        """A pooled connection of ``engine``, pinged first if idle past the pre-ping window."""
        conn = await (_hooks.checkout(self.config, engine) if _hooks.ACTIVE else engine.connect())
        window = self.config.pre_ping_window
        if window is None:
            return conn
        for _ in range(_MAX_DEAD_IN_A_ROW):
            if await is_alive(await pooled_connection(conn), self.backend, window):
                return conn
            await _quietly(conn.invalidate())
            await _quietly(conn.close())
            conn = await engine.connect()
        return conn

    async def connect(self, target: Target, *, autocommit: bool = False) -> AsyncConnection:
        """A connection for ``target``: ``"read"`` (a replica when routed there),
        ``"write"`` (the primary; refused inside ``read_only()``) or ``"primary"``.

        ``autocommit`` runs single statements without BEGIN/COMMIT round trips
        where the dialect makes that free (see ``engine.autocommit_options``).
        """
        self.check_open()
        if self.pinned is not None:
            return self.pinned
        route = route_of(self)
        if target == "write" and route == "replica":
            raise InvalidInputError("a write operation inside 'async with db.read_only()'")
        with self.config.errors():
            wanted = wanted_of(self)  # consistent_with(token): None = the primary
            if target == "read" and route != "primary" and self.config.replicas and wanted is not None:
                conn = await self.config.replicas.connect(autocommit, self.checkout, self.config.translate)
                if conn is not None and wanted > 0:
                    conn = await keep_if_caught_up(self, conn, wanted)
                if conn is not None:
                    return conn
                if route == "replica":
                    logger.warning("dsg_lib: no healthy read replica; read_only() block reads the primary")
            return await self.checkout(self.config.primary.engine(autocommit))

    @asynccontextmanager
    async def connection(
        self,
        session: AsyncSession | None = None,
        *,
        write: bool,
        single_statement: bool = True,
        snapshot: bool = False,
    ) -> AsyncIterator[AsyncConnection]:
        """A connection for Core statements of one operation, with no ORM session when none is needed.

        A caller's ``session``, an open transaction, a pinned connection, a
        write of several statements or a read of several statements that must
        see one snapshot (``snapshot``, see `session`) get the connection of
        `session`; otherwise a single statement runs on a pooled connection
        without BEGIN/COMMIT.
        """
        if (
            session is not None
            or self.pinned is not None
            or self.in_transaction()
            or (write and not single_statement)
        ):
            async with self.session(session, write=write, single_statement=single_statement) as joined:
                yield await joined.connection()
            return
        begin_with = self.backend.snapshot_options() if snapshot else None
        if begin_with is not None:
            async with self._snapshot_connection(write, begin_with) as conn:
                yield conn
            return
        conn = await self.connect("write" if write else "read", autocommit=True)
        try:
            with self.config.errors():
                yield conn
                if write and conn.in_transaction():  # none after a driver call (see _fast)
                    await conn.commit()
        except BaseException as exc:
            await self.discard(conn, None, exc)
            raise
        await release(conn, None)

    @asynccontextmanager
    async def _snapshot_connection(
        self, write: bool, options: dict[str, Any]
    ) -> AsyncIterator[AsyncConnection]:
        """A connection in one read-snapshot transaction (see `session`), without an ORM session."""
        conn = await self.connect("write" if write else "read")
        if conn.sync_connection is not None:
            conn.sync_connection.execution_options(**{GUARD: True, **options})
        try:
            with self.config.errors():
                await conn.begin()
                yield conn
                await conn.commit()
        except BaseException as exc:
            await self.discard(conn, None, exc)
            raise
        await release(conn, None)

    @asynccontextmanager
    async def session(
        self,
        session: AsyncSession | None = None,
        *,
        write: bool,
        single_statement: bool = False,
        autocommit: bool = True,
        snapshot: bool = False,
    ) -> AsyncIterator[AsyncSession]:
        """The session one operation runs in.

        A caller-owned ``session`` is used as is and never committed; inside
        ``transaction()`` its session is joined (taking turns with other
        tasks). Otherwise a write of several statements runs in a short
        transaction of its own, while a read or a single-statement write runs
        without BEGIN/COMMIT round trips where the dialect allows it. A read
        of several statements that must agree (``snapshot``: ``paginate``'s
        count and rows, ``read_multi_query``) runs in one read snapshot
        where statements would otherwise each see their own
        (`engine.snapshot_options`: MySQL/MariaDB).
        """
        if session is not None:
            with self.config.errors():
                yield session
            return
        scope = active(self)
        if scope is not None:
            async with scope.turn:
                with self.config.errors():
                    yield scope.session
            return
        begin_with = self.backend.snapshot_options() if snapshot and self.pinned is None else None
        if begin_with is not None:
            async with self._own_session(
                "write" if write else "read", autocommit=False, commit=True, begin=True, options=begin_with
            ) as own:
                yield own
            return
        no_begin = autocommit and (not write or single_statement) and self.pinned is None
        async with self._own_session("write" if write else "read", autocommit=no_begin, commit=write) as own:
            yield own

    def transaction_session(self) -> Any:
        """The session of a new outermost ``transaction()``: primary, committed on success."""
        return self._own_session("primary", autocommit=False, commit=True, begin=True)

    def user_session(self) -> Any:
        """The session ``get_db_session()`` yields: primary, never committed for the caller."""
        # not a transaction() block: after the database ends the transaction, the next
        # statement begins a new one, as plain SQLAlchemy on a connection without autocommit
        return self._own_session("primary", autocommit=False, commit=False, options={GUARD: BEGIN_AGAIN})

    @asynccontextmanager
    async def _own_session(
        self,
        target: Target,
        *,
        autocommit: bool,
        commit: bool,
        begin: bool = False,
        options: dict[str, Any] | None = None,
    ) -> AsyncIterator[AsyncSession]:
        conn = await self.connect(target, autocommit=autocommit)
        if not autocommit and conn is not self.pinned and conn.sync_connection is not None:
            # the database ending the transaction fails the block; ``options``: how it begins
            conn.sync_connection.execution_options(**{GUARD: True, **(options or {})})
        # A pinned connection already runs the test's outer transaction: join it
        # through savepoints so a commit or rollback here stays inside it.
        if conn is self.pinned:
            own = AsyncSession(bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint")
        else:
            own = AsyncSession(bind=conn, expire_on_commit=False)
        try:
            with self.config.errors():
                if begin:
                    await own.begin()
                yield own
                if commit:
                    await own.commit()
        except BaseException as exc:
            await self.discard(conn, own, exc)
            raise
        await release(conn if conn is not self.pinned else None, own)

    async def read(
        self,
        fn: Callable[[Any], Awaitable[T]],
        session: AsyncSession | None = None,
        *,
        orm: bool = False,
    ) -> T:
        """``await fn(conn)`` for one read (``fn(session)`` with ``orm=True``), run
        once more on a fresh connection if its pooled connection turned out dead.

        Connections used within the pre-ping window are not pinged, so a server
        restart or a killed backend shows up as the first statement failing. A
        read outside a transaction is safe to repeat; anything else raises.
        """
        retry = session is None and self.pinned is None and not self.in_transaction()

        def handle(given: AsyncSession | None) -> AbstractAsyncContextManager[Any]:
            return self.session(given, write=False) if orm else self.connection(given, write=False)

        try:
            async with handle(session) as first:
                return await fn(first)
        except DatabaseUnavailableError as exc:
            if not (retry and _lost_connection(exc)):
                raise
            logger.warning("dsg_lib: pooled connection was dead; read retried on a fresh one")
        async with handle(None) as second:
            return await fn(second)

    async def ping(self) -> None:
        """``SELECT 1`` on the primary (``connect()`` and ``health_check()``)."""
        conn = await self.connect("primary", autocommit=True)
        try:
            with self.config.errors():
                await conn.exec_driver_sql("SELECT 1")
        except BaseException as exc:
            await self.discard(conn, None, exc)
            raise
        await release(conn if conn is not self.pinned else None, None)

    @asynccontextmanager
    async def ddl_connection(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction for CREATE / DROP (a savepoint when pinned)."""
        conn = await self.connect("primary")
        if conn is self.pinned:
            with self.config.errors():
                async with conn.begin_nested():
                    yield conn
            return
        try:
            with self.config.errors():
                async with conn.begin():
                    yield conn
        except BaseException as exc:
            await self.discard(conn, None, exc)
            raise
        await release(conn, None)

    # ------------------------------------------------------------------ cleanup
    async def discard(self, conn: AsyncConnection, session: AsyncSession | None, exc: BaseException) -> None:
        """Roll back and release after a failure (``exc``), even while being cancelled.

        A statement cancelled mid-flight has already been stopped and its
        connection discarded by then (``backends.StatementStopper`` and
        SQLAlchemy's handling of ``CancelledError``); what is left is to end the
        transaction and give the connection back, shielded from a second cancel.
        """
        pinned = conn is self.pinned
        if not pinned and self.backend.discard_after(exc):
            # e.g. asyncpg refused a value mid-statement, or the server is read-only or
            # shutting down now (a failover: a compiled driver call's error never passed
            # SQLAlchemy's handle_error); see PostgreSQLBackend.discard_after
            await shielded(conn.invalidate())
        await shielded(_rollback_and_release(conn, session, pinned=pinned))
        if isinstance(exc, asyncio.CancelledError):
            await shielded(self.config.stopper.settle())


async def _rollback_and_release(conn: AsyncConnection, session: AsyncSession | None, *, pinned: bool) -> None:
    try:
        if session is not None:
            try:
                await session.rollback()
            finally:
                await session.close()
        elif not pinned:
            await conn.rollback()
    finally:
        if not pinned:
            await conn.close()


async def release(conn: AsyncConnection | None, session: AsyncSession | None) -> None:
    """Return the connection to the pool after success, whatever happens meanwhile."""
    try:
        try:
            if session is not None:
                await session.close()
        finally:
            if conn is not None:
                await conn.close()
    except asyncio.CancelledError:
        if conn is not None:
            await shielded(conn.invalidate())
        raise


async def shielded(cleanup: Coroutine[Any, Any, None]) -> None:
    """Run a cleanup to the end even if the caller is cancelled meanwhile."""
    task = asyncio.ensure_future(cleanup)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise
    except Exception as exc:  # the original error wins; the connection is discarded
        logger.debug("dsg_lib: error while releasing a connection: {}", type(exc).__name__)


async def _quietly(step: Awaitable[Any]) -> None:
    """Await a best-effort cleanup step; a connection that is already broken may refuse it."""
    try:
        await step
    except Exception as exc:
        logger.debug("dsg_lib: cleanup step failed: {}", type(exc).__name__)


def _lost_connection(exc: BaseException) -> bool:
    """True if ``exc`` comes from a connection SQLAlchemy found dead (and invalidated).

    The typed error keeps the driver's error as its cause and SQLAlchemy's
    wrapper in its context: both links are followed.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        todo.extend((current.__cause__, current.__context__, getattr(current, "driver_error", None)))
    return False
