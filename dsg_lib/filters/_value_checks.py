"""Value checks against column types: one table, column type -> checker (private).

`check_value` and the fast per-column `value_checker` used by the bulk paths
are both derived from `TYPE_TABLE`, so they accept, normalise and refuse
exactly the same values. The rules that keep a value the same on every
backend (see docs "Types and values"):

* JSON: a top-level ``None`` is SQL NULL (``sqlalchemy.null()``), never JSON ``null``.
* ``DateTime(timezone=True)``: aware values are converted to UTC, naive ones are UTC.
  ``DateTime()`` (naive): an aware value is refused.
* ``Numeric(p, s)``: a value with more than ``s`` decimals or ``p - s`` integer
  digits is refused; on SQLite, more than 15 significant digits too (it stores REAL);
  on MySQL/MariaDB a bare ``Numeric()`` is ``DECIMAL(10, 0)`` and is checked as such.
* ``String``: a ``uuid.UUID`` becomes its canonical text; ``Uuid``: text becomes a UUID.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import math
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from sqlalchemy import null, types

from ..backends import backend_for
from ..errors import ConstraintViolationError, InvalidInputError

Checker = Callable[[Any], Any]
#: True if every value of a column passes as is (the values of many rows at once)
ColumnCheck = Callable[[Sequence[Any]], bool]

_INT_RANGES = {
    types.SmallInteger: (-(2**15), 2**15 - 1),
    types.BigInteger: (-(2**63), 2**63 - 1),
    types.Integer: (-(2**31), 2**31 - 1),
}
_UTC = dt.timezone.utc


@dataclass(frozen=True)
class _Rule:
    """How one family of column types checks a value (``check``), its shortcut (``fast``),
    and the same shortcut over a whole column of values in C-level loops (``column``)."""

    check: Callable[[Any, Any, str, str | None], Any]
    fast: Callable[[Any, Checker, str | None], Checker] | None = None
    column: Callable[[Any, str | None], ColumnCheck | None] | None = None


def _wrong(label: str, expected: str, value: Any) -> InvalidInputError:
    return InvalidInputError(f"column {label!r} expects {expected}, got {type(value).__name__}")


def check_text(value: str, label: str, length: int | None) -> None:
    """Refuse text no backend stores the same way: NUL, lone surrogates, over ``length``."""
    if "\x00" in value:
        raise InvalidInputError(f"column {label!r}: text must not contain NUL (\\x00) characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"column {label!r}: text is not valid Unicode (lone surrogate)") from None
    if length is not None and len(value) > length:
        raise InvalidInputError(
            f"column {label!r}: text of {len(value)} characters exceeds its length {length}"
        )


def _json(impl: Any, value: Any, label: str, dialect: str | None, depth: int = 0) -> Any:
    if depth > 100:
        raise InvalidInputError(f"column {label!r}: JSON nested deeper than 100 levels")
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        check_text(value, label, None)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"column {label!r}: JSON does not accept NaN or infinity")
        return value
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"column {label!r}: JSON object keys must be str")
            _json(impl, item, label, dialect, depth + 1)
        return value
    if isinstance(value, (list, tuple)):
        for item in value:
            _json(impl, item, label, dialect, depth + 1)
        return value
    raise InvalidInputError(f"column {label!r}: {type(value).__name__} is not JSON-serialisable")


def _enum(impl: Any, value: Any, label: str, dialect: str | None) -> Any:
    enum_class = impl.enum_class
    if enum_class is not None and isinstance(value, enum_class):
        return value
    if isinstance(value, enum.Enum):
        raise _wrong(label, getattr(enum_class, "__name__", "enum member"), value)
    if isinstance(value, str) and value in impl.enums:
        return _members(impl)[value] if enum_class is not None else value
    raise InvalidInputError(f"column {label!r}: {value!r} is not one of {', '.join(impl.enums)}"[:300])


def _members(impl: Any) -> dict[str, enum.Enum]:
    """Stored value -> member of an Enum type: the names, or what its ``values_callable`` gives
    (paired with the members in order, aliases left out, as SQLAlchemy pairs them)."""
    members = [m for name, m in impl.enum_class.__members__.items() if m.name == name]
    return dict(zip(impl.enums, members, strict=False))


def _boolean(impl: Any, value: Any, label: str, dialect: str | None) -> Any:
    if not isinstance(value, bool):
        raise _wrong(label, "bool", value)
    return value


def _int_range(impl: Any) -> tuple[int, int]:
    return next((r for t, r in _INT_RANGES.items() if isinstance(impl, t)), _INT_RANGES[types.BigInteger])


def _integer(impl: Any, value: Any, label: str, dialect: str | None) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(label, "int", value)
    low, high = _int_range(impl)
    if not low <= value <= high:
        raise InvalidInputError(f"column {label!r}: integer {value} is out of range [{low}, {high}]")
    return value


def _number(impl: Any, value: Any, label: str, dialect: str | None) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)):
        raise _wrong(label, "a number", value)
    if isinstance(value, (float, decimal.Decimal)) and not _finite(value):
        raise InvalidInputError(f"column {label!r} does not accept NaN or infinity")
    if not isinstance(impl, types.Float):
        _check_exact(impl, value, label, dialect)
    return value


def _finite(value: float | decimal.Decimal) -> bool:
    return math.isfinite(value) if isinstance(value, float) else value.is_finite()


def _check_exact(impl: Any, value: Any, label: str, dialect: str | None) -> None:
    """Refuse a number the column cannot hold exactly (the servers would round or refuse)."""
    exact = decimal.Decimal(repr(value)) if isinstance(value, float) else decimal.Decimal(value)
    _, digits, exponent = exact.normalize().as_tuple()
    decimals = max(0, -int(exponent))
    integer_digits = max(0, len(digits) + int(exponent)) if exact else 0
    precision, scale = impl.precision, impl.scale
    backend = backend_for(dialect)
    if precision is None and backend.bare_numeric is not None:
        precision, scale = backend.bare_numeric  # MySQL: DECIMAL(10, 0), where 1.25 would become 1
    if scale is not None and decimals > scale:
        raise InvalidInputError(f"column {label!r}: {decimals} decimal places exceed its scale {scale}")
    if precision is not None and integer_digits > precision - (scale or 0):
        raise InvalidInputError(
            f"column {label!r}: {integer_digits} integer digits exceed Numeric({precision}, {scale or 0})"
        )
    kept = backend.decimal_digits
    if kept is not None and len(digits) > kept and not isinstance(value, int):
        raise InvalidInputError(
            f"column {label!r}: {backend.title} keeps {kept} significant digits of a decimal, "
            f"this value has {len(digits)}"
        )


def _string(impl: Any, value: Any, label: str, dialect: str | None) -> Any:
    if isinstance(value, uuid.UUID):
        value = str(value)  # UUID keys kept as text (the pkid mixins) accept UUID objects too
    if not isinstance(value, str):
        raise _wrong(label, "str", value)
    check_text(value, label, getattr(impl, "length", None))
    return value


def _binary(impl: Any, value: Any, label: str, dialect: str | None) -> Any:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise _wrong(label, "bytes", value)
    return value


def _uuid(impl: Any, value: Any, label: str, dialect: str | None) -> Any:
    if isinstance(value, uuid.UUID):
        return value if getattr(impl, "as_uuid", True) else str(value)
    if isinstance(value, str):
        try:
            parsed = uuid.UUID(value)
        except ValueError:
            raise InvalidInputError(f"column {label!r} expects a UUID, got a malformed string") from None
        return parsed if getattr(impl, "as_uuid", True) else str(parsed)
    raise _wrong(label, "UUID", value)


def _datetime(impl: Any, value: Any, label: str, dialect: str | None) -> Any:
    if not isinstance(value, dt.datetime):
        raise _wrong(label, "datetime", value)
    aware = value.utcoffset() is not None
    if getattr(impl, "timezone", False):
        # one instant on every backend: SQLite and MariaDB would drop the offset as it is
        return value.astimezone(_UTC) if aware else value.replace(tzinfo=_UTC)
    if aware:
        raise InvalidInputError(
            f"column {label!r} is a DateTime without time zone: pass a naive datetime "
            "(e.g. value.astimezone(timezone.utc).replace(tzinfo=None)) or use DateTime(timezone=True)"
        )
    return value


def _of(python_type: type, expected: str) -> Callable[[Any, Any, str, str | None], Any]:
    def check(impl: Any, value: Any, label: str, dialect: str | None) -> Any:
        if not isinstance(value, python_type):
            raise _wrong(label, expected, value)
        return value

    return check


def _fast_boolean(impl: Any, slow: Checker, dialect: str | None) -> Checker:
    return lambda v: v if v is True or v is False else slow(v)


def _fast_integer(impl: Any, slow: Checker, dialect: str | None) -> Checker:
    low, high = _int_range(impl)
    return lambda v: v if v.__class__ is int and low <= v <= high else slow(v)


def _bounded(impl: Any, dialect: str | None) -> bool:
    """The number column has digits to count (declared, or the backend's bare ``NUMERIC`` has them)."""
    return (
        impl.precision is not None or impl.scale is not None or backend_for(dialect).bare_numeric is not None
    )


def _fast_number(impl: Any, slow: Checker, dialect: str | None) -> Checker:
    bounded = _bounded(impl, dialect)
    if not isinstance(impl, types.Float) and bounded:
        return slow  # digits to count: no shortcut
    return lambda v: v if v.__class__ is float and math.isfinite(v) else slow(v)


def _fast_string(impl: Any, slow: Checker, dialect: str | None) -> Checker:
    length = getattr(impl, "length", None) or sys.maxsize
    return lambda v: (
        v if v.__class__ is str and len(v) <= length and v.isascii() and "\x00" not in v else slow(v)
    )


def _fast_datetime(impl: Any, slow: Checker, dialect: str | None) -> Checker:
    zone = _UTC if getattr(impl, "timezone", False) else None
    return lambda v: v if v.__class__ is dt.datetime and v.tzinfo is zone else slow(v)


# Column checks: True exactly when every value would pass the `_fast_*` shortcut above.


def _all_of(values: Sequence[Any], cls: type) -> bool:
    return set(map(type, values)) == {cls}


def _column_boolean(impl: Any, dialect: str | None) -> ColumnCheck:
    return lambda vs: _all_of(vs, bool)


def _column_integer(impl: Any, dialect: str | None) -> ColumnCheck:
    low, high = _int_range(impl)
    return lambda vs: _all_of(vs, int) and low <= min(vs) and max(vs) <= high


def _column_number(impl: Any, dialect: str | None) -> ColumnCheck | None:
    bounded = _bounded(impl, dialect)
    if not isinstance(impl, types.Float) and bounded:
        return None
    return lambda vs: _all_of(vs, float) and all(map(math.isfinite, vs))


def _column_string(impl: Any, dialect: str | None) -> ColumnCheck:
    length = getattr(impl, "length", None) or sys.maxsize

    def check(values: Sequence[Any]) -> bool:
        if not _all_of(values, str) or max(map(len, values)) > length:
            return False
        joined = "".join(values)
        return joined.isascii() and "\x00" not in joined

    return check


def _column_datetime(impl: Any, dialect: str | None) -> ColumnCheck:
    zone = _UTC if getattr(impl, "timezone", False) else None
    return lambda vs: _all_of(vs, dt.datetime) and set(map(attrgetter("tzinfo"), vs)) == {zone}


#: column type -> rule; the first matching row wins (Enum before String, Interval before DateTime)
TYPE_TABLE: tuple[tuple[Any, _Rule], ...] = (
    (types.JSON, _Rule(_json)),
    (types.Enum, _Rule(_enum)),
    (types.Boolean, _Rule(_boolean, _fast_boolean, _column_boolean)),
    (types.Integer, _Rule(_integer, _fast_integer, _column_integer)),
    ((types.Float, types.Numeric), _Rule(_number, _fast_number, _column_number)),
    (types.String, _Rule(_string, _fast_string, _column_string)),
    ((types.LargeBinary, types.BINARY, types.VARBINARY), _Rule(_binary)),
    (types.Uuid, _Rule(_uuid)),
    (types.Interval, _Rule(_of(dt.timedelta, "timedelta"))),
    (types.DateTime, _Rule(_datetime, _fast_datetime, _column_datetime)),
    (types.Date, _Rule(_of(dt.date, "date"))),
    (types.Time, _Rule(_of(dt.time, "time"))),
)


def _impl(col_type: Any) -> Any:
    """The type whose rule applies: a TypeDecorator's implementation (Interval is its own)."""
    if isinstance(col_type, types.TypeDecorator) and not isinstance(col_type, types.Interval):
        return col_type.impl_instance if hasattr(col_type, "impl_instance") else col_type.impl
    return col_type


def is_json(column: Any) -> bool:
    """Whether ``column`` holds JSON (directly or through a TypeDecorator)."""
    return isinstance(_impl(column.type), types.JSON)


def _rule(impl: Any) -> _Rule | None:
    return next((rule for kind, rule in TYPE_TABLE if isinstance(impl, kind)), None)


def _has_default(column: Any) -> bool:
    return bool(
        getattr(column, "default", None) is not None
        or getattr(column, "server_default", None) is not None
        or getattr(column, "autoincrement", False) is True
    )


def _label(column: Any, name: str | None) -> str:
    return str(name or getattr(column, "key", None) or getattr(column, "name", None) or "?")


def check_value(column: Any, value: Any, *, name: str | None = None, dialect: str | None = None) -> Any:
    """Check ``value`` against ``column``'s type; return the value to bind (maybe normalised).

    Normalised: a JSON column's ``None`` becomes ``sqlalchemy.null()`` (SQL NULL);
    an aware datetime for ``DateTime(timezone=True)`` becomes UTC; text for
    ``Uuid`` becomes a ``UUID``; a ``UUID`` for ``String`` becomes text; an enum
    member's name becomes the member.

    Args:
        column: The ``Column``.
        value: The value.
        name: The label used in errors (default: the column key).
        dialect: The backend name, for limits of one backend (SQLite's 15 decimal digits).

    Raises:
        InvalidInputError: the value cannot be stored in the column the same way
            on every backend (wrong type, too long, NUL byte, lone surrogate,
            NaN/inf, integer out of range, more digits than the Numeric holds,
            an aware datetime for a naive column, unknown enum member).
        ConstraintViolationError: ``None`` for a NOT NULL column without a
            default (``kind="not_null"``, as when the database refuses it).

    Examples:
        >>> from sqlalchemy import Column, Integer
        >>> check_value(Column("n", Integer), 5)
        5
        >>> check_value(Column("n", Integer), "5")
        Traceback (most recent call last):
        ...
        dsg_lib.errors.InvalidInputError: column 'n' expects int, got str
    """
    label = _label(column, name)
    impl = _impl(column.type)
    if value is None:
        if not getattr(column, "nullable", True) and not _has_default(column):
            raise ConstraintViolationError(
                f"column {label!r} does not accept NULL", constraint=label, kind="not_null", columns=(label,)
            )
        return null() if isinstance(impl, types.JSON) else None
    rule = _rule(impl)
    if rule is not None:
        if _converts_itself(column.type) and not _of_type(impl, value):
            return value  # the TypeDecorator turns it into what it stores, as in a flush
        return rule.check(impl, value, label, dialect)
    try:
        python_type = column.type.python_type
    except (NotImplementedError, AttributeError):
        return value
    if python_type is not object and not isinstance(value, python_type):
        raise _wrong(label, python_type.__name__, value)
    return value


def _converts_itself(col_type: Any) -> bool:
    """A TypeDecorator with its own ``process_bind_param``: it accepts its own Python values."""
    return isinstance(col_type, types.TypeDecorator) and (
        type(col_type).process_bind_param is not types.TypeDecorator.process_bind_param
    )


def _of_type(impl: Any, value: Any) -> bool:
    """Whether ``value`` is of the Python type the implementation type stores."""
    try:
        python_type = impl.python_type
    except NotImplementedError:
        return True
    return isinstance(value, python_type)


def value_checker(column: Any, name: str | None = None, dialect: str | None = None) -> Checker:
    """A fast ``check_value`` for one column: common values pass in a few operations.

    Built from the same `TYPE_TABLE` rule as `check_value`; anything
    unusual falls through to it, so results and errors are exactly the same
    and only the cost differs (bulk inserts check every value of every row).

    Examples:
        >>> from sqlalchemy import Column, String
        >>> check = value_checker(Column("name", String(3)))
        >>> check("abc")
        'abc'
        >>> try:
        ...     check("abcd")
        ... except InvalidInputError as err:
        ...     print(err)
        column 'name': text of 4 characters exceeds its length 3
    """
    label = name or getattr(column, "key", None)
    impl = _impl(column.type)

    def slow(value: Any) -> Any:
        return check_value(column, value, name=label, dialect=dialect)

    rule = _shortcut_rule(column, impl)
    if rule is None or rule.fast is None:
        return slow  # custom types and rare types: no shortcut
    return rule.fast(impl, slow, dialect)


def column_checker(column: Any, dialect: str | None = None) -> ColumnCheck | None:
    """A check of many values of ``column`` at once: True if all of them pass `value_checker`
    unchanged (its shortcut, run as C-level loops over the column); None for types without one.

    Examples:
        >>> from sqlalchemy import Column, Integer
        >>> check = column_checker(Column("n", Integer))
        >>> check([1, 2, 3]), check([1, "2"]), check([1, None])
        (True, False, False)
    """
    impl = _impl(column.type)
    rule = _shortcut_rule(column, impl)
    if rule is None or rule.column is None:
        return None
    return rule.column(impl, dialect)


def _shortcut_rule(column: Any, impl: Any) -> _Rule | None:
    """The rule whose shortcuts apply to ``column``: none for custom types (but UTC datetimes)."""
    custom = isinstance(column.type, types.TypeDecorator) and not isinstance(impl, types.DateTime)
    return None if custom else _rule(impl)
