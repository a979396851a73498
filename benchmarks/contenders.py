"""The contenders: the same workloads written idiomatically for each library.

Each contender implements ``w_<workload>(ctx)`` for the workloads it can run
(a missing method means "not offered by this library" and is reported as such).
Every contender writes only to its own table (``bench_w_<name>``), which the
runner empties or seeds before each timed run; reads share the read-only tables.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from .async_orms import Piccolo, Tortoise
from .base import COLS, INSERT_COLS, Contender, Ctx
from .base import tuples as _tuples
from .common import (
    COUNT_GROUP,
    POOL_SIZE,
    RANGE_BELOW,
    SQLITE_PRAGMAS,
    Backend,
    Models,
    Sizes,
    iter_rows,
    sqla_engine,
)
from .related import read_schema, rel_args

__all__ = ["CONTENDERS", "Contender", "Ctx", "available", "make"]


# ====================================================================== raw drivers
class RawPostgres(Contender):
    """asyncpg pool (min = max = 10), prepared statements cached by asyncpg."""

    name = "raw"
    label = "raw driver"

    async def open(self) -> None:
        import asyncpg

        dsn = self.backend.url.replace("postgresql+asyncpg", "postgresql")
        self.pool = await asyncpg.create_pool(dsn, min_size=POOL_SIZE, max_size=POOL_SIZE)

    async def close(self) -> None:
        await self.pool.close()

    async def w_bulk_insert(self, ctx: Ctx) -> None:
        async with self.pool.acquire() as conn:
            await conn.copy_records_to_table(self.write_table, records=_tuples(ctx.rows), columns=INSERT_COLS)

    async def _get(self, i: int) -> Any:
        return await self.pool.fetchrow(f"SELECT {COLS} FROM {self.read_t} WHERE id = $1", i)

    async def w_read_rows(self, ctx: Ctx) -> int:
        return len(await self.pool.fetch(f"SELECT {COLS} FROM {self.read_t}"))

    w_read_objects = w_read_rows

    async def w_update_pk(self, ctx: Ctx) -> None:
        sql = f"UPDATE {self.write_table} SET value = $1 WHERE id = $2"
        for i in ctx.ids:
            await self.pool.execute(sql, i * 2.0, i)

    async def w_insert_commit(self, ctx: Ctx) -> None:
        sql = f"INSERT INTO {self.write_table} (name, grp, value, note) VALUES ($1, $2, $3, $4) RETURNING id"
        for r in ctx.rows:
            await self.pool.fetchval(sql, r["name"], r["grp"], r["value"], r["note"])

    async def _page(self, conn: Any, page: int, size: int) -> list[Any]:
        sql = f"SELECT {COLS} FROM {self.big_t} ORDER BY id LIMIT $1 OFFSET $2"
        return list(await conn.fetch(sql, size, (page - 1) * size))

    async def w_offset_pages(self, ctx: Ctx) -> None:
        for page in range(1, ctx.sizes.pages + 1):
            async with self.pool.acquire() as conn:
                await conn.fetchval(f"SELECT count(*) FROM {self.big_t}")
                await self._page(conn, page, ctx.sizes.page_size)

    async def _after(self, after: int, size: int) -> list[Any]:
        sql = f"SELECT {COLS} FROM {self.big_t} WHERE id > $1 ORDER BY id LIMIT $2"
        return list(await self.pool.fetch(sql, after, size))

    async def w_keyset_pages(self, ctx: Ctx) -> None:
        after = 0
        for _ in range(ctx.sizes.pages):
            rows = await self._after(after, ctx.sizes.page_size)
            after = rows[-1]["id"]

    async def w_offset_depth(self, ctx: Ctx) -> None:
        for _ in range(ctx.sizes.depth_fetches):
            async with self.pool.acquire() as conn:
                await self._page(conn, ctx.page, ctx.sizes.page_size)

    async def w_keyset_depth(self, ctx: Ctx) -> None:
        for _ in range(ctx.sizes.depth_fetches):
            await self._after(ctx.after_id, ctx.sizes.page_size)

    w_get_mapping = Contender.w_get_pk  # an asyncpg Record is the driver's mapping row

    async def w_exists(self, ctx: Ctx) -> None:
        sql = f"SELECT EXISTS (SELECT 1 FROM {self.read_t} WHERE id = $1)"
        for i in ctx.ids:
            await self.pool.fetchval(sql, i)

    async def w_delete_pk(self, ctx: Ctx) -> None:
        sql = f"DELETE FROM {self.write_table} WHERE id = $1"
        for i in ctx.ids:
            await self.pool.execute(sql, i)

    async def w_count(self, ctx: Ctx) -> None:
        for _ in range(ctx.sizes.counts):
            await self.pool.fetchval(f"SELECT count(*) FROM {self.big_t} WHERE grp = $1", COUNT_GROUP)

    async def w_count_range(self, ctx: Ctx) -> None:
        for _ in range(ctx.sizes.counts):
            await self.pool.fetchval(f"SELECT count(*) FROM {self.big_t} WHERE grp < $1", RANGE_BELOW)

    async def w_stream(self, ctx: Ctx) -> int:
        n = 0
        async with self.pool.acquire() as conn, conn.transaction():
            cursor = conn.cursor(f"SELECT {COLS} FROM {self.stream_t}", prefetch=ctx.sizes.stream_batch)
            async for _row in cursor:
                n += 1
        return n


class RawMySQL(Contender):
    """aiomysql / asyncmy pool (min = max = 10, autocommit on: a lone statement commits itself)."""

    name = "raw"
    label = "raw driver"

    async def open(self) -> None:
        from sqlalchemy.engine import make_url

        url = make_url(self.backend.url)
        kwargs = {
            "host": url.host,
            "port": url.port or 3306,
            "user": url.username or "root",
            "password": url.password or "",
            "db": url.database,
            "autocommit": True,
            "minsize": POOL_SIZE,
            "maxsize": POOL_SIZE,
        }
        if self.backend.driver == "asyncmy":
            import asyncmy
            from asyncmy.cursors import SSCursor

            self.pool = await asyncmy.create_pool(**kwargs)
        else:
            import aiomysql
            from aiomysql import SSCursor

            self.pool = await aiomysql.create_pool(**kwargs)
        self.sscursor = SSCursor

    async def close(self) -> None:
        self.pool.close()
        await self.pool.wait_closed()

    async def _fetch(self, sql: str, args: Any = None) -> Any:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(sql, args)
            return await cur.fetchall()

    async def _get(self, i: int) -> Any:
        return await self._fetch(f"SELECT {COLS} FROM {self.read_t} WHERE id = %s", (i,))

    async def _execute(self, sql: str, args: Any) -> int:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(sql, args)
            return int(cur.lastrowid or 0)

    async def w_bulk_insert(self, ctx: Ctx) -> None:
        sql = f"INSERT INTO {self.write_table} (name, grp, value, note) VALUES (%s, %s, %s, %s)"
        async with self.pool.acquire() as conn:
            await conn.begin()
            async with conn.cursor() as cur:
                await cur.executemany(sql, _tuples(ctx.rows))
            await conn.commit()

    async def w_read_rows(self, ctx: Ctx) -> int:
        return len(await self._fetch(f"SELECT {COLS} FROM {self.read_t}"))

    w_read_objects = w_read_rows

    async def w_update_pk(self, ctx: Ctx) -> None:
        sql = f"UPDATE {self.write_table} SET value = %s WHERE id = %s"
        for i in ctx.ids:
            await self._execute(sql, (i * 2.0, i))

    async def w_insert_commit(self, ctx: Ctx) -> None:
        sql = f"INSERT INTO {self.write_table} (name, grp, value, note) VALUES (%s, %s, %s, %s)"
        for r in ctx.rows:
            await self._execute(sql, (r["name"], r["grp"], r["value"], r["note"]))

    async def w_offset_pages(self, ctx: Ctx) -> None:
        size = ctx.sizes.page_size
        for page in range(1, ctx.sizes.pages + 1):
            async with self.pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute(f"SELECT count(*) FROM {self.big_t}")
                await cur.fetchall()
                sql = f"SELECT {COLS} FROM {self.big_t} ORDER BY id LIMIT %s OFFSET %s"
                await cur.execute(sql, (size, (page - 1) * size))
                await cur.fetchall()

    async def w_keyset_pages(self, ctx: Ctx) -> None:
        after = 0
        sql = f"SELECT {COLS} FROM {self.big_t} WHERE id > %s ORDER BY id LIMIT %s"
        for _ in range(ctx.sizes.pages):
            rows = await self._fetch(sql, (after, ctx.sizes.page_size))
            after = rows[-1][0]

    async def w_offset_depth(self, ctx: Ctx) -> None:
        size = ctx.sizes.page_size
        sql = f"SELECT {COLS} FROM {self.big_t} ORDER BY id LIMIT %s OFFSET %s"
        for _ in range(ctx.sizes.depth_fetches):
            await self._fetch(sql, (size, (ctx.page - 1) * size))

    async def w_keyset_depth(self, ctx: Ctx) -> None:
        sql = f"SELECT {COLS} FROM {self.big_t} WHERE id > %s ORDER BY id LIMIT %s"
        for _ in range(ctx.sizes.depth_fetches):
            await self._fetch(sql, (ctx.after_id, ctx.sizes.page_size))

    w_get_mapping = Contender.w_get_pk  # the driver's row is the raw "mapping" row

    async def w_exists(self, ctx: Ctx) -> None:
        sql = f"SELECT EXISTS (SELECT 1 FROM {self.read_t} WHERE id = %s)"
        for i in ctx.ids:
            await self._fetch(sql, (i,))

    async def w_delete_pk(self, ctx: Ctx) -> None:
        sql = f"DELETE FROM {self.write_table} WHERE id = %s"
        for i in ctx.ids:
            await self._execute(sql, (i,))

    async def w_count(self, ctx: Ctx) -> None:
        for _ in range(ctx.sizes.counts):
            await self._fetch(f"SELECT count(*) FROM {self.big_t} WHERE grp = %s", (COUNT_GROUP,))

    async def w_count_range(self, ctx: Ctx) -> None:
        for _ in range(ctx.sizes.counts):
            await self._fetch(f"SELECT count(*) FROM {self.big_t} WHERE grp < %s", (RANGE_BELOW,))

    async def w_stream(self, ctx: Ctx) -> int:
        n = 0
        async with self.pool.acquire() as conn, conn.cursor(self.sscursor) as cur:
            await cur.execute(f"SELECT {COLS} FROM {self.stream_t}")
            while rows := await cur.fetchmany(ctx.sizes.stream_batch):
                n += len(rows)
        return n


class RawSQLite(Contender):
    """One aiosqlite connection with the same pragmas as every other contender."""

    name = "raw"
    label = "raw driver"

    async def open(self) -> None:
        import aiosqlite

        self.db = await aiosqlite.connect(self.backend.sqlite_path)
        for pragma in SQLITE_PRAGMAS:
            await self.db.execute(pragma)

    async def close(self) -> None:
        await self.db.close()

    async def w_bulk_insert(self, ctx: Ctx) -> None:
        sql = f"INSERT INTO {self.write_table} (name, grp, value, note) VALUES (?, ?, ?, ?)"
        await self.db.executemany(sql, _tuples(ctx.rows))
        await self.db.commit()

    async def _get(self, i: int) -> Any:
        return await self.db.execute_fetchall(f"SELECT {COLS} FROM {self.read_t} WHERE id = ?", (i,))

    async def w_read_rows(self, ctx: Ctx) -> int:
        return len(list(await self.db.execute_fetchall(f"SELECT {COLS} FROM {self.read_t}")))

    w_read_objects = w_read_rows

    async def w_update_pk(self, ctx: Ctx) -> None:
        sql = f"UPDATE {self.write_table} SET value = ? WHERE id = ?"
        for i in ctx.ids:
            await self.db.execute(sql, (i * 2.0, i))
            await self.db.commit()

    async def w_insert_commit(self, ctx: Ctx) -> None:
        sql = f"INSERT INTO {self.write_table} (name, grp, value, note) VALUES (?, ?, ?, ?)"
        for r in ctx.rows:
            cursor = await self.db.execute(sql, (r["name"], r["grp"], r["value"], r["note"]))
            _ = cursor.lastrowid
            await self.db.commit()

    async def w_offset_pages(self, ctx: Ctx) -> None:
        size = ctx.sizes.page_size
        for page in range(1, ctx.sizes.pages + 1):
            await self.db.execute_fetchall(f"SELECT count(*) FROM {self.big_t}")
            await self.db.execute_fetchall(
                f"SELECT {COLS} FROM {self.big_t} ORDER BY id LIMIT ? OFFSET ?", (size, (page - 1) * size)
            )

    async def w_keyset_pages(self, ctx: Ctx) -> None:
        after = 0
        sql = f"SELECT {COLS} FROM {self.big_t} WHERE id > ? ORDER BY id LIMIT ?"
        for _ in range(ctx.sizes.pages):
            rows = list(await self.db.execute_fetchall(sql, (after, ctx.sizes.page_size)))
            after = rows[-1][0]

    async def w_offset_depth(self, ctx: Ctx) -> None:
        size = ctx.sizes.page_size
        sql = f"SELECT {COLS} FROM {self.big_t} ORDER BY id LIMIT ? OFFSET ?"
        for _ in range(ctx.sizes.depth_fetches):
            await self.db.execute_fetchall(sql, (size, (ctx.page - 1) * size))

    async def w_keyset_depth(self, ctx: Ctx) -> None:
        sql = f"SELECT {COLS} FROM {self.big_t} WHERE id > ? ORDER BY id LIMIT ?"
        for _ in range(ctx.sizes.depth_fetches):
            await self.db.execute_fetchall(sql, (ctx.after_id, ctx.sizes.page_size))

    w_get_mapping = Contender.w_get_pk  # the driver's row is the raw "mapping" row

    async def w_exists(self, ctx: Ctx) -> None:
        sql = f"SELECT EXISTS (SELECT 1 FROM {self.read_t} WHERE id = ?)"
        for i in ctx.ids:
            await self.db.execute_fetchall(sql, (i,))

    async def w_delete_pk(self, ctx: Ctx) -> None:
        sql = f"DELETE FROM {self.write_table} WHERE id = ?"
        for i in ctx.ids:
            await self.db.execute(sql, (i,))
            await self.db.commit()

    async def w_count(self, ctx: Ctx) -> None:
        for _ in range(ctx.sizes.counts):
            await self.db.execute_fetchall(f"SELECT count(*) FROM {self.big_t} WHERE grp = ?", (COUNT_GROUP,))

    async def w_count_range(self, ctx: Ctx) -> None:
        for _ in range(ctx.sizes.counts):
            await self.db.execute_fetchall(f"SELECT count(*) FROM {self.big_t} WHERE grp < ?", (RANGE_BELOW,))

    async def w_stream(self, ctx: Ctx) -> int:
        n = 0
        async with self.db.execute(f"SELECT {COLS} FROM {self.stream_t}") as cursor:
            while rows := await cursor.fetchmany(ctx.sizes.stream_batch):
                n += len(rows)
        return n


def raw_contender(backend: Backend, sizes: Sizes) -> Contender:
    if backend.dialect == "postgresql":
        return RawPostgres(backend, sizes)
    if backend.dialect == "mysql":
        return RawMySQL(backend, sizes)
    return RawSQLite(backend, sizes)


# ====================================================================== SQLAlchemy-based contenders
class _SQLAlchemyContender(Contender):
    """Shared engine / models plumbing; engines are plain ``create_async_engine`` defaults + pool 10."""

    async def open(self) -> None:
        self.models = Models(self.write_table, self.sizes)
        self.engine = sqla_engine(self.backend)
        self.Session = async_sessionmaker(self.engine, expire_on_commit=False)

    async def close(self) -> None:
        await self.engine.dispose()


class Core(_SQLAlchemyContender):
    """SQLAlchemy Core on an ``AsyncEngine``: one ``connect()`` / ``begin()`` per operation."""

    name = "core"
    label = "SQLAlchemy Core"

    async def open(self) -> None:
        await super().open()
        self.read = self.models.Read.__table__
        self.big = self.models.Big.__table__
        self.write = self.models.Write.__table__
        self.stream_tab = self.models.Stream.__table__

    async def w_bulk_insert(self, ctx: Ctx) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(insert(self.write), ctx.rows)

    async def _get(self, i: int) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(self.read).where(self.read.c.id == i))).first()

    async def w_read_rows(self, ctx: Ctx) -> int:
        async with self.engine.connect() as conn:
            return len((await conn.execute(select(self.read))).mappings().all())

    async def w_update_pk(self, ctx: Ctx) -> None:
        t = self.write
        for i in ctx.ids:
            async with self.engine.begin() as conn:
                await conn.execute(update(t).where(t.c.id == i).values(value=i * 2.0))

    async def w_insert_commit(self, ctx: Ctx) -> None:
        for r in ctx.rows:
            async with self.engine.begin() as conn:
                result = await conn.execute(insert(self.write).values(**r))
                _ = result.inserted_primary_key

    def _page_stmt(self, page: int, size: int) -> Any:
        return select(self.big).order_by(self.big.c.id).limit(size).offset((page - 1) * size)

    async def w_offset_pages(self, ctx: Ctx) -> None:
        size = ctx.sizes.page_size
        for page in range(1, ctx.sizes.pages + 1):
            async with self.engine.connect() as conn:
                (await conn.execute(select(func.count()).select_from(self.big))).scalar_one()
                (await conn.execute(self._page_stmt(page, size))).all()

    async def _after(self, after: int, size: int) -> list[Any]:
        t = self.big
        async with self.engine.connect() as conn:
            stmt = select(t).where(t.c.id > after).order_by(t.c.id).limit(size)
            return list((await conn.execute(stmt)).all())

    async def w_keyset_pages(self, ctx: Ctx) -> None:
        after = 0
        for _ in range(ctx.sizes.pages):
            after = (await self._after(after, ctx.sizes.page_size))[-1].id

    async def w_offset_depth(self, ctx: Ctx) -> None:
        for _ in range(ctx.sizes.depth_fetches):
            async with self.engine.connect() as conn:
                (await conn.execute(self._page_stmt(ctx.page, ctx.sizes.page_size))).all()

    async def w_keyset_depth(self, ctx: Ctx) -> None:
        for _ in range(ctx.sizes.depth_fetches):
            await self._after(ctx.after_id, ctx.sizes.page_size)

    async def w_get_mapping(self, ctx: Ctx) -> None:
        t = self.read
        for i in ctx.ids:
            async with self.engine.connect() as conn:
                (await conn.execute(select(t).where(t.c.id == i))).mappings().first()

    async def w_exists(self, ctx: Ctx) -> None:
        t = self.read
        for i in ctx.ids:
            async with self.engine.connect() as conn:
                (await conn.execute(select(exists().where(t.c.id == i)))).scalar()

    async def w_delete_pk(self, ctx: Ctx) -> None:
        t = self.write
        for i in ctx.ids:
            async with self.engine.begin() as conn:
                await conn.execute(delete(t).where(t.c.id == i))

    async def w_count(self, ctx: Ctx) -> None:
        stmt = select(func.count()).select_from(self.big).where(self.big.c.grp == COUNT_GROUP)
        for _ in range(ctx.sizes.counts):
            async with self.engine.connect() as conn:
                (await conn.execute(stmt)).scalar_one()

    async def w_count_range(self, ctx: Ctx) -> None:
        stmt = select(func.count()).select_from(self.big).where(self.big.c.grp < RANGE_BELOW)
        for _ in range(ctx.sizes.counts):
            async with self.engine.connect() as conn:
                (await conn.execute(stmt)).scalar_one()

    async def w_rel_count(self, ctx: Ctx) -> int:
        """The to-many filter written as its ``EXISTS`` on the tables."""
        a, b = self.models.Author.__table__, self.models.Book.__table__
        n = 0
        for _, prefix in rel_args(ctx.sizes):
            has_book = exists().where(b.c.author_id == a.c.id, b.c.title.startswith(prefix))
            async with self.engine.connect() as conn:
                n += (await conn.execute(select(func.count()).select_from(a).where(has_book))).scalar_one()
        return n

    async def w_stream(self, ctx: Ctx) -> int:
        n = 0
        async with self.engine.connect() as conn:
            stmt = select(self.stream_tab).execution_options(yield_per=ctx.sizes.stream_batch)
            result = await conn.stream(stmt)
            async for partition in result.partitions():
                n += len(partition)
        return n


class Orm(_SQLAlchemyContender):
    """Hand-written idiomatic ORM: one ``AsyncSession`` per operation (``expire_on_commit=False``)."""

    name = "orm"
    label = "SQLAlchemy ORM"

    async def w_bulk_insert(self, ctx: Ctx) -> None:
        W = self.models.Write
        async with self.Session() as s, s.begin():
            s.add_all([W(**r) for r in ctx.rows])

    async def _get(self, i: int) -> Any:
        async with self.Session() as s:
            return await s.get(self.models.Read, i)

    async def w_read_objects(self, ctx: Ctx) -> int:
        async with self.Session() as s:
            return len((await s.scalars(select(self.models.Read))).all())

    async def w_update_pk(self, ctx: Ctx) -> None:
        W = self.models.Write
        for i in ctx.ids:
            async with self.Session() as s, s.begin():
                await s.execute(update(W).where(W.id == i).values(value=i * 2.0))

    async def w_insert_commit(self, ctx: Ctx) -> None:
        W = self.models.Write
        for r in ctx.rows:
            obj = W(**r)
            async with self.Session() as s, s.begin():
                s.add(obj)
            _ = obj.id

    async def w_offset_pages(self, ctx: Ctx) -> None:
        B = self.models.Big
        size = ctx.sizes.page_size
        for page in range(1, ctx.sizes.pages + 1):
            async with self.Session() as s:
                await s.scalar(select(func.count()).select_from(B))
                (await s.scalars(select(B).order_by(B.id).limit(size).offset((page - 1) * size))).all()

    async def _after(self, after: int, size: int) -> list[Any]:
        B = self.models.Big
        async with self.Session() as s:
            return list((await s.scalars(select(B).where(B.id > after).order_by(B.id).limit(size))).all())

    async def w_keyset_pages(self, ctx: Ctx) -> None:
        after = 0
        for _ in range(ctx.sizes.pages):
            after = (await self._after(after, ctx.sizes.page_size))[-1].id

    async def w_offset_depth(self, ctx: Ctx) -> None:
        B = self.models.Big
        size = ctx.sizes.page_size
        for _ in range(ctx.sizes.depth_fetches):
            async with self.Session() as s:
                (await s.scalars(select(B).order_by(B.id).limit(size).offset((ctx.page - 1) * size))).all()

    async def w_keyset_depth(self, ctx: Ctx) -> None:
        for _ in range(ctx.sizes.depth_fetches):
            await self._after(ctx.after_id, ctx.sizes.page_size)

    async def w_exists(self, ctx: Ctx) -> None:
        R = self.models.Read
        for i in ctx.ids:
            async with self.Session() as s:
                await s.scalar(select(exists().where(R.id == i)))

    async def w_delete_pk(self, ctx: Ctx) -> None:
        W = self.models.Write
        for i in ctx.ids:
            async with self.Session() as s, s.begin():
                await s.execute(delete(W).where(W.id == i))

    async def w_count(self, ctx: Ctx) -> None:
        B = self.models.Big
        for _ in range(ctx.sizes.counts):
            async with self.Session() as s:
                await s.scalar(select(func.count()).select_from(B).where(B.grp == COUNT_GROUP))

    async def w_count_range(self, ctx: Ctx) -> None:
        B = self.models.Big
        for _ in range(ctx.sizes.counts):
            async with self.Session() as s:
                await s.scalar(select(func.count()).select_from(B).where(B.grp < RANGE_BELOW))

    async def w_read_schemas(self, ctx: Ctx) -> int:
        """The objects, then ``Schema.model_validate(obj, from_attributes=True)`` for each."""
        schema = read_schema()
        async with self.Session() as s:
            objects = (await s.scalars(select(self.models.Read))).all()
        return len([schema.model_validate(obj, from_attributes=True) for obj in objects])

    async def w_rel_find(self, ctx: Ctx) -> int:
        A, B = self.models.Author, self.models.Book
        n = 0
        for name, _ in rel_args(ctx.sizes):
            async with self.Session() as s:
                n += len((await s.scalars(select(B).join(B.author).where(A.name == name))).all())
        return n

    async def w_rel_count(self, ctx: Ctx) -> int:
        A, B = self.models.Author, self.models.Book
        n = 0
        for _, prefix in rel_args(ctx.sizes):
            async with self.Session() as s:
                stmt = select(func.count()).select_from(A).where(A.books.any(B.title.startswith(prefix)))
                n += await s.scalar(stmt)
        return n

    async def w_stream(self, ctx: Ctx) -> int:
        n = 0
        stmt = select(self.models.Stream).execution_options(yield_per=ctx.sizes.stream_batch)
        async with self.Session() as s:
            result = await s.stream_scalars(stmt)
            async for partition in result.partitions():
                n += len(partition)
        return n


class DsgLib(Contender):
    """dsg_lib with its defaults (only the pool is sized like everyone else's)."""

    name = "dsg_lib"
    label = "dsg_lib"

    async def open(self) -> None:
        from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig

        self.models = Models(self.write_table, self.sizes)
        config: dict[str, Any] = {"database_uri": self.backend.url}
        if self.backend.server:
            config.update(pool_size=POOL_SIZE, max_overflow=0)
        self.db = AsyncDatabase(DBConfig(config), base=self.models.Base)
        self.ops = DatabaseOperations(self.db)
        self.deep_cursor: str | None = None

    async def close(self) -> None:
        await self.db.disconnect()

    async def setup(self, ctx: Ctx) -> None:
        """Walk the keyset pages once (untimed) to get the opaque cursor of page ``deep_page``."""
        cursor = None
        for _ in range(ctx.sizes.deep_page - 1):
            page = await self.ops.paginate_keyset(
                self.models.Big, "id", after=cursor, limit=ctx.sizes.page_size
            )
            cursor = page.next_cursor
        self.deep_cursor = cursor

    async def w_bulk_insert(self, ctx: Ctx) -> None:
        await self.ops.insert_many(self.models.Write, ctx.rows)

    async def _get(self, i: int) -> Any:
        return await self.ops.get(self.models.Read, i)

    async def w_read_rows(self, ctx: Ctx) -> int:
        return len(await self.ops.find_mappings(self.models.Read))

    async def w_read_objects(self, ctx: Ctx) -> int:
        return len(await self.ops.find(self.models.Read))

    async def w_update_pk(self, ctx: Ctx) -> None:
        for i in ctx.ids:
            await self.ops.update_where(self.models.Write, {"value": i * 2.0}, id=i)

    async def w_insert_commit(self, ctx: Ctx) -> None:
        W = self.models.Write
        for r in ctx.rows:
            obj = await self.ops.create_one(W(**r))
            _ = obj.id

    async def w_offset_pages(self, ctx: Ctx) -> None:
        for page in range(1, ctx.sizes.pages + 1):
            await self.ops.paginate(self.models.Big, page, ctx.sizes.page_size)

    async def w_keyset_pages(self, ctx: Ctx) -> None:
        cursor = None
        for _ in range(ctx.sizes.pages):
            page = await self.ops.paginate_keyset(
                self.models.Big, "id", after=cursor, limit=ctx.sizes.page_size
            )
            cursor = page.next_cursor

    async def w_offset_depth(self, ctx: Ctx) -> None:
        for _ in range(ctx.sizes.depth_fetches):
            await self.ops.paginate(self.models.Big, ctx.page, ctx.sizes.page_size, with_total=False)

    async def w_keyset_depth(self, ctx: Ctx) -> None:
        cursor = None if ctx.page == 1 else self.deep_cursor
        for _ in range(ctx.sizes.depth_fetches):
            await self.ops.paginate_keyset(self.models.Big, "id", after=cursor, limit=ctx.sizes.page_size)

    async def w_get_mapping(self, ctx: Ctx) -> None:
        for i in ctx.ids:
            await self.ops.find_mappings(self.models.Read, id=i)

    async def w_exists(self, ctx: Ctx) -> None:
        for i in ctx.ids:
            await self.ops.exists(self.models.Read, id=i)

    async def w_delete_pk(self, ctx: Ctx) -> None:
        for i in ctx.ids:
            await self.ops.delete_where(self.models.Write, id=i)

    async def w_insert_memory(self, ctx: Ctx) -> int:
        """``insert_many`` fed by a generator: memory must stay flat however many rows."""
        return await self.ops.insert_many(self.models.Write, iter_rows(ctx.sizes.memory_rows))

    async def w_count(self, ctx: Ctx) -> None:
        for _ in range(ctx.sizes.counts):
            await self.ops.count(self.models.Big, grp=COUNT_GROUP)

    async def w_count_range(self, ctx: Ctx) -> None:
        for _ in range(ctx.sizes.counts):
            await self.ops.count(self.models.Big, grp__lt=RANGE_BELOW)

    async def w_read_schemas(self, ctx: Ctx) -> int:
        return len(await self.ops.find(self.models.Read, as_=read_schema()))

    async def w_rel_find(self, ctx: Ctx) -> int:
        n = 0
        for name, _ in rel_args(ctx.sizes):
            n += len(await self.ops.find(self.models.Book, author__name=name))
        return n

    async def w_rel_count(self, ctx: Ctx) -> int:
        n = 0
        for _, prefix in rel_args(ctx.sizes):
            n += await self.ops.count(self.models.Author, books__title__startswith=prefix)
        return n

    async def w_stream(self, ctx: Ctx) -> int:
        n = 0
        async for _obj in self.ops.stream(self.models.Stream, batch_size=ctx.sizes.stream_batch):
            n += 1
        return n


class DsgLibByHand(Contender):
    """dsg_lib's ``find``, then ``Schema.model_validate(obj, from_attributes=True)`` for each object:
    what a caller writes without ``as_=`` (issue 27: ``as_=`` must cost no more). Only
    ``read_schemas``; its own ``AsyncDatabase``, configured like ``dsg_lib``'s."""

    name = "dsg_lib_by_hand"
    label = "dsg_lib find + model_validate"

    async def open(self) -> None:
        self.dsg = DsgLib(self.backend, self.sizes)
        await self.dsg.open()

    async def close(self) -> None:
        await self.dsg.close()

    def supports(self, workload: str) -> bool:
        return workload == "read_schemas"  # not the point reads the base class offers

    async def w_read_schemas(self, ctx: Ctx) -> int:
        schema = read_schema()
        objects = await self.dsg.ops.find(self.dsg.models.Read)
        return len([schema.model_validate(obj, from_attributes=True) for obj in objects])


class DsgLibObserved(DsgLib):
    """dsg_lib with tracing and metrics on (OpenTelemetry SDK, spans dropped, not exported):
    the cost of observability per operation, next to ``dsg_lib`` (off)."""

    name = "dsg_lib_observed"
    label = "dsg_lib traced"

    async def open(self) -> None:
        await super().open()
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

        from dsg_lib.observability import instrument

        class Dropped(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(Dropped()))
        self.meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        instrument(self.db, tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)

    async def close(self) -> None:
        from dsg_lib.observability import uninstrument

        uninstrument(self.db)
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
        await super().close()


# ====================================================================== peers
class AdvancedAlchemy(_SQLAlchemyContender):
    """advanced-alchemy repositories, one session per operation (its FastAPI/Litestar pattern)."""

    name = "advanced_alchemy"
    label = "advanced-alchemy"

    async def open(self) -> None:
        from advanced_alchemy.repository import SQLAlchemyAsyncRepository

        await super().open()
        m = self.models

        def repo(model: Any) -> Any:
            return type(f"{model.__name__}Repo", (SQLAlchemyAsyncRepository,), {"model_type": model})

        self.ReadRepo, self.BigRepo, self.WriteRepo = repo(m.Read), repo(m.Big), repo(m.Write)

    async def w_bulk_insert(self, ctx: Ctx) -> None:
        W = self.models.Write
        async with self.Session() as s:
            await self.WriteRepo(session=s).add_many([W(**r) for r in ctx.rows], auto_commit=True)

    async def _get(self, i: int) -> Any:
        async with self.Session() as s:
            return await self.ReadRepo(session=s).get(i)

    async def w_read_objects(self, ctx: Ctx) -> int:
        async with self.Session() as s:
            return len(await self.ReadRepo(session=s).list())

    async def w_update_pk(self, ctx: Ctx) -> None:
        W = self.models.Write
        for i in ctx.ids:
            async with self.Session() as s:
                await self.WriteRepo(session=s).update(W(id=i, value=i * 2.0), auto_commit=True)

    async def w_insert_commit(self, ctx: Ctx) -> None:
        W = self.models.Write
        for r in ctx.rows:
            async with self.Session() as s:
                obj = await self.WriteRepo(session=s).add(W(**r), auto_commit=True)
            _ = obj.id

    async def w_offset_pages(self, ctx: Ctx) -> None:
        from advanced_alchemy.filters import LimitOffset

        size = ctx.sizes.page_size
        for page in range(1, ctx.sizes.pages + 1):
            async with self.Session() as s:
                await self.BigRepo(session=s).list_and_count(
                    LimitOffset(limit=size, offset=(page - 1) * size), order_by=[self.models.Big.id.asc()]
                )

    async def w_exists(self, ctx: Ctx) -> None:
        for i in ctx.ids:
            async with self.Session() as s:
                await self.ReadRepo(session=s).exists(id=i)

    async def w_delete_pk(self, ctx: Ctx) -> None:
        for i in ctx.ids:
            async with self.Session() as s:
                await self.WriteRepo(session=s).delete(i, auto_commit=True)

    async def w_count(self, ctx: Ctx) -> None:
        B = self.models.Big
        for _ in range(ctx.sizes.counts):
            async with self.Session() as s:
                await self.BigRepo(session=s).count(B.grp == COUNT_GROUP)

    async def w_count_range(self, ctx: Ctx) -> None:
        B = self.models.Big
        for _ in range(ctx.sizes.counts):
            async with self.Session() as s:
                await self.BigRepo(session=s).count(B.grp < RANGE_BELOW)


class FastCrud(_SQLAlchemyContender):
    """fastcrud ``FastCRUD(Model)``, one session per operation (its FastAPI dependency pattern)."""

    name = "fastcrud"
    label = "fastcrud"

    async def open(self) -> None:
        from fastcrud import FastCRUD
        from pydantic import BaseModel

        await super().open()

        class WriteCreate(BaseModel):
            name: str
            grp: int
            value: float
            note: str | None = None

        self.schema = WriteCreate
        self.read = FastCRUD(self.models.Read)
        self.big = FastCRUD(self.models.Big)
        self.write = FastCRUD(self.models.Write)

    async def _get(self, i: int) -> Any:
        async with self.Session() as s:
            return await self.read.get(s, id=i)

    async def w_read_rows(self, ctx: Ctx) -> int:
        async with self.Session() as s:
            result = await self.read.get_multi(s, offset=0, limit=None, return_total_count=False)
            return len(result["data"])

    async def w_update_pk(self, ctx: Ctx) -> None:
        for i in ctx.ids:
            async with self.Session() as s:
                await self.write.update(s, {"value": i * 2.0}, id=i)

    async def w_insert_commit(self, ctx: Ctx) -> None:
        for r in ctx.rows:
            async with self.Session() as s:
                await self.write.create(s, self.schema(**r))

    async def w_offset_pages(self, ctx: Ctx) -> None:
        size = ctx.sizes.page_size
        for page in range(1, ctx.sizes.pages + 1):
            async with self.Session() as s:
                await self.big.get_multi(s, offset=(page - 1) * size, limit=size, sort_columns="id")

    async def w_keyset_pages(self, ctx: Ctx) -> None:
        cursor = None
        for _ in range(ctx.sizes.pages):
            async with self.Session() as s:
                page = await self.big.get_multi_by_cursor(s, cursor=cursor, limit=ctx.sizes.page_size)
            cursor = page["next_cursor"]

    async def w_keyset_depth(self, ctx: Ctx) -> None:
        cursor = None if ctx.page == 1 else ctx.after_id
        for _ in range(ctx.sizes.depth_fetches):
            async with self.Session() as s:
                await self.big.get_multi_by_cursor(s, cursor=cursor, limit=ctx.sizes.page_size)

    async def w_offset_depth(self, ctx: Ctx) -> None:
        size = ctx.sizes.page_size
        for _ in range(ctx.sizes.depth_fetches):
            async with self.Session() as s:
                await self.big.get_multi(
                    s, offset=(ctx.page - 1) * size, limit=size, sort_columns="id", return_total_count=False
                )

    w_get_mapping = Contender.w_get_pk  # fastcrud's get returns a dict

    async def w_exists(self, ctx: Ctx) -> None:
        for i in ctx.ids:
            async with self.Session() as s:
                await self.read.exists(s, id=i)

    async def w_delete_pk(self, ctx: Ctx) -> None:
        for i in ctx.ids:
            async with self.Session() as s:
                await self.write.db_delete(s, id=i)

    async def w_count(self, ctx: Ctx) -> None:
        for _ in range(ctx.sizes.counts):
            async with self.Session() as s:
                await self.big.count(s, grp=COUNT_GROUP)

    async def w_count_range(self, ctx: Ctx) -> None:
        for _ in range(ctx.sizes.counts):
            async with self.Session() as s:
                await self.big.count(s, grp__lt=RANGE_BELOW)


CONTENDERS: dict[str, type[Contender] | None] = {
    "raw": None,  # chosen per backend by raw_contender()
    "core": Core,
    "orm": Orm,
    "dsg_lib": DsgLib,
    "dsg_lib_observed": DsgLibObserved,
    "dsg_lib_by_hand": DsgLibByHand,
    "advanced_alchemy": AdvancedAlchemy,
    "fastcrud": FastCrud,
    "tortoise": Tortoise,
    "piccolo": Piccolo,
}
PEER_MODULES = {
    "advanced_alchemy": "advanced_alchemy",
    "fastcrud": "fastcrud",
    "dsg_lib_observed": "opentelemetry.sdk",
    "dsg_lib_by_hand": "pydantic",
    "tortoise": "tortoise",
    "piccolo": "piccolo",
}


def available(name: str) -> bool:
    module = PEER_MODULES.get(name)
    return module is None or importlib.util.find_spec(module) is not None


def make(name: str, backend: Backend, sizes: Sizes) -> Contender:
    cls = CONTENDERS[name]
    return raw_contender(backend, sizes) if cls is None else cls(backend, sizes)
