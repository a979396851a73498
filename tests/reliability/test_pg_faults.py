"""PostgreSQL faults: killed backends, a server restart, serialization failures."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from dsg_lib import DatabaseOperations, DatabaseUnavailableError, TransactionConflictError

from .conftest import (
    PG_CLUSTER,
    POSTGRES_URL,
    account_model,
    assert_no_leak,
    close_db,
    make_db,
    pg_ensure_up,
    pg_is_ready,
    seed_accounts,
    total_balance,
)

pytestmark = pytest.mark.reliability


async def _library_pids(admin: Any, app: str) -> list[int]:
    rows = await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()", app
    )
    return [r["pid"] for r in rows]


def _pg_db(app: str, **options: Any) -> Any:
    return make_db(
        POSTGRES_URL,
        connect_args={"server_settings": {"application_name": app}},
        **options,
    )


async def test_terminate_idle_pooled_connections_next_call_succeeds(pg_admin_conn: Any) -> None:
    app = "dsg_rel_term_idle"
    db = _pg_db(app, pool_size=3, max_overflow=0)
    Account = account_model(db)
    ops = DatabaseOperations(db)
    try:
        await seed_accounts(db, Account, 10, 100)
        # open all three pooled connections
        await asyncio.gather(*(ops.count(Account) for _ in range(3)))
        pids = await _library_pids(pg_admin_conn, app)
        assert pids, "no library connection found in pg_stat_activity"
        killed = await pg_admin_conn.fetch(
            "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1", app
        )
        assert all(r["ok"] for r in killed)
        await asyncio.sleep(0.2)
        # every call after the kill works: pre-ping replaces the dead connections
        for _ in range(5):
            assert await ops.count(Account) == 10
        await ops.update_where(Account, {"balance": 101}, id=1)
        assert (await ops.get(Account, 1)).balance == 101
        async with db.transaction():
            await ops.update_where(Account, {"balance": 99}, id=2)
        assert await total_balance(db, Account) == (10, 1000)
        assert_no_leak(db)
    finally:
        await close_db(db, Account)


async def test_terminate_in_the_middle_of_a_transaction(pg_admin_conn: Any) -> None:
    app = "dsg_rel_term_tx"
    db = _pg_db(app, pool_size=2, max_overflow=0)
    Account = account_model(db)
    ops = DatabaseOperations(db)
    try:
        await seed_accounts(db, Account, 2, 100)
        with pytest.raises(DatabaseUnavailableError) as info:
            async with db.transaction() as session:
                await ops.update_where(Account, {"balance": 0}, id=0)
                await ops.update_where(Account, {"balance": 200}, id=1)
                pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar()
                await pg_admin_conn.execute("SELECT pg_terminate_backend($1)", pid)
                await asyncio.sleep(0.1)
                await ops.update_where(Account, {"balance": 1}, id=0)
        assert info.value.to_dict()["error"] == "DatabaseUnavailableError"
        # nothing committed, the next call works on a fresh connection
        assert await total_balance(db, Account) == (2, 200)
        assert (await ops.get(Account, 0)).balance == 100
        assert_no_leak(db)
    finally:
        await close_db(db, Account)


async def test_terminate_during_commit_path_leaves_no_half_transfer(pg_admin_conn: Any) -> None:
    """The backend dies after the writes but before COMMIT: nothing of the transfer persists."""
    app = "dsg_rel_term_commit"
    db = _pg_db(app, pool_size=2, max_overflow=0)
    Account = account_model(db)
    ops = DatabaseOperations(db)
    try:
        await seed_accounts(db, Account, 2, 100)
        with pytest.raises(DatabaseUnavailableError):
            async with db.transaction() as session:
                await ops.update_where(Account, {"balance": 50}, id=0)
                await ops.update_where(Account, {"balance": 150}, id=1)
                pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar()
                await pg_admin_conn.execute("SELECT pg_terminate_backend($1)", pid)
                await asyncio.sleep(0.1)
                # leaving the block commits: the COMMIT itself hits the dead connection
        assert await total_balance(db, Account) == (2, 200)
        assert [a.balance for a in await ops.find(Account, order_by="id")] == [100, 100]
        assert_no_leak(db)
    finally:
        await close_db(db, Account)


async def test_serializable_conflict_maps_to_transaction_conflict(pg_admin_conn: Any) -> None:
    db = make_db(POSTGRES_URL, isolation_level="SERIALIZABLE", pool_size=4)
    Account = account_model(db)
    ops = DatabaseOperations(db)
    try:
        await seed_accounts(db, Account, 2, 100)
        both_read = asyncio.Barrier(2)

        async def write_skew(read_id: int, write_id: int) -> None:
            async with db.transaction() as session:
                total = (
                    await session.execute(text(f"SELECT SUM(balance) FROM {Account.__tablename__}"))
                ).scalar()
                await both_read.wait()
                await ops.update_where(Account, {"balance": int(total) - 150}, id=write_id)

        results = await asyncio.gather(write_skew(0, 1), write_skew(1, 0), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1, results
        assert isinstance(errors[0], TransactionConflictError), repr(errors[0])
        assert "40001" in repr(errors[0].driver_error) or "serializ" in str(errors[0]).lower()

        # with retries both units finish and the invariant holds
        async def withdraw(session: Any) -> None:
            total = (
                await session.execute(text(f"SELECT SUM(balance) FROM {Account.__tablename__}"))
            ).scalar()
            await asyncio.sleep(0.01)
            await session.execute(
                text(f"UPDATE {Account.__tablename__} SET balance = balance + 1 WHERE id = 0")
            )
            assert total is not None

        await asyncio.gather(*(db.run_in_transaction(withdraw, retries=10) for _ in range(4)))
        count, _ = await total_balance(db, Account)
        assert count == 2
        assert_no_leak(db)
    finally:
        await close_db(db, Account)


@pytest.mark.slow
async def test_server_restart_idle_and_in_flight(pg_admin_conn: Any, tmp_path: Path) -> None:
    """Restart PostgreSQL with idle pooled connections and calls in flight.

    Calls made while the server is down fail with DatabaseUnavailableError within
    their timeout (no hang); calls after it is back work on the same AsyncDatabase.
    """
    await pg_admin_conn.close()  # the restart kills it anyway
    db = make_db(POSTGRES_URL, pool_size=4, max_overflow=0, connect_timeout=2, pool_timeout=2)
    Account = account_model(db)
    ops = DatabaseOperations(db)
    try:
        await seed_accounts(db, Account, 4, 100)
        await asyncio.gather(*(ops.count(Account) for _ in range(4)))  # fill the pool

        async def in_flight(i: int) -> str:
            try:
                async with db.transaction() as session:
                    await session.execute(text("SELECT pg_sleep(30)"))
                    await ops.update_where(Account, {"balance": 0}, id=i)
                return "ok"
            except DatabaseUnavailableError:
                return "unavailable"

        flights = [asyncio.create_task(in_flight(i)) for i in range(2)]
        await asyncio.sleep(0.5)
        stop = await asyncio.to_thread(
            subprocess.run,
            ["pg_ctlcluster", "--skip-systemctl-redirect", *PG_CLUSTER, "stop", "-m", "fast"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        try:
            assert stop.returncode == 0, stop.stderr
            assert not pg_is_ready()
            outcome = await asyncio.wait_for(asyncio.gather(*flights), timeout=10)
            assert outcome == ["unavailable", "unavailable"]

            # calls while the server is down fail fast with the typed error
            for call in (lambda: ops.count(Account), lambda: ops.update_where(Account, {"balance": 1}, id=3)):
                start = time.monotonic()
                with pytest.raises(DatabaseUnavailableError):
                    await asyncio.wait_for(call(), timeout=15)
                assert time.monotonic() - start < 6, "a call to a down server must fail within its timeout"
            assert_no_leak(db)
        finally:
            await asyncio.to_thread(pg_ensure_up)

        # back up: the same object works again, nothing from the killed transactions persisted
        for _ in range(3):
            assert await ops.count(Account) == 4
        assert await total_balance(db, Account) == (4, 400)
        await ops.update_where(Account, {"balance": 90}, id=0)
        await ops.update_where(Account, {"balance": 110}, id=1)
        assert await total_balance(db, Account) == (4, 400)
        assert (await db.health_check())["ok"]
        assert_no_leak(db)
    finally:
        await asyncio.to_thread(pg_ensure_up)
        await close_db(db, Account)
