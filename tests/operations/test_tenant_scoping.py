"""Tenant scoping (issue 27 item 5): ``db.scoped(...)``, ``require_scope``, ``scope_dependency``.

The isolation suite: two tenants' rows, every operation, on every backend and both executor
strategies (see tests/conftest.py). Reads see only the scope's rows, writes cannot reach the
other tenant's, inserts get the scope's value, a row naming another tenant is refused with
nothing changed, ``require_scope`` fails closed, scopes nest and are per task.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import aclosing
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import ForeignKey, Integer, String, select, text, update
from sqlalchemy.ext.asyncio import AsyncAttrs, AsyncSession
from sqlalchemy.orm import Mapped, joinedload, mapped_column, relationship, selectinload

from dsg_lib import (
    AsyncDatabase,
    ConfigurationError,
    DBConfig,
    InvalidInputError,
    Q,
    RecordNotFoundError,
    ScopeRequiredError,
    SessionMissingError,
    SoftDeleteMixin,
)
from dsg_lib.fastapi import (
    DBSessionMiddleware,
    register_exception_handlers,
    scope_dependency,
    session_dependency,
    status_for,
)
from dsg_lib.session import tenancy
from tests.helpers import fresh_env

# Scopes open only on SQLAlchemy 2.1+ (see tests/session/test_tenancy_versions.py for 2.0's refusal)
pytestmark = pytest.mark.skipif(
    not tenancy.SUPPORTED,
    reason="SQLAlchemy 2.0: db.scoped() refuses (session/test_tenancy_versions.py)",
)

PREFIX = f"tn_{os.getpid()}_"
ONE = [(1, 1, "a1"), (2, 1, "b1"), (3, 1, "c1")]  # (id, tenant_id, code)
TWO = [(4, 2, "a2"), (5, 2, "b2")]


def make_models(db: AsyncDatabase) -> SimpleNamespace:
    class Item(AsyncAttrs, db.Base):
        __tablename__ = PREFIX + "item"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
        tenant_id: Mapped[int] = mapped_column(Integer, nullable=False)
        code: Mapped[str] = mapped_column(String(20), unique=True)  # unique across tenants
        name: Mapped[str | None] = mapped_column(String(40), nullable=True)
        notes: Mapped[list[Note]] = relationship(back_populates="item", order_by="Note.id")

    class Note(AsyncAttrs, db.Base):
        __tablename__ = PREFIX + "note"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
        tenant_id: Mapped[int] = mapped_column(Integer, nullable=False)
        item_id: Mapped[int] = mapped_column(ForeignKey(PREFIX + "item.id"))
        body: Mapped[str] = mapped_column(String(40))
        item: Mapped[Item] = relationship(back_populates="notes")

    class Memo(SoftDeleteMixin, db.Base):  # soft delete and restore inside a scope
        __tablename__ = PREFIX + "memo"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
        tenant_id: Mapped[int] = mapped_column(Integer, nullable=False)
        body: Mapped[str] = mapped_column(String(40))

    class Tag(db.Base):  # no tenant_id: never scoped
        __tablename__ = PREFIX + "tag"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
        name: Mapped[str] = mapped_column(String(20))

    return SimpleNamespace(Item=Item, Note=Note, Memo=Memo, Tag=Tag)


async def seed_scoped(e: SimpleNamespace) -> None:
    """`seed` through scopes (a ``require_scope`` database refuses it otherwise)."""
    m = e.m
    notes = {1: [(1, 1, "one's")], 2: [(2, 1, "two's on one's item"), (3, 4, "two's")]}
    for tenant in (1, 2):
        async with e.db.scoped(tenant_id=tenant):
            rows = [{"code": c, "name": c.upper()} for _, t, c in ONE + TWO if t == tenant]
            await e.ops.insert_many(m.Item, rows)
            await e.ops.insert_many(m.Note, [{"item_id": i, "body": b} for _, i, b in notes[tenant]])
    async with e.db.scoped(tenant_id=1):
        await e.ops.insert_many(m.Tag, [{"name": "x"}, {"name": "y"}])


async def seed(e: SimpleNamespace) -> None:
    m = e.m
    # ids 1..5 and 1..3 from the fresh tables' sequences (explicit ids would not advance PostgreSQL's)
    rows = [{"tenant_id": t, "code": c, "name": c.upper()} for _, t, c in ONE + TWO]
    await e.ops.insert_many(m.Item, rows)
    # a note of tenant 2 hanging on an item of tenant 1: a relationship load in scope 1 must skip it
    await e.ops.insert_many(
        m.Note,
        [
            {"tenant_id": 1, "item_id": 1, "body": "one's"},
            {"tenant_id": 2, "item_id": 1, "body": "two's on one's item"},
            {"tenant_id": 2, "item_id": 4, "body": "two's"},
        ],
    )
    await e.ops.insert_many(m.Tag, [{"name": "x"}, {"name": "y"}])


@pytest.fixture
async def env(db: AsyncDatabase) -> SimpleNamespace:
    e = await fresh_env(db, make_models(db))
    await seed(e)
    return e


async def stored(db: AsyncDatabase, model: Any) -> list[tuple[Any, ...]]:
    """Every row as the database has it, read on a plain session (no scope hooks)."""
    async with AsyncSession(db.engine) as s:
        columns = [c for c in model.__table__.columns]
        rows = await s.execute(select(*columns).order_by(model.id))
        return [tuple(r) for r in rows]


def ids(objects: Any) -> list[int]:
    return sorted(o.id if not isinstance(o, dict) else o["id"] for o in objects)


# --------------------------------------------------------------------------- reads


async def test_reads_see_only_the_scope_rows(env: SimpleNamespace) -> None:
    Item, ops, db = env.m.Item, env.ops, env.db
    async with db.scoped(tenant_id=1):
        assert ids(await ops.find(Item)) == [1, 2, 3]
        assert ids(await ops.find(Item, order_by="-code", limit=10)) == [1, 2, 3]
        assert ids(await ops.find(Item, Q(code__startswith="a"))) == [1]
        assert ids(await ops.find(Item, code="a2")) == []
        assert ids(await ops.find_mappings(Item)) == [1, 2, 3]
        assert ids(await ops.find_mappings(Item, code="a2")) == []
        assert await ops.count(Item) == 3
        assert await ops.count(Item, code="a2") == 0
        assert await ops.exists(Item, code="a1") is True
        assert await ops.exists(Item, code="a2") is False
        assert (await ops.get(Item, 1)).code == "a1"
        assert await ops.get(Item, 4) is None
        assert await ops.get(Item, 4, options=[selectinload(Item.notes)]) is None
        assert (await ops.get_one(Item, code="b1")).id == 2
        with pytest.raises(RecordNotFoundError):
            await ops.get_one(Item, code="a2")
        page = await ops.paginate(Item, 1, 2)
        assert (page.total, ids(page.items)) == (3, [1, 2])
        page = await ops.paginate(select(Item).order_by(Item.id), 1, 10)
        assert (page.total, ids(page.items)) == (3, [1, 2, 3])
        page = await ops.paginate(Item, 1, 10, code="a2")
        assert (page.total, page.items) == (0, [])
        assert ids(await ops.read_query(select(Item))) == [1, 2, 3]
        assert await ops.count_query(select(Item)) == 3
        assert await ops.read_one_record(select(Item).where(Item.code == "a2")) is None
        multi = await ops.read_multi_query({"all": select(Item)})
        assert ids(multi["all"]) == [1, 2, 3]
        async with aclosing(ops.stream(Item, batch_size=2)) as rows:
            assert ids([row async for row in rows]) == [1, 2, 3]
        async with aclosing(ops.stream(select(Item), batch_size=2)) as rows:
            assert ids([row async for row in rows]) == [1, 2, 3]
    async with db.scoped(tenant_id=2):
        assert ids(await ops.find(Item)) == [4, 5]
        assert await ops.count(Item) == 2
        assert (await ops.paginate(Item)).total == 2
    assert await ops.count(Item) == 5  # outside any scope: everything


async def test_keyset_pages_and_cursors_stay_in_the_scope(env: SimpleNamespace) -> None:
    Item, ops, db = env.m.Item, env.ops, env.db
    seen: list[int] = []
    async with db.scoped(tenant_id=1):
        page = await ops.paginate_keyset(Item, "code", limit=2)
        seen += ids(page.items)
        cursor = page.next_cursor
        while cursor is not None:
            page = await ops.paginate_keyset(Item, "code", after=cursor, limit=2)
            seen += ids(page.items)
            cursor = page.next_cursor
        first = await ops.paginate_keyset(Item, "code", limit=1)
    assert seen == [1, 2, 3]
    async with db.scoped(tenant_id=2):  # tenant 1's cursor is another query's: refused
        with pytest.raises(InvalidInputError, match="another query"):
            await ops.paginate_keyset(Item, "code", after=first.next_cursor, limit=10)
        page = await ops.paginate_keyset(Item, "code", limit=10)
        assert ids(page.items) == [4, 5]


async def test_relationship_loads_stay_in_the_scope(env: SimpleNamespace) -> None:
    Item, Note, ops, db = env.m.Item, env.m.Note, env.ops, env.db
    async with db.scoped(tenant_id=1):
        item = await ops.get(Item, 1, options=[selectinload(Item.notes)])
        assert [n.id for n in item.notes] == [1]
        found = await ops.find(Item, id=1, options=[selectinload(Item.notes)])
        assert [n.id for n in found[0].notes] == [1]
        async with db.get_db_session() as session:
            loaded = (await session.execute(select(Item).where(Item.id == 1))).scalar_one()
            assert [n.id for n in await loaded.awaitable_attrs.notes] == [1]
            note = (await session.execute(select(Note).where(Note.id == 1))).scalar_one()
            assert (await note.awaitable_attrs.item).id == 1
        assert ids(await ops.find(Item, notes__body__startswith="two")) == []
    async with db.scoped(tenant_id=2):
        assert ids(await ops.find(Note)) == [2, 3]
        joined = await ops.find(Note, options=[joinedload(Note.item)], order_by="id")
        assert [(n.id, n.item.id if n.item else None) for n in joined] == [(2, None), (3, 4)]
        # tenant 2's note hangs on tenant 1's item: the item is not tenant 2's to see
        async with db.get_db_session() as session:
            note = (await session.execute(select(Note).where(Note.id == 2))).scalar_one()
            assert await note.awaitable_attrs.item is None


async def test_orm_statements_on_db_sessions_are_scoped(env: SimpleNamespace) -> None:
    Item, Tag, ops, db = env.m.Item, env.m.Tag, env.ops, env.db
    async with db.scoped(tenant_id=2):
        async with db.get_db_session() as session:
            assert ids((await session.execute(select(Item))).scalars()) == [4, 5]
            assert await session.get(Item, 1) is None
        async with db.transaction() as session:
            assert ids((await session.execute(select(Item))).scalars()) == [4, 5]
            assert ids(await ops.find(Item)) == [4, 5]  # joined
            assert len(await ops.find(Tag)) == 2  # no tenant_id: untouched
    # an object of tenant 1 already in a joined session's identity map is still not found in scope 2
    async with db.transaction() as session:
        obj = await session.get(Item, 1)
        assert obj is not None
        async with db.scoped(tenant_id=2):
            assert await ops.get(Item, 1) is None
            with pytest.raises(RecordNotFoundError):
                await ops.update_one(Item, 1, {"name": "taken"})
            obj.name = "taken"  # loaded before the scope: the flush refuses changing it
            with pytest.raises(InvalidInputError):
                await session.flush()
            await session.rollback()
    assert (await stored(db, Item))[0][3] == "A1"


async def test_orm_bulk_update_by_primary_key_is_scoped(env: SimpleNamespace) -> None:
    Item, db = env.m.Item, env.db
    async with db.scoped(tenant_id=1), db.transaction() as session:
        await session.execute(update(Item), [{"id": 4, "name": "stolen"}, {"id": 1, "name": "own"}])
    names = {r[0]: r[3] for r in await stored(db, Item)}
    assert (names[1], names[4]) == ("own", "A2")


async def test_the_same_lazy_load_in_two_scopes(env: SimpleNamespace) -> None:
    """A relationship load's statement is cached by SQLAlchemy: each scope must get its own values."""
    Item, db = env.m.Item, env.db
    for tenant, expected in ((1, [1]), (2, [2]), (1, [1]), (2, [2])):
        async with db.get_db_session() as session:
            item = (await session.execute(select(Item).where(Item.id == 1))).scalar_one()  # unscoped
            async with db.scoped(tenant_id=tenant):
                assert [n.id for n in await item.awaitable_attrs.notes] == expected
                loaded = (
                    (
                        await session.execute(
                            select(Item)
                            .options(selectinload(Item.notes))
                            .execution_options(populate_existing=True)
                        )
                    )
                    .scalars()
                    .all()
                )
                assert {n.id for i in loaded for n in i.notes} <= ({1} if tenant == 1 else {2, 3})


