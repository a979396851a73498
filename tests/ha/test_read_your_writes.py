"""Read-your-writes across requests on the streaming replica of scripts/scaleout_setup.sh.

The replica (:5433, following db ``test`` on :5432) gets
``recovery_min_apply_delay`` for the test, so a read sent to it right after a
write misses the write. With the write's consistency token the read is
served only by a replica that has replayed it, else by the primary: 0 stale
reads. Without it the stale reads are counted and shown.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import column, select, table, text
from sqlalchemy.ext.asyncio import create_async_engine

from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig, QueryError
from dsg_lib.fastapi import CONSISTENCY_HEADER, ConsistencyMiddleware

from .conftest import ensure_topology, report

pytestmark = [pytest.mark.ha, pytest.mark.slow]

PRIMARY_URL = os.environ.get("DSG_TEST_RYW_PRIMARY_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REPLICA_URL = os.environ.get("DSG_TEST_REPLICA_URL", "postgresql+asyncpg://postgres@127.0.0.1:5433/test")
APPLY_DELAY = "400ms"
ROUNDS = 1000
RYW = table("ha_ryw", column("id"), column("v"))


@pytest.fixture(scope="module")
def replica() -> Iterator[None]:
    ensure_topology("scaleout_setup.sh", "setup")
    yield


async def _replica_admin(sql: str) -> None:
    engine = create_async_engine(REPLICA_URL.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
            await conn.execute(text("SELECT pg_reload_conf()"))
    finally:
        await engine.dispose()


@pytest.fixture
async def delayed_replica(replica: None) -> AsyncIterator[None]:
    # Other tests use this replica too: keep the delay short and always reset it.
    await _replica_admin(f"ALTER SYSTEM SET recovery_min_apply_delay = '{APPLY_DELAY}'")
    try:
        yield
    finally:
        await _replica_admin("ALTER SYSTEM RESET recovery_min_apply_delay")


@pytest.fixture
async def db(delayed_replica: None) -> AsyncIterator[AsyncDatabase]:
    database = AsyncDatabase(
        DBConfig({"database_uri": PRIMARY_URL, "read_replicas": [REPLICA_URL], "pool_size": 10})
    )
    async with database.transaction() as session:
        await session.execute(text("DROP TABLE IF EXISTS ha_ryw"))
        await session.execute(text("CREATE TABLE ha_ryw (id int PRIMARY KEY, v int NOT NULL)"))
    for _ in range(100):  # the table itself must have reached the replica
        try:
            await _read(database, 0)
            break
        except QueryError:  # relation does not exist yet on the replica
            await asyncio.sleep(0.1)
    yield database
    async with database.transaction() as session:
        await session.execute(text("DROP TABLE IF EXISTS ha_ryw"))
    await database.disconnect()


async def _read(db: AsyncDatabase, row: int) -> int | None:
    """A read outside a transaction: routed like every DatabaseOperations read."""
    result = await DatabaseOperations(db).read_query(select(RYW.c.v).where(RYW.c.id == row))
    return int(result[0]) if result else None


async def _write(db: AsyncDatabase, row: int) -> None:
    async with db.transaction() as session:
        await session.execute(text("INSERT INTO ha_ryw (id, v) VALUES (:id, :v)"), {"id": row, "v": row})


async def _concurrently(fn: Callable[[int], Awaitable[bool]], rows: range, workers: int = 8) -> list[bool]:
    """Each worker runs ``fn`` on its share of ``rows``, one after the other (like a client)."""

    async def worker(share: range) -> list[bool]:
        return [await fn(row) for row in share]

    shares = [rows[i::workers] for i in range(workers)]
    return [stale for part in await asyncio.gather(*(worker(s) for s in shares)) for stale in part]


def _replica_reads(db: AsyncDatabase) -> int:
    return int(db.db_config.replicas.status()[0]["reads"])


async def test_token_prevents_stale_reads_and_naive_reads_are_stale(db: AsyncDatabase) -> None:
    async def with_token(row: int) -> bool:
        await _write(db, row)
        token = await db.consistency_token()
        async with db.consistent_with(token):
            return await _read(db, row) != row

    async def naive(row: int) -> bool:
        await _write(db, row)
        return await _read(db, row) != row

    stale_with = sum(await _concurrently(with_token, range(1, ROUNDS + 1)))
    reads_before = _replica_reads(db)
    stale_without = sum(await _concurrently(naive, range(ROUNDS + 1, 2 * ROUNDS + 1)))
    naive_replica_reads = _replica_reads(db) - reads_before
    report(
        f"read-your-writes (recovery_min_apply_delay={APPLY_DELAY}): stale reads with token "
        f"{stale_with}/{ROUNDS}, without token {stale_without}/{ROUNDS} "
        f"({naive_replica_reads} naive reads served by the replica)"
    )
    assert stale_with == 0
    assert stale_without > 0, "the replica was never behind: the test proves nothing"


async def test_a_caught_up_replica_serves_token_reads(db: AsyncDatabase) -> None:
    await _write(db, 1)
    token = await db.consistency_token()
    await asyncio.sleep(1.5)  # longer than the apply delay
    before = _replica_reads(db)
    async with db.consistent_with(token):
        assert await _read(db, 1) == 1
    assert _replica_reads(db) == before + 1


async def test_fastapi_middleware_round_trip(db: AsyncDatabase) -> None:
    app = FastAPI()
    app.add_middleware(ConsistencyMiddleware, db=db)

    @app.post("/items/{item}")
    async def create(item: int) -> dict[str, int]:
        await _write(db, item)
        return {"id": item}

    @app.get("/items/{item}")
    async def show(item: int, request: Request) -> dict[str, int | None]:
        return {"v": await _read(db, item)}

    stale_with = stale_without = 0
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert CONSISTENCY_HEADER not in (await client.get("/items/1")).headers  # no write: no token
        for item in range(5000, 5100):
            created = await client.post(f"/items/{item}")
            token = created.headers[CONSISTENCY_HEADER]
            fresh = await client.get(f"/items/{item}", headers={CONSISTENCY_HEADER: token})
            stale_with += fresh.json()["v"] != item
        for item in range(6000, 6100):
            await client.post(f"/items/{item}")
            stale_without += (await client.get(f"/items/{item}")).json()["v"] != item
        garbage = await client.get("/items/5000", headers={CONSISTENCY_HEADER: "not-a-token"})
    report(f"FastAPI round trip: stale with header {stale_with}/100, without {stale_without}/100")
    assert stale_with == 0
    assert stale_without > 0
    assert garbage.status_code == 200 and garbage.json()["v"] == 5000  # malformed: read the primary
