"""Pydantic in and out (private): input models or mappings to column values, rows to schemas.

Pydantic is optional: it is imported only when a caller passes a Pydantic
model or ``as_=Schema`` (and then it is already imported by the caller).

Examples:
    >>> import pydantic
    >>> class UserIn(pydantic.BaseModel):
    ...     name: str
    ...     age: int | None = None
    >>> input_values(UserIn(name="Ada"), partial=True)
    {'name': 'Ada'}
    >>> input_values(UserIn(name="Ada"), partial=False)
    {'name': 'Ada', 'age': None}
    >>> class UserOut(pydantic.BaseModel):
    ...     name: str
    >>> class Row:
    ...     name = "Ada"
    >>> to_schemas(UserOut, [Row()])
    [UserOut(name='Ada')]
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from ..errors import InvalidInputError

__all__ = ["input_values", "is_pydantic_model", "to_schema", "to_schemas"]

_MAX_ERRORS_SHOWN = 5


def is_pydantic_model(value: object) -> bool:
    """Whether ``value`` is a Pydantic model instance (without importing Pydantic).

    Examples:
        >>> is_pydantic_model({"name": "Ada"})
        False
    """
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(value, pydantic.BaseModel)


def input_values(data: Any, *, partial: bool) -> dict[str, Any]:
    """Column values from a Pydantic model or a mapping.

    Args:
        data: A Pydantic model instance or a mapping of column names to values.
        partial: For a Pydantic model, only the fields that were set (PATCH:
            ``model_dump(exclude_unset=True)``); otherwise every field.

    Raises:
        InvalidInputError: ``data`` is neither.

    Examples:
        >>> input_values({"name": "Ada"}, partial=True)
        {'name': 'Ada'}
        >>> input_values(["name"], partial=True)
        Traceback (most recent call last):
        ...
        dsg_lib.errors.InvalidInputError: expected a Pydantic model or a dict of column values, got list
    """
    if is_pydantic_model(data):
        dumped: dict[str, Any] = data.model_dump(exclude_unset=partial)
        return dumped
    if isinstance(data, Mapping):
        return dict(data)
    raise InvalidInputError(
        f"expected a Pydantic model or a dict of column values, got {type(data).__name__}"[:200]
    )


@lru_cache(maxsize=256)
def _list_adapter(schema: Any) -> Any:
    import pydantic  # only when as_= is used

    return pydantic.TypeAdapter(list[schema])


def _check_schema(schema: Any) -> None:
    pydantic = sys.modules.get("pydantic")
    if pydantic is None or not (isinstance(schema, type) and issubclass(schema, pydantic.BaseModel)):
        shown = getattr(schema, "__name__", type(schema).__name__)
        raise InvalidInputError(f"as_ takes a Pydantic model class, got {shown!r}"[:200])


def to_schemas(schema: Any, objects: list[Any]) -> list[Any]:
    """``objects`` as ``schema`` instances: one ``TypeAdapter(list[schema])`` validation from attributes.

    Raises:
        InvalidInputError: an object does not fit the schema (the message names
            fields and error types, never values).
    """
    _check_schema(schema)
    import pydantic

    try:
        result: list[Any] = _list_adapter(schema).validate_python(objects, from_attributes=True)
    except pydantic.ValidationError as exc:
        errors = exc.errors()  # only loc and type are read (pydantic 2.0 has no include_input)
        problems = [
            f"{'.'.join(str(p) for p in err['loc'])}: {err['type']}" for err in errors[:_MAX_ERRORS_SHOWN]
        ]
        hint = (
            " (an attribute could not be read: a relationship that is not loaded? "
            "load it with options=[selectinload(...)])"
            if any(err["type"] == "get_attribute_error" for err in errors)
            else ""
        )
        raise InvalidInputError(
            f"rows do not fit {schema.__name__}: {'; '.join(problems)}"[:300] + hint
        ) from None
    return result


def to_schema(schema: Any, obj: Any) -> Any:
    """One object (or ``None``) as a ``schema`` instance; see `to_schemas`."""
    return None if obj is None else to_schemas(schema, [obj])[0]
