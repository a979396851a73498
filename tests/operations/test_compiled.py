"""Plain work outside a transaction runs as a cached plan (``dsg_lib.backends._compiled``): one driver call
on SQLite and PostgreSQL, one Core statement on MariaDB. The results are the same as through
the ORM, objects behave like session-loaded detached ones, a cancelled write never lands, and
anything that would notice the difference (cursor hooks, load events, options) gets the
SQLAlchemy path. Every backend.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import enum
import os
import uuid
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Uuid,
    event,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, selectinload
from sqlalchemy.orm.exc import DetachedInstanceError

from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig, SchemaBaseSQLite, SoftDeleteMixin
from tests.helpers import BACKENDS, captured_sql

PREFIX = f"fst_{os.getpid()}_"


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def models(db: AsyncDatabase) -> tuple[Any, Any, Any]:
    class Thing(db.Base):
        __tablename__ = PREFIX + "thing"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        name: Mapped[str] = mapped_column(String(40))
        when: Mapped[dt.datetime] = mapped_column(DateTime)
        flag: Mapped[bool] = mapped_column(Boolean)
        color: Mapped[Color] = mapped_column(Enum(Color))
        amount: Mapped[decimal.Decimal] = mapped_column(Numeric(10, 2))
        data: Mapped[Any] = mapped_column(JSON)
        parts: Mapped[list[Part]] = relationship(back_populates="thing")

    class Part(db.Base):
        __tablename__ = PREFIX + "part"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        thing_id: Mapped[int] = mapped_column(ForeignKey(PREFIX + "thing.id"))
        thing: Mapped[Thing] = relationship(back_populates="parts")

    class Soft(db.Base, SoftDeleteMixin):
        __tablename__ = PREFIX + "soft"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        name: Mapped[str] = mapped_column(String(40))

    return Thing, Part, Soft


WHEN = dt.datetime(2024, 5, 6, 7, 8, 9)  # MariaDB DATETIME keeps no microseconds


async def seeded(db: AsyncDatabase) -> tuple[DatabaseOperations, Any, Any, Any]:
    Thing, Part, Soft = models(db)
    await db.create_tables()
    ops = DatabaseOperations(db)
    for i in (1, 2):
        await ops.create_one(
            Thing(
                id=i,
                name=f"t{i}",
                when=WHEN,
                flag=i == 1,
                color=Color.RED if i == 1 else Color.BLUE,
                amount=decimal.Decimal("12.50"),
                data={"k": [i, None]},
            )
        )
    await ops.insert_many(Soft, [{"id": 1, "name": "kept"}, {"id": 2, "name": "gone"}])
    await ops.delete_where(Soft, id=2)
    return ops, Thing, Part, Soft


def columns(obj: Any) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in ("id", "name", "when", "flag", "color", "amount", "data")}


async def test_results_match_the_sqlalchemy_path(db: AsyncDatabase) -> None:
    ops, Thing, _, Soft = await seeded(db)
    fast = await ops.get(Thing, 1)
    assert fast is not None
    # a positional where clause always takes the SQLAlchemy path
    slow = (await ops.find(Thing, true(), id=1))[0]
    assert columns(fast) == columns(slow)
    assert fast.when == WHEN and fast.flag is True and fast.color is Color.RED
    assert fast.amount == decimal.Decimal("12.50") and fast.data == {"k": [1, None]}
    assert [columns(o) for o in await ops.find(Thing, flag=False)] == [
        columns(o) for o in await ops.find(Thing, true(), flag=False)
    ]
    assert await ops.find_mappings(Thing, id=2) == await ops.find_mappings(Thing, true(), id=2)
    assert await ops.count(Thing, color=Color.BLUE) == await ops.count(Thing, true(), color=Color.BLUE) == 1
    assert await ops.exists(Thing, when=WHEN) is True
    assert await ops.exists(Thing, name="nope") is False
    # soft delete still applies
    assert await ops.get(Soft, 2) is None
    assert (await ops.get(Soft, 2, include_deleted=True)) is not None
    assert [s.name for s in await ops.find(Soft)] == ["kept"]
    assert await ops.count(Soft) == 1 and await ops.count(Soft, include_deleted=True) == 2
    assert await ops.get(Thing, 99) is None


@pytest.mark.compiled_only
async def test_a_query_budget_counts_every_statement_and_leaves_the_compiled_path_on(
    db: AsyncDatabase, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside ``query_budget`` every statement is counted (it runs through SQLAlchemy's events);
    after it, reads are compiled again (the budget's listener on every engine is dsg_lib's own)."""
    from dsg_lib.backends import _compiled

    ops, Thing, _, _ = await seeded(db)
    calls: list[str] = []
    original = _compiled.fetch

    async def counting(conn: Any, compiled_stmt: Any, params: Any) -> Any:
        calls.append(compiled_stmt.sql.split()[0])
        return await original(conn, compiled_stmt, params)

    monkeypatch.setattr(_compiled, "fetch", counting)
    async with db.query_budget(max_queries=5) as budget:
        await ops.get(Thing, 1)
        await ops.count(Thing)
    assert budget.count == 2 and calls == []
    await ops.get(Thing, 1)
    await ops.count(Thing)
    assert calls == ["SELECT", "SELECT"]


