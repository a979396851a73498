"""Error shapes users meet first: NOT NULL kind, redaction, newcomer hints, short chains."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
from sqlalchemy import SmallInteger, String, Table, text
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import (
    AsyncDatabase,
    ConstraintViolationError,
    DatabaseError,
    DatabaseOperations,
    DBConfig,
    InvalidInputError,
    QueryError,
)

RUN = os.getpid()


def make_item(db: AsyncDatabase, backend: str) -> Any:
    return type(
        f"ShapeItem_{backend}_{RUN}",
        (db.Base,),
        {
            "__tablename__": f"shape_items_{RUN}",
            "__annotations__": {"id": Mapped[int], "name": Mapped[str], "small": Mapped[int]},
            "id": mapped_column(primary_key=True),
            "name": mapped_column(String(40), nullable=False, unique=True),
            "small": mapped_column(SmallInteger, default=0),
        },
    )


@pytest.fixture
async def item(db: AsyncDatabase, backend: str) -> Any:
    model = make_item(db, backend)
    await db.drop_tables()
    await db.create_tables()
    return model


def _chain_depth(exc: BaseException) -> int:
    """Links followed by a traceback printer: ``__cause__``, or ``__context__`` unless suppressed."""
    depth = 0
    seen: set[int] = set()
    item: BaseException | None = exc
    while item is not None and id(item) not in seen:
        seen.add(id(item))
        nxt = item.__cause__ or (None if item.__suppress_context__ else item.__context__)
        if nxt is None:
            break
        depth += 1
        item = nxt
    return depth


# --------------------------------------------------------------------------- #
# Item 17: NOT NULL is a ConstraintViolationError(kind="not_null") everywhere   #
# --------------------------------------------------------------------------- #


async def test_not_null_found_by_the_pre_checks(db: AsyncDatabase, item: Any) -> None:
    ops = DatabaseOperations(db)
    attempts = [
        ops.create_one(item(name=None)),
        ops.insert_many(item, [{"name": "a"}, {"name": None}]),
        ops.upsert(item, [{"name": None, "small": 1}], conflict="small"),
        ops.update_where(item, {"name": None}, id=1),
    ]
    for attempt in attempts:
        with pytest.raises(ConstraintViolationError) as info:
            await attempt
        assert info.value.kind == "not_null", info.value
        assert info.value.constraint == "name"
        assert "name" in str(info.value)
    assert await ops.count(item) == 0


async def test_not_null_found_by_the_database(db: AsyncDatabase, item: Any) -> None:
    ops = DatabaseOperations(db)
    await ops.insert_many(item, [{"name": "kept"}])
    attempts = [
        ops.insert_many(item, [{"name": "b"}, {"name": None}], validate=False),
        ops.upsert(item, [{"name": None, "id": 1}], conflict="id", validate=False),
        ops.update_where(item, {"name": None}, id=1, validate=False),
        ops.create_one(item()),  # name never set: the database refuses it
    ]
    for attempt in attempts:
        with pytest.raises(ConstraintViolationError) as info:
            await attempt
        assert info.value.kind == "not_null", info.value
    assert [i.name for i in await ops.find(item)] == ["kept"]


# --------------------------------------------------------------------------- #
# Item 15: redaction keeps column names, drops values (messages and logs)       #
# --------------------------------------------------------------------------- #


async def test_out_of_range_message_keeps_the_column_name(db: AsyncDatabase, item: Any, backend: str) -> None:
    if backend.startswith("sqlite"):
        pytest.skip(reason="SQLite integer columns have no range: nothing is refused")
    ops = DatabaseOperations(db)
    await ops.insert_many(item, [{"name": "a", "small": 30000}])
    with pytest.raises(InvalidInputError) as info:
        await ops.update_where(item, {"small": item.small + 12345}, id=1)
    message = str(info.value)
    assert "<redacted>''" not in message
    assert "42345" not in message  # the value that did not fit


async def test_postgres_out_of_range_value_is_redacted(postgres_url: str) -> None:
    db = AsyncDatabase(DBConfig({"database_uri": postgres_url}))
    try:
        with pytest.raises(InvalidInputError) as info:
            async with db.transaction() as session:
                await session.execute(text("SELECT CAST('98765432109' AS integer)"))
        assert "98765432109" not in str(info.value)
        assert "out of range" in str(info.value)
    finally:
        await db.disconnect()


def test_mysql_out_of_range_redaction_keeps_column() -> None:
    from dsg_lib.errors import redact_values

    message = redact_values("Out of range value for column 'small' at row 1")
    assert message == "Out of range value for column 'small' at row 1"
    assert "s3cret" not in redact_values("Incorrect integer value: 's3cret' for column `d`.`t`.`n` at row 1")
    assert "`n`" in redact_values("Incorrect integer value: 's3cret' for column `d`.`t`.`n` at row 1")


async def test_asyncmy_driver_log_carries_no_values(caplog: pytest.LogCaptureFixture, mysql_url: str) -> None:
    url = mysql_url.replace("mysql+aiomysql://", "mysql+asyncmy://")
    db = AsyncDatabase(DBConfig({"database_uri": url}))
    secret = "leaky-value-8812"
    try:
        with caplog.at_level(logging.DEBUG):
            async with db.transaction() as session:
                # a warning with the value in it: "Truncated incorrect DOUBLE value: '...'"
                await session.execute(text(f"SELECT 1 + '{secret}'"))
        driver_records = [r for r in caplog.records if r.name.startswith("asyncmy")]
        assert driver_records, "asyncmy logged no warning: the test would prove nothing"
        for record in driver_records:
            assert secret not in record.getMessage()
    finally:
        await db.disconnect()


# --------------------------------------------------------------------------- #
# Item 18: newcomer errors                                                      #
# --------------------------------------------------------------------------- #


async def test_missing_table_error_has_a_hint(db: AsyncDatabase, backend: str) -> None:
    model = make_item(db, backend)  # declared, but create_tables() never called
    ops = DatabaseOperations(db)
    with pytest.raises(QueryError) as info:
        await ops.find(model)
    message = str(info.value)
    assert "create_tables()" in message
    assert "db.Base" in message
    assert _chain_depth(info.value) <= 2, _chain_depth(info.value)


async def test_typical_error_chain_is_short(db: AsyncDatabase, item: Any) -> None:
    ops = DatabaseOperations(db)
    await ops.insert_many(item, [{"name": "dup"}])
    with pytest.raises(ConstraintViolationError) as info:
        await ops.create_one(item(name="dup"))
    err = info.value
    assert _chain_depth(err) <= 2, _chain_depth(err)
    assert err.__suppress_context__


async def test_non_model_arguments_are_typed_errors(db: AsyncDatabase, item: Any) -> None:
    ops = DatabaseOperations(db)
    table: Table = item.__table__
    attempts = [
        ops.find(dict),
        ops.find(table),
        ops.find(item(name="x")),
        ops.count(dict),
        ops.get(table, 1),
        ops.insert_many(dict, [{"a": 1}]),
        ops.upsert(item(name="x"), [{"name": "a"}], conflict="name"),
        ops.update_where(table, {"name": "a"}, id=1),
        ops.create_one({"name": "x"}),
        ops.paginate(dict),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidInputError) as info:
            await attempt
        message = str(info.value)
        assert "model" in message, message
        assert isinstance(info.value, DatabaseError)
        assert not type(info.value.driver_error).__module__.startswith("sqlalchemy"), repr(
            info.value.driver_error
        )
