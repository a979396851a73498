"""Property test: ``find`` with random filter combinations returns exactly the rows a Python
filter over the same data returns, on every backend.

The Python model follows SQL semantics: a NULL value never matches a comparison, ``ne``,
``in`` or ``not_in``. Strings are drawn from ``a A b % _`` (no spaces: MariaDB's PAD SPACE
collations ignore trailing spaces); the column uses ``utf8mb4_bin`` on MariaDB so matching
is case-sensitive like PostgreSQL.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase

# pid suffix: concurrent test runs on the same servers do not collide
PREFIX = f"opf_{os.getpid()}_"
ALPHABET = "aAb%_"
BIN = String(12).with_variant(String(12, collation="utf8mb4_bin"), "mysql", "mariadb")


def make_dataset() -> list[dict[str, Any]]:
    rng = random.Random(20240611)
    rows = []
    for i in range(1, 81):
        n = None if rng.random() < 0.15 else rng.randint(-5, 15)
        s = None if rng.random() < 0.15 else "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 5)))
        rows.append({"id": i, "n": n, "s": s})
    return rows


DATASET = make_dataset()

ints = st.integers(min_value=-6, max_value=16)
texts = st.text(alphabet=ALPHABET, min_size=0, max_size=3)

# filter key -> (strategy for the value, python predicate(value_in_row, filter_value))
Predicate = Callable[[Any, Any], bool]
INT_OPS: dict[str, tuple[st.SearchStrategy[Any], Predicate]] = {
    "lt": (ints, lambda v, x: v is not None and v < x),
    "gte": (ints, lambda v, x: v is not None and v >= x),
    "in": (st.lists(ints, max_size=4), lambda v, x: v is not None and v in x),
    "not_in": (st.lists(ints, min_size=1, max_size=4), lambda v, x: v is not None and v not in x),
    "ne": (ints, lambda v, x: v is not None and v != x),
    "is_null": (st.booleans(), lambda v, x: (v is None) == x),
}
STR_OPS: dict[str, tuple[st.SearchStrategy[Any], Predicate]] = {
    "eq": (texts, lambda v, x: v is not None and v == x),
    "startswith": (texts, lambda v, x: v is not None and v.startswith(x)),
    "contains": (texts, lambda v, x: v is not None and x in v),
    "endswith": (texts, lambda v, x: v is not None and v.endswith(x)),
    "ne": (texts, lambda v, x: v is not None and v != x),
    "is_null": (st.booleans(), lambda v, x: (v is None) == x),
}


@st.composite
def filter_sets(draw: st.DrawFn) -> dict[str, Any]:
    chosen: dict[str, Any] = {}
    for field, ops in (("n", INT_OPS), ("s", STR_OPS)):
        names = draw(st.lists(st.sampled_from(sorted(ops)), max_size=2, unique=True))
        for op in names:
            chosen[f"{field}__{op}"] = draw(ops[op][0])
    return chosen


def expected_ids(filters: dict[str, Any]) -> set[int]:
    result = set()
    for row in DATASET:
        ok = True
        for key, value in filters.items():
            field, op = key.split("__")
            predicate = (INT_OPS if field == "n" else STR_OPS)[op][1]
            if not predicate(row[field], value):
                ok = False
                break
        if ok:
            result.add(row["id"])
    return result


@pytest.fixture
def models(db: AsyncDatabase) -> SimpleNamespace:
    class Sample(db.Base):
        __tablename__ = PREFIX + "sample"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        n: Mapped[int | None] = mapped_column(Integer, nullable=True)
        s: Mapped[str | None] = mapped_column(BIN, nullable=True)

    return SimpleNamespace(Sample=Sample)


@pytest.fixture
async def env(env: SimpleNamespace, db: AsyncDatabase) -> SimpleNamespace:
    """``env`` of tests/operations/conftest.py, with ``DATASET`` inserted."""
    m, ops = env.m, env.ops
    await ops.insert_many(m.Sample, DATASET)  # inserted once; every example reads it
    return env


def test_dataset_has_edge_cases() -> None:
    assert any(r["n"] is None for r in DATASET) and any(r["s"] is None for r in DATASET)
    assert any(r["s"] == "" for r in DATASET)
    assert any(r["s"] and "%" in r["s"] for r in DATASET) and any(r["s"] and "_" in r["s"] for r in DATASET)


@settings(
    max_examples=45,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)
@given(filters=filter_sets())
async def test_find_matches_python_filter(env: SimpleNamespace, filters: dict[str, Any]) -> None:
    found = await env.ops.find(env.m.Sample, **filters)
    assert {row.id for row in found} == expected_ids(filters), filters
    assert await env.ops.count(env.m.Sample, **filters) == len(found)
