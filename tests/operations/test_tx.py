"""DatabaseOperations with transactions, caller-owned sessions, loader options after the
session closed, and SoftDeleteMixin models. Every backend."""

from __future__ import annotations

import asyncio
import os
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column, relationship, selectinload

from dsg_lib import (
    AsyncDatabase,
    ConstraintViolationError,
    InvalidInputError,
    RecordNotFoundError,
    SoftDeleteMixin,
)
from tests.helpers import count_rows

# pid suffix: concurrent test runs on the same servers do not collide
PREFIX = f"opt_{os.getpid()}_"


@pytest.fixture
def models(db: AsyncDatabase) -> SimpleNamespace:
    class Author(db.Base):
        __tablename__ = PREFIX + "author"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        name: Mapped[str] = mapped_column(String(40), unique=True)
        books: Mapped[list[Book]] = relationship(back_populates="author", order_by="Book.id")

    class Book(db.Base):
        __tablename__ = PREFIX + "book"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        author_id: Mapped[int] = mapped_column(ForeignKey(PREFIX + "author.id"))
        title: Mapped[str] = mapped_column(String(40))
        author: Mapped[Author] = relationship(back_populates="books")

    class Doc(SoftDeleteMixin, db.Base):
        __tablename__ = PREFIX + "doc"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        title: Mapped[str] = mapped_column(String(40))
        kind: Mapped[str] = mapped_column(String(10), default="a")

    return SimpleNamespace(Author=Author, Book=Book, Doc=Doc)


# --------------------------------------------------------------------------- transactions


async def test_operations_in_transaction_are_atomic(env: SimpleNamespace) -> None:
    A, B = env.m.Author, env.m.Book
    await env.ops.insert_many(A, [{"id": 1, "name": "existing"}])
    with pytest.raises(ConstraintViolationError):
        async with env.db.transaction():
            await env.ops.create_one(A(id=2, name="ada"))
            await env.ops.insert_many(B, [{"id": 1, "author_id": 2, "title": "t1"}])
            await env.ops.update_where(A, {"name": "renamed"}, id=1)
            assert await env.ops.count(A) == 2  # reads inside see the uncommitted rows
            await env.ops.upsert(B, [{"id": 2, "author_id": 1, "title": "t2"}], conflict="id")
            await env.ops.insert_many(A, [{"id": 1, "name": "dup"}])  # duplicate key: everything rolls back
    assert [(a.id, a.name) for a in await env.ops.find(A)] == [(1, "existing")]
    assert await count_rows(env.db, B) == 0


