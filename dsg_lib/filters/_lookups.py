"""``field__op=value`` lookups: columns, operators, relationship paths, ordering (private).

Imported from ``dsg_lib.filters``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from sqlalchemy import Column, ColumnElement, Table, all_, any_, bindparam, inspect, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import InstrumentedAttribute, Mapper
from sqlalchemy.sql.elements import UnaryExpression

from ..backends import backend_for
from ..errors import InvalidInputError
from ._value_checks import check_text, check_value, is_json, value_checker

__all__ = [
    "OPERATORS",
    "MAX_PATH_STEPS",
    "build_filters",
    "check_value",
    "field_column",
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
#: most relationship steps in one filter name (``a__b__c__column`` is three)
MAX_PATH_STEPS = 3
_MAX_NAME_SHOWN = 60


def _shown(name: object) -> str:
    text = repr(name)
    return text if len(text) <= _MAX_NAME_SHOWN else text[:_MAX_NAME_SHOWN] + "...'"


def mapper_of(model: Any) -> Mapper[Any]:
    """The ``Mapper`` of a mapped class; anything else is an ``InvalidInputError``.

    Examples:
        >>> mapper_of(int)
        Traceback (most recent call last):
        ...
        dsg_lib.errors.InvalidInputError: expected a mapped model class (declared on db.Base), got int
    """
    mapper = inspect(model, raiseerr=False) if isinstance(model, type) else None
    if not isinstance(mapper, Mapper):
        raise InvalidInputError(not_a_model(model))
    return mapper


def not_a_model(value: Any) -> str:
    """What was given instead of a mapped model class, and what to pass instead."""
    if isinstance(value, Table):
        return (
            f"expected a mapped model class, got the Table {value.name!r}; "
            "pass the class declared on db.Base (Table objects work with raw statements only)"
        )
    if not isinstance(value, type) and inspect(value, raiseerr=False) is not None:
        name = type(value).__name__
        return f"expected a mapped model class, got an instance of {name}; pass the class {name} itself"
    shown = value.__name__ if isinstance(value, type) else type(value).__name__
    return f"expected a mapped model class (declared on db.Base), got {shown[:80]}"


def order_terms(model: Any, order_by: Any) -> list[tuple[Any, Any, bool]]:
    """Parse ``order_by`` into ``(ORDER BY clause, column attribute or None, descending)``.

    ``order_by`` is a column name (``"-name"`` for descending), a column
    attribute, ``Model.column.desc()`` / ``.asc()``, any other SQL expression
    (its column is then ``None``), or a list of them. A name can follow
    to-one relationships (``"-author__name"``, at most `MAX_PATH_STEPS`
    steps; its column is then ``None``); through a to-many one it is
    refused. The one parser behind
    ``find(order_by=)`` and ``paginate_keyset(order_by=)``.

    Raises:
        InvalidInputError: an unknown column name or something that is not an expression.

    Examples:
        ``T`` is a mapped class with one integer primary key column, ``id``.

        >>> [(attr is T.id, desc) for _, attr, desc in order_terms(T, ["-id", T.id.asc()])]
        [(True, True), (True, False)]
    """
    items = list(order_by) if isinstance(order_by, (list, tuple)) else [order_by]
    return [_order_term(model, item) for item in items]


def _order_term(model: Any, item: Any) -> tuple[Any, Any, bool]:
    columns = model_columns(model)
    if isinstance(item, str):
        name = item.lstrip("-")
        if "__" in name and name not in columns:
            value = _related_value(model, name)
            descending = item.startswith("-")
            return (value.desc() if descending else value.asc()), None, descending
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
    if isinstance(key, str) and isinstance(element, Column) and key in columns:
        return item, (getattr(model, key) if element.table is columns[key].table else None), descending
    return item, None, descending


def _related_value(model: Any, name: str) -> Any:
    """``author__name`` as a sort key: the related row's column, through to-one steps only.

    Each step is a correlated scalar subquery on the relationship's join condition, so the
    outer rows are neither repeated nor dropped (no related row sorts as NULL).
    """
    parts = name.split("__")
    steps, _target = _walk(model, parts[:-1], name)
    tables = [mapper_of(model).local_table]
    for step in steps:
        prop = step.property
        if prop.uselist or prop.secondary is not None:
            raise InvalidInputError(
                f"cannot order by {_shown(name)}: {prop.key!r} is a to-many relationship "
                "(each row has many values to sort by); order through to-one relationships only"
            )
        if prop.mapper.local_table in tables:
            raise InvalidInputError(
                f"cannot order by {_shown(name)}: the path comes back to a table it already passed through"
            )
        tables.append(prop.mapper.local_table)
    _attribute, column = _column(_target, parts[-1])
    value: Any = column
    for step in reversed(steps):
        prop = step.property
        value = (
            select(value).where(prop.primaryjoin).correlate_except(prop.mapper.local_table).scalar_subquery()
        )
    return value


def model_columns(model: Any) -> dict[str, Any]:
    """Map attribute key -> ``Column`` for the model's column attributes.

    Examples:
        ``T`` is a mapped class with one integer primary key column, ``id``.

        >>> list(model_columns(T))
        ['id']
    """
    mapper = mapper_of(model)
    # only real table columns: a column_property(expression) is not writable or a filterable column;
    # joined inheritance maps a key to the subclass's column and its parent's (``id``): the first
    # is the subclass's own
    return {
        prop.key: prop.columns[0]
        for prop in mapper.column_attrs
        if all(isinstance(column, Column) for column in prop.columns)
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


def _is_column(model: Any, parts: list[str]) -> bool:
    """Whether ``parts`` (a relationship path, then a name) ends at a column: ``x__y`` then has an op."""
    try:
        _steps, target = _walk(model, parts[:-1], "")
    except InvalidInputError:
        return False
    return bool(parts) and parts[-1] in model_columns(target)


def _walk(model: Any, names: list[str], label: str) -> tuple[list[Any], Any]:
    """Follow relationship names from ``model``: (the relationship attributes, the class reached)."""
    if len(names) > MAX_PATH_STEPS:
        raise InvalidInputError(
            f"filter {_shown(label)}: at most {MAX_PATH_STEPS} relationship steps in a filter name"
        )
    steps: list[Any] = []
    current = model
    for name in names:
        relationships = mapper_of(current).relationships
        if name not in relationships or name.startswith("_"):
            known = ", ".join(sorted(relationships.keys())) or "none"
            raise InvalidInputError(
                f"filter {_shown(label)}: {_shown(name)} is not a relationship of {_model_name(current)}; "
                f"relationships: {known}"
            )
        steps.append(getattr(current, name))
        current = relationships[name].mapper.class_
    return steps, current


def field_column(model: Any, field: str) -> Any:
    """The ``Column`` a filter field names: a column of ``model`` or a relationship path to one.

    Raises:
        InvalidInputError: no such column or relationship, or more than `MAX_PATH_STEPS` steps.

    Examples:
        ``T`` is a mapped class with one integer primary key column, ``id``.

        >>> field_column(T, "id").name
        'id'
    """
    if not isinstance(field, str):
        raise InvalidInputError(f"{_shown(field)} is not a column of {_model_name(model)}")
    parts = field.split("__")
    _steps, target = _walk(model, parts[:-1], field)
    return _column(target, parts[-1])[1]


def _model_name(model: Any) -> str:
    return getattr(model, "__name__", type(model).__name__)


def _check_values(column: Any, values: Any, label: str, dialect: str | None) -> list[Any]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InvalidInputError(f"filter {label!r} expects a list of values, got {type(values).__name__}")
    return [check_value(column, v, name=label, dialect=dialect) for v in values]


def _check_pattern(value: Any, label: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"filter {label!r} expects a str, got {type(value).__name__}")
    check_text(value, label, None)
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
        ``T`` is a mapped class with one integer primary key column, ``id``.

        >>> build_filters(T, {"nope": 1})
        Traceback (most recent call last):
        ...
        dsg_lib.errors.InvalidInputError: 'nope' is not a column of T; columns: id
    """
    clauses: list[ColumnElement[bool]] = []
    for key, value in filters.items():
        if not isinstance(key, str):
            raise InvalidInputError(f"filter names must be str, got {_shown(key)}")
        parts = key.split("__")
        op = (
            parts.pop()
            if len(parts) > 1 and (parts[-1] in OPERATORS or _is_column(model, parts[:-1]))
            else "eq"
        )
        if not parts or not all(parts):
            raise InvalidInputError(
                f"filter {_shown(key)}: expected 'field' or 'field__op' with op one of {', '.join(OPERATORS)}"
            )
        if op not in OPERATORS:
            raise InvalidInputError(
                f"filter {_shown(key)}: unknown operator {_shown(op)}; accepted: {', '.join(OPERATORS)}"
            )
        steps, target = _walk(model, parts[:-1], key)
        attribute, column = _column(target, parts[-1])
        clause = _clause(attribute, column, op, value, key, validate, dialect)
        for relationship in reversed(steps):
            # a to-one step is a correlated EXISTS (has), a to-many one "any related row" (any):
            # neither repeats the outer row, so counts stay right; ~ makes it NOT EXISTS
            clause = relationship.any(clause) if relationship.property.uselist else relationship.has(clause)
        clauses.append(clause)
    return clauses


