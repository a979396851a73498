"""One database server's engine, with a connection pool per event loop (private).

asyncio connections (and the pool's wait queue) belong to the event loop that
created them. A module-level database used by several loops one after the
other (pytest-asyncio's per-test loops, a second ``asyncio.run``) must never
hand a loop a connection of another one. So each `Endpoint` keeps one pool
per loop on its single ``Engine``: when a new loop first asks for a
connection, the engine's pool is parked and a fresh one (``Pool.recreate()``,
same settings and event listeners) takes its place; going back to a parked
loop brings its pool back. One engine object means event listeners, options
and ``engine.url`` stay the same for every loop.

A loop's connections are closed on that loop while it shuts down: the first
use in a loop starts a small async generator that waits forever; ``asyncio.run``
and ``asyncio.Runner`` (pytest-asyncio uses it) close every async generator
before closing the loop (``loop.shutdown_asyncgens()``), which runs its
``finally``: ``engine.dispose()`` on the still-running loop, without warnings.
A loop closed without that step leaves its pool behind, and it is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool


class Endpoint:
    """An engine, its twin without BEGIN round trips, and one pool per event loop.

    Attributes:
        safe_url: The URL with the password masked (for logs and status).
    """

    def __init__(self, engine: AsyncEngine, no_begin: dict[str, Any], safe_url: str) -> None:
        self.safe_url = safe_url
        self._engine = engine
        # An option engine shares its parent's pool (SQLAlchemy proxies ``pool``),
        # so binding the parent binds both.
        self._no_begin = engine.execution_options(**no_begin) if no_begin else engine
        self._loop: asyncio.AbstractEventLoop | None = None
        self._parked: dict[asyncio.AbstractEventLoop, Pool] = {}
        self._watchers: dict[asyncio.AbstractEventLoop, AsyncIterator[None]] = {}
        self._starting: set[asyncio.Future[None]] = set()

    def engine(self, autocommit: bool = False) -> AsyncEngine:
        """The engine (or its no-BEGIN twin), with the running loop's pool in place."""
        self.bind()
        return self._no_begin if autocommit else self._engine

    def bind(self) -> None:
        """Put the running loop's pool in place (no-op outside a loop or on the same loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # synchronous caller: the current pool is as good as any
            return
        if loop is not self._loop:
            self._switch(loop)

    def _switch(self, loop: asyncio.AbstractEventLoop) -> None:
        sync = self._engine.sync_engine
        old = self._loop
        if old is not None and not old.is_closed():
            self._parked[old] = sync.pool
        # (a pool whose loop was closed without shutting down its async generators
        # cannot close its connections politely any more: it is dropped)
        parked = self._parked.pop(loop, None)
        if parked is not None:
            sync.pool = parked
        elif old is not None:
            sync.pool = sync.pool.recreate()
        self._loop = loop
        for gone in [lp for lp in (*self._parked, *self._watchers) if lp.is_closed()]:
            self._parked.pop(gone, None)
            self._watchers.pop(gone, None)
        if loop not in self._watchers:
            watcher = self._until_shutdown(loop)
            self._watchers[loop] = watcher
            # run it up to its first ``yield``: from then on the loop tracks it
            start = asyncio.ensure_future(anext(watcher))
            self._starting.add(start)
            start.add_done_callback(self._starting.discard)

    async def _until_shutdown(self, loop: asyncio.AbstractEventLoop) -> AsyncIterator[None]:
        try:
            yield
        finally:
            self._watchers.pop(loop, None)
            await self._dispose_loop(loop)

    async def _dispose_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close ``loop``'s connections while ``loop`` still runs (it is shutting down)."""
        sync = self._engine.sync_engine
        try:
            if self._loop is loop:
                await self._engine.dispose()
                self._loop = None  # the fresh pool dispose() left is free for any loop
                return
            parked = self._parked.pop(loop, None)
            if parked is None:
                return
            current = sync.pool
            sync.pool = parked
            try:
                await self._engine.dispose()
            finally:
                sync.pool = current
        except Exception as exc:  # shutting down: a broken connection must not stop it
            logger.debug(
                "dsg_lib: closing a finished event loop's connections failed: {}", type(exc).__name__
            )

    async def dispose(self) -> None:
        """Close the running loop's pooled connections (``AsyncEngine.dispose``)."""
        self.bind()
        await self._engine.dispose()
