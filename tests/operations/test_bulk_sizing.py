"""Bulk statement sizing: bind parameters SQLAlchemy adds for defaults, and bytes per packet."""

from __future__ import annotations

import os
from typing import Any

import pytest
from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseOperations
from tests.helpers import captured_sql, count_rows

RUN = os.getpid()


def _stamp() -> str:
    return "generated"


@pytest.fixture
async def models(db: AsyncDatabase, backend: str) -> Any:
    class Defaulted(db.Base):
        """Two Python-side defaults: SQLAlchemy binds one parameter per row for each."""

        __tablename__ = f"size_defaulted_{RUN}"
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
        name: Mapped[str] = mapped_column(String(40))
        score: Mapped[int] = mapped_column(default=7)
        tag: Mapped[str] = mapped_column(String(20), default=_stamp)

    class Wide(db.Base):
        __tablename__ = f"size_wide_{RUN}"
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
        payload: Mapped[str] = mapped_column(Text)

    await db.drop_tables()
    await db.create_tables()
    return Defaulted, Wide


async def test_upsert_counts_parameters_python_defaults_add(db: AsyncDatabase, models: Any) -> None:
    defaulted, _ = models
    ops = DatabaseOperations(db)
    rows = [{"id": i, "name": f"n{i}"} for i in range(20_000)]
    assert await ops.upsert(defaulted, rows, conflict="id") == 20_000
    assert await count_rows(db, defaulted) == 20_000
    # the defaults were applied, and a second pass updates rather than duplicates
    assert await ops.upsert(defaulted, rows[:10], conflict="id") >= 10
    first = await ops.get(defaulted, 0)
    assert (first.score, first.tag) == (7, "generated")
    assert await count_rows(db, defaulted) == 20_000


async def test_upsert_of_large_rows_fits_the_packet(db: AsyncDatabase, models: Any) -> None:
    """12,000 rows of 2 KB: 24 MB, above MariaDB's default 16 MB max_allowed_packet."""
    _, wide = models
    ops = DatabaseOperations(db)
    rows = [{"id": i, "payload": f"{i:08d}" + "x" * 2040} for i in range(12_000)]
    with captured_sql(db) as sql:
        assert await ops.upsert(wide, rows, conflict="id") == 12_000
    assert await count_rows(db, wide) == 12_000
    if db.db_config.dialect in ("mysql", "mariadb"):  # 24 MB cannot be one 16 MB packet
        assert len([s for s in sql if "payload" in s]) >= 2
    # insert_many of the same rows works too (the driver batches executemany by size)
    await ops.delete_where(wide, all_rows=True)
    assert await ops.insert_many(wide, rows) == 12_000
    assert await count_rows(db, wide) == 12_000
