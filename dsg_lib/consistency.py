"""Read-your-writes across requests: consistency tokens and replica catch-up checks.

After a write commits, `AsyncDatabase.consistency_token` returns an opaque
string. A later request that presents it (``async with
db.consistent_with(token):``) reads from a read replica only when that
replica has replayed the primary's WAL at least that far; otherwise it reads
the primary. On PostgreSQL the token is a WAL position (LSN); on backends
without such a position the token sends the reads to the primary.

The FastAPI side is `dsg_lib.fastapi.ConsistencyMiddleware`.

Examples:
    >>> parse_token("pg:0/16B3748")
    23803720
    >>> parse_token("primary") is None
    True
"""

from __future__ import annotations

import re
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import routing
from ._listeners import own
from .errors import InvalidInputError

if TYPE_CHECKING:
    from ._acquire import Acquirer

__all__ = ["PRIMARY_TOKEN", "WriteTracker", "format_lsn", "parse_token"]

#: the token of a backend without a WAL position: read the primary
PRIMARY_TOKEN = "primary"

_PG_TOKEN = re.compile(r"^pg:([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


def parse_token(token: str) -> int | None:
    """The WAL position a token stands for, or ``None`` for "read the primary".

    Args:
        token: A string returned by `AsyncDatabase.consistency_token`.

    Raises:
        InvalidInputError: not a token (e.g. a tampered header).

    Examples:
        >>> parse_token("pg:1/0")
        4294967296
        >>> parse_token("x")
        Traceback (most recent call last):
        ...
        dsg_lib.errors.InvalidInputError: not a consistency token: expected 'pg:<hi>/<lo>' or 'primary'
    """
    if token == PRIMARY_TOKEN:
        return None
    match = _PG_TOKEN.match(token) if isinstance(token, str) else None
    if match is None:
        raise InvalidInputError("not a consistency token: expected 'pg:<hi>/<lo>' or 'primary'")
    return (int(match[1], 16) << 32) + int(match[2], 16)


def format_lsn(lsn: str) -> str:
    """The token for a PostgreSQL LSN as the server prints it (``0/16B3748``).

    Examples:
        >>> format_lsn("0/16B3748")
        'pg:0/16B3748'
    """
    return f"pg:{lsn}"


async def primary_token(conn: AsyncConnection, dialect: str) -> str:
    """The token for everything committed so far, read on a primary connection.

    ``pg_current_wal_lsn()`` is at or after the commit record of every
    transaction that has already returned from COMMIT, so a replica that
    replayed that far sees all of them.
    """
    if dialect != "postgresql":
        return PRIMARY_TOKEN
    lsn = (await conn.execute(text("SELECT pg_current_wal_lsn()::text"))).scalar_one()
    return format_lsn(str(lsn))


async def issue_token(acquire: Acquirer, dialect: str) -> str:
    """`AsyncDatabase.consistency_token`: the primary's WAL position, or `PRIMARY_TOKEN`."""
    acquire.check_open()
    if dialect != "postgresql":
        return PRIMARY_TOKEN
    async with routing.routed(acquire, "primary"), acquire.connection(write=False) as conn:
        return await primary_token(conn, dialect)


def consistent_with(acquire: Acquirer, token: str | None) -> AbstractAsyncContextManager[None]:
    """`AsyncDatabase.consistent_with`: check ``token`` now, route the block's reads by it."""
    if token:
        parse_token(token)  # a bad token fails here, not at the first read
    return consistent(acquire, token)


#: ``consistent_with`` blocks per database: (owner, wanted position or None = the primary)
_WANTED: ContextVar[tuple[tuple[object, int | None], ...]] = ContextVar("dsg_lib_wanted", default=())
#: no ``consistent_with`` block: reads route as usual
NO_REQUIREMENT = -1


def wanted_of(owner: object) -> int | None:
    """The WAL position reads of ``owner`` must see, ``None`` (primary) or `NO_REQUIREMENT`."""
    for who, wanted in reversed(_WANTED.get()):
        if who is owner:
            return wanted
    return NO_REQUIREMENT


@asynccontextmanager
async def consistent(owner: object, token: str | None) -> AsyncIterator[None]:
    """Reads of ``owner`` in this block (and tasks it starts) must see ``token``."""
    if not token:
        yield
        return
    reset = _WANTED.set((*_WANTED.get(), (owner, parse_token(token))))
    try:
        yield
    finally:
        _WANTED.reset(reset)


_CACHES: weakref.WeakKeyDictionary[object, ReplayCache] = weakref.WeakKeyDictionary()


async def keep_if_caught_up(owner: object, conn: AsyncConnection, wanted: int) -> AsyncConnection | None:
    """``conn`` (a replica's) when it has replayed up to ``wanted``; else close it and return None."""
    cache = _CACHES.get(owner)
    if cache is None:
        cache = _CACHES[owner] = ReplayCache()
    return conn if await cache.usable(conn.engine.url, conn, wanted) else None


@dataclass
class ReplayCache:
    """The furthest WAL position seen replayed on each replica (replay only moves forward)."""

    replayed: dict[Any, int] = field(default_factory=dict)

    async def usable(self, name: Any, conn: AsyncConnection, wanted: int) -> bool:
        """True when the replica behind ``conn`` has replayed up to ``wanted``; else closes ``conn``."""
        try:
            ok = await self.caught_up(name, conn, wanted)
        except BaseException:
            await conn.close()
            raise
        if not ok:
            await conn.close()
        return ok

    async def caught_up(self, name: Any, conn: AsyncConnection, wanted: int) -> bool:
        """True when the replica behind ``conn`` has replayed up to ``wanted``."""
        if self.replayed.get(name, -1) >= wanted:
            return True
        value = (await conn.execute(text("SELECT pg_last_wal_replay_lsn()::text"))).scalar()
        if value is None:  # not a standby (e.g. promoted): it has everything it has
            return True
        seen = parse_token(format_lsn(str(value)))
        assert seen is not None
        if seen > self.replayed.get(name, -1):
            self.replayed[name] = seen
        return seen >= wanted


#: connection info key: a statement that writes ran since the last commit / rollback
_WROTE = "dsg_lib_wrote"
#: statements that read or manage the session, never write (anything else counts as a write)
_READ_ONLY = frozenset(
    {"SELECT", "SHOW", "SET", "EXPLAIN", "PRAGMA", "VALUES", "DESCRIBE", "SAVEPOINT", "RELEASE", "ROLLBACK"}
    | {"BEGIN", "START", "COMMIT"}
)


def _writes(statement: str) -> bool:
    """Whether ``statement`` may write (``SELECT ... FOR UPDATE`` does not; a ``WITH`` might)."""
    words = statement.lstrip(" (\n\t").split(None, 1)
    return bool(words) and words[0].upper() not in _READ_ONLY


class WriteTracker:
    """Notes, per request (context), that a transaction that wrote committed on the primary engine.

    A read-only request commits too (``DBSessionMiddleware``); only one whose
    transaction ran an ``INSERT``/``UPDATE``/``DELETE`` (or any statement that
    is not a plain read) gets a consistency token, so read-only requests cost
    no ``pg_current_wal_lsn()`` round trip.

    Examples:
        >>> tracker = WriteTracker()
        >>> with tracker.watch() as seen:
        ...     seen
        []
    """

    def __init__(self) -> None:
        self._seen: ContextVar[list[bool] | None] = ContextVar(f"dsg_lib_writes_{id(self)}", default=None)
        self._engines: weakref.WeakSet[Any] = weakref.WeakSet()

    def attach(self, engine: AsyncEngine) -> None:
        """Listen for commits on ``engine`` (once per engine)."""
        sync_engine = engine.sync_engine
        if sync_engine in self._engines:
            return
        self._engines.add(sync_engine)

        @event.listens_for(sync_engine, "after_cursor_execute")
        def _on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if self._seen.get() is not None and _writes(statement):
                conn.info[_WROTE] = True

        @event.listens_for(sync_engine, "commit")
        @own
        def _on_commit(conn: Any) -> None:
            self._note(conn)

        @event.listens_for(sync_engine, "rollback")
        def _on_rollback(conn: Any) -> None:
            conn.info.pop(_WROTE, None)

    def _note(self, conn: Any) -> None:
        """A commit that wrote: the request gets a token."""
        if conn.info.pop(_WROTE, False):
            seen = self._seen.get()
            if seen is not None:
                seen.append(True)

    @contextmanager
    def watch(self) -> Iterator[list[bool]]:
        """Collect commits made in this context; the list is non-empty after one."""
        seen: list[bool] = []
        token = self._seen.set(seen)
        try:
            yield seen
        finally:
            self._seen.reset(token)
