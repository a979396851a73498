"""Proving the two strategies equal: generated models and operations vs hand-written SQLAlchemy.

Hypothesis generates a model (column types from `KINDS`: numerics, strings,
booleans, dates, UUID, native / ``values_callable`` / non-native Enums,
JSON, bytes, a TypeDecorator; ``Column(key=...)``; Python and server
defaults; no inheritance, single-table or joined inheritance) and a
sequence of `DatabaseOperations` calls on it. The same sequence runs twice
on fresh tables: once through dsg_lib, once written by hand on SQLAlchemy's
``AsyncSession`` (`HAND`). Every answer (rows, values, Python types, dict
keys, counts, the typed error of a failure) and the stored table state after
each step must be equal. It runs on every backend (SQLite memory and file,
PostgreSQL, MariaDB through aiomysql and asyncmy) and on both strategies
(``compiled_statements`` True / False).

Profiles (``DSG_HYPOTHESIS_PROFILE``): ``ci`` (default, 25 examples per
backend and strategy) and ``long`` (``DSG_HYPOTHESIS_EXAMPLES``, default
200). See docs/testing.md, "Proving the two strategies equal".

A difference of a known class still open is classified by `known_difference`,
counted and listed at the end of the run instead of failing the example (``DSG_SEMANTICS_STRICT=1``
fails on it too); any other difference fails. Each class found and fixed has one
concrete example, `EXAMPLES`, that must give the same answers both ways.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import itertools
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
    delete,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import registry

from dsg_lib import AsyncDatabase, DatabaseError, DatabaseOperations, DBConfig
from dsg_lib.errors import translate_error
from tests.helpers import BACKENDS, MYSQL_URL, backend_problem, backend_url, unreachable

RUN = os.getpid()

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("DSG_HYPOTHESIS_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
PROFILE = settings.get_profile(os.environ.get("DSG_HYPOTHESIS_PROFILE", "ci"))

# --------------------------------------------------------------------------- models


class Color(enum.Enum):
    RED = "r"
    GREEN = "g"
    BLUE = "b"


class Cents(TypeDecorator[decimal.Decimal]):
    """A Decimal stored as integer cents: the Python type differs from the stored one."""

    impl = Integer
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return None if value is None else int(decimal.Decimal(value) * 100)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else decimal.Decimal(value) / 100


def _values(e: type[enum.Enum]) -> list[str]:
    return [m.value for m in e]


@dataclass(frozen=True)
class Kind:
    """One column type: how to build it, values for it, and whether it may be filtered on."""

    name: str
    make: Callable[[str], Any]
    values: st.SearchStrategy[Any]
    filterable: bool = True
    server_default: str | None = None
    python_default: bool = False


_text = st.text(alphabet="abcXYZ", min_size=1, max_size=8)
KINDS: dict[str, Kind] = {
    k.name: k
    for k in [
        Kind("int", lambda n: Integer(), st.integers(-1000, 1000), server_default="7", python_default=True),
        Kind("bigint", lambda n: BigInteger(), st.integers(-(2**40), 2**40)),
        Kind(
            "numeric",
            lambda n: Numeric(10, 2),
            st.decimals(min_value=-99999, max_value=99999, places=2, allow_nan=False, allow_infinity=False),
        ),
        # halves are exact in MySQL's 4-byte FLOAT too
        Kind("float", lambda n: Float(), st.integers(-2000, 2000).map(lambda i: i / 2), filterable=False),
        Kind("string", lambda n: String(30), _text, server_default="dflt", python_default=True),
        Kind("text", lambda n: Text(), _text, filterable=False),
        Kind("bool", lambda n: Boolean(), st.booleans()),
        Kind("date", lambda n: Date(), st.dates(dt.date(2000, 1, 1), dt.date(2030, 12, 31))),
        Kind(
            "datetime",
            lambda n: DateTime(),
            st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2030, 12, 31)).map(
                lambda d: d.replace(microsecond=0)
            ),
        ),
        Kind("uuid", lambda n: Uuid(), st.uuids()),
        Kind("enum", lambda n: Enum(Color, name=f"{n}_t"), st.sampled_from(Color)),
        Kind(
            "enum_values",
            lambda n: Enum(Color, name=f"{n}_t", values_callable=_values),
            st.sampled_from(Color),
        ),
        Kind("enum_nonnative", lambda n: Enum(Color, native_enum=False, length=10), st.sampled_from(Color)),
        Kind(
            "json",
            lambda n: JSON(),
            st.dictionaries(st.sampled_from("abc"), st.integers(-5, 5) | _text, max_size=3),
            filterable=False,
        ),
        Kind("bytes", lambda n: LargeBinary(), st.binary(min_size=0, max_size=8), filterable=False),
        Kind(
            "cents",
            lambda n: Cents(),
            st.decimals(min_value=-9999, max_value=9999, places=2, allow_nan=False, allow_infinity=False),
        ),
    ]
}


@dataclass(frozen=True)
class ColSpec:
    name: str
    kind: str
    key: str | None  # Column(key=...): the attribute key differs from the column name
    default: str  # "none" | "python" | "server"


@dataclass(frozen=True)
class ModelSpec:
    cols: tuple[ColSpec, ...]
    inheritance: str  # "none" | "single" | "joined"

    def attr(self, col: ColSpec) -> str:
        return col.key or col.name


@st.composite
def model_specs(draw: st.DrawFn) -> ModelSpec:
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=5))
    cols = []
    for i, kind in enumerate(kinds):
        k = KINDS[kind]
        defaults = (
            ["none"] + (["python"] if k.python_default else []) + (["server"] if k.server_default else [])
        )
        cols.append(
            ColSpec(
                name=f"c{i}_{kind}",
                kind=kind,
                key=draw(st.sampled_from([None, f"a{i}"])),
                default=draw(st.sampled_from(defaults)),
            )
        )
    return ModelSpec(tuple(cols), draw(st.sampled_from(["none", "none", "single", "joined"])))


@dataclass
class Built:
    """The mapped classes of one example: ``target`` is the class operations run on."""

    spec: ModelSpec
    metadata: MetaData
    base: Any
    target: Any
    tables: list[Any]
    counter: Any = field(default_factory=lambda: itertools.count(1))

    def reset_defaults(self) -> None:
        self.counter = itertools.count(1)


_serial = itertools.count()


def build(spec: ModelSpec) -> Built:
    """Declare ``spec`` on a registry of its own (imperative mapping, no class-name clashes)."""
    n = next(_serial)
    prefix = f"sp{RUN}_{n}"
    metadata = MetaData()
    reg = registry(metadata=metadata)
    built: Built

    def next_int() -> int:
        return next(built.counter)

    def next_str() -> str:
        return f"py{next(built.counter)}"

    def column(c: ColSpec) -> Column[Any]:
        kind = KINDS[c.kind]
        kwargs: dict[str, Any] = {"nullable": True}
        if c.key:
            kwargs["key"] = c.key
        if c.default == "python":
            kwargs["default"] = next_int if c.kind == "int" else next_str
        elif c.default == "server":
            kwargs["server_default"] = kind.server_default
        return Column(c.name, kind.make(f"{prefix}_{c.name}"), **kwargs)

    parent_cols = [column(c) for c in spec.cols]
    if spec.inheritance == "none":
        table = _table(metadata, f"{prefix}_t", [Column("id", Integer, primary_key=True), *parent_cols])
        target = type(f"M{n}", (), {})
        reg.map_imperatively(target, table)
        built = Built(spec, metadata, reg, target, [table])
        return built
    discriminator = Column("kind", String(10), nullable=False)
    parent_table = _table(
        metadata, f"{prefix}_p", [Column("id", Integer, primary_key=True), discriminator, *parent_cols]
    )
    parent = type(f"P{n}", (), {})
    reg.map_imperatively(
        parent, parent_table, polymorphic_on=parent_table.c.kind, polymorphic_identity="parent"
    )
    child = type(f"C{n}", (parent,), {})
    if spec.inheritance == "single":
        parent_table.append_column(Column("extra", Integer, nullable=True))
        reg.map_imperatively(child, inherits=parent, polymorphic_identity="child")
        tables = [parent_table]
    else:
        child_table = _table(
            metadata,
            f"{prefix}_c",
            [
                Column("id", Integer, ForeignKey(parent_table.c.id), primary_key=True),
                Column("extra", Integer),
            ],
        )
        reg.map_imperatively(child, child_table, inherits=parent, polymorphic_identity="child")
        tables = [parent_table, child_table]
    built = Built(spec, metadata, reg, child, tables)
    return built


def _table(metadata: MetaData, name: str, cols: list[Any]) -> Any:
    return Table(name, metadata, *cols)


# --------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Op:
    name: str
    args: dict[str, Any]


def row_values(spec: ModelSpec, inherit: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Values for a new row: any subset of the columns (missing ones take their default or NULL)."""
    fields = {spec.attr(c): KINDS[c.kind].values for c in spec.cols}
    if inherit:
        fields["extra"] = st.integers(-50, 50)
    return st.fixed_dictionaries({}, optional=fields)  # type: ignore[arg-type]