async def test_a_caller_session_passed_to_operations_is_scoped(env: SimpleNamespace) -> None:
    Item, ops, db = env.m.Item, env.ops, env.db
    async with AsyncSession(db.engine) as own, db.scoped(tenant_id=2):
        assert ids(await ops.find(Item, session=own)) == [4, 5]
        assert ids(await ops.read_query(select(Item), session=own)) == [4, 5]
        assert (await ops.paginate(select(Item), session=own)).total == 2


# --------------------------------------------------------------------------- writes


async def test_writes_cannot_touch_other_tenants(env: SimpleNamespace) -> None:
    Item, ops, db = env.m.Item, env.ops, env.db
    two_before = [r for r in await stored(db, Item) if r[1] == 2]
    async with db.scoped(tenant_id=1):
        assert await ops.update_where(Item, {"name": "x"}, all_rows=True) == 3
        assert await ops.update_where(Item, {"name": "y"}, id=4) == 0
        assert await ops.update_where(Item, {"name": "y"}, code="a2") == 0
        with pytest.raises(RecordNotFoundError):
            await ops.update_one(Item, 4, {"name": "y"})
        with pytest.raises(RecordNotFoundError):
            await ops.delete_one(Item, 5)
        assert await ops.delete_where(Item, id=4) == 0
        assert await ops.delete_many(Item, "id", [3, 4, 5]) == 1
        with pytest.raises(InvalidInputError):  # the unfiltered guard still holds inside a scope
            await ops.delete_where(Item)
        # a relationship filter does not see the other tenant's related rows either (EXISTS)
        assert await ops.update_where(Item, {"name": "y"}, notes__body="two's on one's item") == 0
        assert await ops.delete_where(Item, notes__body="two's on one's item") == 0
        assert await ops.count(Item, notes__body="two's on one's item") == 0
        assert await ops.update_where(Item, {"name": "y"}, notes__body="one's") == 1
        assert (await ops.update_one(Item, 1, {"name": "own"})).name == "own"
        assert await ops.delete_where(Item, id__in=[2, 4, 5]) == 1
    rows = await stored(db, Item)
    assert [r for r in rows if r[1] == 2] == two_before
    assert [r for r in rows if r[1] == 1] == [(1, 1, "a1", "own")]