async def test_transaction_commits_on_success(env: SimpleNamespace) -> None:
    A = env.m.Author
    async with env.db.transaction():
        await env.ops.insert_many(A, [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
        await env.ops.delete_where(A, id=2)
        _, created = await env.ops.get_or_create(A, name="c", defaults={"id": 3})
        assert created
    assert sorted(a.name for a in await env.ops.find(A)) == ["a", "c"]


async def test_concurrent_operations_in_one_transaction(env: SimpleNamespace) -> None:
    A = env.m.Author
    async with env.db.transaction():
        await asyncio.gather(
            *(env.ops.insert_many(A, [{"id": i, "name": f"c{i}"}]) for i in range(5)),
            env.ops.count(A),
            env.ops.find(A, name__startswith="c"),
        )
        assert await env.ops.count(A) == 5
    assert await count_rows(env.db, A) == 5
    with pytest.raises(ConstraintViolationError):
        async with env.db.transaction():
            await asyncio.gather(
                env.ops.insert_many(A, [{"id": 10, "name": "d10"}]),
                env.ops.insert_many(A, [{"id": 11, "name": "c0"}]),  # duplicate name
            )
    assert await count_rows(env.db, A) == 5
    assert env.db.pool_status()["checked_out"] == 0


async def test_exception_in_block_rolls_back(env: SimpleNamespace) -> None:
    A = env.m.Author
    with pytest.raises(RuntimeError):
        async with env.db.transaction():
            await env.ops.create_one(A(id=1, name="a"))
            raise RuntimeError("boom")
    assert await count_rows(env.db, A) == 0


async def test_operations_outside_transaction_commit_by_themselves(env: SimpleNamespace) -> None:
    A = env.m.Author
    await env.ops.create_one(A(id=1, name="a"))
    with pytest.raises(ConstraintViolationError):
        await env.ops.insert_many(A, [{"id": 2, "name": "b"}, {"id": 1, "name": "dup"}])
    await env.ops.insert_many(A, [{"id": 3, "name": "c"}])
    assert sorted(a.id for a in await env.ops.find(A)) == [1, 3]


async def test_caller_session_is_never_committed(env: SimpleNamespace) -> None:
    A, B = env.m.Author, env.m.Book
    await env.ops.insert_many(A, [{"id": 1, "name": "kept"}])
    async with env.db.get_db_session() as session:
        await env.ops.create_one(A(id=2, name="a2"), session=session)
        await env.ops.insert_many(A, [{"id": 3, "name": "a3"}], session=session)
        await env.ops.insert_many(B, [{"id": 1, "author_id": 2, "title": "b"}], session=session)
        await env.ops.update_where(A, {"name": "changed"}, id=1, session=session)
        await env.ops.upsert(A, [{"id": 4, "name": "a4"}], conflict="id", session=session)
        await env.ops.update_one(A, 3, {"name": "a3x"}, session=session)
        await env.ops.execute_one(select(A.id), session=session)
        assert await env.ops.count(A, session=session) == 4
        assert (await env.ops.get(A, 1, session=session)).name == "changed"
        await session.rollback()
    assert [(a.id, a.name) for a in await env.ops.find(A)] == [(1, "kept")]
    assert await count_rows(env.db, B) == 0


async def test_caller_session_delete_rolled_back(env: SimpleNamespace) -> None:
    A = env.m.Author
    await env.ops.insert_many(A, [{"id": i, "name": f"n{i}"} for i in range(3)])
    async with env.db.get_db_session() as session:
        await env.ops.delete_one(A, 0, session=session)
        assert await env.ops.delete_where(A, id__gte=1, session=session) == 2
        assert await env.ops.count(A, session=session) == 0
        await session.rollback()
    assert await count_rows(env.db, A) == 3


async def test_loader_options_usable_after_session_closed(env: SimpleNamespace) -> None:
    A, B = env.m.Author, env.m.Book
    await env.ops.insert_many(A, [{"id": 1, "name": "ann"}, {"id": 2, "name": "bo"}])
    await env.ops.insert_many(B, [{"id": i, "author_id": 1 + i % 2, "title": f"t{i}"} for i in range(6)])
    authors = await env.ops.find(A, order_by="id", options=[selectinload(A.books)])
    # the operation's session is closed; the relationship was loaded eagerly: no MissingGreenlet
    assert [b.title for b in authors[0].books] == ["t0", "t2", "t4"]
    assert [b.title for b in authors[1].books] == ["t1", "t3", "t5"]
    books = await env.ops.find(B, title__in=["t0", "t1"], order_by="id", options=[selectinload(B.author)])
    assert [b.author.name for b in books] == ["ann", "bo"]
    page = await env.ops.paginate(A, page=1, page_size=1, options=[selectinload(A.books)])
    assert len(page.items[0].books) == 3
    keyset = await env.ops.paginate_keyset(A, "name", limit=5, options=[selectinload(A.books)])
    assert [len(a.books) for a in keyset.items] == [3, 3]
    created = await env.ops.create_one(A(id=3, name="cy"))
    assert created.name == "cy" and created.id == 3


# --------------------------------------------------------------------------- soft delete


async def seed_docs(env: SimpleNamespace) -> None:
    await env.ops.insert_many(
        env.m.Doc, [{"id": i, "title": f"d{i}", "kind": "ab"[i % 2]} for i in range(1, 9)]
    )


async def live_ids(env: SimpleNamespace, **kw: Any) -> list[int]:
    return sorted(d.id for d in await env.ops.find(env.m.Doc, **kw))


async def test_soft_delete_one_hides_row(env: SimpleNamespace) -> None:
    D = env.m.Doc
    await seed_docs(env)
    deleted_id = 1
    assert await env.ops.delete_one(D, deleted_id) == {"success": "Record deleted successfully"}
    assert await count_rows(env.db, D) == 8  # still there
    assert await env.ops.get(D, deleted_id) is None
    assert (await env.ops.get(D, deleted_id, include_deleted=True)).deleted_at is not None
    assert deleted_id not in await live_ids(env)
    assert deleted_id in await live_ids(env, include_deleted=True)
    assert await env.ops.count(D) == 7 and await env.ops.count(D, include_deleted=True) == 8
    assert await env.ops.exists(D, id=1) is False
    assert await env.ops.exists(D, id=1, include_deleted=True) is True
    page = await env.ops.paginate(D, page=1, page_size=100)
    assert page.total == 7 and 1 not in [d.id for d in page.items]
    assert (await env.ops.paginate(D, page=1, page_size=100, include_deleted=True)).total == 8
    keyset = await env.ops.paginate_keyset(D, "id", limit=100)
    assert [d.id for d in keyset.items] == list(range(2, 9))
    assert [d["id"] for d in await env.ops.find_mappings(D, order_by="id")] == list(range(2, 9))
    with pytest.raises(RecordNotFoundError):
        await env.ops.get_one(D, id=1)
    assert (await env.ops.get_one(D, id=1, include_deleted=True)).id == 1
    with pytest.raises(RecordNotFoundError):
        await env.ops.delete_one(D, 1)  # already deleted
    with pytest.raises(RecordNotFoundError):
        await env.ops.update_one(D, 1, {"title": "x"})


async def test_soft_delete_where_and_many(env: SimpleNamespace) -> None:
    D = env.m.Doc
    await seed_docs(env)
    assert await env.ops.delete_where(D, kind="a") == 4  # even ids
    assert await env.ops.delete_where(D, kind="a") == 0  # already soft-deleted
    assert await env.ops.delete_many(D, "id", [1, 3, 2]) == 2  # 2 was deleted already
    assert await live_ids(env) == [5, 7]
    assert await count_rows(env.db, D) == 8
    with pytest.raises(InvalidInputError):
        await env.ops.delete_where(D)
    assert await env.ops.update_where(D, {"title": "upd"}, all_rows=True) == 2  # live rows only
    assert await env.ops.update_where(D, {"title": "all"}, all_rows=True, include_deleted=True) == 8


async def test_hard_delete_and_restore(env: SimpleNamespace) -> None:
    D = env.m.Doc
    await seed_docs(env)
    await env.ops.delete_one(D, 1, hard=True)
    assert await count_rows(env.db, D) == 7
    assert await env.ops.get(D, 1, include_deleted=True) is None
    assert await env.ops.delete_where(D, id__in=[2, 3], hard=True) == 2
    assert await env.ops.delete_many(D, "id", [4], hard=True) == 1
    assert await count_rows(env.db, D) == 4
    await env.ops.delete_where(D, id__gte=5)  # soft
    assert await live_ids(env) == []
    assert await env.ops.restore(D, id=6) == 1
    assert await live_ids(env) == [6]
    assert await env.ops.restore(D, id=6) == 0  # not deleted
    with pytest.raises(InvalidInputError):
        await env.ops.restore(D)
    assert await env.ops.restore(D, all_rows=True) == 3
    assert await live_ids(env) == [5, 6, 7, 8]
    assert all(d.deleted_at is None for d in await env.ops.find(D))
    # a soft-deleted row can be hard-deleted too
    await env.ops.delete_one(D, 5)
    assert await env.ops.delete_one(D, 5, hard=True) == {"success": "Record deleted successfully"}
    await env.ops.delete_one(D, 6)
    assert await env.ops.delete_where(D, id=6, hard=True) == 1
    assert await count_rows(env.db, D) == 2
    with pytest.raises(InvalidInputError):
        await env.ops.restore(env.m.Author, id=1)  # not a SoftDeleteMixin model


async def test_soft_delete_in_transaction_rolls_back(env: SimpleNamespace) -> None:
    D = env.m.Doc
    await seed_docs(env)
    with pytest.raises(RuntimeError):
        async with env.db.transaction():
            await env.ops.delete_where(D, kind="b")
            assert await env.ops.count(D) == 4
            raise RuntimeError("undo")
    assert await env.ops.count(D) == 8
