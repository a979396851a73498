"""Shared helpers for the fault-injection and hostile-input suite (``tests/reliability``).

Every test here runs against real servers (PostgreSQL 15, MariaDB 10.11) and real
SQLite files. Tables get unique names so the suite can run next to other test runs
on the same ``test`` databases, and every table a test creates is dropped after it.

Environment (same as ``tests/conftest.py``):
    DSG_TEST_POSTGRES_URL, DSG_TEST_MYSQL_URL, CI
    DSG_LOAD_SECONDS   duration of each load test (default 20)
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import BigInteger, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseError, DBConfig
from tests.helpers import MYSQL_URL, POSTGRES_URL, backend_problem, unreachable

PG_CLUSTER = ("15", "main")


# --------------------------------------------------------------------------- #
# backends                                                                     #
# --------------------------------------------------------------------------- #
def url_for(backend: str, tmp_path: Path | None = None) -> str:
    if backend == "postgresql":
        return POSTGRES_URL
    if backend == "mariadb":
        return MYSQL_URL
    if backend == "sqlite_file":
        assert tmp_path is not None
        return f"sqlite+aiosqlite:///{tmp_path / 'reliability.db'}"
    raise ValueError(backend)


async def require(backend: str) -> None:
    """Skip (under CI: fail) when a server backend cannot be reached."""
    if backend not in ("postgresql", "mariadb"):
        return
    if backend == "postgresql":
        pg_ensure_up()
    problem = await backend_problem(backend)
    if problem:
        unreachable(backend, problem)


def unique(prefix: str) -> str:
    return f"rel_{prefix}_{uuid.uuid4().hex[:10]}"


def make_db(url: str, **options: Any) -> AsyncDatabase:
    return AsyncDatabase(DBConfig({"database_uri": url, **options}))


# --------------------------------------------------------------------------- #
# models (declared per database, with unique table names)                      #
# --------------------------------------------------------------------------- #
def account_model(db: AsyncDatabase, name: str | None = None) -> type[Any]:
    table = name or unique("acct")

    class Account(db.Base):  # type: ignore[name-defined,misc]
        __tablename__ = table
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        balance: Mapped[int] = mapped_column(BigInteger, nullable=False)

    return Account


def row_model(db: AsyncDatabase, name: str | None = None) -> type[Any]:
    table = name or unique("row")

    class Row(db.Base):  # type: ignore[name-defined,misc]
        __tablename__ = table
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
        writer: Mapped[str] = mapped_column(String(20), nullable=False)
        seq: Mapped[int] = mapped_column(Integer, nullable=False)

    return Row


async def seed_accounts(db: AsyncDatabase, model: type[Any], n: int, balance: int) -> None:
    from dsg_lib import DatabaseOperations

    await db.create_tables(model)
    await DatabaseOperations(db).insert_many(model, [{"id": i, "balance": balance} for i in range(n)])


async def total_balance(db: AsyncDatabase, model: type[Any]) -> tuple[int, int]:
    async with db.get_db_session() as s:
        row = (
            await s.execute(text(f"SELECT COUNT(*), COALESCE(SUM(balance), 0) FROM {model.__tablename__}"))
        ).one()
        return int(row[0]), int(row[1])


async def scalar(db: AsyncDatabase, sql: str) -> Any:
    async with db.get_db_session() as s:
        return (await s.execute(text(sql))).scalar()


def assert_no_leak(db: AsyncDatabase) -> None:
    status = db.pool_status()
    assert status["checked_out"] == 0, f"pooled connection leaked: {status}"


async def close_db(db: AsyncDatabase, *models: type[Any]) -> None:
    """Drop the test's tables (best effort) and dispose the engine."""
    try:
        if not db.is_connected:
            await db.connect(timeout=20)
        if models:
            await db.drop_tables(*models)
    except DatabaseError:
        pass
    finally:
        await db.disconnect()


async def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return True
        await asyncio.sleep(interval)
    return False


# --------------------------------------------------------------------------- #
# admin connections (outside the library under test)                          #
# --------------------------------------------------------------------------- #
async def pg_admin() -> Any:
    import asyncpg

    return await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="test", timeout=5)


async def my_admin() -> Any:
    import aiomysql

    return await aiomysql.connect(host="127.0.0.1", port=3306, user="root", db="test", autocommit=True)


async def my_exec(conn: Any, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    async with conn.cursor() as cur:
        await cur.execute(sql, args or None)
        return list(await cur.fetchall())


def pg_is_ready() -> bool:
    return (
        subprocess.run(
            ["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432", "-t", "1"], check=False
        ).returncode
        == 0
    )


def pg_ensure_up(timeout: float = 30.0) -> None:
    """Start the PostgreSQL cluster if it is down and wait until it accepts connections."""
    if pg_is_ready():
        return
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", *PG_CLUSTER, "start"],
        check=False,
        capture_output=True,
        timeout=60,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pg_is_ready():
            return
        time.sleep(0.2)
    raise RuntimeError("PostgreSQL did not come back up")


@pytest.fixture
async def pg_admin_conn() -> AsyncIterator[Any]:
    await require("postgresql")
    conn = await pg_admin()
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def my_admin_conn() -> AsyncIterator[Any]:
    await require("mariadb")
    conn = await my_admin()
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture(params=["postgresql", "mariadb"])
async def server(request: pytest.FixtureRequest) -> str:
    await require(request.param)
    return str(request.param)


@pytest.fixture(params=["postgresql", "mariadb", "sqlite_file"])
async def any_backend(request: pytest.FixtureRequest) -> str:
    await require(request.param)
    return str(request.param)