@st.composite
def filters(draw: st.DrawFn, spec: ModelSpec, inherit: bool) -> dict[str, Any]:
    """One equality filter: on the primary key or a filterable column."""
    choices: list[tuple[str, st.SearchStrategy[Any]]] = [("id", st.integers(1, 6))]
    choices += [(spec.attr(c), KINDS[c.kind].values) for c in spec.cols if KINDS[c.kind].filterable]
    if inherit:
        choices.append(("extra", st.integers(-50, 50)))
    name, values = draw(st.sampled_from(choices))
    return {name: draw(values)}


@st.composite
def operations(draw: st.DrawFn, spec: ModelSpec) -> list[Op]:
    inherit = spec.inheritance != "none"
    rows = row_values(spec, inherit)
    out: list[Op] = [Op("create_many", {"rows": draw(st.lists(rows, min_size=1, max_size=4))})]
    for _ in range(draw(st.integers(2, 6))):
        name = draw(
            st.sampled_from(
                [
                    "create_one",
                    "create_many",
                    "insert_many",
                    "get",
                    "find",
                    "find_mappings",
                    "count",
                    "exists",
                    "update_where",
                    "delete_where",
                    "paginate",
                ]
            )
        )
        if name == "create_one":
            out.append(Op(name, {"row": draw(rows)}))
        elif name in ("create_many", "insert_many"):
            out.append(Op(name, {"rows": draw(st.lists(rows, min_size=1, max_size=3))}))
        elif name == "get":
            out.append(Op(name, {"id": draw(st.integers(1, 8))}))
        elif name in ("find", "find_mappings", "count", "exists", "delete_where"):
            out.append(Op(name, {"filters": draw(filters(spec, inherit))}))
        elif name == "update_where":
            values = draw(rows.filter(bool))
            out.append(Op(name, {"values": values, "filters": draw(filters(spec, inherit))}))
        else:
            out.append(Op(name, {"page": draw(st.integers(1, 3)), "size": draw(st.integers(1, 3))}))
    return out