async def test_soft_delete_and_restore_stay_in_the_scope(env: SimpleNamespace) -> None:
    Memo, ops, db = env.m.Memo, env.ops, env.db
    await ops.insert_many(Memo, [{"tenant_id": t, "body": f"m{t}"} for t in (1, 1, 2)])
    async with db.scoped(tenant_id=1):
        assert await ops.delete_where(Memo, all_rows=True) == 2  # soft
        assert await ops.count(Memo) == 0
        assert await ops.count(Memo, include_deleted=True) == 2
        assert await ops.get(Memo, 3, include_deleted=True) is None
        assert await ops.restore(Memo, all_rows=True) == 2
    async with db.scoped(tenant_id=2):
        assert await ops.delete_where(Memo, id__in=[1, 2, 3]) == 1
        assert await ops.restore(Memo, id__in=[1, 2, 3]) == 1
    assert [r[3] for r in await stored(db, Memo)] == [None, None, None]  # deleted_at


async def test_inserts_get_the_scope_value(env: SimpleNamespace) -> None:
    Item, ops, db = env.m.Item, env.ops, env.db

    def gen() -> Any:
        yield {"code": "g1"}
        yield {"code": "g2", "tenant_id": 7}

    async with db.scoped(tenant_id=7):
        assert (await ops.create_one(Item(code="n1"))).tenant_id == 7
        assert (await ops.create_one(Item, {"code": "n2"})).tenant_id == 7
        made = await ops.create_many([Item(code="n3"), Item(code="n4", tenant_id=7)])
        assert [i.tenant_id for i in made] == [7, 7]
        assert await ops.insert_many(Item, [{"code": "n5"}, {"code": "n6"}]) == 2
        assert await ops.insert_many(Item, gen(), chunk_size=1) == 2
        assert await ops.upsert(Item, [{"code": "n7", "name": "N7"}], conflict="code") == 1
        obj, created = await ops.get_or_create(Item, code="n8")
        assert created and obj.tenant_id == 7
        async with db.transaction() as session:
            session.add(Item(code="n9"))
        async with db.get_db_session() as session:
            session.add(Item(code="n10"))
            await session.commit()
        assert await ops.count(Item) == 12
    sevens = {r[2] for r in await stored(db, Item) if r[1] == 7}
    assert sevens == {f"n{i}" for i in range(1, 11)} | {"g1", "g2"}


