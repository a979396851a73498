"""Differential tests: each operation against the same work written by hand with SQLAlchemy's
``AsyncSession`` on the same engine (issue 23 items 1-6, 10-14, 16). Every backend, both
executor strategies (see tests/conftest.py, "executor strategies").
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import itertools
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    Numeric,
    String,
    TypeDecorator,
    delete,
    event,
    exists,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, mapped_column, with_loader_criteria

from dsg_lib import AsyncDatabase, DatabaseError, DatabaseOperations, DBConfig, InvalidInputError
from tests.helpers import backend_url

PREFIX = f"same_{os.getpid()}_"


def by_hand(db: AsyncDatabase) -> AsyncSession:
    """What a user writes: an AsyncSession on the database's engine."""
    return AsyncSession(db.engine, expire_on_commit=False)


# --------------------------------------------------------------------------- 1. schema_translate_map


@pytest.fixture
async def tenant_db(server_backend: str) -> AsyncIterator[tuple[AsyncDatabase, AsyncDatabase]]:
    """``(plain, tenant)``: the same server database, the second mapping schema None to another."""
    backend = server_backend
    url = backend_url(backend, Path("."))
    schema = f"{PREFIX}tb"
    plain = AsyncDatabase(DBConfig({"database_uri": url}))
    create = f'CREATE SCHEMA "{schema}"' if backend == "postgresql" else f"CREATE DATABASE `{schema}`"
    drop = f'DROP SCHEMA "{schema}" CASCADE' if backend == "postgresql" else f"DROP DATABASE `{schema}`"
    async with plain.engine.begin() as conn:
        await conn.execute(text(create))
    tenant = AsyncDatabase(
        DBConfig({"database_uri": url, "execution_options": {"schema_translate_map": {None: schema}}})
    )
    try:
        yield plain, tenant
    finally:
        await tenant.disconnect()
        await plain.drop_tables()
        async with plain.engine.begin() as conn:
            await conn.execute(text(drop))
        await plain.disconnect()


