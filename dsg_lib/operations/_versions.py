"""Optimistic locking helpers (private): SQLAlchemy's ``version_id_col`` and ``expected_version``.

A model opts in with ``__mapper_args__ = {"version_id_col": version}``;
SQLAlchemy then adds ``AND version = <the version read>`` to every ORM UPDATE
and DELETE of that row and bumps the counter. ``expected_version=`` lets a
caller (an HTTP client holding an ``ETag``) name the version they read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Mapper

from ..errors import InvalidInputError, StaleRecordError

__all__ = ["check_expected", "check_not_versioned", "version_attribute", "versioned_update"]


def version_attribute(mapper: Mapper[Any], model_name: str) -> str:
    """The attribute key of the model's ``version_id_col``; ``InvalidInputError`` when it has none.

    Examples:
        >>> from sqlalchemy import Integer
        >>> from sqlalchemy.orm import DeclarativeBase, mapped_column
        >>> class B(DeclarativeBase):
        ...     pass
        >>> class Doc(B):
        ...     __tablename__ = "doc"
        ...     id = mapped_column(Integer, primary_key=True)
        ...     version = mapped_column(Integer, nullable=False)
        ...     __mapper_args__ = {"version_id_col": version}
        >>> version_attribute(Doc.__mapper__, "Doc")
        'version'
    """
    column = mapper.version_id_col
    if column is None:
        raise InvalidInputError(
            f"expected_version needs a versioned model: {model_name} has no version_id_col "
            '(__mapper_args__ = {"version_id_col": ...})'
        )
    prop = mapper.get_property_by_column(column)
    return str(prop.key)


def check_expected(expected: Any, current: Any, what: str) -> None:
    """Raise `StaleRecordError` when the row's ``current`` version is not ``expected``.

    Examples:
        >>> check_expected(3, 3, "Doc 1")
        >>> check_expected(3, 4, "Doc 1")
        Traceback (most recent call last):
        ...
        dsg_lib.errors.StaleRecordError: Doc 1 is at version 4, not the expected 3
    """
    if isinstance(expected, bool) or expected is None:
        raise InvalidInputError("expected_version must be a version value (an int for a counter)")
    if current != expected:
        raise StaleRecordError(
            f"{what} is at version {current!r}, not the expected {expected!r}"[:200],
            expected=expected,
            current=current,
        )


def check_not_versioned(mapper: Mapper[Any], keys: Any, model_name: str) -> None:
    """Refuse a value for a version counter SQLAlchemy manages (it would defeat the lock).

    Examples:
        >>> from sqlalchemy import Integer
        >>> from sqlalchemy.orm import DeclarativeBase, mapped_column
        >>> class B(DeclarativeBase):
        ...     pass
        >>> class Doc(B):
        ...     __tablename__ = "doc"
        ...     id = mapped_column(Integer, primary_key=True)
        ...     version = mapped_column(Integer, nullable=False)
        ...     __mapper_args__ = {"version_id_col": version}
        >>> check_not_versioned(Doc.__mapper__, ["version"], "Doc")
        Traceback (most recent call last):
        ...
        dsg_lib.errors.InvalidInputError: 'version' of Doc is its version counter: SQLAlchemy sets it
    """
    if mapper.version_id_col is None or mapper.version_id_generator is False:
        return
    key = version_attribute(mapper, model_name)
    if key in keys:
        raise InvalidInputError(f"{key!r} of {model_name} is its version counter: SQLAlchemy sets it")


async def versioned_update(
    ops: Any,
    model: Any,
    criteria: list[Any],
    values: Mapping[str, Any],
    expected: Any,
    session: Any,
) -> int:
    """``update_where(..., expected_version=n)``: every matching row must be at version ``n``.

    In one transaction: count the rows the filters match and those of them at
    version ``n``; if they differ, `StaleRecordError` before anything is
    written. Then UPDATE them with ``AND version = n`` and the next version; if
    a concurrent writer moved a row in between, fewer rows match,
    `StaleRecordError` again and the transaction (dsg_lib's own; a caller's
    ``session=`` is the caller's to roll back) takes the change back.
    """
    mapper: Mapper[Any] = model.__mapper__
    key = version_attribute(mapper, model.__name__)
    check_expected(expected, expected, model.__name__)
    check_not_versioned(mapper, values, model.__name__)
    column = getattr(model, key)
    new_values = dict(values)
    generator = mapper.version_id_generator
    if callable(generator):  # every row updated is at ``expected``: they all get its successor
        new_values[key] = generator(expected)
    # how many rows match, and how many of them are at the expected version: one statement
    counter = select(func.count(), func.count(case((column == expected, 1)))).select_from(model)
    counter = counter.where(*criteria)
    stmt = update(model).where(*criteria, column == expected).values(**new_values)
    stmt = stmt.execution_options(synchronize_session=False)
    async with ops._session(session, write=True, autocommit=True) as s:  # noqa: SLF001 (the operations' own)
        matching, at_version = (int(n) for n in (await s.execute(counter)).one())
        if matching == 0:
            return 0
        if at_version != matching:  # refused before anything is written
            raise StaleRecordError(
                f"{matching - at_version} of {matching} matching {model.__name__} rows are not at "
                f"version {expected!r}"[:200],
                expected=expected,
            )
        result = await s.execute(stmt)
        updated = int(max(getattr(result, "rowcount", 0), 0))
        if updated != matching:  # a concurrent writer moved a row in between: rolled back
            raise StaleRecordError(
                f"{matching - updated} of {matching} {model.__name__} rows changed version meanwhile"[:200],
                expected=expected,
            )
    return updated
