"""Transaction scope: ``transaction()``, savepoints and ``current_session()`` (private).

The open transactions live in ONE module-level ``ContextVar`` holding the
innermost `Scope`. Each scope names the database it belongs to (``owner``), so
transactions on two databases nest without seeing each other. A task created
inside ``transaction()`` copies the context, so its operations join the
transaction too; a task that outlives it finds the scope ``closed`` and falls
back to the nearest open level of the same database, or runs on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import SessionMissingError
from .observability import _hooks as _observe

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from ._acquire import Acquirer

__all__ = ["Scope", "active", "current_session", "transaction"]


class TaskTurn:
    """Lets the tasks sharing one transaction take turns on its session.

    An ``AsyncSession`` runs one statement at a time, so operations joined from
    several tasks (``asyncio.gather`` inside ``transaction()``) wait for their
    turn. The task that has the turn may take it again without waiting: a
    ``stream()`` keeps its turn while it yields rows, and the loop consuming
    them must still be able to run other operations of the same transaction.
    That per-task re-entrance is the only reason this is not a plain lock.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._holder: asyncio.Task[Any] | None = None
        self._depth = 0

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is not None and self._holder is task:
            self._depth += 1
            return
        await self._lock.acquire()
        self._holder, self._depth = task, 1

    async def __aexit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._holder = None
            self._lock.release()


@dataclass(eq=False)
class Scope:
    """One level of an open ``transaction()`` of database ``owner``.

    ``outer`` is the scope that was current when this one opened (of any
    database), so the chain from the innermost scope visits every enclosing
    level. A nested ``transaction()`` (SAVEPOINT) is a level on the same
    session; its task holds the enclosing level's turn until it ends, so a
    sibling task's statements cannot land inside the savepoint (and be rolled
    back with it), while tasks started inside it take turns on the new level.
    """

    owner: object
    session: AsyncSession
    outer: Scope | None
    turn: TaskTurn = field(default_factory=TaskTurn)
    closed: bool = False


_CURRENT: ContextVar[Scope | None] = ContextVar("dsg_lib_scope", default=None)


def active(owner: object) -> Scope | None:
    """The innermost open transaction level of ``owner`` visible from this task."""
    scope = _CURRENT.get()
    while scope is not None and (scope.closed or scope.owner is not owner):
        scope = scope.outer
    return scope


def current_session(owner: object) -> AsyncSession:
    """The session of ``owner``'s enclosing transaction; `SessionMissingError` outside one."""
    scope = active(owner)
    if scope is None:
        raise SessionMissingError(
            "no session in this context: call current_session() inside "
            "'async with db.transaction()' or a request handled by DBSessionMiddleware"
        )
    return scope.session


@asynccontextmanager
async def transaction(acquirer: Acquirer) -> AsyncIterator[AsyncSession]:
    """Open a transaction on ``acquirer``'s database, or a SAVEPOINT inside an open one."""
    parent = active(acquirer)
    # a span and a latency sample per level when dsg_lib.observability is on; a no-op otherwise
    with _observe.transaction(acquirer.config, nested=parent is not None):
        if parent is not None:
            async with _savepoint(parent, acquirer) as session:
                yield session
            return
        async with acquirer.transaction_session() as session:
            scope = Scope(acquirer, session, _CURRENT.get())
            token = _CURRENT.set(scope)
            try:
                yield session
            finally:
                scope.closed = True
                _CURRENT.reset(token)


@asynccontextmanager
async def _savepoint(parent: Scope, acquirer: Acquirer) -> AsyncIterator[AsyncSession]:
    async with parent.turn:
        scope = Scope(parent.owner, parent.session, _CURRENT.get())
        token = _CURRENT.set(scope)
        try:
            with acquirer.config.errors():
                nested = await parent.session.begin_nested()
                try:
                    yield parent.session
                except BaseException:
                    await _shielded_rollback(nested)
                    raise
                await nested.commit()
        finally:
            scope.closed = True
            _CURRENT.reset(token)


async def _shielded_rollback(nested: Any) -> None:
    """Roll the savepoint back even if this task is being cancelled meanwhile."""
    if not nested.is_active:
        return
    task = asyncio.ensure_future(nested.rollback())
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise
