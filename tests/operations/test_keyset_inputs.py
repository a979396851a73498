"""Keyset pagination inputs (issue 13): non-ASCII cursors, expression sort keys, nullable sort
columns. Every backend.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from dsg_lib import InvalidInputError

# --------------------------------------------------------------------------- 9-11. keyset


async def test_keyset_cursor_with_non_ascii_is_invalid_input(env: SimpleNamespace) -> None:
    S, ops = env.m.Sorted, env.ops
    await ops.insert_many(S, [{"id": i, "name": f"n{i}"} for i in range(1, 5)])
    good = (await ops.paginate_keyset(S, "name", limit=2)).next_cursor
    assert good is not None
    for bad in ("é.x", good + "é", good.replace(".", ".é"), "ü" * 10 + "." + "ß" * 10):
        with pytest.raises(InvalidInputError):
            await ops.paginate_keyset(S, "name", after=bad, limit=2)


async def test_keyset_order_by_expressions(env: SimpleNamespace) -> None:
    S, ops = env.m.Sorted, env.ops
    await ops.insert_many(S, [{"id": i, "name": f"n{i:02d}"} for i in range(1, 12)])
    for order, expected in (
        (S.name, list(range(1, 12))),
        (S.name.desc(), list(range(11, 0, -1))),
        ([S.name], list(range(1, 12))),
        (S.name.asc(), list(range(1, 12))),
    ):
        seen: list[int] = []
        page = await ops.paginate_keyset(S, order, limit=4)
        seen.extend(s.id for s in page.items)
        while page.next_cursor is not None:
            page = await ops.paginate_keyset(S, order, after=page.next_cursor, limit=4)
            seen.extend(s.id for s in page.items)
        assert seen == expected, order


async def walk(ops: Any, model: Any, order: Any, limit: int) -> tuple[list[int], list[int]]:
    """Ids walking forward to the end, then backward from the last page to the start."""
    pages = [await ops.paginate_keyset(model, order, limit=limit)]
    while pages[-1].next_cursor is not None:
        pages.append(await ops.paginate_keyset(model, order, after=pages[-1].next_cursor, limit=limit))
    forward = [i.id for p in pages for i in p.items]
    page, backward = pages[-1], [i.id for i in pages[-1].items]
    while page.prev_cursor is not None:
        page = await ops.paginate_keyset(model, order, before=page.prev_cursor, limit=limit)
        backward = [i.id for i in page.items] + backward
    return forward, backward


async def test_keyset_nulls_in_sort_column_are_paged_both_ways(env: SimpleNamespace) -> None:
    S, ops = env.m.Sorted, env.ops
    rows = [{"id": i, "name": f"n{i % 3}", "rank": None if i % 4 == 0 else i % 7} for i in range(1, 41)]
    await ops.insert_many(S, rows)
    nulls = sorted(r["id"] for r in rows if r["rank"] is None)
    valued = [r for r in rows if r["rank"] is not None]
    asc = nulls + [r["id"] for r in sorted(valued, key=lambda r: (r["rank"], r["id"]))]
    desc_rows = sorted(valued, key=lambda r: (-r["rank"], -r["id"]))
    desc = [r["id"] for r in desc_rows] + sorted(nulls, reverse=True)
    for order, expected in (("rank", asc), (S.rank, asc), ("-rank", desc), (S.rank.desc(), desc)):
        for limit in (1, 3, 7, 40):
            forward, backward = await walk(ops, S, order, limit)
            assert forward == expected, (order, limit)
            assert backward == expected, (order, limit)
    by_name = sorted(rows, key=lambda r: (r["name"], r["rank"] is not None, r["rank"] or 0, r["id"]))
    forward, backward = await walk(ops, S, ["name", "rank"], 6)
    assert forward == backward == [r["id"] for r in by_name]


async def test_pkid_mixin_model_count_is_plain(env: SimpleNamespace) -> None:
    """The mixin timestamps do not break counting (guards the Keyed model above)."""
    K = env.m.Keyed
    await env.ops.create_one(K(name="x"))
    async with env.db.get_db_session() as s:
        assert (await s.execute(select(func.count()).select_from(K))).scalar_one() == 1
