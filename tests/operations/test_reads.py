"""DatabaseOperations model-level reads: get, get_one, find (every filter op), find_mappings,
count, exists; hostile filter names and values; value checks before SQL. Every backend.

Collation: ``name`` uses ``utf8mb4_bin`` on MariaDB so case-sensitive tests (``eq``,
``contains``) behave like PostgreSQL. ``like`` is case-insensitive on SQLite for ASCII, so
the ``like`` data is chosen so case does not matter (no name differs from another only by
case under the patterns used). ``city`` uses the server default collation and its values
never differ only by case.
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Float, ForeignKey, Integer, SmallInteger, String, and_, or_
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dsg_lib import (
    AsyncDatabase,
    DatabaseError,
    InvalidInputError,
    MultipleRecordsFoundError,
    RecordNotFoundError,
)
from tests.helpers import captured_sql

# pid suffix: concurrent test runs on the same servers do not collide
PREFIX = f"opr_{os.getpid()}_"
BIN50 = String(50).with_variant(String(50, collation="utf8mb4_bin"), "mysql", "mariadb")

PEOPLE = [
    {"id": 1, "name": "alice", "age": 30, "score": 1.5, "city": "Paris"},
    {"id": 2, "name": "Alan", "age": 25, "score": 2.5, "city": "Lyon"},
    {"id": 3, "name": "bob", "age": None, "score": 3.0, "city": None},
    {"id": 4, "name": "50%_off", "age": 40, "score": None, "city": "Rome"},
    {"id": 5, "name": "50xyoff", "age": 41, "score": 0.5, "city": "Rome"},
    {"id": 6, "name": None, "age": 18, "score": 0.0, "city": "Oslo"},
    {"id": 7, "name": "carol", "age": 30, "score": -1.0, "city": "Paris"},
]


@pytest.fixture
def models(db: AsyncDatabase) -> SimpleNamespace:
    class Person(db.Base):
        __tablename__ = PREFIX + "person"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        name: Mapped[str | None] = mapped_column(BIN50, nullable=True)
        age: Mapped[int | None] = mapped_column(Integer, nullable=True)
        score: Mapped[float | None] = mapped_column(Float, nullable=True)
        city: Mapped[str | None] = mapped_column(String(30), nullable=True)
        small: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
        pets: Mapped[list[Pet]] = relationship(back_populates="owner")

    class Pet(db.Base):
        __tablename__ = PREFIX + "pet"
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
        owner_id: Mapped[int] = mapped_column(ForeignKey(PREFIX + "person.id"))
        name: Mapped[str] = mapped_column(String(30))
        owner: Mapped[Person] = relationship(back_populates="pets")

    class Link(db.Base):
        __tablename__ = PREFIX + "link"
        a: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
        b: Mapped[str] = mapped_column(String(10), primary_key=True)
        note: Mapped[str] = mapped_column(String(20))

    return SimpleNamespace(Person=Person, Pet=Pet, Link=Link)


@pytest.fixture
async def env(env: SimpleNamespace, db: AsyncDatabase) -> SimpleNamespace:
    """``env`` of tests/operations/conftest.py, with ``PEOPLE``, their pets and links inserted."""
    m, ops = env.m, env.ops
    await ops.insert_many(m.Person, PEOPLE)
    await ops.insert_many(
        m.Pet, [{"id": 1, "owner_id": 1, "name": "rex"}, {"id": 2, "owner_id": 1, "name": "tom"}]
    )
    await ops.insert_many(
        m.Link,
        [
            {"a": 1, "b": "x", "note": "1x"},
            {"a": 1, "b": "y", "note": "1y"},
            {"a": 2, "b": "x", "note": "2x"},
        ],
    )
    return env


async def ids(env: SimpleNamespace, *where: Any, **filters: Any) -> list[int]:
    return sorted(p.id for p in await env.ops.find(env.m.Person, *where, **filters))


async def table_intact(env: SimpleNamespace) -> None:
    assert await env.ops.count(env.m.Person) == len(PEOPLE)
    assert await env.ops.count(env.m.Pet) == 2


# --------------------------------------------------------------------------- get / get_one


async def test_get(env: SimpleNamespace) -> None:
    P = env.m.Person
    person = await env.ops.get(P, 1)
    assert isinstance(person, P) and person.name == "alice"
    assert await env.ops.get(P, 999) is None
    assert (await env.ops.get(P, (2,))).name == "Alan"


async def test_get_wrong_typed_id(env: SimpleNamespace) -> None:
    with captured_sql(env.db) as sql:
        for bad_id in ("1", 1.0, None, True, [1, 2], {"id": 1}, 2**40):
            with pytest.raises(InvalidInputError) as info:
                await env.ops.get(env.m.Person, bad_id)
            assert isinstance(info.value, ValueError)
    assert sql == []


async def test_get_composite_key(env: SimpleNamespace) -> None:
    L = env.m.Link
    assert (await env.ops.get(L, (1, "y"))).note == "1y"
    assert (await env.ops.get(L, {"a": 2, "b": "x"})).note == "2x"
    assert await env.ops.get(L, (2, "y")) is None
    for bad in (1, (1,), (1, "x", 3), ("1", "x"), (1, 2)):
        with pytest.raises(InvalidInputError):
            await env.ops.get(L, bad)


async def test_get_one(env: SimpleNamespace) -> None:
    P = env.m.Person
    assert (await env.ops.get_one(P, name="bob")).id == 3
    assert (await env.ops.get_one(P, P.age == 25)).name == "Alan"
    with pytest.raises(RecordNotFoundError) as missing:
        await env.ops.get_one(P, name="zed")
    assert missing.value.to_dict()["error"] == "RecordNotFoundError"
    with pytest.raises(MultipleRecordsFoundError) as many:
        await env.ops.get_one(P, city="Paris")
    assert many.value.to_dict() == {"error": "MultipleRecordsFoundError", "details": many.value.details}


# --------------------------------------------------------------------------- find: every operator


async def test_find_eq_and_none(env: SimpleNamespace) -> None:
    assert await ids(env, name="alice") == [1]
    assert await ids(env, name__eq="alice") == [1]
    assert await ids(env, name="ALICE") == []  # case-sensitive (binary collation on MariaDB)
    assert await ids(env, name=None) == [6]
    assert await ids(env, score=0.0) == [6]
    assert await ids(env, city="Rome", age=41) == [5]


async def test_find_ne_excludes_null(env: SimpleNamespace) -> None:
    # SQL semantics: NULL != 30 is unknown, so row 3 (age NULL) does not match
    assert await ids(env, age__ne=30) == [2, 4, 5, 6]
    assert await ids(env, name__ne="alice") == [2, 3, 4, 5, 7]
    assert await ids(env, name__ne=None) == [1, 2, 3, 4, 5, 7]


async def test_find_comparisons(env: SimpleNamespace) -> None:
    assert await ids(env, age__lt=30) == [2, 6]
    assert await ids(env, age__lte=30) == [1, 2, 6, 7]
    assert await ids(env, age__gt=30) == [4, 5]
    assert await ids(env, age__gte=30) == [1, 4, 5, 7]
    assert await ids(env, score__lt=0.5) == [6, 7]
    assert await ids(env, age__gte=25, age__lt=41) == [1, 2, 4, 7]
    assert await ids(env, name__gt="bob") == [
        7
    ]  # binary order: 'carol' > 'bob'; uppercase and digits sort lower
    with pytest.raises(InvalidInputError):
        await ids(env, age__lt=None)


async def test_find_in_not_in(env: SimpleNamespace) -> None:
    assert await ids(env, age__in=[25, 40, 99]) == [2, 4]
    assert await ids(env, age__in=(30,)) == [1, 7]
    assert await ids(env, age__in=[]) == []
    assert await ids(env, age__not_in=[30, 41]) == [2, 4, 6]  # NULL age (3) excluded
    assert await ids(env, name__in=["bob", "carol", "nobody"]) == [3, 7]
    assert await ids(env, id__in=range(3, 6)) == [3, 4, 5]
    with pytest.raises(InvalidInputError):
        await ids(env, age__in=30)
    with pytest.raises(InvalidInputError):
        await ids(env, age__in="30")
    with pytest.raises(InvalidInputError):
        await ids(env, age__in=[30, "31"])


async def test_find_like_ilike(env: SimpleNamespace) -> None:
    # data chosen so ASCII case does not matter for these patterns on any backend
    assert await ids(env, name__like="b%") == [3]
    assert await ids(env, name__like="%o_f") == [4, 5]
    assert await ids(env, name__like="50%off") == [4, 5]  # pattern: % is a wildcard here
    assert await ids(env, name__ilike="AL%") == [1, 2]
    assert await ids(env, name__ilike="%ROL") == [7]
    with pytest.raises(InvalidInputError):
        await ids(env, name__like=5)


async def test_find_contains_startswith_endswith_are_literal(env: SimpleNamespace) -> None:
    assert await ids(env, name__contains="%_") == [4]
    assert await ids(env, name__contains="%") == [4]
    assert await ids(env, name__contains="_") == [4]
    assert await ids(env, name__startswith="50%") == [4]
    assert await ids(env, name__startswith="50") == [4, 5]
    assert await ids(env, name__endswith="_off") == [4]
    assert await ids(env, name__endswith="off") == [4, 5]
    assert await ids(env, name__contains="li") == [1]
    # case-sensitive on every backend
    assert await ids(env, name__contains="A") == [2]
    assert await ids(env, name__startswith="al") == [1]
    assert await ids(env, name__startswith="Al") == [2]
    assert await ids(env, name__endswith="AN") == []
    for value in ("%", "_", "\\", "/", "'", '"'):
        await ids(env, name__contains=value)  # never a syntax error


async def test_find_is_null(env: SimpleNamespace) -> None:
    assert await ids(env, age__is_null=True) == [3]
    assert await ids(env, age__is_null=False) == [1, 2, 4, 5, 6, 7]
    assert await ids(env, city__is_null=True, name__is_null=False) == [3]
    with pytest.raises(InvalidInputError):
        await ids(env, age__is_null="yes")


async def test_find_positional_expressions(env: SimpleNamespace) -> None:
    P = env.m.Person
    assert await ids(env, or_(P.age < 20, P.age > 40)) == [5, 6]
    assert await ids(env, or_(P.name == "bob", P.city == "Lyon"), age__is_null=True) == [3]
    assert await ids(env, and_(P.age >= 30, P.city == "Paris")) == [1, 7]
    with pytest.raises(InvalidInputError):
        await env.ops.find(P, "age > 3")
    with pytest.raises(InvalidInputError):
        await env.ops.find(P, {"age": 3})


async def test_find_order_limit_offset(env: SimpleNamespace) -> None:
    P = env.m.Person
    found = await env.ops.find(P, age__is_null=False, order_by="-age")
    assert [p.id for p in found] == [5, 4, 1, 7, 2, 6] or [p.id for p in found] == [5, 4, 7, 1, 2, 6]
    found = await env.ops.find(P, age__is_null=False, order_by=["-age", "id"])
    assert [p.id for p in found] == [5, 4, 1, 7, 2, 6]
    found = await env.ops.find(P, city__is_null=False, order_by=["city", "-id"])
    assert [p.id for p in found] == [2, 6, 7, 1, 5, 4]
    found = await env.ops.find(P, order_by=[P.score.is_(None), P.score.desc(), "id"])
    assert [p.id for p in found] == [3, 2, 1, 5, 6, 7, 4]
    assert [p.id for p in await env.ops.find(P, order_by="id", limit=2, offset=2)] == [3, 4]
    assert [p.id for p in await env.ops.find(P, order_by="id", limit=3)] == [1, 2, 3]
    assert [p.id for p in await env.ops.find(P, order_by="-id", offset=5)] == [2, 1]
    assert await env.ops.find(P, order_by="id", limit=0) == []
    for bad in (
        {"limit": -1},
        {"offset": -2},
        {"limit": "5"},
        {"limit": True},
        {"order_by": "nope"},
        {"order_by": "-pets"},
        {"order_by": 5},
        {"order_by": f"id; drop table {PREFIX}person"},
    ):
        with pytest.raises(InvalidInputError):
            await env.ops.find(P, **bad)
    await table_intact(env)


async def test_find_mappings(env: SimpleNamespace) -> None:
    rows = await env.ops.find_mappings(env.m.Person, city="Paris", order_by="id")
    assert rows == [
        {"id": 1, "name": "alice", "age": 30, "score": 1.5, "city": "Paris", "small": None},
        {"id": 7, "name": "carol", "age": 30, "score": -1.0, "city": "Paris", "small": None},
    ]
    assert all(type(r) is dict for r in rows)
    assert await env.ops.find_mappings(env.m.Person, age__gt=1000) == []
    assert [r["id"] for r in await env.ops.find_mappings(env.m.Person, order_by="-id", limit=2)] == [7, 6]


async def test_count_exists(env: SimpleNamespace) -> None:
    P = env.m.Person
    assert await env.ops.count(P) == 7
    assert await env.ops.count(P, city="Paris") == 2
    assert await env.ops.count(P, or_(P.age.is_(None), P.age > 40)) == 2
    assert await env.ops.count(P, age__gt=1000) == 0
    assert await env.ops.exists(P, name="bob") is True
    assert await env.ops.exists(P, name="zed") is False
    assert await env.ops.exists(P) is True
    assert await env.ops.exists(env.m.Link, a=2, b="x") is True
    with pytest.raises(InvalidInputError):
        await env.ops.count(P, nope=1)
    with pytest.raises(InvalidInputError):
        await env.ops.exists(P, nope=1)


# --------------------------------------------------------------------------- relationships / options


async def test_relationship_loaded_with_options_after_session_closed(env: SimpleNamespace) -> None:
    from sqlalchemy.orm import selectinload

    P = env.m.Person
    people = await env.ops.find(P, id__in=[1, 2], order_by="id", options=[selectinload(P.pets)])
    # the session is closed: attributes and the eagerly loaded relationship are readable
    assert sorted(p.name for p in people[0].pets) == ["rex", "tom"]
    assert people[1].pets == []
    one = await env.ops.get(P, 1, options=[selectinload(P.pets)])
    assert one is not None and len(one.pets) == 2
    got = await env.ops.get_one(env.m.Pet, name="rex", options=[selectinload(env.m.Pet.owner)])
    assert got.owner.name == "alice"


# --------------------------------------------------------------------------- hostile filter names

HOSTILE_NAMES = [
    "nope",
    f"name; drop table {PREFIX}person",
    "name__eq OR 1=1",
    "name = 'x' OR 1=1 --",
    f"name__eq; DELETE FROM {PREFIX}person",
    "__class__",
    "__dict__",
    "_sa_instance_state",
    "__table__",
    "metadata",
    "registry",
    "pets",  # a relationship, not a column
    "pets__eq",
    "name__regex",  # unknown operator
    "name__",
    "name__eq__eq",
    "name__in__",
    "__eq",
    "",
    "NAME",
    "a" * 10_000,
    "name__" + "x" * 10_000,
    "name\x00",
    "nämé",
]


async def test_hostile_filter_names(env: SimpleNamespace) -> None:
    P = env.m.Person
    reads = (env.ops.find, env.ops.count, env.ops.exists, env.ops.get_one, env.ops.find_mappings)
    with captured_sql(env.db) as sql:
        for name in HOSTILE_NAMES:
            for call in reads:
                with pytest.raises(InvalidInputError) as info:
                    await call(P, **{name: "x"})
                assert len(info.value.details) < 500, name[:30]  # a very long name is not echoed in full
            with pytest.raises(InvalidInputError):
                await env.ops.update_where(P, {"age": 1}, **{name: "x"})
            with pytest.raises(InvalidInputError):
                await env.ops.delete_where(P, **{name: "x"})
            with pytest.raises(InvalidInputError):
                await env.ops.get_or_create(P, **{name: "x"})
    assert sql == []  # nothing was sent to the database
    await table_intact(env)


INJECTION_VALUES = [
    "' OR '1'='1",
    "alice' --",
    f"x'; DROP TABLE {PREFIX}person; --",
    f'"; DELETE FROM {PREFIX}person; --',
    "1 OR 1=1",
    "%' OR name LIKE '%",
    "\\'; --",
]


async def test_injection_values_are_data(env: SimpleNamespace) -> None:
    P = env.m.Person
    for value in INJECTION_VALUES:
        for op in ("", "__ne", "__contains", "__startswith", "__like", "__in"):
            await env.ops.find(P, **{"name" + op: [value] if op == "__in" else value})
        assert await ids(env, name=value) == []
        assert await env.ops.delete_where(P, name=value) == 0
        assert await env.ops.update_where(P, {"city": value[:30]}, name=value) == 0
        await table_intact(env)
    new_ids = list(range(100, 100 + len(INJECTION_VALUES)))
    await env.ops.insert_many(
        P, [{"id": i, "name": v} for i, v in zip(new_ids, INJECTION_VALUES, strict=True)]
    )
    for i, value in zip(new_ids, INJECTION_VALUES, strict=True):
        assert await ids(env, name=value) == [i]
        assert await ids(env, name__contains=value) == [i]
        assert (await env.ops.get(P, i)).name == value


# --------------------------------------------------------------------------- value checks before SQL

BAD_FILTERS: list[tuple[str, Any]] = [
    ("age", "30"),  # str for int
    ("age", 30.0),  # float for int
    ("age", True),  # bool for int
    ("age", 2**31),  # Integer out of range
    ("age__gt", -(2**31) - 1),
    ("small", 2**15),  # SmallInteger out of range
    ("score", float("nan")),
    ("score__lt", float("inf")),
    ("score", "1.5"),
    ("name", "a\x00b"),  # NUL byte
    ("name", "\ud800"),  # lone surrogate
    ("name__contains", "\udfff"),
    ("name", "x" * 51),  # longer than String(50)
    ("name", {"a": 1}),  # dict for a non-JSON column
    ("name", ["a"]),
    ("name", b"bytes"),
    ("name__in", ["ok", 5]),
    ("city__startswith", 5),
]


async def test_filter_value_checked_before_sql(env: SimpleNamespace) -> None:
    with captured_sql(env.db) as sql:
        for key, value in BAD_FILTERS:
            with pytest.raises(InvalidInputError) as info:
                await env.ops.find(env.m.Person, **{key: value})
            assert isinstance(info.value, DatabaseError) and isinstance(info.value, ValueError)
            assert info.value.to_dict()["error"] == "InvalidInputError"
    assert sql == []


async def test_validate_false_skips_filter_checks(env: SimpleNamespace) -> None:
    """With ``validate=False`` the value check is skipped: SQL is sent (and may fail in the database)."""
    P = env.m.Person
    with pytest.raises(InvalidInputError):
        await env.ops.update_where(P, {"city": "Bergen"}, name="x" * 60)
    with captured_sql(env.db) as sql:
        try:
            changed = await env.ops.update_where(P, {"city": "Bergen"}, name="x" * 60, validate=False)
        except DatabaseError as exc:  # a backend may reject it itself; not the pre-SQL check
            assert "exceeds its length" not in exc.details
        else:
            assert changed == 0
    assert any(s.lstrip().upper().startswith("UPDATE") for s in sql)
    await table_intact(env)
