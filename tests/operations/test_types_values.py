"""Types and values the same on every backend (issue 13): JSON None, aware datetimes, Numeric,
JSON filters, huge IN lists, bytes, UUID keys, keyset cursors and sort keys. Every backend.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import text

from dsg_lib import InvalidInputError

UTC = dt.timezone.utc
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


async def scalar(env: SimpleNamespace, sql: str) -> Any:
    async with env.db.get_db_session() as s:
        return (await s.execute(text(sql))).scalar()


# --------------------------------------------------------------------------- 1. JSON None


async def test_json_none_is_sql_null_on_every_path(env: SimpleNamespace) -> None:
    V, ops = env.m.Val, env.ops
    assert (await ops.create_one(V(id=1, meta=None))).meta is None
    assert [v.meta for v in await ops.create_many([V(id=2, meta=None)])] == [None]
    await ops.insert_many(V, [{"id": 3, "meta": None}])  # small batch
    await ops.insert_many(V, [{"id": i, "meta": None} for i in range(100, 350)])  # COPY on PostgreSQL
    await ops.insert_many(V, [{"id": i, "meta": None} for i in range(400, 420)], validate=False)
    await ops.upsert(V, [{"id": 4, "meta": None}], conflict="id")  # insert
    await ops.create_one(V(id=5, meta={"a": 1}))
    await ops.upsert(V, [{"id": 5, "meta": None}], conflict="id")  # update
    await ops.create_one(V(id=6, meta=[1]))
    await ops.update_where(V, {"meta": None}, id=6)
    await ops.create_one(V(id=7, meta={"kept": None}))  # a JSON null inside a document stays
    await ops.create_one(V(id=8, meta={"b": 2}))
    assert (await ops.update_one(V, 8, {"meta": None})).meta is None
    made, created = await ops.get_or_create(V, id=9, defaults={"meta": None})
    assert created and made.meta is None
    expected = 8 + 250 + 20
    assert await ops.count(V, meta=None) == expected
    assert await ops.count(V, meta__is_null=True) == expected
    assert await ops.count(V, meta__is_null=False) == 1
    table = V.__tablename__
    assert await scalar(env, f"SELECT COUNT(*) FROM {table} WHERE meta IS NULL") == expected
    assert (await ops.get(V, 1)).meta is None
    assert (await ops.get(V, 7)).meta == {"kept": None}


# --------------------------------------------------------------------------- 2. aware datetimes


async def test_aware_datetimes_keep_the_instant(env: SimpleNamespace) -> None:
    V, ops = env.m.Val, env.ops
    local = dt.datetime(2024, 5, 1, 12, 0, tzinfo=IST)  # 06:30 UTC
    await ops.create_one(V(id=1, at=local))
    await ops.insert_many(V, [{"id": 2, "at": local}])
    await ops.upsert(V, [{"id": 3, "at": local}], conflict="id")
    await ops.create_one(V(id=4, at=dt.datetime(2024, 5, 1, 9, 0, tzinfo=UTC)))
    for i in (1, 2, 3):
        got = (await ops.get(V, i)).at
        got = got if got.tzinfo else got.replace(tzinfo=UTC)  # SQLite/MariaDB read naive UTC
        assert got == local, (i, got)
    seven_utc = dt.datetime(2024, 5, 1, 7, 0, tzinfo=UTC)
    assert sorted(v.id for v in await ops.find(V, at__lt=seven_utc)) == [1, 2, 3]
    assert sorted(v.id for v in await ops.find(V, at__gt=seven_utc)) == [4]
    assert await ops.count(V, at=local.astimezone(UTC)) == 3
    assert await ops.count(V, at=dt.datetime(2024, 5, 1, 6, 30)) == 3  # naive = UTC


async def test_aware_datetime_into_naive_column_is_refused(env: SimpleNamespace) -> None:
    V, ops = env.m.Val, env.ops
    aware = dt.datetime(2024, 5, 1, 12, 0, tzinfo=IST)
    with pytest.raises(InvalidInputError):
        await ops.create_one(V(id=1, naive=aware))
    with pytest.raises(InvalidInputError):
        await ops.insert_many(V, [{"id": 2, "naive": aware}])
    with pytest.raises(InvalidInputError):
        await ops.upsert(V, [{"id": 3, "naive": aware}], conflict="id")
    with pytest.raises(InvalidInputError):
        await ops.find(V, naive__lt=aware)
    assert await ops.count(V) == 0
    await ops.create_one(V(id=4, naive=dt.datetime(2024, 5, 1, 12, 0)))
    assert (await ops.get(V, 4)).naive == dt.datetime(2024, 5, 1, 12, 0)


# --------------------------------------------------------------------------- 3. Numeric


async def test_numeric_refuses_what_the_column_cannot_hold(env: SimpleNamespace) -> None:
    V, ops = env.m.Val, env.ops
    for bad in (123456.7, decimal.Decimal("1000"), decimal.Decimal("1.234"), 1000):
        with pytest.raises(InvalidInputError):
            await ops.create_one(V(id=1, amount=bad))
        with pytest.raises(InvalidInputError):
            await ops.insert_many(V, [{"id": 1, "amount": bad}])
        with pytest.raises(InvalidInputError):
            await ops.upsert(V, [{"id": 1, "amount": bad}], conflict="id")
    assert await ops.count(V) == 0
    await ops.insert_many(V, [{"id": 1, "amount": decimal.Decimal("999.99")}, {"id": 2, "amount": 1.5}])
    assert (await ops.get(V, 1)).amount == decimal.Decimal("999.99")
    assert (await ops.get(V, 2)).amount == decimal.Decimal("1.5")


async def test_numeric_wide_values_round_trip_or_are_refused(env: SimpleNamespace) -> None:
    V, ops = env.m.Val, env.ops
    wide = decimal.Decimal("12345678901234567890.1234567890")
    if env.dialect == "sqlite":  # SQLite keeps ~15 significant digits: refused, never altered
        with pytest.raises(InvalidInputError):
            await ops.create_one(V(id=1, big=wide))
        with pytest.raises(InvalidInputError):
            await ops.insert_many(V, [{"id": 1, "big": wide}])
        assert await ops.count(V) == 0
    else:
        await ops.create_one(V(id=1, big=wide))
        await ops.insert_many(V, [{"id": 2, "big": wide}])
        assert (await ops.get(V, 1)).big == wide
        assert (await ops.get(V, 2)).big == wide
    fits = decimal.Decimal("12345.6789")
    await ops.create_one(V(id=3, big=fits))
    assert (await ops.get(V, 3)).big == fits


async def test_bare_numeric_is_exact_or_refused(env: SimpleNamespace) -> None:
    V, ops = env.m.Val, env.ops
    quarter = decimal.Decimal("1.25")
    if env.dialect in ("mysql", "mariadb"):  # a bare NUMERIC is DECIMAL(10, 0): it would store 1
        for write in (
            ops.create_one(V(id=1, bare=quarter)),
            ops.insert_many(V, [{"id": 1, "bare": quarter}]),
            ops.upsert(V, [{"id": 1, "bare": 1.25}], conflict="id"),
        ):
            with pytest.raises(InvalidInputError):
                await write
        assert await ops.count(V) == 0
    else:
        await ops.create_one(V(id=1, bare=quarter))
        await ops.insert_many(V, [{"id": 2, "bare": quarter}])
        assert [v.bare for v in await ops.find(V, order_by="id")] == [quarter, quarter]
    await ops.create_one(V(id=3, bare=decimal.Decimal("1234567890")))
    assert (await ops.get(V, 3)).bare == decimal.Decimal("1234567890")


# --------------------------------------------------------------------------- 4. JSON filters


async def test_json_filters_other_than_null_are_refused(env: SimpleNamespace) -> None:
    V, ops = env.m.Val, env.ops
    await ops.create_one(V(id=1, meta={"a": 1}))
    for bad in (
        {"meta": {"a": 1}},
        {"meta__contains": "a"},
        {"meta__in": [{"a": 1}]},
        {"meta__ne": {"a": 1}},
        {"meta__like": "%a%"},
        {"meta__gt": 1},
    ):
        with pytest.raises(InvalidInputError):
            await ops.count(V, **bad)
        with pytest.raises(InvalidInputError):
            await ops.find(V, **bad)
        with pytest.raises(InvalidInputError):
            await ops.delete_where(V, **bad)
    assert await ops.count(V, meta=None) == 0
    assert await ops.count(V, meta__ne=None) == 1
    assert await ops.count(V, meta__is_null=False) == 1


# --------------------------------------------------------------------------- 8. UUID keys


async def test_uuid_columns_accept_strings_and_uuids(env: SimpleNamespace) -> None:
    V, ops = env.m.Val, env.ops
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    await ops.create_one(V(id=1, uid=str(u)))
    await ops.insert_many(V, [{"id": 2, "uid": str(u)}])
    assert (await ops.get(V, 1)).uid == u
    assert await ops.count(V, uid=str(u)) == 2
    assert await ops.count(V, uid=u) == 2
    assert await ops.count(V, uid__in=[str(u), u]) == 2


async def test_string_uuid_keys_accept_uuid_objects(env: SimpleNamespace) -> None:
    K, ops = env.m.Keyed, env.ops
    key = uuid.uuid4()
    await ops.create_one(K(pkid=key, name="a"))
    other = await ops.create_one(K(name="b"))
    assert (await ops.get(K, key)).name == "a"
    assert (await ops.get(K, str(key))).name == "a"
    assert (await ops.get(K, uuid.UUID(other.pkid))).name == "b"
    assert await ops.count(K, pkid=key) == 1
    assert await ops.count(K, pkid__in=[key, other.pkid]) == 2
    assert (await ops.update_one(K, key, {"name": "a2"})).name == "a2"
    assert (await ops.get_or_create(K, pkid=key))[0].name == "a2"
    await ops.delete_one(K, key)
    assert await ops.get(K, key) is None
    assert await ops.delete_many(K, "pkid", [uuid.UUID(other.pkid)]) == 1
    assert await ops.count(K) == 0
