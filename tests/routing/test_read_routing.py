"""Read replicas and PgBouncer on real PostgreSQL servers started by scripts/scaleout_setup.sh.

The fixture runs the (idempotent) setup script once: a streaming hot standby on
127.0.0.1:5433 and PgBouncer in transaction pooling mode on 127.0.0.1:6432.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import String, select, text
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig, InvalidInputError, QueryError
from tests.helpers import IN_CI, POSTGRES_URL, ROOT, require_backend

SCRIPT = ROOT / "scripts" / "scaleout_setup.sh"
REPLICA_URL = os.environ.get("DSG_TEST_REPLICA_URL", "postgresql+asyncpg://postgres@127.0.0.1:5433/test")
PGBOUNCER_URL = os.environ.get("DSG_TEST_PGBOUNCER_URL", "postgresql+asyncpg://postgres@127.0.0.1:6432/test")

pytestmark = pytest.mark.slow


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=240, check=False
    )


@pytest.fixture(scope="module")
def scaleout() -> Iterator[None]:
    require_backend("postgresql")
    result = _script("setup")
    if result.returncode != 0:
        message = f"scaleout_setup.sh failed: {result.stderr[-2000:]}"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(reason=message)
    yield
    if _script("status").returncode != 0:  # leave the topology healthy for the next run
        _script("start-replica")


@pytest.fixture
async def routed_db(scaleout: None) -> AsyncIterator[AsyncDatabase]:
    db = AsyncDatabase(DBConfig({"database_uri": POSTGRES_URL, "read_replicas": [REPLICA_URL]}))
    yield db
    await db.disconnect()


def _model(db: AsyncDatabase) -> Any:
    class Route(db.Base):
        __tablename__ = "scale_routes"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(40))

    return Route


async def _wait_replicated(ops: DatabaseOperations, model: Any, expected: int) -> None:
    for _ in range(100):  # replication lag is tolerated for up to ~5 s
        try:
            if await ops.count(model) == expected:
                return
        except QueryError:  # the CREATE TABLE itself has not been replayed yet
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("replica did not catch up within 5 s")


async def test_reads_go_to_the_replica_and_writes_to_the_primary(routed_db: AsyncDatabase) -> None:
    db = routed_db
    model = _model(db)
    ops = DatabaseOperations(db)
    await db.drop_tables()
    await db.create_tables()

    in_recovery = text("SELECT pg_is_in_recovery()")
    assert await ops.read_query(in_recovery) == [(True,)]  # a read: served by the standby
    assert await ops.execute_one(model.__table__.insert().values(id=1, name="a")) == 1
    async with db.transaction():
        assert await ops.read_query(in_recovery) == [(False,)]  # inside a transaction: primary
    async with db.primary():
        assert await ops.count(model) == 1  # read-your-writes
        assert await ops.read_query(in_recovery) == [(False,)]

    await _wait_replicated(ops, model, 1)
    assert (await ops.get(model, 1)).name == "a"
    reads_before = db.db_config.replicas.status()[0]["reads"]
    for _ in range(10):
        await ops.find(model)
    assert db.db_config.replicas.status()[0]["reads"] == reads_before + 10
    health = await db.health_check()
    assert health["replicas"][0]["healthy"] is True
    await db.drop_tables()


async def test_read_only_refuses_writes(routed_db: AsyncDatabase) -> None:
    db = routed_db
    model = _model(db)
    await db.drop_tables()
    await db.create_tables()
    ops = DatabaseOperations(db)
    async with db.read_only():
        assert await ops.count(model) == 0
        with pytest.raises(InvalidInputError):
            await ops.insert_many(model, [{"id": 1, "name": "x"}])
    async with db.primary():
        assert await ops.count(model) == 0
    await db.drop_tables()


async def test_stopped_replica_falls_back_to_the_primary_with_a_warning(
    routed_db: AsyncDatabase, log_messages: list[str]
) -> None:
    db = routed_db
    model = _model(db)
    ops = DatabaseOperations(db)
    await db.drop_tables()
    await db.create_tables()
    await ops.insert_many(model, [{"id": i, "name": f"n{i}"} for i in range(5)])
    await _wait_replicated(ops, model, 5)
    db.db_config.replicas.retry_after = 0.5
    try:
        assert _script("stop-replica").returncode == 0
        assert await ops.count(model) == 5  # served by the primary
        assert await ops.read_query(text("SELECT pg_is_in_recovery()")) == [(False,)]
        assert db.db_config.replicas.status()[0]["healthy"] is False
        assert any("read replica" in m and "failed" in m for m in log_messages)
    finally:
        assert _script("start-replica").returncode == 0
    await asyncio.sleep(0.6)
    assert await ops.read_query(text("SELECT pg_is_in_recovery()")) == [(True,)]  # recovered
    assert db.pool_status()["checked_out"] == 0
    await db.drop_tables()


async def test_operations_suite_through_pgbouncer_transaction_mode(scaleout: None) -> None:
    db = AsyncDatabase(DBConfig({"database_uri": PGBOUNCER_URL, "pgbouncer": True, "pool_size": 10}))
    model = _model(db)
    ops = DatabaseOperations(db)
    await db.drop_tables()
    await db.create_tables()
    try:
        assert await ops.insert_many(model, ({"id": i, "name": f"n{i}"} for i in range(2000))) == 2000
        assert (
            await ops.upsert(model, [{"id": 1, "name": "one"}, {"id": 5000, "name": "new"}], conflict="id")
            == 2
        )
        assert (await ops.get(model, 1)).name == "one"
        assert await ops.update_where(model, {"name": "even"}, model.id < 10, id__in=[0, 2, 4]) == 3
        page = await ops.paginate_keyset(model, order_by="id", limit=100)
        assert [r.id for r in page.items] == list(range(100))
        # many concurrent statements on a pool of 10 over pooled server connections:
        # with asyncpg's named prepared statements cached this fails ("prepared statement ... does not exist")
        results = await asyncio.gather(*[ops.get(model, i) for i in range(300)])
        assert [r.id for r in results] == list(range(300))
        created = await asyncio.gather(
            *[ops.get_or_create(model, id=9999, defaults={"name": "race"}) for _ in range(10)]
        )
        assert sum(flag for _, flag in created) == 1
        streamed = [row async for row in ops.stream(select(model), batch_size=500)]
        assert len(streamed) == 2002
        async with db.transaction():
            await ops.delete_where(model, id__gte=1000)
        assert await ops.count(model) == 1000
        assert db.pool_status()["checked_out"] == 0
    finally:
        await db.drop_tables()
        await db.disconnect()
