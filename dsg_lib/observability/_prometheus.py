"""A ``prometheus_client`` collector over `pool_metrics` / `operation_metrics` (private module)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import InvalidInputError, MissingDependencyError

try:
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
except ImportError as exc:  # pragma: no cover - exercised only without prometheus-client
    raise MissingDependencyError(
        'PrometheusCollector needs prometheus-client; install it with: pip install "dsg-lib[prometheus]"'
    ) from exc

from . import _observer

_GAUGES = (
    ("pool_size", "size", "Connections the pool keeps (0 for a pool without a size, e.g. NullPool)"),
    ("pool_checked_in", "checked_in", "Idle connections in the pool"),
    ("pool_checked_out", "checked_out", "Connections in use by the application"),
    ("pool_overflow", "overflow", "Connections open beyond pool_size"),
    ("pool_waiters", "waiters", "Callers waiting for a connection right now"),
)
_COUNTERS = (
    ("pool_timeouts", "timeouts", "Waits for a connection that ended in a pool timeout"),
    ("pool_checkouts", "checkouts", "Connections handed out by the pool"),
    ("pool_connections_opened", "connections_opened", "New database connections opened"),
    ("pool_connections_closed", "connections_closed", "Database connections closed"),
    ("pool_connections_invalidated", "connections_invalidated", "Connections discarded as broken"),
)


class PrometheusCollector:
    """Exposes one or more databases' metrics to a ``prometheus_client`` registry.

    Every series has a ``database`` label (the name you give) and pool series
    an ``engine`` label (``primary``, ``replica-0``, ...). Operation latency
    and errors need `instrument` (``metrics=True``); pool series work on any
    database.

    Args:
        databases: One ``AsyncDatabase`` (named ``"default"``) or a mapping name -> database.
        namespace: The metric name prefix.

    Examples:
        >>> from prometheus_client import CollectorRegistry, generate_latest
        >>> from dsg_lib import AsyncDatabase, DBConfig
        >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
        >>> registry = CollectorRegistry()
        >>> registry.register(PrometheusCollector(db))
        >>> b'dsg_lib_pool_size{database="default",engine="primary"} 1.0' in generate_latest(registry)
        True
    """

    def __init__(self, databases: Any, namespace: str = "dsg_lib") -> None:
        named = databases if isinstance(databases, Mapping) else {"default": databases}
        if not named or not all(isinstance(k, str) and hasattr(v, "db_config") for k, v in named.items()):
            raise InvalidInputError(
                "PrometheusCollector takes an AsyncDatabase or a mapping name -> AsyncDatabase"
            )
        self._databases = dict(named)
        self._prefix = f"{namespace}_" if namespace else ""

    def collect(self) -> Iterator[Metric]:
        """Called by the registry on every scrape.

        Examples:
            >>> from dsg_lib import AsyncDatabase, DBConfig
            >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
            >>> "dsg_lib_pool_waiters" in [m.name for m in PrometheusCollector(db).collect()]
            True
        """
        p = self._prefix
        observers = {name: _observer.observer(db) for name, db in self._databases.items()}
        pools = {name: [(s.label, s.snapshot()) for s in o.engines] for name, o in observers.items()}
        for metric, key, doc in _GAUGES:
            gauge = GaugeMetricFamily(p + metric, doc, labels=["database", "engine"])
            for name, engines in pools.items():
                for label, snap in engines:
                    gauge.add_metric([name, label], snap[key])
            yield gauge
        for metric, key, doc in _COUNTERS:
            counter = CounterMetricFamily(p + metric, doc, labels=["database", "engine"])
            for name, engines in pools.items():
                for label, snap in engines:
                    counter.add_metric([name, label], snap[key])
            yield counter
        wait = CounterMetricFamily(
            p + "pool_wait_seconds",
            "Seconds spent waiting for pooled connections",
            labels=["database", "engine"],
        )
        for name, engines in pools.items():
            for label, snap in engines:
                wait.add_metric([name, label], snap["wait_seconds_total"])
        yield wait
        yield from self._operations(observers)

    def _operations(self, observers: Mapping[str, _observer.Observer]) -> Iterator[Metric]:
        p = self._prefix
        duration = HistogramMetricFamily(
            p + "operation_duration_seconds",
            "Duration of dsg_lib operations",
            labels=["database", "operation"],
        )
        errors = CounterMetricFamily(
            p + "operation_errors",
            "Failed operations by error class",
            labels=["database", "operation", "error"],
        )
        for name, observer in observers.items():
            stats = observer.operations
            for operation, histogram in sorted(stats.latency.items()):
                duration.add_metric([name, operation], histogram.cumulative(), histogram.total)
            for (operation, error), count in sorted(stats.errors.items()):
                errors.add_metric([name, operation, error], count)
        yield duration
        yield errors
