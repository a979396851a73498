"""Issue 27's workloads: a Pydantic schema over the read table, and a two-table schema (authors and
their books) for filters through a relationship. Shared pieces only, no contender code.

The authors and books tables are shared and read-only, filled once per size like the other
shared tables: author ``a`` (id ``a + 1``) is named ``author-{a}`` and has ``books_per_author``
books; book ``j`` (id ``j + 1``) belongs to author ``j // books_per_author`` and is titled
``t{(j // 2) % 100:02d}-{j}``, so a title prefix ``tNN-`` matches 1% of the books, two books of
each author it matches: a count through the relationship that counts joined rows instead of
authors is caught (the runner checks every contender's total).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import mapped_column, relationship

from .common import Backend, Sizes


# ---------------------------------------------------------------------- the Pydantic schema
@lru_cache(maxsize=1)
def read_schema() -> Any:
    """The schema ``read_schemas`` converts the read table's rows to (pydantic is imported here:
    it comes with the bench and test extras, and the rest of the benchmark runs without it)."""
    from pydantic import BaseModel

    class ReadSchema(BaseModel):
        id: int
        name: str
        grp: int
        value: float
        note: str | None

    return ReadSchema


# ---------------------------------------------------------------------- authors and books
def related_tables(metadata: MetaData, sizes: Sizes) -> tuple[Table, Table]:
    authors = Table(
        sizes.author_table,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("name", String(64), nullable=False),
    )
    Index(f"ix_{sizes.author_table}_name", authors.c.name, unique=True)
    books = Table(
        sizes.book_table,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("title", String(64), nullable=False),
        Column("author_id", Integer, ForeignKey(f"{sizes.author_table}.id"), nullable=False),
    )
    Index(f"ix_{sizes.book_table}_author_id", books.c.author_id)
    Index(f"ix_{sizes.book_table}_title", books.c.title)
    return authors, books


def related_models(base: Any, sizes: Sizes) -> tuple[Any, Any]:
    """``Author`` (``books``: to-many) and ``Book`` (``author``: to-one) on a contender's own base."""
    a_t, b_t = sizes.author_table, sizes.book_table
    author = type(
        "Author",
        (base,),
        {
            "__tablename__": a_t,
            "__table_args__": (Index(f"ix_{a_t}_name", "name", unique=True),),
            "id": mapped_column(Integer, primary_key=True, autoincrement=True),
            "name": mapped_column(String(64), nullable=False),
            "books": relationship("Book", back_populates="author"),
        },
    )
    book = type(
        "Book",
        (base,),
        {
            "__tablename__": b_t,
            "__table_args__": (
                Index(f"ix_{b_t}_author_id", "author_id"),
                Index(f"ix_{b_t}_title", "title"),
            ),
            "id": mapped_column(Integer, primary_key=True, autoincrement=True),
            "title": mapped_column(String(64), nullable=False),
            "author_id": mapped_column(Integer, ForeignKey(f"{a_t}.id"), nullable=False),
            "author": relationship("Author", back_populates="books"),
        },
    )
    return author, book


def _fill_sql(backend: Backend, sizes: Sizes) -> tuple[str, str]:
    a_t, b_t, per = sizes.author_table, sizes.book_table, sizes.books_per_author
    na, nb = sizes.authors, sizes.authors * per
    into_a, into_b = f"INSERT INTO {a_t} (id, name) ", f"INSERT INTO {b_t} (id, title, author_id) "
    if backend.dialect == "postgresql":
        return (
            into_a + f"SELECT g + 1, 'author-' || g FROM generate_series(0, {na - 1}) AS g",
            into_b + f"SELECT g + 1, 't' || lpad(((g / 2) % 100)::text, 2, '0') || '-' || g, g / {per} + 1 "
            f"FROM generate_series(0, {nb - 1}) AS g",
        )
    if backend.dialect == "mysql":
        return (
            into_a + f"SELECT seq + 1, concat('author-', seq) FROM seq_0_to_{na - 1}",
            into_b
            + f"SELECT seq + 1, concat('t', lpad((seq DIV 2) % 100, 2, '0'), '-', seq), seq DIV {per} + 1 "
            f"FROM seq_0_to_{nb - 1}",
        )

    def cte(n: int) -> str:
        return f"WITH RECURSIVE g(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM g WHERE x < {n - 1}) "

    return (
        cte(na) + into_a + "SELECT x + 1, 'author-' || x FROM g",
        cte(nb)
        + into_b
        + f"SELECT x + 1, 't' || printf('%02d', (x / 2) % 100) || '-' || x, x / {per} + 1 FROM g",
    )


async def ensure_related_tables(engine: AsyncEngine, backend: Backend, sizes: Sizes) -> None:
    """Create and fill the authors and books tables once; rebuild them when their row counts differ."""
    metadata = MetaData()
    authors, books = related_tables(metadata, sizes)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all, checkfirst=True)
        have_a = (await conn.execute(select(func.count()).select_from(authors))).scalar_one()
        have_b = (await conn.execute(select(func.count()).select_from(books))).scalar_one()
    if (have_a, have_b) == (sizes.authors, sizes.authors * sizes.books_per_author):
        return
    fill_a, fill_b = _fill_sql(backend, sizes)
    async with engine.begin() as conn:
        await conn.execute(books.delete())
        await conn.execute(authors.delete())
        await conn.execute(text(fill_a))
        await conn.execute(text(fill_b))
    async with engine.begin() as conn:
        if backend.dialect == "postgresql":
            await conn.execute(text(f"ANALYZE {sizes.author_table}, {sizes.book_table}"))
        elif backend.dialect == "sqlite":
            await conn.execute(text("ANALYZE"))


# ---------------------------------------------------------------------- the workloads' arguments
def rel_args(sizes: Sizes) -> list[tuple[str, str]]:
    """``(author name, book title prefix)`` of each of the ``rel_queries`` calls, the same for
    every contender: names spread over the authors, prefixes over the 100 title groups."""
    return [(f"author-{(i * 7919) % sizes.authors}", f"t{i % 100:02d}-") for i in range(sizes.rel_queries)]


def expected_rel_find(sizes: Sizes) -> int:
    """Books found by all the ``rel_find`` calls (every name is an author with all its books)."""
    return sizes.rel_queries * sizes.books_per_author


@lru_cache(maxsize=4)
def expected_rel_count(sizes: Sizes) -> int:
    """The sum of the ``rel_count`` calls' counts: authors with at least one book per prefix."""
    per, n = sizes.books_per_author, sizes.authors * sizes.books_per_author
    by_prefix: dict[int, set[int]] = {}
    for j in range(n):
        by_prefix.setdefault((j // 2) % 100, set()).add(j // per)
    return sum(len(by_prefix.get(int(prefix[1:3]), ())) for _, prefix in rel_args(sizes))