async def test_a_row_naming_another_tenant_is_refused_and_nothing_changes(env: SimpleNamespace) -> None:
    Item, ops, db = env.m.Item, env.ops, env.db
    before = await stored(db, Item)
    async with db.scoped(tenant_id=1):
        attempts = [
            ops.create_one(Item(code="x1", tenant_id=2)),
            ops.create_one(Item, {"code": "x1", "tenant_id": 2}),
            ops.create_many([Item(code="x1"), Item(code="x2", tenant_id=2)]),
            ops.insert_many(Item, [{"code": "x1"}, {"code": "x2", "tenant_id": 2}]),
            ops.insert_many(Item, iter([{"code": "x1"}, {"code": "x2", "tenant_id": 2}]), chunk_size=1),
            ops.upsert(Item, [{"code": "x1"}, {"code": "a2", "tenant_id": 2}], conflict="code"),
            ops.update_where(Item, {"tenant_id": 2}, id=1),
            ops.update_where(Item, {"tenant_id": Item.tenant_id + 1}, id=1),
            ops.create_one(Item(code="x1", tenant_id=Item.tenant_id)),
            ops.update_one(Item, 1, {"tenant_id": 2}),
            ops.get_or_create(Item, code="x3", tenant_id=2),
        ]
        for attempt in attempts:
            with pytest.raises(InvalidInputError):
                await attempt
        with pytest.raises(InvalidInputError):
            async with db.transaction() as session:
                session.add(Item(code="x4", tenant_id=2))
    assert await stored(db, Item) == before


