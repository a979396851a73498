"""The seed systems' conveniences: add_models, clean, JSON hooks, wait-until-ready."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import JSON, inspect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig


async def _table_names(db: AsyncDatabase) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_add_models_creates_tables_once_and_clean_drops_everything(db: AsyncDatabase) -> None:
    class OtherBase(DeclarativeBase):
        pass

    class Plugin(OtherBase):
        __tablename__ = "conv_plugins"
        id: Mapped[int] = mapped_column(primary_key=True)

    class Local(db.Base):
        __tablename__ = "conv_local"
        id: Mapped[int] = mapped_column(primary_key=True)

    await db.clean()
    await db.add_models(Plugin)
    assert "conv_plugins" in await _table_names(db)
    await DatabaseOperations(db).insert_many(Plugin, [{"id": 1}])
    await db.add_models(Plugin)  # second time: nothing re-created, data kept
    assert await DatabaseOperations(db).count(Plugin) == 1

    await db.create_tables()
    assert {"conv_plugins", "conv_local"} <= await _table_names(db)
    await db.clean()
    assert not {"conv_plugins", "conv_local"} & await _table_names(db)


async def test_json_serializer_hook_is_used_for_json_columns(db_url: str) -> None:
    calls: list[Any] = []

    def serializer(value: Any) -> str:
        calls.append(value)
        return json.dumps(value, sort_keys=True)

    def deserializer(raw: str) -> Any:
        data = json.loads(raw)
        return {"decoded": data} if isinstance(data, dict) else data

    db = AsyncDatabase(
        DBConfig({"database_uri": db_url, "json_serializer": serializer, "json_deserializer": deserializer})
    )

    class Doc(db.Base):
        __tablename__ = "conv_docs"
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[dict[str, Any]] = mapped_column(JSON)

    await db.drop_tables()
    await db.create_tables()
    ops = DatabaseOperations(db)
    await ops.create_one(Doc(id=1, body={"b": 2, "a": 1}))
    assert calls == [{"b": 2, "a": 1}]
    assert (await ops.get(Doc, 1)).body == {"decoded": {"a": 1, "b": 2}}  # type: ignore[union-attr]
    await db.drop_tables()
    await db.disconnect()
