"""The two fastest async ORMs that are not built on SQLAlchemy: Tortoise ORM and Piccolo.

Each is written the way its documentation teaches: Tortoise with ``Tortoise.init`` and a
models module (``benchmarks.tortoise_models``), ``Model.create`` / ``Model.get`` /
``Model.filter(...)``; Piccolo with ``Table`` classes bound to an engine and
``await Table.objects().where(...)`` / ``Table.count().where(...)``. Both get the pool every
other server contender gets (min = max = ``POOL_SIZE``) and, on SQLite, the same pragmas where
the library lets a user set them (see ``docs/performance.md``, "The contenders").
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url

from .base import Contender, Ctx
from .common import COUNT_GROUP, POOL_SIZE, RANGE_BELOW, SQLITE_PRAGMAS, Backend
from .related import rel_args

BULK_CHUNK = 1_000  # Piccolo sends one INSERT per call: chunks keep it under the bound-parameter limits


def sqlite_pragmas() -> dict[str, str]:
    """``SQLITE_PRAGMAS`` as ``{"journal_mode": "WAL", ...}``."""
    pairs = (p.removeprefix("PRAGMA ").split("=", 1) for p in SQLITE_PRAGMAS)
    return {key.strip(): value.strip() for key, value in pairs}


def tortoise_config(backend: Backend, models: list[str], connection: str) -> dict[str, Any]:
    """A ``Tortoise.init(config=...)`` dict for one backend, pool min = max = ``POOL_SIZE``.

    ``connection`` names the connection: Tortoise caches each model's SQL per connection name,
    so every backend (dialect) run in one process needs a name of its own.
    """
    if backend.dialect == "sqlite":
        engine = "tortoise.backends.sqlite"
        credentials: dict[str, Any] = {"file_path": backend.sqlite_path, **sqlite_pragmas()}
    else:
        url = make_url(backend.url)
        credentials = {
            "host": url.host,
            "port": url.port or (5432 if backend.dialect == "postgresql" else 3306),
            "user": url.username,
            "password": url.password or "",
            "database": url.database,
            "minsize": POOL_SIZE,
            "maxsize": POOL_SIZE,
        }
        if backend.dialect == "postgresql":
            engine = "tortoise.backends.asyncpg"
        elif backend.driver == "asyncmy":
            engine = "tortoise.backends.mysql"  # asyncmy when installed (checked by check_tortoise_driver)
        else:
            engine = "benchmarks.tortoise_aiomysql"  # the same client, on aiomysql
    return {
        "connections": {connection: {"engine": engine, "credentials": credentials}},
        "apps": {"models": {"models": models, "default_connection": connection}},
        "use_tz": False,
    }


def check_tortoise_driver(backend: Backend) -> None:
    """Fail loudly rather than measure Tortoise on aiomysql under the asyncmy label.

    (The aiomysql engine module, ``benchmarks.tortoise_aiomysql``, checks its own driver.)
    """
    if backend.dialect == "mysql" and backend.driver == "asyncmy":
        from tortoise.backends.mysql import client

        if client.mysql.__name__ != "asyncmy":
            raise RuntimeError(f"Tortoise runs MySQL on {client.mysql.__name__}: asyncmy is not installed")


class Tortoise(Contender):
    """Tortoise ORM: ``Tortoise.init`` with a models module; ``Model.get`` / ``create`` / ``filter``."""

    name = "tortoise"
    label = "Tortoise ORM"

    async def open(self) -> None:
        from tortoise import Tortoise as TortoiseORM

        from . import tortoise_models

        check_tortoise_driver(self.backend)
        tables = {
            "Read": self.read_t,
            "Big": self.big_t,
            "StreamRow": self.stream_t,
            "Write": self.write_table,
            "Author": self.sizes.author_table,
            "Book": self.sizes.book_table,
        }
        self.connection = f"bench_{self.backend.name.replace('-', '_')}"
        await TortoiseORM.init(
            config=tortoise_config(self.backend, ["benchmarks.tortoise_models"], self.connection),
            table_name_generator=lambda model: tables[model.__name__],
        )
        self.m = tortoise_models

    async def close(self) -> None:
        from tortoise import Tortoise as TortoiseORM

        await TortoiseORM.close_connections()

    async def w_bulk_insert(self, ctx: Ctx) -> None:
        W = self.m.Write
        await W.bulk_create([W(**r) for r in ctx.rows])  # one executemany in one transaction

    async def _get(self, i: int) -> Any:
        return await self.m.Read.get(id=i)

    async def w_get_mapping(self, ctx: Ctx) -> None:
        R = self.m.Read
        for i in ctx.ids:
            await R.filter(id=i).first().values()

    async def w_exists(self, ctx: Ctx) -> None:
        R = self.m.Read
        for i in ctx.ids:
            await R.filter(id=i).exists()

    async def w_read_objects(self, ctx: Ctx) -> int:
        return len(await self.m.Read.all())

    async def w_read_rows(self, ctx: Ctx) -> int:
        return len(await self.m.Read.all().values())

    async def w_update_pk(self, ctx: Ctx) -> None:
        W = self.m.Write
        for i in ctx.ids:
            await W.filter(id=i).update(value=i * 2.0)

    async def w_delete_pk(self, ctx: Ctx) -> None:
        W = self.m.Write
        for i in ctx.ids:
            await W.filter(id=i).delete()

    async def w_insert_commit(self, ctx: Ctx) -> None:
        W = self.m.Write
        for r in ctx.rows:
            obj = await W.create(**r)
            _ = obj.id

    async def w_offset_pages(self, ctx: Ctx) -> None:
        B = self.m.Big
        size = ctx.sizes.page_size
        for page in range(1, ctx.sizes.pages + 1):
            await B.all().count()
            await B.all().order_by("id").offset((page - 1) * size).limit(size)

    async def _after(self, after: int, size: int) -> list[Any]:
        return list(await self.m.Big.filter(id__gt=after).order_by("id").limit(size))

    async def w_keyset_pages(self, ctx: Ctx) -> None:
        after = 0
        for _ in range(ctx.sizes.pages):
            after = (await self._after(after, ctx.sizes.page_size))[-1].id

    async def w_offset_depth(self, ctx: Ctx) -> None:
        B = self.m.Big
        size = ctx.sizes.page_size
        for _ in range(ctx.sizes.depth_fetches):
            await B.all().order_by("id").offset((ctx.page - 1) * size).limit(size)

    async def w_keyset_depth(self, ctx: Ctx) -> None:
        for _ in range(ctx.sizes.depth_fetches):
            await self._after(ctx.after_id, ctx.sizes.page_size)

    async def w_count(self, ctx: Ctx) -> None:
        B = self.m.Big
        for _ in range(ctx.sizes.counts):
            await B.filter(grp=COUNT_GROUP).count()

    async def w_count_range(self, ctx: Ctx) -> None:
        B = self.m.Big
        for _ in range(ctx.sizes.counts):
            await B.filter(grp__lt=RANGE_BELOW).count()

    async def w_rel_find(self, ctx: Ctx) -> int:
        n = 0
        for name, _ in rel_args(ctx.sizes):
            n += len(await self.m.Book.filter(author__name=name))
        return n

    async def w_rel_count(self, ctx: Ctx) -> int:
        """``.distinct()``: Tortoise filters through the to-many relationship with a JOIN, so a plain
        ``.count()`` counts joined rows (an author with two matching books twice) and fails the
        runner's check; ``.distinct().count()`` is ``COUNT(DISTINCT id)``, the right number."""
        n = 0
        for _, prefix in rel_args(ctx.sizes):
            n += await self.m.Author.filter(books__title__startswith=prefix).distinct().count()
        return n