# --------------------------------------------------------------------------- normalising answers


def norm(value: Any) -> Any:
    """A comparable form of a value that keeps its Python type."""
    if value is None:
        return None
    if isinstance(value, decimal.Decimal):
        return ("Decimal", str(value))
    if isinstance(value, dt.datetime):
        return ("datetime", value.isoformat())
    if isinstance(value, (dict, list)):
        return ("json", json.dumps(value, sort_keys=True, default=str))
    if isinstance(value, enum.Enum):
        return ("enum", type(value).__name__, value.name)
    if isinstance(value, memoryview):
        return ("bytes", bytes(value))
    return (type(value).__name__, value)


def obj_state(obj: Any) -> Any:
    """An object's loaded column attributes, by attribute key."""
    if obj is None:
        return None
    state = inspect(obj)
    keys = [a.key for a in state.mapper.column_attrs if a.key in state.dict]
    return ("obj", type(obj).__name__, {k: norm(state.dict[k]) for k in sorted(keys)})


def error_of(exc: BaseException) -> Any:
    return ("error", type(translate_error(exc)).__name__)


async def table_state(db: AsyncDatabase, built: Built) -> list[Any]:
    out = []
    async with db.engine.connect() as conn:
        for table in built.tables:
            rows = await conn.execute(select(table).order_by(table.c.id))
            out.append([tuple(norm(v) for v in row) for row in rows])
    return out


# --------------------------------------------------------------------------- the two sides


def _new(built: Built, row: dict[str, Any]) -> Any:
    obj = built.target()
    for k, v in row.items():
        setattr(obj, k, v)
    return obj


