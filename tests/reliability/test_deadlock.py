"""Deadlocks on PostgreSQL (40P01) and MariaDB (errno 1213) -> TransactionConflictError;
``run_in_transaction(retries=5)`` finishes both units with consistent balances."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select, update

from dsg_lib import TransactionConflictError

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


def _transfer(
    Account: Any, src: int, dst: int, amount: int, both_locked_first: asyncio.Barrier | None
) -> Any:
    attempts = [0]

    async def unit(session: Any) -> None:
        attempts[0] += 1
        await session.execute(select(Account.id).where(Account.id == src).with_for_update())
        await session.execute(
            update(Account).where(Account.id == src).values(balance=Account.balance - amount)
        )
        if both_locked_first is not None and attempts[0] == 1:  # force the deadlock once
            try:
                await asyncio.wait_for(both_locked_first.wait(), timeout=2)
            except (asyncio.TimeoutError, asyncio.BrokenBarrierError):
                pass  # the other side already failed or retried: just continue
        await session.execute(
            update(Account).where(Account.id == dst).values(balance=Account.balance + amount)
        )

    unit.attempts = attempts  # type: ignore[attr-defined]
    return unit


async def test_opposite_lock_order_deadlock_is_typed(server: str) -> None:
    db = make_db(url_for(server), pool_size=4, max_overflow=0)
    Account = account_model(db)
    try:
        await seed_accounts(db, Account, 2, 1000)
        barrier = asyncio.Barrier(2)

        async def once(src: int, dst: int) -> None:
            async with db.transaction() as session:
                await _transfer(Account, src, dst, 100, barrier)(session)

        results = await asyncio.wait_for(
            asyncio.gather(once(0, 1), once(1, 0), return_exceptions=True), timeout=30
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1, results
        err = errors[0]
        assert isinstance(err, TransactionConflictError), repr(err)
        cause = repr(err.driver_error) + str(err)
        assert (
            ("40P01" in cause or "deadlock" in cause.lower()) if server == "postgresql" else "1213" in cause
        )
        # the winner committed, the loser rolled back entirely
        assert await total_balance(db, Account) == (2, 2000)
        assert_no_leak(db)
    finally:
        await close_db(db, Account)


def _fast_deadlocks(server: str) -> dict[str, Any]:
    # PostgreSQL checks for deadlocks after deadlock_timeout (1 s by default); 100 ms keeps
    # the many-units case fast. MariaDB detects them immediately.
    if server == "postgresql":
        return {"connect_args": {"server_settings": {"deadlock_timeout": "100ms"}}}
    return {}


@pytest.mark.parametrize(("pairs", "retries"), [(2, 5), (8, 10)])
async def test_run_in_transaction_retries_deadlocks_to_completion(
    server: str, pairs: int, retries: int
) -> None:
    db = make_db(url_for(server), pool_size=10, max_overflow=5, pool_timeout=30, **_fast_deadlocks(server))
    Account = account_model(db)
    try:
        await seed_accounts(db, Account, 4, 1000)
        barrier = asyncio.Barrier(2) if pairs == 2 else None
        units = []
        for i in range(pairs):
            a, b = (0, 1) if i % 4 < 2 else (2, 3)
            src, dst = (a, b) if i % 2 == 0 else (b, a)
            units.append(_transfer(Account, src, dst, 10 + i, barrier))
        await asyncio.wait_for(
            asyncio.gather(*(db.run_in_transaction(u, retries=retries) for u in units)), timeout=60
        )
        attempts = sum(u.attempts[0] for u in units)
        print(f"\n{server}: {pairs} units, {attempts} attempts ({attempts - pairs} deadlock retries)")
        if barrier is not None:
            assert attempts == pairs + 1, "the forced deadlock did not happen exactly once"
        expected = {0: 1000, 1: 1000, 2: 1000, 3: 1000}
        for i in range(pairs):
            a, b = (0, 1) if i % 4 < 2 else (2, 3)
            src, dst = (a, b) if i % 2 == 0 else (b, a)
            expected[src] -= 10 + i
            expected[dst] += 10 + i
        async with db.get_db_session() as s:
            balances = dict((await s.execute(select(Account.id, Account.balance))).all())
        assert balances == expected  # every unit applied exactly once
        assert await total_balance(db, Account) == (4, 4000)
        assert_no_leak(db)
    finally:
        await close_db(db, Account)
