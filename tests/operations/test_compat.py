"""DatabaseOperations: the devsetgo-lib compatible layer, on every backend.

Same method names and arguments as devsetgo-lib; failures raise typed errors
whose ``.to_dict()`` is the old ``{"error", "details"}`` shape.
"""

from __future__ import annotations

import os
from datetime import datetime
from types import SimpleNamespace

import pytest
from sqlalchemy import Integer, String, delete, insert, select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import (
    AsyncDatabase,
    ConstraintViolationError,
    DatabaseError,
    DatabaseOperations,
    InvalidInputError,
    MultipleRecordsFoundError,
    RecordNotFoundError,
)
from dsg_lib.async_database_functions import database_operations
from dsg_lib.schema import SchemaBaseSQLite, UTCDateTime, utcnow
from tests.helpers import count_rows

# pid suffix: concurrent test runs on the same servers do not collide
PREFIX = f"opc_{os.getpid()}_"


@pytest.fixture
def models(db: AsyncDatabase) -> SimpleNamespace:
    class Account(db.Base):  # primary key NOT named pkid
        __tablename__ = PREFIX + "account"
        account_no: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
        name: Mapped[str] = mapped_column(String(50))
        status: Mapped[str] = mapped_column(String(20), server_default=text("'new'"))
        balance: Mapped[int | None] = mapped_column(Integer, nullable=True)
        date_created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    class Note(SchemaBaseSQLite, db.Base):  # devsetgo-lib style: pkid, date_created, date_updated
        __tablename__ = PREFIX + "note"
        title: Mapped[str] = mapped_column(String(50), unique=True)

    class Pair(db.Base):
        __tablename__ = PREFIX + "pair"
        a: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
        b: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)

    return SimpleNamespace(Account=Account, Note=Note, Pair=Pair)


async def seed_accounts(env: SimpleNamespace, n: int) -> None:
    await env.ops.insert_many(env.m.Account, [{"name": f"acct{i:03d}", "balance": i} for i in range(n)])


def assert_error_dict(exc: DatabaseError) -> None:
    shape = exc.to_dict()
    assert set(shape) == {"error", "details"}
    assert shape["error"] == type(exc).__name__
    assert isinstance(shape["details"], str) and shape["details"]
    assert shape["details"] == exc.details


# --------------------------------------------------------------------------- import paths


def test_devsetgo_import_style() -> None:
    from dsg_lib.async_database_functions import async_database, database_config

    db = async_database.AsyncDatabase(
        database_config.DBConfig({"database_uri": "sqlite+aiosqlite:///:memory:?cache=shared"})
    )
    ops = database_operations.DatabaseOperations(db)
    assert ops.async_db is db


def test_operations_needs_async_database() -> None:
    with pytest.raises(InvalidInputError):
        DatabaseOperations("sqlite://")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- metadata helpers


async def test_get_columns_details(env: SimpleNamespace) -> None:
    details = await env.ops.get_columns_details(env.m.Account)
    assert set(details) == {"account_no", "name", "status", "balance", "date_created"}
    assert details["account_no"]["primary_key"] is True
    assert details["name"]["primary_key"] is False
    assert details["name"]["nullable"] is False
    assert details["balance"]["nullable"] is True
    assert "VARCHAR" in details["name"]["type"].upper()
    for info in details.values():
        assert {"type", "nullable", "primary_key", "unique", "autoincrement", "default"} <= set(info)
    note = await env.ops.get_columns_details(env.m.Note)
    assert note["title"]["unique"] is True


async def test_get_primary_keys(env: SimpleNamespace) -> None:
    assert await env.ops.get_primary_keys(env.m.Account) == ["account_no"]
    assert await env.ops.get_primary_keys(env.m.Note) == ["pkid"]
    assert await env.ops.get_primary_keys(env.m.Pair) == ["a", "b"]


async def test_get_table_names(env: SimpleNamespace) -> None:
    names = await env.ops.get_table_names()
    assert {PREFIX + "account", PREFIX + "note", PREFIX + "pair"} <= set(names)


async def test_metadata_helpers_reject_non_models(env: SimpleNamespace) -> None:
    with pytest.raises(InvalidInputError):
        await env.ops.get_columns_details("opc_account")
    with pytest.raises(InvalidInputError):
        await env.ops.get_primary_keys(object())


# --------------------------------------------------------------------------- reads


