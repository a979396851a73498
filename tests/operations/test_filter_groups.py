"""``Q`` filter groups (issue 27 item 1): every operation that takes ``*where`` (or ``where=``)
gives the same rows as the same filter written by hand in SQLAlchemy. Every backend, both
executor strategies (see tests/conftest.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Integer, String, and_, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, InvalidInputError, Q
from dsg_lib.filters._groups import MAX_DEPTH, MAX_TERMS
from tests.helpers import captured_sql

PREFIX = f"fg_{os.getpid()}_"

PEOPLE = [
    ("Ada", 36, "London"),
    ("Alan", 41, "London"),
    ("Grace", None, "New York"),
    ("Linus", 17, "Helsinki"),
    ("Anita", 70, "Boston"),
    ("Barbara", 66, None),
    ("Edsger", 12, "Austin"),
    ("Ab'c; DROP TABLE x", 30, "Nowhere"),
]


@pytest.fixture
def models(db: AsyncDatabase) -> SimpleNamespace:
    class Person(db.Base):
        __tablename__ = PREFIX + "person"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        name: Mapped[str] = mapped_column(String(40))
        age: Mapped[int | None] = mapped_column(Integer, nullable=True)
        city: Mapped[str | None] = mapped_column(String(40), nullable=True)

    return SimpleNamespace(Person=Person)


@pytest.fixture
async def env(env: SimpleNamespace, db: AsyncDatabase) -> SimpleNamespace:
    """``env`` of tests/operations/conftest.py, with ``PEOPLE`` inserted."""
    await env.ops.insert_many(env.m.Person, [{"name": n, "age": a, "city": c} for n, a, c in PEOPLE])
    return env


# (Q, the same filter written by hand)
CASES: list[tuple[Callable[[], Q], Callable[[Any], Any]]] = [
    (lambda: Q(age__lt=18) | Q(age__gt=65), lambda P: or_(P.age < 18, P.age > 65)),
    (lambda: ~Q(name__startswith="A"), lambda P: not_(P.name.like("A%"))),
    (
        lambda: (Q(age__lt=18) | Q(age__gt=65)) & ~Q(name__startswith="A"),
        lambda P: and_(or_(P.age < 18, P.age > 65), not_(P.name.like("A%"))),
    ),
    (lambda: Q(city="London", age__gte=40), lambda P: and_(P.city == "London", P.age >= 40)),
    (lambda: Q(city__is_null=True) | Q(age__is_null=True), lambda P: or_(P.city.is_(None), P.age.is_(None))),
    (
        lambda: ~(Q(city__in=["London", "Boston"]) | Q(age__lte=17)),
        lambda P: not_(or_(P.city.in_(["London", "Boston"]), P.age <= 17)),
    ),
    (lambda: Q(name="Ab'c; DROP TABLE x"), lambda P: P.name == "Ab'c; DROP TABLE x"),
    (lambda: ~~Q(age=36), lambda P: P.age == 36),
]
DATA_CASES: list[tuple[Any, Callable[[Any], Any]]] = [
    (
        {"or": [{"age__lt": 18}, {"age__gt": 65}], "not": {"name__startswith": "A"}},
        lambda P: and_(or_(P.age < 18, P.age > 65), not_(P.name.like("A%"))),
    ),
    ({"and": [{"city": "London"}, {"age__gte": 40}]}, lambda P: and_(P.city == "London", P.age >= 40)),
    ({"city__ne": "London", "age__is_null": False}, lambda P: and_(P.city != "London", P.age.is_not(None))),
    (
        {"not": {"or": [{"city": "London"}, {"not": {"age__gt": 30}}]}},
        lambda P: not_(or_(P.city == "London", not_(P.age > 30))),
    ),
]


async def by_hand(db: AsyncDatabase, P: Any, condition: Any) -> list[int]:
    async with AsyncSession(db.engine) as s:
        return list((await s.execute(select(P.id).where(condition).order_by(P.id))).scalars())


@pytest.mark.parametrize("case", range(len(CASES)))
async def test_q_reads_match_sqlalchemy(env: SimpleNamespace, case: int) -> None:
    make, hand = CASES[case]
    P, ops = env.m.Person, env.ops
    expected = await by_hand(env.db, P, hand(P))
    assert expected, "every case matches some rows"
    assert [p.id for p in await ops.find(P, make(), order_by="id")] == expected
    assert sorted(p.id for p in await ops.find(P, make())) == expected
    assert [r["id"] for r in await ops.find_mappings(P, make(), order_by="id")] == expected
    assert await ops.count(P, make()) == len(expected)
    assert await ops.exists(P, make()) is True
    assert await ops.exists(P, make(), id=-1) is False
    page = await ops.paginate(P, page=1, page_size=3, where=make())
    assert [p.id for p in page.items] == expected[:3] and page.total == len(expected)
    keyset = await ops.paginate_keyset(P, order_by="id", limit=100, where=make())
    assert [p.id for p in keyset.items] == expected
    assert sorted([p.id async for p in ops.stream(P, where=make())]) == expected
    one = await ops.get_one(P, make(), id=expected[0])
    assert one.id == expected[0]


@pytest.mark.parametrize("case", range(len(DATA_CASES)))
async def test_from_data_matches_sqlalchemy(env: SimpleNamespace, case: int) -> None:
    data, hand = DATA_CASES[case]
    P, ops = env.m.Person, env.ops
    expected = await by_hand(env.db, P, hand(P))
    assert expected
    assert [p.id for p in await ops.find(P, Q.from_data(data), order_by="id")] == expected
    assert await ops.count(P, Q.from_data(data)) == len(expected)


async def test_q_with_keyword_filters_and_expressions(env: SimpleNamespace) -> None:
    P, ops = env.m.Person, env.ops
    expected = await by_hand(env.db, P, and_(or_(P.age < 18, P.age > 65), P.city != "Boston", P.id > 1))
    found = await ops.find(P, Q(age__lt=18) | Q(age__gt=65), P.id > 1, city__ne="Boston", order_by="id")
    assert [p.id for p in found] == expected


async def test_update_and_delete_where_with_q(env: SimpleNamespace) -> None:
    P, ops = env.m.Person, env.ops
    q = Q(age__lt=18) | Q(city__is_null=True)
    targets = await by_hand(env.db, P, or_(P.age < 18, P.city.is_(None)))
    assert await ops.update_where(P, {"city": "Moved"}, q) == len(targets)
    assert await by_hand(env.db, P, P.city == "Moved") == targets
    assert await ops.delete_where(P, Q(city="Moved") & ~Q(age__gte=15)) == 1
    assert await ops.count(P) == len(PEOPLE) - 1


async def test_empty_q_is_no_filter(env: SimpleNamespace) -> None:
    P, ops = env.m.Person, env.ops
    assert await ops.count(P, Q()) == len(PEOPLE)
    assert await ops.count(P, Q() | Q(age=36)) == len(PEOPLE)
    assert await ops.count(P, ~Q()) == 0
    with pytest.raises(InvalidInputError, match="all_rows"):
        await ops.update_where(P, {"city": "x"}, Q())
    with pytest.raises(InvalidInputError, match="all_rows"):
        await ops.delete_where(P, Q())
    assert await ops.count(P, city="x") == 0


async def test_values_are_bound_never_rendered(env: SimpleNamespace) -> None:
    P, ops = env.m.Person, env.ops
    with captured_sql(env.db) as sent:
        found = await ops.find(
            P, Q.from_data({"or": [{"name": "Ab'c; DROP TABLE x"}, {"city": "zz-Helsinki"}]})
        )
    assert [p.name for p in found] == ["Ab'c; DROP TABLE x"]
    assert sent and not any("DROP TABLE" in s or "zz-Helsinki" in s for s in sent)


MALFORMED: list[Any] = [
    [],
    "age__lt",
    {"or": {"age__lt": 1}},
    {"or": []},
    {"and": [1]},
    {"not": [{"age": 1}]},
    {1: "x"},
    {"or": [{"age__lt": 1}, "x"]},
]


@pytest.mark.parametrize("data", MALFORMED, ids=repr)
async def test_malformed_data_is_invalid_input_nothing_sent(env: SimpleNamespace, data: Any) -> None:
    with captured_sql(env.db) as sent, pytest.raises(InvalidInputError):
        await env.ops.find(env.m.Person, Q.from_data(data))
    assert sent == []


@pytest.mark.parametrize(
    "data",
    [
        {"nope": 1},
        {"age__between": [1, 2]},
        {"or": [{"age__lt": "old"}]},
        {"not": {"name__startswith": 5}},
        {"_sa_instance_state": 1},
    ],
    ids=repr,
)
async def test_bad_fields_ops_values_refused_before_sql(env: SimpleNamespace, data: Any) -> None:
    P = env.m.Person
    with captured_sql(env.db) as sent:
        for call in (
            env.ops.find(P, Q.from_data(data)),
            env.ops.update_where(P, {"age": 1}, Q.from_data(data)),
        ):
            with pytest.raises(InvalidInputError):
                await call
    assert sent == []
    assert await env.ops.count(P, age=1) == 0


def nested(levels: int) -> dict[str, Any]:
    data: dict[str, Any] = {"age": 1}
    for _ in range(levels - 1):
        data = {"not": data}
    return data


async def test_depth_and_size_bounds(env: SimpleNamespace) -> None:
    P = env.m.Person
    assert await env.ops.count(P, Q.from_data(nested(MAX_DEPTH))) >= 0
    with pytest.raises(InvalidInputError, match="deeper"):
        Q.from_data(nested(MAX_DEPTH + 1))
    with pytest.raises(InvalidInputError, match="deeper"):
        Q.from_data(nested(100_000))  # refused at the bound: no RecursionError
    deep = Q(age=1)
    for _ in range(MAX_DEPTH + 1):
        deep = ~deep
    with captured_sql(env.db) as sent, pytest.raises(InvalidInputError, match="deeper"):
        await env.ops.find(P, deep)
    assert sent == []
    with pytest.raises(InvalidInputError, match="more than"):
        Q.from_data({"or": [{"age": i} for i in range(MAX_TERMS + 1)]})
    wide = Q(age=0)
    for i in range(MAX_TERMS):
        wide = wide | Q(age=i)  # chains flatten: one level, but too many terms
    with pytest.raises(InvalidInputError, match="more than"):
        await env.ops.find(P, wide)
    ok = Q(age=0)
    for i in range(1, 300):
        ok = ok | Q(age=i)
    assert await env.ops.count(P, ok) == await env.ops.count(P, P.age < 300)


async def test_q_on_a_select_in_paging(env: SimpleNamespace) -> None:
    P, ops = env.m.Person, env.ops
    expected = await by_hand(env.db, P, or_(P.age < 18, P.age > 65))
    page = await ops.paginate(select(P).order_by(P.id), where=Q(age__lt=18) | Q(age__gt=65))
    assert [p.id for p in page.items] == expected
    assert page.total == len(expected)
    streamed = [p.id async for p in ops.stream(select(P), where=[Q(age__lt=18) | Q(age__gt=65)])]
    assert sorted(streamed) == expected


def test_repr_shows_names_never_values() -> None:
    q = Q(password="hunter2") | ~Q.from_data({"token__in": ["s3cret"]})
    assert "hunter2" not in repr(q) and "s3cret" not in repr(q)
    assert "password" in repr(q) and "token__in" in repr(q)
