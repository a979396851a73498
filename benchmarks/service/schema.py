"""What every service app shares: the two tables, the routes' inputs and the fortunes page.

The tables are TechEmpower-shaped: ``bench_world`` (``id``, ``randomnumber``; ``WORLD_ROWS``
rows) and ``bench_fortune`` (``id``, ``message``). The apps differ only in how they talk to the
database; picking ids, building the JSON and rendering the HTML is this module's code in all four.
"""

from __future__ import annotations

import html
import random
from typing import Any

from sqlalchemy import Integer, String, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ..common import Backend

WORLD = "bench_world"
FORTUNE = "bench_fortune"
WORLD_ROWS = 10_000
QUERIES = 20  # rows per /queries and /updates request (the wrk URLs ask for this many)
ADDED_FORTUNE = "A fortune added at request time."
FORTUNES = (  # the messages of bench_fortune; two need escaping, two are not ASCII
    "A watched pool never drains.",
    "The index you forgot is the one the planner wanted.",
    "<script>alert('escaped, not run')</script>",
    "Ünïcödé survives the round trip.",
    "Commit early, commit often; roll back when you must.",
    "Every N+1 query was once a single one.",
    "A & B < C > D",
    "The fastest query is the one you never send.",
    "Connection refused is also an answer.",
    "フレームワークのベンチマーク",
    "Measure twice, optimise once.",
    "Latency is a distribution, not a number.",
)
ROUTES = ("db", "queries", "updates", "fortunes")
PATHS = {
    "db": "/db",
    "queries": f"/queries?n={QUERIES}",
    "updates": f"/updates?n={QUERIES}",
    "fortunes": "/fortunes",
}


class Base(DeclarativeBase):
    pass


class World(Base):
    __tablename__ = WORLD
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    randomnumber: Mapped[int] = mapped_column(Integer)


class Fortune(Base):
    __tablename__ = FORTUNE
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    message: Mapped[str] = mapped_column(String(2048))


def random_id() -> int:
    return random.randint(1, WORLD_ROWS)


def random_ids(n: int) -> list[int]:
    """``n`` distinct ids in ascending order (updates lock rows in one order: no deadlocks)."""
    return sorted(random.sample(range(1, WORLD_ROWS + 1), max(1, min(n, 500))))


def world(id_: int, number: int) -> dict[str, int]:
    return {"id": id_, "randomNumber": number}


def render_fortunes(rows: list[tuple[int, str]]) -> str:
    """The fortunes page: every row plus one added at request time, sorted by message, escaped."""
    rows = sorted([*rows, (0, ADDED_FORTUNE)], key=lambda r: r[1])
    cells = "".join(f"<tr><td>{i}</td><td>{html.escape(m)}</td></tr>" for i, m in rows)
    return (
        "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
        f"<tr><th>id</th><th>message</th></tr>{cells}</table></body></html>"
    )


def _fill_world(backend: Backend) -> str:
    cols = f"INSERT INTO {WORLD} (id, randomnumber) "
    if backend.dialect == "postgresql":
        return (
            cols
            + f"SELECT g, 1 + floor(random() * {WORLD_ROWS})::int FROM generate_series(1, {WORLD_ROWS}) AS g"
        )
    return cols + f"SELECT seq, 1 + floor(rand() * {WORLD_ROWS}) FROM seq_1_to_{WORLD_ROWS}"


async def prepare(engine: AsyncEngine, backend: Backend) -> None:
    """Create both tables and fill them, unless they already hold the expected rows."""
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all, checkfirst=True)
    async with engine.begin() as conn:
        worlds = (await conn.execute(text(f"SELECT count(*) FROM {WORLD}"))).scalar_one()
        if worlds != WORLD_ROWS:
            await conn.execute(text(f"DELETE FROM {WORLD}"))
            await conn.execute(text(_fill_world(backend)))
        messages = [m for (m,) in await conn.execute(select(Fortune.message).order_by(Fortune.id))]
        if messages != list(FORTUNES):
            await conn.execute(text(f"DELETE FROM {FORTUNE}"))
            await conn.execute(
                Fortune.__table__.insert(), [{"id": i, "message": m} for i, m in enumerate(FORTUNES, 1)]
            )
        if backend.dialect == "postgresql":
            await conn.execute(text(f"ANALYZE {WORLD}, {FORTUNE}"))


async def numbers_of(engine: AsyncEngine, ids: list[int]) -> dict[int, int]:
    """The stored ``randomnumber`` of these worlds (to check an app's /updates really wrote)."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(World.id, World.randomnumber).where(World.id.in_(ids)))
        return {i: n for i, n in rows}


def check_response(route: str, status: int, body: bytes) -> str | None:
    """What is wrong with a route's answer, or None."""
    import json

    if status != 200:
        return f"HTTP {status}"
    if route == "fortunes":
        page = body.decode()
        ok = ADDED_FORTUNE in page and "&lt;script&gt;" in page and page.count("<tr>") == len(FORTUNES) + 2
        return None if ok else "the fortunes page is not the expected table"
    data: Any = json.loads(body)
    items = [data] if route == "db" else data
    if route != "db" and len(items) != QUERIES:
        return f"{len(items)} rows, expected {QUERIES}"
    if not all(set(item) == {"id", "randomNumber"} and 1 <= item["id"] <= WORLD_ROWS for item in items):
        return "rows are not {id, randomNumber} worlds"
    return None
