"""HTTP answers a client can act on, on every backend: 409 vs 422, one constraint shape,
problem details, the OpenAPI ``responses=`` mapping and keyset cursors bound to their query."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel
from sqlalchemy import ForeignKey, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig
from dsg_lib.fastapi import (
    ERROR_RESPONSES,
    PROBLEM_RESPONSES,
    DBSessionMiddleware,
    register_exception_handlers,
    session_dependency,
)

SECRET_VALUE = "v4lue-never-shown"


class PostIn(BaseModel):
    title: str


class PostPatch(BaseModel):
    title: str | None = None


def build_app(db: AsyncDatabase, *, problem_details: bool = False) -> FastAPI:
    """The users + posts app of docs/fastapi.md, reduced to what the answers need."""

    class User(db.Base):
        __tablename__ = "ans_users"
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str] = mapped_column(String(80), unique=True)

    class Post(db.Base):
        __tablename__ = "ans_posts"
        id: Mapped[int] = mapped_column(primary_key=True)
        user_id: Mapped[int] = mapped_column(ForeignKey("ans_users.id"))
        title: Mapped[str] = mapped_column(String(80))

    ops = DatabaseOperations(db)
    app = FastAPI()
    register_exception_handlers(app, problem_details=problem_details)
    tx = Depends(session_dependency(db))
    responses = PROBLEM_RESPONSES if problem_details else ERROR_RESPONSES

    @app.post("/users", status_code=201, responses=responses)
    async def create_user(payload: dict[str, str], session: AsyncSession = tx) -> dict[str, Any]:
        user = await ops.create_one(User(email=payload["email"]))
        return {"id": user.id}

    @app.post("/users/{user_id}/posts", status_code=201, responses=responses)
    async def create_post(user_id: int, payload: PostIn, session: AsyncSession = tx) -> dict[str, Any]:
        post = await ops.create_one(Post(user_id=user_id, title=payload.title))
        return {"id": post.id}

    @app.patch("/posts/{post_id}", responses=responses)
    async def patch_post(post_id: int, payload: PostPatch, session: AsyncSession = tx) -> dict[str, Any]:
        changes = payload.model_dump(exclude_unset=True)
        await ops.update_where(Post, changes, id=post_id, validate=False)  # the database decides
        return {"id": post_id}

    @app.get("/users/{user_id}/posts", responses=responses)
    async def list_posts(
        user_id: int, after: str | None = None, session: AsyncSession = tx
    ) -> dict[str, Any]:
        page = await ops.paginate_keyset(Post, order_by="title", after=after, limit=1, user_id=user_id)
        return {"titles": [p.title for p in page.items], "next": page.next_cursor}

    @app.get("/users/{user_id}", responses=responses)
    async def read_user(user_id: int, session: AsyncSession = tx) -> dict[str, Any]:
        user = await ops.get_one(User, id=user_id)
        return {"id": user.id}

    return app


@pytest.fixture(params=[False, True], ids=["json", "problem"])
async def client(db: AsyncDatabase, request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(db, problem_details=request.param)
    await db.drop_tables()
    await db.create_tables()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        http.headers["x-problem"] = "1" if request.param else "0"
        yield http
    await db.drop_tables()


def _fields(response: httpx.Response) -> dict[str, Any]:
    """The body with the message under one name, whichever shape was asked for."""
    body = dict(response.json())
    if response.request.headers["x-problem"] == "1":
        assert response.headers["content-type"] == "application/problem+json"
        assert body.pop("type") == "about:blank"
        assert body.pop("status") == response.status_code
        body.pop("title")
        body["details"] = body.pop("detail")
    else:
        assert response.headers["content-type"] == "application/json"
    assert SECRET_VALUE not in response.text
    return body


async def test_missing_parent_is_422_naming_the_field(client: httpx.AsyncClient, backend: str) -> None:
    response = await client.post("/users/999/posts", json={"title": SECRET_VALUE})
    assert response.status_code == 422, response.text
    body = _fields(response)
    assert (body["error"], body["kind"]) == ("ConstraintViolationError", "foreign_key")
    if not backend.startswith("sqlite"):  # SQLite's foreign key error names no column
        assert body["columns"] == ["user_id"]
    assert "999" not in response.text


async def test_null_into_not_null_is_422_naming_the_field(client: httpx.AsyncClient) -> None:
    user = (await client.post("/users", json={"email": "a@example.com"})).json()["id"]
    post = (await client.post(f"/users/{user}/posts", json={"title": SECRET_VALUE})).json()["id"]
    response = await client.patch(f"/posts/{post}", json={"title": None})
    assert response.status_code == 422, response.text
    body = _fields(response)
    assert (body["kind"], body["columns"], body["constraint"]) == ("not_null", ["title"], None)
    assert body["details"] == "a required field is null (title)"


async def test_duplicate_is_409_with_one_shape_on_every_backend(client: httpx.AsyncClient) -> None:
    assert (await client.post("/users", json={"email": SECRET_VALUE})).status_code == 201
    response = await client.post("/users", json={"email": SECRET_VALUE})
    assert response.status_code == 409, response.text
    body = _fields(response)
    assert set(body) == {"error", "details", "kind", "columns", "constraint"}
    assert body["kind"] == "unique"
    # the field when the database names it (PostgreSQL, SQLite), else the unique key's name (MariaDB)
    assert body["columns"] == ["email"] or "email" in (body["constraint"] or "")
    assert body["details"].startswith("a row with the same value already exists")


async def test_not_found_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/users/12345")
    assert response.status_code == 404
    assert _fields(response)["error"] == "RecordNotFoundError"


async def test_foreign_cursor_is_422(client: httpx.AsyncClient) -> None:
    for email in ("one@example.com", "two@example.com"):
        await client.post("/users", json={"email": email})
    for user in (1, 2):
        for title in ("a", "b"):
            await client.post(f"/users/{user}/posts", json={"title": title})
    first = (await client.get("/users/1/posts")).json()
    assert first["titles"] == ["a"]
    assert (await client.get("/users/1/posts", params={"after": first["next"]})).json()["titles"] == ["b"]
    foreign = await client.get("/users/2/posts", params={"after": first["next"]})
    assert foreign.status_code == 422, foreign.text
    assert _fields(foreign)["error"] == "InvalidInputError"


async def test_validation_errors_share_the_problem_shape(client: httpx.AsyncClient) -> None:
    response = await client.post("/users/1/posts", json={"title": 5, "extra": SECRET_VALUE})
    assert response.status_code == 422
    if response.request.headers["x-problem"] == "1":
        body = _fields(response)
        assert body["errors"][0]["loc"] == ["body", "title"]
        assert body["details"] == "request validation failed (title)"
    else:  # FastAPI's own body, untouched unless problem details are asked for
        assert "detail" in response.json()


def test_openapi_documents_the_error_answers() -> None:
    for problem in (False, True):
        db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
        schema = build_app(db, problem_details=problem).openapi()
        operation = schema["paths"]["/users/{user_id}/posts"]["post"]
        assert {"404", "409", "422", "503"} <= set(operation["responses"])
        media = "application/problem+json" if problem else "application/json"
        content = operation["responses"]["409"]["content"]
        assert media in content
        ref = content[media]["schema"]["$ref"].rsplit("/", 1)[-1]
        assert ref == ("ProblemBody" if problem else "ErrorBody")
        assert {"kind", "columns", "constraint"} <= set(schema["components"]["schemas"][ref]["properties"])


async def test_middleware_commit_failure_is_a_problem_422(db: AsyncDatabase, backend: str) -> None:
    if backend == "mariadb":
        pytest.skip(reason="MariaDB has no deferrable constraints: nothing fails at COMMIT")

    class Parent(db.Base):
        __tablename__ = "ans_parents"
        id: Mapped[int] = mapped_column(primary_key=True)

    class Child(db.Base):
        __tablename__ = "ans_children"
        id: Mapped[int] = mapped_column(primary_key=True)
        parent_id: Mapped[int] = mapped_column(
            ForeignKey("ans_parents.id", deferrable=True, initially="DEFERRED")
        )

    app = FastAPI()
    app.add_middleware(DBSessionMiddleware, db=db, problem_details=True)
    register_exception_handlers(app, problem_details=True)

    @app.post("/children")
    async def add_child() -> dict[str, bool]:
        db.current_session().add(Child(parent_id=4242))  # checked only at COMMIT
        return {"ok": True}

    await db.drop_tables()
    await db.create_tables()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.post("/children")
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["kind"], body["error"]) == (422, "foreign_key", "ConstraintViolationError")
    assert "4242" not in response.text
    assert await DatabaseOperations(db).count(Child) == 0
    await db.drop_tables()
