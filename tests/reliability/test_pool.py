"""Pool exhaustion: pool_size=2, max_overflow=0, pool_timeout=0.5 -> PoolTimeoutError in ~0.5 s."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from dsg_lib import DatabaseOperations, PoolTimeoutError

from .conftest import (
    account_model,
    assert_no_leak,
    close_db,
    make_db,
    seed_accounts,
    total_balance,
    url_for,
)

pytestmark = pytest.mark.reliability


async def test_pool_exhaustion_times_out_then_recovers(any_backend: str, tmp_path: Path) -> None:
    # SQLite: BEGIN IMMEDIATE (the default) allows one open write transaction at a time,
    # so two held transactions need deferred BEGIN (two readers in WAL mode).
    extra = {"sqlite_begin": "deferred"} if any_backend == "sqlite_file" else {}
    db = make_db(url_for(any_backend, tmp_path), pool_size=2, max_overflow=0, pool_timeout=0.5, **extra)
    Account = account_model(db)
    ops = DatabaseOperations(db)
    try:
        await seed_accounts(db, Account, 4, 100)
        release = asyncio.Event()
        holding = asyncio.Semaphore(0)

        async def hold(i: int) -> None:
            async with db.transaction():
                # a read joins the transaction, so the connection is really checked out
                assert await ops.count(Account, id=i) == 1
                holding.release()
                await release.wait()

        holders = [asyncio.create_task(hold(i)) for i in range(2)]
        try:
            for _ in range(2):
                await asyncio.wait_for(holding.acquire(), timeout=5)
        except BaseException:
            release.set()
            await asyncio.gather(*holders, return_exceptions=True)
            raise
        assert db.pool_status()["checked_out"] == 2

        for call in (lambda: ops.count(Account), lambda: ops.update_where(Account, {"balance": 1}, id=3)):
            start = time.monotonic()
            with pytest.raises(PoolTimeoutError) as info:
                await asyncio.wait_for(call(), timeout=5)  # wait_for guards against a deadlock
            elapsed = time.monotonic() - start
            assert 0.4 <= elapsed < 1.5, f"pool timeout of 0.5 s took {elapsed:.2f}s"
            assert info.value.to_dict()["error"] == "PoolTimeoutError"

        # a third transaction() also times out and leaves nothing behind
        with pytest.raises(PoolTimeoutError):
            async with db.transaction():
                await ops.update_where(Account, {"balance": 0}, id=3)
        assert db.pool_status()["checked_out"] == 2

        release.set()
        await asyncio.wait_for(asyncio.gather(*holders), timeout=5)
        assert_no_leak(db)
        assert await ops.count(Account) == 4
        await asyncio.gather(*(ops.update_where(Account, {"balance": 100}, id=i) for i in range(4)))
        assert await total_balance(db, Account) == (4, 400)
        assert_no_leak(db)
    finally:
        await close_db(db, Account)


async def test_many_waiters_on_small_pool_no_deadlock(any_backend: str, tmp_path: Path) -> None:
    """50 callers on a 2-connection pool with a generous timeout: all finish, none leak."""
    db = make_db(url_for(any_backend, tmp_path), pool_size=2, max_overflow=0, pool_timeout=10)
    Account = account_model(db)
    ops = DatabaseOperations(db)
    try:
        await seed_accounts(db, Account, 2, 100)

        async def work(i: int) -> None:
            async with db.transaction():
                await ops.count(Account)
                await ops.update_where(Account, {"balance": 100}, id=i % 2)

        await asyncio.wait_for(asyncio.gather(*(work(i) for i in range(50))), timeout=30)
        assert await total_balance(db, Account) == (2, 200)
        assert_no_leak(db)
    finally:
        await close_db(db, Account)
