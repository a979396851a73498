"""Refuse values too big for their column or for one MySQL/MariaDB packet, before sending (private).

MySQL and MariaDB cap ``TEXT`` / ``BLOB`` at 65,535 bytes (``MEDIUM*`` 16 MB,
``LONG*`` 4 GB) and every statement at ``@@max_allowed_packet``. A value over
the column limit comes back as error 1406; a value over the packet makes the
server drop the connection, which looks like an outage (retry!) for a request
that can never succeed. The guard checks the parameters of every statement on
the engine's own cursor-execute hook, so ORM flushes, bulk paths and raw
statements are all covered, and raises `InvalidInputError` naming the column.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import event, types
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.asyncio import AsyncEngine

from .._own_listeners import own
from ..errors import InvalidInputError

#: execution option: every value was checked against its column and none is large (see `holds_small_values`)
SIZES_CHECKED = "dsg_lib_sizes_checked"
#: ``Connection.info`` key holding the connection's ``@@max_allowed_packet``
PACKET_KEY = "dsg_lib_max_allowed_packet"
#: bytes of a statement besides the value itself (SQL text, other values, protocol header)
PACKET_HEADROOM = 64 * 1024
#: a str of at most this many characters is at most 65,535 bytes in utf8mb4: no check needed
_SMALL_TEXT = 65_535 // 4
_SMALL_BYTES = 255
_BINARY = frozenset({bytes, bytearray, memoryview})
_ESCAPED = ("\\", "'", '"', "\x00", "\n", "\r", "\x1a")
_MULTI_ROW_SUFFIX = re.compile(r"_m\d+$")

# Byte limits of MySQL/MariaDB column types, most specific first.
_MYSQL_LIMITS: tuple[tuple[type, int, str], ...] = (
    (mysql.TINYTEXT, 255, "TINYTEXT"),
    (mysql.MEDIUMTEXT, 16_777_215, "MEDIUMTEXT"),
    (mysql.LONGTEXT, 4_294_967_295, "LONGTEXT"),
    (mysql.TINYBLOB, 255, "TINYBLOB"),
    (mysql.MEDIUMBLOB, 16_777_215, "MEDIUMBLOB"),
    (mysql.LONGBLOB, 4_294_967_295, "LONGBLOB"),
    (types.JSON, 4_294_967_295, "JSON"),
)


def mysql_type_limit(type_: Any) -> tuple[int, str] | None:
    """``(bytes, name)`` a MySQL/MariaDB column of ``type_`` holds, when it is a TEXT/BLOB type."""
    impl = type_.impl_instance if isinstance(type_, types.TypeDecorator) else type_
    for cls, limit, name in _MYSQL_LIMITS:
        if isinstance(impl, cls):
            return limit, name
    if isinstance(impl, (types.Text, types.LargeBinary)):
        kind = "BLOB" if isinstance(impl, types.LargeBinary) else "TEXT"
        length = getattr(impl, "length", None)
        if length is None:
            return 65_535, kind
        # with a length, SQLAlchemy emits TEXT(n) / BLOB(n): the server picks the smallest type that fits
        for limit, prefix in ((255, "TINY"), (65_535, ""), (16_777_215, "MEDIUM")):
            if length <= limit:
                return limit, prefix + kind
        return 4_294_967_295, "LONG" + kind
    return None


def holds_small_values(type_: Any) -> bool:
    """True if a value of ``type_`` that passed dsg_lib's value check cannot need the size checks.

    Numbers, booleans and dates reach the driver as such, not as str or bytes;
    a ``String(n)`` value was checked to be at most ``n`` characters, and ``n``
    is below the size of str `has_large_value` looks at. Text without a
    length, binary, JSON, a ``TypeDecorator`` (its bind processing may turn
    any value into a large one) and everything else may be large.
    """
    if isinstance(type_, types.TypeDecorator):
        return False
    small = (types.Integer, types.Float, types.Numeric, types.Boolean, types.DateTime, types.Date, types.Time)
    if isinstance(type_, small):
        return True
    length = getattr(type_, "length", None)
    return isinstance(type_, types.String) and length is not None and 0 < length <= _SMALL_TEXT


def install_size_guard(engine: AsyncEngine) -> None:
    """Read ``@@max_allowed_packet`` per connection and check every statement's values."""
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _read_packet(dbapi_conn: Any, record: Any) -> None:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("SELECT @@max_allowed_packet")
            row = cursor.fetchone()
        finally:
            cursor.close()
        record.info[PACKET_KEY] = int(row[0])

    event.listen(sync_engine, "before_cursor_execute", own(_guard_statement))


