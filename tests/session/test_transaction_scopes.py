"""Transactions shared by several tasks: savepoints do not interleave, scopes end cleanly."""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlalchemy import ForeignKey, String, text
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig, SessionMissingError

RUN = os.getpid()


def _item(db: AsyncDatabase) -> type:
    class Item(db.Base):
        __tablename__ = f"scope_items_{RUN}"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(20), unique=True)

    return Item


async def test_task_outliving_its_transaction_runs_on_its_own(db: AsyncDatabase) -> None:
    item = _item(db)
    await db.drop_tables()
    await db.create_tables()
    ops = DatabaseOperations(db)

    async def later() -> None:
        await asyncio.sleep(0.05)
        await ops.create_one(item(name="late"))  # the transaction it was started in has ended
        with pytest.raises(SessionMissingError):
            db.current_session()

    async with db.transaction():
        await ops.create_one(item(name="inside"))
        task = asyncio.create_task(later())
    await task
    assert sorted(i.name for i in await ops.find(item)) == ["inside", "late"]
    assert db.pool_status()["checked_out"] == 0


async def test_sibling_savepoints_do_not_undo_each_other(db: AsyncDatabase) -> None:
    item = _item(db)
    await db.drop_tables()
    await db.create_tables()
    ops = DatabaseOperations(db)

    async def fails() -> None:
        async with db.transaction():
            await ops.create_one(item(name="a"))
            await asyncio.sleep(0.02)
            raise RuntimeError("undo a only")

    async def succeeds() -> None:
        async with db.transaction():
            await ops.create_one(item(name="b"))
            await asyncio.sleep(0.02)

    async with db.transaction():
        results = await asyncio.gather(fails(), succeeds(), return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    assert results[1] is None
    assert [i.name for i in await ops.find(item)] == ["b"]
    assert db.pool_status()["checked_out"] == 0


async def test_tasks_inside_a_savepoint_share_it_without_deadlock(db: AsyncDatabase) -> None:
    item = _item(db)
    await db.drop_tables()
    await db.create_tables()
    ops = DatabaseOperations(db)
    async with db.transaction():
        with pytest.raises(RuntimeError):
            async with db.transaction():
                await asyncio.wait_for(
                    asyncio.gather(*(ops.create_one(item(name=f"n{i}")) for i in range(5))), timeout=10
                )
                assert await ops.count(item) == 5
                raise RuntimeError("roll the five back together")
        await ops.create_one(item(name="kept"))
    assert [i.name for i in await ops.find(item)] == ["kept"]


async def test_create_one_with_joined_table_inheritance_is_atomic(db: AsyncDatabase) -> None:
    class Parent(db.Base):
        __tablename__ = f"scope_parent_{RUN}"
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str] = mapped_column(String(20))
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "parent"}

    class Child(Parent):
        __tablename__ = f"scope_child_{RUN}"
        id: Mapped[int] = mapped_column(ForeignKey(Parent.id), primary_key=True)
        code: Mapped[str] = mapped_column(String(20), unique=True)
        __mapper_args__ = {"polymorphic_identity": "child"}

    await db.drop_tables()
    await db.create_tables()
    ops = DatabaseOperations(db)
    await ops.create_one(Child(code="a"))
    with pytest.raises(Exception) as caught:
        await ops.create_one(Child(code="a"))  # the child INSERT fails after the parent's
    assert type(caught.value).__name__ == "ConstraintViolationError"
    assert await ops.count(Parent) == 1  # no orphan parent row
    assert await ops.count(Child) == 1


async def test_slow_query_log_names_slow_statements_and_survives_failures(
    db_url: str, log_messages: list[str]
) -> None:
    db = AsyncDatabase(DBConfig({"database_uri": db_url, "slow_query_ms": 0}))
    try:
        for _ in range(3):
            with pytest.raises(Exception):  # noqa: B017 - any typed error; the log is what is tested
                async with db.get_db_session() as session:
                    await session.execute(text("SELECT * FROM no_such_table_for_slow_log"))
        async with db.get_db_session() as session:
            await session.execute(text("SELECT 42"))
    finally:
        await db.disconnect()
    slow = [m for m in log_messages if "slow query" in m]
    assert any("SELECT 42" in m for m in slow)
    assert not any("no_such_table_for_slow_log" in m for m in slow)  # failed statements are not timed
