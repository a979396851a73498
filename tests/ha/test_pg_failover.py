"""PostgreSQL failover on pg_auto_failover: no acknowledged write is lost, writes resume, errors are typed.

The formation (scripts/pg_auto_failover.sh) has a primary and a synchronous
quorum standby. Writers insert rows through ``run_in_transaction`` on a
multi-host URI with ``target_session_attrs=read-write`` while the primary is
switched over (planned) or killed. Afterwards every write that returned
success must be on the new primary.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
from loguru import logger
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dsg_lib import AsyncDatabase, DatabaseError, DatabaseUnavailableError, DBConfig, TransactionConflictError

from .conftest import ensure_topology, report, run_script, run_script_async

pytestmark = [pytest.mark.ha, pytest.mark.slow]

SCRIPT = "pg_auto_failover.sh"
HA_URL = os.environ.get(
    "DSG_TEST_PAF_URL",
    "postgresql://postgres@127.0.0.1:5442,127.0.0.1:5443/dsg_ha?target_session_attrs=read-write",
)
WRITERS = 4
RESUME_LIMIT = 10.0  # seconds: the longest tolerated gap between two acknowledged writes
TYPED = (DatabaseUnavailableError, TransactionConflictError)


@pytest.fixture(scope="module")
def formation() -> Iterator[None]:
    ensure_topology(SCRIPT, "start")
    yield
    run_script(SCRIPT, "wait-healthy", "120")  # leave it healthy for the next run


@pytest.fixture
async def ha_db(formation: None) -> AsyncIterator[AsyncDatabase]:
    db = AsyncDatabase(DBConfig({"database_uri": HA_URL, "connect_timeout": 2, "pool_size": WRITERS + 2}))
    await db.connect(timeout=30)
    async with db.transaction() as session:
        await session.execute(text("DROP TABLE IF EXISTS ha_writes"))
        await session.execute(
            text(
                "CREATE TABLE ha_writes (id bigint PRIMARY KEY, writer int NOT NULL,"
                " at timestamptz DEFAULT now())"
            )
        )
    yield db
    await db.disconnect()


@dataclass
class Run:
    """What the writers saw."""

    acked: set[int] = field(default_factory=set)
    ack_times: list[float] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def longest_gap(self, since: float) -> float:
        times = sorted(t for t in self.ack_times if t >= since)
        return max((b - a for a, b in itertools.pairwise(times)), default=float("inf"))


async def _writer(db: AsyncDatabase, run: Run, writer: int, ids: Iterator[int], *, rides_over: bool) -> None:
    """Insert rows until stopped. ``rides_over``: let run_in_transaction retry the outage itself."""
    while not run.stop.is_set():
        row = next(ids)

        async def insert(session: AsyncSession, row: int = row) -> None:
            # idempotent: a retry after a commit whose reply was lost inserts nothing twice
            await session.execute(
                text("INSERT INTO ha_writes (id, writer) VALUES (:id, :w) ON CONFLICT (id) DO NOTHING"),
                {"id": row, "w": writer},
            )

        try:
            if rides_over:
                await db.run_in_transaction(insert, retries=5)
            else:
                await db.run_in_transaction(insert, retries=0, unavailable_timeout=0)
        except Exception as exc:  # record everything: the test asserts they are all typed
            run.errors.append(exc)
            await asyncio.sleep(0.05)
            continue
        run.acked.add(row)
        run.ack_times.append(time.monotonic())
        await asyncio.sleep(0.005)


async def _missing_on_primary(db: AsyncDatabase, acked: set[int]) -> set[int]:
    async with db.transaction() as session:
        port = (await session.execute(text("SELECT inet_server_port()"))).scalar_one()
        present = set((await session.execute(text("SELECT id FROM ha_writes"))).scalars())
    report(f"verified on primary :{port}: {len(acked)} acknowledged writes, {len(present)} rows")
    return acked - present


async def _run_with(db: AsyncDatabase, *action: str) -> tuple[Run, float, str]:
    """Writers run, ``action`` is performed; returns what they saw and when the action started."""
    run = Run()
    ids = itertools.count(int(time.time() * 1000) * 100)
    tasks = [asyncio.create_task(_writer(db, run, w, ids, rides_over=w % 2 == 0)) for w in range(WRITERS)]
    await asyncio.sleep(1.0)  # steady state before the failure
    assert run.acked, f"no write succeeded before the failover: {run.errors[:3]}"
    started = time.monotonic()
    code, output = await run_script_async(SCRIPT, *action)
    assert code == 0, output
    # writes must resume: wait for acknowledgements after the action
    for _ in range(300):  # up to 30 s
        if sum(t > started + 0.5 for t in run.ack_times) >= 20:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    run.stop.set()
    await asyncio.gather(*tasks)
    return run, started, output


def _check(run: Run, started: float, label: str) -> None:
    gap = run.longest_gap(started - 1.0)
    kinds = sorted({type(e).__name__ for e in run.errors})
    report(
        f"{label}: {len(run.acked)} acknowledged writes, longest write gap {gap:.2f}s, "
        f"{len(run.errors)} errors seen by non-retrying writers: {kinds}"
    )
    untyped = [e for e in run.errors if not isinstance(e, TYPED)]
    assert not untyped, f"untyped errors during failover: {[repr(e) for e in untyped[:5]]}"
    assert all(isinstance(e, DatabaseError) for e in run.errors)
    assert gap < RESUME_LIMIT, f"writes stopped for {gap:.1f}s (limit {RESUME_LIMIT}s)"


async def test_planned_failover_loses_no_acknowledged_write(ha_db: AsyncDatabase) -> None:
    logger.disable("dsg_lib")
    try:
        run, started, output = await _run_with(ha_db, "failover")
    finally:
        logger.enable("dsg_lib")
    report(f"planned failover: {output.strip().splitlines()[-1] if output.strip() else ''}")
    _check(run, started, "planned failover")
    missing = await _missing_on_primary(ha_db, run.acked)
    report(f"planned failover: acknowledged writes lost = {len(missing)}")
    assert not missing


async def test_killed_primary_loses_no_acknowledged_write(ha_db: AsyncDatabase) -> None:
    killed = run_script(SCRIPT, "primary").stdout.strip()
    node = "1" if killed == "5442" else "2"
    logger.disable("dsg_lib")
    try:
        run, started, _ = await _run_with(ha_db, "kill-primary")
    finally:
        logger.enable("dsg_lib")
    _check(run, started, f"killed primary :{killed}")
    missing = await _missing_on_primary(ha_db, run.acked)
    report(f"killed primary: acknowledged writes lost = {len(missing)}")
    assert not missing
    # the killed node rejoins as the new standby
    code, output = await run_script_async(SCRIPT, "start-node", node)
    assert code == 0, output
    code, output = await run_script_async(SCRIPT, "wait-healthy", "120", timeout=150)
    assert code == 0, output
