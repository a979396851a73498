"""Tests for ``dsg_lib.schema``: UUID ``pkid`` and UTC timestamps."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import String, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dsg_lib import AsyncDatabase, DBConfig
from dsg_lib.async_database_functions import base_schema
from dsg_lib.schema import SchemaBaseMySQL, SchemaBasePostgres, SchemaBaseSQLite, UTCDateTime, utcnow

# Suffix for table names: concurrent test runs on the same servers do not collide.
RUN = os.getpid()

MIXINS = {"sqlite": SchemaBaseSQLite, "postgres": SchemaBasePostgres, "mysql": SchemaBaseMySQL}


def make_model(db: AsyncDatabase, mixin: type, table: str) -> Any:
    return type(
        f"Schema_{table}",
        (mixin, db.Base),
        {
            "__tablename__": table,
            "__annotations__": {"name": Mapped[str]},
            "name": mapped_column(String(50)),
        },
    )


def assert_utc_now(value: Any) -> None:
    assert isinstance(value, datetime), repr(value)
    assert value.tzinfo is not None, "timestamps must be timezone-aware"
    assert value.utcoffset() == timedelta(0), value
    assert abs(datetime.now(timezone.utc) - value) < timedelta(minutes=5), value


def assert_uuid_string(value: Any) -> None:
    assert isinstance(value, str)
    assert len(value) == 36
    assert str(uuid.UUID(value)) == value


async def exercise(db: AsyncDatabase, model: Any) -> None:
    await db.drop_tables()
    await db.create_tables()

    async with db.transaction() as session:
        first = model(name="first")
        second = model(name="second")
        session.add_all([first, second])
    # readable after the transaction and its session are closed (no lazy IO)
    for row in (first, second):
        assert_uuid_string(row.pkid)
        assert_utc_now(row.date_created)
        assert_utc_now(row.date_updated)
    assert first.pkid != second.pkid

    async with db.get_db_session() as session:
        loaded = (await session.execute(select(model).where(model.pkid == first.pkid))).scalar_one()
    assert loaded.name == "first"
    assert_uuid_string(loaded.pkid)
    assert_utc_now(loaded.date_created)
    assert_utc_now(loaded.date_updated)
    # the value read back is the value written (microseconds kept)
    assert abs(loaded.date_created - first.date_created) < timedelta(milliseconds=1)
    created_before = loaded.date_created
    updated_before = loaded.date_updated

    await asyncio.sleep(0.02)
    async with db.transaction() as session:
        row = (await session.execute(select(model).where(model.pkid == first.pkid))).scalar_one()
        row.name = "first, renamed"
    # the new date_updated is on the instance after the session closed
    assert_utc_now(row.date_updated)
    assert row.date_updated > updated_before

    async with db.get_db_session() as session:
        again = (await session.execute(select(model).where(model.pkid == first.pkid))).scalar_one()
        untouched = (await session.execute(select(model).where(model.pkid == second.pkid))).scalar_one()
    assert again.name == "first, renamed"
    assert again.date_updated > updated_before
    assert abs(again.date_created - created_before) < timedelta(milliseconds=1)
    assert abs(untouched.date_updated - second.date_updated) < timedelta(milliseconds=1)

    # a Core UPDATE through the table also refreshes date_updated
    await asyncio.sleep(0.02)
    async with db.transaction() as session:
        await session.execute(update(model).where(model.pkid == second.pkid).values(name="core"))
    async with db.get_db_session() as session:
        core = (await session.execute(select(model).where(model.pkid == second.pkid))).scalar_one()
    assert core.name == "core"
    assert core.date_updated > untouched.date_updated


async def test_schema_base_sqlite_on_every_backend(db: AsyncDatabase, backend: str) -> None:
    model = make_model(db, SchemaBaseSQLite, f"schema_sqlite_{backend}_{RUN}")
    await exercise(db, model)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_schema_base_postgres(db: AsyncDatabase, backend: str) -> None:
    model = make_model(db, SchemaBasePostgres, f"schema_pg_{backend}_{RUN}")
    await exercise(db, model)


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
async def test_schema_base_mysql(db: AsyncDatabase, backend: str) -> None:
    model = make_model(db, SchemaBaseMySQL, f"schema_my_{backend}_{RUN}")
    await exercise(db, model)


async def test_pkid_given_explicitly_is_kept(db: AsyncDatabase, backend: str) -> None:
    model = make_model(db, SchemaBaseSQLite, f"schema_pkid_{backend}_{RUN}")
    await db.drop_tables()
    await db.create_tables()
    chosen = str(uuid.uuid4())
    async with db.transaction() as session:
        session.add(model(pkid=chosen, name="mine"))
    async with db.get_db_session() as session:
        assert (await session.execute(select(model.pkid))).scalar_one() == chosen


async def test_naive_and_other_zone_datetimes_are_stored_as_utc(db: AsyncDatabase, backend: str) -> None:
    model = make_model(db, SchemaBaseSQLite, f"schema_tz_{backend}_{RUN}")
    await db.drop_tables()
    await db.create_tables()
    naive = datetime(2024, 1, 2, 3, 4, 5, 600000)
    plus_two = datetime(2024, 1, 2, 5, 4, 5, 600000, tzinfo=timezone(timedelta(hours=2)))
    async with db.transaction() as session:
        session.add(model(pkid="00000000-0000-4000-8000-000000000001", name="naive", date_created=naive))
        session.add(model(pkid="00000000-0000-4000-8000-000000000002", name="plus2", date_created=plus_two))
    async with db.get_db_session() as session:
        rows = (await session.execute(select(model).order_by(model.pkid))).scalars().all()
    expected = datetime(2024, 1, 2, 3, 4, 5, 600000, tzinfo=timezone.utc)
    assert [r.date_created for r in rows] == [expected, expected]
    assert all(r.date_created.utcoffset() == timedelta(0) for r in rows)


def test_mixins_work_with_any_declarative_base() -> None:
    class OwnBase(DeclarativeBase):
        pass

    for key, mixin in MIXINS.items():
        model = type(f"Own_{key}", (mixin, OwnBase), {"__tablename__": f"schema_own_{key}"})
        columns = model.__table__.columns
        assert {"pkid", "date_created", "date_updated"} <= set(columns.keys())
        assert columns["pkid"].primary_key
        assert isinstance(columns["date_created"].type, UTCDateTime)
        assert isinstance(columns["date_updated"].type, UTCDateTime)


def test_server_side_mixins_fetch_defaults_eagerly() -> None:
    assert SchemaBasePostgres.__mapper_args__["eager_defaults"] is True
    assert SchemaBaseMySQL.__mapper_args__["eager_defaults"] is True
    postgres_created = SchemaBasePostgres.__dict__["date_created"].column
    mysql_created = SchemaBaseMySQL.__dict__["date_created"].column
    sqlite_created = SchemaBaseSQLite.__dict__["date_created"].column
    assert postgres_created.server_default is not None
    assert mysql_created.server_default is not None
    assert "UTC_TIMESTAMP" in str(mysql_created.server_default.arg)
    assert sqlite_created.server_default is None and sqlite_created.default is not None


def test_utcnow_is_aware() -> None:
    now = utcnow()
    assert now.tzinfo is timezone.utc
    assert_utc_now(now)
    assert base_schema.utcnow is utcnow


async def test_separate_databases_with_mixins_do_not_clash(backend: str, db_url: str) -> None:
    first = AsyncDatabase(DBConfig({"database_uri": db_url}))
    second = AsyncDatabase(DBConfig({"database_uri": db_url}))
    a = make_model(first, SchemaBaseSQLite, f"schema_two_a_{backend}_{RUN}")
    b = make_model(second, SchemaBaseSQLite, f"schema_two_b_{backend}_{RUN}")
    assert a.__table__.name not in second.Base.metadata.tables
    assert b.__table__.name not in first.Base.metadata.tables
    await first.disconnect()
    await second.disconnect()
