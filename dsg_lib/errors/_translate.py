"""Mapping of driver and SQLAlchemy exceptions onto the `dsg_lib.errors` hierarchy.

Private: the public names (`translate_error`, `map_errors`, `redact_values`)
are re-exported by `dsg_lib.errors`. Classification goes by SQLSTATE
(PostgreSQL), errno (MySQL / MariaDB) and extended result code (SQLite),
then by the kind of connection failure, then by SQLAlchemy's wrapper type.
This module also installs the log filter that strips bound values from
what drivers log.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import exc as orm_exc

from ._hierarchy import (
    ConstraintViolationError,
    DatabaseError,
    DatabaseUnavailableError,
    InvalidInputError,
    MultipleRecordsFoundError,
    PoolTimeoutError,
    QueryError,
    RecordNotFoundError,
    StaleRecordError,
    StatementTimeoutError,
    TransactionConflictError,
)
from ._redact import clean_message, install_driver_log_filters
from .codes import (
    MY_CHECK,
    MY_COLUMN,
    MY_CONFLICT,
    MY_CONSTRAINT,
    MY_DATA,
    MY_FK,
    MY_FK_COLUMNS,
    MY_KEY,
    MY_TIMEOUT,
    MY_UNAVAILABLE,
    PG_CONFLICT,
    PG_CONSTRAINT,
    PG_KEY_COLUMNS,
    PG_NO_WRITABLE_HOST,
    PG_READ_ONLY,
    PG_TIMEOUT,
    PG_UNAVAILABLE_PREFIX,
    SQLITE_COLUMN,
    SQLITE_CONSTRAINT,
    SQLITE_MESSAGES,
)


def _driver_chain(exc: BaseException) -> Iterator[BaseException]:
    """Yield ``exc``, its SQLAlchemy ``orig`` and their causes, each once."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop(0)
        # DBAPIError.orig is whatever was passed in: not always an exception
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo.append(getattr(item, "orig", None))
        todo.append(item.__cause__)


def _first_attr(chain: Iterable[BaseException], name: str) -> Any:
    for item in chain:
        value = getattr(item, name, None)
        if value:
            return value
    return None


def _mysql_errno(chain: Iterable[BaseException]) -> int | None:
    for item in chain:
        module = type(item).__module__
        if module.startswith(("pymysql", "aiomysql", "asyncmy")) and item.args:
            first = item.args[0]
            if isinstance(first, int):
                return first
    return None


def _driver_message(chain: list[BaseException]) -> str:
    """The innermost driver's own message, without SQL or parameters."""
    for item in reversed(chain):
        if isinstance(item, sa_exc.SQLAlchemyError):
            continue
        if (
            item.args
            and isinstance(item.args[-1], str)
            and type(item).__module__.startswith(("pymysql", "aiomysql", "asyncmy"))
        ):
            return str(item.args[-1])
        text = str(item).strip()
        if text:
            return text.splitlines()[0] if type(item).__module__.startswith("asyncpg") else text
    if chain and isinstance(chain[0], sa_exc.StatementError):
        return type(chain[0].orig).__name__ if chain[0].orig is not None else "statement failed"
    return str(chain[0]) if chain else ""


def translate_error(
    exc: BaseException, *, secrets: Iterable[str] = (), show_values: bool = False
) -> DatabaseError:
    """Convert a driver or SQLAlchemy exception into the ``dsg_lib`` hierarchy.

    The returned error keeps the driver's own exception (SQLAlchemy's
    ``orig``), or ``exc`` itself when no driver was involved, on
    ``driver_error``; its ``__cause__`` is ``None`` and its context is
    suppressed, so a printed traceback never shows the driver's text (which
    can hold bound values). A missing-table error gets a hint
    (create_tables / db.Base). A `DatabaseError` is returned unchanged.

    Args:
        exc: The exception raised by SQLAlchemy or a driver.
        secrets: Strings (passwords) to mask in the message.
        show_values: Keep bound values that some drivers put in messages
            (``Duplicate entry 'x'``). Off unless the engine echoes SQL.

    Returns:
        The matching `DatabaseError` subclass instance.

    Examples:
        >>> from sqlalchemy.exc import NoResultFound
        >>> type(translate_error(NoResultFound("none"))).__name__
        'RecordNotFoundError'
    """
    if isinstance(exc, DatabaseError):
        return exc
    secrets = tuple(s for s in secrets if s)
    chain = list(_driver_chain(exc))
    result = _classify(exc, chain, secrets, show_values)
    if _is_missing_table(chain, result):
        result.details += _MISSING_TABLE_HINT
        result.args = (result.details,)
    # The driver's error stays reachable for debugging, out of the printed chain: its text
    # (PostgreSQL's DETAIL line, PyMySQL's "Duplicate entry") and SQLAlchemy's wrapper
    # (the SQL and its parameters) would put values in every formatted traceback.
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else None
    result.driver_error = orig if isinstance(orig, BaseException) else exc
    result.__cause__ = None
    result.__suppress_context__ = True
    return result