@pytest.mark.compiled_only
async def test_reads_outside_transactions_take_one_driver_call(
    db: AsyncDatabase, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dsg_lib.backends import _compiled

    ops, Thing, _, _ = await seeded(db)
    calls: list[str] = []
    original = _compiled.fetch

    async def counting(conn: Any, plan: Any, params: Any) -> Any:
        calls.append(plan.sql.split()[0])
        return await original(conn, plan, params)

    monkeypatch.setattr(_compiled, "fetch", counting)
    await ops.get(Thing, 1)
    await ops.find(Thing, name="t1")
    await ops.find_mappings(Thing, id=1)
    await ops.count(Thing)
    await ops.exists(Thing, id=1)
    expected = 5
    assert len(calls) == expected
    calls.clear()
    async with db.transaction():  # joined work always runs through the session
        await ops.get(Thing, 1)
        await ops.count(Thing)
    await ops.find(Thing, order_by="name")  # only plain field=value reads take the short path
    await ops.get(Thing, 1, options=[selectinload(Thing.parts)])
    assert calls == []


async def test_objects_are_detached_and_update_when_added_back(db: AsyncDatabase) -> None:
    ops, Thing, _, _ = await seeded(db)
    thing = await ops.get(Thing, 1)
    with pytest.raises(DetachedInstanceError):
        _ = thing.parts  # like a session-loaded object after the session closed
    thing.name = "renamed"
    async with db.get_db_session() as session:
        session.add(thing)
        await session.commit()
    assert await ops.count(Thing) == 2  # an UPDATE, not a second INSERT
    assert (await ops.get(Thing, 1)).name == "renamed"


@pytest.mark.parametrize("collector_on", [True, False])
async def test_reading_objects_leaves_the_garbage_collector_as_the_application_set_it(
    db: AsyncDatabase, collector_on: bool
) -> None:
    """Building objects leaves the collector as the application set it (dsg_lib never pauses it:
    another thread may switch it meanwhile), and the objects leave nothing for it once dropped."""
    import gc
    import weakref

    ops, Thing, _, _ = await seeded(db)
    await ops.insert_many(Thing, [dict(thing_row(i)) for i in range(3, 503)])
    (gc.enable if collector_on else gc.disable)()
    try:
        things = await ops.find(Thing)
        assert gc.isenabled() is collector_on
        assert len(things) == 502 and things[0].name == "t1"
        refs = [weakref.ref(t) for t in things]
        del things
        assert all(r() is None for r in refs)  # freed by reference counting alone
    finally:
        gc.enable()


def thing_row(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "name": f"t{i}",
        "when": WHEN,
        "flag": False,
        "color": Color.BLUE,
        "amount": decimal.Decimal("1.00"),
        "data": [i],
    }


async def test_hooks_and_load_events_see_every_read(db: AsyncDatabase) -> None:
    ops, Thing, _, _ = await seeded(db)
    with captured_sql(db) as sql:
        await ops.get(Thing, 1)
        await ops.count(Thing, name="t1")
    assert len(sql) == 2
    loaded: list[int] = []

    def on_load(target: Any, context: Any) -> None:
        loaded.append(target.id)

    event.listen(Thing, "load", on_load)
    try:
        await ops.get(Thing, 2)
        await ops.find(Thing, name="t1")
    finally:
        event.remove(Thing, "load", on_load)
    assert loaded == [2, 1]


async def test_inside_a_transaction_reads_see_uncommitted_rows(db: AsyncDatabase) -> None:
    ops, Thing, _, _ = await seeded(db)
    async with db.transaction():
        await ops.update_where(Thing, {"name": "changed"}, id=1)
        assert (await ops.get(Thing, 1)).name == "changed"
        assert await ops.count(Thing, name="changed") == 1
        assert await ops.find_mappings(Thing, name="changed") != []


async def test_bad_filter_values_are_refused_before_sql(db: AsyncDatabase) -> None:
    from dsg_lib import InvalidInputError

    ops, Thing, _, _ = await seeded(db)
    with pytest.raises(InvalidInputError):
        await ops.count(Thing, id="one")
    with pytest.raises(InvalidInputError):
        await ops.find_mappings(Thing, nope=1)
    with pytest.raises(InvalidInputError):
        await ops.get(Thing, "one")


async def test_slow_query_log_still_sees_fast_reads(tmp_path: Any, log_messages: list[str]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'slow.db'}"
    db = AsyncDatabase(DBConfig({"database_uri": url, "slow_query_ms": 0}))
    try:
        ops, Thing, _, _ = await seeded(db)
        log_messages.clear()
        await ops.get(Thing, 1)
        assert any("slow query" in m for m in log_messages)
    finally:
        await db.drop_tables()
        await db.disconnect()


@pytest.mark.compiled_only
async def test_create_one_gives_a_detached_object_with_generated_values(
    db: AsyncDatabase, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dsg_lib import ConstraintViolationError
    from dsg_lib.backends import _compiled

    class Stamped(SchemaBaseSQLite, db.Base):
        __tablename__ = PREFIX + "stamped"
        name: Mapped[str] = mapped_column(String(40))
        note: Mapped[str | None] = mapped_column(String(40), nullable=True, default="n/a")

    await db.create_tables()
    ops = DatabaseOperations(db)
    written: list[str] = []
    original = _compiled.run_written

    async def counting(conn: Any, plan: Any, params: Any, arguments: Any) -> Any:
        written.append(plan.sql.split()[0])
        return await original(conn, plan, params, arguments)

    monkeypatch.setattr(_compiled, "run_written", counting)
    created = await ops.create_one(Stamped(name="a"))
    assert written == ["INSERT"]
    assert created.pkid and created.note == "n/a" and created.date_created is not None
    assert created.date_created.tzinfo is not None  # processed like a loaded value
    loaded = await ops.get(Stamped, created.pkid)
    assert (loaded.name, loaded.note, loaded.date_created) == ("a", "n/a", created.date_created)
    created.name = "b"
    async with db.get_db_session() as session:
        session.add(created)  # an UPDATE of the row, not a second INSERT
        await session.commit()
    assert await ops.count(Stamped) == 1
    assert (await ops.get(Stamped, created.pkid)).name == "b"
    with pytest.raises(ConstraintViolationError):
        await ops.create_one(Stamped(pkid=created.pkid, name="dup"))
    explicit_none = await ops.create_one(Stamped(name="c", note=None))  # the ORM decides about None
    assert explicit_none.note == "n/a"  # None means "use the default", as in a flush
    assert await ops.count(Stamped) == 2


async def test_create_one_with_related_objects_uses_the_orm(db: AsyncDatabase) -> None:
    ops, Thing, Part, _ = await seeded(db)
    thing = Thing(id=3, name="t3", when=WHEN, flag=True, color=Color.RED, amount=decimal.Decimal(1), data=[])
    thing.parts = [Part(id=1)]
    await ops.create_one(thing)
    assert await ops.count(Part, thing_id=3) == 1


@pytest.mark.compiled_only
async def test_point_update_and_delete_count_rows_like_sqlalchemy(
    db: AsyncDatabase, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dsg_lib.backends import _compiled

    ops, Thing, _, Soft = await seeded(db)
    written: list[str] = []
    original = _compiled.run_written

    async def counting(conn: Any, plan: Any, params: Any, arguments: Any) -> Any:
        written.append(plan.sql.split()[0])
        return await original(conn, plan, params, arguments)

    monkeypatch.setattr(_compiled, "run_written", counting)
    assert await ops.update_where(Thing, {"name": "new", "when": WHEN}, id=1) == 1
    assert await ops.update_where(Thing, {"name": "none"}, id=99) == 0
    assert await ops.delete_where(Thing, id=2) == 1
    assert await ops.delete_where(Thing, id=2) == 0
    assert written == ["UPDATE", "UPDATE", "DELETE", "DELETE"]
    assert (await ops.get(Thing, 1)).name == "new" and await ops.count(Thing) == 1
    written.clear()
    # no primary key, an expression, a soft delete: the SQLAlchemy path
    assert await ops.update_where(Thing, {"flag": False}, name="new") == 1
    assert await ops.update_where(Thing, {"name": Thing.name + "!"}, id=1) == 1
    assert await ops.delete_where(Soft, id=1) == 1
    assert await ops.count(Soft, include_deleted=True) == 2
    assert written == []
    # a soft-deleted row is not updated unless asked
    assert await ops.update_where(Soft, {"name": "x"}, id=2) == 0
    assert await ops.update_where(Soft, {"name": "x"}, id=2, include_deleted=True) == 1


async def test_paginate_pages_match_the_sqlalchemy_path(db: AsyncDatabase) -> None:
    ops, Thing, _, Soft = await seeded(db)
    for i in range(3, 8):
        await ops.create_one(
            Thing(id=i, name="t", when=WHEN, flag=True, color=Color.RED, amount=decimal.Decimal(1), data=[])
        )
    for page in (1, 2, 3, 4):
        fast = await ops.paginate(Thing, page, 3)
        slow = await ops.paginate(Thing, page, 3, options=[selectinload(Thing.parts)])
        assert (fast.total, fast.pages, [t.id for t in fast.items]) == (
            slow.total,
            slow.pages,
            [t.id for t in slow.items],
        )
        assert [columns(t) for t in fast.items] == [columns(t) for t in slow.items]
    filtered = await ops.paginate(Thing, 1, 10, name="t", with_total=False)
    assert ([t.id for t in filtered.items], filtered.total) == ([3, 4, 5, 6, 7], None)
    assert (await ops.paginate(Soft, 1, 10)).total == 1  # soft-deleted rows stay out


async def test_column_types_come_back_as_through_sqlalchemy(db: AsyncDatabase) -> None:
    """Processors that depend on the server's column type (asyncpg numerics) are applied too."""

    class Measure(db.Base):
        __tablename__ = PREFIX + "measure"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        ratio: Mapped[float] = mapped_column(Float)
        exact: Mapped[float] = mapped_column(Numeric(10, 3, asdecimal=False))
        money: Mapped[decimal.Decimal] = mapped_column(Numeric(10, 2))
        uid: Mapped[uuid.UUID] = mapped_column(Uuid)
        uid_text: Mapped[str] = mapped_column(Uuid(as_uuid=False))

    await db.create_tables()
    ops = DatabaseOperations(db)
    uid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    values = {"ratio": 0.25, "exact": 1.5, "money": decimal.Decimal("2.50"), "uid": uid, "uid_text": str(uid)}
    created = await ops.create_one(Measure(id=1, **values))
    fast = await ops.get(Measure, 1)
    slow = (await ops.find(Measure, true(), id=1))[0]  # a positional clause: the SQLAlchemy path
    fast_rows = await ops.find_mappings(Measure, id=1)
    for name, expected in values.items():
        found = [getattr(fast, name), getattr(slow, name), fast_rows[0][name]]
        assert found == [expected] * 3 and getattr(created, name) == expected, name
        assert {type(v) for v in found} == {type(getattr(slow, name))}, name  # the driver's own class
        assert isinstance(found[0], type(expected)), name  # asyncpg's UUID subclasses uuid.UUID
        assert type(getattr(created, name)) is type(expected), name  # as given, like after a flush


@pytest.mark.parametrize(
    "backend",
    # an in-memory database has one connection: nothing else could hold the lock
    [b for b in BACKENDS if b != "sqlite_memory"],
    indirect=True,
)
async def test_a_cancelled_point_write_changes_nothing_and_the_pool_recovers(
    backend: str, db_url: str
) -> None:
    """A single-row write blocked by another transaction's lock and cancelled never lands later
    (asyncpg's cancel request, SQLite's interrupt, MariaDB's KILL QUERY come first), and the
    one pooled connection it ran on serves the next operations."""
    db = AsyncDatabase(DBConfig({"database_uri": db_url, "pool_size": 1, "max_overflow": 0}))

    class Locked(db.Base):
        __tablename__ = PREFIX + "locked"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        name: Mapped[str] = mapped_column(String(40))

    await db.create_tables()
    ops = DatabaseOperations(db)
    holder = AsyncDatabase(DBConfig({"database_uri": db_url}))
    holder_ops = DatabaseOperations(holder)
    try:
        await ops.insert_many(Locked, [{"id": 1, "name": "before"}, {"id": 2, "name": "two"}])
        with pytest.raises(RuntimeError):
            async with holder.transaction():
                await holder_ops.update_where(Locked, {"name": "held"}, id=1)  # locks the row
                with pytest.raises(asyncio.TimeoutError):  # not yet the builtin one on Python 3.10
                    await asyncio.wait_for(ops.update_where(Locked, {"name": "after"}, id=1), 0.5)
                raise RuntimeError("roll back: the lock goes, a write still waiting would land now")
        await asyncio.sleep(0.5)
        assert (await ops.get(Locked, 1)).name == "before"
        assert await ops.update_where(Locked, {"name": "2"}, id=2) == 1
        assert [r["name"] for r in await ops.find_mappings(Locked, id=2)] == ["2"]
        assert db.pool_status()["checked_out"] == 0
    finally:
        await holder.disconnect()
        await db.drop_tables()
        await db.disconnect()


@pytest.mark.parametrize("driver", ["aiomysql", "asyncmy"])
@pytest.mark.parametrize("isolation_level", [None, "READ COMMITTED"])
async def test_mysql_short_path_writes_land_and_transactions_stay_atomic(
    mysql_url: str, driver: str, isolation_level: str | None
) -> None:
    """MariaDB connections commit lone statements by themselves and begin transactions
    explicitly; an ``isolation_level`` switches the driver's autocommit off, and the short
    path then commits its own write. Either way writes land, seen from another connection,
    and a failed ``transaction()`` leaves nothing behind."""
    url = mysql_url.replace("+aiomysql", f"+{driver}")
    config: dict[str, Any] = {"database_uri": url, "pool_size": 1, "max_overflow": 0}
    if isolation_level:
        config["isolation_level"] = isolation_level
    db = AsyncDatabase(DBConfig(config))

    class Row(db.Base):
        __tablename__ = PREFIX + "row"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        name: Mapped[str] = mapped_column(String(40))
        flag: Mapped[bool] = mapped_column(Boolean, default=False)

    await db.create_tables()
    ops = DatabaseOperations(db)
    other = AsyncDatabase(DBConfig({"database_uri": mysql_url}))
    other_ops = DatabaseOperations(other)
    try:
        await ops.create_one(Row(id=1, name="a"))
        await ops.create_one(Row(id=2, name="b", flag=True))
        assert await ops.update_where(Row, {"name": "a2"}, id=1) == 1
        assert await ops.update_where(Row, {"name": "x"}, id=9) == 0
        assert await ops.delete_where(Row, id=2) == 1
        assert (await ops.get(Row, 1)).flag is False
        assert await ops.find_mappings(Row, id=1) == [{"id": 1, "name": "a2", "flag": False}]
        assert await other_ops.find_mappings(Row, true()) == [{"id": 1, "name": "a2", "flag": False}]
        with pytest.raises(RuntimeError):
            async with db.transaction():
                await ops.create_one(Row(id=3, name="c"))
                await ops.update_where(Row, {"name": "gone"}, id=1)
                raise RuntimeError("roll back")
        assert await other_ops.count(Row) == 1 and (await other_ops.get(Row, 1)).name == "a2"
        assert db.pool_status()["checked_out"] == 0
    finally:
        await other.disconnect()
        await db.drop_tables()
        await db.disconnect()