async def test_count_query(env: SimpleNamespace) -> None:
    A = env.m.Account
    assert await env.ops.count_query(select(A)) == 0
    await seed_accounts(env, 12)
    assert await env.ops.count_query(select(A)) == 12
    assert await env.ops.count_query(select(A).where(A.balance >= 10)) == 2
    assert await env.ops.count_query(select(A).order_by(A.name).limit(5)) == 5
    with pytest.raises(InvalidInputError):
        await env.ops.count_query("select * from opc_account")


async def test_paginate_query_shape(env: SimpleNamespace) -> None:
    A = env.m.Account
    await seed_accounts(env, 25)
    query = select(A).order_by(A.account_no)
    page = await env.ops.paginate_query(query, page=2, page_size=10)
    assert set(page) == {"items", "total", "page", "page_size", "pages"}
    assert (page["total"], page["page"], page["page_size"], page["pages"]) == (25, 2, 10, 3)
    assert [a.balance for a in page["items"]] == list(range(10, 20))
    last = await env.ops.paginate_query(query, page=3, page_size=10)
    assert [a.balance for a in last["items"]] == list(range(20, 25))
    beyond = await env.ops.paginate_query(query, page=9, page_size=10)
    assert beyond["items"] == [] and beyond["total"] == 25
    default = await env.ops.paginate_query(query)
    assert default["page"] == 1 and default["page_size"] == 100 and len(default["items"]) == 25
    for bad in ({"page": 0}, {"page_size": 0}, {"page": "1"}):
        with pytest.raises(InvalidInputError):
            await env.ops.paginate_query(query, **bad)


async def test_read_one_record(env: SimpleNamespace) -> None:
    A = env.m.Account
    assert await env.ops.read_one_record(select(A).where(A.name == "nobody")) is None
    await seed_accounts(env, 3)
    one = await env.ops.read_one_record(select(A).where(A.name == "acct001"))
    assert isinstance(one, A) and one.balance == 1
    with pytest.raises(MultipleRecordsFoundError) as info:
        await env.ops.read_one_record(select(A))
    assert isinstance(info.value, DatabaseError)
    assert_error_dict(info.value)


async def test_read_query_objects_and_rows(env: SimpleNamespace) -> None:
    A = env.m.Account
    await seed_accounts(env, 4)
    objects = await env.ops.read_query(select(A).order_by(A.account_no))
    assert [type(o) for o in objects] == [A] * 4
    assert [o.name for o in objects] == ["acct000", "acct001", "acct002", "acct003"]
    rows = await env.ops.read_query(select(A.name, A.balance).order_by(A.balance))
    assert all(isinstance(r, Row) for r in rows)
    assert [tuple(r) for r in rows] == [("acct000", 0), ("acct001", 1), ("acct002", 2), ("acct003", 3)]
    scalars = await env.ops.read_query(select(A.balance).where(A.balance > 1).order_by(A.balance))
    assert scalars == [2, 3]
    assert await env.ops.read_query(select(A).where(A.balance > 100)) == []


async def test_read_multi_query(env: SimpleNamespace) -> None:
    A = env.m.Account
    await seed_accounts(env, 5)
    result = await env.ops.read_multi_query(
        {
            "low": select(A).where(A.balance < 2).order_by(A.balance),
            "names": select(A.name, A.balance).where(A.balance == 4),
            "none": select(A).where(A.balance > 99),
        }
    )
    assert set(result) == {"low", "names", "none"}
    assert [a.balance for a in result["low"]] == [0, 1]
    assert [tuple(r) for r in result["names"]] == [("acct004", 4)]
    assert result["none"] == []
    with pytest.raises(InvalidInputError):
        await env.ops.read_multi_query([select(A)])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- execute


async def test_execute_one(env: SimpleNamespace) -> None:
    A = env.m.Account
    assert await env.ops.execute_one(insert(A).values(name="x", balance=1)) == 1
    await seed_accounts(env, 4)
    changed = await env.ops.execute_one(update(A).where(A.balance < 2).values(status="old"))
    assert changed == 3  # x (1), acct000 (0), acct001 (1)
    meta = await env.ops.execute_one(delete(A).where(A.balance == 3), return_metadata=True)
    assert isinstance(meta, dict) and meta["rowcount"] == 1
    # text with bound values
    count = await env.ops.execute_one(
        text(f"UPDATE {PREFIX}account SET balance = :b WHERE name = :n"), {"b": 42, "n": "x"}
    )
    assert count == 1
    assert await env.ops.count_query(select(A).where(A.balance == 42)) == 1
    assert await env.ops.count_query(select(A).where(A.status == "old")) == 3


