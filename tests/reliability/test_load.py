"""Load: 200 concurrent tasks doing mixed reads and writes on a pool of 10 connections.

Zero errors, zero lost writes (every acknowledged insert is there, every
acknowledged increment is counted), no leaked connection. Prints requests, errors
and p50/p99 latency per backend (run with ``-s``).

``DSG_LOAD_SECONDS`` sets the duration of each backend's run (default 20).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import Integer, String, func, select, update
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import DatabaseOperations

from .conftest import assert_no_leak, close_db, make_db, unique, url_for

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

SECONDS = float(os.environ.get("DSG_LOAD_SECONDS", "20"))
TASKS = 200


def _models(db: Any) -> tuple[type, type]:
    event_table, counter_table = unique("event"), unique("counter")

    class Event(db.Base):  # type: ignore[name-defined,misc]
        __tablename__ = event_table
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
        worker: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
        seq: Mapped[int] = mapped_column(Integer, nullable=False)
        payload: Mapped[str] = mapped_column(String(100), nullable=False)

    class Counter_(db.Base):  # type: ignore[name-defined,misc]
        __tablename__ = counter_table
        worker: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        hits: Mapped[int] = mapped_column(Integer, nullable=False)

    return Event, Counter_


async def test_mixed_load(server: str) -> None:
    db = make_db(url_for(server), pool_size=10, max_overflow=0, pool_timeout=30)
    Event, Count = _models(db)
    ops = DatabaseOperations(db)
    try:
        await db.create_tables(Event, Count)
        await ops.insert_many(Count, [{"worker": w, "hits": 0} for w in range(TASKS)])
        latencies: list[float] = []
        kinds: Counter[str] = Counter()
        errors: list[str] = []
        inserted = [0] * TASKS
        increments = [0] * TASKS
        deadline = time.monotonic() + SECONDS

        async def worker(w: int) -> None:
            rng = random.Random(w)
            seq = 0
            while time.monotonic() < deadline:
                roll = rng.random()
                start = time.perf_counter()
                try:
                    if roll < 0.30:
                        kind = "insert"
                        await ops.insert_many(Event, [{"worker": w, "seq": seq, "payload": f"w{w}-{seq}"}])
                        inserted[w] += 1
                        seq += 1
                    elif roll < 0.40:
                        kind = "create_one"
                        await ops.create_one(Event(worker=w, seq=seq, payload="orm"))
                        inserted[w] += 1
                        seq += 1
                    elif roll < 0.55:
                        kind = "tx_insert_increment"
                        async with db.transaction() as session:
                            await ops.insert_many(Event, [{"worker": w, "seq": seq, "payload": "tx"}])
                            await session.execute(
                                update(Count).where(Count.worker == w).values(hits=Count.hits + 1)
                            )
                        inserted[w] += 1
                        increments[w] += 1
                        seq += 1
                    elif roll < 0.75:
                        kind = "find"
                        rows = await ops.find(Event, worker=w, order_by="-seq", limit=5)
                        assert len(rows) <= 5
                    elif roll < 0.90:
                        kind = "count"
                        assert await ops.count(Event, worker=w) == inserted[w]
                    else:
                        kind = "get"
                        counter = await ops.get(Count, w)
                        assert counter.hits == increments[w]
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                latencies.append((time.perf_counter() - start) * 1000.0)
                kinds[kind] += 1

        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(worker(w) for w in range(TASKS))), timeout=SECONDS + 60)
        elapsed = time.monotonic() - started

        latencies.sort()
        p50 = statistics.median(latencies) if latencies else 0.0
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
        print(
            f"\nLOAD {server}: {TASKS} tasks, pool_size=10, {elapsed:.1f}s: "
            f"{len(latencies)} requests ({len(latencies) / elapsed:.0f}/s), {len(errors)} errors, "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1] if latencies else 0:.1f} ms; "
            f"mix {dict(kinds)}"
        )
        assert not errors, errors[:5]
        assert len(latencies) > TASKS  # every worker did something

        # zero lost writes
        async with db.get_db_session() as s:
            per_worker = dict(
                (await s.execute(select(Event.worker, func.count()).group_by(Event.worker))).all()
            )
            hits = dict((await s.execute(select(Count.worker, Count.hits))).all())
            dupes = (
                await s.execute(
                    select(Event.worker, Event.seq).group_by(Event.worker, Event.seq).having(func.count() > 1)
                )
            ).all()
        lost = {
            w: inserted[w] - per_worker.get(w, 0) for w in range(TASKS) if inserted[w] != per_worker.get(w, 0)
        }
        assert not lost, f"lost or extra inserts per worker: {dict(list(lost.items())[:10])}"
        assert not dupes
        assert hits == {w: increments[w] for w in range(TASKS)}
        print(
            f"LOAD {server}: rows written {sum(inserted)}, rows found {sum(per_worker.values())}, "
            f"increments {sum(increments)}, lost 0"
        )
        assert_no_leak(db)
    finally:
        await close_db(db, Event, Count)