def _guard_statement(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
) -> None:
    """The engine's ``before_cursor_execute`` hook: refuse a statement with a value too big."""
    if not parameters or (context is not None and context.execution_options.get(SIZES_CHECKED)):
        return
    # SQLAlchemy's "insertmanyvalues" batches report many=True with one flat row
    batch = many and not isinstance(parameters, Mapping) and isinstance(parameters[0], (list, tuple, Mapping))
    rows: Iterable[Any] = parameters if batch else (parameters,)
    for row in rows:
        values = row.values() if isinstance(row, Mapping) else row
        if has_large_value(values):
            _check_row(conn, context, row)


def has_large_value(values: Iterable[Any]) -> bool:
    """True if any of ``values`` is a str or bytes large enough to need the size checks."""
    # inlined fast scan: this runs for every value of every statement
    for value in values:
        cls = value.__class__
        if (cls is str and len(value) > _SMALL_TEXT) or (cls in _BINARY and len(value) > _SMALL_BYTES):
            return True
    return False


def _check_row(conn: Any, context: Any, row: Any) -> None:
    values = row.values() if isinstance(row, Mapping) else row
    for index, value in enumerate(values):
        size = _size(value)
        if size:
            _check_value(conn, context, row, index, value, size)


def _size(value: Any) -> int:
    """Bytes of a large str/bytes value; 0 for anything that cannot exceed a limit."""
    if value.__class__ is str:
        return 0 if len(value) <= _SMALL_TEXT else len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return 0 if len(value) <= _SMALL_BYTES else len(value)
    return 0


def _check_value(conn: Any, context: Any, row: Any, index: int, value: Any, size: int) -> None:
    bind = _bind_for(context, row, index)
    name = _column_name(context, bind) or f"parameter {index + 1}"
    # the type this dialect really uses (``with_variant(LONGTEXT(), "mysql")`` included)
    limit = mysql_type_limit(bind.type.dialect_impl(conn.dialect)) if bind is not None else None
    if limit is not None and size > limit[0]:
        raise InvalidInputError(
            f"column {name!r}: a value of {size} bytes exceeds the MySQL/MariaDB {limit[1]} limit of "
            f"{limit[0]} bytes; use a larger column type (e.g. LONGTEXT / LONGBLOB)"
        )
    packet = conn.info.get(PACKET_KEY)
    if packet is not None and _escaped_size(value, size) + PACKET_HEADROOM > packet:
        raise InvalidInputError(
            f"column {name!r}: a value of {size} bytes does not fit in one statement: the server's "
            f"max_allowed_packet is {packet} bytes"
        )


def _escaped_size(value: Any, size: int) -> int:
    """Bytes on the wire: the text protocol escapes quotes, backslashes and control bytes."""
    if isinstance(value, str):
        return size + sum(value.count(c) for c in _ESCAPED)
    data = bytes(value)
    return size + sum(data.count(c.encode()) for c in _ESCAPED)


def _bind_for(context: Any, row: Any, index: int) -> Any:
    """The ``BindParameter`` behind parameter ``index`` (its key is the column's), if known."""
    compiled = getattr(context, "compiled", None)
    if compiled is None:
        return None
    if isinstance(row, Mapping):
        key = list(row)[index]
    else:
        positions = compiled.positiontup
        if not positions:
            return None
        # an "insertmanyvalues" batch repeats the one-row VALUES clause
        key = positions[index % len(positions)]
    return compiled.binds.get(key)


def _column_name(context: Any, bind: Any) -> str | None:
    """The column a bind parameter sets: its key, or (anonymous binds of ``update().values()``)
    the one column of the statement's table whose type object the bind carries."""
    if bind is None:
        return None
    key = str(bind.key)
    if not key.startswith("%("):
        return _MULTI_ROW_SUFFIX.sub("", key)
    table = getattr(getattr(context.compiled, "statement", None), "table", None)
    matches = [c.key for c in getattr(table, "columns", ()) if c.type is bind.type]
    return matches[0] if len(matches) == 1 else None
