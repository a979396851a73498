"""DatabaseOperations model-level writes: insert_many, upsert, update_where, delete_where,
get_or_create, and the value checks made before any SQL. Every backend.

Collation: text columns that hold case variants or emoji use ``utf8mb4_bin`` on MariaDB
(``BIN``); under ``utf8mb4_general_ci`` every emoji compares equal, which would break
unique keys and equality.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import JSON, Float, Integer, String, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, column_property, mapped_column

from dsg_lib import AsyncDatabase, ConstraintViolationError, DatabaseError, InvalidInputError
from tests.helpers import captured_sql, count_rows

# pid suffix: concurrent test runs on the same servers do not collide
PREFIX = f"opw_{os.getpid()}_"


def BIN(n: int) -> Any:
    return String(n).with_variant(String(n, collation="utf8mb4_bin"), "mysql", "mariadb")


@pytest.fixture
def models(db: AsyncDatabase) -> SimpleNamespace:
    class Row(db.Base):
        __tablename__ = PREFIX + "row"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        name: Mapped[str | None] = mapped_column(BIN(60), nullable=True)
        qty: Mapped[int | None] = mapped_column(Integer, nullable=True)
        price: Mapped[float | None] = mapped_column(Float, nullable=True)
        tag: Mapped[str] = mapped_column(String(10), default="none")
        qty2 = column_property(qty * 2)  # an expression, not a writable column

    class Auto(db.Base):  # database-generated primary key
        __tablename__ = PREFIX + "auto"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
        name: Mapped[str] = mapped_column(BIN(40))

    class Kv(db.Base):
        __tablename__ = PREFIX + "kv"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
        key: Mapped[str] = mapped_column(BIN(40), unique=True)
        val: Mapped[int] = mapped_column(Integer)
        note: Mapped[str | None] = mapped_column(String(20), nullable=True)

    class Grid(db.Base):  # composite conflict target
        __tablename__ = PREFIX + "grid"
        __table_args__ = (UniqueConstraint("x", "y", name=PREFIX + "grid_xy"),)
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
        x: Mapped[int] = mapped_column(Integer)
        y: Mapped[int] = mapped_column(Integer)
        v: Mapped[str] = mapped_column(String(10))

    class Tag(db.Base):
        __tablename__ = PREFIX + "tag"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
        name: Mapped[str] = mapped_column(BIN(40), unique=True)
        color: Mapped[str | None] = mapped_column(String(10), nullable=True)

    class Doc(db.Base):
        __tablename__ = PREFIX + "doc"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        body: Mapped[Any] = mapped_column(JSON, nullable=True)

    return SimpleNamespace(Row=Row, Auto=Auto, Kv=Kv, Grid=Grid, Tag=Tag, Doc=Doc)


def inserts(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().upper().startswith("INSERT")]


async def rows_of(env: SimpleNamespace, model: Any, *columns: str) -> list[tuple[Any, ...]]:
    cols = [getattr(model, c) for c in columns]
    async with env.db.get_db_session() as s:
        return [tuple(r) for r in (await s.execute(select(*cols).order_by(*cols))).all()]


# --------------------------------------------------------------------------- insert_many


async def test_insert_many_empty_and_one(env: SimpleNamespace) -> None:
    R = env.m.Row
    assert await env.ops.insert_many(R, []) == 0
    assert await env.ops.insert_many(R, iter(())) == 0
    assert await env.ops.insert_many(R, [{"id": 1, "name": "one", "qty": 1}]) == 1
    assert await rows_of(env, R, "id", "name", "qty", "tag") == [(1, "one", 1, "none")]


async def test_insert_many_more_rows_than_one_chunk(env: SimpleNamespace) -> None:
    R = env.m.Row
    rows = [{"id": i, "name": f"n{i}", "qty": i * 2} for i in range(1, 58)]
    assert await env.ops.insert_many(R, rows, chunk_size=10) == 57
    assert await rows_of(env, R, "id", "name", "qty") == [(r["id"], r["name"], r["qty"]) for r in rows]
    for bad in (0, -1, True, "10"):
        with pytest.raises(InvalidInputError):
            await env.ops.insert_many(R, [{"id": 1000}], chunk_size=bad)
    assert await count_rows(env.db, R) == 57


async def test_insert_many_generator_and_async_generator(env: SimpleNamespace) -> None:
    R = env.m.Row

    def gen() -> Iterator[dict[str, Any]]:
        for i in range(25):
            yield {"id": i, "name": f"g{i}"}

    async def agen() -> AsyncIterator[dict[str, Any]]:
        for i in range(100, 125):
            await asyncio.sleep(0)
            yield {"id": i, "name": f"a{i}"}

    assert await env.ops.insert_many(R, gen(), chunk_size=7) == 25
    assert await env.ops.insert_many(R, agen(), chunk_size=7) == 25
    assert await env.ops.insert_many(R, ({"id": i} for i in range(200, 205))) == 5
    assert await count_rows(env.db, R) == 55
    assert await env.ops.count(R, name__startswith="a") == 25


async def test_insert_many_unicode_and_nulls(env: SimpleNamespace) -> None:
    R = env.m.Row
    texts = [
        "héllo wörld",
        "日本語テキスト",
        "emoji 😀🎉👍🏽",
        "עברית",
        "Ω≈ç√∫",
        "zero\u200bwidth",
        "😀",
        "😁",
    ]
    rows = [{"id": i, "name": t, "qty": None, "price": None} for i, t in enumerate(texts)]
    rows.append({"id": 99, "name": None, "qty": None, "price": None})
    assert await env.ops.insert_many(R, rows) == len(rows)
    stored = dict((i, n) for i, n in await rows_of(env, R, "id", "name"))
    assert [stored[i] for i in range(len(texts))] == texts
    assert stored[99] is None
    assert await env.ops.count(R, qty__is_null=True) == len(rows)
    assert [r.id for r in await env.ops.find(R, name="😀")] == [6]  # emoji compare exactly
    assert [r.id for r in await env.ops.find(R, name__contains="🎉")] == [2]


async def test_insert_many_mixed_key_sets(env: SimpleNamespace) -> None:
    R = env.m.Row
    rows = [{"id": 1, "name": "a"}, {"id": 2, "qty": 5}, {"id": 3, "name": "c", "tag": "t"}, {"id": 4}]
    assert await env.ops.insert_many(R, rows) == 4
    assert await rows_of(env, R, "id", "name", "qty", "tag") == [
        (1, "a", None, "none"),
        (2, None, 5, "none"),
        (3, "c", None, "t"),
        (4, None, None, "none"),
    ]


async def test_insert_many_generated_primary_key(env: SimpleNamespace) -> None:
    A = env.m.Auto
    assert await env.ops.insert_many(A, [{"name": f"x{i}"} for i in range(30)], chunk_size=8) == 30
    found = await env.ops.find(A, order_by="id")
    assert len({a.id for a in found}) == 30 and sorted(a.name for a in found) == sorted(
        f"x{i}" for i in range(30)
    )


async def test_insert_many_duplicate_key_is_atomic(env: SimpleNamespace) -> None:
    R = env.m.Row
    await env.ops.insert_many(R, [{"id": 1000, "name": "existing"}])
    rows = [{"id": i, "name": f"n{i}"} for i in range(40)] + [{"id": 1000, "name": "dup"}]
    with pytest.raises(ConstraintViolationError) as info:
        await env.ops.insert_many(R, rows, chunk_size=8)  # the duplicate is in the last chunk
    assert info.value.to_dict()["error"] == "ConstraintViolationError"
    assert await rows_of(env, R, "id", "name") == [(1000, "existing")]
    # a duplicate inside the input itself
    with pytest.raises(ConstraintViolationError):
        await env.ops.insert_many(R, [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}])
    assert await count_rows(env.db, R) == 1


async def test_insert_many_of_one_call_is_atomic_when_the_driver_splits_it(env: SimpleNamespace) -> None:
    """One chunk (no explicit chunk_size) that PyMySQL sends as several INSERT statements (over
    its 1 MB statement length) or sqlite3 as one per row: a duplicate in the last row leaves
    nothing behind, although each statement alone would commit by itself outside a transaction."""
    R = env.m.Row
    await env.ops.insert_many(R, [{"id": 0, "name": "existing"}])
    rows = [
        {"id": i, "name": f"{i:060d}", "qty": 123456789, "price": 1234.5678, "tag": "abcdefghij"}
        for i in range(1, 10_001)
    ]
    rows[-1]["id"] = 0  # the duplicate, with the same keys as every other row
    with pytest.raises(ConstraintViolationError):
        await env.ops.insert_many(R, rows)
    assert await rows_of(env, R, "id", "name") == [(0, "existing")]


async def test_insert_many_rejects_bad_rows(env: SimpleNamespace) -> None:
    R = env.m.Row
    bad_inputs: list[Any] = [
        [{"id": 1, "nope": 1}],
        [{"id": 1, "__class__": 1}],
        [{"id": "1"}],
        [{"id": 1}, ["not", "a", "dict"]],
        [{"id": 1, "qty": 2**31}],
        [{"id": 1, "price": float("nan")}],
        [{"id": 1, "price": float("-inf")}],
        [{"id": 1, "name": "nul\x00byte"}],
        [{"id": 1, "name": "lone \ud800 surrogate"}],
        [{"id": 1, "name": "x" * 61}],
        [{"id": 1, "name": {"a": 1}}],
        [{"id": 1, "qty": "3"}],
        [{"id": 1, "qty": 1.5}],
        {"id": 1},  # a dict, not rows
        "rows",
        5,
    ]
    with captured_sql(env.db) as sql:
        for rows in bad_inputs:
            with pytest.raises(InvalidInputError):
                await env.ops.insert_many(R, rows)
    assert inserts(sql) == []
    assert await count_rows(env.db, R) == 0


async def test_insert_many_null_primary_key_is_not_null_violation(env: SimpleNamespace) -> None:
    with captured_sql(env.db) as sql, pytest.raises(ConstraintViolationError) as info:
        await env.ops.insert_many(env.m.Row, [{"id": None}])
    assert info.value.kind == "not_null"
    assert inserts(sql) == []


async def test_expression_property_is_not_a_column(env: SimpleNamespace) -> None:
    """A ``column_property(expression)`` key is rejected: not silently dropped (insert_many),
    not a bare KeyError (upsert)."""
    R = env.m.Row
    calls = [
        lambda: env.ops.insert_many(R, [{"id": 1, "qty": 1, "qty2": 4}]),
        lambda: env.ops.upsert(R, [{"id": 1, "qty2": 4}], "id"),
        lambda: env.ops.upsert(R, [{"id": 1, "qty": 4}], "id", update=("qty2",)),
        lambda: env.ops.update_where(R, {"qty2": 4}, id=1),
        lambda: env.ops.get_or_create(R, id=1, defaults={"qty2": 4}),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError):
            await call()
    assert await count_rows(env.db, R) == 0
    await env.ops.insert_many(R, [{"id": 1, "qty": 3}])
    assert (await env.ops.get(R, 1)).qty2 == 6  # still readable as an attribute


async def test_insert_many_bad_row_in_later_chunk_leaves_table_unchanged(env: SimpleNamespace) -> None:
    R = env.m.Row
    rows = [{"id": i, "qty": i} for i in range(30)] + [{"id": 30, "qty": "bad"}]
    with pytest.raises(InvalidInputError):
        await env.ops.insert_many(R, rows, chunk_size=5)
    assert await count_rows(env.db, R) == 0


async def test_insert_many_json_column(env: SimpleNamespace) -> None:
    D = env.m.Doc
    bodies = [{"a": [1, 2, {"b": None}]}, [1, "two", 3.5], "text", 7, True, None]
    await env.ops.insert_many(D, [{"id": i, "body": b} for i, b in enumerate(bodies)])
    got = {d.id: d.body for d in await env.ops.find(D)}
    assert [got[i] for i in range(len(bodies))] == bodies
    for bad in ({"x": float("nan")}, {1: "int key"}, {"s": {1, 2}}, object(), {"t": "nul\x00"}):
        with pytest.raises(InvalidInputError):
            await env.ops.insert_many(D, [{"id": 100, "body": bad}])
    assert await count_rows(env.db, D) == len(bodies)


async def test_insert_many_validate_false_skips_checks(env: SimpleNamespace) -> None:
    """``validate=False`` sends the rows without the pre-SQL check; SQLite keeps any text length."""
    R = env.m.Row
    with pytest.raises(InvalidInputError):
        await env.ops.insert_many(R, [{"id": 1, "name": "y" * 70}])
    try:
        inserted = await env.ops.insert_many(R, [{"id": 1, "name": "y" * 70}], validate=False)
    except DatabaseError as exc:  # PostgreSQL / MariaDB strict mode reject it in the database
        assert env.dialect != "sqlite"
        assert "exceeds its length" not in exc.details
        assert await count_rows(env.db, R) == 0
    else:
        assert env.dialect == "sqlite" and inserted == 1


async def test_insert_many_postgresql_uses_copy(env: SimpleNamespace) -> None:
    R = env.m.Row
    rows = [{"id": i, "name": f"c{i}", "qty": i, "price": i / 2} for i in range(500)]
    with captured_sql(env.db) as sql:
        assert await env.ops.insert_many(R, rows) == 500
    if env.dialect == "postgresql":
        assert inserts(sql) == [], "PostgreSQL insert_many should use COPY, not INSERT"
    else:
        assert inserts(sql), "non-PostgreSQL backends use executemany INSERT"
    assert await env.ops.count(R) == 500
    stored = await env.ops.get(R, 499)
    assert (stored.name, stored.qty, stored.price, stored.tag) == ("c499", 499, 249.5, "none")


# --------------------------------------------------------------------------- upsert


async def test_upsert_insert_then_update(env: SimpleNamespace) -> None:
    K = env.m.Kv
    assert await env.ops.upsert(K, [{"key": "a", "val": 1}, {"key": "b", "val": 2}], conflict="key") == 2
    affected = await env.ops.upsert(
        K, [{"key": "b", "val": 20}, {"key": "c", "val": 3}, {"key": "A", "val": 100}], conflict=("key",)
    )
    assert affected == 3
    assert await rows_of(env, K, "key", "val") == [("A", 100), ("a", 1), ("b", 20), ("c", 3)]
    assert await env.ops.upsert(K, [], conflict="key") == 0


async def test_upsert_update_subset_and_nothing(env: SimpleNamespace) -> None:
    K = env.m.Kv
    await env.ops.upsert(
        K, [{"key": "a", "val": 1, "note": "n1"}, {"key": "b", "val": 2, "note": "n2"}], "key"
    )
    n = await env.ops.upsert(K, [{"key": "a", "val": 10, "note": "changed"}], "key", update=("val",))
    assert n == 1
    assert await rows_of(env, K, "key", "val", "note") == [("a", 10, "n1"), ("b", 2, "n2")]
    n = await env.ops.upsert(
        K, [{"key": "a", "val": 99, "note": "x"}, {"key": "z", "val": 26, "note": "new"}], "key", update=()
    )
    # PostgreSQL/SQLite count only the inserted row; MySQL/MariaDB count every row processed
    assert n == (2 if env.dialect in ("mysql", "mariadb") else 1)
    assert await rows_of(env, K, "key", "val", "note") == [("a", 10, "n1"), ("b", 2, "n2"), ("z", 26, "new")]


async def test_upsert_composite_conflict(env: SimpleNamespace) -> None:
    G = env.m.Grid
    assert await env.ops.upsert(G, [{"x": 1, "y": 1, "v": "a"}, {"x": 1, "y": 2, "v": "b"}], ("x", "y")) == 2
    assert await env.ops.upsert(G, [{"x": 1, "y": 2, "v": "B"}, {"x": 2, "y": 1, "v": "c"}], ("x", "y")) == 2
    assert await rows_of(env, G, "x", "y", "v") == [(1, 1, "a"), (1, 2, "B"), (2, 1, "c")]


async def test_upsert_rejects_bad_input(env: SimpleNamespace) -> None:
    K = env.m.Kv
    await env.ops.upsert(K, [{"key": "a", "val": 1}], "key")
    bad_calls: list[tuple[Any, ...]] = [
        ([{"key": "x", "val": 1}, {"key": "x", "val": 2}], "key", None),  # same key twice in the input
        ([{"key": "a", "val": 5}, {"key": "a", "val": 6}], "key", None),
        ([{"val": 1}], "key", None),  # missing conflict column
        ([{"key": "x", "val": 1}], "nope", None),
        ([{"key": "x", "val": 1}], (), None),
        ([{"key": "x", "val": 1}], "key", ("nope",)),
        ([{"key": "x", "val": 1}], "key", ("key",)),
        ([{"key": "x", "val": "1"}], "key", None),
        ([{"key": "x", "bogus": 1}], "key", None),
        ({"key": "x", "val": 1}, "key", None),
    ]
    for rows, conflict, update in bad_calls:
        with pytest.raises(InvalidInputError):
            await env.ops.upsert(K, rows, conflict, update)
    assert await rows_of(env, K, "key", "val") == [("a", 1)]


async def test_upsert_more_rows_than_bind_limit(env: SimpleNamespace) -> None:
    """12,000 rows x 3 columns = 36,000 parameters: more than one statement may carry on SQLite
    (32,766) and PostgreSQL (32,767), so the call must split it into several statements."""
    K = env.m.Kv
    n = 12_000
    await env.ops.insert_many(K, [{"key": f"k{i:05d}", "val": -1} for i in range(0, n, 2)])  # half exist
    rows = [{"key": f"k{i:05d}", "val": i, "note": "u"} for i in range(n)]
    assert await env.ops.upsert(K, rows, "key") == n
    async with env.db.get_db_session() as s:
        total, vals, notes = (
            await s.execute(select(func.count(), func.sum(K.val), func.count(K.note)).select_from(K))
        ).one()
    assert (total, int(vals), notes) == (n, sum(range(n)), n)


# --------------------------------------------------------------------------- update_where / delete_where


async def seed_rows(env: SimpleNamespace) -> None:
    await env.ops.insert_many(env.m.Row, [{"id": i, "name": f"r{i}", "qty": i % 3} for i in range(1, 13)])


async def test_update_where(env: SimpleNamespace) -> None:
    R = env.m.Row
    await seed_rows(env)
    assert await env.ops.update_where(R, {"tag": "zero"}, qty=0) == 4
    assert await env.ops.update_where(R, {"tag": "zero"}, qty=0) == 4  # matched rows, even when unchanged
    assert await env.ops.update_where(R, {"price": 1.5}, R.id > 10, qty__ne=0) == 1  # id 11 (qty 2)
    assert await env.ops.update_where(R, {"tag": "x"}, qty=99) == 0
    assert await env.ops.count(R, tag="zero") == 4
    assert await env.ops.count(R, price=1.5) == 1
    assert await env.ops.update_where(R, {"qty": None}, all_rows=True) == 12
    assert await env.ops.count(R, qty__is_null=True) == 12


async def test_update_where_refusals_change_nothing(env: SimpleNamespace) -> None:
    R = env.m.Row
    await seed_rows(env)
    before = await rows_of(env, R, "id", "name", "qty", "tag")
    with captured_sql(env.db) as sql:
        for kwargs in ({}, {"all_rows": False}, {"all_rows": "yes"}, {"all_rows": 1}):
            with pytest.raises(InvalidInputError):
                await env.ops.update_where(R, {"tag": "all"}, **kwargs)
        for values in ({}, {"nope": 1}, {"qty": "1"}, {"name": "x" * 61}, {"qty": 2**40}, None, [("qty", 1)]):
            with pytest.raises(InvalidInputError):
                await env.ops.update_where(R, values, id=1)
        with pytest.raises(InvalidInputError):
            await env.ops.update_where(R, {"tag": "t"}, nope=1)
    assert [s for s in sql if s.lstrip().upper().startswith("UPDATE")] == []
    assert await rows_of(env, R, "id", "name", "qty", "tag") == before


async def test_delete_where(env: SimpleNamespace) -> None:
    R = env.m.Row
    await seed_rows(env)
    assert await env.ops.delete_where(R, qty=0) == 4
    assert await env.ops.delete_where(R, qty=0) == 0
    assert await env.ops.delete_where(R, R.id < 3) == 2  # ids 1, 2
    assert await env.ops.count(R) == 6
    with pytest.raises(InvalidInputError):
        await env.ops.delete_where(R)
    with pytest.raises(InvalidInputError):
        await env.ops.delete_where(R, all_rows=1)
    with pytest.raises(InvalidInputError):
        await env.ops.delete_where(R, id="1")
    assert await env.ops.count(R) == 6
    assert await env.ops.delete_where(R, all_rows=True) == 6
    assert await env.ops.count(R) == 0


# --------------------------------------------------------------------------- get_or_create


async def test_get_or_create(env: SimpleNamespace) -> None:
    T = env.m.Tag
    tag, created = await env.ops.get_or_create(T, name="python", defaults={"color": "blue"})
    assert created is True and isinstance(tag.id, int) and tag.color == "blue"
    again, created = await env.ops.get_or_create(T, name="python", defaults={"color": "red"})
    assert created is False and again.id == tag.id and again.color == "blue"
    other, created = await env.ops.get_or_create(T, name="Python")  # case-sensitive column
    assert created is True and other.id != tag.id
    assert await env.ops.count(T) == 2
    for bad in ({}, {"name__startswith": "p"}, {"nope": 1}, {"name": 5}):
        with pytest.raises(InvalidInputError):
            await env.ops.get_or_create(T, **bad)
    with pytest.raises(InvalidInputError):
        await env.ops.get_or_create(T, name="x", defaults={"bogus": 1})
    assert await env.ops.count(T) == 2


async def test_get_or_create_concurrent_callers(env: SimpleNamespace) -> None:
    T = env.m.Tag
    results = await asyncio.gather(*(env.ops.get_or_create(T, name="shared") for _ in range(20)))
    assert sum(1 for _, created in results if created) == 1
    assert len({tag.id for tag, _ in results}) == 1
    assert await env.ops.count(T) == 1
    assert env.db.pool_status()["checked_out"] == 0
