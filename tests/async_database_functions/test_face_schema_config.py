"""The devsetgo-lib face's ``base_schema`` mixins and ``DBConfig``, on every backend."""

from __future__ import annotations

import os
from datetime import datetime

from sqlalchemy import Column, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import sessionmaker

from dsg_lib import AsyncDatabase
from dsg_lib.async_database_functions import base_schema, database_config
from dsg_lib.async_database_functions.database_operations import DatabaseOperations

RUN = os.getpid()
MIXIN = {
    "sqlite_memory": base_schema.SchemaBaseSQLite,
    "sqlite_file": base_schema.SchemaBaseSQLite,
    "postgresql": base_schema.SchemaBasePostgres,
    "mariadb": base_schema.SchemaBaseMySQL,
}


async def test_mixins_stamp_rows_readable_after_the_session(db: AsyncDatabase, backend: str) -> None:
    model = type(
        "Stamped",
        (MIXIN[backend], db.Base),
        {"__tablename__": f"face_stamped_{RUN}", "name": Column(String(50))},
    )
    await db.create_tables()
    ops = DatabaseOperations(db)
    row = await ops.create_one(model(name="first"))
    assert len(row.pkid) == 36
    assert isinstance(row.date_created, datetime) and isinstance(row.date_updated, datetime)
    updated = await ops.update_one(model, row.pkid, {"name": "second"})
    assert updated.name == "second" and updated.date_updated >= row.date_created
    assert await ops.read_query(select(model.name)) == ["second"]


def test_mixin_columns_match_devsetgo_lib() -> None:
    created = base_schema.SchemaBasePostgres.date_created
    assert str(created.server_default.arg) == "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')"
    assert created.comment == base_schema.date_created_comment and created.index is True
    assert str(base_schema.SchemaBaseMySQL.date_updated.onupdate.arg) == "UTC_TIMESTAMP()"
    assert base_schema.SchemaBaseMSSQL.pkid.comment == base_schema.uuid_comment
    assert base_schema.SchemaBasePostgres.pkid is not base_schema.SchemaBaseMySQL.pkid
    assert base_schema.SchemaBaseSQLite.date_created.default.arg.__wrapped__ is base_schema.get_utc_now


async def test_config_session_factory_is_built_once() -> None:
    cfg = database_config.DBConfig({"database_uri": "sqlite+aiosqlite:///:memory:"})
    factory = cfg._session_factory
    assert isinstance(factory, sessionmaker)
    async with cfg.get_db_session() as first:
        assert isinstance(first, AsyncSession)
    async with cfg.get_db_session() as second:
        assert second is not first
    assert cfg._session_factory is factory
    await cfg.dispose()