@pytest.fixture
async def sqlite_tenant_db(tmp_path: Path) -> AsyncIterator[tuple[AsyncDatabase, AsyncDatabase]]:
    """SQLite's schemas are attached databases: ``(plain, tenant)`` on one file, each connection
    attaching a second file as the tenant schema (a pool ``connect`` listener, as users write it)."""
    schema = f"{PREFIX}tb"
    url = f"sqlite+aiosqlite:///{tmp_path / 'main.db'}"
    attach = f"ATTACH DATABASE '{tmp_path / 'tenant.db'}' AS \"{schema}\""

    def attached(config: dict[str, Any]) -> AsyncDatabase:
        db = AsyncDatabase(DBConfig({"database_uri": url, **config}))

        @event.listens_for(db.engine.sync_engine, "connect")
        def _attach(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(attach)
            cursor.close()

        return db

    plain = attached({})
    tenant = attached({"execution_options": {"schema_translate_map": {None: schema}}})
    try:
        yield plain, tenant
    finally:
        await tenant.disconnect()
        await plain.disconnect()


async def test_schema_translate_map_applies_to_every_operation(
    tenant_db: tuple[AsyncDatabase, AsyncDatabase],
) -> None:
    await _every_operation_in_the_tenant_schema(*tenant_db)


async def test_schema_translate_map_applies_to_every_operation_on_sqlite(
    sqlite_tenant_db: tuple[AsyncDatabase, AsyncDatabase],
) -> None:
    await _every_operation_in_the_tenant_schema(*sqlite_tenant_db)


async def _every_operation_in_the_tenant_schema(plain: AsyncDatabase, tenant: AsyncDatabase) -> None:
    def model(db: AsyncDatabase) -> Any:
        class Acct(db.Base):
            __tablename__ = PREFIX + "acct"
            id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
            name: Mapped[str] = mapped_column(String(20))

        return Acct

    PlainAcct, Acct = model(plain), model(tenant)
    await plain.create_tables()
    await tenant.create_tables()  # in the tenant schema (the map applies to DDL too)
    async with by_hand(plain) as s:
        s.add(PlainAcct(id=1, name="default"))
        await s.commit()
    async with by_hand(tenant) as s:
        s.add(Acct(id=1, name="tenant"))
        await s.commit()
    ops = DatabaseOperations(tenant)
    async with by_hand(tenant) as s:
        hand = (await s.get(Acct, 1)).name
    assert hand == "tenant"
    assert (await ops.get(Acct, 1)).name == hand
    assert [a.name for a in await ops.find(Acct, id=1)] == [hand]
    assert await ops.find_mappings(Acct, id=1) == [{"id": 1, "name": hand}]
    assert await ops.count(Acct, name="tenant") == 1
    assert await ops.exists(Acct, name="tenant")
    assert [a.name for a in (await ops.paginate(Acct, page=1, page_size=5)).items] == [hand]
    await ops.create_one(Acct(id=2, name="new"))
    assert await ops.update_where(Acct, {"name": "newer"}, id=2) == 1
    async with by_hand(tenant) as s:
        assert (await s.get(Acct, 2)).name == "newer"
    assert await ops.delete_where(Acct, id=2) == 1
    async with by_hand(plain) as s:  # the default schema was never touched
        assert [a.name for a in (await s.execute(select(PlainAcct))).scalars()] == ["default"]


# --------------------------------------------------------------------------- 2, 3. events


def doc_model(db: AsyncDatabase) -> Any:
    class Doc(db.Base):
        __tablename__ = PREFIX + "doc"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        tenant: Mapped[int] = mapped_column(Integer)
        title: Mapped[str] = mapped_column(String(20))

    return Doc


@pytest.fixture
def session_listeners() -> Iterator[list[tuple[str, Any]]]:
    """Session-class listeners registered by the test; removed after it."""
    added: list[tuple[str, Any]] = []
    yield added
    for name, fn in added:
        event.remove(Session, name, fn)


async def test_do_orm_execute_row_filter_applies_like_by_hand(
    db: AsyncDatabase, session_listeners: list[tuple[str, Any]]
) -> None:
    Doc = doc_model(db)
    await db.create_tables()
    ops = DatabaseOperations(db)
    await ops.insert_many(Doc, [{"id": 1, "tenant": 1, "title": "a"}, {"id": 2, "tenant": 2, "title": "b"}])

    def only_tenant_1(state: Any) -> None:  # SQLAlchemy's documented row-filter recipe
        if state.is_select and not state.is_column_load and not state.is_relationship_load:
            state.statement = state.statement.options(
                with_loader_criteria(Doc, Doc.tenant == 1, include_aliases=True)
            )

    event.listen(Session, "do_orm_execute", only_tenant_1)
    session_listeners.append(("do_orm_execute", only_tenant_1))
    async with by_hand(db) as s:
        hand_get = await s.get(Doc, 2)
        hand_find = [d.id for d in (await s.execute(select(Doc))).scalars()]
        hand_count = (await s.execute(select(func.count()).select_from(Doc))).scalar_one()
        hand_exists = (await s.execute(select(exists(select(literal(1)).select_from(Doc))))).scalar()
    assert (await ops.get(Doc, 2)) is hand_get is None
    assert [d.id for d in await ops.find(Doc)] == hand_find == [1]
    assert await ops.count(Doc) == hand_count == 1
    assert [m["id"] for m in await ops.find_mappings(Doc)] == [1]
    assert await ops.exists(Doc, id=2) is False
    assert await ops.exists(Doc) is bool(hand_exists)


async def test_flush_and_commit_events_fire_like_by_hand(
    db: AsyncDatabase, session_listeners: list[tuple[str, Any]]
) -> None:
    Doc = doc_model(db)
    await db.create_tables()
    ops = DatabaseOperations(db)
    fired: list[str] = []
    for name in ("before_flush", "after_flush", "after_commit", "pending_to_persistent"):

        def record(*args: Any, _name: str = name) -> None:
            fired.append(_name)

        event.listen(Session, name, record)
        session_listeners.append((name, record))
    async with by_hand(db) as s:
        s.add(Doc(id=1, tenant=1, title="hand"))
        await s.commit()
    hand = sorted(set(fired))
    fired.clear()
    await ops.create_one(Doc(id=2, tenant=1, title="ops"))
    assert (
        sorted(set(fired)) == hand == ["after_commit", "after_flush", "before_flush", "pending_to_persistent"]
    )


async def test_engine_begin_listener_runs_like_by_hand(db: AsyncDatabase) -> None:
    Doc = doc_model(db)
    await db.create_tables()
    ops = DatabaseOperations(db)
    await ops.insert_many(Doc, [{"id": 1, "tenant": 1, "title": "a"}])
    begun: list[int] = []

    def on_begin(conn: Any) -> None:  # e.g. set_config('app.tenant', ...) per transaction
        begun.append(1)

    event.listen(db.engine.sync_engine, "begin", on_begin)
    try:
        async with by_hand(db) as s:
            await s.get(Doc, 1)
        assert begun
        for work in (
            ops.get(Doc, 1),
            ops.find(Doc, id=1),
            ops.count(Doc, id=1),
            ops.create_one(Doc(id=2, tenant=1, title="b")),
            ops.update_where(Doc, {"title": "c"}, id=2),
            ops.delete_where(Doc, id=2),
        ):
            begun.clear()
            await work
            assert begun, work
    finally:
        event.remove(db.engine.sync_engine, "begin", on_begin)


# --------------------------------------------------------------------------- 4, 5. inheritance


def single_models(db: AsyncDatabase) -> tuple[Any, Any]:
    class Employee(db.Base):
        __tablename__ = PREFIX + "employee"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        kind: Mapped[str] = mapped_column(String(20))
        name: Mapped[str] = mapped_column(String(20))
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "employee"}

    class Manager(Employee):
        __mapper_args__ = {"polymorphic_identity": "manager"}

    return Employee, Manager


