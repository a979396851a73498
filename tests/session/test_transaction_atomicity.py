"""``transaction()`` stays atomic when the database ends the transaction itself.

MySQL / MariaDB end a transaction on DDL (implicit commit) and on a deadlock
(the victim is rolled back); SQLite ends it on an ``ON CONFLICT ROLLBACK``
constraint or a trigger's ``RAISE(ROLLBACK)``. Connections run in driver
autocommit outside transactions, so a statement sent after that point would
commit on its own. Every later statement of the block must fail with
`TransactionEndedError`, the block must fail, and nothing written after the
point may be stored.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Integer, String, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig, TransactionConflictError
from dsg_lib.errors import ConstraintViolationError, DatabaseError, TransactionEndedError
from tests.helpers import MYSQL_URL, backend_problem, unreachable

RUN = os.getpid()
TABLE = f"atom_items_{RUN}"


@pytest.fixture(params=["aiomysql", "asyncmy"])
async def my_db(request: pytest.FixtureRequest) -> AsyncIterator[AsyncDatabase]:
    """MariaDB through each of its two async drivers."""
    problem = await backend_problem("mariadb")
    if problem:
        unreachable("mariadb", problem)
    url = make_url(MYSQL_URL).set(drivername=f"mysql+{request.param}")
    db = AsyncDatabase(DBConfig({"database_uri": url.render_as_string(hide_password=False)}))
    yield db
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")
        await conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}_ddl")
    assert db.pool_status()["checked_out"] == 0
    await db.disconnect()


def _item(db: AsyncDatabase) -> Any:
    class Item(db.Base):
        __tablename__ = TABLE
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        name: Mapped[str] = mapped_column(String(20))

    return Item


async def _names(db: AsyncDatabase) -> list[str]:
    async with db.engine.connect() as conn:
        found = await conn.exec_driver_sql(f"SELECT name FROM {TABLE} ORDER BY id")
        return [row[0] for row in found]


async def test_mysql_writes_after_an_implicit_commit_do_not_commit(my_db: AsyncDatabase) -> None:
    db = my_db
    item = _item(db)
    await db.create_tables()
    ops = DatabaseOperations(db)
    with pytest.raises(TransactionEndedError):
        async with db.transaction() as session:
            await ops.create_one(item(id=1, name="before"))
            await session.execute(text(f"CREATE TABLE {TABLE}_ddl (x INT)"))  # commits implicitly
            await ops.create_one(item(id=2, name="after"))
    with pytest.raises(TransactionEndedError):
        async with db.transaction() as session:
            await session.execute(text(f"DROP TABLE {TABLE}_ddl"))
            await ops.insert_many(item, [{"id": 3, "name": "many"}, {"id": 4, "name": "many"}])
    with pytest.raises(TransactionEndedError):
        async with db.transaction() as session:
            await session.execute(text(f"CREATE TABLE {TABLE}_ddl (x INT)"))
            await ops.update_where(item, {"name": "changed"}, id=1)
    # "before" was committed by the DDL itself (MySQL cannot undo that); nothing later was
    assert await _names(db) == ["before"]


async def test_mysql_block_fails_when_the_transaction_ended_last(my_db: AsyncDatabase) -> None:
    db = my_db
    item = _item(db)
    await db.create_tables()
    ops = DatabaseOperations(db)
    with pytest.raises(TransactionEndedError):
        async with db.transaction() as session:
            await ops.create_one(item(id=1, name="before"))
            await session.execute(text(f"CREATE TABLE {TABLE}_ddl (x INT)"))
    assert await _names(db) == ["before"]


async def _deadlock_victim(db: AsyncDatabase, ops: DatabaseOperations, item: Any) -> None:
    """Inside ``db.transaction()``: lose a deadlock against a heavier transaction, catch it."""
    async with db.engine.connect() as other:
        await other.exec_driver_sql("START TRANSACTION")
        # heavier than ours (more rows changed), so InnoDB picks our transaction as the victim
        await other.exec_driver_sql(f"UPDATE {TABLE} SET name = 'other' WHERE id >= 2")
        await ops.update_where(item, {"name": "mine"}, id=1)
        crossing = f"UPDATE {TABLE} SET name = 'other' WHERE id = 1"
        blocked = asyncio.ensure_future(other.exec_driver_sql(crossing))
        await asyncio.sleep(0.3)
        with pytest.raises(TransactionConflictError):
            await ops.update_where(item, {"name": "mine"}, id=2)
        await blocked
        await other.exec_driver_sql("COMMIT")


async def test_mysql_writes_after_a_caught_deadlock_do_not_commit(my_db: AsyncDatabase) -> None:
    db = my_db
    item = _item(db)
    await db.create_tables()
    ops = DatabaseOperations(db)
    await ops.insert_many(item, [{"id": i, "name": "start"} for i in range(1, 30)])
    with pytest.raises(TransactionEndedError):
        async with db.transaction():
            await _deadlock_victim(db, ops, item)
            await ops.create_one(item(id=100, name="after"))
    with pytest.raises(TransactionEndedError):
        async with db.transaction():
            await _deadlock_victim(db, ops, item)
            await ops.insert_many(item, [{"id": 101, "name": "after"}])
    with pytest.raises(TransactionEndedError):  # nothing after the deadlock: the commit fails
        async with db.transaction():
            await _deadlock_victim(db, ops, item)
    names = await _names(db)
    assert "after" not in names and "mine" not in names


# --------------------------------------------------------------------------- SQLite


@pytest.fixture(params=["memory", "file"])
async def lite_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncDatabase]:
    url = (
        "sqlite+aiosqlite:///:memory:"
        if request.param == "memory"
        else f"sqlite+aiosqlite:///{tmp_path}/a.db"
    )
    db = AsyncDatabase(DBConfig({"database_uri": url}))
    yield db
    assert db.pool_status()["checked_out"] == 0
    await db.disconnect()


def _lite_item(db: AsyncDatabase) -> Any:
    class Lite(db.Base):
        __tablename__ = TABLE
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        name: Mapped[str] = mapped_column(String(20))

    return Lite


async def _lite_tables(db: AsyncDatabase) -> None:
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(
            f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY ON CONFLICT ROLLBACK, name VARCHAR(20))"
        )
        await conn.exec_driver_sql(
            f"CREATE TRIGGER {TABLE}_no_bad BEFORE INSERT ON {TABLE} WHEN NEW.name = 'bad' "
            "BEGIN SELECT RAISE(ROLLBACK, 'refused'); END"
        )


async def test_sqlite_writes_after_on_conflict_rollback_do_not_commit(lite_db: AsyncDatabase) -> None:
    db = lite_db
    item = _lite_item(db)
    await _lite_tables(db)
    ops = DatabaseOperations(db)
    await ops.create_one(item(id=1, name="existing"))
    with pytest.raises(TransactionEndedError):
        async with db.transaction():
            await ops.create_one(item(id=2, name="before"))
            with pytest.raises(ConstraintViolationError):
                await ops.insert_many(item, [{"id": 1, "name": "dup"}])
            await ops.insert_many(item, [{"id": 3, "name": "after"}, {"id": 4, "name": "after"}])
    with pytest.raises(TransactionEndedError):
        async with db.transaction():
            with pytest.raises(ConstraintViolationError):
                await ops.insert_many(item, [{"id": 1, "name": "dup"}])
            await ops.create_one(item(id=5, name="after"))
    with pytest.raises(TransactionEndedError):
        async with db.transaction():
            with pytest.raises(ConstraintViolationError):
                await ops.insert_many(item, [{"id": 1, "name": "dup"}])
            await ops.update_where(item, {"name": "changed"}, id=1)
    assert await _names(db) == ["existing"]


async def test_sqlite_writes_after_a_trigger_rollback_do_not_commit(lite_db: AsyncDatabase) -> None:
    db = lite_db
    item = _lite_item(db)
    await _lite_tables(db)
    ops = DatabaseOperations(db)
    with pytest.raises(TransactionEndedError):
        async with db.transaction():
            await ops.create_one(item(id=1, name="before"))
            with pytest.raises(DatabaseError):  # the trigger's own error
                await ops.insert_many(item, [{"id": 2, "name": "bad"}])
            await ops.insert_many(item, [{"id": 3, "name": "after"}])
            await ops.create_one(item(id=4, name="after"))
    with pytest.raises(TransactionEndedError):  # nothing after the rollback: the commit fails
        async with db.transaction():
            await ops.create_one(item(id=1, name="before"))
            with pytest.raises(DatabaseError):
                await ops.insert_many(item, [{"id": 2, "name": "bad"}])
    assert await _names(db) == []


async def test_ddl_outside_transaction_blocks_still_works(my_db: AsyncDatabase) -> None:
    """create_tables and hand-written engine.begin() DDL are not guarded (several CREATEs in one block)."""
    db = my_db
    _item(db)
    await db.create_tables()
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(f"CREATE TABLE {TABLE}_ddl (x INT)")
        await conn.exec_driver_sql(f"DROP TABLE {TABLE}_ddl")
    assert await _names(db) == []


async def test_mysql_get_db_session_begins_again_after_an_implicit_commit(my_db: AsyncDatabase) -> None:
    """``get_db_session()`` is plain SQLAlchemy: DDL in the middle works, and what follows it is
    still a transaction the caller commits (or not), as on a connection without autocommit."""
    db = my_db
    item = _item(db)
    await db.create_tables()
    async with db.get_db_session() as session:
        await session.execute(text(f"CREATE TABLE {TABLE}_ddl (x INT)"))  # commits implicitly
        await session.execute(text(f"INSERT INTO {TABLE} (id, name) VALUES (1, 'uncommitted')"))
    assert await _names(db) == []  # not committed: rolled back with the session
    async with db.get_db_session() as session:
        await session.execute(text(f"DROP TABLE {TABLE}_ddl"))
        session.add(item(id=2, name="committed"))
        await session.commit()
    assert await _names(db) == ["committed"]
