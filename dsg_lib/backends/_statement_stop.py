"""Stopping the statement of a cancelled operation on the server (private).

A cancelled ``await`` must not leave its statement running: a write waiting
on a lock would otherwise land later, and the pool would hand out a
connection still busy with it. `StatementStopper` is the one place that
knows how each driver is told to stop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from loguru import logger
from sqlalchemy import event, pool
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .._own_listeners import own

#: seconds a pre-ping or a KILL QUERY may take before the connection counts as dead
SIDE_CALL_TIMEOUT = 5.0


async def _interrupt_sqlite(driver: Any) -> None:
    """Stop the running statement, then end its transaction.

    The cancelled statement's cursor may stay alive (in a traceback) after
    SQLAlchemy closes the connection, and an unfinalized statement keeps a
    closed sqlite3 connection's locks: a ROLLBACK queued before the close
    releases them (SQLite allows it with an aborted statement pending).
    """
    await driver.interrupt()
    await driver.rollback()


class StatementStopper:
    """Stops the statement of a cancelled operation where the driver would not.

    asyncpg cancels a statement on the server by itself. aiosqlite leaves it
    running in its worker thread (and SQLAlchemy's close of the cancelled
    connection queues behind it): ``interrupt()`` stops it. aiomysql / asyncmy
    just stop reading and the server runs on: it is told ``KILL QUERY <id>``
    over a separate, unpooled connection (the pool may have none free).

    `install` hooks it into ``handle_error``, which SQLAlchemy calls with the
    ``CancelledError`` before it discards the connection; the stop runs as a
    task on the loop, so it overtakes the queued close.
    """

    def __init__(self, backend: str, options: dict[str, Any]) -> None:
        self.backend = backend
        self.options = {k: v for k, v in options.items() if k == "connect_args"}
        self._sides: dict[URL, AsyncEngine] = {}  # one unpooled engine per server
        self._tasks: set[asyncio.Task[None]] = set()

    def install(self, engine: AsyncEngine) -> None:
        """Stop the statement whenever an execution on ``engine`` is cancelled."""
        if self.backend == "postgresql":
            return

        @event.listens_for(engine.sync_engine, "handle_error")
        @own
        def _on_error(context: Any) -> None:
            if (
                isinstance(context.original_exception, asyncio.CancelledError)
                and context.connection is not None
            ):
                try:
                    driver = context.connection.connection.driver_connection
                except Exception as exc:  # best effort: the connection is discarded anyway
                    _stop_failed(exc)
                    return
                self.stop(driver, engine.url)

    def stop(self, driver: Any, url: URL) -> None:
        """Start stopping the statement running on ``driver`` (a connection to ``url``);
        `settle` waits for it. Also for a cancelled driver call made outside SQLAlchemy."""
        try:
            if self.backend == "sqlite":
                stop = _interrupt_sqlite(driver)
            else:
                stop = self._kill_query(url, int(driver.thread_id()))
            task = asyncio.get_running_loop().create_task(stop)
        except Exception as exc:  # best effort: the connection is discarded anyway
            _stop_failed(exc)
            return
        self._tasks.add(task)  # a reference, so the task is not collected before it runs
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _stop_failed(task.exception())

    async def settle(self) -> None:
        """Wait (up to ``SIDE_CALL_TIMEOUT``) for the stops scheduled so far, so a
        cancelled operation returns only once the server has let go of its statement."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=SIDE_CALL_TIMEOUT)

    async def _kill_query(self, url: URL, thread_id: int) -> None:
        side = self._sides.get(url)
        if side is None:
            side = self._sides[url] = create_async_engine(url, poolclass=pool.NullPool, **self.options)
        async with side.connect() as conn:
            await asyncio.wait_for(conn.exec_driver_sql(f"KILL QUERY {thread_id}"), SIDE_CALL_TIMEOUT)

    async def dispose(self) -> None:
        for side in self._sides.values():
            await side.dispose()
        self._sides.clear()


def _stop_failed(exc: BaseException | None) -> None:
    logger.debug("dsg_lib: could not stop a cancelled statement: {}", type(exc).__name__)