async def dsg_step(ops: DatabaseOperations, built: Built, op: Op) -> Any:
    m = built.target
    a = op.args
    if op.name == "create_one":
        return obj_state(await ops.create_one(_new(built, a["row"])))
    if op.name == "create_many":
        return [obj_state(o) for o in await ops.create_many([_new(built, r) for r in a["rows"]])]
    if op.name == "insert_many":
        return await ops.insert_many(m, a["rows"])
    if op.name == "get":
        return obj_state(await ops.get(m, a["id"]))
    if op.name == "find":
        return sorted((obj_state(o) for o in await ops.find(m, **a["filters"])), key=repr)
    if op.name == "find_mappings":
        found = await ops.find_mappings(m, **a["filters"])
        return sorted(({k: norm(v) for k, v in row.items()} for row in found), key=repr)
    if op.name == "count":
        return await ops.count(m, **a["filters"])
    if op.name == "exists":
        return await ops.exists(m, **a["filters"])
    if op.name == "update_where":
        return await ops.update_where(m, a["values"], **a["filters"])
    if op.name == "delete_where":
        return await ops.delete_where(m, **a["filters"])
    page = await ops.paginate(m, page=a["page"], page_size=a["size"])
    return ("page", page.total, [obj_state(o) for o in page.items])


async def hand_step(db: AsyncDatabase, built: Built, op: Op) -> Any:
    """``op`` written by hand on SQLAlchemy's AsyncSession: one session and commit per call."""
    m = built.target
    a = op.args
    async with AsyncSession(db.engine, expire_on_commit=False) as s:
        if op.name == "create_one":
            obj = _new(built, a["row"])
            s.add(obj)
            await s.commit()
            return obj_state(obj)
        if op.name == "create_many":
            objs = [_new(built, r) for r in a["rows"]]
            s.add_all(objs)
            await s.commit()
            return [obj_state(o) for o in objs]
        if op.name == "insert_many":
            await s.execute(insert(m), a["rows"])
            await s.commit()
            return len(a["rows"])
        if op.name == "get":
            return obj_state(await s.get(m, a["id"]))
        if op.name == "find":
            found = (await s.execute(select(m).filter_by(**a["filters"]))).scalars().all()
            return sorted((obj_state(o) for o in found), key=repr)
        if op.name == "find_mappings":
            cols = [getattr(m, attr.key) for attr in inspect(m).column_attrs]
            found = (await s.execute(select(*cols).filter_by(**a["filters"]))).mappings().all()
            return sorted(({k: norm(v) for k, v in row.items()} for row in found), key=repr)
        if op.name == "count":
            sub = select(m).filter_by(**a["filters"]).subquery()
            return int((await s.execute(select(func.count()).select_from(sub))).scalar_one())
        if op.name == "exists":
            return (await s.execute(select(m).filter_by(**a["filters"]).limit(1))).first() is not None
        if op.name == "update_where":
            stmt = update(m).filter_by(**a["filters"]).values(**a["values"])
            done = await s.execute(stmt.execution_options(synchronize_session=False))
            await s.commit()
            return done.rowcount  # type: ignore[attr-defined]
        if op.name == "delete_where":
            done = await s.execute(
                delete(m).filter_by(**a["filters"]).execution_options(synchronize_session=False)
            )
            await s.commit()
            return done.rowcount  # type: ignore[attr-defined]
        base = select(m).order_by(*inspect(m).primary_key)
        total = int(
            (await s.execute(select(func.count()).select_from(base.order_by(None).subquery()))).scalar_one()
        )
        items = (await s.execute(base.limit(a["size"]).offset((a["page"] - 1) * a["size"]))).scalars().all()
        return ("page", total, [obj_state(o) for o in items])


async def run_side(db: AsyncDatabase, built: Built, steps: list[Op], step: Callable[[Op], Any]) -> list[Any]:
    """Fresh tables, then each step's answer (or typed error) and the stored state after it."""
    async with db.engine.begin() as conn:
        await conn.run_sync(built.metadata.drop_all)
        await conn.run_sync(built.metadata.create_all)
    built.reset_defaults()
    trace: list[Any] = []
    for op in steps:
        try:
            answer = await step(op)
        except (DatabaseError, Exception) as exc:  # the typed class is compared, not the message
            answer = error_of(exc)
        trace.append((op.name, answer, await table_state(db, built)))
    return trace


# --------------------------------------------------------------------------- backends


PROP_BACKENDS = [*BACKENDS, *(["mariadb_asyncmy"] if "mariadb" in BACKENDS else [])]


