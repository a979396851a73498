"""The service with dsg_lib, wired the way docs/fastapi.md teaches (``lifespan(db)``, error handlers).

Reads are ``ops.get`` / ``ops.find``; /updates reads with ``ops.get`` and writes every row with
one ``ops.execute_many`` (an ORM bulk UPDATE by primary key, one executemany in one transaction).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import update

from ..common import POOL_SIZE, Backend
from .schema import Fortune, World, random_id, random_ids, render_fortunes, world


def create_app(backend: Backend) -> FastAPI:
    from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig
    from dsg_lib.fastapi import lifespan, register_exception_handlers

    config = {"database_uri": backend.url, "pool_size": POOL_SIZE, "max_overflow": 0}
    db = AsyncDatabase(DBConfig(config))
    ops = DatabaseOperations(db)
    app = FastAPI(lifespan=lifespan(db))
    register_exception_handlers(app)

    @app.get("/db")
    async def one() -> JSONResponse:
        w = await ops.get(World, random_id())
        assert w is not None
        return JSONResponse(world(w.id, w.randomnumber))

    @app.get("/queries")
    async def queries(n: int = 1) -> JSONResponse:
        worlds = [await ops.get(World, i) for i in random_ids(n)]
        return JSONResponse([world(w.id, w.randomnumber) for w in worlds if w is not None])

    @app.get("/updates")
    async def updates(n: int = 1) -> JSONResponse:
        worlds = [await ops.get(World, i) for i in random_ids(n)]
        new = [{"id": w.id, "randomnumber": random_id()} for w in worlds if w is not None]
        await ops.execute_many([(update(World), new)])
        return JSONResponse([world(r["id"], r["randomnumber"]) for r in new])

    @app.get("/fortunes")
    async def fortunes() -> HTMLResponse:
        rows = await ops.find(Fortune)
        return HTMLResponse(render_fortunes([(f.id, f.message) for f in rows]))

    return app
