"""A small notes service on FastAPI + dsg_lib.

Install and start it from the repository root (in-memory SQLite by default; set
``DATABASE_URL`` for another database; ``LOG_LEVEL=DEBUG`` logs every operation)::

    pip install -e ".[examples]"
    uvicorn examples.fastapi_app:app

Then::

    curl -s -X POST localhost:8000/notes -H 'content-type: application/json' \\
         -d '{"title": "buy milk", "tag": "home"}'
    curl -s 'localhost:8000/notes?tag=home&title__contains=milk&limit=10'
    curl -s 'localhost:8000/notes?limit=10&after=<next_cursor from the previous page>'
    curl -s -X PATCH localhost:8000/notes/<pkid> -H 'content-type: application/json' -d '{"done": true}'
    curl -s -X DELETE localhost:8000/notes/<pkid>
    curl -s localhost:8000/health
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import String, Text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import (
    AsyncDatabase,
    DatabaseOperations,
    DBConfig,
    RecordNotFoundError,
    SchemaBaseSQLite,
    SoftDeleteMixin,
)
from dsg_lib.fastapi import (
    ERROR_RESPONSES,
    Filter,
    filter_query,
    health_router,
    lifespan,
    register_exception_handlers,
    session_dependency,
)

# dsg_lib logs through loguru and leaves the sinks to the app: a service logs its
# lifecycle (INFO: connected, tables created) next to uvicorn's lines, not every query.
logger.remove()
logger.add(sys.stderr, level=os.environ.get("LOG_LEVEL", "INFO"))
logger.enable("dsg_lib")  # the library is quiet until the application turns it on

db = AsyncDatabase(DBConfig.from_env("DATABASE_URL", default="sqlite+aiosqlite:///:memory:"))
ops = DatabaseOperations(db)


class Note(SchemaBaseSQLite, SoftDeleteMixin, db.Base):
    """A note; deletes are soft (``deleted_at``)."""

    __tablename__ = "example_notes"

    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    tag: Mapped[str | None] = mapped_column(String(50), index=True, default=None)
    done: Mapped[bool] = mapped_column(default=False)


class NoteIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    body: str = ""
    tag: str | None = Field(default=None, max_length=50)


class NoteUpdate(BaseModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    body: str | None = None
    tag: str | None = None
    done: bool | None = None


class NoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    pkid: str
    title: str
    body: str
    tag: str | None
    done: bool
    date_created: datetime
    date_updated: datetime


class NotePage(BaseModel):
    items: list[NoteOut]
    next_cursor: str | None


app = FastAPI(title="dsg_lib notes", lifespan=lifespan(db, create_tables=True))
# not found -> 404, duplicate -> 409, bad input (a NULL title, a foreign cursor) -> 422, down -> 503;
# responses=ERROR_RESPONSES documents those answers in the OpenAPI schema (/docs)
register_exception_handlers(app)
app.include_router(health_router(db))

# One transaction per request: committed after the endpoint returns, rolled back if it raises.
Transaction = Annotated[AsyncSession, Depends(session_dependency(db))]


# ?tag=home&done=false&title__contains=milk: only these filters (anything else is a 422 naming the
# parameter), every one typed in the OpenAPI schema; values are bound parameters, never SQL
NoteFilter = Annotated[
    Filter,
    Depends(filter_query(Note, {"tag": ["eq", "in"], "done": ["eq"], "title": ["contains", "startswith"]})),
]


@app.get("/notes", responses=ERROR_RESPONSES, response_model=NotePage)
async def list_notes(
    tx: Transaction,
    f: NoteFilter,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: str | None = None,
) -> Any:
    """Newest first, keyset-paginated: pass ``next_cursor`` back as ``after``."""
    page = await ops.paginate_keyset(Note, ["-date_created"], after, limit, where=f.where)
    return NotePage(items=page.items, next_cursor=page.next_cursor)


@app.get("/notes/{pkid}", responses=ERROR_RESPONSES, response_model=NoteOut)
async def get_note(pkid: str, tx: Transaction) -> Any:
    note = await ops.get(Note, pkid)
    if note is None:
        raise RecordNotFoundError(f"no note {pkid}")
    return note


@app.post("/notes", responses=ERROR_RESPONSES, response_model=NoteOut, status_code=201)
async def create_note(data: NoteIn, tx: Transaction) -> Any:
    return await ops.create_one(Note(**data.model_dump()))


@app.patch("/notes/{pkid}", responses=ERROR_RESPONSES, response_model=NoteOut)
async def update_note(pkid: str, data: NoteUpdate, tx: Transaction) -> Any:
    return await ops.update_one(Note, pkid, data.model_dump(exclude_unset=True))


# response_model=None: no body for 204 (FastAPI 0.110 reads the string annotation "None" as a response model)
@app.delete("/notes/{pkid}", responses=ERROR_RESPONSES, status_code=204, response_model=None)
async def delete_note(pkid: str, tx: Transaction) -> None:
    await ops.delete_one(Note, pkid)
