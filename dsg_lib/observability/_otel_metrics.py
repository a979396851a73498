"""OpenTelemetry metrics for one database (private; imported only when switched on).

Instrument names follow OpenTelemetry's database client metric conventions:
``db.client.operation.duration`` (histogram, seconds),
``db.client.connection.count`` (``db.client.connection.state`` = idle / used),
``db.client.connection.pending_requests``, ``db.client.connection.timeouts``
and ``db.client.connection.wait_time``, each connection metric with
``db.client.connection.pool.name`` = the engine's label (``primary``,
``replica-0``, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from .._version import __version__

if TYPE_CHECKING:
    from ._observer import Observer

POOL = "db.client.connection.pool.name"


class OtelMetrics:
    """Instruments of one database on a meter provider (the global one by default)."""

    def __init__(self, observer: Observer, meter_provider: Any = None) -> None:
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        meter = provider.get_meter("dsg_lib", __version__)
        self._observer = observer
        self._system = observer.config.dialect
        self._duration = meter.create_histogram(
            "db.client.operation.duration", unit="s", description="Duration of dsg_lib operations"
        )
        self._wait = meter.create_histogram(
            "db.client.connection.wait_time", unit="s", description="Time to obtain a pooled connection"
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.count", [self._connections], unit="{connection}"
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.pending_requests", [self._pending], unit="{request}"
        )
        meter.create_observable_counter("db.client.connection.timeouts", [self._timeouts], unit="{timeout}")

    def record_operation(self, operation: str, seconds: float, error: str | None) -> None:
        attributes = {"db.system.name": self._system, "db.operation.name": operation}
        if error is not None:
            attributes["error.type"] = error
        self._duration.record(seconds, attributes)

    def record_wait(self, pool: str, seconds: float) -> None:
        self._wait.record(seconds, {POOL: pool})

    def _connections(self, options: CallbackOptions) -> Iterable[Observation]:
        for stats in self._observer.engines:
            snap = stats.snapshot()
            yield Observation(snap["checked_in"], {POOL: stats.label, "db.client.connection.state": "idle"})
            yield Observation(snap["checked_out"], {POOL: stats.label, "db.client.connection.state": "used"})

    def _pending(self, options: CallbackOptions) -> Iterable[Observation]:
        for stats in self._observer.engines:
            yield Observation(stats.waiters, {POOL: stats.label})

    def _timeouts(self, options: CallbackOptions) -> Iterable[Observation]:
        for stats in self._observer.engines:
            yield Observation(stats.timeouts, {POOL: stats.label})
