"""Concurrent get_or_create + update through dsg_lib.fastapi: a conflict is retryable, never a 500."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig, TransactionConflictError
from dsg_lib.fastapi import (
    DBSessionMiddleware,
    error_response,
    register_exception_handlers,
    session_dependency,
)

RUN = os.getpid()
REQUESTS = 100
NAMES = 5  # few keys: many requests race for each one
RETRYABLE = 503


def build_app(db: AsyncDatabase, *, middleware: bool) -> tuple[FastAPI, Any]:
    class Tally(db.Base):
        __tablename__ = f"fa_tally_{RUN}"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(40), unique=True)
        hits: Mapped[int] = mapped_column(default=0)

    ops = DatabaseOperations(db)
    app = FastAPI()
    register_exception_handlers(app)
    if middleware:
        app.add_middleware(DBSessionMiddleware, db=db)
    tx = Depends(session_dependency(db))

    async def hit(name: str, session: AsyncSession | None = None) -> dict[str, Any]:
        tally, _ = await ops.get_or_create(Tally, name=name, defaults={"hits": 0}, session=session)
        await ops.update_where(Tally, {"hits": Tally.hits + 1}, name=name, session=session)
        return {"id": tally.id}

    @app.post("/plain/{name}")
    async def plain(name: str, session: AsyncSession = tx) -> dict[str, Any]:
        return await hit(name, session)

    @app.post("/middleware/{name}")
    async def via_middleware(name: str) -> dict[str, Any]:
        return await hit(name)  # joins the middleware's request transaction

    @app.post("/retried/{name}")
    async def retried(name: str) -> dict[str, Any]:
        # the pattern docs/fastapi.md shows: no request transaction, the unit of work re-run on conflicts
        return await db.run_in_transaction(lambda session: hit(name, session), retries=10)

    return app, Tally


@pytest.fixture
async def tally_app(db_url: str, request: pytest.FixtureRequest) -> AsyncIterator[tuple[Any, Any, Any]]:
    middleware = bool(getattr(request, "param", False))
    db = AsyncDatabase(DBConfig({"database_uri": db_url, "pool_timeout": 60}))
    app, model = build_app(db, middleware=middleware)
    db.middleware = middleware  # type: ignore[attr-defined]  # which path the test drives
    await db.drop_tables()
    await db.create_tables()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client, db, model
    await db.drop_tables()
    await db.disconnect()


async def _fire(client: httpx.AsyncClient, path: str) -> list[httpx.Response]:
    return list(await asyncio.gather(*[client.post(f"/{path}/n{i % NAMES}") for i in range(REQUESTS)]))


async def _total_hits(db: AsyncDatabase, model: Any) -> int:
    return sum(t.hits for t in await DatabaseOperations(db).find(model))


@pytest.mark.parametrize("tally_app", [False, True], ids=["dependency", "middleware"], indirect=True)
async def test_conflicts_are_retryable_never_500(backend: str, tally_app: tuple[Any, Any, Any]) -> None:
    client, db, model = tally_app
    path = "middleware" if db.middleware else "plain"
    responses = await _fire(client, path)
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, RETRYABLE}, statuses
    for response in responses:
        if response.status_code == RETRYABLE:
            assert response.json()["error"] == "TransactionConflictError"
            assert int(response.headers["retry-after"]) >= 1
    print(f"{backend} {path}: {dict(statuses)}")
    assert await DatabaseOperations(db).count(model) == NAMES
    assert db.pool_status()["checked_out"] == 0


async def test_run_in_transaction_pattern_always_succeeds(tally_app: tuple[Any, Any, Any]) -> None:
    client, db, model = tally_app
    responses = await _fire(client, "retried")
    assert Counter(r.status_code for r in responses) == {200: REQUESTS}
    assert await _total_hits(db, model) == REQUESTS
    assert await DatabaseOperations(db).count(model) == NAMES


def test_conflict_response_is_503_with_retry_after() -> None:
    response = error_response(TransactionConflictError("(1213) Deadlock found when trying to get lock"))
    assert response.status_code == RETRYABLE
    assert response.headers["retry-after"] == "1"
    assert b"Deadlock" not in response.body  # server detail stays in the log
