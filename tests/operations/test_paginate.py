"""DatabaseOperations pagination and streaming: paginate, paginate_keyset, stream. Every backend.

Sort keys are integers plus an ASCII-lowercase ``label`` so ordering is identical under
every collation (no case variants; no NULLs in sort columns).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Integer, String, func, select
from sqlalchemy.engine import Row
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, CursorPage, InvalidInputError, Page
from dsg_lib.async_database_functions.base_schema import UTCDateTime

# pid suffix: concurrent test runs on the same servers do not collide
PREFIX = f"opp_{os.getpid()}_"
N_ITEMS = 53


@pytest.fixture
def models(db: AsyncDatabase) -> SimpleNamespace:
    class Item(db.Base):
        __tablename__ = PREFIX + "item"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        grp: Mapped[int] = mapped_column(Integer)
        score: Mapped[int] = mapped_column(Integer)
        label: Mapped[str] = mapped_column(String(20))

    class Event(db.Base):
        __tablename__ = PREFIX + "event"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        created: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
        name: Mapped[str] = mapped_column(String(20))

    class Big(db.Base):
        __tablename__ = PREFIX + "big"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        val: Mapped[int] = mapped_column(Integer)

    return SimpleNamespace(Item=Item, Big=Big, Event=Event)


def item_rows() -> list[dict[str, Any]]:
    rng = random.Random(4)
    # few distinct values: many ties on (grp, score), broken by the primary key
    return [
        {"id": i, "grp": rng.randint(0, 3), "score": rng.randint(0, 4), "label": rng.choice("abc") * 3}
        for i in range(1, N_ITEMS + 1)
    ]


@pytest.fixture
async def env(env: SimpleNamespace, db: AsyncDatabase) -> SimpleNamespace:
    """``env`` of tests/operations/conftest.py, with the items inserted."""
    m, ops = env.m, env.ops
    await ops.insert_many(m.Item, item_rows())
    return env


# --------------------------------------------------------------------------- offset pagination


async def test_paginate_model(env: SimpleNamespace) -> None:
    It = env.m.Item
    page = await env.ops.paginate(It, page=2, page_size=10)
    assert isinstance(page, Page)
    assert (page.total, page.page, page.page_size, page.pages) == (N_ITEMS, 2, 10, 6)
    assert [i.id for i in page.items] == list(range(11, 21))  # a model is ordered by primary key
    assert page.has_next is True
    last = await env.ops.paginate(It, page=6, page_size=10)
    assert [i.id for i in last.items] == [51, 52, 53] and last.has_next is False
    empty = await env.ops.paginate(It, page=7, page_size=10)
    assert empty.items == [] and empty.total == N_ITEMS
    assert page.to_dict()["items"] == page.items


async def test_paginate_select_and_without_total(env: SimpleNamespace) -> None:
    It = env.m.Item
    query = select(It).where(It.grp == 1).order_by(It.score.desc(), It.id)
    expected = [i.id for i in await env.ops.read_query(query)]
    page = await env.ops.paginate(query, page=1, page_size=4)
    assert [i.id for i in page.items] == expected[:4] and page.total == len(expected)
    quick = await env.ops.paginate(query, page=2, page_size=4, with_total=False)
    assert quick.total is None and quick.pages is None
    assert [i.id for i in quick.items] == expected[4:8]
    assert quick.has_next is (len(expected) > 8 or len(expected[4:8]) == 4)
    rows = await env.ops.paginate(select(It.id, It.label).order_by(It.id), page=1, page_size=3)
    assert all(isinstance(r, Row) for r in rows.items) and [r.id for r in rows.items] == [1, 2, 3]
    for bad in ({"page": 0}, {"page": -1}, {"page_size": 0}, {"page_size": 10**9}, {"page": 1.5}):
        with pytest.raises(InvalidInputError):
            await env.ops.paginate(It, **{"page": 1, "page_size": 10, **bad})


# --------------------------------------------------------------------------- keyset pagination

ORDER = ["grp", "-score", "label"]  # mixed directions, with ties; the pk is the tiebreaker


async def full_order(env: SimpleNamespace) -> list[int]:
    It = env.m.Item
    # the tiebreaker primary key takes the direction of the last sort key (ascending here)
    query = select(It.id).order_by(It.grp.asc(), It.score.desc(), It.label.asc(), It.id.asc())
    return list(await env.ops.read_query(query))


async def walk_forward(env: SimpleNamespace, order: Any, limit: int) -> list[CursorPage[Any]]:
    pages = [await env.ops.paginate_keyset(env.m.Item, order, limit=limit)]
    while pages[-1].next_cursor is not None:
        pages.append(
            await env.ops.paginate_keyset(env.m.Item, order, after=pages[-1].next_cursor, limit=limit)
        )
        assert len(pages) < 100
    return pages


async def test_keyset_walk_forward_matches_order_by(env: SimpleNamespace) -> None:
    expected = await full_order(env)
    for limit in (1, 7, N_ITEMS, 100):
        pages = await walk_forward(env, ORDER, limit)
        seen = [item.id for p in pages for item in p.items]
        assert seen == expected, limit
        assert len(set(seen)) == N_ITEMS
        assert pages[0].prev_cursor is None
        assert all(len(p.items) == limit for p in pages[:-1])
        assert pages[-1].next_cursor is None and pages[-1].has_next is False


async def test_keyset_expression_order(env: SimpleNamespace) -> None:
    It = env.m.Item
    order = [It.score.desc(), It.id.desc()]
    expected = list(await env.ops.read_query(select(It.id).order_by(It.score.desc(), It.id.desc())))
    pages = await walk_forward(env, order, 10)
    assert [i.id for p in pages for i in p.items] == expected


async def test_keyset_walk_backwards(env: SimpleNamespace) -> None:
    expected = await full_order(env)
    limit = 6
    forward = await walk_forward(env, ORDER, limit)
    # page 2 -> before=prev_cursor gives page 1 again
    back = await env.ops.paginate_keyset(env.m.Item, ORDER, before=forward[1].prev_cursor, limit=limit)
    assert [i.id for i in back.items] == [i.id for i in forward[0].items]
    assert back.prev_cursor is None and back.next_cursor is not None
    # from the last page all the way back to the start
    collected = [i.id for i in forward[-1].items]
    cursor = forward[-1].prev_cursor
    steps = 0
    while cursor is not None:
        page = await env.ops.paginate_keyset(env.m.Item, ORDER, before=cursor, limit=limit)
        assert 0 < len(page.items) <= limit
        collected = [i.id for i in page.items] + collected
        cursor = page.prev_cursor
        steps += 1
        assert steps < 100
    assert collected == expected
    # and forward again from a page reached backwards
    again = await env.ops.paginate_keyset(env.m.Item, ORDER, after=back.next_cursor, limit=limit)
    assert [i.id for i in again.items] == [i.id for i in forward[1].items]


async def test_keyset_bad_cursors(env: SimpleNamespace) -> None:
    It = env.m.Item
    first = await env.ops.paginate_keyset(It, ORDER, limit=5)
    good = first.next_cursor
    assert good is not None
    body, signature = good.split(".")
    flipped_body = body[:3] + ("A" if body[3] != "A" else "B") + body[4:] + "." + signature
    flipped_sig = body + "." + signature[:-1] + ("A" if signature[-1] != "A" else "B")
    bad_cursors: list[Any] = [
        "",
        "garbage",
        "a.b.c",
        "....",
        good + "x",
        good[:-3],
        flipped_body,
        flipped_sig,
        "eyJ2IjpbMV19." + signature,  # another body with the old signature
        "x" * 10_000,
        123,
    ]
    for cursor in bad_cursors:
        with pytest.raises(InvalidInputError):
            await env.ops.paginate_keyset(It, ORDER, after=cursor, limit=5)
        with pytest.raises(InvalidInputError):
            await env.ops.paginate_keyset(It, ORDER, before=cursor, limit=5)
    # a cursor made for another ordering
    for other in (["-grp", "-score", "label"], ["grp", "score"], "grp"):
        with pytest.raises(InvalidInputError):
            await env.ops.paginate_keyset(It, other, after=good, limit=5)
    with pytest.raises(InvalidInputError):
        await env.ops.paginate_keyset(It, ORDER, after=good, before=good, limit=5)
    for bad_order in (None, [], "nope", ["grp", "nope"], 5):
        with pytest.raises(InvalidInputError):
            await env.ops.paginate_keyset(It, bad_order, limit=5)
    for bad_limit in (0, -1, "5", 10**9):
        with pytest.raises(InvalidInputError):
            await env.ops.paginate_keyset(It, ORDER, limit=bad_limit)
    # the good cursor still works
    page = await env.ops.paginate_keyset(It, ORDER, after=good, limit=5)
    assert len(page.items) == 5


async def test_keyset_cursor_from_another_model_is_rejected(env: SimpleNamespace) -> None:
    await env.ops.insert_many(env.m.Big, [{"id": i, "val": i} for i in range(5)])
    big = await env.ops.paginate_keyset(env.m.Big, "id", limit=2)
    with pytest.raises(InvalidInputError):
        await env.ops.paginate_keyset(env.m.Item, "id", after=big.next_cursor, limit=2)


async def test_keyset_datetime_sort_key(env: SimpleNamespace) -> None:
    """The documented ``order_by=["-created", "name"]`` shape, with ties on ``created``."""
    E = env.m.Event
    base = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    rows = [
        {
            "id": i,
            "created": base + dt.timedelta(seconds=i // 3, microseconds=250_000 * (i % 2)),
            "name": "xyz"[i % 3] * 2,
        }
        for i in range(1, 41)
    ]
    await env.ops.insert_many(E, rows)
    expected = list(
        await env.ops.read_query(select(E.id).order_by(E.created.desc(), E.name.asc(), E.id.asc()))
    )
    seen: list[int] = []
    cursor = None
    for _ in range(50):
        page = await env.ops.paginate_keyset(E, ["-created", "name"], after=cursor, limit=6)
        seen.extend(e.id for e in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected


async def test_keyset_null_sort_keys_come_first(env: SimpleNamespace) -> None:
    E = env.m.Event
    await env.ops.insert_many(
        E, [{"id": 1, "created": None, "name": "a"}, {"id": 2, "created": None, "name": "b"}]
    )
    first = await env.ops.paginate_keyset(E, "created", limit=1)
    second = await env.ops.paginate_keyset(E, "created", after=first.next_cursor, limit=1)
    assert [e.id for e in first.items + second.items] == [1, 2]


async def test_paginate_with_filters(env: SimpleNamespace) -> None:
    It = env.m.Item
    expected = sorted(r["id"] for r in item_rows() if r["grp"] == 2 and r["score"] >= 2)
    page = await env.ops.paginate(It, page=1, page_size=100, grp=2, score__gte=2)
    assert [i.id for i in page.items] == expected and page.total == len(expected)
    keyset = await env.ops.paginate_keyset(It, "id", limit=100, grp=2, score__gte=2)
    assert [i.id for i in keyset.items] == expected
    for bad in ({"nope": 1}, {"grp": "2"}, {"grp__regex": 1}, {f"name; drop table {PREFIX}item": 1}):
        with pytest.raises(InvalidInputError):
            await env.ops.paginate(It, page=1, page_size=10, **bad)
        with pytest.raises(InvalidInputError):
            await env.ops.paginate_keyset(It, "id", limit=10, **bad)
    assert await env.ops.count(It) == N_ITEMS


# --------------------------------------------------------------------------- stream

N_STREAM = 50_000


async def test_stream_all_rows_and_pool_returns(env: SimpleNamespace) -> None:
    B = env.m.Big
    await env.ops.insert_many(B, ({"id": i, "val": i % 97} for i in range(N_STREAM)))
    total = 0
    count = 0
    async for row in env.ops.stream(select(B.id, B.val), batch_size=5_000):
        count += 1
        total += row.id
    assert count == N_STREAM and total == N_STREAM * (N_STREAM - 1) // 2
    assert env.db.pool_status()["checked_out"] == 0
    # objects, breaking out early with aclosing
    seen = []
    async with contextlib.aclosing(env.ops.stream(select(B).order_by(B.id), batch_size=100)) as stream:
        async for obj in stream:
            assert isinstance(obj, B)
            seen.append(obj.id)
            if len(seen) == 250:
                break
    assert seen == list(range(250))
    assert env.db.pool_status()["checked_out"] == 0
    # the connection is usable for other work afterwards
    assert await env.ops.count(B, val=0) == len(range(0, N_STREAM, 97))


async def test_stream_model_and_bad_batch_size(env: SimpleNamespace) -> None:
    It = env.m.Item
    ids = [item.id async for item in env.ops.stream(It, batch_size=7)]
    assert sorted(ids) == list(range(1, N_ITEMS + 1))
    for bad in (0, -5, "10", True):
        with pytest.raises(InvalidInputError):
            async for _ in env.ops.stream(It, batch_size=bad):
                pass
    assert env.db.pool_status()["checked_out"] == 0


async def test_stream_empty(env: SimpleNamespace) -> None:
    B = env.m.Big
    assert [row async for row in env.ops.stream(select(B))] == []
    assert env.db.pool_status()["checked_out"] == 0
    async with env.db.get_db_session() as s:
        assert (await s.execute(select(func.count()).select_from(B))).scalar_one() == 0


async def test_stream_batched_yields_lists_and_does_not_block_writers(env: SimpleNamespace) -> None:
    B = env.m.Big
    await env.ops.insert_many(B, ({"id": i, "val": i % 97} for i in range(2_500)))
    batches = [batch async for batch in env.ops.stream(B, batch_size=1_000, batched=True)]
    assert [len(b) for b in batches] == [1_000, 1_000, 500]
    assert sorted(row.id for b in batches for row in b) == list(range(2_500))

    seen = 0
    async with contextlib.aclosing(env.ops.stream(B, batch_size=100, val__lt=50)) as rows:
        async for _row in rows:
            seen += 1
            # another operation writes while the stream is open (SQLite: the stream holds no
            # write lock); in-memory SQLite has one connection, which the stream is using
            if seen == 1 and not env.db.db_config.is_memory:
                assert await env.ops.insert_many(B, [{"id": 10_000, "val": 1}]) == 1
    assert seen >= sum(1 for i in range(2_500) if i % 97 < 50)
    assert await env.ops.count(B, id=10_000) == (0 if env.db.db_config.is_memory else 1)
    assert env.db.pool_status()["checked_out"] == 0
