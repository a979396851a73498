"""Bulk insert and upsert paths: executemany, PostgreSQL COPY, chunking (private)."""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, null
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.schema import ColumnDefault

from ..backends import SIZES_CHECKED, Backend, backend_for, holds_small_values, pooled_connection
from ..errors import ConstraintViolationError, InvalidInputError
from ..filters import column_checker, is_json, model_columns, value_checker

#: bind parameters one statement may carry, per backend
DEFAULT_CHUNK_ROWS = 10_000
#: below this many rows a plain INSERT beats COPY's extra type-introspection round trip
COPY_MIN_ROWS = 200


def table_of(model: Any) -> Table:
    table = getattr(model, "__table__", None)
    if not isinstance(table, Table):
        raise InvalidInputError(f"expected a mapped model class, got {model!r}")
    return table


class RowChecker:
    """Checks input rows (dicts of column keys) for one model, with per-column fast checkers."""

    def __init__(self, model: Any, dialect: str | None = None) -> None:
        self.model = model
        self.columns = model_columns(model)
        self._checkers = {key: value_checker(column, key, dialect) for key, column in self.columns.items()}
        self._column_checks = {key: column_checker(column, dialect) for key, column in self.columns.items()}
        self._json_keys = frozenset(key for key, column in self.columns.items() if is_json(column))
        self._small_keys = frozenset(k for k, c in self.columns.items() if holds_small_values(c.type))
        #: attribute key -> Column key where they differ (``name = mapped_column("user_name")``)
        self.renames = {key: column.key for key, column in self.columns.items() if column.key != key}

    def by_column_key(self, group: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows keyed by attribute key, keyed as a Core ``insert(table)`` wants: by Column key."""
        renames = self.renames
        if not renames:
            return group
        return [{renames.get(key, key): value for key, value in row.items()} for row in group]

    def insert_options(self, group: Sequence[Mapping[str, Any]], validate: bool) -> dict[str, Any]:
        """Execution options for inserting a checked ``group`` (one key set, see `prepare_groups`).

        Rows whose every value was checked against a column that holds only
        small values need no MySQL/MariaDB size check (``backends/_size_guard``) at execution.
        """
        if validate and group and self._small_keys.issuperset(group[0].keys()):
            return {SIZES_CHECKED: True}
        return {}

    def prepare_groups(
        self, rows: Sequence[Any], validate: bool, start: int = 0
    ) -> list[list[dict[str, Any]]]:
        """`prepare` for a chunk of rows (``start``: the index of the first, for errors), split
        into runs that share one key set (one statement shape each, see `group_by_keys`).

        Dicts with one key set whose every column passes its column check
        (`column_checker`: C-level loops over the column) are valid as given
        and are passed on unchanged, as one run; anything else is checked row
        by row, with the same results and errors.
        """
        if validate and isinstance(rows, list) and self._valid_as_given(rows):
            return [rows]
        return group_by_keys([self.prepare(row, validate, start + i) for i, row in enumerate(rows)])

    def _valid_as_given(self, rows: list[Any]) -> bool:
        if not rows or set(map(type, rows)) != {dict}:
            return False
        keys = rows[0].keys()
        checks = [(key, self._column_checks.get(key)) for key in keys]
        if not all(check for _, check in checks):
            return False  # an unknown key, or a column type without a column check
        if not all(map(keys.__eq__, map(dict.keys, rows))):  # C-level loops, like the checks
            return False
        return all(check(list(map(itemgetter(key), rows))) for key, check in checks if check is not None)

    def prepare(self, row: Any, validate: bool, index: int) -> dict[str, Any]:
        """Return ``row`` as a dict of checked values, or raise ``InvalidInputError``."""
        if not isinstance(row, Mapping):
            raise InvalidInputError(
                f"row {index}: expected a dict of column values, got {type(row).__name__}"
            )
        checkers = self._checkers
        if not validate:
            if not checkers.keys() >= row.keys():
                self._unknown(row, index)
            unchecked = dict(row)
            for key in self._json_keys & unchecked.keys():
                if unchecked[key] is None:
                    unchecked[key] = null()  # the one meaning of None in JSON: SQL NULL
            return unchecked
        try:
            return {key: checkers[key](value) for key, value in row.items()}
        except KeyError:
            self._unknown(row, index)
            raise  # pragma: no cover - _unknown always raises
        except InvalidInputError as exc:
            raise InvalidInputError(f"row {index}: {exc.details}") from None
        except ConstraintViolationError as exc:  # a NULL for a NOT NULL column
            raise ConstraintViolationError(
                f"row {index}: {exc.details}", constraint=exc.constraint, kind=exc.kind, columns=exc.columns
            ) from None

    def _unknown(self, row: Mapping[Any, Any], index: int) -> None:
        key = next(k for k in row if not isinstance(k, str) or k not in self._checkers)
        raise InvalidInputError(
            f"row {index}: {str(key)[:60]!r} is not a column of {self.model.__name__}; "
            f"columns: {', '.join(sorted(self.columns))}"
        )


async def iter_chunks(rows: Iterable[Any] | AsyncIterable[Any], size: int) -> AsyncIterator[list[Any]]:
    """Yield lists of at most ``size`` rows from a sync or async iterable."""
    chunk: list[Any] = []
    if isinstance(rows, AsyncIterable):
        async for row in rows:
            chunk.append(row)
            if len(chunk) >= size:
                yield chunk
                chunk = []
    else:
        if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Iterable):
            raise InvalidInputError("rows must be an iterable of dicts, not a single value")
        for row in rows:
            chunk.append(row)
            if len(chunk) >= size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def chunk_rows_for(backend: Backend, n_columns: int, requested: int | None, fixed: int = 0) -> int:
    """Rows per multi-VALUES statement that stay under the bind-parameter limit.

    ``n_columns`` is the parameters each row binds, ``fixed`` those the
    statement binds once (see `params_per_row`).
    """
    limit = max(1, (backend.bind_limit - fixed) // max(1, n_columns))
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise InvalidInputError(f"chunk_size must be an int >= 1, got {requested!r}")
        return min(requested, limit)
    return min(limit, DEFAULT_CHUNK_ROWS)


#: share of ``max_allowed_packet`` one statement may fill: values can grow up to 2x when
#: escaped (quotes, backslashes, binary) and the SQL text itself takes room too
PACKET_BUDGET_SHARE = 0.5
#: estimated bytes per value besides its own data (separators, quotes, placeholders)
VALUE_OVERHEAD = 8
_packet_sizes: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


async def packet_budget(conn: AsyncConnection) -> int | None:
    """Bytes one MySQL/MariaDB statement may carry; ``None`` on other backends.

    ``@@max_allowed_packet`` is read once per engine and cached.
    """
    if not backend_for(conn.dialect.name).packet_limited:
        return None
    engine = conn.sync_engine
    size = _packet_sizes.get(engine)
    if size is None:
        size = int((await conn.exec_driver_sql("SELECT @@max_allowed_packet")).scalar_one())
        _packet_sizes[engine] = size
    return int(size * PACKET_BUDGET_SHARE)


def estimated_bytes(row: Mapping[str, Any]) -> int:
    """A cheap upper estimate of the bytes ``row``'s values take in a statement."""
    total = 0
    for value in row.values():
        if value.__class__ is str:
            total += len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
        elif isinstance(value, (bytes, bytearray, memoryview)):
            total += 2 * len(value)  # escaped or hex-encoded
        elif value is not None and not isinstance(value, (int, float, bool)):
            total += len(str(value))
        total += VALUE_OVERHEAD
    return total


def params_per_row(conn: AsyncConnection, build: Any, sample: dict[str, Any]) -> tuple[int, int]:
    """``(per_row, fixed)`` bind parameters of the statement ``build(rows)`` really compiles to.

    SQLAlchemy adds a parameter per row for every column with a Python-side
    default that the rows leave out, and ``ON CONFLICT`` clauses may add
    their own: counting the compiled statement for one and two rows covers
    them all.
    """
    one = len(build([sample]).compile(dialect=conn.dialect).params)
    two = len(build([sample, sample]).compile(dialect=conn.dialect).params)
    per_row = max(1, two - one)
    return per_row, max(0, one - per_row)


def sized_chunks(
    rows: Sequence[dict[str, Any]], max_rows: int, max_bytes: int | None
) -> Iterator[Sequence[dict[str, Any]]]:
    """Split ``rows`` into runs of at most ``max_rows`` rows and (estimated) ``max_bytes`` bytes.

    A single row over ``max_bytes`` goes alone: the database decides about it.
    """
    if max_bytes is None:
        for start in range(0, len(rows), max_rows):
            yield rows[start : start + max_rows]
        return
    start = size = 0
    for index, row in enumerate(rows):
        row_bytes = estimated_bytes(row)
        if index > start and (index - start >= max_rows or size + row_bytes > max_bytes):
            yield rows[start:index]
            start, size = index, 0
        size += row_bytes
    if start < len(rows):
        yield rows[start:]


def group_by_keys(rows: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split rows into runs that share the same key set (one statement shape each)."""
    groups: list[list[dict[str, Any]]] = []
    last: tuple[str, ...] | None = None
    for row in rows:
        keys = tuple(row)
        if keys != last:
            groups.append([])
            last = keys
        groups[-1].append(row)
    return groups


def _python_defaults(table: Table) -> dict[str, Any] | None:
    """Column key -> ColumnDefault for Python-side defaults; None if any is a SQL expression."""
    defaults: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if default is None:
            continue
        if not isinstance(default, ColumnDefault) or default.is_clause_element or default.is_sequence:
            return None
        defaults[column.key] = default
    return defaults


async def copy_insert(conn: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]]) -> bool:
    """Insert with asyncpg's binary COPY. Returns False (nothing done) if COPY cannot be used."""
    defaults = _python_defaults(table)
    if defaults is None or not rows:
        return False
    keys = list(rows[0])
    if any(len(r) != len(keys) or any(k not in r for k in keys) for r in rows):
        return False
    fill = [k for k in defaults if k not in keys]
    columns = [table.columns[k] for k in keys + fill]
    dialect = conn.dialect
    processors = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
    if any(c.autoincrement is True and c.key in fill for c in columns):
        return False

    def records() -> Iterator[tuple[Any, ...]]:
        for row in rows:
            values = [row[k] for k in keys]
            for k in fill:
                default = defaults[k]
                values.append(default.arg(None) if default.is_callable else default.arg)
            yield tuple(
                p(v) if p is not None and v is not None else v
                for p, v in zip(processors, values, strict=True)
            )

    raw = await pooled_connection(conn)
    driver: Any = raw.driver_connection
    autocommit = conn.sync_connection is not None and (
        conn.sync_connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
    )
    if not autocommit and not driver.is_in_transaction():
        # COPY must run inside the caller's transaction, not commit by itself: the
        # driver adapter sends BEGIN lazily, with the first statement it executes.
        await conn.exec_driver_sql("SELECT 1")
    await driver.copy_records_to_table(
        table.name,
        records=records(),
        columns=[c.name for c in columns],
        schema_name=table.schema,
    )
    return True


def check_upsert_args(
    model: Any, conflict: Any, update: Any, sample_keys: Sequence[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Validate ``conflict`` / ``update`` column lists; default update = every non-conflict key."""
    columns = model_columns(model)
    if isinstance(conflict, str):
        conflict = (conflict,)
    if not conflict or not all(isinstance(c, str) and c in columns for c in conflict):
        raise InvalidInputError(
            f"conflict must name unique columns of {model.__name__}; columns: {', '.join(sorted(columns))}"
        )
    conflict = tuple(conflict)
    if update is None:
        update = tuple(k for k in sample_keys if k not in conflict)
    elif isinstance(update, str):
        update = (update,)
    update = tuple(update)
    for column in update:
        if not isinstance(column, str) or column not in columns:
            raise InvalidInputError(f"update column {str(column)[:60]!r} is not a column of {model.__name__}")
        if column in conflict:
            raise InvalidInputError(f"update column {column!r} is also a conflict column")
    return conflict, update


def check_no_duplicate_keys(rows: Sequence[dict[str, Any]], conflict: Sequence[str]) -> None:
    seen: set[tuple[Any, ...]] = set()
    for index, row in enumerate(rows):
        missing = [c for c in conflict if c not in row]
        if missing:
            raise InvalidInputError(f"row {index}: missing conflict column(s) {', '.join(missing)}")
        key = tuple(row[c] for c in conflict)
        if key in seen:
            raise InvalidInputError(f"row {index}: the same conflict key appears twice in one upsert call")
        seen.add(key)