#: appended to "no such table" / "relation does not exist" / MySQL 1146 messages
_MISSING_TABLE_HINT = (
    " (hint: did you call create_tables()? is the model declared on db.Base, the Base of this database?)"
)


def _is_missing_table(chain: list[BaseException], result: DatabaseError) -> bool:
    if not isinstance(result, QueryError):
        return False
    if _mysql_errno(chain) == 1146 or _first_attr(chain, "sqlstate") == "42P01":
        return True
    return any(type(i).__module__ == "sqlite3" and str(i).startswith("no such table") for i in chain)


def _classify(
    exc: BaseException, chain: list[BaseException], secrets: tuple[str, ...], show_values: bool
) -> DatabaseError:
    """Try each classifier in turn, most specific evidence first; the first answer wins."""
    message = clean_message(_driver_message(chain), secrets, show_values)
    for classifier in _CLASSIFIERS:
        result = classifier(exc, chain, message)
        if result is not None:
            return result
    return QueryError(message or type(exc).__name__)


def _from_sqlalchemy_result(
    exc: BaseException, chain: list[BaseException], message: str
) -> DatabaseError | None:
    """Errors SQLAlchemy raises itself: result shape and pool checkout."""
    if isinstance(exc, sa_exc.NoResultFound):
        return RecordNotFoundError(message or "no row found")
    if isinstance(exc, sa_exc.MultipleResultsFound):
        return MultipleRecordsFoundError(message or "more than one row found")
    if isinstance(exc, sa_exc.TimeoutError):
        return PoolTimeoutError(f"connection pool exhausted: {message}")
    if isinstance(exc, orm_exc.StaleDataError):  # a versioned row moved on (optimistic locking)
        return StaleRecordError(message or "the row changed since it was read (its version moved on)")
    return None


def _from_driver_code(exc: BaseException, chain: list[BaseException], message: str) -> DatabaseError | None:
    """The driver's own code: errno, SQLSTATE or SQLite result name."""
    if _no_writable_host(chain):
        return DatabaseUnavailableError(f"no writable host (failover in progress?): {message}")
    errno = _mysql_errno(chain)  # before SQLSTATE: MySQL's are too coarse ("23000")
    if errno is not None:
        return _from_mysql_errno(errno, message)
    sqlstate = _first_attr(chain, "sqlstate")
    if sqlstate:
        return _from_sqlstate(str(sqlstate), chain, message)
    sqlite_name = _first_attr(chain, "sqlite_errorname")
    if sqlite_name or any(type(i).__module__ == "sqlite3" for i in chain):
        return _from_sqlite(str(sqlite_name or ""), message)
    return None


#: exceptions anywhere in the chain that mean the network or the server went away
_UNREACHABLE = (OSError, ConnectionError, socket.gaierror, asyncio.TimeoutError)
#: driver exception names that mean a lost connection when their message says so
_LOST_CONNECTION_NAMES = {"ConnectionDoesNotExistError", "InterfaceError"}


