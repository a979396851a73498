"""Plain calls outside a transaction in one driver call (private).

SQLAlchemy's asyncio adapters pay per statement for work a lone statement
outside a transaction does not need: aiosqlite one hop to its worker thread
per cursor step (create, execute, fetch, close) and a ROLLBACK when the
connection is released; asyncpg and aiomysql/asyncmy the adapter's cursor
and result machinery (about two thirds of a point read's time on a local
PostgreSQL) and, on MySQL/MariaDB, a COMMIT or ROLLBACK round trip. A read,
or a single-row write that commits by itself, outside ``transaction()``, a
caller's session or a pinned connection needs none of it: the statement is
compiled once by SQLAlchemy (a `CompiledStatement`, cached by the caller per
statement shape) and run with the driver's public call (aiosqlite ``execute_fetchall``,
asyncpg ``fetch``, a cursor's ``execute`` and ``fetchall``): one hop, one
round trip. SQLAlchemy's bind and result processors of the dialect are
applied in Python, so values come back exactly as through SQLAlchemy.

The connection is one of the autocommit engine: no BEGIN/COMMIT (never
PostgreSQL behind PgBouncer, see ``Backend.autocommit_options``). Some of
asyncpg's result processors depend on the column's type OID, which the
server reports: a compiled statement learns them once, from ``prepare()``, before its
first run. On MySQL/MariaDB, values big enough for dsg_lib's size guard
(``_size_guard``) take the SQLAlchemy path, which runs the guard; where an
``isolation_level`` switched the driver's autocommit off, the call commits.

Whether a statement runs here or through SQLAlchemy is decided by the
operations' executor (``operations/_executor.py``), from an allow-list of
shapes; a statement SQLAlchemy would rewrite at execution time (expanding
``IN`` parameters, literal-rendered values, Python-side defaults it
computes) is not compiled here. A read the driver refused runs again through
SQLAlchemy, which raises the usual translated error; a write is sent once
(`run_written`). A cancelled call returns once its statement has stopped
(`_settle`), as through SQLAlchemy, so a cancelled write never lands later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import types
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Mapper, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_dict, instance_state
from sqlalchemy.sql.elements import ClauseElement

from ._catalog import MYSQL_FAMILY, TESTED_DRIVERS
from ._driver import pooled_connection
from ._size_guard import has_large_value
from ._statement_stop import SIDE_CALL_TIMEOUT, StatementStopper

Processor = Callable[[Any], Any] | None


@dataclass
class CompiledStatement:
    """One statement compiled for the driver: SQL text, parameter order and value processors.

    ``results`` is None until the result column types are known (asyncpg:
    learned from the server before the first run, see `_result_processors`).
    """

    statement: Any  # a Select, or an Insert/Update/Delete .. RETURNING
    dialect: Any
    sql: str
    names: tuple[str, ...]
    defaults: tuple[Any, ...]  # the values bound in the statement itself, e.g. by literal()
    binds: tuple[Processor, ...]
    results: tuple[Processor, ...] | None
    stopper: StatementStopper  # stops a cancelled MySQL/MariaDB statement (KILL QUERY)

    def arguments(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        values = (params.get(n, d) for n, d in zip(self.names, self.defaults, strict=True))
        return tuple(v if proc is None else proc(v) for v, proc in zip(values, self.binds, strict=True))


def compile_statement(
    stmt: Any, engine: AsyncEngine, stopper: StatementStopper, schema_map: Mapping[Any, Any] | None = None
) -> CompiledStatement | None:
    """Compile ``stmt`` for ``engine``'s dialect, or None if only SQLAlchemy can run it.

    A ``schema_translate_map`` (the engine's execution option) is rendered into the SQL.
    """
    dialect = engine.dialect
    if schema_map:
        compiled: Any = stmt.compile(
            dialect=dialect, schema_translate_map=dict(schema_map), render_schema_translate=True
        )
    else:
        compiled = stmt.compile(dialect=dialect)
    names = compiled.positiontup
    if names is None or getattr(compiled, "literal_execute_params", None):
        return None
    if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None):
        return None  # defaults SQLAlchemy computes at execution time
    binds = compiled.binds
    if any(name not in binds or binds[name].expanding or binds[name].literal_execute for name in names):
        return None
    return CompiledStatement(
        statement=stmt,
        dialect=dialect,
        sql=compiled.string,
        names=tuple(names),
        defaults=tuple(binds[n].value for n in names),
        binds=tuple(binds[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names),
        # only asyncpg's processors depend on the driver's column types
        results=None if dialect.name == "postgresql" else _result_processors(stmt, dialect, None),
        stopper=stopper,
    )


def _result_processors(stmt: Any, dialect: Any, type_codes: Sequence[Any] | None) -> tuple[Processor, ...]:
    """SQLAlchemy's result processor of each column of ``stmt``, given the driver's type codes."""
    codes = type_codes if type_codes is not None else [None] * len(stmt.exported_columns)
    return tuple(
        c.type.dialect_impl(dialect).result_processor(dialect, code)
        for c, code in zip(stmt.exported_columns, codes, strict=True)
    )


def usable(engine: AsyncEngine) -> bool:
    """True if this module knows ``engine``'s driver call and nothing echoes statements.

    (Event listeners are the executor's to judge: see ``operations/_executor.py``.)
    """
    return (engine.dialect.name, engine.dialect.driver) in TESTED_DRIVERS and not engine.sync_engine.echo


async def fetch(
    conn: AsyncConnection, compiled_stmt: CompiledStatement, params: Mapping[str, Any]
) -> list[Any]:
    """All rows of ``compiled_stmt`` with ``params``: one driver call, values processed like SQLAlchemy's."""
    try:
        return (await _run(conn, compiled_stmt, params))[0]
    except Exception:
        # the statement's error as SQLAlchemy reports it (typed, translated by the caller);
        # a connection that died meanwhile is found dead there, so the read can be retried
        result = await conn.execute(compiled_stmt.statement, dict(params))
        return [tuple(row) for row in result]


async def run_written(
    conn: AsyncConnection,
    compiled_stmt: CompiledStatement,
    params: Mapping[str, Any],
    arguments: tuple[Any, ...],
) -> tuple[list[Sequence[Any]], int]:
    """Run a write (``arguments``: ``compiled_stmt.arguments(params)``): its processed rows and rows matched.

    Sent once: any error, the driver's or one processing the returned row, is raised
    (the statement may have reached the server, so it is never sent again).
    ``RETURNING 1`` counts rows where the dialect has it; on MySQL/MariaDB the
    connection reports rows matched (SQLAlchemy connects with ``FOUND_ROWS``).
    """
    return await _run(conn, compiled_stmt, params, arguments)


async def _run(
    conn: AsyncConnection,
    compiled_stmt: CompiledStatement,
    params: Mapping[str, Any],
    arguments: tuple[Any, ...] | None = None,
) -> tuple[list[Sequence[Any]], int]:
    """The rows of one driver call (processed) and the rows it wrote or matched."""
    if arguments is None:
        arguments = compiled_stmt.arguments(params)
    raw = await pooled_connection(conn)
    driver: Any = raw.driver_connection
    backend = compiled_stmt.dialect.name
    if backend in MYSQL_FAMILY and has_large_value(arguments):  # the size guard decides
        result = await conn.execute(compiled_stmt.statement, dict(params))
        return (list(result) if result.returns_rows else []), result.rowcount
    if compiled_stmt.results is None:  # asyncpg: the column types, once per compiled statement
        attributes = (await driver.prepare(compiled_stmt.sql)).get_attributes()
        codes = [attribute.type.oid for attribute in attributes]
        compiled_stmt.results = _result_processors(compiled_stmt.statement, compiled_stmt.dialect, codes)
    try:
        if backend == "sqlite":
            rows: list[Sequence[Any]] = list(await driver.execute_fetchall(compiled_stmt.sql, arguments))
        elif backend == "postgresql":
            rows = await driver.fetch(compiled_stmt.sql, *arguments)
        else:
            async with driver.cursor() as cursor:
                matched = await cursor.execute(compiled_stmt.sql, arguments)
                rows = list(await cursor.fetchall())
            if not driver.get_autocommit():  # switched off by an isolation level: commit here
                await driver.commit()
    except asyncio.CancelledError:
        await _settle(conn, raw, compiled_stmt)
        raise
    if backend not in MYSQL_FAMILY:
        matched = len(rows)  # the statements that count rows have RETURNING there
    procs = compiled_stmt.results
    if not rows or not procs or not any(procs):
        return rows, matched  # sqlite3 rows are tuples, asyncpg rows are Records (tuple-like)
    # column by column (C-level loops: transpose, map, transpose back), not value by value
    columns = zip(zip(*rows, strict=True), procs, strict=True)
    processed = [values if proc is None else map(proc, values) for values, proc in columns]
    return list(zip(*processed, strict=True)), matched


async def _settle(conn: AsyncConnection, raw: Any, compiled_stmt: CompiledStatement) -> None:
    """After a cancelled call, wait until its statement has stopped, so it cannot land later.

    asyncpg has sent the server a cancel request and runs the connection's
    next statement only once it is through; aiosqlite's worker thread still
    runs the statement: it is interrupted, and the next call queues behind it.
    So one trivial statement is the wait. A connection that does not settle
    within `SIDE_CALL_TIMEOUT` is discarded. aiomysql / asyncmy stop reading
    mid-reply: the server is told ``KILL QUERY`` (`StatementStopper`) and the
    connection is discarded.
    """
    driver: Any = raw.driver_connection
    if compiled_stmt.dialect.name in MYSQL_FAMILY:
        compiled_stmt.stopper.stop(driver, conn.engine.url)
        raw.invalidate()
        await asyncio.shield(compiled_stmt.stopper.settle())
        return

    async def next_statement() -> None:
        if compiled_stmt.dialect.name == "sqlite":
            await driver.interrupt()
            await driver.execute_fetchall("SELECT 1")
        else:
            await driver.execute("SELECT 1")

    try:
        await asyncio.shield(asyncio.wait_for(next_statement(), SIDE_CALL_TIMEOUT))
    except Exception:
        raw.invalidate()


def insert_values(loader: Loader, record: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The column values the ORM would INSERT for a new ``record`` and the Python-side defaults
    among them (attribute key -> value), or None if only a flush can tell.

    Python-side defaults are computed here, once (plain values and SQLAlchemy's
    wrappers of zero-argument callables); SQL expressions given or as defaults,
    values set to None, related objects or context-aware callables need the ORM.
    """
    given = instance_dict(record)
    if any(key in given for key in loader.relationship_keys):
        return None
    values: dict[str, Any] = {}
    assigned: list[tuple[str, Any]] = []
    for key, column in zip(loader.keys, loader.columns, strict=True):
        if key in given:
            value = given[key]
            if value is None or isinstance(value, ClauseElement):
                return None
            values[column.key] = value
            continue
        default = column.default
        if default is None:
            continue
        no_argument = default.is_callable and getattr(default.arg, "__wrapped__", None) is not None
        if not (default.is_scalar or no_argument):
            return None
        assigned.append((key, column))
    computed: dict[str, Any] = {}
    for key, column in assigned:  # only now, when nothing can refuse the record any more
        default = column.default
        value = default.arg if default.is_scalar else default.arg(None)
        values[column.key] = computed[key] = value
    return values, computed


def returned_columns(loader: Loader, given: Iterable[str]) -> tuple[Any, ...] | None:
    """The columns an INSERT of the column keys ``given`` returns (the ones the database makes),
    or None if turning one of them into a Python value could fail after the row is stored.

    A TypeDecorator with its own ``process_result_value`` or an Enum filled by the
    server may refuse the stored value; the ORM would then roll the flush back, so
    such a column takes the SQLAlchemy path.
    """
    keys = set(given)
    columns = tuple(c for c in loader.columns if c.key not in keys)
    return None if any(map(may_refuse_stored, columns)) else columns


def may_refuse_stored(column: Any) -> bool:
    """Whether turning a value the database made for ``column`` into Python could fail: an Enum
    (a server default outside it) or a TypeDecorator with its own ``process_result_value``."""
    kind = column.type
    return isinstance(kind, types.Enum) or (
        isinstance(kind, types.TypeDecorator)
        and type(kind).process_result_value is not types.TypeDecorator.process_result_value
    )


def detach_created(loader: Loader, record: Any, columns: Sequence[Any], row: Sequence[Any]) -> None:
    """Make the new ``record`` what a closed session leaves after inserting it: detached, loaded.

    The values the caller gave (and Python-side defaults) stay as they are, as after a
    flush; the ``columns`` the database made come from ``row``.
    """
    state = instance_dict(record)
    key_of = dict(zip(loader.columns, loader.keys, strict=True))
    for column, value in zip(columns, row, strict=False):
        state[key_of[column]] = value
    make_transient_to_detached(record)


class Loader:
    """Builds detached ORM objects from plain rows of one mapped class, or says it cannot.

    The objects are what a session loading the row and then closing leaves
    behind (``expire_on_commit=False``): every column loaded, an identity
    key, no session; ``session.add(obj)`` later updates the row.
    """

    def __init__(self, mapper: Mapper[Any]) -> None:
        self.mapper = mapper
        self.keys = tuple(prop.key for prop in mapper.column_attrs)
        self.columns = tuple(prop.columns[0] for prop in mapper.column_attrs)
        self.relationship_keys = tuple(rel.key for rel in mapper.relationships)
        self.plain = _plain(mapper) and all(c in self.columns for c in mapper.primary_key)
        self.pk_index = tuple(self.columns.index(c) for c in mapper.primary_key) if self.plain else ()

    @property
    def ok(self) -> bool:
        """Rows can become objects without the ORM: plain mapper, no load/refresh listeners (now)."""
        events = self.mapper.class_manager.dispatch
        return self.plain and not events.load and not events.refresh

    def build(self, rows: Iterable[Sequence[Any]]) -> list[Any]:
        # Values written straight into the instance dict carry no history, so they
        # are committed state; the identity key makes the object detached (what
        # make_transient_to_detached does, without its per-object bookkeeping,
        # which only matters for objects that had attributes set).
        new = self.mapper.class_manager.new_instance
        keys, pk_index = self.keys, self.pk_index
        # the key identity_key_from_primary_key builds, with the class part computed once
        identity_class, _, token = self.mapper.identity_key_from_primary_key(())
        objects = []
        for row in rows:
            obj = new()
            instance_dict(obj).update(zip(keys, row, strict=True))
            instance_state(obj).key = (identity_class, tuple([row[i] for i in pk_index]), token)
            objects.append(obj)
        return objects


_LAZY_OK = ("select", "raise", "raise_on_sql")


def _plain(mapper: Mapper[Any]) -> bool:
    """A single-table mapper whose loading is nothing but copying its columns."""
    table = mapper.local_table
    return (
        mapper.inherits is None
        and mapper.polymorphic_on is None
        and not mapper.with_polymorphic
        and not mapper.composites
        and all(
            len(prop.columns) == 1 and prop.columns[0].table is table and not prop.deferred
            for prop in mapper.column_attrs
        )
        and all(rel.lazy in _LAZY_OK for rel in mapper.relationships)
    )
