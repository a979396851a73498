"""Shared pieces of the benchmark: backends, table shapes, sizes, data (no contender code)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Double, Index, Integer, MetaData, String, Table, event, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

POOL_SIZE = 10
COUNT_GROUP = 7  # ``grp`` value the count workload filters on (1% of rows)
# the range-filter count: ``grp < RANGE_BELOW``, the same number of rows as ``grp = COUNT_GROUP``
# through the same index, so the two count workloads differ only in the filter's operator
RANGE_BELOW = 1
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


@dataclass(frozen=True)
class Sizes:
    """How big each workload is."""

    bulk_rows: int = 10_000
    gets: int = 1_000
    read_rows: int = 10_000
    updates: int = 1_000
    inserts: int = 1_000
    tasks: int = 50
    gets_per_task: int = 20
    big_rows: int = 100_000
    pages: int = 100
    page_size: int = 100
    deep_page: int = 1_000
    depth_fetches: int = 20
    counts: int = 200
    stream_rows: int = 1_000_000
    stream_batch: int = 1_000
    memory_rows: int = 1_000_000  # insert_many from a generator, memory measured
    # issue 27's relationship filters: authors, each with books_per_author books (benchmarks.related)
    authors: int = 1_000
    books_per_author: int = 10
    rel_queries: int = 200

    # shared read-only tables, named by size so --quick never rebuilds the full-size ones
    @property
    def read_table(self) -> str:
        return f"bench_read_{self.read_rows}"

    @property
    def big_table(self) -> str:
        return f"bench_big_{self.big_rows}"

    @property
    def stream_table(self) -> str:
        return f"bench_stream_{self.stream_rows}"

    @property
    def author_table(self) -> str:
        return f"bench_authors_{self.authors}"

    @property
    def book_table(self) -> str:
        return f"bench_books_{self.authors * self.books_per_author}"


FULL = Sizes()
QUICK = Sizes(
    bulk_rows=50,
    gets=10,
    read_rows=50,
    updates=10,
    inserts=10,
    tasks=5,
    gets_per_task=2,
    big_rows=1_000,
    pages=3,
    page_size=10,
    deep_page=50,
    depth_fetches=2,
    counts=5,
    stream_rows=2_000,
    stream_batch=100,
    memory_rows=5_000,
    authors=20,
    books_per_author=4,  # even: the two books of a title group have the same author
    rel_queries=5,
)


@dataclass(frozen=True)
class Backend:
    """One database + driver combination under test."""

    name: str
    url: str  # SQLAlchemy URL (async driver)
    dialect: str  # "sqlite" | "postgresql" | "mysql"
    driver: str  # "aiosqlite" | "asyncpg" | "aiomysql" | "asyncmy"
    server: bool = field(default=True)

    @property
    def sqlite_path(self) -> str:
        return self.url.split(":///", 1)[1]


def _sqlite_path() -> str:
    if os.environ.get("BENCH_SQLITE_PATH"):
        return os.environ["BENCH_SQLITE_PATH"]
    directory = os.path.join(tempfile.gettempdir(), "dsg_lib_bench")
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, "bench.sqlite3")


def backends() -> dict[str, Backend]:
    """Backends by name.

    Server URLs come from ``BENCH_PG_URL`` / ``BENCH_MARIADB_URL``, else the test suite's
    ``DSG_TEST_POSTGRES_URL`` / ``DSG_TEST_MYSQL_URL``, else the local defaults; the SQLite
    file from ``BENCH_SQLITE_PATH`` (default: a file in the temp directory).
    """
    env = os.environ.get
    pg = (
        env("BENCH_PG_URL")
        or env("DSG_TEST_POSTGRES_URL")
        or "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    maria = (
        env("BENCH_MARIADB_URL") or env("DSG_TEST_MYSQL_URL") or "mysql+aiomysql://root@127.0.0.1:3306/test"
    )
    return {
        "sqlite": Backend("sqlite", f"sqlite+aiosqlite:///{_sqlite_path()}", "sqlite", "aiosqlite", False),
        "postgresql": Backend("postgresql", pg, "postgresql", "asyncpg"),
        "mariadb": Backend("mariadb", maria, "mysql", "aiomysql"),
        "mariadb-asyncmy": Backend(
            "mariadb-asyncmy", maria.replace("+aiomysql", "+asyncmy"), "mysql", "asyncmy"
        ),
    }


# ---------------------------------------------------------------------- tables and models
def _columns() -> list[Column[Any]]:
    return [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("name", String(64), nullable=False),
        Column("grp", Integer, nullable=False),
        Column("value", Double, nullable=False),
        Column("note", String(200), nullable=True),
    ]


def table(metadata: MetaData, name: str) -> Table:
    """A benchmark table: id, name, grp (indexed), value, note."""
    t = Table(name, metadata, *_columns())
    Index(f"ix_{name}_grp", t.c.grp)
    return t


def write_table_name(contender: str) -> str:
    return f"bench_w_{contender.replace('-', '_')}"


class Models:
    """A declarative base with one mapped class per benchmark table, for one contender."""

    def __init__(self, write_table: str, sizes: Sizes) -> None:
        class Base(DeclarativeBase):
            pass

        def model(name: str, tablename: str) -> Any:
            attrs: dict[str, Any] = {
                "__tablename__": tablename,
                "__table_args__": (Index(f"ix_{tablename}_grp", "grp"),),
                "__annotations__": {
                    "id": Mapped[int],
                    "name": Mapped[str],
                    "grp": Mapped[int],
                    "value": Mapped[float],
                    "note": Mapped["str | None"],
                },
                "id": mapped_column(Integer, primary_key=True, autoincrement=True),
                "name": mapped_column(String(64)),
                "grp": mapped_column(Integer),
                "value": mapped_column(Double),
                "note": mapped_column(String(200), nullable=True),
            }
            return type(name, (Base,), attrs)

        self.Base = Base
        self.Read = model("Read", sizes.read_table)
        self.Big = model("Big", sizes.big_table)
        self.Stream = model("StreamRow", sizes.stream_table)
        self.Write = model("Write", write_table)
        from .related import related_models  # (it imports this module)

        self.Author, self.Book = related_models(Base, sizes)


def iter_rows(n: int, start: int = 0) -> Iterator[dict[str, Any]]:
    """Rows as dicts, without ``id`` (the database generates it), one at a time."""
    for i in range(start, start + n):
        yield {"name": f"name-{i}", "grp": i % 100, "value": i * 0.5, "note": f"note {i}"}


def make_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    """Rows as dicts, without ``id`` (the database generates it)."""
    return list(iter_rows(n, start))


# ---------------------------------------------------------------------- engines and setup
def sqla_engine(backend: Backend, **kwargs: Any) -> AsyncEngine:
    """A plain SQLAlchemy async engine with the same SQLite pragmas the raw driver gets."""
    if backend.server:
        kwargs.setdefault("pool_size", POOL_SIZE)
        kwargs.setdefault("max_overflow", 0)
    engine = create_async_engine(backend.url, **kwargs)
    if not backend.server:

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, record: Any) -> None:
            cursor = dbapi_conn.cursor()
            for pragma in SQLITE_PRAGMAS:
                cursor.execute(pragma)
            cursor.close()

    return engine


def _fill_sql(backend: Backend, name: str, n: int) -> str:
    cols = f"INSERT INTO {name} (name, grp, value, note) "
    if backend.dialect == "postgresql":
        return cols + (
            f"SELECT 'name-' || g, g % 100, g * 0.5, 'note ' || g FROM generate_series(0, {n - 1}) AS g"
        )
    if backend.dialect == "mysql":
        return cols + (
            f"SELECT concat('name-', seq), seq % 100, seq * 0.5, concat('note ', seq) FROM seq_0_to_{n - 1}"
        )
    return (
        f"WITH RECURSIVE g(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM g WHERE x < {n - 1}) "
        + cols
        + "SELECT 'name-' || x, x % 100, x * 0.5, 'note ' || x FROM g"
    )


async def ensure_shared_tables(engine: AsyncEngine, backend: Backend, sizes: Sizes) -> None:
    """Create and fill the read-only tables once; reuse them when they already hold the right rows."""
    wanted = {
        sizes.read_table: sizes.read_rows,
        sizes.big_table: sizes.big_rows,
        sizes.stream_table: sizes.stream_rows,
    }
    metadata = MetaData()
    tables = {name: table(metadata, name) for name in wanted}
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all, checkfirst=True)
    for name, n in wanted.items():
        async with engine.begin() as conn:
            have = (await conn.execute(select(func.count()).select_from(tables[name]))).scalar_one()
            if have == n:
                continue
            await conn.execute(tables[name].delete())
            await conn.execute(text(_fill_sql(backend, name, n)))
    async with engine.begin() as conn:
        if backend.dialect == "postgresql":
            await conn.execute(text("ANALYZE " + ", ".join(wanted)))
        elif backend.dialect == "sqlite":
            await conn.execute(text("ANALYZE"))


async def create_write_table(engine: AsyncEngine, name: str) -> None:
    metadata = MetaData()
    t = table(metadata, name)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all, tables=[t], checkfirst=True)
        await conn.run_sync(metadata.create_all, tables=[t])


async def reset_write_table(engine: AsyncEngine, backend: Backend, name: str, rows: int) -> list[int]:
    """Empty a contender's write table (identity restarted), then seed ``rows`` rows; returns their ids."""
    async with engine.begin() as conn:
        if backend.dialect == "postgresql":
            await conn.execute(text(f"TRUNCATE {name} RESTART IDENTITY"))
        elif backend.dialect == "mysql":
            await conn.execute(text(f"TRUNCATE TABLE {name}"))
        else:
            await conn.execute(text(f"DELETE FROM {name}"))
        if rows:
            await conn.execute(text(_fill_sql(backend, name, rows)))
            result = await conn.execute(text(f"SELECT id FROM {name} ORDER BY id"))
            return [r[0] for r in result]
    return []


async def ids_of(engine: AsyncEngine, name: str, limit: int) -> list[int]:
    async with engine.connect() as conn:
        result = await conn.execute(text(f"SELECT id FROM {name} ORDER BY id LIMIT {int(limit)}"))
        return [r[0] for r in result]


async def id_at(engine: AsyncEngine, name: str, offset: int) -> int:
    """The id of the row at ``offset`` in id order (the last id before page ``n`` of a keyset walk)."""
    async with engine.connect() as conn:
        result = await conn.execute(text(f"SELECT id FROM {name} ORDER BY id LIMIT 1 OFFSET {int(offset)}"))
        return int(result.scalar_one())


async def server_version(engine: AsyncEngine, backend: Backend) -> str:
    sql = "SELECT sqlite_version()" if backend.dialect == "sqlite" else "SELECT version()"
    async with engine.connect() as conn:
        version = str((await conn.execute(text(sql))).scalar_one())
    return ("SQLite " + version) if backend.dialect == "sqlite" else version.split(" on ")[0]