def piccolo_related(engine: Any, author_table: str, book_table: str) -> tuple[Any, Any]:
    """``Author`` and ``Book`` (``author``: a ``ForeignKey`` on the ``author_id`` column)."""
    from piccolo.columns import ForeignKey, Varchar
    from piccolo.table import Table

    class Author(Table, tablename=author_table, db=engine):
        name = Varchar(length=64)

    class Book(Table, tablename=book_table, db=engine):
        title = Varchar(length=64)
        author = ForeignKey(references=Author, db_column_name="author_id")

    return Author, Book


def piccolo_tables(engine: Any, names: dict[str, str]) -> dict[str, Any]:
    """One Piccolo ``Table`` class per benchmark table, bound to ``engine`` (``db=``)."""
    from piccolo.columns import DoublePrecision, Integer, Varchar
    from piccolo.table import Table

    def table(class_name: str, tablename: str) -> Any:
        # Piccolo adds the ``id`` Serial primary key itself
        class BenchRow(Table, tablename=tablename, db=engine):
            name = Varchar(length=64)
            grp = Integer()
            value = DoublePrecision()
            note = Varchar(length=200, null=True)

        BenchRow.__name__ = BenchRow.__qualname__ = class_name
        return BenchRow

    return {class_name: table(class_name, tablename) for class_name, tablename in names.items()}