async def test_single_table_inheritance_acts_on_the_subclass_rows_only(db: AsyncDatabase) -> None:
    Employee, Manager = single_models(db)
    await db.create_tables()
    ops = DatabaseOperations(db)
    async with by_hand(db) as s:
        s.add_all([Employee(id=1, name="e1"), Manager(id=2, name="m2"), Employee(id=3, name="e3")])
        await s.commit()
    async with by_hand(db) as s:
        hand_count = (await s.execute(select(func.count()).select_from(Manager))).scalar_one()
        hand_rows = (
            await s.execute(select(Manager.id, Manager.kind, Manager.name).where(Manager.id == 1))
        ).all()
    assert await ops.count(Manager) == hand_count == 1
    assert await ops.count(Manager, name="e1") == 0
    assert await ops.exists(Manager, id=1) is False
    assert await ops.exists(Manager, id=2) is True
    assert await ops.find_mappings(Manager, id=1) == [dict(r._mapping) for r in hand_rows] == []
    assert await ops.find_mappings(Manager, id=2) == [{"id": 2, "kind": "manager", "name": "m2"}]
    assert [m.id for m in await ops.find(Manager, order_by="-id")] == [2]
    assert await ops.get(Manager, 1) is None
    assert await ops.update_where(Manager, {"name": "x"}, id=1) == 0
    assert await ops.delete_where(Manager, id=1) == 0
    async with by_hand(db) as s:
        hand_update = (await s.execute(update(Manager).where(Manager.id == 3).values(name="x"))).rowcount
        hand_delete = (await s.execute(delete(Manager).where(Manager.id == 3))).rowcount
        await s.rollback()
    assert hand_update == hand_delete == 0
    assert await ops.update_where(Manager, {"name": "m"}, id=2) == 1
    assert await ops.count(Employee) == 3  # nothing else changed or went
    assert (await ops.get(Employee, 1)).name == "e1"


def joined_models(db: AsyncDatabase) -> tuple[Any, Any]:
    class Animal(db.Base):
        __tablename__ = PREFIX + "animal"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        kind: Mapped[str] = mapped_column(String(20))
        name: Mapped[str] = mapped_column(String(20))
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "animal"}

    class Dog(Animal):
        __tablename__ = PREFIX + "dog"
        id: Mapped[int] = mapped_column(ForeignKey(Animal.id), primary_key=True)
        bark: Mapped[str] = mapped_column(String(20))
        __mapper_args__ = {"polymorphic_identity": "dog"}

    return Animal, Dog


