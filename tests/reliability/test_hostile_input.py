"""Hostile input: filter names and values from an attacker never reach the database as SQL,
always fail with a typed ``dsg_lib`` error (never a raw driver exception) and change nothing.

Paths exercised: ``find`` (filters), ``insert_many``, ``create_one``, ``update_where``
(values), with validation on (the default) and, for the driver error mapping,
``validate=False``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import Float, ForeignKey, Integer, String, Text, event, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dsg_lib import (
    AsyncDatabase,
    ConstraintViolationError,
    DatabaseError,
    DatabaseOperations,
    InvalidInputError,
)
from dsg_lib.filters import OPERATORS

from .conftest import assert_no_leak, close_db, make_db, require, unique, url_for

pytestmark = pytest.mark.reliability

SEED = [
    {"name": "alpha", "body": "first", "n": 1, "x": 1.5},
    {"name": "beta", "body": None, "n": 2, "x": None},
    {"name": "gamma", "body": "third", "n": None, "x": -2.0},
]
BIG = "x" * (10 * 1024 * 1024)  # 10 MB
MARK = -777  # the n of rows a test writes, to find and remove them


class Env:
    def __init__(self, backend: str, db: AsyncDatabase, Owner: type, Thing: type) -> None:
        self.backend, self.db, self.Owner, self.Thing = backend, db, Owner, Thing
        self.ops = DatabaseOperations(db)
        self.statements = 0

        @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
        def _count(*_: Any) -> None:
            self.statements += 1

    async def snapshot(self) -> tuple[int, str]:
        T = self.Thing
        async with self.db.get_db_session() as s:
            rows = (await s.execute(select(T.id, T.name, T.body, T.n, T.x, T.owner_id).order_by(T.id))).all()
        digest = hashlib.sha256(repr([tuple(r) for r in rows]).encode("utf-8", "surrogatepass")).hexdigest()
        return len(rows), digest

    async def reseed(self) -> None:
        await self.ops.delete_where(self.Thing, all_rows=True)
        await self.ops.insert_many(self.Thing, SEED)  # ids from the sequence / autoincrement


def _models(db: AsyncDatabase) -> tuple[type, type]:
    owner_table, thing_table = unique("owner"), unique("thing")

    class Owner(db.Base):  # type: ignore[name-defined,misc]
        __tablename__ = owner_table
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        label: Mapped[str] = mapped_column(String(20))

    class Thing(db.Base):  # type: ignore[name-defined,misc]
        __tablename__ = thing_table
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
        name: Mapped[str] = mapped_column(String(50), nullable=False)
        body: Mapped[str | None] = mapped_column(Text, nullable=True)  # no length
        n: Mapped[int | None] = mapped_column(Integer, nullable=True)
        x: Mapped[float | None] = mapped_column(Float, nullable=True)
        owner_id: Mapped[int | None] = mapped_column(ForeignKey(f"{owner_table}.id"), nullable=True)
        owner: Mapped[Owner | None] = relationship(Owner)

    return Owner, Thing


@pytest.fixture(params=["postgresql", "mariadb", "sqlite_file"])
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    await require(request.param)
    db = make_db(url_for(request.param, tmp_path))
    Owner, Thing = _models(db)
    await db.create_tables(Owner, Thing)
    environment = Env(request.param, db, Owner, Thing)
    await environment.reseed()
    yield environment
    assert_no_leak(db)
    await close_db(db, Thing, Owner)


# --------------------------------------------------------------------------- #
# filter names                                                                 #
# --------------------------------------------------------------------------- #
HOSTILE_NAMES = [
    "id; DROP TABLE users",
    "name OR 1=1",
    "name = name",
    "1=1",
    "id'--",
    'name" --',
    "name/**/",
    "(select 1)",
    "__class__",
    "__init__",
    "__dict__",
    "__table__",
    "__tablename__",
    "__mapper__",
    "_sa_instance_state",
    "_sa_class_manager",
    "metadata",
    "registry",
    "owner",  # a relationship, not a column
    "owner__eq",
    "owner__is_null",
    "owner__owner_id",  # a relationship path (owner__id is one) must name a column of Owner
    "owner__label__label",
    "name__",
    "__",
    "",
    "name__eq__eq",
    "name__unknown",
    "name__in__x",
    "name__lower",
    "name__ilike; DROP",
    "name\x00",
    "n\u0430me",  # Cyrillic small a
    "NAME",
    "n" * 10_000,
    "name__" + "eq" * 5_000,
    "x" * 1_000_000,
    "id\n",
    " id",
]


async def test_hostile_filter_names_are_rejected_before_sql(env: Env) -> None:
    before = await env.snapshot()
    for name in HOSTILE_NAMES:
        env.statements = 0
        with pytest.raises(InvalidInputError) as info:
            await env.ops.find(env.Thing, **{name: "x"})
        assert env.statements == 0, f"{name[:40]!r} reached the database"
        assert len(str(info.value)) < 2_000, "the error echoes an unbounded attacker string"
        for call in (
            lambda name=name: env.ops.count(env.Thing, **{name: 1}),
            lambda name=name: env.ops.update_where(env.Thing, {"n": 5}, **{name: 1}),
            lambda name=name: env.ops.delete_where(env.Thing, **{name: 1}),
        ):
            with pytest.raises(InvalidInputError):
                await call()
        assert env.statements == 0
    # value dict keys are column names too
    for name in HOSTILE_NAMES:
        for call in (
            lambda name=name: env.ops.insert_many(env.Thing, [{"name": "ok", name: 1}]),
            lambda name=name: env.ops.update_where(env.Thing, {name: 1}, id=1),
        ):
            with pytest.raises(InvalidInputError):
                await call()
    assert env.statements == 0
    assert await env.snapshot() == before


VALID_FIELDS = ("id", "name", "body", "n", "x", "owner_id")


OWNER_FIELDS = ("id", "label")


def _is_valid_filter(key: str) -> bool:
    if key in VALID_FIELDS:
        return True
    field, sep, op = key.partition("__")
    if field == "owner" and sep:  # a relationship path: owner__<column of Owner>[__<operator>]
        return _is_valid_filter_of(op, OWNER_FIELDS)
    return bool(sep) and field in VALID_FIELDS and op in OPERATORS


def _is_valid_filter_of(key: str, fields: tuple[str, ...]) -> bool:
    field, sep, op = key.partition("__")
    return field in fields and (not sep or op in OPERATORS)


@pytest.mark.parametrize("backend", ["sqlite_file"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.one_of(
        st.text(max_size=200),
        st.from_regex(r"\A(id|name|owner|_+[a-z]+_*|[a-z_]{1,12})(__[a-z_]{0,10}){0,3}\Z"),
        st.builds(lambda a, b: a + b, st.sampled_from(VALID_FIELDS), st.text(min_size=1, max_size=30)),
    )
)
async def test_fuzzed_filter_names_never_execute(backend: str, name: str, fuzz_env: Env) -> None:
    assume(not _is_valid_filter(name))
    fuzz_env.statements = 0
    with pytest.raises(InvalidInputError):
        await fuzz_env.ops.find(fuzz_env.Thing, **{name: "x"})
    assert fuzz_env.statements == 0


@pytest.fixture
async def fuzz_env(backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    db = make_db(url_for("sqlite_file", tmp_path_factory.mktemp("fuzz")))
    Owner, Thing = _models(db)
    await db.create_tables(Owner, Thing)
    environment = Env(backend, db, Owner, Thing)
    yield environment
    await close_db(db)


# --------------------------------------------------------------------------- #
# values                                                                       #
# --------------------------------------------------------------------------- #
INJECTION = [
    "'; DROP TABLE {table}; --",
    "Robert'); DROP TABLE {table};--",
    "' OR '1'='1",
    '" OR ""="',
    "1; SELECT pg_sleep(5); --",
    "1 AND SLEEP(5)",
    "%",
    "_",
    "%_%",
    "\\",
    "\\'",
    "$1",
    ":name",
    "%(name)s",
    "%s",
    "?",
    "{0}",
    "/* comment */",
    "\u202e\u0000"[:1] + "rtl",  # right-to-left override, no NUL
    "名前 🧨 ß é",
    "line\nbreak\r\ttab",
    "trailing   ",
]

REJECTED: list[tuple[str, Any, str]] = [
    ("name", "nul\x00byte", "NUL"),
    ("name", "lone \ud800 surrogate", "lone surrogate"),
    ("name", "\udfff", "lone low surrogate"),
    ("body", "nul\x00in text", "NUL in Text"),
    ("name", "y" * 51, "one past String(50)"),
    ("name", BIG, "10 MB into String(50)"),
    ("x", math.nan, "NaN"),
    ("x", math.inf, "inf"),
    ("x", -math.inf, "-inf"),
    ("n", 2**70, "2**70"),
    ("n", -(2**70), "-2**70"),
    ("n", 2**31, "2**31 into Integer"),
    ("n", "12", "numeric str into Integer"),
    ("n", "abc", "str into Integer"),
    ("n", 1.5, "float into Integer"),
    ("n", True, "bool into Integer"),
    ("n", [1, 2], "list into Integer"),
    ("name", 5, "int into String"),
    ("name", b"bytes", "bytes into String"),
    ("name", {"a": {"b": [1, {"c": 2}]}}, "nested dict into String"),
    ("body", {"$where": "1"}, "dict into Text"),
    ("x", "1.5", "str into Float"),
    ("x", {"n": 1}, "dict into Float"),
    ("name", None, "NULL into NOT NULL"),
    ("owner_id", "1 OR 1=1", "SQL into FK"),
]


async def _attempt(env: Env, how: str, column: str, value: Any, *, validate: bool = True) -> Any:
    """Run one write (or filter) path; return None on success or the exception raised."""
    row = {"name": "hostile", "n": MARK, column: value}
    try:
        if how == "insert_many":
            await env.ops.insert_many(env.Thing, [row], validate=validate)
        elif how == "create_one":
            await env.ops.create_one(env.Thing(**row))
        elif how == "update_where":
            await env.ops.update_where(env.Thing, {column: value}, name="alpha", validate=validate)
        elif how == "find":
            await env.ops.find(env.Thing, **{column: value})
        else:
            raise AssertionError(how)
    except Exception as exc:
        return exc
    return None


async def test_rejected_values_are_typed_and_change_nothing(env: Env) -> None:
    before = await env.snapshot()
    for column, value, label in REJECTED:
        for how in ("insert_many", "create_one", "update_where", "find"):
            if how == "find" and value is None:
                continue  # name=None means IS NULL: a valid filter
            env.statements = 0
            exc = await _attempt(env, how, column, value)
            if value is None:  # a NOT NULL violation is a constraint error, found before any SQL
                assert isinstance(exc, ConstraintViolationError), f"{label} via {how}: {exc!r}"
                assert exc.kind == "not_null", f"{label} via {how}: {exc!r}"
            else:
                assert isinstance(exc, InvalidInputError), f"{label} via {how}: {exc!r}"
            assert env.statements == 0, f"{label} via {how} reached the database"
            assert len(str(exc)) < 2_000, f"{label} via {how}: error echoes the value"
        assert await env.snapshot() == before, label


async def test_ten_megabyte_text_is_consistent_per_backend(env: Env) -> None:
    """A 10 MB string in a Text column: stored intact or a typed error, the same way on every path."""
    outcomes: dict[str, str] = {}
    for how in ("insert_many", "create_one", "update_where"):
        await env.reseed()
        before = await env.snapshot()
        exc = await _attempt(env, how, "body", BIG)
        if exc is None:
            outcomes[how] = "stored"
            async with env.db.get_db_session() as s:
                T = env.Thing
                stored = (
                    await s.execute(
                        select(T.body).where(T.name == ("alpha" if how == "update_where" else "hostile"))
                    )
                ).scalar_one()
            assert stored == BIG
        else:
            assert isinstance(exc, DatabaseError), f"raw error from {how}: {exc!r}"
            outcomes[how] = type(exc).__name__
            assert await env.snapshot() == before
            assert len(str(exc)) < 2_000
    print(f"\n{env.backend}: 10 MB into Text -> {outcomes}")
    assert len(set(outcomes.values())) == 1, outcomes
    expected = {"postgresql": "stored", "sqlite_file": "stored", "mariadb": "InvalidInputError"}
    assert set(outcomes.values()) == {expected[env.backend]}  # MariaDB TEXT holds 64 KB
    await env.reseed()


async def test_unvalidated_hostile_values_still_give_typed_errors(env: Env) -> None:
    """With validate=False the database (not dsg_lib) judges; the error must still be mapped."""
    results: dict[str, str] = {}
    raw: list[str] = []
    for column, value, label in REJECTED:
        for how in ("insert_many", "update_where"):
            await env.reseed()
            before = await env.snapshot()
            exc = await _attempt(env, how, column, value, validate=False)
            if exc is None:
                results[f"{label}/{how}"] = "accepted"
                continue  # the backend stored it (e.g. SQLite's type affinity); reseeded next round
            results[f"{label}/{how}"] = type(exc).__name__
            if not isinstance(exc, DatabaseError):
                raw.append(f"{label} via {how}: {type(exc).__name__}: {str(exc)[:150]}")
                continue
            assert await env.snapshot() == before, f"{label} via {how} changed the table"
            assert len(str(exc)) < 2_000
            assert "surrogate" not in str(exc) or "\ud800" not in str(exc)
    accepted = sorted(k for k, v in results.items() if v == "accepted")
    print(f"\n{env.backend} validate=False accepted by the database: {accepted}")
    await env.reseed()
    assert not raw, "raw (unmapped) exceptions escaped dsg_lib:\n" + "\n".join(raw)


async def test_injection_strings_are_stored_verbatim(env: Env) -> None:
    table = env.Thing.__tablename__
    values = [v.replace("{table}", table) for v in INJECTION]
    seed_before = await env.snapshot()
    ids: dict[str, int] = {}
    for i, value in enumerate(values):
        how = ("insert_many", "create_one", "update_where")[i % 3]
        if how == "insert_many":
            await env.ops.insert_many(env.Thing, [{"name": value, "body": value}])
            row = await env.ops.find(env.Thing, name=value, body=value)
        elif how == "create_one":
            created = await env.ops.create_one(env.Thing(name=value, body=value))
            row = [await env.ops.get(env.Thing, created.id)]
        else:
            created = await env.ops.create_one(env.Thing(name="placeholder", body=None))
            assert await env.ops.update_where(env.Thing, {"name": value, "body": value}, id=created.id) == 1
            row = [await env.ops.get(env.Thing, created.id)]
        assert len(row) >= 1, f"{value!r} via {how} not found"
        match = [r for r in row if r.name == value and r.body == value]
        assert match, f"{value!r} via {how} not stored verbatim: {[(r.name, r.body) for r in row]}"
        ids[value] = match[0].id
    for value, row_id in ids.items():
        got = await env.ops.get(env.Thing, row_id)
        assert (got.name, got.body) == (value, value)
        found = await env.ops.find(env.Thing, name__contains=value)
        assert row_id in [r.id for r in found], f"contains {value!r} missed its own row"
        exact = await env.ops.find(env.Thing, body=value)
        assert row_id in [r.id for r in exact]
    # the seed rows were not touched and the table still exists
    assert await env.ops.count(env.Thing) == len(SEED) + len(values)
    await env.ops.delete_where(env.Thing, env.Thing.id.in_(list(ids.values())))
    assert await env.snapshot() == seed_before


@pytest.mark.parametrize("backend", ["postgresql", "mariadb", "sqlite_file"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=st.text(
        alphabet=st.one_of(
            st.characters(),
            st.sampled_from(["\x00", "\ud800", "\udfff", "'", '"', ";", "%", "_", "\\", "\u202e", "🧨"]),
        ),
        max_size=60,
    )
)
async def test_fuzzed_text_round_trips_or_is_rejected(backend: str, value: str, value_env: Env) -> None:
    before = await value_env.snapshot()
    exc = await _attempt(value_env, "insert_many", "name", value)
    if exc is not None:
        assert isinstance(exc, InvalidInputError), repr(exc)
        assert await value_env.snapshot() == before
        assert "\x00" in value or len(value) > 50 or _has_surrogate(value), f"rejected {value!r}: {exc}"
        return
    async with value_env.db.get_db_session() as s:
        T = value_env.Thing
        stored = (await s.execute(select(T.name).where(T.n == MARK))).scalars().all()
    assert stored == [value], f"{value!r} not stored verbatim: {stored!r}"
    found = await value_env.ops.find(value_env.Thing, name=value, n=MARK)
    assert [r.name for r in found] == [value]
    await value_env.ops.delete_where(value_env.Thing, n=MARK)
    assert await value_env.snapshot() == before


def _has_surrogate(value: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in value)


@pytest.fixture
async def value_env(backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    await require(backend)
    db = make_db(url_for(backend, tmp_path_factory.mktemp("values")))
    Owner, Thing = _models(db)
    await db.create_tables(Owner, Thing)
    environment = Env(backend, db, Owner, Thing)
    await environment.reseed()
    yield environment
    assert_no_leak(db)
    await close_db(db, Thing, Owner)
