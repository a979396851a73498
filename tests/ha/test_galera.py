"""MariaDB Galera: conflicting transfers on three nodes, one node killed mid-run, nothing lost.

Three databases list the same three nodes in rotated orders, so each one
writes to a different node and transfers between the same accounts conflict
at certification (1213 -> ``TransactionConflictError``, retried by
``run_in_transaction``). Node 2 is SIGKILLed mid-run: the database that used
it moves to the next node. At the end the balance sum is unchanged, every
acknowledged transfer is in the log exactly once, and each balance matches
the log.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from loguru import logger
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dsg_lib import AsyncDatabase, DBConfig, TransactionConflictError

from .conftest import ensure_topology, report, run_script, run_script_async

pytestmark = [pytest.mark.ha, pytest.mark.slow]

SCRIPT = "galera.sh"
NODES = os.environ.get("DSG_TEST_GALERA_NODES", "127.0.0.1:3311,127.0.0.1:3312,127.0.0.1:3313").split(",")
ACCOUNTS = 8
START_BALANCE = 1000
TASKS_PER_DB = 3
RUN_SECONDS = 8.0
KILL_AFTER = 2.5


def _url(order: list[str]) -> str:
    return f"mysql+aiomysql://root@{','.join(order)}/dsg_ha"


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ensure_topology(SCRIPT, "start")
    yield
    if run_script(SCRIPT, "status").returncode != 0:
        run_script(SCRIPT, "start")


@pytest.fixture
async def dbs(cluster: None) -> AsyncIterator[list[AsyncDatabase]]:
    orders = [NODES[i:] + NODES[:i] for i in range(len(NODES))]
    found = [AsyncDatabase(DBConfig({"database_uri": _url(o), "connect_timeout": 2})) for o in orders]
    setup = found[0]
    # DDL commits implicitly on MySQL: a plain engine.begin() block, not an atomic transaction()
    async with setup.engine.begin() as session:
        await session.execute(text("DROP TABLE IF EXISTS ha_accounts"))
        await session.execute(text("DROP TABLE IF EXISTS ha_transfers"))
        await session.execute(text("CREATE TABLE ha_accounts (id int PRIMARY KEY, balance bigint NOT NULL)"))
        await session.execute(
            text(
                "CREATE TABLE ha_transfers (id char(32) PRIMARY KEY, src int NOT NULL,"
                " dst int NOT NULL, amount int NOT NULL)"
            )
        )
        for account in range(ACCOUNTS):
            await session.execute(
                text("INSERT INTO ha_accounts VALUES (:id, :b)"), {"id": account, "b": START_BALANCE}
            )
    yield found
    for db in found:
        await db.disconnect()


async def _transfer(
    db: AsyncDatabase, transfer_id: str, src: int, dst: int, amount: int, tries: list[int]
) -> None:
    async def work(session: AsyncSession) -> None:
        tries[0] += 1
        # idempotent: a retry after a COMMIT whose reply was lost must not move the money twice
        done = await session.execute(text("SELECT 1 FROM ha_transfers WHERE id = :id"), {"id": transfer_id})
        if done.first() is not None:
            return
        for account, delta in sorted(((src, -amount), (dst, amount))):
            await session.execute(
                text("UPDATE ha_accounts SET balance = balance + :d WHERE id = :id"),
                {"d": delta, "id": account},
            )
        await session.execute(
            text("INSERT INTO ha_transfers VALUES (:id, :s, :t, :a)"),
            {"id": transfer_id, "s": src, "t": dst, "a": amount},
        )

    await db.run_in_transaction(work, retries=30, backoff=0.01)


async def _worker(
    db: AsyncDatabase, until: float, acked: list[str], failed: list[BaseException], seed: int
) -> int:
    rng = random.Random(seed)
    conflicts = 0
    while time.monotonic() < until:
        src, dst = rng.sample(range(ACCOUNTS), 2)
        transfer_id, tries = uuid.uuid4().hex, [0]
        try:
            await _transfer(db, transfer_id, src, dst, rng.randint(1, 50), tries)
        except Exception as exc:  # recorded: the test fails on any
            failed.append(exc)
            continue
        conflicts += tries[0] - 1
        acked.append(transfer_id)
    return conflicts


async def test_conflicting_transfers_with_a_node_killed(dbs: list[AsyncDatabase]) -> None:
    acked: list[str] = []
    failed: list[BaseException] = []
    until = time.monotonic() + RUN_SECONDS
    logger.disable("dsg_lib")
    try:
        workers = [
            asyncio.create_task(_worker(db, until, acked, failed, seed=i * 10 + t))
            for i, db in enumerate(dbs)
            for t in range(TASKS_PER_DB)
        ]
        await asyncio.sleep(KILL_AFTER)
        before = len(acked)
        code, output = await run_script_async(SCRIPT, "kill", "2")
        assert code == 0, output
        retried = await asyncio.gather(*workers)
    finally:
        logger.enable("dsg_lib")
    report(
        f"galera: {len(acked)} acknowledged transfers ({before} before node 2 was killed), "
        f"{sum(retried)} re-runs after conflicts/outages, {len(failed)} failed"
    )
    assert not failed, f"transfers failed: {[repr(e) for e in failed[:5]]}"
    assert len(acked) > before, "no transfer succeeded after the node was killed"
    assert sum(retried) > 0, "no conflict happened: the test did not exercise certification failures"

    checker = AsyncDatabase(DBConfig({"database_uri": _url(NODES), "wsrep_sync_wait": 1}))
    try:
        async with checker.transaction() as session:
            balances = dict((await session.execute(text("SELECT id, balance FROM ha_accounts"))).all())
            log = (await session.execute(text("SELECT id, src, dst, amount FROM ha_transfers"))).all()
    finally:
        await checker.disconnect()
    assert sum(balances.values()) == ACCOUNTS * START_BALANCE
    logged = {row[0] for row in log}
    lost = set(acked) - logged
    report(
        f"galera: balance sum {sum(balances.values())} (expected {ACCOUNTS * START_BALANCE}),"
        f" lost {len(lost)}"
    )
    assert not lost
    expected = dict.fromkeys(range(ACCOUNTS), START_BALANCE)
    for _, src, dst, amount in log:
        expected[src] -= amount
        expected[dst] += amount
    assert balances == expected

    code, output = await run_script_async(SCRIPT, "restart", "2", timeout=150)
    assert code == 0, output


async def test_conflict_is_typed_and_both_tasks_finish(dbs: list[AsyncDatabase]) -> None:
    """Two nodes update one row at once: the loser's 1213 is typed and run_in_transaction re-runs it."""
    first, second = dbs[0], dbs[1]
    updated = [asyncio.Event(), asyncio.Event()]
    seen: list[BaseException] = []

    async def bump(db: AsyncDatabase, me: int) -> None:
        async def work(session: AsyncSession) -> None:
            await session.execute(text("UPDATE ha_accounts SET balance = balance + 1 WHERE id = 0"))
            if not seen:  # both update the row on their own node before either commits
                updated[me].set()
                await updated[1 - me].wait()

        try:
            await db.run_in_transaction(work, retries=0)
        except TransactionConflictError as exc:
            seen.append(exc)
            await db.run_in_transaction(work, retries=5)

    async with first.transaction() as session:
        before = (await session.execute(text("SELECT balance FROM ha_accounts WHERE id = 0"))).scalar_one()
    await asyncio.wait_for(asyncio.gather(bump(first, 0), bump(second, 1)), 30)
    checker = AsyncDatabase(DBConfig({"database_uri": _url(NODES), "wsrep_sync_wait": 1}))
    try:
        async with checker.transaction() as session:
            after = (await session.execute(text("SELECT balance FROM ha_accounts WHERE id = 0"))).scalar_one()
    finally:
        await checker.disconnect()
    assert seen and "1213" in seen[0].details
    assert after == before + 2