async def test_joined_inheritance_filters_without_a_cartesian_product(db: AsyncDatabase) -> None:
    Animal, Dog = joined_models(db)
    await db.create_tables()
    ops = DatabaseOperations(db)
    async with by_hand(db) as s:
        s.add_all(
            [Dog(id=1, name="rex", bark="woof"), Animal(id=2, name="tom"), Dog(id=3, name="fido", bark="yap")]
        )
        await s.commit()
    async with by_hand(db) as s:
        hand_count = (
            await s.execute(select(func.count()).select_from(Dog).where(Dog.name == "rex"))
        ).scalar_one()
    assert await ops.count(Dog, name="rex") == hand_count == 1
    assert await ops.count(Dog) == 2
    assert await ops.exists(Dog, name="tom") is False
    assert await ops.exists(Dog, name="rex") is True
    assert await ops.find_mappings(Dog, name="rex") == [
        {"id": 1, "kind": "dog", "name": "rex", "bark": "woof"}
    ]
    assert [d.name for d in await ops.find(Dog, order_by="id")] == ["rex", "fido"]
    assert [d["id"] for d in await ops.find_mappings(Dog, order_by="-id")] == [3, 1]
    assert await ops.update_where(Dog, {"bark": "loud"}, id=1) == 1
    assert (await ops.get(Dog, 1)).bark == "loud"
    assert await ops.delete_where(Dog, id=2, all_rows=False) == 0  # an Animal, not a Dog


# --------------------------------------------------------------------------- 6, 13, 14. create_one


class Exploding(TypeDecorator[str]):
    """Stored as text; reading it back fails (a corrupt or foreign value)."""

    impl = String(20)
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        raise ValueError("cannot read this value back")


class Lowered(TypeDecorator[str]):
    impl = String(20)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return None if value is None else value.lower()


class Shade(enum.Enum):
    RED = "R"
    BLUE = "B"


_tickets = itertools.count(1)
_ticket_calls: list[int] = []


def next_ticket() -> int:
    number = next(_tickets)
    _ticket_calls.append(number)
    return number


async def _rows(db: AsyncDatabase, model: Any) -> list[Any]:
    async with by_hand(db) as s:
        return list((await s.execute(select(model.id))).scalars())


async def test_create_one_never_inserts_twice(db: AsyncDatabase) -> None:
    class Blob(db.Base):
        __tablename__ = PREFIX + "blob"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        raw: Mapped[str] = mapped_column(Exploding)
        number: Mapped[int] = mapped_column(Integer, default=next_ticket)

    class Mood(db.Base):
        __tablename__ = PREFIX + "mood"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        shade: Mapped[Shade] = mapped_column(Enum(Shade, native_enum=False, length=10), server_default="ZZZ")

    await db.create_tables()
    ops = DatabaseOperations(db)
    async with by_hand(db) as s:
        s.add(Blob(id=1, raw="x"))
        await s.commit()  # the given value is not read back: fine by hand
    _ticket_calls.clear()
    created = await ops.create_one(Blob(id=2, raw="y"))
    assert created.raw == "y" and created.number == _ticket_calls[0]
    assert len(_ticket_calls) == 1  # a Python default runs once (issue 23, item 13)
    assert sorted(await _rows(db, Blob)) == [1, 2]

    hand_error: Exception | None = None
    try:
        async with by_hand(db) as s:
            s.add(Mood(id=1))
            await s.commit()
    except Exception as exc:  # the server default is no Shade: reading it back fails
        hand_error = exc
    hand_rows = await _rows(db, Mood)
    with pytest.raises(Exception) as caught:
        await ops.create_one(Mood(id=2))
    assert hand_error is not None and isinstance(caught.value, (LookupError, DatabaseError))
    assert await _rows(db, Mood) == hand_rows == []  # not stored, and certainly not twice


async def test_python_default_callables_run_once(db: AsyncDatabase) -> None:
    class Ticket(db.Base):
        __tablename__ = PREFIX + "ticket"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        number: Mapped[int] = mapped_column(Integer, default=next_ticket)
        label: Mapped[str] = mapped_column(Lowered, nullable=True)

    await db.create_tables()
    ops = DatabaseOperations(db)
    _ticket_calls.clear()
    async with by_hand(db) as s:
        s.add(Ticket(id=1))
        await s.commit()
    assert len(_ticket_calls) == 1
    _ticket_calls.clear()
    created = await ops.create_one(Ticket(id=2))
    assert len(_ticket_calls) == 1 and created.number == _ticket_calls[0]
    _ticket_calls.clear()
    with pytest.raises(StatementError):  # by hand: refused while binding (Lowered needs text)
        async with by_hand(db) as s:
            s.add(Ticket(id=3, label=5))
            await s.commit()
    hand_calls = len(_ticket_calls)
    _ticket_calls.clear()
    with pytest.raises((StatementError, DatabaseError)):
        await ops.create_one(Ticket(id=3, label=5))
    assert len(_ticket_calls) == hand_calls == 1
    async with by_hand(db) as s:
        numbers = list((await s.execute(select(Ticket.number).order_by(Ticket.id))).scalars())
    assert numbers == sorted(numbers) and len(numbers) == 2


