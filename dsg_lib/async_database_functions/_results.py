"""devsetgo-lib's result shapes: error dicts and rows as scalars / dicts / objects (private)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..errors import ConstraintViolationError, DatabaseError, translate_error

__all__ = [
    "DatabaseErrorResult",
    "error_result",
    "handle_exceptions",
    "metadata_of",
    "shape_row",
    "shape_rows",
]


class DatabaseErrorResult(dict[str, Any]):
    """The ``{"error": str, "details": str}`` dict a devsetgo-lib method returns on failure.

    It is a plain ``dict`` to every caller that compares or indexes it, and
    ``isinstance(result, DatabaseErrorResult)`` tells it apart from a
    successful result that happens to be a dict. ``result.exception`` holds
    the typed `dsg_lib.DatabaseError` (or the original exception when it was
    not a database error), for logging or re-raising.

    Examples:
        >>> result = DatabaseErrorResult({"error": "General Exception", "details": "boom"})
        >>> result == {"error": "General Exception", "details": "boom"}, result.exception
        (True, None)
    """

    exception: BaseException | None = None


def handle_exceptions(ex: Exception) -> DatabaseErrorResult:
    """Turn an exception into devsetgo-lib's error dict.

    ``error`` is ``"IntegrityError"`` for constraint violations,
    ``"SQLAlchemyError"`` for anything else the database or SQLAlchemy
    rejected, ``"General Exception"`` otherwise. ``details`` is the message up
    to its ``[SQL:`` part, as devsetgo-lib gives it, except for errors raised by
    the database driver: their text can hold the statement's bound values, so
    ``details`` is then dsg_lib's redacted message.

    Args:
        ex: The exception to describe (a raw one or a `dsg_lib.DatabaseError`).

    Returns:
        The error dict, with the typed error on ``.exception``.

    Examples:
        >>> from sqlalchemy.exc import SQLAlchemyError
        >>> result = handle_exceptions(SQLAlchemyError("boom"))
        >>> result, type(result.exception).__name__
        ({'error': 'SQLAlchemyError', 'details': 'boom'}, 'QueryError')
        >>> handle_exceptions(ValueError("oops"))
        {'error': 'General Exception', 'details': 'oops'}
    """
    return error_result(ex)


def error_result(ex: Exception, secrets: tuple[str, ...] = ()) -> DatabaseErrorResult:
    """`handle_exceptions`, masking ``secrets`` (the database password) in the details."""
    typed = ex if isinstance(ex, DatabaseError) else None
    raw = typed.driver_error if typed is not None else ex
    if isinstance(raw, SQLAlchemyError) and typed is None:
        typed = translate_error(raw, secrets=secrets)
    if typed is None:
        name, details = "General Exception", str(ex)
    else:
        name = _error_name(typed)
        from_driver = isinstance(getattr(raw, "orig", None), BaseException)
        if isinstance(raw, SQLAlchemyError) and not from_driver:
            details = str(raw).split("[SQL:")[0]
        else:
            details = typed.details
    for secret in secrets:
        details = details.replace(secret, "***")
    result = DatabaseErrorResult({"error": name, "details": details})
    result.exception = typed if typed is not None else ex
    return result


def _error_name(typed: DatabaseError) -> str:
    cause = typed.driver_error
    if isinstance(typed, ConstraintViolationError) or isinstance(cause, IntegrityError):
        return "IntegrityError"
    if cause is not None and not isinstance(typed, (ValueError, LookupError)):
        return "SQLAlchemyError"  # the database, the driver or SQLAlchemy rejected it
    return "General Exception"  # rejected by dsg_lib before any SQL was sent


def shape_row(row: Any) -> Any:
    """One row as devsetgo-lib gives it: a ``Row`` becomes its value (one column) or a dict."""
    # Row._mapping is public SQLAlchemy API (underscored only to avoid clashing with column names).
    mapping = getattr(row, "_mapping", None)
    if mapping is None:
        return row  # an ORM object or anything else: as is
    return next(iter(mapping.values())) if len(mapping) == 1 else dict(mapping)


def shape_rows(result: Any) -> list[Any]:
    """Rows as devsetgo-lib gives them: one column -> scalars (or objects), several -> dicts.

    Dicts, unlike ``Row`` tuples, are what FastAPI and ``json`` serialise.

    Examples:
        >>> import sqlite3
        >>> from sqlalchemy import create_engine, text
        >>> with create_engine("sqlite://").connect() as conn:
        ...     shape_rows(conn.execute(text("select 1 as a, 2 as b")))
        [{'a': 1, 'b': 2}]
    """
    keys = getattr(result, "keys", None)
    if callable(keys) and len(keys()) == 1:
        return list(result.scalars().all())
    return [shape_row(row) for row in result.fetchall()]


def metadata_of(statement: Any, result: Any, rows: list[Any]) -> dict[str, Any]:
    """devsetgo-lib's DML metadata: ``rowcount``, ``inserted_primary_key`` (inserts), ``rows``.

    Examples:
        >>> from sqlalchemy import create_engine, text
        >>> with create_engine("sqlite://").connect() as conn:
        ...     metadata_of(text("select 1"), conn.execute(text("select 1")), [1])
        {'rowcount': -1, 'rows': [1]}
    """
    meta: dict[str, Any] = {"rowcount": getattr(result, "rowcount", None)}
    if isinstance(statement, Insert):
        try:
            key = result.inserted_primary_key
        except Exception:  # ORM bulk and multi-row inserts have no single key
            key = None
        # a list, not a Row: FastAPI and json serialise it
        meta["inserted_primary_key"] = list(key) if key is not None else None
    if rows:
        meta["rows"] = rows
    return meta
