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

import weakref
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from .._own_listeners import own
from ..backends import PRIMARY_TOKEN, format_lsn, parse_token
from ..session import consistent, routed, watched_writes, writes_seen

if TYPE_CHECKING:
    from ..session import Acquirer

__all__ = ["PRIMARY_TOKEN", "WriteTracker", "consistent_with", "format_lsn", "issue_token", "parse_token"]


async def issue_token(acquire: Acquirer) -> str:
    """`AsyncDatabase.consistency_token`: the primary's WAL position, or `PRIMARY_TOKEN`."""
    acquire.check_open()
    backend = acquire.backend
    if not backend.wal_tokens:
        return PRIMARY_TOKEN
    async with routed(acquire, "primary"), acquire.connection(write=False) as conn:
        return await backend.primary_token(conn)


def consistent_with(acquire: Acquirer, token: str | None) -> AbstractAsyncContextManager[None]:
    """`AsyncDatabase.consistent_with`: check ``token`` now, route the block's reads by it."""
    if not token:
        return nullcontext()
    return consistent(acquire, parse_token(token))  # a bad token fails here, not at the first read


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
        self._engines: weakref.WeakSet[Any] = weakref.WeakSet()

    def attach(self, engine: AsyncEngine) -> None:
        """Listen for commits on ``engine`` (once per engine)."""
        sync_engine = engine.sync_engine
        if sync_engine in self._engines:
            return
        self._engines.add(sync_engine)

        @event.listens_for(sync_engine, "after_cursor_execute")
        def _on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if writes_seen(self) is not None and _writes(statement):
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
            seen = writes_seen(self)
            if seen is not None:
                seen.append(True)

    @contextmanager
    def watch(self) -> Iterator[list[bool]]:
        """Collect commits made in this context; the list is non-empty after one."""
        with watched_writes(self) as seen:
            yield seen
