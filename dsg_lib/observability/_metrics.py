"""In-process metrics: pool gauges and counters per engine, operation latency and errors (private).

Nothing here needs a third-party package; the Prometheus and OpenTelemetry
exporters read these numbers when they are scraped or collected.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

#: operation latency histogram bucket upper bounds, in seconds (Prometheus' defaults, finer at the low end)
BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


def error_name(exc: BaseException) -> str | None:
    """``error.type`` of ``exc``; None for a deliberate rollback that is not a failure.

    `DBSessionMiddleware` rolls back a request answered with a 4xx/5xx status
    by raising an exception marked ``dsg_lib_not_an_error``: the transaction
    did what it was asked, it is not a failed one.
    """
    if getattr(exc, "dsg_lib_not_an_error", False):
        return None
    return type(exc).__name__


@dataclass
class EngineStats:
    """Counters of one engine's pool, fed by SQLAlchemy pool events and dsg_lib's acquire path."""

    label: str
    engine: AsyncEngine
    url: str
    checkouts: int = 0
    checkins: int = 0
    opened: int = 0
    closed: int = 0
    invalidated: int = 0
    waiters: int = 0
    waits: int = 0
    wait_seconds: float = 0.0
    max_wait_seconds: float = 0.0
    timeouts: int = 0

    def __post_init__(self) -> None:
        pool: Any = self.engine.pool
        checked_out = getattr(pool, "checkedout", None)
        # connections already out when tracking starts will be checked in later
        self.checkouts = int(checked_out()) if callable(checked_out) else 0
        listen = event.listen
        target = self.engine.sync_engine
        listen(target, "checkout", self._on_checkout)
        listen(target, "checkin", self._on_checkin)
        listen(target, "connect", self._on_connect)
        listen(target, "close", self._on_close)
        listen(target, "close_detached", self._on_close)
        listen(target, "invalidate", self._on_invalidate)

    def remove(self) -> None:
        """Stop listening to the engine's pool events."""
        target = self.engine.sync_engine
        for name, fn in (
            ("checkout", self._on_checkout),
            ("checkin", self._on_checkin),
            ("connect", self._on_connect),
            ("close", self._on_close),
            ("close_detached", self._on_close),
            ("invalidate", self._on_invalidate),
        ):
            if event.contains(target, name, fn):
                event.remove(target, name, fn)

    def _on_checkout(self, *args: Any) -> None:
        self.checkouts += 1

    def _on_checkin(self, *args: Any) -> None:
        self.checkins += 1

    def _on_connect(self, *args: Any) -> None:
        self.opened += 1

    def _on_close(self, *args: Any) -> None:
        self.closed += 1

    def _on_invalidate(self, *args: Any) -> None:
        self.invalidated += 1

    def record_wait(self, seconds: float, timed_out: bool) -> None:
        self.waits += 1
        self.wait_seconds += seconds
        self.max_wait_seconds = max(self.max_wait_seconds, seconds)
        if timed_out:
            self.timeouts += 1

    def snapshot(self) -> dict[str, Any]:
        """The engine's gauges and counters as a plain dict (see the observability docs)."""
        pool: Any = self.engine.pool
        gauges = {}
        for key, method in (("size", "size"), ("checked_in", "checkedin"), ("overflow", "overflow")):
            fn = getattr(pool, method, None)
            gauges[key] = max(int(fn()), 0) if callable(fn) else 0
        checked_out = getattr(pool, "checkedout", None)
        return {
            "url": self.url,
            "pool_class": type(pool).__name__,
            "size": gauges["size"],
            "checked_in": gauges["checked_in"],
            # a pool without counters (NullPool) still reports what the events saw
            "checked_out": int(checked_out()) if callable(checked_out) else self._events_checked_out(),
            "overflow": gauges["overflow"],
            "waiters": self.waiters,
            "waits": self.waits,
            "wait_seconds_total": self.wait_seconds,
            "wait_seconds_max": self.max_wait_seconds,
            "timeouts": self.timeouts,
            "checkouts": self.checkouts,
            "connections_opened": self.opened,
            "connections_closed": self.closed,
            "connections_invalidated": self.invalidated,
        }

    def _events_checked_out(self) -> int:
        return max(self.checkouts - self.checkins, 0)


@dataclass
class Histogram:
    """A cumulative-bucket latency histogram (seconds)."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """``[(upper bound, count <= bound), ..., ("+Inf", count)]`` as Prometheus wants them."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, n in zip((*[repr(b) for b in BUCKETS], "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


@dataclass
class OperationStats:
    """Latency per operation name and error counts per (operation, error class)."""

    latency: dict[str, Histogram] = field(default_factory=dict)
    errors: dict[tuple[str, str], int] = field(default_factory=dict)

    def record(self, operation: str, seconds: float, error: str | None) -> None:
        histogram = self.latency.get(operation)
        if histogram is None:
            histogram = self.latency[operation] = Histogram()
        histogram.observe(seconds)
        if error is not None:
            key = (operation, error)
            self.errors[key] = self.errors.get(key, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        return {
            name: {
                "count": h.count,
                "seconds_total": h.total,
                "errors": {e: n for (op, e), n in self.errors.items() if op == name},
            }
            for name, h in sorted(self.latency.items())
        }
