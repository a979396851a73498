"""Values too big for their column or for one packet are refused before sending, naming the column."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy import LargeBinary, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseOperations, InvalidInputError
from dsg_lib.fastapi import register_exception_handlers
from tests.helpers import captured_sql

RUN = os.getpid()
MB = 1024 * 1024


@pytest.fixture
async def doc(db: AsyncDatabase) -> Any:
    class Doc(db.Base):
        __tablename__ = f"size_docs_{RUN}"
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str | None] = mapped_column(Text)  # MySQL/MariaDB TEXT: 65,535 bytes
        long_body: Mapped[str | None] = mapped_column(
            Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
        )
        blob: Mapped[bytes | None] = mapped_column(LargeBinary)  # MySQL/MariaDB BLOB: 65,535 bytes

    await db.drop_tables()
    await db.create_tables()
    return Doc


def _is_mysql(db: AsyncDatabase) -> bool:
    return db.db_config.dialect in ("mysql", "mariadb")


def _sent(sql: list[str]) -> list[str]:
    return [s for s in sql if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]


@pytest.mark.parametrize("size_mb", [10, 20])
async def test_text_bigger_than_the_column(db: AsyncDatabase, doc: Any, size_mb: int) -> None:
    ops = DatabaseOperations(db)
    value = "secret-" + "y" * (size_mb * MB)
    if not _is_mysql(db):  # PostgreSQL and SQLite text holds it: stored unchanged
        created = await ops.create_one(doc(body=value))
        assert len((await ops.get(doc, created.id)).body) == len(value)
        return
    for attempt in (
        lambda: ops.create_one(doc(body=value)),
        lambda: ops.create_many([doc(body="ok"), doc(body="fine"), doc(body=value)]),  # one batched INSERT
        lambda: ops.insert_many(doc, [{"body": value}]),
        lambda: ops.insert_many(doc, [{"body": value}], validate=False),
    ):
        with captured_sql(db) as sql, pytest.raises(InvalidInputError) as info:
            await attempt()
        message = str(info.value)
        assert "'body'" in message and "65535" in message, message
        assert "secret-" not in message and len(message) < 400
        assert _sent(sql) == []
    assert await ops.count(doc) == 0


async def test_value_bigger_than_the_packet(db: AsyncDatabase, doc: Any) -> None:
    ops = DatabaseOperations(db)
    value = "z" * (20 * MB)
    if not _is_mysql(db):
        created = await ops.create_one(doc(long_body=value))
        assert len((await ops.get(doc, created.id)).long_body) == len(value)
        return
    small = await ops.create_one(doc(long_body="q" * MB))  # under the packet: fine
    with captured_sql(db) as sql, pytest.raises(InvalidInputError) as info:
        await ops.update_where(doc, {"long_body": value}, id=small.id)
    assert "'long_body'" in str(info.value) and "max_allowed_packet" in str(info.value)
    assert _sent(sql) == []
    assert len((await ops.get(doc, small.id)).long_body) == MB


async def test_binary_bigger_than_the_column(db: AsyncDatabase, doc: Any) -> None:
    ops = DatabaseOperations(db)
    value = b"\x01" * (70_000)
    if not _is_mysql(db):
        created = await ops.create_one(doc(blob=value))
        assert (await ops.get(doc, created.id)).blob == value
        return
    with captured_sql(db) as sql, pytest.raises(InvalidInputError) as info:
        await ops.insert_many(doc, [{"blob": value}])
    assert "'blob'" in str(info.value) and "65535" in str(info.value)
    assert _sent(sql) == []


async def test_http_answer_is_422_without_retry_after(db: AsyncDatabase, doc: Any) -> None:
    ops = DatabaseOperations(db)
    app = FastAPI()
    register_exception_handlers(app)

    @app.post("/docs")
    async def create() -> dict[str, int]:
        return {"id": (await ops.create_one(doc(long_body="w" * (20 * MB)))).id}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/docs")
    if _is_mysql(db):
        assert response.status_code == 422, response.text
        assert "retry-after" not in response.headers
        assert "long_body" in response.json()["details"]
    else:
        assert response.status_code == 200


class _IntegerAsText(sa.TypeDecorator[int]):
    """An Integer whose bind processing could send anything: never treated as small."""

    impl = sa.Integer
    cache_ok = True


def _types(*named: tuple[str, Any]) -> list[Any]:
    return [pytest.param(type_, id=name) for name, type_ in named]


SMALL_TYPES = _types(
    ("Integer", sa.Integer()),
    ("BigInteger", sa.BigInteger()),
    ("Float", sa.Float()),
    ("Double", sa.Double()),
    ("Numeric", sa.Numeric(10, 2)),
    ("Boolean", sa.Boolean()),
    ("DateTime", sa.DateTime()),
    ("Date", sa.Date()),
    ("Time", sa.Time()),
    ("String64", sa.String(64)),
    ("String16383", sa.String(16383)),
    ("Enum", sa.Enum("a", "b")),
)
LARGE_TYPES = _types(
    ("String", sa.String()),
    ("Text", sa.Text()),
    ("String16384", sa.String(16384)),
    ("LargeBinary", sa.LargeBinary()),
    ("JSON", sa.JSON()),
    ("Uuid", sa.Uuid()),
    ("IntegerDecorator", _IntegerAsText()),
)
LARGE_VALUES: list[Any] = ["x" * 16_384, "€" * 20_000, b"\x01" * 256, {"k": "x" * 70_000}, ["y" * 70_000]]


@pytest.mark.parametrize("type_", SMALL_TYPES + LARGE_TYPES)
def test_the_size_check_is_skipped_only_where_a_checked_value_cannot_be_large(type_: Any) -> None:
    """insert_many skips the MySQL/MariaDB size check for checked rows of such columns:
    a value its column check accepts must then never be one the size check looks at."""
    from dsg_lib.backends._size_guard import has_large_value, holds_small_values
    from dsg_lib.filters._value_checks import value_checker

    small = any(type_ is p.values[0] for p in SMALL_TYPES)
    assert holds_small_values(type_) is small
    if not small:
        return
    check = value_checker(sa.Column("c", type_), "c", "mariadb")
    dialect = mysql.dialect()
    processor = type_.dialect_impl(dialect).bind_processor(dialect)
    for value in LARGE_VALUES:
        try:
            checked = check(value)
        except InvalidInputError:
            continue
        sent = processor(checked) if processor else checked
        assert not has_large_value([sent]), type(value)
