"""MariaDB faults: KILL CONNECTION on pooled / in-transaction connections, wait_timeout expiry."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from dsg_lib import DatabaseOperations, DatabaseUnavailableError

from .conftest import (
    MYSQL_URL,
    account_model,
    assert_no_leak,
    close_db,
    make_db,
    my_exec,
    seed_accounts,
    total_balance,
)

pytestmark = pytest.mark.reliability


async def _connection_ids(db: Any, n: int) -> set[int]:
    """CONNECTION_ID() of ``n`` pooled connections held at the same time."""
    ids: set[int] = set()
    sessions = []
    try:
        for _ in range(n):
            cm = db.get_db_session()
            session = await cm.__aenter__()
            sessions.append(cm)
            ids.add(int((await session.execute(text("SELECT CONNECTION_ID()"))).scalar()))
    finally:
        for cm in sessions:
            await cm.__aexit__(None, None, None)
    return ids


async def test_kill_idle_pooled_connections_next_call_succeeds(my_admin_conn: Any) -> None:
    db = make_db(MYSQL_URL, pool_size=3, max_overflow=0)
    Account = account_model(db)
    ops = DatabaseOperations(db)
    try:
        await seed_accounts(db, Account, 10, 100)
        ids = await _connection_ids(db, 3)
        assert len(ids) == 3
        for cid in ids:
            await my_exec(my_admin_conn, f"KILL CONNECTION {cid}")
        await asyncio.sleep(0.2)
        for _ in range(5):
            assert await ops.count(Account) == 10
        await ops.update_where(Account, {"balance": 150}, id=1)
        await ops.update_where(Account, {"balance": 50}, id=2)
        assert await total_balance(db, Account) == (10, 1000)
        new_ids = await _connection_ids(db, 3)
        assert not (new_ids & ids), "dead connections were handed out again"
        assert_no_leak(db)
    finally:
        await close_db(db, Account)


async def test_kill_connection_in_the_middle_of_a_transaction(my_admin_conn: Any) -> None:
    db = make_db(MYSQL_URL, pool_size=2, max_overflow=0)
    Account = account_model(db)
    ops = DatabaseOperations(db)
    try:
        await seed_accounts(db, Account, 2, 100)
        with pytest.raises(DatabaseUnavailableError):
            async with db.transaction() as session:
                await ops.update_where(Account, {"balance": 0}, id=0)
                cid = (await session.execute(text("SELECT CONNECTION_ID()"))).scalar()
                await my_exec(my_admin_conn, f"KILL CONNECTION {int(cid)}")
                await asyncio.sleep(0.1)
                await ops.update_where(Account, {"balance": 200}, id=1)
        assert await total_balance(db, Account) == (2, 200)
        assert [a.balance for a in await ops.find(Account, order_by="id")] == [100, 100]

        # killed between the writes and COMMIT: the COMMIT fails, nothing persists
        with pytest.raises(DatabaseUnavailableError):
            async with db.transaction() as session:
                await ops.update_where(Account, {"balance": 10}, id=0)
                await ops.update_where(Account, {"balance": 190}, id=1)
                cid = (await session.execute(text("SELECT CONNECTION_ID()"))).scalar()
                await my_exec(my_admin_conn, f"KILL CONNECTION {int(cid)}")
                await asyncio.sleep(0.1)
        assert [a.balance for a in await ops.find(Account, order_by="id")] == [100, 100]
        assert_no_leak(db)
    finally:
        await close_db(db, Account)


async def test_kill_query_in_flight_is_typed(my_admin_conn: Any) -> None:
    """KILL CONNECTION while a statement runs: the caller gets DatabaseUnavailableError at once."""
    db = make_db(MYSQL_URL, pool_size=2, max_overflow=0)
    try:

        async def long_call() -> None:
            async with db.get_db_session() as s:
                await s.execute(text("SELECT SLEEP(20)"))

        task = asyncio.create_task(long_call())
        await asyncio.sleep(0.3)
        rows = await my_exec(
            my_admin_conn,
            "SELECT id FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP(20)%%'",
        )
        assert rows, "the in-flight statement was not found in the processlist"
        for (pid,) in rows:
            await my_exec(my_admin_conn, f"KILL CONNECTION {int(pid)}")
        with pytest.raises(DatabaseUnavailableError):
            await asyncio.wait_for(task, timeout=5)
        assert (await db.health_check())["ok"]
        assert_no_leak(db)
    finally:
        await close_db(db)


@pytest.mark.slow
async def test_wait_timeout_expiry_pre_ping_reconnects(my_admin_conn: Any) -> None:
    db = make_db(
        MYSQL_URL,
        pool_size=2,
        max_overflow=0,
        connect_args={"init_command": "SET SESSION wait_timeout=1"},
    )
    Account = account_model(db)
    ops = DatabaseOperations(db)
    try:
        await seed_accounts(db, Account, 3, 100)
        ids = await _connection_ids(db, 2)
        assert int(await _session_wait_timeout(db)) == 1
        await asyncio.sleep(2.5)  # the server closes both idle pooled connections
        alive = {
            int(r[0]) for r in await my_exec(my_admin_conn, "SELECT id FROM information_schema.processlist")
        }
        assert not (ids & alive), "wait_timeout did not close the pooled connections"
        assert await ops.count(Account) == 3
        await ops.update_where(Account, {"balance": 0}, id=0)
        await ops.update_where(Account, {"balance": 200}, id=1)
        await asyncio.sleep(2.5)
        async with db.transaction():
            await ops.update_where(Account, {"balance": 100}, id=0)
            await ops.update_where(Account, {"balance": 100}, id=1)
        assert await total_balance(db, Account) == (3, 300)
        assert_no_leak(db)
    finally:
        await close_db(db, Account)


async def _session_wait_timeout(db: Any) -> Any:
    async with db.get_db_session() as s:
        return (await s.execute(text("SELECT @@SESSION.wait_timeout"))).scalar()
