"""Safe ``field__op=value`` filters and value checks against column types.

Column names are checked against the model's mapped columns, operators against
`OPERATORS`, and every value is sent as a bound parameter (never
formatted into SQL). Values are checked against the column's Python type
before any SQL is sent, so a wrong value fails the same way on every backend.

Examples:
    >>> from sqlalchemy import String
    >>> from sqlalchemy import Integer
    >>> from sqlalchemy.orm import DeclarativeBase, mapped_column
    >>> class Base(DeclarativeBase):
    ...     pass
    >>> class User(Base):
    ...     __tablename__ = "users"
    ...     id = mapped_column(Integer, primary_key=True)
    ...     name = mapped_column(String(50))
    >>> for clause in build_filters(User, {"name__startswith": "a", "id__gt": 3}):
    ...     print(clause)
    users.name LIKE :name_1 || '%' ESCAPE '/'
    users.id > :id_1
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import math
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from sqlalchemy import Column, ColumnElement, all_, any_, bindparam, inspect, types
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import InstrumentedAttribute, Mapper
from sqlalchemy.sql.elements import UnaryExpression

from .errors import InvalidInputError

__all__ = [
    "OPERATORS",
    "build_filters",
    "check_value",
    "mapper_of",
    "model_columns",
    "order_terms",
    "value_checker",
]

#: the filter operators accepted after ``__``
OPERATORS = (
    "eq",
    "ne",
    "lt",
    "lte",
    "gt",
    "gte",
    "in",
    "not_in",
    "like",
    "ilike",
    "contains",
    "startswith",
    "endswith",
    "is_null",
)
_MAX_NAME_SHOWN = 60
#: from this many values, PostgreSQL ``in`` / ``not_in`` filters send one array parameter
_PG_ARRAY_FROM = 1000
_INT_RANGES = {
    types.SmallInteger: (-(2**15), 2**15 - 1),
    types.BigInteger: (-(2**63), 2**63 - 1),
    types.Integer: (-(2**31), 2**31 - 1),
}


def _shown(name: object) -> str:
    text = repr(name)
    return text if len(text) <= _MAX_NAME_SHOWN else text[:_MAX_NAME_SHOWN] + "...'"


def mapper_of(model: Any) -> Mapper[Any]:
    """The ``Mapper`` of a mapped class; anything else is an ``InvalidInputError``.

    Examples:
        >>> mapper_of(int)
        Traceback (most recent call last):
        ...
        dsg_lib.errors.InvalidInputError: expected a mapped model class, got <class 'int'>
    """
    try:
        mapper = inspect(model, raiseerr=False)
    except Exception:
        mapper = None
    if not isinstance(mapper, Mapper):
        raise InvalidInputError(f"expected a mapped model class, got {_shown(model)}")
    return mapper


def order_terms(model: Any, order_by: Any) -> list[tuple[Any, Any, bool]]:
    """Parse ``order_by`` into ``(ORDER BY clause, column attribute or None, descending)``.

    ``order_by`` is a column name (``"-name"`` for descending), a column
    attribute, ``Model.column.desc()`` / ``.asc()``, any other SQL expression
    (its column is then ``None``), or a list of them. The one parser behind
    ``find(order_by=)`` and ``paginate_keyset(order_by=)``.

    Raises:
        InvalidInputError: an unknown column name or something that is not an expression.

    Examples:
        >>> from sqlalchemy import Integer
        >>> from sqlalchemy.orm import DeclarativeBase, mapped_column
        >>> class B(DeclarativeBase):
        ...     pass
        >>> class T(B):
        ...     __tablename__ = "t"
        ...     id = mapped_column(Integer, primary_key=True)
        >>> [(attr is T.id, desc) for _, attr, desc in order_terms(T, ["-id", T.id.asc()])]
        [(True, True), (True, False)]
    """
    items = list(order_by) if isinstance(order_by, (list, tuple)) else [order_by]
    return [_order_term(model, item) for item in items]


def _order_term(model: Any, item: Any) -> tuple[Any, Any, bool]:
    columns = model_columns(model)
    if isinstance(item, str):
        name = item.lstrip("-")
        if name not in columns:
            raise InvalidInputError(f"cannot order by {_shown(name)}: not a column of {_model_name(model)}")
        attribute, descending = getattr(model, name), item.startswith("-")
        return (attribute.desc() if descending else attribute.asc()), attribute, descending
    if not isinstance(item, ColumnElement) and not hasattr(item, "__clause_element__"):
        raise InvalidInputError(f"order_by takes column names or expressions, got {_shown(item)}")
    element, descending = item, False
    if isinstance(item, UnaryExpression) and item.element is not None:
        element = item.element
        descending = getattr(item.modifier, "__name__", "") == "desc_op"
    if hasattr(element, "__clause_element__"):
        element = element.__clause_element__()
    key = getattr(element, "key", None)
    own = isinstance(element, Column) and key in columns and element.table is columns[key].table
    return item, (getattr(model, key) if own else None), descending


def model_columns(model: Any) -> dict[str, Any]:
    """Map attribute key -> ``Column`` for the model's column attributes.

    Examples:
        >>> from sqlalchemy import Integer
        >>> from sqlalchemy.orm import DeclarativeBase, mapped_column
        >>> class B(DeclarativeBase):
        ...     pass
        >>> class T(B):
        ...     __tablename__ = "t"
        ...     id = mapped_column(Integer, primary_key=True)
        >>> list(model_columns(T))
        ['id']
    """
    mapper = mapper_of(model)
    # only real table columns: a column_property(expression) is not writable or a filterable column
    return {
        prop.key: prop.columns[0]
        for prop in mapper.column_attrs
        if len(prop.columns) == 1 and isinstance(prop.columns[0], Column)
    }


def _column(model: Any, name: Any) -> tuple[Any, Any]:
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        raise InvalidInputError(f"{_shown(name)} is not a column of {_model_name(model)}")
    columns = model_columns(model)
    if name not in columns:
        raise InvalidInputError(
            f"{_shown(name)} is not a column of {_model_name(model)}; columns: {', '.join(sorted(columns))}"
        )
    attribute = getattr(model, name)
    if not isinstance(attribute, InstrumentedAttribute):
        raise InvalidInputError(f"{_shown(name)} is not a column of {_model_name(model)}")
    return attribute, columns[name]


def _model_name(model: Any) -> str:
    return getattr(model, "__name__", type(model).__name__)


def check_value(column: Any, value: Any, *, name: str | None = None) -> Any:
    """Check ``value`` against ``column``'s type; return it (maybe normalised).

    Raises:
        InvalidInputError: the value cannot be stored in the column the same way
            on every backend (wrong type, too long, NUL byte, lone surrogate,
            NaN/inf, integer out of range, unknown enum member).

    Examples:
        >>> from sqlalchemy import Column, Integer
        >>> check_value(Column("n", Integer), 5)
        5
        >>> check_value(Column("n", Integer), "5")
        Traceback (most recent call last):
        ...
        dsg_lib.errors.InvalidInputError: column 'n' expects int, got str
    """
    label = str(name or getattr(column, "key", None) or getattr(column, "name", None) or "?")
    if value is None:
        if not getattr(column, "nullable", True) and not _has_default(column):
            raise InvalidInputError(f"column {label!r} does not accept NULL")
        return None
    col_type = column.type
    if isinstance(col_type, types.TypeDecorator):
        impl: Any = col_type.impl_instance if hasattr(col_type, "impl_instance") else col_type.impl
    else:
        impl = col_type
    try:
        python_type = col_type.python_type
    except (NotImplementedError, AttributeError):
        python_type = None

    if isinstance(impl, types.JSON):
        return _check_json(value, label)
    if isinstance(impl, types.Enum):
        return _check_enum(impl, value, label)
    if isinstance(impl, types.Boolean):
        if not isinstance(value, bool):
            raise _wrong(label, "bool", value)
        return value
    if isinstance(impl, types.Integer):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong(label, "int", value)
        low, high = next(
            (r for t, r in _INT_RANGES.items() if isinstance(impl, t)), _INT_RANGES[types.BigInteger]
        )
        if not low <= value <= high:
            raise InvalidInputError(f"column {label!r}: integer {value} is out of range [{low}, {high}]")
        return value
    if isinstance(impl, (types.Float, types.Numeric)):
        if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)):
            raise _wrong(label, "a number", value)
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError(f"column {label!r} does not accept NaN or infinity")
        if isinstance(value, decimal.Decimal) and not value.is_finite():
            raise InvalidInputError(f"column {label!r} does not accept NaN or infinity")
        return value
    if isinstance(impl, types.String):
        if not isinstance(value, str):
            raise _wrong(label, "str", value)
        _check_text(value, label, getattr(impl, "length", None))
        return value
    if isinstance(impl, types._Binary):
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise _wrong(label, "bytes", value)
        return value
    if isinstance(impl, types.Uuid):
        if isinstance(value, uuid.UUID):
            return value
        if isinstance(value, str):
            try:
                return uuid.UUID(value) if getattr(impl, "as_uuid", True) else str(uuid.UUID(value))
            except ValueError:
                raise InvalidInputError(f"column {label!r} expects a UUID, got a malformed string")
        raise _wrong(label, "UUID", value)
    if isinstance(impl, types.DateTime):
        if not isinstance(value, dt.datetime):
            raise _wrong(label, "datetime", value)
        return value
    if isinstance(impl, types.Date):
        if not isinstance(value, dt.date):
            raise _wrong(label, "date", value)
        return value
    if isinstance(impl, types.Time):
        if not isinstance(value, dt.time):
            raise _wrong(label, "time", value)
        return value
    if isinstance(impl, types.Interval):
        if not isinstance(value, dt.timedelta):
            raise _wrong(label, "timedelta", value)
        return value
    if python_type is not None and python_type is not object and not isinstance(value, python_type):
        raise _wrong(label, python_type.__name__, value)
    return value


def value_checker(column: Any, name: str | None = None) -> Callable[[Any], Any]:
    """A fast ``check_value`` for one column: common values pass in a few operations.

    Anything unusual falls through to :func:`check_value`, so the result and
    the errors are exactly the same; only the cost differs (bulk inserts check
    every value of every row).

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
    col_type = column.type
    impl = col_type.impl_instance if isinstance(col_type, types.TypeDecorator) else col_type
    nullable = getattr(column, "nullable", True) or _has_default(column)

    def slow(value: Any) -> Any:
        return check_value(column, value, name=label)

    if isinstance(col_type, types.TypeDecorator) and not isinstance(impl, types.DateTime):
        return slow  # custom types: no shortcut
    if isinstance(impl, types.Boolean):
        return lambda v: v if v is True or v is False else (None if v is None and nullable else slow(v))
    if isinstance(impl, types.Integer) and not isinstance(impl, types.Enum):
        low, high = next(
            (r for t, r in _INT_RANGES.items() if isinstance(impl, t)), _INT_RANGES[types.BigInteger]
        )
        return lambda v: v if v.__class__ is int and low <= v <= high else slow(v)
    if isinstance(impl, types.Float) or (isinstance(impl, types.Numeric) and not impl.asdecimal):
        return lambda v: v if v.__class__ is float and math.isfinite(v) else slow(v)
    if isinstance(impl, types.String) and not isinstance(impl, types.Enum):
        length = getattr(impl, "length", None) or sys.maxsize
        return lambda v: (
            v if v.__class__ is str and len(v) <= length and v.isascii() and "\x00" not in v else slow(v)
        )
    if isinstance(impl, types.DateTime):
        return lambda v: v if v.__class__ is dt.datetime else slow(v)
    return slow


