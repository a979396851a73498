"""A request transaction that checks out its connection on first use (private).

`DBSessionMiddleware` opens one transaction per HTTP request, but many routes
(``/metrics``, a static page, a route that answers from a cache) never touch
the database. Checking a connection out for them would make them fail while
the database is down and wait ``pool_timeout`` while the pool is exhausted.

`LazySession` is an ``AsyncSession`` created without a connection. The first
statement (``execute``, ``scalars``, ``get``, ``flush``, ``connection()``,
``run_sync``, ...; a ``commit()`` with pending objects) takes one through
``Acquirer.connect("primary")``, the same path an eager ``transaction()``
takes, so the pre-ping window, observability's wait time, the
``NotConnectedError`` after ``disconnect()`` and the atomicity guard
(``engine.GUARD``) all apply; from then on the session is bound to that one
connection for the rest of the request (every statement, savepoints included,
runs on it). ``current_session()`` stays synchronous: it returns the session
object, which needs no connection until it is used.

A path that reaches the database without one of those coroutine methods (an
attribute lazy load through ``awaitable_attrs`` that autoflushes before the
request's first statement) still works: the session is bound to the primary
engine, SQLAlchemy checks out a connection itself and the guard is set on it
as it begins (no pre-ping window there: a dead pooled connection fails that
statement with ``DatabaseUnavailableError``, as within the window).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from ..backends import GUARD
from ._acquire import release, shielded

if TYPE_CHECKING:
    from ._acquire import Acquirer

__all__ = ["LazySession", "transaction_session"]


class _LazySyncSession(Session):
    """The sync side of `LazySession`; notes when SQLAlchemy connected by itself (the fallback)."""

    dsg_lib_bound = False
    dsg_lib_fallback = False


@event.listens_for(_LazySyncSession, "after_begin")
def _on_begin(session: Session, transaction: Any, connection: Any) -> None:
    if isinstance(session, _LazySyncSession) and not session.dsg_lib_bound:
        # SQLAlchemy connected by itself: guard that connection too (checked from its
        # first statement on; the BEGIN just sent is not a statement of the block)
        session.dsg_lib_fallback = True
        connection.execution_options(**{GUARD: True})


def _needs(name: str) -> Any:
    """``AsyncSession.<name>``, checking out the connection first."""
    method = getattr(AsyncSession, name)

    async def wrapper(self: LazySession, *args: Any, **kwargs: Any) -> Any:
        await self.check_out()
        return await method(self, *args, **kwargs)

    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__doc__ = method.__doc__
    return wrapper


class LazySession(AsyncSession):
    """An ``AsyncSession`` of one request that checks out its connection on first use.

    Attributes:
        checked_out: The connection it took, or None while it has none.

    Examples:
        >>> LazySession.__mro__[1].__name__
        'AsyncSession'
    """

    sync_session_class = _LazySyncSession

    def __init__(self, acquirer: Acquirer) -> None:
        super().__init__(bind=acquirer.config.primary.engine(False), expire_on_commit=False)
        self._acquirer = acquirer
        self._lock = asyncio.Lock()
        self.checked_out: AsyncConnection | None = None

    @property
    def _sync(self) -> _LazySyncSession:
        sync = self.sync_session
        assert isinstance(sync, _LazySyncSession)
        return sync

    @property
    def used_fallback(self) -> bool:
        """True if SQLAlchemy connected by itself (see the module docstring)."""
        return self._sync.dsg_lib_fallback

    async def check_out(self) -> None:
        """Take the request's connection, once (pre-pinged, guarded, then bound for good)."""
        sync = self._sync
        if sync.dsg_lib_bound or sync.dsg_lib_fallback:
            return
        async with self._lock:
            if sync.dsg_lib_bound or sync.dsg_lib_fallback:
                return
            conn = await self._acquirer.connect("primary")
            self.checked_out = conn
            if conn.sync_connection is not None:
                # the database ending the transaction fails the request (see engine.GUARD)
                conn.sync_connection.execution_options(**{GUARD: True})
            sync.dsg_lib_bound = True
            self.bind = conn  # SQLAlchemy 2.1: also binds the sync session
            sync.bind = conn.sync_connection  # SQLAlchemy 2.0: the sync side is separate

    async def commit(self) -> None:
        """Commit; objects still pending are flushed, so they need the connection too."""
        sync = self._sync
        if not sync.dsg_lib_bound and (sync.new or sync.dirty or sync.deleted):
            await self.check_out()
        await super().commit()

    # every coroutine method that may need the database
    execute = _needs("execute")
    scalar = _needs("scalar")
    scalars = _needs("scalars")
    get = _needs("get")
    get_one = _needs("get_one")
    stream = _needs("stream")
    stream_scalars = _needs("stream_scalars")
    delete = _needs("delete")
    merge = _needs("merge")
    flush = _needs("flush")
    refresh = _needs("refresh")
    connection = _needs("connection")
    run_sync = _needs("run_sync")


for _name in ("merge_all", "delete_all"):  # SQLAlchemy 2.1
    if hasattr(AsyncSession, _name):
        setattr(LazySession, _name, _needs(_name))


@asynccontextmanager
async def transaction_session(acquirer: Acquirer) -> AsyncIterator[AsyncSession]:
    """The session of a request's outermost transaction: primary, committed on success,
    its connection checked out on first use.

    A pinned database (tests) runs it on the pinned connection at once, as
    ``Acquirer.transaction_session`` does.
    """
    if acquirer.pinned is not None:
        async with acquirer.transaction_session() as pinned:
            yield pinned
        return
    own = LazySession(acquirer)  # disconnect() is noticed at the checkout, if one is needed
    try:
        with acquirer.config.errors():
            await own.begin()
            yield own
            await own.commit()
    except BaseException as exc:
        if own.checked_out is not None:
            await acquirer.discard(own.checked_out, own, exc)
        else:
            await shielded(_end_unbound(acquirer, own, exc))
            if own.used_fallback and isinstance(exc, asyncio.CancelledError):
                await shielded(acquirer.config.stopper.settle())
        raise
    await release(own.checked_out, own)


async def _end_unbound(acquirer: Acquirer, own: LazySession, exc: BaseException) -> None:
    """Roll back a session without a connection of ours (none, or SQLAlchemy's own)."""
    if own.used_fallback and acquirer.backend.discard_after(exc):
        # as Acquirer.discard: such a connection never goes back to the pool
        await AsyncSession.run_sync(own, Session.invalidate)
        return
    try:
        await own.rollback()
    finally:
        await own.close()