async def test_create_one_returns_what_by_hand_returns(db: AsyncDatabase, backend: str) -> None:
    class Item(db.Base):
        __tablename__ = PREFIX + "item"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        word: Mapped[str] = mapped_column(Lowered)
        price: Mapped[decimal.Decimal] = mapped_column(Numeric(10, 2))
        weight: Mapped[float] = mapped_column(Float)
        at: Mapped[dt.datetime] = mapped_column(DateTime)
        note: Mapped[str] = mapped_column(String(20), server_default="n/a")

    await db.create_tables()
    ops = DatabaseOperations(db)
    values = {
        "word": "HeLLo",
        "price": decimal.Decimal("0.1"),
        "weight": 1.0,
        "at": dt.datetime(2024, 1, 2, 3, 4, 5, 678901),
    }

    def shown(item: Any) -> dict[str, Any]:
        return {
            k: (getattr(item, k), type(getattr(item, k))) for k in ("word", "price", "weight", "at", "note")
        }

    async with by_hand(db) as s:
        hand = Item(**values)
        s.add(hand)
        await s.commit()
        await s.refresh(hand, ["note"])  # a server default: loaded after the INSERT
    created = await ops.create_one(Item(**values))
    assert shown(created) == shown(hand)
    assert created.id == hand.id + 1


# --------------------------------------------------------------------------- 10, 11, 12


async def test_values_callable_enum_like_by_hand(db: AsyncDatabase) -> None:
    class Paint(db.Base):
        __tablename__ = PREFIX + "paint"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        shade: Mapped[Shade] = mapped_column(
            Enum(Shade, values_callable=lambda e: [m.value for m in e], native_enum=False, length=5)
        )

    await db.create_tables()
    ops = DatabaseOperations(db)
    created = await ops.create_one(Paint(id=1, shade=Shade.RED))
    assert created.shade is Shade.RED
    async with by_hand(db) as s:
        s.add(Paint(id=2, shade=Shade.BLUE))
        await s.commit()
        hand = [p.id for p in (await s.execute(select(Paint).where(Paint.shade == "R"))).scalars()]
    assert [p.id for p in await ops.find(Paint, shade="R")] == hand == [1]
    assert [p.id for p in await ops.find(Paint, shade=Shade.BLUE)] == [2]
    assert await ops.update_where(Paint, {"shade": "B"}, id=1) == 1
    assert await ops.update_where(Paint, {"shade": Shade.RED}, id=2) == 1
    assert (await ops.get(Paint, 1)).shade is Shade.BLUE
    assert await ops.count(Paint, shade="R") == 1
    with pytest.raises(InvalidInputError):
        await ops.find(Paint, shade="RED")  # a name, not one of the stored values


class Csv(TypeDecorator[list[str]]):
    """A list of words stored as one comma-separated text."""

    impl = String(60)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return None if value is None else ",".join(value)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else value.split(",")


async def test_create_one_accepts_what_the_orm_accepts(db: AsyncDatabase) -> None:
    class Tag(db.Base):
        __tablename__ = PREFIX + "tag"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        name: Mapped[str] = mapped_column(String(20))
        words: Mapped[list[str]] = mapped_column(Csv, nullable=True)

    await db.create_tables()
    ops = DatabaseOperations(db)
    async with by_hand(db) as s:
        s.add(Tag(id=1, name=func.lower("ABC"), words=["a", "b"]))
        await s.commit()
    created = await ops.create_one(Tag(id=2, name=func.lower("ABC"), words=["a", "b"]))
    assert created.name == "abc" and created.words == ["a", "b"]
    async with by_hand(db) as s:
        rows = [(t.name, t.words) for t in (await s.execute(select(Tag).order_by(Tag.id))).scalars()]
    assert rows == [("abc", ["a", "b"]), ("abc", ["a", "b"])]
    assert [t.words for t in await ops.find(Tag, id=2)] == [["a", "b"]]