def _has_default(column: Any) -> bool:
    return bool(
        getattr(column, "default", None) is not None
        or getattr(column, "server_default", None) is not None
        or getattr(column, "autoincrement", False) is True
    )


def _wrong(label: str, expected: str, value: Any) -> InvalidInputError:
    return InvalidInputError(f"column {label!r} expects {expected}, got {type(value).__name__}")


def _check_text(value: str, label: str, length: int | None) -> None:
    if "\x00" in value:
        raise InvalidInputError(f"column {label!r}: text must not contain NUL (\\x00) characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"column {label!r}: text is not valid Unicode (lone surrogate)")
    if length is not None and len(value) > length:
        raise InvalidInputError(
            f"column {label!r}: text of {len(value)} characters exceeds its length {length}"
        )


def _check_json(value: Any, label: str, depth: int = 0) -> Any:
    if depth > 100:
        raise InvalidInputError(f"column {label!r}: JSON nested deeper than 100 levels")
    if value is None or isinstance(value, (bool, int, str)):
        if isinstance(value, str):
            _check_text(value, label, None)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"column {label!r}: JSON does not accept NaN or infinity")
        return value
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"column {label!r}: JSON object keys must be str")
            _check_json(item, label, depth + 1)
        return value
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_json(item, label, depth + 1)
        return value
    raise InvalidInputError(f"column {label!r}: {type(value).__name__} is not JSON-serialisable")


