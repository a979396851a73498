"""Failover on Patroni (etcd, 3 nodes, a synchronous standby) through HAProxy and through a multi-host URI.

The cluster is started by ``scripts/patroni.sh``; HAProxy routes to the
leader by Patroni's REST ``/primary`` check at the timing of Patroni's own
template (``inter 3s fall 3 rise 2``, ``on-marked-down shutdown-sessions``),
so for seconds after an event it still sends new connections to the demoted
or restarting leader: those writes are refused (``25006`` read-only, ``57P0x``)
and must come back to the caller as a retried failover, not an error.

Each scenario (URI form x event) runs writers that insert rows with an
idempotent unit of work through ``run_in_transaction`` while the leader is
switched over (``patronictl switchover``) or its postmaster is SIGKILLed.
Half the writers pass ``unavailable_timeout=15``; the other half use the plain
default: ``failover_timeout: 15`` (the config key) on the HAProxy URI, the
multi-host default (15 s) on the other. One more writer does not retry, to
show what a caller without ``run_in_transaction``'s budget sees (typed errors
only). Afterwards every acknowledged row must be on the new leader, no error
may have reached a retrying writer, and writes must have resumed within 15 s.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
from loguru import logger
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dsg_lib import AsyncDatabase, DatabaseUnavailableError, DBConfig

from .conftest import ensure_topology, report, run_script, run_script_async

pytestmark = [pytest.mark.ha, pytest.mark.slow]

SCRIPT = "patroni.sh"
BUDGET = 15.0  # seconds: unavailable_timeout / failover_timeout, and the longest tolerated pause
RETRYING_WRITERS = 4
TABLE = "ha_patroni_writes"
RESULTS: list[str] = []


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, str]]:
    ensure_topology(SCRIPT, "start")
    urls = {form: run_script(SCRIPT, f"url-{form}").stdout.strip() for form in ("haproxy", "multihost")}
    yield urls
    run_script(SCRIPT, "wait-healthy", "120")  # leave it healthy for the next run
    if RESULTS:
        print("\n[ha] Patroni scenarios (acks, lost, longest pause, errors):\n  " + "\n  ".join(RESULTS))


async def _open(url: str, form: str) -> AsyncDatabase:
    settings: dict[str, object] = {"database_uri": url, "connect_timeout": 2, "pool_size": 8}
    if form == "haproxy":
        settings["failover_timeout"] = BUDGET  # the plain run_in_transaction() default behind the proxy
    db = AsyncDatabase(DBConfig(settings))
    await db.connect(timeout=30)
    return db


@pytest.fixture
async def table(cluster: dict[str, str]) -> AsyncIterator[None]:
    db = await _open(cluster["multihost"], "multihost")
    try:
        async with db.transaction() as session:
            await session.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
            await session.execute(text(f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, writer int NOT NULL)"))
    finally:
        await db.disconnect()
    yield


@dataclass
class Run:
    """What the writers saw."""

    acked: set[int] = field(default_factory=set)
    ack_times: list[float] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)  # reached a retrying writer
    refusals: list[BaseException] = field(default_factory=list)  # seen by the writer that does not retry
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def longest_pause(self, since: float) -> float:
        times = sorted(t for t in self.ack_times if t >= since)
        return max((b - a for a, b in itertools.pairwise(times)), default=float("inf"))


async def _writer(db: AsyncDatabase, run: Run, writer: int, ids: Iterator[int], mode: str) -> None:
    """Insert rows until stopped; ``mode``: "explicit", "default" or "no-retry"."""
    while not run.stop.is_set():
        row = next(ids)

        async def insert(session: AsyncSession, row: int = row) -> None:
            # idempotent: a re-run after a commit whose reply was lost inserts nothing twice
            await session.execute(
                text(f"INSERT INTO {TABLE} (id, writer) VALUES (:id, :w) ON CONFLICT (id) DO NOTHING"),
                {"id": row, "w": writer},
            )

        try:
            if mode == "explicit":
                await db.run_in_transaction(insert, unavailable_timeout=BUDGET)
            elif mode == "default":
                await db.run_in_transaction(insert)
            else:
                await db.run_in_transaction(insert, retries=0, unavailable_timeout=0)
        except Exception as exc:  # recorded: the test asserts on them
            (run.refusals if mode == "no-retry" else run.errors).append(exc)
            await asyncio.sleep(0.05)
            continue
        if mode != "no-retry":
            run.acked.add(row)
            run.ack_times.append(time.monotonic())
        await asyncio.sleep(0.005)


async def _missing_on_leader(url: str, acked: set[int]) -> tuple[set[int], int]:
    db = await _open(url, "multihost")
    try:
        async with db.transaction() as session:
            port = (await session.execute(text("SELECT inet_server_port()"))).scalar_one()
            present = set((await session.execute(text(f"SELECT id FROM {TABLE}"))).scalars())
    finally:
        await db.disconnect()
    return acked - present, int(port)


async def _scenario(url: str, form: str, event: str) -> tuple[Run, float]:
    """Writers run while ``event`` happens; returns what they saw and when the event started."""
    db = await _open(url, form)
    run = Run()
    ids = itertools.count(int(time.time() * 1000) * 100)
    modes = ["explicit", "default"] * (RETRYING_WRITERS // 2) + ["no-retry"]
    tasks = [asyncio.create_task(_writer(db, run, w, ids, mode)) for w, mode in enumerate(modes)]
    try:
        await asyncio.sleep(1.0)  # steady state before the event
        assert run.acked, f"no write succeeded before the event: {run.errors[:3]}"
        started = time.monotonic()
        code, output = await run_script_async(SCRIPT, event, timeout=90)
        assert code == 0, output
        code, output = await run_script_async(SCRIPT, "wait-leader", "60", timeout=90)
        assert code == 0, output
        await asyncio.sleep(1.5)  # writes go on through the new leader
    finally:
        run.stop.set()
        await asyncio.gather(*tasks)
        await db.disconnect()
    return run, started


@pytest.mark.parametrize("event", ["switchover", "kill-leader"])
@pytest.mark.parametrize("form", ["haproxy", "multihost"])
async def test_writes_ride_over_a_patroni_failover(
    cluster: dict[str, str], table: None, form: str, event: str
) -> None:
    code, output = await run_script_async(SCRIPT, "wait-healthy", "120", timeout=150)
    assert code == 0, output
    logger.disable("dsg_lib")
    try:
        run, started = await _scenario(cluster[form], form, event)
    finally:
        logger.enable("dsg_lib")
    missing, port = await _missing_on_leader(cluster["multihost"], run.acked)
    pause = run.longest_pause(started - 1.0)
    kinds = sorted({type(e).__name__ for e in run.refusals})
    line = (
        f"{form:9} {event:11}: acks {len(run.acked)}, lost {len(missing)}, longest pause {pause:.2f}s, "
        f"errors {len(run.errors)} (without retry: {len(run.refusals)} {kinds}); new leader :{port}"
    )
    RESULTS.append(line)
    report(line)
    assert not run.errors, f"errors reached run_in_transaction's caller: {[repr(e) for e in run.errors[:5]]}"
    assert not missing, f"{len(missing)} acknowledged writes lost"
    assert pause < BUDGET, f"writes stopped for {pause:.1f}s (limit {BUDGET:g}s)"
    assert any(t > started for t in run.ack_times), "no write after the event"
    untyped = [e for e in run.refusals if not isinstance(e, DatabaseUnavailableError)]
    assert not untyped, f"refusals that are not DatabaseUnavailableError: {[repr(e) for e in untyped[:5]]}"
