"""Observability: OpenTelemetry spans, pool and operation metrics, query budgets.

- `instrument` switches tracing and metrics on for one database: a
  ``dsg_lib.<operation>`` span per `DatabaseOperations` call and a
  ``dsg_lib.transaction`` / ``dsg_lib.savepoint`` span per ``transaction()``
  level (OpenTelemetry database semantic conventions, never bound values),
  plus latency histograms and error counts. Tracing needs the ``otel`` extra;
  without it nothing of OpenTelemetry is imported.
- `pool_metrics` reads each engine's pool (primary and each replica) as a
  dict; `PrometheusCollector` exports everything to ``prometheus_client``.
- ``db.query_budget(max_queries=N)`` (or `query_budget`) fails a block that
  issues more than ``N`` statements, listing them: N+1 detection.

Examples:
    >>> import asyncio
    >>> from sqlalchemy import text
    >>> from dsg_lib import AsyncDatabase, DBConfig, QueryBudgetExceededError
    >>> from dsg_lib import observability
    >>> async def main():
    ...     async with AsyncDatabase(DBConfig({"database_uri": "sqlite://"})) as db:
    ...         try:
    ...             async with db.query_budget(max_queries=1):
    ...                 async with db.get_db_session() as session:
    ...                     await session.execute(text("select 1"))
    ...                     await session.execute(text("select 2"))
    ...         except QueryBudgetExceededError as err:
    ...             print(err)
    ...         return observability.pool_metrics(db)["primary"]["checked_out"]
    >>> asyncio.run(main())
    2 statements issued, budget 1:
      1x select 1
      1x select 2
    0
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from ..errors import MissingDependencyError
from ..session import QueryBudget, query_budget, refresh_watchers, unwatch
from . import _observer

if TYPE_CHECKING:
    from ..database import AsyncDatabase
    from ._prometheus import PrometheusCollector

__all__ = [
    "PrometheusCollector",
    "QueryBudget",
    "instrument",
    "operation_metrics",
    "pool_metrics",
    "query_budget",
    "uninstrument",
]


def _otel_installed() -> bool:
    return importlib.util.find_spec("opentelemetry") is not None


def instrument(
    db: AsyncDatabase,
    *,
    tracing: bool | None = None,
    metrics: bool = True,
    otel_metrics: bool | None = None,
    tracer_provider: Any = None,
    meter_provider: Any = None,
) -> None:
    """Switch tracing and metrics on for ``db`` (call again to change; `uninstrument` to stop).

    Args:
        db: The database.
        tracing: OpenTelemetry spans. ``None``: on when ``opentelemetry-api``
            is installed (the ``otel`` extra).
        metrics: Operation latency / error counts and pool wait times, read
            by `operation_metrics`, `pool_metrics` and `PrometheusCollector`.
        otel_metrics: Also record them as OpenTelemetry metrics. ``None``:
            on when ``metrics`` is and OpenTelemetry is installed.
        tracer_provider: A ``TracerProvider``; default: the global one.
        meter_provider: A ``MeterProvider``; default: the global one.

    Raises:
        MissingDependencyError: tracing or OpenTelemetry metrics asked for
            without ``opentelemetry-api`` installed.

    Examples:
        >>> from dsg_lib import AsyncDatabase, DBConfig
        >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
        >>> instrument(db, tracing=False, otel_metrics=False)
        >>> operation_metrics(db)
        {}
        >>> uninstrument(db)
    """
    installed = _otel_installed()
    tracing = installed if tracing is None else tracing
    otel_metrics = (metrics and installed) if otel_metrics is None else otel_metrics
    if (tracing or otel_metrics) and not installed:
        raise MissingDependencyError(
            'tracing and OpenTelemetry metrics need opentelemetry-api; install: pip install "dsg-lib[otel]"'
        )
    observer = _observer.observer(db)
    observer.tracer = None
    observer.otel = None
    if tracing:
        from ._tracing import Tracer

        observer.tracer = Tracer(db.db_config, tracer_provider)
    observer.metrics = metrics
    if metrics:
        observer.engines  # noqa: B018 - start listening to pool events now
        if otel_metrics:
            from ._otel_metrics import OtelMetrics

            observer.otel = OtelMetrics(observer, meter_provider)
    refresh_watchers()


def uninstrument(db: AsyncDatabase) -> None:
    """Switch tracing and metrics off for ``db`` and forget its counters.

    Examples:
        >>> from dsg_lib import AsyncDatabase, DBConfig
        >>> uninstrument(AsyncDatabase(DBConfig({"database_uri": "sqlite://"})))
    """
    observer = unwatch(db.db_config)
    if isinstance(observer, _observer.Observer):
        observer.close()
    refresh_watchers()


def pool_metrics(db: AsyncDatabase) -> dict[str, dict[str, Any]]:
    """Pool gauges and counters per engine: ``"primary"``, then ``"replica-0"``, ...

    Keys of each engine's dict: ``url`` (password masked), ``pool_class``,
    gauges ``size``, ``checked_in`` (idle), ``checked_out`` (in use),
    ``overflow``, ``waiters`` (callers waiting for a connection now), and
    counters since tracking began (the first call, or `instrument`):
    ``waits``, ``wait_seconds_total``, ``wait_seconds_max``, ``timeouts``,
    ``checkouts``, ``connections_opened``, ``connections_closed``,
    ``connections_invalidated``. Wait figures need `instrument`.

    Examples:
        >>> from dsg_lib import AsyncDatabase, DBConfig
        >>> stats = pool_metrics(AsyncDatabase(DBConfig({"database_uri": "sqlite://"})))
        >>> stats["primary"]["pool_class"], stats["primary"]["checked_out"]
        ('AsyncAdaptedQueuePool', 0)
    """
    return {stats.label: stats.snapshot() for stats in _observer.observer(db).engines}


def operation_metrics(db: AsyncDatabase) -> dict[str, dict[str, Any]]:
    """Per operation (``find``, ``transaction``, ...): ``count``, ``seconds_total``, ``errors`` by class.

    Recorded while `instrument` (``metrics=True``) is on.

    Examples:
        >>> from dsg_lib import AsyncDatabase, DBConfig
        >>> operation_metrics(AsyncDatabase(DBConfig({"database_uri": "sqlite://"})))
        {}
    """
    return _observer.observer(db).operations.snapshot()


def __getattr__(name: str) -> Any:
    # prometheus-client is optional: imported when the collector is first asked for
    if name == "PrometheusCollector":
        from ._prometheus import PrometheusCollector

        return PrometheusCollector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
