"""Optimistic locking (issue 27 item 6): ``expected_version=`` on ``update_one`` / ``update_where``
for a model with SQLAlchemy's ``version_id_col``; ``StaleRecordError``; 409 / 412 over HTTP.
Every backend, both executor strategies (see tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import os
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import Integer, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseOperations, InvalidInputError, Q, StaleRecordError
from dsg_lib.fastapi import expected_version, register_exception_handlers, status_for, version_etag
from tests.helpers import captured_sql

PREFIX = f"ver_{os.getpid()}_"


@pytest.fixture
def models(db: AsyncDatabase) -> SimpleNamespace:
    class Doc(db.Base):
        __tablename__ = PREFIX + "doc"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        title: Mapped[str] = mapped_column(String(40))
        version: Mapped[int] = mapped_column(Integer, nullable=False)
        __mapper_args__ = {"version_id_col": version}

    class Plain(db.Base):
        __tablename__ = PREFIX + "plain"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        title: Mapped[str] = mapped_column(String(40))

    return SimpleNamespace(Doc=Doc, Plain=Plain)


@pytest.fixture
async def env(env: SimpleNamespace, db: AsyncDatabase) -> SimpleNamespace:
    """``env`` of tests/operations/conftest.py, with three versioned docs and a plain one inserted."""
    for title in ("a", "b", "c"):
        await env.ops.create_one(env.m.Doc(title=title))
    await env.ops.create_one(env.m.Plain(title="p"))
    return env


async def stored(db: AsyncDatabase, Doc: type) -> list[tuple[int, str, int]]:
    async with AsyncSession(db.engine) as s:
        rows = await s.execute(select(Doc.id, Doc.title, Doc.version).order_by(Doc.id))  # type: ignore[attr-defined]
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_update_one_with_the_expected_version(env: SimpleNamespace) -> None:
    Doc, ops = env.m.Doc, env.ops
    assert (await ops.get(Doc, 1)).version == 1
    doc = await ops.update_one(Doc, 1, {"title": "a2"}, expected_version=1)
    assert (doc.title, doc.version) == ("a2", 2)
    doc = await ops.update_one(Doc, 1, {"title": "a3"}, expected_version=2)
    assert (doc.title, doc.version) == ("a3", 3)
    assert (await stored(env.db, Doc))[0] == (1, "a3", 3)


async def test_stale_version_is_refused_and_nothing_changes(env: SimpleNamespace) -> None:
    Doc, ops = env.m.Doc, env.ops
    await ops.update_one(Doc, 1, {"title": "a2"}, expected_version=1)
    before = await stored(env.db, Doc)
    with pytest.raises(StaleRecordError) as info:
        await ops.update_one(Doc, 1, {"title": "lost update"}, expected_version=1)
    assert (info.value.expected, info.value.current) == (1, 2)
    assert status_for(info.value) == 409
    assert await stored(env.db, Doc) == before


async def test_two_concurrent_updaters_one_wins(env: SimpleNamespace) -> None:
    Doc, ops = env.m.Doc, env.ops
    other = DatabaseOperations(env.db)
    results = await asyncio.gather(
        ops.update_one(Doc, 2, {"title": "first"}, expected_version=1),
        other.update_one(Doc, 2, {"title": "second"}, expected_version=1),
        return_exceptions=True,
    )
    stale = [r for r in results if isinstance(r, StaleRecordError)]
    won = [r for r in results if isinstance(r, Doc)]
    assert len(stale) == 1 and len(won) == 1, results
    assert (await stored(env.db, Doc))[1] == (2, won[0].title, 2)
    assert env.db.pool_status()["checked_out"] == 0


async def test_a_row_changed_after_an_orm_read_is_stale(env: SimpleNamespace) -> None:
    """The UPDATE's own ``AND version =`` check: an object read at version 1 in the caller's session,
    then changed by someone else, cannot be written over (no ``expected_version`` needed)."""
    Doc, ops = env.m.Doc, env.ops
    async with AsyncSession(env.db.engine, expire_on_commit=False) as mine:
        doc = await mine.get(Doc, 3)
        assert doc is not None and doc.version == 1
        await mine.commit()  # the read's transaction ends; the object stays at version 1
        await ops.update_one(Doc, 3, {"title": "theirs"}, expected_version=1)
        with pytest.raises(StaleRecordError):
            await ops.update_one(Doc, 3, {"title": "mine"}, session=mine)
        await mine.rollback()
    assert (await stored(env.db, Doc))[2] == (3, "theirs", 2)


async def test_update_where_with_expected_version(env: SimpleNamespace) -> None:
    Doc, ops = env.m.Doc, env.ops
    assert await ops.update_where(Doc, {"title": "x"}, Q(id=1) | Q(id=2), expected_version=1) == 2
    assert await stored(env.db, Doc) == [(1, "x", 2), (2, "x", 2), (3, "c", 1)]
    before = await stored(env.db, Doc)
    with captured_sql(env.db) as sent, pytest.raises(StaleRecordError):
        # row 3 is at 1, rows 1-2 at 2: refused before any UPDATE is sent
        await ops.update_where(Doc, {"title": "y"}, id__in=[1, 2, 3], expected_version=2)
    assert not [s for s in sent if s.lstrip().upper().startswith("UPDATE")]
    with pytest.raises(StaleRecordError):
        await ops.update_where(Doc, {"title": "y"}, id=1, expected_version=1)
    assert await stored(env.db, Doc) == before
    assert await ops.update_where(Doc, {"title": "y"}, id=99, expected_version=1) == 0


async def test_bad_uses_are_invalid_input_before_any_sql(env: SimpleNamespace) -> None:
    Doc, Plain, ops = env.m.Doc, env.m.Plain, env.ops
    with captured_sql(env.db) as sent:
        with pytest.raises(InvalidInputError, match="version_id_col"):
            await ops.update_one(Plain, 1, {"title": "x"}, expected_version=1)
        with pytest.raises(InvalidInputError, match="version_id_col"):
            await ops.update_where(Plain, {"title": "x"}, id=1, expected_version=1)
        with pytest.raises(InvalidInputError, match="version counter"):
            await ops.update_one(Doc, 1, {"version": 99})
        with pytest.raises(InvalidInputError, match="version counter"):
            await ops.update_where(Doc, {"version": 99}, id=1, expected_version=1)
        with pytest.raises(InvalidInputError, match="expected_version"):
            await ops.update_one(Doc, 1, {"title": "x"}, expected_version=True)
    assert sent == []
    assert (await stored(env.db, Doc))[0] == (1, "a", 1)


async def test_http_409_or_412_with_if_match(env: SimpleNamespace) -> None:
    Doc, ops = env.m.Doc, env.ops
    app = FastAPI()
    register_exception_handlers(app)

    @app.get("/docs/{doc_id}")
    async def read(doc_id: int, response: Response) -> dict[str, object]:
        doc = await ops.get(Doc, doc_id)
        response.headers["ETag"] = version_etag(doc)
        return {"id": doc.id, "title": doc.title}

    @app.put("/docs/{doc_id}")
    async def put(doc_id: int, request: Request) -> dict[str, object]:
        body = await request.json()
        version = expected_version(request.headers.get("if-match")) or body["version"]
        doc = await ops.update_one(Doc, doc_id, {"title": body["title"]}, expected_version=version)
        return {"id": doc.id, "version": doc.version}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        etag = (await client.get("/docs/1")).headers["etag"]
        assert etag == '"1"'
        ok = await client.put("/docs/1", json={"title": "n"}, headers={"If-Match": etag})
        assert ok.status_code == 200 and ok.json()["version"] == 2
        assert (await client.get("/docs/1")).headers["etag"] == '"2"'
        precondition = await client.put("/docs/1", json={"title": "n"}, headers={"If-Match": etag})
        assert precondition.status_code == 412 and precondition.json()["error"] == "StaleRecordError"
        conflict = await client.put("/docs/1", json={"title": "n", "version": 1})
        assert conflict.status_code == 409
        malformed = await client.put("/docs/1", json={"title": "n"}, headers={"If-Match": "*"})
        assert malformed.status_code == 422
    assert (await stored(env.db, Doc))[0] == (1, "n", 2)