def _clause(
    attr: Any, column: Any, op: str, value: Any, label: str, validate: bool, dialect: str | None
) -> ColumnElement[bool]:
    def checked(v: Any) -> Any:
        return check_value(column, v, name=label, dialect=dialect) if validate and v is not None else v

    if is_json(column) and not (op == "is_null" or (op in ("eq", "ne") and value is None)):
        # JSON equality and matching differ per backend (PostgreSQL has no json = json at all)
        raise InvalidInputError(
            f"filter {label!r}: a JSON column can only be filtered with is_null (or =None / __ne=None)"
        )
    if op in ("eq", "ne", "is_null"):
        return _null_or_equal(attr, op, value, label, checked)
    if op in ("lt", "lte", "gt", "gte"):
        if value is None:
            raise InvalidInputError(f"filter {label!r} cannot compare with None; use is_null")
        v = checked(value)
        return {"lt": attr < v, "lte": attr <= v, "gt": attr > v, "gte": attr >= v}[op]  # type: ignore[no-any-return]
    if op in ("in", "not_in"):
        values = _check_values(column, value, label, dialect) if validate else list(value)
        return _in_clause(attr, column, op == "in", values, dialect)  # type: ignore[no-any-return]
    pattern = _check_pattern(value, label)
    if op in ("like", "ilike"):
        return attr.like(pattern) if op == "like" else attr.ilike(pattern)  # type: ignore[no-any-return]
    if backend_for(dialect).like_ignores_case:  # contains, startswith, endswith
        return _sqlite_literal_match(attr, op, pattern)
    return getattr(attr, op)(pattern, autoescape=True)  # type: ignore[no-any-return]


def _null_or_equal(
    attr: Any, op: str, value: Any, label: str, checked: Callable[[Any], Any]
) -> ColumnElement[bool]:
    if op == "is_null":
        if not isinstance(value, bool):
            raise InvalidInputError(f"filter {label!r} expects True or False")
        return attr.is_(None) if value else attr.is_not(None)  # type: ignore[no-any-return]
    if value is None:
        return attr.is_(None) if op == "eq" else attr.is_not(None)  # type: ignore[no-any-return]
    return (attr == checked(value)) if op == "eq" else (attr != checked(value))  # type: ignore[no-any-return]


def _in_clause(attr: Any, column: Any, inside: bool, values: list[Any], dialect: str | None) -> Any:
    array_from = backend_for(dialect).in_as_array_from
    if array_from is not None and len(values) >= array_from:
        # one array parameter: an expanded IN list stops at PostgreSQL's 32,767 bind parameters
        array = bindparam(None, values, type_=postgresql.ARRAY(column.type))
        return attr == any_(array) if inside else attr != all_(array)
    return attr.in_(values) if inside else attr.not_in(values)


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
