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

from ._groups import MAX_DEPTH, MAX_TERMS, Q, is_q, where_list
from ._lookups import (
    MAX_PATH_STEPS,
    OPERATORS,
    build_filters,
    check_value,
    field_column,
    mapper_of,
    model_columns,
    order_terms,
    value_checker,
)
from ._value_checks import check_text, column_checker, is_json

__all__ = [
    "MAX_DEPTH",
    "MAX_PATH_STEPS",
    "MAX_TERMS",
    "OPERATORS",
    "Q",
    "build_filters",
    "check_text",
    "check_value",
    "column_checker",
    "field_column",
    "is_json",
    "is_q",
    "mapper_of",
    "model_columns",
    "order_terms",
    "value_checker",
    "where_list",
]
