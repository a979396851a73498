"""MySQL / MariaDB: a read of several statements in one call sees one snapshot.

Outside a transaction MySQL connections run in driver autocommit, so each
statement would see the data committed when it starts. ``read_multi_query``
and ``paginate`` (``COUNT`` + rows) run in one ``START TRANSACTION WITH
CONSISTENT SNAPSHOT`` instead (REPEATABLE READ, the server's default). A
writer commits between the statements; the answers must not disagree.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Integer, String, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig
from tests.helpers import MYSQL_URL, backend_problem, unreachable

RUN = os.getpid()
TABLE = f"snap_items_{RUN}"
VIEW = f"snap_slow_{RUN}"


@pytest.fixture(params=["aiomysql", "asyncmy"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[tuple[AsyncDatabase, Any, Any]]:
    problem = await backend_problem("mariadb")
    if problem:
        unreachable("mariadb", problem)
    url = make_url(MYSQL_URL).set(drivername=f"mysql+{request.param}").render_as_string(hide_password=False)
    db = AsyncDatabase(DBConfig({"database_uri": url}))

    class Item(db.Base):
        __tablename__ = TABLE
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        name: Mapped[str] = mapped_column(String(20))

    class ViewBase(DeclarativeBase):
        pass

    class Slow(ViewBase):
        """The table seen through a view that sleeps 0.4 s on row 1: each statement takes that long."""

        __tablename__ = VIEW
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        name: Mapped[str] = mapped_column(String(20))

    await db.create_tables()
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(
            f"CREATE OR REPLACE VIEW {VIEW} AS SELECT id, name FROM {TABLE} WHERE id <> 1 OR SLEEP(0.4) = 0"
        )
    await DatabaseOperations(db).insert_many(Item, [{"id": i, "name": "old"} for i in range(1, 4)])
    yield db, Item, Slow
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(f"DROP VIEW IF EXISTS {VIEW}")
    await db.drop_tables()
    assert db.pool_status()["checked_out"] == 0
    await db.disconnect()


async def _write_meanwhile(db: AsyncDatabase, delay: float) -> None:
    """Commit a new row ``delay`` seconds from now, on a connection of its own."""
    await asyncio.sleep(delay)
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(f"INSERT INTO {TABLE} (id, name) VALUES (99, 'new')")


async def test_read_multi_query_is_one_snapshot(env: tuple[AsyncDatabase, Any, Any]) -> None:
    db, item, _slow = env
    ops = DatabaseOperations(db)
    writer = asyncio.ensure_future(_write_meanwhile(db, 0.2))
    found = await ops.read_multi_query(
        {
            "before": select(func.count()).select_from(item),
            "pause": select(text("SLEEP(0.5)")),
            "after": select(func.count()).select_from(item),
        }
    )
    await writer
    assert found["before"] == found["after"] == [3]
    assert await ops.count(item) == 4  # the writer did commit


@pytest.mark.parametrize("shape", ["model", "select"])
async def test_paginate_count_and_rows_are_one_snapshot(
    env: tuple[AsyncDatabase, Any, Any], shape: str
) -> None:
    db, _item, slow = env
    ops = DatabaseOperations(db)
    writer = asyncio.ensure_future(_write_meanwhile(db, 0.2))  # while the COUNT runs
    query = slow if shape == "model" else select(slow).order_by(slow.id)
    page = await ops.paginate(query, page=1, page_size=10)
    await writer
    assert page.total == len(page.items) == 3