async def test_upsert_leaves_another_tenants_conflicting_row_alone(env: SimpleNamespace) -> None:
    Item, ops, db = env.m.Item, env.ops, env.db
    before = await stored(db, Item)
    async with db.scoped(tenant_id=1):
        await ops.upsert(
            Item, [{"code": "a2", "name": "stolen"}, {"code": "a1", "name": "mine"}], conflict="code"
        )
        await ops.upsert(Item, [{"code": "b2", "name": "stolen"}], conflict="code", update=("name",))
    after = await stored(db, Item)
    assert [r for r in after if r[1] == 2] == [r for r in before if r[1] == 2]
    assert [r for r in after if r[0] == 1] == [(1, 1, "a1", "mine")]


async def test_classes_without_the_attribute_are_untouched(env: SimpleNamespace) -> None:
    Tag, ops, db = env.m.Tag, env.ops, env.db
    async with db.scoped(tenant_id=1):
        assert await ops.count(Tag) == 2
        await ops.create_one(Tag(name="z"))
        assert await ops.update_where(Tag, {"name": "w"}, all_rows=True) == 3


async def test_execute_one_core_statements_are_not_rewritten(env: SimpleNamespace) -> None:
    Item, ops, db = env.m.Item, env.ops, env.db
    table = Item.__table__
    async with db.scoped(tenant_id=1):
        assert len(await ops.execute_one(select(table.c.id))) == 5  # Core on the Table: as written
        assert len(await ops.read_query(text(f"SELECT id FROM {table.name}"))) == 5
        assert len(await ops.execute_one(select(Item))) == 3  # an ORM statement on a dsg_lib session


# --------------------------------------------------------------------------- require_scope


async def strict_env(db_url: str, require: Any) -> SimpleNamespace:
    guarded = AsyncDatabase(DBConfig({"database_uri": db_url, "require_scope": require, "pool_timeout": 10}))
    e = await fresh_env(guarded, make_models(guarded))
    await seed_scoped(e)
    return e


@pytest.fixture
async def strict(db_url: str) -> Any:
    e = await strict_env(db_url, "tenant_id")
    yield e
    await e.db.drop_tables()
    await e.db.disconnect()