def _check_enum(impl: types.Enum, value: Any, label: str) -> Any:
    enum_class = impl.enum_class
    if enum_class is not None and isinstance(value, enum_class):
        return value
    if isinstance(value, enum.Enum):
        raise _wrong(label, getattr(enum_class, "__name__", "enum member"), value)
    if isinstance(value, str) and value in impl.enums:
        return enum_class[value] if enum_class is not None else value
    raise InvalidInputError(f"column {label!r}: {value!r} is not one of {', '.join(impl.enums)}"[:300])


def _check_values(column: Any, values: Any, label: str) -> list[Any]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InvalidInputError(f"filter {label!r} expects a list of values, got {type(values).__name__}")
    return [check_value(column, v, name=label) for v in values]


def _check_pattern(value: Any, label: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"filter {label!r} expects a str, got {type(value).__name__}")
    _check_text(value, label, None)
    return value


def build_filters(
    model: Any, filters: Mapping[str, Any], *, validate: bool = True, dialect: str | None = None
) -> list[ColumnElement[bool]]:
    """Turn ``{"field__op": value}`` into SQLAlchemy boolean expressions.

    Args:
        model: The mapped class the fields belong to.
        filters: Keys ``field`` (equality) or ``field__op`` with an op from
            `OPERATORS`.
        validate: Check values against the column types first.
        dialect: The backend name; SQLite gets case-sensitive
            ``contains`` / ``startswith`` / ``endswith`` like the other backends.

    Raises:
        InvalidInputError: unknown field or operator, or a bad value.

    Examples:
        >>> from sqlalchemy import Integer
        >>> from sqlalchemy.orm import DeclarativeBase, mapped_column
        >>> class B(DeclarativeBase):
        ...     pass
        >>> class T(B):
        ...     __tablename__ = "t"
        ...     id = mapped_column(Integer, primary_key=True)
        >>> build_filters(T, {"nope": 1})
        Traceback (most recent call last):
        ...
        dsg_lib.errors.InvalidInputError: 'nope' is not a column of T; columns: id
    """
    clauses: list[ColumnElement[bool]] = []
    for key, value in filters.items():
        if not isinstance(key, str):
            raise InvalidInputError(f"filter names must be str, got {_shown(key)}")
        field, _, op = key.partition("__") if "__" in key else (key, "", "eq")
        if "__" in op or not op:
            raise InvalidInputError(
                f"filter {_shown(key)}: expected 'field' or 'field__op' with op one of {', '.join(OPERATORS)}"
            )
        if op not in OPERATORS:
            raise InvalidInputError(
                f"filter {_shown(key)}: unknown operator {_shown(op)}; accepted: {', '.join(OPERATORS)}"
            )
        attribute, column = _column(model, field)
        clauses.append(_clause(attribute, column, op, value, key, validate, dialect))
    return clauses


