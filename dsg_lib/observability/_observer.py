"""The observer of one database: tracing and metrics state, plugged into the core's hooks (private).

The core calls the hook points of ``dsg_lib.session`` (``_hooks``); an
`Observer` is the watcher registered there for a database when
``instrument()`` switches something on. OpenTelemetry is imported only when
tracing or OpenTelemetry metrics are switched on.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..session import operation_started, watch, watcher_of
from ._metrics import EngineStats, OperationStats, error_name

if TYPE_CHECKING:
    from ..config import DBConfig
    from ._tracing import Tracer

_NULL: AbstractContextManager[None] = nullcontext()
#: write operations whose int result is the number of rows they changed
ROW_COUNT_OPERATIONS = frozenset(
    {"insert_many", "upsert", "update_where", "delete_where", "restore", "delete_many"}
)


class Observer:
    """Tracing and metrics state of one ``AsyncDatabase``."""

    def __init__(self, db_config: DBConfig) -> None:
        self.config = db_config
        self.tracer: Tracer | None = None
        self.metrics = False
        self.otel: Any = None  # _otel_metrics.OtelMetrics when exporting to OpenTelemetry metrics
        self.operations = OperationStats()
        self._engines: list[EngineStats] | None = None

    @property
    def active(self) -> bool:
        return self.metrics or self.tracer is not None

    @property
    def engines(self) -> list[EngineStats]:
        """Pool trackers for the primary and each replica, created (listening) on first use."""
        if self._engines is None:
            config = self.config
            self._engines = [EngineStats("primary", config.engine, config.safe_url)]
            for index, replica in enumerate(config.replicas.replicas):
                self._engines.append(EngineStats(f"replica-{index}", replica.engine, replica.safe_url))
        return self._engines

    def stats_for(self, engine: AsyncEngine) -> EngineStats | None:
        pool = engine.pool  # compared live: dispose() gives an engine a new pool
        return next((s for s in self.engines if s.engine.pool is pool), None)

    def record(self, operation: str, seconds: float, error: str | None) -> None:
        if self.metrics:
            self.operations.record(operation, seconds, error)
            if self.otel is not None:
                self.otel.record_operation(operation, seconds, error)

    def close(self) -> None:
        for stats in self._engines or ():
            stats.remove()
        self._engines = None

    async def call(self, name: str, fn: Callable[..., Any], ops: Any, args: Any, kwargs: Any) -> Any:
        start = time.perf_counter()
        error: str | None = None
        try:
            with operation_started(), self.tracer.span(name, target(args)) if self.tracer else _NULL as span:
                result = await fn(ops, *args, **kwargs)
                if span is not None:
                    set_rows(span, name, result)
                return result
        except BaseException as exc:
            error = error_name(exc)
            raise
        finally:
            self.record(name, time.perf_counter() - start, error)

    @contextmanager
    def transaction(self, nested: bool) -> Iterator[None]:
        name = "savepoint" if nested else "transaction"
        start = time.perf_counter()
        error: str | None = None
        try:
            with self.tracer.span(name) if self.tracer else _NULL:
                yield
        except BaseException as exc:
            error = error_name(exc)
            raise
        finally:
            self.record(name, time.perf_counter() - start, error)

    async def iterate(
        self, name: str, iterator: AsyncIterator[Any], args: tuple[Any, ...]
    ) -> AsyncIterator[Any]:
        start = time.perf_counter()
        error: str | None = None
        try:
            with self.tracer.span(name, target(args), current=False) if self.tracer else _NULL:
                async for item in iterator:
                    yield item
        except BaseException as exc:
            error = type(exc).__name__
            raise
        finally:
            self.record(name, time.perf_counter() - start, error)

    async def checkout(self, engine: AsyncEngine) -> AsyncConnection:
        """``await engine.connect()``, counting the wait for a pooled connection."""
        stats = self.stats_for(engine) if self.metrics else None
        if stats is None:
            return await engine.connect()
        stats.waiters += 1
        start = time.perf_counter()
        timed_out = False
        try:
            return await engine.connect()
        except sa_exc.TimeoutError:
            timed_out = True
            raise
        finally:
            stats.waiters -= 1
            seconds = time.perf_counter() - start
            stats.record_wait(seconds, timed_out)
            if self.otel is not None:
                self.otel.record_wait(stats.label, seconds)


def target(args: tuple[Any, ...]) -> dict[str, Any] | None:
    """``db.collection.name`` from an operation's first argument: a model, a ``Table`` or a ``select()``."""
    if not args:
        return None
    first = args[0]
    table = getattr(first, "__table__", None)
    if table is None:
        froms = getattr(first, "columns_clause_froms", None)
        table = froms[0] if froms and len(froms) == 1 else first
    name = getattr(table, "name", None)
    return {"db.collection.name": name} if isinstance(name, str) else None


def set_rows(span: Any, name: str, result: Any) -> None:
    if isinstance(result, list):
        span.set_attribute("db.response.returned_rows", len(result))
    elif name in ROW_COUNT_OPERATIONS and isinstance(result, int) and not isinstance(result, bool):
        span.set_attribute("dsg_lib.rows_affected", result)


def observer(db: Any) -> Observer:
    """The observer of ``db`` (an ``AsyncDatabase``), created (not yet active) and registered on first use."""
    config = db.db_config
    found = watcher_of(config)
    if not isinstance(found, Observer):
        found = Observer(config)
        watch(config, found)
    return found