async def test_require_scope_fails_closed(strict: SimpleNamespace) -> None:
    Item, Tag, ops, db = strict.m.Item, strict.m.Tag, strict.ops, strict.db
    before = await stored(db, Item)
    attempts = [
        ops.find(Item),
        ops.find(Item, id=1),
        ops.find_mappings(Item, id=1),
        ops.get(Item, 1),
        ops.get_one(Item, id=1),
        ops.count(Item),
        ops.exists(Item, id=1),
        ops.paginate(Item),
        ops.paginate_keyset(Item, "code"),
        ops.create_one(Item(code="r1", tenant_id=1)),
        ops.create_many([Item(code="r1", tenant_id=1)]),
        ops.insert_many(Item, [{"code": "r1", "tenant_id": 1}]),
        ops.upsert(Item, [{"code": "r1", "tenant_id": 1}], conflict="code"),
        ops.update_where(Item, {"name": "r"}, id=1),
        ops.update_one(Item, 1, {"name": "r"}),
        ops.delete_where(Item, id=1),
        ops.delete_one(Item, 1),
        ops.get_or_create(Item, code="r1", tenant_id=1),
        ops.read_query(select(Item)),
    ]
    for attempt in attempts:
        with pytest.raises(ScopeRequiredError) as info:
            await attempt
        assert isinstance(info.value, SessionMissingError) and status_for(info.value) == 500
    with pytest.raises(ScopeRequiredError):
        async with aclosing(ops.stream(Item)) as rows:
            [r async for r in rows]
    with pytest.raises(ScopeRequiredError):
        async with db.get_db_session() as session:
            await session.execute(select(Item))
    assert await stored(db, Item) == before
    assert await ops.count(Tag) == 2  # no tenant_id: not guarded
    async with db.scoped(tenant_id=2):
        assert await ops.count(Item) == 2
        assert (await ops.get(Item, 4)).code == "a2"


@pytest.mark.parametrize("value", [5, "", "not a name", [], ["tenant_id", 3], {"tenant_id": 1}])
def test_require_scope_is_validated(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="require_scope"):
        DBConfig({"database_uri": "sqlite://", "require_scope": value})


def test_require_scope_accepts_true_a_name_or_names() -> None:
    for value in (True, False, "tenant_id", ["tenant_id", "org_id"], ("org_id",)):
        config = DBConfig({"database_uri": "sqlite://", "require_scope": value})
        assert config.option("require_scope") == value


async def test_require_scope_true_needs_some_scope(db_url: str) -> None:
    e = await strict_env(db_url, True)
    try:
        with pytest.raises(ScopeRequiredError):
            await e.ops.count(e.m.Tag)
        async with e.db.scoped(tenant_id=1):
            assert await e.ops.count(e.m.Tag) == 2
            assert await e.ops.count(e.m.Item) == 3
    finally:
        await e.db.drop_tables()
        await e.db.disconnect()


# --------------------------------------------------------------------------- nesting and tasks


async def test_scopes_nest_inner_replaces_and_extends(env: SimpleNamespace) -> None:
    Item, ops, db = env.m.Item, env.ops, env.db
    async with db.scoped(tenant_id=1):
        async with db.scoped(tenant_id=2):
            assert ids(await ops.find(Item)) == [4, 5]
        async with db.scoped(code="b1"):  # extends: tenant 1 AND code b1
            assert ids(await ops.find(Item)) == [2]
            async with db.scoped(code="a2"):  # tenant 1 has no a2
                assert ids(await ops.find(Item)) == []
        assert ids(await ops.find(Item)) == [1, 2, 3]
    assert await ops.count(Item) == 5
    other = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
    async with other.scoped(tenant_id=2):  # another database's scope does not apply here
        assert await ops.count(Item) == 5
    await other.disconnect()


def test_scope_arguments_are_checked() -> None:
    db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
    for bad in ({}, {"tenant_id": None}):
        with pytest.raises(InvalidInputError):
            db.scoped(**bad)
    assert "42" not in repr(db.scoped(tenant_id=42))


async def test_two_tasks_with_different_scopes_at_once(env: SimpleNamespace) -> None:
    Item, ops, db = env.m.Item, env.ops, env.db

    async def work(tenant: int) -> list[list[int]]:
        seen = []
        async with db.scoped(tenant_id=tenant):
            for i in range(10):
                seen.append(ids(await ops.find(Item)))
                await ops.create_one(Item(code=f"t{tenant}-{i}"))
                await asyncio.sleep(0)
        return seen

    one, two = await asyncio.gather(work(1), work(2))
    assert all(set(s) <= {1, 2, 3} | set(range(6, 100)) and {1, 2, 3} <= set(s) for s in one)
    assert all({4, 5} <= set(s) and not set(s) & {1, 2, 3} for s in two)
    rows = await stored(db, Item)
    assert {r[1] for r in rows if r[2].startswith("t1-")} == {1}
    assert {r[1] for r in rows if r[2].startswith("t2-")} == {2}


