"""PostgreSQL: a statement asyncpg refuses client-side leaves no lock and no busy backend behind.

asyncpg sends Parse/Describe before it encodes the values; when its encoder
then refuses one (``ARRAY(Integer)`` given ``["x"]``), the backend waits
mid-statement, "active" and holding the statement's locks, until that pooled
connection is used again. dsg_lib discards such a connection instead.
"""

from __future__ import annotations

import decimal
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from sqlalchemy import ARRAY, Integer
from sqlalchemy.dialects.postgresql import MONEY
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseError, DatabaseOperations, DBConfig

TABLE = f"refused_{os.getpid()}"


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[tuple[AsyncDatabase, Any, str]]:
    db = AsyncDatabase(DBConfig({"database_uri": postgres_url}))

    class Arr(db.Base):
        __tablename__ = TABLE
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        nums: Mapped[Any] = mapped_column(ARRAY(Integer), nullable=True)
        cash: Mapped[Any] = mapped_column(MONEY, nullable=True)

    await db.create_tables()
    url = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    yield db, Arr, url
    await db.drop_tables()
    assert db.pool_status()["checked_out"] == 0
    await db.disconnect()


async def _locks_held_elsewhere(url: str) -> list[Any]:
    other = await asyncpg.connect(url)
    try:
        return list(
            await other.fetch(
                "SELECT a.pid, a.state, l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE a.pid <> pg_backend_pid() AND l.relation = $1::regclass",
                TABLE,
            )
        )
    finally:
        await other.close()


async def _alter_does_not_block(url: str) -> None:
    other = await asyncpg.connect(url)
    try:
        await other.execute("SET lock_timeout = '2s'")
        await other.execute(f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS extra INT")
        await other.execute(f"ALTER TABLE {TABLE} DROP COLUMN extra")
    finally:
        await other.close()


CALLS: dict[str, Callable[[DatabaseOperations, Any], Awaitable[Any]]] = {
    "create_one_array": lambda ops, m: ops.create_one(m(nums=["x"])),
    "create_one_money": lambda ops, m: ops.create_one(m(cash=decimal.Decimal("1.50"))),
    "insert_many_array": lambda ops, m: ops.insert_many(m, [{"nums": ["x"]}]),
    "update_where_array": lambda ops, m: ops.update_where(m, {"nums": ["x"]}, id=1),
    "find_array": lambda ops, m: ops.find(m, nums=["x"]),
    "count_array": lambda ops, m: ops.count(m, nums=["x"]),
}


@pytest.mark.parametrize("call", sorted(CALLS))
async def test_refused_value_leaves_no_lock(pg: tuple[AsyncDatabase, Any, str], call: str) -> None:
    db, model, url = pg
    ops = DatabaseOperations(db)
    with pytest.raises(DatabaseError):
        await CALLS[call](ops, model)
    assert await _locks_held_elsewhere(url) == []
    await _alter_does_not_block(url)
    # the pool still works
    assert await ops.count(model) == 0