async def test_execute_one_select_returns_rows_and_insert_pairs_count(env: SimpleNamespace) -> None:
    A = env.m.Account
    meta = await env.ops.execute_one(insert(A), {"name": "x", "balance": 1}, return_metadata=True)
    assert meta["rowcount"] == 1 and meta["inserted_primary_key"] == [1]
    assert await env.ops.execute_many([(insert(A), {"name": "y"}), (insert(A), {"name": "z"})]) == 2
    assert await env.ops.execute_one(select(A.name).order_by(A.name)) == ["x", "y", "z"]
    found = await env.ops.execute_one(select(A).where(A.name == "x"))
    assert [a.balance for a in found] == [1]


async def test_execute_one_error_is_typed(env: SimpleNamespace) -> None:
    A = env.m.Account
    await env.ops.execute_one(insert(A).values(account_no=1, name="a"))
    with pytest.raises(ConstraintViolationError) as info:
        await env.ops.execute_one(insert(A).values(account_no=1, name="b"))
    assert_error_dict(info.value)
    assert await count_rows(env.db, A) == 1
    with pytest.raises(InvalidInputError):
        await env.ops.execute_one(12345)


async def test_execute_many_is_one_transaction(env: SimpleNamespace) -> None:
    A = env.m.Account
    total = await env.ops.execute_many(
        [
            insert(A).values(account_no=1, name="a", balance=1),
            insert(A).values(account_no=2, name="b", balance=2),
            (update(A).where(A.account_no == 1).values(balance=10), None),
        ]
    )
    assert total == 3
    with pytest.raises(ConstraintViolationError):
        await env.ops.execute_many(
            [
                insert(A).values(account_no=3, name="c"),
                update(A).where(A.account_no == 2).values(balance=99),
                insert(A).values(account_no=1, name="dup"),  # fails: earlier statements roll back
            ]
        )
    rows = await env.ops.read_query(select(A.account_no, A.balance).order_by(A.account_no))
    assert [tuple(r) for r in rows] == [(1, 10), (2, 2)]


async def test_execute_many_return_results(env: SimpleNamespace) -> None:
    A = env.m.Account
    await seed_accounts(env, 3)
    results = await env.ops.execute_many(
        [update(A).where(A.balance >= 1).values(status="s"), select(A.name).where(A.balance == 0)],
        return_results=True,
    )
    assert results[0] == 2
    assert results[1] == ["acct000"]  # rows as read_query gives them: one column -> scalars
    with pytest.raises(InvalidInputError):
        await env.ops.execute_many("DELETE FROM opc_account")


# --------------------------------------------------------------------------- create


async def test_create_one_loads_generated_values(env: SimpleNamespace) -> None:
    A = env.m.Account
    account = await env.ops.create_one(A(name="ada"))
    # the operation's session is closed: generated pk and server default are loaded already
    assert isinstance(account.account_no, int) and account.account_no >= 1
    assert account.status == "new"
    assert account.date_created is not None
    assert account.balance is None
    again = await env.ops.read_one_record(select(A).where(A.account_no == account.account_no))
    assert again.name == "ada" and again.status == "new"


async def test_create_one_pkid_model_and_errors(env: SimpleNamespace) -> None:
    N = env.m.Note
    note = await env.ops.create_one(N(title="first"))
    assert isinstance(note.pkid, str) and len(note.pkid) == 36
    assert note.date_created is not None and note.date_updated is not None
    with pytest.raises(ConstraintViolationError) as info:
        await env.ops.create_one(N(title="first"))
    assert_error_dict(info.value)
    with pytest.raises(InvalidInputError):
        await env.ops.create_one({"title": "not an object"})
    with pytest.raises(InvalidInputError):
        await env.ops.create_one(N(title="x" * 51))  # longer than String(50)
    assert await count_rows(env.db, N) == 1


async def test_create_many(env: SimpleNamespace) -> None:
    A = env.m.Account
    assert await env.ops.create_many([]) == []
    created = await env.ops.create_many([A(name=f"m{i}", balance=i) for i in range(5)])
    assert len(created) == 5
    assert len({a.account_no for a in created}) == 5
    assert all(a.status == "new" for a in created)
    with pytest.raises(ConstraintViolationError):
        await env.ops.create_many([A(name="ok"), A(account_no=created[0].account_no, name="dup")])
    assert await count_rows(env.db, A) == 5  # all or nothing