@pytest.fixture(params=PROP_BACKENDS)
async def prop_db(
    request: pytest.FixtureRequest, strategy: str, tmp_path: Path
) -> AsyncIterator[AsyncDatabase]:
    """A database of each backend on the executor strategy of the test (tests/conftest.py)."""
    name = str(request.param)
    server = "mariadb" if name.startswith("mariadb") else name
    if server in ("postgresql", "mariadb"):
        problem = await backend_problem(server)
        if problem:
            unreachable(server, problem)
    url = backend_url(server, tmp_path)
    if name == "mariadb_asyncmy":
        url = make_url(MYSQL_URL).set(drivername="mysql+asyncmy").render_as_string(hide_password=False)
    db = AsyncDatabase(DBConfig({"database_uri": url, "compiled_statements": strategy == "compiled"}))
    yield db
    assert db.pool_status()["checked_out"] == 0
    await db.disconnect()


def same(got: Any, want: Any) -> bool:
    """Equal, except that a dsg_lib object may have loaded more attributes than the one by hand.

    By hand, an attribute the INSERT did not send (a server default, a column
    left out) is expired after the commit and cannot be read without another
    query; dsg_lib may hand it over loaded. Every attribute the hand-written
    object has must be there with the same value and type.
    """
    if (
        isinstance(got, tuple)
        and isinstance(want, tuple)
        and len(got) == len(want) == 3
        and got[:1] == ("obj",)
    ):
        if got[1] != want[1] or not isinstance(got[2], dict) or not isinstance(want[2], dict):
            return False
        return all(k in got[2] and got[2][k] == v for k, v in want[2].items())
    if isinstance(got, (list, tuple)) and isinstance(want, (list, tuple)):
        return (
            type(got) is type(want)
            and len(got) == len(want)
            and all(same(g, w) for g, w in zip(got, want, strict=True))
        )
    return bool(got == want)


def _given(spec: ModelSpec, op: Op) -> set[str]:
    """The column kinds ``op`` is given values for: its filters, new values and rows."""
    names: set[str] = set()
    for part in ("filters", "values", "row"):
        names |= set(op.args.get(part, {}))
    for row in op.args.get("rows", []):
        names |= set(row)
    by_attr = {spec.attr(c): c for c in spec.cols}
    return {by_attr[n].kind for n in names if n in by_attr}


def _involved(spec: ModelSpec, op: Op) -> set[str]:
    """The column kinds ``op`` touches: the ones it is given, and every column it writes or reads."""
    kinds = _given(spec, op)
    if op.name in ("create_one", "create_many", "insert_many", "get", "find", "paginate", "find_mappings"):
        kinds |= {c.kind for c in spec.cols}
    return kinds


def known_difference(spec: ModelSpec, op: Op, got: Any) -> str | None:
    """The known, still open class a difference in ``op`` (dsg_lib answered ``got``) on ``spec``
    belongs to, or None: an unknown difference, which fails the test. None is open today: issue
    23's executor items (4, 5, 10-14) and insert_many of a subclass are fixed, and a difference
    fails."""
    return None


#: differences of known classes met in this run, by class (reported at the end, see docs/testing.md)
KNOWN_SEEN: dict[str, int] = {}
BY_BACKEND: dict[tuple[str, str], int] = {}
EXAMPLES_RUN: dict[str, int] = {}
STRICT = os.environ.get("DSG_SEMANTICS_STRICT", "") == "1"
#: record unknown differences too instead of failing (a survey campaign, see docs/testing.md)
SURVEY = os.environ.get("DSG_SEMANTICS_SURVEY", "") == "1"


def _label(db: AsyncDatabase) -> str:
    config = db.db_config
    strategy = "sqlalchemy" if config.option("compiled_statements") is False else "compiled"
    return f"{db.engine.dialect.name}+{db.engine.dialect.driver}/{strategy}"


