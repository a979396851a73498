"""The service with hand-written SQLAlchemy ORM code: one ``AsyncSession`` per request.

``async_sessionmaker(engine, expire_on_commit=False)`` on an engine with a pool of ``POOL_SIZE``;
/updates loads the rows in the session, changes them and commits (the unit of work sends the
UPDATEs as one executemany).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from ..common import Backend, sqla_engine
from .schema import Fortune, World, random_id, random_ids, render_fortunes, world


def create_app(backend: Backend) -> FastAPI:
    engine = sqla_engine(backend)
    Session = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/db")
    async def db() -> JSONResponse:
        async with Session() as s:
            w = await s.get(World, random_id())
        assert w is not None
        return JSONResponse(world(w.id, w.randomnumber))

    @app.get("/queries")
    async def queries(n: int = 1) -> JSONResponse:
        async with Session() as s:
            worlds = [await s.get(World, i) for i in random_ids(n)]
        return JSONResponse([world(w.id, w.randomnumber) for w in worlds if w is not None])

    @app.get("/updates")
    async def updates(n: int = 1) -> JSONResponse:
        async with Session() as s, s.begin():
            worlds = [await s.get(World, i) for i in random_ids(n)]
            for w in worlds:
                assert w is not None
                w.randomnumber = random_id()
        return JSONResponse([world(w.id, w.randomnumber) for w in worlds if w is not None])

    @app.get("/fortunes")
    async def fortunes() -> HTMLResponse:
        async with Session() as s:
            rows = (await s.scalars(select(Fortune))).all()
        return HTMLResponse(render_fortunes([(f.id, f.message) for f in rows]))

    return app