class Piccolo(Contender):
    """Piccolo: ``Table`` classes on a ``PostgresEngine`` with a pool, or a ``SQLiteEngine``."""

    name = "piccolo"
    label = "Piccolo"
    dialects = ("sqlite", "postgresql")  # Piccolo has no MySQL/MariaDB engine

    async def open(self) -> None:
        if self.backend.dialect == "sqlite":
            from piccolo.engine.sqlite import SQLiteEngine

            # one new connection per query (Piccolo's SQLite engine has no pool); WAL is a property
            # of the database file, the other pragmas cannot be set through the engine
            self.engine: Any = SQLiteEngine(path=self.backend.sqlite_path)
        else:
            from piccolo.engine.postgres import PostgresEngine

            url = make_url(self.backend.url)
            config = {
                "host": url.host,
                "port": url.port or 5432,
                "user": url.username,
                "password": url.password,
                "database": url.database,
            }
            self.engine = PostgresEngine(config=config, extensions=())
            await self.engine.start_connection_pool(min_size=POOL_SIZE, max_size=POOL_SIZE)
        t = piccolo_tables(
            self.engine,
            {"Read": self.read_t, "Big": self.big_t, "StreamRow": self.stream_t, "Write": self.write_table},
        )
        self.Read, self.Big, self.Stream, self.Write = t["Read"], t["Big"], t["StreamRow"], t["Write"]
        self.Author, self.Book = piccolo_related(self.engine, self.sizes.author_table, self.sizes.book_table)

    async def close(self) -> None:
        if self.backend.dialect != "sqlite":
            await self.engine.close_connection_pool()

    async def w_bulk_insert(self, ctx: Ctx) -> None:
        W = self.Write
        async with self.engine.transaction():
            for start in range(0, len(ctx.rows), BULK_CHUNK):
                await W.insert(*(W(**r) for r in ctx.rows[start : start + BULK_CHUNK]))

    async def _get(self, i: int) -> Any:
        R = self.Read
        return await R.objects().get(R.id == i)

    async def w_get_mapping(self, ctx: Ctx) -> None:
        R = self.Read
        for i in ctx.ids:
            await R.select().where(R.id == i).first()

    async def w_exists(self, ctx: Ctx) -> None:
        R = self.Read
        for i in ctx.ids:
            await R.exists().where(R.id == i)

    async def w_read_objects(self, ctx: Ctx) -> int:
        return len(await self.Read.objects())

    async def w_read_rows(self, ctx: Ctx) -> int:
        return len(await self.Read.select())

    async def w_update_pk(self, ctx: Ctx) -> None:
        W = self.Write
        for i in ctx.ids:
            await W.update({W.value: i * 2.0}).where(W.id == i)

    async def w_delete_pk(self, ctx: Ctx) -> None:
        W = self.Write
        for i in ctx.ids:
            await W.delete().where(W.id == i)

    async def w_insert_commit(self, ctx: Ctx) -> None:
        W = self.Write
        for r in ctx.rows:
            obj = await W.objects().create(**r)
            _ = obj.id

    async def w_offset_pages(self, ctx: Ctx) -> None:
        B = self.Big
        size = ctx.sizes.page_size
        for page in range(1, ctx.sizes.pages + 1):
            await B.count()
            await B.objects().order_by(B.id).limit(size).offset((page - 1) * size)

    async def _after(self, after: int, size: int) -> list[Any]:
        B = self.Big
        return list(await B.objects().where(B.id > after).order_by(B.id).limit(size))

    async def w_keyset_pages(self, ctx: Ctx) -> None:
        after = 0
        for _ in range(ctx.sizes.pages):
            after = (await self._after(after, ctx.sizes.page_size))[-1].id

    async def w_offset_depth(self, ctx: Ctx) -> None:
        B = self.Big
        size = ctx.sizes.page_size
        for _ in range(ctx.sizes.depth_fetches):
            await B.objects().order_by(B.id).limit(size).offset((ctx.page - 1) * size)

    async def w_keyset_depth(self, ctx: Ctx) -> None:
        for _ in range(ctx.sizes.depth_fetches):
            await self._after(ctx.after_id, ctx.sizes.page_size)

    async def w_count(self, ctx: Ctx) -> None:
        B = self.Big
        for _ in range(ctx.sizes.counts):
            await B.count().where(B.grp == COUNT_GROUP)

    async def w_count_range(self, ctx: Ctx) -> None:
        B = self.Big
        for _ in range(ctx.sizes.counts):
            await B.count().where(B.grp < RANGE_BELOW)

    async def w_rel_find(self, ctx: Ctx) -> int:
        """The to-one filter (a join); Piccolo filters through no to-many relationship: no rel_count."""
        B = self.Book
        n = 0
        for name, _ in rel_args(ctx.sizes):
            n += len(await B.objects().where(B.author.name == name))
        return n

    async def w_stream(self, ctx: Ctx) -> int:
        n = 0
        async with await self.Stream.objects().batch(batch_size=ctx.sizes.stream_batch) as batch:
            async for objects in batch:
                n += len(objects)
        return n
