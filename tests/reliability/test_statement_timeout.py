"""``statement_timeout_ms`` on every backend -> StatementTimeoutError; the database keeps working.

MariaDB note: how a statement reacts to ``max_statement_time`` depends on the
function. On 10.11 ``SELECT SLEEP(2)`` raises errno 1969 (older versions return 1
"interrupted" instead), while ``SELECT BENCHMARK(...)`` is cut short silently and
returns 0 with no error and no warning. The main test therefore uses a real heavy
query (a cross join of the SEQUENCE engine's ``seq_1_to_N`` tables), which MariaDB
aborts with errno 1969 (ER_STATEMENT_TIMEOUT) -> StatementTimeoutError; SLEEP and
BENCHMARK are checked separately to document the server's behaviour (never a hang).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text

from dsg_lib import DatabaseOperations, StatementTimeoutError

from .conftest import (
    MYSQL_URL,
    POSTGRES_URL,
    account_model,
    assert_no_leak,
    close_db,
    make_db,
    require,
    seed_accounts,
    total_balance,
    url_for,
)

pytestmark = pytest.mark.reliability

SLOW_SQL = {
    "postgresql": "SELECT pg_sleep(2)",
    "mariadb": "SELECT COUNT(*) FROM seq_1_to_1000000 a, seq_1_to_100000 b WHERE a.seq + b.seq = 7",
    "sqlite_file": (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "
        "SELECT SUM(x) FROM c"
    ),
}


@pytest.mark.parametrize("backend", ["postgresql", "mariadb", "sqlite_file"])
async def test_statement_timeout(backend: str, tmp_path: Path) -> None:
    await require(backend)
    db = make_db(url_for(backend, tmp_path), statement_timeout_ms=200)
    Account = account_model(db)
    ops = DatabaseOperations(db)
    try:
        await seed_accounts(db, Account, 3, 100)
        for attempt in range(3):  # repeatedly: the same connection(s) stay usable
            start = time.monotonic()
            with pytest.raises(StatementTimeoutError) as info:
                async with db.get_db_session() as session:
                    await session.execute(text(SLOW_SQL[backend]))
            elapsed = time.monotonic() - start
            assert elapsed < 1.5, f"timeout of 200 ms took {elapsed:.2f}s (attempt {attempt})"
            assert info.value.to_dict()["error"] == "StatementTimeoutError"
            assert await ops.count(Account) == 3

        # inside a transaction: the whole unit rolls back, nothing half-written
        with pytest.raises(StatementTimeoutError):
            async with db.transaction() as session:
                await ops.update_where(Account, {"balance": 0}, id=0)
                await session.execute(text(SLOW_SQL[backend]))
                await ops.update_where(Account, {"balance": 200}, id=1)
        assert await total_balance(db, Account) == (3, 300)

        # fast statements still work under the limit, reads and writes
        async with db.transaction():
            await ops.update_where(Account, {"balance": 50}, id=0)
            await ops.update_where(Account, {"balance": 150}, id=1)
        assert await total_balance(db, Account) == (3, 300)
        assert (await db.health_check())["ok"]
        assert_no_leak(db)
    finally:
        await close_db(db, Account)


@pytest.mark.parametrize(
    ("sql", "interrupted_value"),
    [("SELECT SLEEP(2)", 1), ("SELECT BENCHMARK(2000000000, SHA2('x', 512))", 0)],
)
async def test_mariadb_sleep_and_benchmark_under_max_statement_time(sql: str, interrupted_value: int) -> None:
    """Document SLEEP / BENCHMARK under a 200 ms limit: StatementTimeoutError or the
    "interrupted" return value, within the limit, never a hang or a raw driver error."""
    await require("mariadb")
    db = make_db(MYSQL_URL, statement_timeout_ms=200)
    try:
        start = time.monotonic()
        try:
            async with db.get_db_session() as session:
                value = (await session.execute(text(sql))).scalar()
        except StatementTimeoutError:
            value = "raised"
        assert time.monotonic() - start < 1.5
        assert value in (interrupted_value, "raised"), value
        print(f"\nMariaDB {sql[:22]}... under max_statement_time=0.2 -> {value!r}")
        assert await _one(db) == 1
        assert_no_leak(db)
    finally:
        await close_db(db)


async def test_pg_timeout_is_per_statement_not_per_session() -> None:
    """Many short statements in one transaction do not add up to a timeout."""
    await require("postgresql")
    db = make_db(POSTGRES_URL, statement_timeout_ms=300)
    try:
        async with db.transaction() as session:
            for _ in range(5):
                await session.execute(text("SELECT pg_sleep(0.1)"))
        assert_no_leak(db)
    finally:
        await close_db(db)


async def _one(db: object) -> int:
    async with db.get_db_session() as session:  # type: ignore[attr-defined]
        return int((await session.execute(text("SELECT 1"))).scalar())
