"""The few lines the core calls: per-database observer state and the hot-path checks (private).

With nothing instrumented, every hook is one module-global boolean test
(``ACTIVE``); OpenTelemetry is imported only when tracing or OpenTelemetry
metrics are switched on.
"""

from __future__ import annotations

import functools
import inspect
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ._metrics import EngineStats, OperationStats

if TYPE_CHECKING:
    from ..config import DBConfig
    from ._tracing import Tracer

#: True while at least one database is instrumented; the only cost of the hooks otherwise
ACTIVE = False
#: ``DBConfig`` -> its observer (weak: a dropped database takes its metrics with it)
OBSERVERS: weakref.WeakKeyDictionary[Any, Observer] = weakref.WeakKeyDictionary()
#: set inside an observed operation, so one operation calling another gives one span, not two
_in_operation: ContextVar[bool] = ContextVar("dsg_lib_in_operation", default=False)
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
        token = _in_operation.set(True)
        start = time.perf_counter()
        error: str | None = None
        try:
            with self.tracer.span(name, target(args)) if self.tracer else _NULL as span:
                result = await fn(ops, *args, **kwargs)
                if span is not None:
                    set_rows(span, name, result)
                return result
        except BaseException as exc:
            error = error_name(exc)
            raise
        finally:
            _in_operation.reset(token)
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


def error_name(exc: BaseException) -> str | None:
    """``error.type`` of ``exc``; None for a deliberate rollback that is not a failure.

    `DBSessionMiddleware` rolls back a request answered with a 4xx/5xx status
    by raising an exception marked ``dsg_lib_not_an_error``: the transaction
    did what it was asked, it is not a failed one.
    """
    if getattr(exc, "dsg_lib_not_an_error", False):
        return None
    return type(exc).__name__


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


def refresh_active() -> None:
    global ACTIVE
    ACTIVE = any(o.active for o in OBSERVERS.values())


# --------------------------------------------------------------------------- hooks the core calls
def observed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap one ``DatabaseOperations`` coroutine method; a plain pass-through while nothing is on."""

    @functools.wraps(fn)
    async def operation(self: Any, *args: Any, **kwargs: Any) -> Any:
        if ACTIVE and not _in_operation.get():
            observer = OBSERVERS.get(self.async_db.db_config)
            if observer is not None and observer.active:
                return await observer.call(name, fn, self, args, kwargs)
        return await fn(self, *args, **kwargs)

    return operation


def observed_stream(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an async-generator method: the original generator, untouched, while nothing is on."""

    @functools.wraps(fn)
    def operation(self: Any, *args: Any, **kwargs: Any) -> Any:
        iterator = fn(self, *args, **kwargs)
        if ACTIVE:
            observer = OBSERVERS.get(self.async_db.db_config)
            if observer is not None and observer.active:
                return _observed_iteration(observer, name, iterator, args)
        return iterator

    return operation


async def _observed_iteration(
    observer: Observer, name: str, iterator: AsyncIterator[Any], args: tuple[Any, ...]
) -> AsyncIterator[Any]:
    start = time.perf_counter()
    error: str | None = None
    try:
        with observer.tracer.span(name, target(args), current=False) if observer.tracer else _NULL:
            async for item in iterator:
                yield item
    except BaseException as exc:
        error = type(exc).__name__
        raise
    finally:
        observer.record(name, time.perf_counter() - start, error)


def observe_class(cls: type) -> type:
    """Apply `observed` to every public coroutine (and async generator) method of ``cls``."""
    for name in dir(cls):
        if name.startswith("_"):
            continue
        fn = getattr(cls, name)
        if inspect.iscoroutinefunction(fn):
            setattr(cls, name, observed(name, fn))
        elif inspect.isasyncgenfunction(fn):
            setattr(cls, name, observed_stream(name, fn))
    return cls


def transaction(config: DBConfig, nested: bool) -> AbstractContextManager[None]:
    """A span (and latency sample) around one ``transaction()`` level; a shared no-op while off."""
    if ACTIVE:
        observer = OBSERVERS.get(config)
        if observer is not None and observer.active:
            return observer.transaction(nested)
    return _NULL


async def checkout(config: DBConfig, engine: AsyncEngine) -> AsyncConnection:
    """``await engine.connect()``, counting the wait for a pooled connection (called only while ACTIVE)."""
    observer = OBSERVERS.get(config)
    stats = observer.stats_for(engine) if observer is not None and observer.metrics else None
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
        if observer is not None and observer.otel is not None:
            observer.otel.record_wait(stats.label, seconds)


def observer(db: Any) -> Observer:
    """The observer of ``db`` (an ``AsyncDatabase``), created (not yet active) on first use."""
    config = db.db_config
    found = OBSERVERS.get(config)
    if found is None:
        found = OBSERVERS[config] = Observer(config)
    return found