def _clause(
    attr: Any, column: Any, op: str, value: Any, label: str, validate: bool, dialect: str | None
) -> ColumnElement[bool]:
    def checked(v: Any) -> Any:
        return check_value(column, v, name=label) if validate and v is not None else v

    if op in ("eq", "ne"):
        if value is None:
            return attr.is_(None) if op == "eq" else attr.is_not(None)  # type: ignore[no-any-return]
        return (attr == checked(value)) if op == "eq" else (attr != checked(value))  # type: ignore[no-any-return]
    if op in ("lt", "lte", "gt", "gte"):
        if value is None:
            raise InvalidInputError(f"filter {label!r} cannot compare with None; use is_null")
        v = checked(value)
        return {"lt": attr < v, "lte": attr <= v, "gt": attr > v, "gte": attr >= v}[op]  # type: ignore[no-any-return]
    if op in ("in", "not_in"):
        values = _check_values(column, value, label) if validate else list(value)
        if dialect == "postgresql" and len(values) >= _PG_ARRAY_FROM:
            # one array parameter: an expanded IN list stops at PostgreSQL's 32,767 bind parameters
            array = bindparam(None, values, type_=postgresql.ARRAY(column.type))
            return attr == any_(array) if op == "in" else attr != all_(array)  # type: ignore[no-any-return]
        return attr.in_(values) if op == "in" else attr.not_in(values)  # type: ignore[no-any-return]
    if op in ("like", "ilike"):
        pattern = _check_pattern(value, label)
        return attr.like(pattern) if op == "like" else attr.ilike(pattern)  # type: ignore[no-any-return]
    if op in ("contains", "startswith", "endswith"):
        text = _check_pattern(value, label)
        if dialect == "sqlite":
            return _sqlite_literal_match(attr, op, text)
        method = getattr(attr, op)
        return method(text, autoescape=True)  # type: ignore[no-any-return]
    # is_null
    if not isinstance(value, bool):
        raise InvalidInputError(f"filter {label!r} expects True or False")
    return attr.is_(None) if value else attr.is_not(None)  # type: ignore[no-any-return]


def _sqlite_literal_match(attr: Any, op: str, text: str) -> ColumnElement[bool]:
    """Case-sensitive literal matching on SQLite, whose LIKE ignores ASCII case."""
    from sqlalchemy import func

    if op == "contains":
        return func.instr(attr, text) > 0
    if op == "startswith":
        return func.substr(attr, 1, len(text)) == text
    if not text:
        return cast(ColumnElement[bool], attr.is_not(None))
    return func.substr(attr, -len(text)) == text
