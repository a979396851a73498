"""Pydantic in and out (issue 27 item 4): ``create_one(Model, data)``, ``update_one`` with a Pydantic
model (PATCH: only the fields set), and ``as_=Schema`` on reads, compared with validating the objects
by hand. Every backend, both executor strategies (see tests/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship, selectinload

from dsg_lib import AsyncDatabase, InvalidInputError, Q
from tests.helpers import captured_sql

PREFIX = f"sch_{os.getpid()}_"


class AuthorIn(BaseModel):
    name: str
    email: str
    bio: str | None = None


class AuthorPatch(BaseModel):
    name: str | None = None
    email: str | None = None
    bio: str | None = None


class BookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    title: str


class AuthorOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    bio: str | None


class AuthorWithBooks(AuthorOut):
    books: list[BookOut]


class WrongOut(BaseModel):
    id: int
    name: int  # names are not ints


@pytest.fixture
def models(db: AsyncDatabase) -> SimpleNamespace:
    class Author(db.Base):
        __tablename__ = PREFIX + "author"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        name: Mapped[str] = mapped_column(String(40))
        email: Mapped[str] = mapped_column(String(80), unique=True)
        bio: Mapped[str | None] = mapped_column(String(200), nullable=True)
        books: Mapped[list[Book]] = relationship(back_populates="author", order_by="Book.id")

    class Book(db.Base):
        __tablename__ = PREFIX + "book"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        title: Mapped[str] = mapped_column(String(80))
        author_id: Mapped[int] = mapped_column(ForeignKey(Author.id))
        author: Mapped[Author] = relationship(back_populates="books")

    return SimpleNamespace(Author=Author, Book=Book)


@pytest.fixture
async def env(env: SimpleNamespace, db: AsyncDatabase) -> SimpleNamespace:
    """``env`` of tests/operations/conftest.py, with five authors and four books inserted."""
    Author, Book = env.m.Author, env.m.Book
    for i, name in enumerate(["Ada", "Alan", "Grace", "Edsger", "Barbara"], start=1):
        await env.ops.create_one(Author, {"name": name, "email": f"{name.lower()}@x.org", "bio": f"bio {i}"})
    await env.ops.insert_many(Book, [{"title": f"t{i}", "author_id": 1 + i % 2} for i in range(4)])
    return env


def by_hand(schema: type[BaseModel], objects: list[object]) -> list[BaseModel]:
    return [schema.model_validate(o, from_attributes=True) for o in objects]


async def test_create_one_from_pydantic_or_mapping(env: SimpleNamespace) -> None:
    Author, ops = env.m.Author, env.ops
    made = await ops.create_one(Author, AuthorIn(name="Kay", email="kay@x.org"))
    assert isinstance(made, Author) and made.id == 6 and made.bio is None
    made = await ops.create_one(Author, {"name": "Lin", "email": "lin@x.org"})
    assert (await ops.get(Author, made.id, as_=AuthorOut)) == AuthorOut(id=made.id, name="Lin", bio=None)


async def test_create_one_refuses_bad_data_before_sql(env: SimpleNamespace) -> None:
    Author, ops = env.m.Author, env.ops
    with captured_sql(env.db) as sent:
        for bad in ({"name": "x", "email": "y", "nope": 1}, {"name": 5, "email": "z"}, ["name"], None):
            with pytest.raises(InvalidInputError):
                await ops.create_one(Author, bad)
        with pytest.raises(InvalidInputError, match="not both"):
            await ops.create_one(Author(name="a", email="b"), {"name": "c"})
    assert sent == []
    assert await ops.count(Author) == 5


async def test_update_one_with_pydantic_is_a_patch(env: SimpleNamespace) -> None:
    Author, ops = env.m.Author, env.ops
    updated = await ops.update_one(Author, 1, AuthorPatch(email="ada@new.org"))
    assert (updated.name, updated.email, updated.bio) == ("Ada", "ada@new.org", "bio 1")
    updated = await ops.update_one(Author, 1, AuthorPatch(bio=None))  # set explicitly: written
    assert (updated.name, updated.email, updated.bio) == ("Ada", "ada@new.org", None)
    updated = await ops.update_one(Author, 2, {"bio": "b"})
    assert (updated.name, updated.bio) == ("Alan", "b")
    stored = await ops.find_mappings(Author, id__in=[1, 2], order_by="id")
    assert [(r["email"], r["bio"]) for r in stored] == [("ada@new.org", None), ("alan@x.org", "b")]


async def test_as_on_reads_equals_validating_by_hand(env: SimpleNamespace) -> None:
    Author, ops = env.m.Author, env.ops
    objects = await ops.find(Author, order_by="id")
    expected = by_hand(AuthorOut, objects)
    assert await ops.find(Author, order_by="id", as_=AuthorOut) == expected
    assert await ops.get(Author, 2, as_=AuthorOut) == expected[1]
    assert await ops.get(Author, 99, as_=AuthorOut) is None
    assert await ops.get_one(Author, email="grace@x.org", as_=AuthorOut) == expected[2]
    assert await ops.find(Author, Q(name__startswith="A"), order_by="id", as_=AuthorOut) == expected[:2]
    page = await ops.paginate(Author, page=2, page_size=2, as_=AuthorOut)
    assert (page.items, page.total) == (expected[2:4], 5)
    first = await ops.paginate_keyset(Author, order_by="id", limit=3, as_=AuthorOut)
    assert first.items == expected[:3]
    rest = await ops.paginate_keyset(Author, order_by="id", limit=3, after=first.next_cursor, as_=AuthorOut)
    assert (rest.items, rest.next_cursor) == (expected[3:], None)
    streamed = [a async for a in ops.stream(Author, batch_size=2, as_=AuthorOut)]
    assert sorted(streamed, key=lambda a: a.id) == expected
    batches = [b async for b in ops.stream(Author, batch_size=2, batched=True, as_=AuthorOut)]
    assert sorted((a for b in batches for a in b), key=lambda a: a.id) == expected
    assert all(len(b) <= 2 for b in batches)


async def test_as_with_loaded_relationships(env: SimpleNamespace) -> None:
    Author, ops = env.m.Author, env.ops
    loaded = [selectinload(Author.books)]
    objects = await ops.find(Author, id__in=[1, 2], order_by="id", options=loaded)
    expected = by_hand(AuthorWithBooks, objects)
    assert [len(a.books) for a in expected] == [2, 2]  # type: ignore[attr-defined]
    assert (
        await ops.find(Author, id__in=[1, 2], order_by="id", options=loaded, as_=AuthorWithBooks) == expected
    )
    assert await ops.get(Author, 1, options=loaded, as_=AuthorWithBooks) == expected[0]
    with pytest.raises(InvalidInputError, match="selectinload"):
        await ops.find(Author, id=1, as_=AuthorWithBooks)  # no selectinload: cannot lazy-load here


async def test_as_refuses_a_non_schema_and_rows_that_do_not_fit(env: SimpleNamespace) -> None:
    Author, ops = env.m.Author, env.ops
    for wrong in (dict, "AuthorOut", AuthorOut(id=1, name="x", bio=None)):
        with pytest.raises(InvalidInputError, match="Pydantic model class"):
            await ops.find(Author, as_=wrong)
    with pytest.raises(InvalidInputError, match="do not fit WrongOut") as info:
        await ops.find(Author, as_=WrongOut)
    assert "Ada" not in str(info.value)  # field names and error types, never values


def test_pydantic_is_not_imported_unless_used() -> None:
    code = (
        "import asyncio, sys\n"
        "from sqlalchemy import Integer\n"
        "from sqlalchemy.orm import mapped_column\n"
        "from dsg_lib import AsyncDatabase, DBConfig, DatabaseOperations, Q\n"
        "db = AsyncDatabase(DBConfig({'database_uri': 'sqlite+aiosqlite:///:memory:'}))\n"
        "class T(db.Base):\n"
        "    __tablename__ = 't'\n"
        "    id = mapped_column(Integer, primary_key=True)\n"
        "async def main():\n"
        "    ops = DatabaseOperations(db)\n"
        "    await db.create_tables()\n"
        "    await ops.create_one(T, {'id': 1})\n"
        "    await ops.update_one(T, 1, {})\n"
        "    assert len(await ops.find(T, Q(id=1) | Q(id=2))) == 1\n"
        "    await db.disconnect()\n"
        "asyncio.run(main())\n"
        "assert 'pydantic' not in sys.modules, 'pydantic was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