def _from_lost_connection(
    exc: BaseException, chain: list[BaseException], message: str
) -> DatabaseError | None:
    """No code to go by: a connection SQLAlchemy invalidated, a socket error, a closed connection."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return DatabaseUnavailableError(f"connection lost: {message}")
    for item in chain:
        if isinstance(item, _UNREACHABLE):
            return DatabaseUnavailableError(f"database unreachable: {message or type(item).__name__}")
        if type(item).__name__ in _LOST_CONNECTION_NAMES and (
            "closed" in str(item) or "connection" in str(item).lower()
        ):
            return DatabaseUnavailableError(f"connection lost: {message}")
    return None


#: SQLAlchemy wrapper type -> (error class, message prefix); checked in order, subclasses
#: before their bases (the DBAPIError family is a subclass of StatementError).
_WRAPPER_TYPES: tuple[tuple[type[BaseException], type[DatabaseError], str], ...] = (
    (sa_exc.OperationalError, DatabaseUnavailableError, ""),
    (sa_exc.DataError, InvalidInputError, ""),
    (sa_exc.IntegrityError, ConstraintViolationError, ""),
    (sa_exc.DBAPIError, QueryError, ""),
    # Raised before the driver ran: a value could not be bound or processed.
    (sa_exc.StatementError, InvalidInputError, "value could not be sent to the database: "),
    (sa_exc.ArgumentError, InvalidInputError, ""),
    (sa_exc.CompileError, InvalidInputError, ""),
)


def _from_wrapper_type(exc: BaseException, chain: list[BaseException], message: str) -> DatabaseError | None:
    """Last resort: the SQLAlchemy exception type alone."""
    for wrapper, error_class, prefix in _WRAPPER_TYPES:
        if isinstance(exc, wrapper):
            return error_class(prefix + message)
    return None


_Classifier = Callable[[BaseException, list[BaseException], str], "DatabaseError | None"]
_CLASSIFIERS: tuple[_Classifier, ...] = (
    _from_sqlalchemy_result,
    _from_driver_code,
    _from_lost_connection,
    _from_wrapper_type,
)


def _no_writable_host(chain: list[BaseException]) -> bool:
    """Connecting found no host of a multi-host URI that satisfies ``target_session_attrs``."""
    return any(type(item).__name__ in PG_NO_WRITABLE_HOST for item in chain)


def _from_sqlstate(sqlstate: str, chain: list[BaseException], message: str) -> DatabaseError:
    if sqlstate.startswith("23"):
        return ConstraintViolationError(
            message,
            constraint=_first_attr(chain, "constraint_name"),
            kind=PG_CONSTRAINT.get(sqlstate, "unknown"),
            columns=_pg_columns(chain),
        )
    if sqlstate in PG_CONFLICT:
        return TransactionConflictError(message)
    if sqlstate in PG_TIMEOUT:
        return StatementTimeoutError(message)
    if sqlstate == PG_READ_ONLY:  # a failover on every URI (see PG_FAILOVER)
        return DatabaseUnavailableError(f"the server is read-only (standby or demoted primary): {message}")
    if sqlstate.startswith(PG_UNAVAILABLE_PREFIX):
        return DatabaseUnavailableError(message)
    if sqlstate.startswith("22"):
        return InvalidInputError(message)
    return QueryError(message)


def _pg_columns(chain: list[BaseException]) -> tuple[str, ...]:
    """The columns asyncpg names: ``column_name`` (NOT NULL) or the ``Key (a, b)=`` of ``detail``."""
    column = _first_attr(chain, "column_name")
    if isinstance(column, str):
        return (column,)
    detail = _first_attr(chain, "detail")
    match = PG_KEY_COLUMNS.match(detail) if isinstance(detail, str) else None
    return _split_columns(match.group(1)) if match else ()


def _split_columns(text: str) -> tuple[str, ...]:
    """``"a, b"`` / ``"`a`,`b`"`` / ``"t.a, t.b"`` -> ``("a", "b")``."""
    names = (part.strip().strip('`"').rsplit(".", 1)[-1] for part in text.split(","))
    return tuple(name for name in names if name)


def _from_mysql_errno(errno: int, message: str) -> DatabaseError:
    if errno in MY_CONSTRAINT:
        kind = MY_CONSTRAINT[errno]
        match = (MY_KEY if kind == "unique" else MY_FK if kind == "foreign_key" else MY_CHECK).search(message)
        constraint = next((g for g in match.groups() if g), None) if match else None
        if kind == "not_null":
            found = MY_COLUMN.match(message)
        elif kind == "foreign_key":
            found = MY_FK_COLUMNS.search(message)
        else:
            found = None
        columns = _split_columns(found.group(1)) if found else ()
        return ConstraintViolationError(
            f"({errno}) {message}", constraint=constraint, kind=kind, columns=columns
        )
    if errno in MY_CONFLICT:
        return TransactionConflictError(f"({errno}) {message}")
    if errno in MY_TIMEOUT:
        return StatementTimeoutError(f"({errno}) {message}")
    if errno in MY_UNAVAILABLE:
        return DatabaseUnavailableError(f"({errno}) {message}")
    if errno in MY_DATA:
        return InvalidInputError(f"({errno}) {message}")
    return QueryError(f"({errno}) {message}")


def _from_sqlite(name: str, message: str) -> DatabaseError:
    kind = SQLITE_CONSTRAINT.get(name)
    if kind is None and name.startswith("SQLITE_CONSTRAINT"):
        kind = "unknown"
    if kind is None:
        kind = next((k for text, k in SQLITE_MESSAGES if text in message), None)
    if kind is not None:
        match = SQLITE_COLUMN.search(message)
        return ConstraintViolationError(
            message,
            constraint=match.group(1) if match else None,
            kind=kind,
            columns=_split_columns(match.group(1)) if match and kind != "check" else (),
        )
    if name == "SQLITE_INTERRUPT" or message == "interrupted":
        return StatementTimeoutError(f"statement interrupted after its time limit: {message}")
    # Python < 3.11 has no sqlite_errorname: the messages of SQLITE_BUSY and SQLITE_CANTOPEN say it
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_IOERR")) or (
        "database is locked" in message or "unable to open database file" in message
    ):
        return DatabaseUnavailableError(message)
    if name.startswith(("SQLITE_TOOBIG", "SQLITE_MISMATCH", "SQLITE_RANGE")) or "too large" in message:
        return InvalidInputError(message)
    if "Python int too large" in message or "out of range" in message:
        return InvalidInputError(message)
    return QueryError(message)


def map_errors(*, secrets: Iterable[str] = (), show_values: bool = False) -> AbstractContextManager[None]:
    """Context manager that re-raises any non-``dsg_lib`` error translated.

    ``asyncio.CancelledError``, ``KeyboardInterrupt`` and other
    ``BaseException`` subclasses pass through untouched.

    Examples:
        >>> from sqlalchemy.exc import NoResultFound
        >>> try:
        ...     with map_errors():
        ...         raise NoResultFound("nothing")
        ... except RecordNotFoundError as err:
        ...     type(err.driver_error).__name__, err.__cause__
        ('NoResultFound', None)
    """
    return _ErrorMap(tuple(secrets), show_values)


class _ErrorMap(AbstractContextManager[None]):
    """`map_errors`: a class, not a generator, so that no frame of the printed traceback holds
    the driver's error in a variable of its line (loguru's ``diagnose`` prints those)."""

    def __init__(self, secrets: tuple[str, ...], show_values: bool) -> None:
        self.secrets = secrets
        self.show_values = show_values

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        error = self._translated(exc)
        if error is not None:
            raise error from None

    def _translated(self, exc: BaseException | None) -> DatabaseError | None:
        if exc is None or isinstance(exc, DatabaseError) or not isinstance(exc, Exception):
            return None
        if isinstance(exc, (sa_exc.SQLAlchemyError, OSError, asyncio.TimeoutError)) or _is_driver_error(exc):
            return translate_error(exc, secrets=self.secrets, show_values=self.show_values)
        if isinstance(exc, _DRIVER_VALUE_ERRORS) and _raised_in_driver(exc):
            return _value_error(exc)
        return None


_DRIVER_MODULES = ("asyncpg", "aiomysql", "pymysql", "asyncmy", "sqlite3", "aiosqlite")
# Builtin exceptions a driver raises while binding a value it cannot send (a lone
# surrogate, an int too large for SQLite, a dict/list for PyMySQL's escaping).
_DRIVER_VALUE_ERRORS = (UnicodeEncodeError, OverflowError, TypeError)


def _is_driver_error(exc: BaseException) -> bool:
    module = type(exc).__module__
    return module.startswith(_DRIVER_MODULES)


def _raised_in_driver(exc: BaseException) -> bool:
    """True when a frame of ``exc``'s traceback belongs to a database driver."""
    tb = exc.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(_DRIVER_MODULES):
            return True
        tb = tb.tb_next
    return False


def _value_error(exc: BaseException) -> InvalidInputError:
    # UnicodeEncodeError's text can hold the whole statement with its values (PyMySQL
    # encodes the interpolated query): keep only the reason.
    reason = exc.reason if isinstance(exc, UnicodeEncodeError) else str(exc)
    error = InvalidInputError(
        f"value could not be sent to the database: {type(exc).__name__}: {reason}"[:300]
    )
    error.driver_error = exc
    return error


install_driver_log_filters()  # at import: before any engine (and so any driver connection) exists