# --------------------------------------------------------------------------- FastAPI


def tenant_of(request: Request) -> dict[str, int]:
    return {"tenant_id": int(request.headers["x-tenant"])}


async def async_tenant_of(request: Request) -> dict[str, int]:
    await asyncio.sleep(0)
    return tenant_of(request)


@pytest.mark.parametrize("middleware", [False, True], ids=["plain", "DBSessionMiddleware"])
async def test_scope_dependency_per_request(env: SimpleNamespace, middleware: bool) -> None:
    Item, ops, db = env.m.Item, env.ops, env.db
    app = FastAPI()
    register_exception_handlers(app)
    if middleware:
        app.add_middleware(DBSessionMiddleware, db=db)

    @app.get("/items", dependencies=[Depends(scope_dependency(tenant_of))])
    async def items() -> list[str]:
        await asyncio.sleep(0.01)  # let the other tenant's request interleave
        return [i.code for i in await ops.find(Item, order_by="code")]

    scoped_to_db = Depends(scope_dependency(async_tenant_of, db))

    @app.post("/items/{code}")
    async def add(code: str, scope: dict[str, int] = scoped_to_db) -> dict[str, Any]:
        item = await ops.create_one(Item(code=code))
        return {"tenant": item.tenant_id, "scope": scope}

    get_session = session_dependency(db)

    @app.get("/current", dependencies=[Depends(scope_dependency(tenant_of))])
    async def current() -> list[str]:  # the request's own session (DBSessionMiddleware) or a block's
        if middleware:
            return sorted((await db.current_session().execute(select(Item.code))).scalars())
        async with db.transaction() as session:
            return sorted((await session.execute(select(Item.code))).scalars())

    @app.get("/codes", dependencies=[Depends(scope_dependency(tenant_of))])
    async def codes(session: AsyncSession = Depends(get_session)) -> list[str]:
        return sorted((await session.execute(select(Item.code))).scalars())

    @app.get("/items/{item_id}", dependencies=[Depends(scope_dependency(tenant_of))])
    async def one(item_id: int) -> str:
        return (await ops.get_one(Item, id=item_id)).code

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answers = await asyncio.gather(
            *[client.get("/items", headers={"x-tenant": str(1 + i % 2)}) for i in range(8)]
        )
        for i, answer in enumerate(answers):
            assert answer.json() == (["a1", "b1", "c1"] if i % 2 == 0 else ["a2", "b2"])
        made = await client.post("/items/new", headers={"x-tenant": "2"})
        assert made.json() == {"tenant": 2, "scope": {"tenant_id": 2}}
        assert (await client.get("/items/4", headers={"x-tenant": "1"})).status_code == 404
        assert (await client.get("/items/4", headers={"x-tenant": "2"})).json() == "a2"
        assert (await client.get("/codes", headers={"x-tenant": "2"})).json() == ["a2", "b2", "new"]
        assert (await client.get("/current", headers={"x-tenant": "2"})).json() == ["a2", "b2", "new"]
    assert await ops.count(Item) == 6  # no scope left behind in this task


# --------------------------------------------------------------------------- property


def make_sample(db: AsyncDatabase) -> Any:
    class Sample(db.Base):
        __tablename__ = PREFIX + "sample"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        tenant_id: Mapped[int] = mapped_column(Integer, nullable=False)
        n: Mapped[int | None] = mapped_column(Integer, nullable=True)
        mark: Mapped[int | None] = mapped_column(Integer, nullable=True)

    return Sample


SAMPLE = [
    {"id": i, "tenant_id": 1 + (i * 7) % 3, "n": None if i % 11 == 0 else (i * 5) % 13, "mark": None}
    for i in range(1, 61)
]


@pytest.fixture
async def sample_env(db: AsyncDatabase) -> SimpleNamespace:
    e = await fresh_env(db, SimpleNamespace(Sample=make_sample(db)))
    await e.ops.insert_many(e.m.Sample, SAMPLE)
    e.marks = iter(range(1, 10_000))
    return e


FILTERS = st.one_of(
    st.builds(lambda x: {"n__lt": x}, st.integers(-1, 14)),
    st.builds(lambda x: {"n__gte": x}, st.integers(-1, 14)),
    st.builds(lambda xs: {"n__in": xs}, st.lists(st.integers(0, 12), max_size=4)),
    st.builds(lambda b: {"n__is_null": b}, st.booleans()),
    st.builds(lambda i: {"id": i}, st.integers(1, 60)),
    st.builds(lambda t: {"tenant_id": t}, st.integers(1, 3)),  # naming another tenant matches nothing
)