async def compare(db: AsyncDatabase, spec: ModelSpec, steps: list[Op], *, strict: bool = False) -> list[str]:
    """Run ``steps`` both ways; the first step that differs (later ones start from another state).

    A difference of a known class (`known_difference`) is counted in
    `KNOWN_SEEN` and not reported, unless ``DSG_SEMANTICS_STRICT=1``.
    """
    built = build(spec)
    ops = DatabaseOperations(db)
    try:
        mine = await run_side(db, built, steps, lambda op: dsg_step(ops, built, op))
        theirs = await run_side(db, built, steps, lambda op: hand_step(db, built, op))
    finally:
        async with db.engine.begin() as conn:
            await conn.run_sync(built.metadata.drop_all)
    for i, (op, got, want) in enumerate(zip(steps, mine, theirs, strict=True)):
        if same(got, want):
            continue
        known = None if strict else known_difference(spec, op, got[1])
        if known is None and not strict and _only_ids_after_a_failed_insert(db, mine[:i], got, want):
            known = (
                "MySQL/MariaDB: AUTO_INCREMENT ids differ after an insert that failed on both sides "
                "(how many ids a failed statement consumes is the server's, not part of the contract)"
            )
        if SURVEY and not strict:
            name = known or f"unknown: {op.name} {sorted(_involved(spec, op))} {spec.inheritance}"
            if name not in KNOWN_SEEN:
                shown = f"{spec}\n  {steps[: i + 1]}\n  dsg_lib  {got[1]!r}\n  by hand  {want[1]!r}"
                print(f"\n{name} [{_label(db)}]\n  {shown}")
            KNOWN_SEEN[name] = KNOWN_SEEN.get(name, 0) + 1
            BY_BACKEND[(name, _label(db))] = BY_BACKEND.get((name, _label(db)), 0) + 1
            return []
        if known is not None and not STRICT:
            KNOWN_SEEN[known] = KNOWN_SEEN.get(known, 0) + 1
            BY_BACKEND[(known, _label(db))] = BY_BACKEND.get((known, _label(db)), 0) + 1
            return []
        return [
            f"step {i} {got[0]} ({known or 'unknown class'}): dsg_lib {got[1:]!r} != by hand {want[1:]!r}"
        ]
    return []


def _without_ids(answer: Any, state: Any) -> tuple[Any, Any]:
    """An answer and a table state with the primary key values left out."""
    if isinstance(answer, tuple) and answer[:1] == ("obj",) and isinstance(answer[2], dict):
        answer = (*answer[:2], {k: v for k, v in answer[2].items() if k != "id"})
    return answer, [[row[1:] for row in rows] for rows in state]


def _only_ids_after_a_failed_insert(db: AsyncDatabase, before: list[Any], got: Any, want: Any) -> bool:
    """On MySQL/MariaDB, a failed multi-row INSERT may consume ids from the AUTO_INCREMENT
    counter (how many depends on how the rows were sent), so later new rows get other ids
    while everything else is the same."""
    if db.engine.dialect.name not in ("mysql", "mariadb"):
        return False
    if not any(isinstance(answer, tuple) and answer[:1] == ("error",) for _, answer, _ in before):
        return False
    return same(_without_ids(*got[1:]), _without_ids(*want[1:]))


@pytest.fixture(scope="module", autouse=True)
def _report_known() -> Any:
    yield
    if EXAMPLES_RUN:
        lines = "\n".join(f"  {n:5d}  {name}" for name, n in sorted(EXAMPLES_RUN.items()))
        print(f"\nexamples run, by backend/strategy:\n{lines}")
    if KNOWN_SEEN:
        lines = "\n".join(f"  {n:5d}  {name}" for name, n in sorted(KNOWN_SEEN.items()))
        print(f"\ndifferences (examples) by class:\n{lines}")
        lines = "\n".join(f"  {n:5d}  {name}  [{label}]" for (name, label), n in sorted(BY_BACKEND.items()))
        print(f"\nby class and backend/strategy:\n{lines}")


@settings(PROFILE)
@given(data=st.data())
async def test_operations_equal_hand_written_sqlalchemy(prop_db: AsyncDatabase, data: st.DataObject) -> None:
    spec = data.draw(model_specs(), label="model")
    steps = data.draw(operations(spec), label="operations")
    EXAMPLES_RUN[_label(prop_db)] = EXAMPLES_RUN.get(_label(prop_db), 0) + 1
    diffs = await compare(prop_db, spec, steps)
    assert not diffs, "\n".join(diffs)


# --------------------------------------------------------------------------- examples of fixed classes