# --------------------------------------------------------------------------- update


async def test_update_one_uses_real_primary_key(env: SimpleNamespace) -> None:
    A = env.m.Account
    first = await env.ops.create_one(A(name="one", balance=1))
    second = await env.ops.create_one(A(name="two", balance=2))
    original_created = first.date_created
    updated = await env.ops.update_one(
        A,
        first.account_no,
        {
            "name": "uno",
            "balance": 11,
            "account_no": 999,  # primary key: ignored
            "date_created": datetime(2000, 1, 1),  # ignored like devsetgo-lib
        },
    )
    assert updated.account_no == first.account_no
    assert updated.name == "uno" and updated.balance == 11
    rows = await env.ops.read_query(select(A).order_by(A.account_no))
    assert [(r.account_no, r.name, r.balance) for r in rows] == [
        (first.account_no, "uno", 11),
        (second.account_no, "two", 2),
    ]
    assert rows[0].date_created.replace(tzinfo=None) == original_created.replace(tzinfo=None)


async def test_update_one_errors(env: SimpleNamespace) -> None:
    A = env.m.Account
    account = await env.ops.create_one(A(name="one", balance=1))
    with pytest.raises(InvalidInputError):
        await env.ops.update_one(A, account.account_no, {"nope": 1})
    with pytest.raises(InvalidInputError):
        await env.ops.update_one(A, account.account_no, {"balance": "lots"})
    with pytest.raises(InvalidInputError):
        await env.ops.update_one(A, "not-an-int", {"name": "x"})
    with pytest.raises(RecordNotFoundError) as info:
        await env.ops.update_one(A, account.account_no + 1000, {"name": "x"})
    assert isinstance(info.value, LookupError)
    assert_error_dict(info.value)
    again = await env.ops.read_one_record(select(A))
    assert (again.name, again.balance) == ("one", 1)


async def test_update_one_pkid_model(env: SimpleNamespace) -> None:
    N = env.m.Note
    note = await env.ops.create_one(N(title="a"))
    updated = await env.ops.update_one(N, note.pkid, {"title": "b", "pkid": "something-else"})
    assert updated.pkid == note.pkid and updated.title == "b"
    with pytest.raises(RecordNotFoundError):
        await env.ops.update_one(N, "00000000-0000-0000-0000-000000000000", {"title": "c"})


# --------------------------------------------------------------------------- delete


async def test_delete_one(env: SimpleNamespace) -> None:
    A = env.m.Account
    a = await env.ops.create_one(A(name="a"))
    b = await env.ops.create_one(A(name="b"))
    result = await env.ops.delete_one(A, a.account_no)
    assert isinstance(result, dict) and "success" in result
    with pytest.raises(RecordNotFoundError) as info:
        await env.ops.delete_one(A, a.account_no)
    assert_error_dict(info.value)
    assert [r.account_no for r in await env.ops.read_query(select(A))] == [b.account_no]


async def test_delete_one_composite_key(env: SimpleNamespace) -> None:
    P = env.m.Pair
    await env.ops.insert_many(P, [{"a": 1, "b": 1}, {"a": 1, "b": 2}])
    assert await env.ops.delete_one(P, (1, 2)) == {"success": "Record deleted successfully"}
    with pytest.raises(RecordNotFoundError):
        await env.ops.delete_one(P, {"a": 1, "b": 2})
    with pytest.raises(InvalidInputError):
        await env.ops.delete_one(P, 1)
    assert await count_rows(env.db, P) == 1


async def test_delete_many(env: SimpleNamespace) -> None:
    N = env.m.Note
    notes = await env.ops.create_many([N(title=f"t{i}") for i in range(5)])
    assert await env.ops.delete_many(N, id_values=[notes[0].pkid, notes[1].pkid]) == 2
    assert await env.ops.delete_many(N, "pkid", []) == 0
    assert await env.ops.delete_many(N, "pkid", None) == 0
    assert await env.ops.delete_many(N, id_column_name="title", id_values=["t2", "t3", "missing"]) == 2
    remaining = await env.ops.read_query(select(N.title))
    assert remaining == ["t4"]
    with pytest.raises(InvalidInputError):
        await env.ops.delete_many(N, id_column_name="nope", id_values=[1])
    with pytest.raises(InvalidInputError):
        await env.ops.delete_many(N, id_column_name="title", id_values=[1, 2])
    assert await count_rows(env.db, N) == 1