def matches(row: dict[str, Any], filters: dict[str, Any]) -> bool:
    ((key, x),) = filters.items()
    v = row[key.split("__")[0]]
    if key == "n__lt":
        return v is not None and v < x
    if key == "n__gte":
        return v is not None and v >= x
    if key == "n__in":
        return v is not None and v in x
    if key == "n__is_null":
        return (v is None) == x
    return bool(v == x)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None
)
@given(tenant=st.integers(1, 3), filters=FILTERS)
async def test_property_every_read_and_write_stays_in_the_scope(
    sample_env: SimpleNamespace, tenant: int, filters: dict[str, Any]
) -> None:
    e, Sample = sample_env, sample_env.m.Sample
    expected = {r["id"] for r in SAMPLE if r["tenant_id"] == tenant and matches(r, filters)}
    mark = next(e.marks)
    async with e.db.scoped(tenant_id=tenant):
        assert {o.id for o in await e.ops.find(Sample, **filters)} == expected
        assert {r["id"] for r in await e.ops.find_mappings(Sample, **filters)} == expected
        assert await e.ops.count(Sample, **filters) == len(expected)
        assert await e.ops.exists(Sample, **filters) is bool(expected)
        page = await e.ops.paginate(Sample, 1, 100, **filters)
        assert (page.total, {o.id for o in page.items}) == (len(expected), expected)
        assert await e.ops.update_where(Sample, {"mark": mark}, **filters) == len(expected)
    async with AsyncSession(e.db.engine) as s:
        marked = set((await s.execute(select(Sample.id).where(Sample.mark == mark))).scalars())
    assert marked == expected


async def test_a_route_without_its_scope_fails_closed_with_500(strict: SimpleNamespace) -> None:
    Item, ops = strict.m.Item, strict.ops
    app = FastAPI()
    register_exception_handlers(app)

    @app.get("/scoped", dependencies=[Depends(scope_dependency(tenant_of))])
    async def scoped() -> int:
        return await ops.count(Item)

    @app.get("/forgotten")
    async def forgotten() -> int:
        return await ops.count(Item)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/scoped", headers={"x-tenant": "1"})).json() == 3
        answer = await client.get("/forgotten")
        assert answer.status_code == 500
        assert answer.json()["error"] == "ScopeRequiredError"


async def test_the_devsetgo_face_is_scoped_too(env: SimpleNamespace) -> None:
    from dsg_lib.async_database_functions.database_operations import DatabaseOperations as FaceOperations

    Item, db = env.m.Item, env.db
    face = FaceOperations(db)
    async with db.scoped(tenant_id=2):
        assert ids(await face.read_query(select(Item))) == [4, 5]
        assert await face.count_query(select(Item)) == 2
        assert (await face.create_one(Item(code="face"))).tenant_id == 2
        assert (await face.update_one(Item, 1, {"name": "x"}))["error"] == "Record not found"
        assert "error" in await face.delete_one(Item, 1)
    assert (await stored(db, Item))[0] == (1, 1, "a1", "A1")


async def test_every_session_dsg_lib_hands_out_has_the_scope_hooks(env: SimpleNamespace) -> None:
    """The hooks live on the Session class dsg_lib's sessions use: a new way to make a session
    that forgets it would leave users' own ORM statements unscoped (the operations would still be)."""
    from dsg_lib.session._tenancy import OWNER_KEY, TenantSession

    db = env.db

    def hooked(session: AsyncSession) -> bool:
        return isinstance(session.sync_session, TenantSession) and OWNER_KEY in session.sync_session.info

    async with db.get_db_session() as session:
        assert hooked(session)
    async with db.transaction() as session:
        assert hooked(session)
        async with db.transaction() as nested:
            assert hooked(nested)
    assert await db.run_in_transaction(lambda s: asyncio.sleep(0, result=hooked(s)))
    seen: list[bool] = []
    app = FastAPI()
    app.add_middleware(DBSessionMiddleware, db=db)

    @app.get("/m")
    async def m(session: AsyncSession = Depends(session_dependency(db))) -> None:
        seen.extend([hooked(db.current_session()), hooked(session)])

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/m")).status_code == 200
    assert seen == [True, True]
