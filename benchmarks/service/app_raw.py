"""The service on the raw driver: an asyncpg pool, or an aiomysql / asyncmy pool (autocommit on).

Like the TechEmpower raw-driver apps: a request that runs several statements takes one
connection for all of them, and /updates writes its rows with one ``executemany`` in one
transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

from ..common import POOL_SIZE, Backend
from .schema import FORTUNE, WORLD, random_id, random_ids, render_fortunes, world


def create_app(backend: Backend) -> FastAPI:
    return _postgres(backend) if backend.dialect == "postgresql" else _mysql(backend)


def _postgres(backend: Backend) -> FastAPI:
    import asyncpg

    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dsn = backend.url.replace("postgresql+asyncpg", "postgresql")
        state["pool"] = await asyncpg.create_pool(dsn, min_size=POOL_SIZE, max_size=POOL_SIZE)
        yield
        await state["pool"].close()

    app = FastAPI(lifespan=lifespan)
    select = f"SELECT id, randomnumber FROM {WORLD} WHERE id = $1"

    @app.get("/db")
    async def db() -> JSONResponse:
        row = await state["pool"].fetchrow(select, random_id())
        return JSONResponse(world(row[0], row[1]))

    @app.get("/queries")
    async def queries(n: int = 1) -> JSONResponse:
        async with state["pool"].acquire() as conn:
            rows = [await conn.fetchrow(select, i) for i in random_ids(n)]
        return JSONResponse([world(r[0], r[1]) for r in rows])

    @app.get("/updates")
    async def updates(n: int = 1) -> JSONResponse:
        async with state["pool"].acquire() as conn:
            rows = [await conn.fetchrow(select, i) for i in random_ids(n)]
            new = [(r[0], random_id()) for r in rows]
            async with conn.transaction():
                await conn.executemany(f"UPDATE {WORLD} SET randomnumber = $2 WHERE id = $1", new)
        return JSONResponse([world(i, number) for i, number in new])

    @app.get("/fortunes")
    async def fortunes() -> HTMLResponse:
        rows = await state["pool"].fetch(f"SELECT id, message FROM {FORTUNE}")
        return HTMLResponse(render_fortunes([(r[0], r[1]) for r in rows]))

    return app


def _mysql(backend: Backend) -> FastAPI:
    from sqlalchemy.engine import make_url

    if backend.driver == "asyncmy":
        import asyncmy as driver
    else:
        import aiomysql as driver

    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = make_url(backend.url)
        state["pool"] = await driver.create_pool(
            host=url.host,
            port=url.port or 3306,
            user=url.username or "root",
            password=url.password or "",
            db=url.database,
            autocommit=True,
            minsize=POOL_SIZE,
            maxsize=POOL_SIZE,
        )
        yield
        state["pool"].close()
        await state["pool"].wait_closed()

    app = FastAPI(lifespan=lifespan)
    select = f"SELECT id, randomnumber FROM {WORLD} WHERE id = %s"

    @app.get("/db")
    async def db() -> JSONResponse:
        async with state["pool"].acquire() as conn, conn.cursor() as cur:
            await cur.execute(select, (random_id(),))
            row = await cur.fetchone()
        return JSONResponse(world(row[0], row[1]))

    @app.get("/queries")
    async def queries(n: int = 1) -> JSONResponse:
        rows = []
        async with state["pool"].acquire() as conn, conn.cursor() as cur:
            for i in random_ids(n):
                await cur.execute(select, (i,))
                rows.append(await cur.fetchone())
        return JSONResponse([world(r[0], r[1]) for r in rows])

    @app.get("/updates")
    async def updates(n: int = 1) -> JSONResponse:
        rows = []
        async with state["pool"].acquire() as conn:
            async with conn.cursor() as cur:
                for i in random_ids(n):
                    await cur.execute(select, (i,))
                    rows.append(await cur.fetchone())
            new = [(random_id(), r[0]) for r in rows]
            await conn.begin()
            try:
                async with conn.cursor() as cur:
                    await cur.executemany(f"UPDATE {WORLD} SET randomnumber = %s WHERE id = %s", new)
                await conn.commit()
            except BaseException:
                await conn.rollback()
                raise
        return JSONResponse([world(i, number) for number, i in new])

    @app.get("/fortunes")
    async def fortunes() -> HTMLResponse:
        async with state["pool"].acquire() as conn, conn.cursor() as cur:
            await cur.execute(f"SELECT id, message FROM {FORTUNE}")
            rows = await cur.fetchall()
        return HTMLResponse(render_fortunes([(r[0], r[1]) for r in rows]))

    return app
