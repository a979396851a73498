"""Engine construction: SQLAlchemy's ``create_async_engine`` with the backend's defaults and hooks (private).

What differs by database (pool class, connect arguments, the hooks that give
SQLite and MySQL/MariaDB their transactions) is the backend's
(``dsg_lib.backends``); this module adds what every engine gets: the usage
clock of the pre-ping window and the slow-query log.
"""

from __future__ import annotations

import time
from typing import Any

from loguru import logger
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..backends import LAST_USED, Backend, Keeper

__all__ = ["DEFAULT_PRE_PING_WINDOW_MS", "build_engine"]

DEFAULT_PRE_PING_WINDOW_MS = 1000


def build_engine(
    url: URL, backend: Backend, options: dict[str, Any], library: dict[str, Any]
) -> tuple[AsyncEngine, Keeper | None]:
    """Create the ``AsyncEngine`` for ``url`` with ``options`` plus the backend's defaults and hooks.

    Returns:
        The engine, and what must be kept open beside its pool (SQLite's
        in-memory database), or None.
    """
    kwargs = dict(options)
    kwargs.pop("future", None)  # SQLAlchemy 2 engines are always "future"
    connect_args: dict[str, Any] = dict(kwargs.pop("connect_args", None) or {})
    url, keeper = backend.configure_engine(url, kwargs, connect_args, library)
    if connect_args:
        kwargs["connect_args"] = connect_args
    engine = create_async_engine(url, **kwargs)
    _install_usage_clock(engine)
    backend.install_hooks(engine, library, memory=keeper is not None)
    if library.get("slow_query_ms") is not None:
        _install_slow_query_log(engine, float(library["slow_query_ms"]))
    return engine, keeper


def _install_usage_clock(engine: AsyncEngine) -> None:
    """Stamp each connection when it goes back to the pool, for the pre-ping window."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(dbapi_conn: Any, record: Any) -> None:
        if dbapi_conn is not None:  # None: invalidated, the next one is fresh
            record.info[LAST_USED] = time.monotonic()


def _install_slow_query_log(engine: AsyncEngine, threshold_ms: float) -> None:
    sync_engine = engine.sync_engine

    # The start time lives in the connection's info for the one statement in flight;
    # a failed statement's entry is dropped by handle_error, so it is never timed.
    @event.listens_for(sync_engine, "before_cursor_execute")
    def _before(conn: Connection, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        conn.info["dsg_lib_started"] = time.perf_counter()

    @event.listens_for(sync_engine, "handle_error")
    def _failed(context: Any) -> None:
        if context.connection is not None:
            context.connection.info.pop("dsg_lib_started", None)

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _after(conn: Connection, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        started = conn.info.pop("dsg_lib_started", None)
        if started is None:
            return
        elapsed = (time.perf_counter() - started) * 1000.0
        if elapsed >= threshold_ms:
            text = " ".join(statement.split())
            logger.warning(
                "dsg_lib: slow query ({:.1f} ms >= {:.0f} ms): {}",
                elapsed,
                threshold_ms,
                text[:500] + ("..." if len(text) > 500 else ""),
            )
