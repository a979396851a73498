"""Per-call cost of dsg_lib's observability hooks: ``python -m benchmarks.observability_overhead``.

One in-memory SQLite database (the fastest round trip, so the worst case for
a relative overhead) and ``ops.get`` by primary key, timed in interleaved
rounds:

- ``bypass``: the operation without its hook (``DatabaseOperations.get.__wrapped__``),
  i.e. the library as it would be without observability;
- ``off``: the hooks in place, nothing instrumented (the default);
- ``metrics``: ``instrument(db, tracing=False, otel_metrics=False)``;
- ``spans``: ``instrument(db, metrics=False)``: tracing only (OpenTelemetry SDK, spans dropped);
- ``traced``: tracing (OpenTelemetry SDK, spans dropped) + metrics + OpenTelemetry metrics.

First, the hook alone around an operation that does no I/O (the cost it
adds, free of I/O and scheduling noise); then the end-to-end figures.
Prints the median microseconds per call of each, wall clock and process CPU
time (the CPU figure is the one to read on a busy machine: it does not count
time spent waiting for a core), and the CPU added compared to ``bypass``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import mapped_column

from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig
from dsg_lib.observability import instrument, uninstrument
from dsg_lib.observability._hooks import observed


async def _timed(call: Callable[[int], Awaitable[Any]], n: int) -> tuple[float, float]:
    """Microseconds per call: (wall clock, CPU time of the process, every thread included)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        await call(1 + i % 100)
    return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6


async def main(calls: int, rounds: int) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Dropped(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(Dropped()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])

    db = AsyncDatabase(DBConfig({"database_uri": "sqlite+aiosqlite:///:memory:"}))

    class Item(db.Base):
        __tablename__ = "overhead_items"
        id = mapped_column(Integer, primary_key=True)
        name = mapped_column(String(20))

    ops = DatabaseOperations(db)
    await db.create_tables()
    await ops.insert_many(Item, [{"id": i, "name": f"item {i}"} for i in range(1, 101)])
    unhooked = DatabaseOperations.get.__wrapped__  # type: ignore[attr-defined]

    def configure(mode: str) -> None:
        uninstrument(db)
        if mode == "metrics":
            instrument(db, tracing=False, otel_metrics=False)
        elif mode == "spans":
            instrument(db, tracer_provider=tracer_provider, metrics=False)
        elif mode == "traced":
            instrument(db, tracer_provider=tracer_provider, meter_provider=meter_provider)

    modes: dict[str, Callable[[int], Awaitable[Any]]] = {
        "bypass": lambda i: unhooked(ops, Item, i),
        "off": lambda i: ops.get(Item, i),
        "metrics": lambda i: ops.get(Item, i),
        "spans": lambda i: ops.get(Item, i),
        "traced": lambda i: ops.get(Item, i),
    }
    hook_cost = await _hook_only(ops, Item, configure, calls * 10)
    samples: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    await _timed(modes["off"], calls)  # warm-up
    for r in range(rounds):
        order = list(modes)[r % len(modes) :] + list(modes)[: r % len(modes)]
        for mode in order:
            configure(mode)
            samples[mode].append(await _timed(modes[mode], calls))
    uninstrument(db)
    await db.disconnect()
    tracer_provider.shutdown()
    meter_provider.shutdown()
    result = {
        m: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for m, v in samples.items()
    }
    return result, hook_cost


async def _hook_only(ops: Any, model: Any, configure: Callable[[str], None], n: int) -> dict[str, float]:
    """CPU microseconds the hook adds around an operation that does no I/O (no thread hops, no noise)."""

    async def no_io(self: Any, model: Any, ident: Any) -> None:
        return None

    hooked = observed("get", no_io)
    costs: dict[str, list[float]] = {m: [] for m in ("bypass", "off", "metrics", "spans", "traced")}
    for _ in range(5):
        for mode in costs:
            configure(mode)
            call = no_io if mode == "bypass" else hooked
            cpu = time.process_time()
            for i in range(n):
                await call(ops, model, i)
            costs[mode].append((time.process_time() - cpu) / n * 1e6)
    configure("off")
    return {m: statistics.median(v) for m, v in costs.items()}


def run() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.observability_overhead")
    parser.add_argument("--calls", type=int, default=2000, help="calls per round and mode")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (median taken)")
    args = parser.parse_args()
    result, hook_cost = asyncio.run(main(args.calls, args.rounds))
    print("The hook alone, around an operation doing no I/O (CPU us per call):\n")
    print("| mode | CPU us | added |")
    print("|---|---:|---:|")
    for mode, us in hook_cost.items():
        print(f"| {mode} | {us:.2f} | {us - hook_cost['bypass']:+.2f} |")
    print("\nops.get on in-memory SQLite, end to end:\n")
    cpu0 = result["bypass"][1]
    print("| mode | wall us / ops.get | CPU us / ops.get | CPU added vs bypass |")
    print("|---|---:|---:|---:|")
    for mode, (wall, cpu) in result.items():
        print(f"| {mode} | {wall:.1f} | {cpu:.1f} | {cpu - cpu0:+.1f} us ({(cpu / cpu0 - 1) * 100:+.1f}%) |")


if __name__ == "__main__":
    run()