async def test_find_mappings_keys_are_the_attribute_keys(db: AsyncDatabase) -> None:
    class Person(db.Base):
        __tablename__ = PREFIX + "person"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        name: Mapped[str] = mapped_column("user_name", String(20))

    await db.create_tables()
    ops = DatabaseOperations(db)
    await ops.insert_many(Person, [{"id": 1, "name": "ada"}, {"id": 2, "name": "bob"}])
    async with by_hand(db) as s:
        hand = [
            {"id": p.id, "name": p.name}
            for p in (await s.execute(select(Person).order_by(Person.id))).scalars()
        ]
    assert await ops.find_mappings(Person) == hand
    assert await ops.find_mappings(Person, id=1) == hand[:1]
    assert await ops.find_mappings(Person, order_by="id") == hand
    assert await ops.find_mappings(Person, name__startswith="a", limit=5) == hand[:1]


# --------------------------------------------------------------------------- 16


async def test_get_one_of_not_a_model_is_a_typed_error(db: AsyncDatabase) -> None:
    ops = DatabaseOperations(db)
    with pytest.raises(InvalidInputError):
        await ops.get_one(int, id=1)  # type: ignore[type-var]
    with pytest.raises(InvalidInputError):
        await ops.get_one(object, id=1)  # type: ignore[type-var]


# --------------------------------------------------------------------------- 6. never sent twice


async def test_a_write_that_reached_the_server_is_never_sent_again(
    db: AsyncDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from dsg_lib import ConstraintViolationError
    from dsg_lib.backends import _compiled

    class Code(db.Base):
        __tablename__ = PREFIX + "code"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        code: Mapped[str] = mapped_column(String(20), unique=True)

    await db.create_tables()
    ops = DatabaseOperations(db)
    await ops.insert_many(Code, [{"id": 1, "code": "a"}, {"id": 2, "code": "b"}])
    sent: list[str] = []
    compiled, execute, flush = _compiled.run_written, AsyncConnection.execute, AsyncSession.flush

    async def compiled_sent(*args: Any) -> Any:
        sent.append("compiled")
        return await compiled(*args)

    async def execute_sent(self: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append("sqlalchemy")
        return await execute(self, *args, **kwargs)

    async def flush_sent(self: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append("flush")
        return await flush(self, *args, **kwargs)

    monkeypatch.setattr(_compiled, "run_written", compiled_sent)
    monkeypatch.setattr(AsyncConnection, "execute", execute_sent)
    monkeypatch.setattr(AsyncSession, "flush", flush_sent)
    with pytest.raises(ConstraintViolationError):
        await ops.update_where(Code, {"code": "b"}, id=1)  # the server refuses it: once
    assert len(sent) == 1, sent
    sent.clear()
    with pytest.raises(ConstraintViolationError):
        await ops.create_one(Code(id=2, code="z"))
    assert len(sent) == 1, sent
    monkeypatch.undo()
    assert await ops.find_mappings(Code, order_by="id") == [{"id": 1, "code": "a"}, {"id": 2, "code": "b"}]


async def test_handle_error_listener_sees_a_refused_write_like_by_hand(db: AsyncDatabase) -> None:
    from dsg_lib import ConstraintViolationError

    Doc = doc_model(db)
    await db.create_tables()
    ops = DatabaseOperations(db)
    await ops.insert_many(Doc, [{"id": 1, "tenant": 1, "title": "a"}])
    seen: list[str] = []

    def on_error(context: Any) -> None:
        seen.append(type(context.original_exception).__name__)

    event.listen(db.engine.sync_engine, "handle_error", on_error)
    try:
        with pytest.raises(IntegrityError):
            async with by_hand(db) as s:
                s.add(Doc(id=1, tenant=1, title="again"))
                await s.commit()
        assert len(seen) == 1
        seen.clear()
        with pytest.raises(ConstraintViolationError):
            await ops.create_one(Doc(id=1, tenant=1, title="again"))
        assert len(seen) == 1
    finally:
        event.remove(db.engine.sync_engine, "handle_error", on_error)
