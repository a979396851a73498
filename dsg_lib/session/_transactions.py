"""Transactions: ``transaction()`` and its savepoints (private).

The open transactions live in the context (``_context.Scope``, innermost
first). Each scope names the database it belongs to (``owner``), so
transactions on two databases nest without seeing each other. A task created
inside ``transaction()`` copies the context, so its operations join the
transaction too; a task that outlives it finds the scope ``closed`` and falls
back to the nearest open level of the same database, or runs on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from . import _hooks
from ._context import Scope, active, entered
from ._lazy import transaction_session as lazy_transaction_session

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from ._acquire import Acquirer

__all__ = ["transaction"]


@asynccontextmanager
async def transaction(acquirer: Acquirer, *, lazy: bool = False) -> AsyncIterator[AsyncSession]:
    """Open a transaction on ``acquirer``'s database, or a SAVEPOINT inside an open one.

    ``lazy``: an outermost transaction checks out its connection on first use
    (``DBSessionMiddleware``, see `_lazy`), not when it opens.
    """
    parent = active(acquirer)
    # a span and a latency sample per level when dsg_lib.observability is on; a no-op otherwise
    with _hooks.transaction(acquirer.config, nested=parent is not None):
        if parent is not None:
            async with _savepoint(parent, acquirer) as session:
                yield session
            return
        opened = lazy_transaction_session(acquirer) if lazy else acquirer.transaction_session()
        async with opened as session:
            with entered(acquirer, session):
                yield session


@asynccontextmanager
async def _savepoint(parent: Scope, acquirer: Acquirer) -> AsyncIterator[AsyncSession]:
    async with parent.turn:
        with entered(parent.owner, parent.session), acquirer.config.errors():
            nested = await parent.session.begin_nested()
            try:
                yield parent.session
            except BaseException:
                await _shielded_rollback(nested)
                raise
            await nested.commit()


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
