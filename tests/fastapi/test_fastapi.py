"""dsg_lib.fastapi on every backend: transactions per request, error mapping, pool hygiene."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy import String, UniqueConstraint, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig, SessionMissingError
from dsg_lib.fastapi import (
    DBSessionMiddleware,
    health_router,
    lifespan,
    register_exception_handlers,
    session_dependency,
)
from tests.helpers import captured_sql


def build_app(db: AsyncDatabase, *, middleware: bool = False) -> tuple[FastAPI, Any]:
    class Item(db.Base):
        __tablename__ = "fa_items"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(50), unique=True)

    ops = DatabaseOperations(db)
    app = FastAPI()
    register_exception_handlers(app)
    app.include_router(health_router(db))
    if middleware:
        app.add_middleware(DBSessionMiddleware, db=db)
    tx = Depends(session_dependency(db))

    @app.post("/items", status_code=201)
    async def create(payload: dict[str, Any], session: AsyncSession = tx) -> dict[str, Any]:
        item = await ops.create_one(Item(name=payload["name"]))
        return {"id": item.id, "name": item.name}

    @app.get("/items/{item_id}")
    async def read(item_id: int, session: AsyncSession = tx) -> dict[str, Any]:
        item = await ops.get_one(Item, id=item_id)
        return {"id": item.id, "name": item.name}

    @app.get("/items")
    async def search(field: str, value: str, session: AsyncSession = tx) -> list[str]:
        return [i.name for i in await ops.find(Item, **{field: value})]

    @app.post("/items/then-fail")
    async def create_then_fail(payload: dict[str, Any], session: AsyncSession = tx) -> None:
        await ops.create_one(Item(name=payload["name"]))
        raise HTTPException(status_code=400, detail="validation failed after the write")

    @app.get("/broken")
    async def broken(session: AsyncSession = tx) -> None:
        await session.execute(text("SELECT * FROM no_such_table_at_all"))

    @app.post("/mw/items", status_code=201)
    async def create_via_current_session(payload: dict[str, Any]) -> dict[str, Any]:
        session = db.current_session()  # no dependency: the middleware's request transaction
        session.add(Item(name=payload["name"]))
        await session.flush()
        return {"ok": True}

    @app.post("/mw/items/then-500")
    async def create_then_500(payload: dict[str, Any]) -> None:
        await ops.create_one(Item(name=payload["name"]))
        raise RuntimeError("boom")

    return app, Item


@pytest.fixture
async def client_for() -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    async def make(app: FastAPI) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://test"
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def test_crud_round_trip_and_error_statuses(db: AsyncDatabase, client_for: Any) -> None:
    app, item_model = build_app(db)
    await db.drop_tables()
    await db.create_tables()
    client = await client_for(app)

    created = await client.post("/items", json={"name": "chair"})
    assert created.status_code == 201
    item_id = created.json()["id"]
    assert (await client.get(f"/items/{item_id}")).json() == {"id": item_id, "name": "chair"}

    missing = await client.get("/items/999999")
    assert missing.status_code == 404
    assert missing.json()["error"] == "RecordNotFoundError"

    duplicate = await client.post("/items", json={"name": "chair"})
    assert duplicate.status_code == 409
    assert duplicate.json()["error"] == "ConstraintViolationError"

    hostile = await client.get("/items", params={"field": "name; DROP TABLE fa_items", "value": "x"})
    assert hostile.status_code == 422
    assert hostile.json()["error"] == "InvalidInputError"

    broken = await client.get("/broken")
    assert broken.status_code == 500
    assert broken.json() == {"error": "QueryError", "details": "internal database error"}

    assert await DatabaseOperations(db).count(item_model) == 1  # table intact
    assert db.pool_status()["checked_out"] == 0


async def test_request_failing_after_a_write_rolls_back(db: AsyncDatabase, client_for: Any) -> None:
    app, item_model = build_app(db)
    await db.drop_tables()
    await db.create_tables()
    client = await client_for(app)
    response = await client.post("/items/then-fail", json={"name": "ghost"})
    assert response.status_code == 400
    assert await DatabaseOperations(db).count(item_model, name="ghost") == 0
    assert db.pool_status()["checked_out"] == 0


async def test_middleware_scopes_current_session_to_the_request(db: AsyncDatabase, client_for: Any) -> None:
    app, item_model = build_app(db, middleware=True)
    await db.drop_tables()
    await db.create_tables()
    client = await client_for(app)
    ops = DatabaseOperations(db)

    assert (await client.post("/mw/items", json={"name": "lamp"})).status_code == 201
    assert await ops.count(item_model, name="lamp") == 1

    failed = await client.post("/mw/items/then-500", json={"name": "ghost"})
    assert failed.status_code == 500
    assert await ops.count(item_model, name="ghost") == 0

    duplicate = await client.post("/mw/items", json={"name": "lamp"})
    assert duplicate.status_code == 409
    assert await ops.count(item_model) == 1

    with pytest.raises(SessionMissingError):
        db.current_session()  # outside a request
    assert db.pool_status()["checked_out"] == 0


async def test_unavailable_database_is_503_with_retry_after(client_for: Any) -> None:
    db = AsyncDatabase(
        DBConfig({"database_uri": "postgresql://app:topsecret@127.0.0.1:1/app", "connect_timeout": 1})
    )
    app, _ = build_app(db)
    client = await client_for(app)
    response = await client.get("/items/1")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"] == "DatabaseUnavailableError"
    assert "topsecret" not in response.text
    health = await client.get("/health")
    assert health.status_code == 503
    assert health.json()["ok"] is False
    await db.disconnect()


async def test_many_concurrent_requests_with_a_small_pool(backend: str, db_url: str, client_for: Any) -> None:
    settings: dict[str, Any] = {"database_uri": db_url, "pool_timeout": 30}
    if backend != "sqlite_memory":
        settings.update(pool_size=2, max_overflow=0)
    db = AsyncDatabase(DBConfig(settings))
    app, item_model = build_app(db)
    await db.drop_tables()
    await db.create_tables()
    client = await client_for(app)
    responses = await asyncio.gather(*[client.post("/items", json={"name": f"n{i}"}) for i in range(100)])
    assert [r.status_code for r in responses] == [201] * 100
    reads = await asyncio.gather(*[client.get(f"/items/{r.json()['id']}") for r in responses])
    assert all(r.status_code == 200 for r in reads)
    assert await DatabaseOperations(db).count(item_model) == 100
    assert db.pool_status()["checked_out"] == 0
    await db.drop_tables()
    await db.disconnect()


async def test_lifespan_connects_creates_tables_and_disconnects(db_url: str) -> None:
    db = AsyncDatabase(DBConfig({"database_uri": db_url}))
    app, item_model = build_app(db)
    app.router.lifespan_context = lifespan(db, create_tables=True)
    await db.drop_tables()
    async with app.router.lifespan_context(app):
        assert db.is_connected
        assert await DatabaseOperations(db).count(item_model) == 0  # table exists
    assert not db.is_connected
    await db.connect()
    await db.drop_tables()
    await db.disconnect()


@pytest.mark.parametrize("style", ["dependency", "middleware"])
async def test_commit_failure_becomes_an_error_response_not_a_lost_write(
    client_for: Any, style: str, postgres_url: str
) -> None:
    # A deferred unique constraint fails only at COMMIT; only PostgreSQL has those.
    db = AsyncDatabase(DBConfig({"database_uri": postgres_url}))

    class Deferred(db.Base):
        __tablename__ = "fa_deferred"
        __table_args__ = (UniqueConstraint("code", deferrable=True, initially="DEFERRED"),)
        id: Mapped[int] = mapped_column(primary_key=True)
        code: Mapped[str] = mapped_column(String(10))

    app = FastAPI()
    register_exception_handlers(app)
    if style == "middleware":
        app.add_middleware(DBSessionMiddleware, db=db)

        @app.post("/pair", status_code=201)
        async def pair_mw() -> dict[str, bool]:
            session = db.current_session()
            session.add_all([Deferred(code="x"), Deferred(code="x")])  # violation surfaces at COMMIT
            await session.flush()
            return {"ok": True}
    else:

        @app.post("/pair", status_code=201)
        async def pair(session: AsyncSession = Depends(session_dependency(db))) -> dict[str, bool]:
            session.add_all([Deferred(code="x"), Deferred(code="x")])
            await session.flush()
            return {"ok": True}

    await db.drop_tables()
    await db.create_tables()
    client = await client_for(app)
    response = await client.post("/pair")
    assert response.status_code == 409
    async with db.get_db_session() as session:
        assert (await session.execute(select(Deferred))).first() is None
    await db.drop_tables()
    await db.disconnect()


async def test_only_requests_that_wrote_get_a_consistency_token(db: AsyncDatabase, client_for: Any) -> None:
    from dsg_lib.fastapi import CONSISTENCY_HEADER, ConsistencyMiddleware

    app, item_model = build_app(db, middleware=True)
    app.add_middleware(ConsistencyMiddleware, db=db)  # outermost: sees the request's commit

    @app.get("/mw/count")
    async def count() -> dict[str, int]:
        return {"n": await DatabaseOperations(db).count(item_model)}

    await db.drop_tables()
    await db.create_tables()
    client = await client_for(app)
    with captured_sql(db) as statements:
        read = await client.get("/mw/count")
    assert read.status_code == 200 and CONSISTENCY_HEADER not in read.headers
    assert not any("wal_lsn" in s for s in statements), statements
    wrote = await client.post("/mw/items", json={"name": "lamp"})
    assert wrote.status_code == 201 and wrote.headers.get(CONSISTENCY_HEADER)
    assert db.pool_status()["checked_out"] == 0
