"""The service with Tortoise ORM, wired the way its FastAPI integration teaches (``RegisterTortoise``).

/updates reads with ``Model.get`` and writes with ``Model.bulk_update`` inside ``in_transaction``.
Pool min = max = ``POOL_SIZE`` (``tortoise_config``); on MariaDB the backend's driver (aiomysql or
asyncmy) as in the main benchmark.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

from ..async_orms import check_tortoise_driver, tortoise_config
from ..common import Backend
from .schema import random_id, random_ids, render_fortunes, world

CONNECTION = "service"


def create_app(backend: Backend) -> FastAPI:
    from tortoise.contrib.fastapi import RegisterTortoise
    from tortoise.transactions import in_transaction

    from .tortoise_models import Fortune, World

    check_tortoise_driver(backend)
    config = tortoise_config(backend, ["benchmarks.service.tortoise_models"], CONNECTION)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with RegisterTortoise(app, config=config, generate_schemas=False):
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/db")
    async def db() -> JSONResponse:
        w = await World.get(id=random_id())
        return JSONResponse(world(w.id, w.randomnumber))

    @app.get("/queries")
    async def queries(n: int = 1) -> JSONResponse:
        worlds = [await World.get(id=i) for i in random_ids(n)]
        return JSONResponse([world(w.id, w.randomnumber) for w in worlds])

    @app.get("/updates")
    async def updates(n: int = 1) -> JSONResponse:
        worlds = [await World.get(id=i) for i in random_ids(n)]
        for w in worlds:
            w.randomnumber = random_id()
        async with in_transaction(CONNECTION):
            await World.bulk_update(worlds, fields=["randomnumber"])
        return JSONResponse([world(w.id, w.randomnumber) for w in worlds])

    @app.get("/fortunes")
    async def fortunes() -> HTMLResponse:
        rows = await Fortune.all()
        return HTMLResponse(render_fortunes([(f.id, f.message) for f in rows]))

    return app