S = ColSpec
#: name -> (model, steps, what it proves): one concrete example per class the property test
#: found and that is fixed since (issue 23); each must give the same answers both ways
EXAMPLES: dict[str, tuple[ModelSpec, list[Op], str]] = {
    "item4_single_table": (
        ModelSpec((S("c0_bigint", "bigint", None, "none"),), "single"),
        [Op("create_many", {"rows": [{}, {}]}), Op("find_mappings", {"filters": {"id": 1}})],
        "issue 23 item 4: single-table inheritance",
    ),
    "item5_joined_id": (
        ModelSpec((S("c0_uuid", "uuid", "a0", "none"),), "joined"),
        [Op("create_many", {"rows": [{}, {}]}), Op("find", {"filters": {"id": 1}})],
        "issue 23 item 5: joined inheritance, id of the subclass",
    ),
    "item11_typedecorator": (
        ModelSpec((S("c0_cents", "cents", None, "none"),), "none"),
        [Op("create_many", {"rows": [{"c0_cents": decimal.Decimal("1.50")}]})],
        "issue 23 item 11: TypeDecorator values whose Python type differs",
    ),
    "item12_column_key": (
        ModelSpec((S("c0_int", "int", "a0", "none"),), "none"),
        [Op("create_many", {"rows": [{"a0": 1}]}), Op("find_mappings", {"filters": {"a0": 1}})],
        "issue 23 item 12: find_mappings keys with Column(key=)",
    ),
    "item14_sqlite_integral_float": (
        ModelSpec((S("c0_float", "float", "a0", "none"),), "none"),
        [Op("create_one", {"row": {"a0": 0.0}})],
        "issue 23 item 14: create_one on SQLite returned an integral Float as int",
    ),
    "create_many_values_as_given": (
        ModelSpec((S("c0_cents", "cents", None, "none"), S("c1_int", "int", None, "none")), "none"),
        [
            Op(
                "create_many",
                {
                    "rows": [
                        {"c0_cents": decimal.Decimal("-4.79"), "c1_int": 243},
                        {"c0_cents": decimal.Decimal("0.00")},
                    ]
                },
            )
        ],
        "issue 23 item 14 (create_many, rows of different keys): the caller's 0.00 is kept, not Decimal('0')",
    ),
    "insert_many_subclass": (
        ModelSpec((S("c0_bigint", "bigint", None, "none"),), "single"),
        [Op("insert_many", {"rows": [{"c0_bigint": 1}]})],
        "insert_many(subclass) fills the discriminator",
    ),
    "insert_many_joined_subclass": (
        ModelSpec((S("c0_bigint", "bigint", None, "none"),), "joined"),
        [Op("insert_many", {"rows": [{"c0_bigint": 1}, {"c0_bigint": 2}]}), Op("count", {"filters": {}})],
        "insert_many(subclass) writes the parent rows of joined inheritance",
    ),
    "cents_kept_as_given": (
        ModelSpec((S("c0_int", "int", None, "none"), S("c1_cents", "cents", None, "none")), "none"),
        [Op("create_many", {"rows": [{"c1_cents": decimal.Decimal("0.00")}]})],
        "a created object keeps the caller's values (only unloaded columns are refreshed)",
    ),
    "ids_after_rows_of_different_keys": (
        ModelSpec(
            (
                S("c0_bigint", "bigint", None, "none"),
                S("c1_bigint", "bigint", None, "none"),
                S("c2_uuid", "uuid", None, "none"),
                S("c3_bigint", "bigint", None, "none"),
            ),
            "none",
        ),
        [
            Op(
                "create_many",
                {
                    "rows": [
                        {"c2_uuid": uuid.UUID(int=1)},
                        {"c0_bigint": 0, "c3_bigint": 0, "c2_uuid": uuid.UUID(int=2)},
                        {"c0_bigint": 0, "c2_uuid": uuid.UUID(int=3)},
                        {"c0_bigint": 0, "c3_bigint": 0, "c2_uuid": uuid.UUID(int=4)},
                    ]
                },
            ),
            Op(
                "insert_many",
                {
                    "rows": [
                        {"c0_bigint": 0, "c3_bigint": 0, "c1_bigint": 0, "c2_uuid": uuid.UUID(int=5)},
                        {"c0_bigint": 0, "c2_uuid": uuid.UUID(int=6), "c3_bigint": 0, "c1_bigint": 0},
                    ]
                },
            ),
            Op("create_one", {"row": {}}),
        ],
        "MariaDB: the id a create_one gets after batches of rows with different keys",
    ),
}


@pytest.mark.parametrize("example", sorted(EXAMPLES))
async def test_fixed_difference_example(prop_db: AsyncDatabase, example: str) -> None:
    """One concrete example per class the property test found, now the same both ways."""
    spec, steps, _ = EXAMPLES[example]
    diffs = await compare(prop_db, spec, steps, strict=True)
    assert not diffs, "\n".join(diffs)
