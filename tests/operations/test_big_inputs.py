"""Big inputs and bytes (issue 13): IN lists longer than the bind-parameter limit, LargeBinary on
every write path. Every backend.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from dsg_lib import AsyncDatabase, ConstraintViolationError, DatabaseOperations, DBConfig
from tests.helpers import BACKENDS, MYSQL_URL, make_value_models, require_backend

# --------------------------------------------------------------------------- 5. huge IN lists


async def test_in_filters_with_more_values_than_bind_parameters(env: SimpleNamespace) -> None:
    S, ops = env.m.Sorted, env.ops
    await ops.insert_many(S, [{"id": i, "name": f"n{i}"} for i in range(1, 101)])
    ids = list(range(1, 40_001))
    assert len(await ops.find(S, id__in=ids)) == 100
    assert await ops.count(S, id__in=ids) == 100
    assert await ops.count(S, id__not_in=ids[10:]) == 10
    assert await ops.delete_where(S, id__in=ids[50:]) == 50
    assert await ops.delete_many(S, "id", ids[40:]) == 10
    assert await ops.count(S) == 40


# --------------------------------------------------------------------------- 7. bytes


async def test_bytes_round_trip_on_every_write_path(env: SimpleNamespace) -> None:
    await check_bytes(env.ops, env.m.Val)


async def test_bytes_round_trip_with_asyncmy() -> None:
    """The other MariaDB driver (the fixtures use aiomysql)."""
    if "mariadb" not in BACKENDS:
        pytest.skip(reason="mariadb is not among DSG_TEST_BACKENDS")
    pytest.importorskip("asyncmy", reason="asyncmy is not installed")
    require_backend("mariadb")
    db = AsyncDatabase(DBConfig({"database_uri": MYSQL_URL.replace("+aiomysql", "+asyncmy")}))
    m = make_value_models(db)
    try:
        await db.drop_tables()
        await db.create_tables()
        await check_bytes(DatabaseOperations(db), m.Val)
    finally:
        await db.drop_tables()
        await db.disconnect()


async def check_bytes(ops: DatabaseOperations, V: Any) -> None:
    payload = bytes(range(256)) * 4
    await ops.create_one(V(id=1, blob=payload))
    await ops.insert_many(V, [{"id": 2, "blob": payload}, {"id": 3, "blob": b""}])
    await ops.upsert(V, [{"id": 4, "blob": payload}], conflict="id")
    await ops.upsert(V, [{"id": 3, "blob": payload[:10]}], conflict="id")
    assert (await ops.get(V, 1)).blob == payload
    assert (await ops.get(V, 2)).blob == payload
    assert (await ops.get(V, 3)).blob == payload[:10]
    assert [v.id for v in await ops.find(V, blob=payload, order_by="id")] == [1, 2, 4]


async def test_bulk_copy_chunks_are_one_transaction(env: SimpleNamespace) -> None:
    """COPY (PostgreSQL, 200+ rows a chunk) runs in the operation's transaction: all or nothing."""
    S, ops = env.m.Sorted, env.ops
    await ops.insert_many(S, [{"id": 5000, "name": "existing"}])
    rows = [{"id": i, "name": f"n{i}"} for i in range(1, 700)] + [{"id": 5000, "name": "dup"}]
    with pytest.raises(ConstraintViolationError):
        await ops.insert_many(S, rows, chunk_size=250)  # the duplicate is in the last chunk
    assert await ops.count(S) == 1
    with pytest.raises(RuntimeError):
        async with env.db.transaction():
            await ops.insert_many(S, rows[:-1], chunk_size=250)
            assert await ops.count(S) == 700
            raise RuntimeError("roll back")
    assert await ops.count(S) == 1
