"""The one exception hierarchy of ``dsg_lib`` and the mapping from driver errors.

Every failure that reaches a caller is a `DatabaseError`:

```text
DatabaseError                      .details  .to_dict()  __cause__ = driver error
├── ConfigurationError             (also ValueError)
│   └── MissingDependencyError     driver not installed: says which extra to install
├── InvalidInputError              (also ValueError)
├── NotConnectedError
├── SessionMissingError
├── DatabaseUnavailableError       refused / lost / timed out
│   └── PoolTimeoutError
├── RecordNotFoundError            (also LookupError)
├── MultipleRecordsFoundError
├── ConstraintViolationError       unique / foreign key / not null / check
├── TransactionConflictError       deadlock / serialization failure
├── QueryError                     anything else the database rejected
│   └── StatementTimeoutError      the statement ran past its time limit
└── QueryBudgetExceededError       a query_budget() block issued too many statements
```

Driver errors (asyncpg, aiomysql / asyncmy / PyMySQL, sqlite3 through
aiosqlite) and SQLAlchemy's own errors are converted in exactly one place,
`translate_error`, by SQLSTATE (PostgreSQL), errno (MySQL / MariaDB) and
extended result code (SQLite). The original exception is kept as
``__cause__``. Messages never contain the connection password, and the
values of a failed statement only when the engine was created with ``echo``.

Examples:
    >>> from dsg_lib import RecordNotFoundError
    >>> err = RecordNotFoundError("User 42 not found")
    >>> err.to_dict()
    {'error': 'RecordNotFoundError', 'details': 'User 42 not found'}
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import exc as sa_exc

__all__ = [
    "ConfigurationError",
    "ConstraintViolationError",
    "DatabaseError",
    "DatabaseUnavailableError",
    "InvalidInputError",
    "MissingDependencyError",
    "MultipleRecordsFoundError",
    "NotConnectedError",
    "PoolTimeoutError",
    "QueryBudgetExceededError",
    "QueryError",
    "RecordNotFoundError",
    "SessionMissingError",
    "StatementTimeoutError",
    "TransactionConflictError",
    "map_errors",
    "redact_values",
    "translate_error",
]


class DatabaseError(Exception):
    """Base class of every error raised by ``dsg_lib``.

    Args:
        details: A human readable message. It never holds a password.

    Examples:
        >>> try:
        ...     raise DatabaseError("boom")
        ... except DatabaseError as err:
        ...     err.to_dict()
        {'error': 'DatabaseError', 'details': 'boom'}
    """

    def __init__(self, details: str = "") -> None:
        super().__init__(details)
        self.details = details

    def to_dict(self) -> dict[str, str]:
        """Return the devsetgo-lib error shape ``{"error": ..., "details": ...}``.

        Examples:
            >>> QueryError("syntax error").to_dict()["error"]
            'QueryError'
        """
        return {"error": type(self).__name__, "details": self.details}

    def __str__(self) -> str:
        return self.details


class ConfigurationError(DatabaseError, ValueError):
    """The configuration is invalid: unknown key, wrong type, bad URI.

    Examples:
        >>> raise ConfigurationError("unknown key 'poolsize'")
        Traceback (most recent call last):
        ...
        dsg_lib.errors.ConfigurationError: unknown key 'poolsize'
    """


class MissingDependencyError(ConfigurationError):
    """The driver for the requested backend is not installed.

    The message names the extra to install, e.g. ``pip install "dsg_lib[postgres]"``.

    Examples:
        >>> issubclass(MissingDependencyError, ConfigurationError)
        True
    """


class InvalidInputError(DatabaseError, ValueError):
    """A value, filter, column name or cursor given by the caller is not valid.

    Raised before any SQL is sent where it can be checked, or mapped from the
    database's data errors (value too long, out of range, bad encoding).

    Examples:
        >>> issubclass(InvalidInputError, ValueError)
        True
    """


class NotConnectedError(DatabaseError):
    """The database was disconnected; create a new ``AsyncDatabase`` or ``connect()`` again.

    Examples:
        >>> NotConnectedError("disconnected").to_dict()["error"]
        'NotConnectedError'
    """


class SessionMissingError(DatabaseError):
    """``current_session()`` was called outside ``transaction()`` or a request scope.

    Examples:
        >>> SessionMissingError("no session").details
        'no session'
    """


class DatabaseUnavailableError(DatabaseError):
    """The database refused the connection, lost it, or did not answer in time.

    Examples:
        >>> DatabaseUnavailableError("connection refused").to_dict()["error"]
        'DatabaseUnavailableError'
    """


class PoolTimeoutError(DatabaseUnavailableError):
    """No pooled connection became free within ``pool_timeout``.

    Examples:
        >>> issubclass(PoolTimeoutError, DatabaseUnavailableError)
        True
    """


class RecordNotFoundError(DatabaseError, LookupError):
    """No row matched where exactly one was required.

    Examples:
        >>> issubclass(RecordNotFoundError, LookupError)
        True
    """


class MultipleRecordsFoundError(DatabaseError):
    """More than one row matched where exactly one was required.

    Examples:
        >>> MultipleRecordsFoundError("2 rows").details
        '2 rows'
    """


class ConstraintViolationError(DatabaseError):
    """A unique, foreign key, not null or check constraint rejected the change.

    Attributes:
        constraint: The constraint (or ``table.column`` on SQLite) when the
            driver reports it, else ``None``.
        kind: One of ``"unique"``, ``"foreign_key"``, ``"not_null"``,
            ``"check"`` or ``"unknown"``.

    Examples:
        >>> err = ConstraintViolationError("duplicate", constraint="uq_email", kind="unique")
        >>> (err.constraint, err.kind)
        ('uq_email', 'unique')
    """

    def __init__(self, details: str = "", *, constraint: str | None = None, kind: str = "unknown") -> None:
        super().__init__(details)
        self.constraint = constraint
        self.kind = kind


class TransactionConflictError(DatabaseError):
    """A deadlock, serialization failure or lock wait timeout; retrying may succeed.

    `AsyncDatabase.run_in_transaction` retries on it.

    Examples:
        >>> TransactionConflictError("deadlock detected").to_dict()["error"]
        'TransactionConflictError'
    """


class QueryError(DatabaseError):
    """The database rejected the statement for any other reason.

    Examples:
        >>> QueryError("syntax error").details
        'syntax error'
    """


class StatementTimeoutError(QueryError):
    """The statement ran longer than its time limit and was cancelled by the server.

    The connection stays usable.

    Examples:
        >>> issubclass(StatementTimeoutError, QueryError)
        True
    """


class QueryBudgetExceededError(DatabaseError, AssertionError):
    """A ``db.query_budget(max_queries=N)`` block issued more than ``N`` statements.

    Raised when the block ends. The message lists the statements (SQL text
    only, never bound values), repeated ones counted once with ``(xN)``: an
    N+1 pattern shows as one statement repeated once per row. It is also an
    ``AssertionError``, so a test fails with it like with ``assert``.

    Attributes:
        max_queries: The budget.
        statements: Every counted statement's SQL text, in order.

    Examples:
        >>> err = QueryBudgetExceededError(max_queries=1, statements=["SELECT 1", "SELECT 1"])
        >>> print(err)
        2 statements issued, budget 1:
          2x SELECT 1
    """

    def __init__(
        self, details: str = "", *, max_queries: int = 0, statements: list[str] | None = None
    ) -> None:
        self.max_queries = max_queries
        self.statements = list(statements or [])
        if not details:
            details = _budget_report(self.max_queries, self.statements)
        super().__init__(details)


def _budget_report(max_queries: int, statements: list[str], width: int = 300) -> str:
    """Group identical statements, in order of first use, each one on a line."""
    counts: dict[str, int] = {}
    for statement in statements:
        text = " ".join(statement.split())
        text = text[:width] + ("..." if len(text) > width else "")
        counts[text] = counts.get(text, 0) + 1
    lines = [f"{len(statements)} statements issued, budget {max_queries}:"]
    lines += [f"  {n}x {text}" for text, n in counts.items()]
    return "\n".join(lines)


# --------------------------------------------------------------------------- #
# Classification tables                                                        #
# --------------------------------------------------------------------------- #

_PG_CONSTRAINT = {"23505": "unique", "23503": "foreign_key", "23502": "not_null", "23514": "check"}
_PG_CONFLICT = {"40001", "40P01", "55P03"}
_PG_UNAVAILABLE_PREFIX = ("08", "53", "57P0", "28", "3D")
_PG_TIMEOUT = {"57014"}

_MY_CONSTRAINT = {
    1062: "unique",
    1586: "unique",
    1451: "foreign_key",
    1452: "foreign_key",
    1216: "foreign_key",
    1217: "foreign_key",
    1048: "not_null",
    1364: "not_null",
    3819: "check",
    4025: "check",
}
_MY_CONFLICT = {1213, 1205, 1020}
_MY_UNAVAILABLE = {
    1040,
    1047,  # Galera: node not in the primary component ("WSREP has not yet prepared node")
    1044,
    1045,
    1049,
    1053,
    1152,
    1158,
    1159,
    1160,
    1161,
    1927,
    2002,
    2003,
    2005,
    2006,
    2013,
    2014,
    2026,
    2055,
}
_MY_TIMEOUT = {1969, 3024, 1317, 1028}
# 1153: a packet over max_allowed_packet. The same request would fail again: not "unavailable".
_MY_DATA = {1264, 1265, 1292, 1366, 1367, 1406, 1411, 1690, 1138, 3140, 1300, 4078, 1153}

_SQLITE_CONSTRAINT = {
    "SQLITE_CONSTRAINT_UNIQUE": "unique",
    "SQLITE_CONSTRAINT_PRIMARYKEY": "unique",
    "SQLITE_CONSTRAINT_FOREIGNKEY": "foreign_key",
    "SQLITE_CONSTRAINT_NOTNULL": "not_null",
    "SQLITE_CONSTRAINT_CHECK": "check",
}
_SQLITE_MESSAGES = (
    ("UNIQUE constraint failed", "unique"),
    ("FOREIGN KEY constraint failed", "foreign_key"),
    ("NOT NULL constraint failed", "not_null"),
    ("CHECK constraint failed", "check"),
)

# Patterns that reveal bound values in driver messages; redacted unless echo is on.
_VALUE_PATTERNS = (
    re.compile(r"(Duplicate entry )'.*?'( for key)", re.S),
    re.compile(r"(Incorrect \w+ value: )'.*?'", re.S),
    # MariaDB names only the column here ("Out of range value for column 'c' at row 1"): nothing to hide
    re.compile(r"(value is out of range in )'.*?'", re.S),  # MySQL 1690: the expression holds literals
    re.compile(r"(value )\".*?\"( is out of range for type)", re.S),  # PostgreSQL 22003
    re.compile(r"(invalid input syntax for type \w+: )\".*?\"", re.S),
    re.compile(r"(invalid input value for enum \w+: )\".*?\"", re.S),
    re.compile(r"(Truncated incorrect \w+ value: )'.*?'", re.S),
)
_MY_KEY = re.compile(r"for key '([^']+)'")
_MY_FK = re.compile(r"CONSTRAINT `([^`]+)`")
_MY_CHECK = re.compile(r"CONSTRAINT `([^`]+)` failed|constraint '([^']+)'", re.I)
_SQLITE_COLUMN = re.compile(r"constraint failed: (.+)$")


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


def redact_values(message: str) -> str:
    """Replace the bound values drivers quote in their messages with ``'<redacted>'``.

    Column, key and constraint names are kept: they say what went wrong
    without saying what the value was.

    Args:
        message: A driver or server message.

    Returns:
        The message with every known value position redacted.

    Examples:
        >>> redact_values("Duplicate entry 'ada@example.com' for key 'email'")
        "Duplicate entry '<redacted>' for key 'email'"
        >>> redact_values("Out of range value for column 'small' at row 1")
        "Out of range value for column 'small' at row 1"
    """
    for pattern in _VALUE_PATTERNS:
        message = pattern.sub(
            lambda m: m.group(1) + "'<redacted>'" + (m.group(2) if m.lastindex and m.lastindex >= 2 else ""),
            message,
        )
    return message


def _clean(message: str, secrets: Iterable[str], show_values: bool) -> str:
    if not show_values:
        message = redact_values(message)
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message


def translate_error(
    exc: BaseException, *, secrets: Iterable[str] = (), show_values: bool = False
) -> DatabaseError:
    """Convert a driver or SQLAlchemy exception into the ``dsg_lib`` hierarchy.

    The returned error has the driver's own exception (SQLAlchemy's ``orig``)
    as its ``__cause__``, or ``exc`` itself when no driver was involved, and
    ``__suppress_context__`` set: a traceback shows one link, not the
    SQLAlchemy wrapper in between. A missing-table error gets a hint
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
    # One link to the driver's own error: SQLAlchemy's wrapper repeats it with the SQL
    # (and bound values) and would make every traceback three chained levels deep.
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else None
    result.__cause__ = orig if isinstance(orig, BaseException) else exc
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
    message = _clean(_driver_message(chain), secrets, show_values)

    if isinstance(exc, sa_exc.NoResultFound):
        return RecordNotFoundError(message or "no row found")
    if isinstance(exc, sa_exc.MultipleResultsFound):
        return MultipleRecordsFoundError(message or "more than one row found")
    if isinstance(exc, sa_exc.TimeoutError):
        return PoolTimeoutError(f"connection pool exhausted: {message}")

    if _server_gone(exc, chain):
        return DatabaseUnavailableError(f"the server is no longer the primary (failover?): {message}")
    errno = _mysql_errno(chain)  # before SQLSTATE: MySQL's are too coarse ("23000")
    if errno is not None:
        return _from_mysql_errno(errno, message)
    sqlstate = _first_attr(chain, "sqlstate")
    if sqlstate:
        return _from_sqlstate(str(sqlstate), chain, message)
    sqlite_name = _first_attr(chain, "sqlite_errorname")
    if sqlite_name or any(type(i).__module__ == "sqlite3" for i in chain):
        return _from_sqlite(str(sqlite_name or ""), message)

    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return DatabaseUnavailableError(f"connection lost: {message}")
    for item in chain:
        if isinstance(item, (OSError, ConnectionError, socket.gaierror, asyncio.TimeoutError)):
            return DatabaseUnavailableError(f"database unreachable: {message or type(item).__name__}")
        if type(item).__name__ in {"ConnectionDoesNotExistError", "InterfaceError"} and (
            "closed" in str(item) or "connection" in str(item).lower()
        ):
            return DatabaseUnavailableError(f"connection lost: {message}")
    if isinstance(exc, sa_exc.DBAPIError):
        if isinstance(exc, sa_exc.OperationalError):
            return DatabaseUnavailableError(message)
        if isinstance(exc, sa_exc.DataError):
            return InvalidInputError(message)
        if isinstance(exc, sa_exc.IntegrityError):
            return ConstraintViolationError(message)
        return QueryError(message)
    if isinstance(exc, sa_exc.StatementError):
        # Raised before the driver ran: a value could not be bound or processed.
        return InvalidInputError(f"value could not be sent to the database: {message}")
    if isinstance(exc, (sa_exc.ArgumentError, sa_exc.CompileError)):
        return InvalidInputError(message)
    return QueryError(message or type(exc).__name__)


def _server_gone(exc: BaseException, chain: list[BaseException]) -> bool:
    """A demoted primary (read-only, flagged as a disconnect by a multi-host engine) or no writable host."""
    if any(type(item).__name__ == "TargetServerAttributeNotMatched" for item in chain):
        return True
    return (
        isinstance(exc, sa_exc.DBAPIError)
        and exc.connection_invalidated
        and _first_attr(chain, "sqlstate") == "25006"
    )


def _from_sqlstate(sqlstate: str, chain: list[BaseException], message: str) -> DatabaseError:
    if sqlstate in _PG_CONSTRAINT:
        constraint = _first_attr(chain, "constraint_name")
        return ConstraintViolationError(message, constraint=constraint, kind=_PG_CONSTRAINT[sqlstate])
    if sqlstate.startswith("23"):
        return ConstraintViolationError(message, constraint=_first_attr(chain, "constraint_name"))
    if sqlstate in _PG_CONFLICT:
        return TransactionConflictError(message)
    if sqlstate in _PG_TIMEOUT:
        return StatementTimeoutError(message)
    if sqlstate.startswith(_PG_UNAVAILABLE_PREFIX):
        return DatabaseUnavailableError(message)
    if sqlstate.startswith("22"):
        return InvalidInputError(message)
    return QueryError(message)


def _from_mysql_errno(errno: int, message: str) -> DatabaseError:
    if errno in _MY_CONSTRAINT:
        kind = _MY_CONSTRAINT[errno]
        match = (_MY_KEY if kind == "unique" else _MY_FK if kind == "foreign_key" else _MY_CHECK).search(
            message
        )
        constraint = next((g for g in match.groups() if g), None) if match else None
        return ConstraintViolationError(f"({errno}) {message}", constraint=constraint, kind=kind)
    if errno in _MY_CONFLICT:
        return TransactionConflictError(f"({errno}) {message}")
    if errno in _MY_TIMEOUT:
        return StatementTimeoutError(f"({errno}) {message}")
    if errno in _MY_UNAVAILABLE:
        return DatabaseUnavailableError(f"({errno}) {message}")
    if errno in _MY_DATA:
        return InvalidInputError(f"({errno}) {message}")
    return QueryError(f"({errno}) {message}")


def _from_sqlite(name: str, message: str) -> DatabaseError:
    kind = _SQLITE_CONSTRAINT.get(name)
    if kind is None and name.startswith("SQLITE_CONSTRAINT"):
        kind = "unknown"
    if kind is None:
        kind = next((k for text, k in _SQLITE_MESSAGES if text in message), None)
    if kind is not None:
        match = _SQLITE_COLUMN.search(message)
        return ConstraintViolationError(message, constraint=match.group(1) if match else None, kind=kind)
    if name == "SQLITE_INTERRUPT" or message == "interrupted":
        return StatementTimeoutError(f"statement interrupted after its time limit: {message}")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_IOERR")) or (
        "database is locked" in message
    ):
        return DatabaseUnavailableError(message)
    if name.startswith(("SQLITE_TOOBIG", "SQLITE_MISMATCH", "SQLITE_RANGE")) or "too large" in message:
        return InvalidInputError(message)
    if "Python int too large" in message or "out of range" in message:
        return InvalidInputError(message)
    return QueryError(message)


@contextmanager
def map_errors(*, secrets: Iterable[str] = (), show_values: bool = False) -> Iterator[None]:
    """Context manager that re-raises any non-``dsg_lib`` error translated.

    ``asyncio.CancelledError``, ``KeyboardInterrupt`` and other
    ``BaseException`` subclasses pass through untouched.

    Examples:
        >>> from sqlalchemy.exc import NoResultFound
        >>> try:
        ...     with map_errors():
        ...         raise NoResultFound("nothing")
        ... except RecordNotFoundError as err:
        ...     type(err.__cause__).__name__
        'NoResultFound'
    """
    try:
        yield
    except DatabaseError:
        raise
    except (sa_exc.SQLAlchemyError, OSError, asyncio.TimeoutError) as exc:
        error = translate_error(exc, secrets=secrets, show_values=show_values)
        raise error from error.__cause__
    except Exception as exc:
        if _is_driver_error(exc):
            error = translate_error(exc, secrets=secrets, show_values=show_values)
            raise error from error.__cause__
        if isinstance(exc, _DRIVER_VALUE_ERRORS) and _raised_in_driver(exc):
            raise _value_error(exc) from exc
        raise


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
    error.__cause__ = exc
    return error


class _RedactDriverLog(logging.Filter):
    """Strip bound values from what drivers log through python ``logging``.

    asyncmy logs every server warning (``Truncated incorrect DOUBLE value:
    '<the value>'``) and the arguments of ``callproc``; dsg_lib never lets a
    value reach a log, so each record is rewritten before any handler sees it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "%r":  # asyncmy's callproc arguments: nothing but values
            record.msg, record.args = "<redacted arguments>", ()
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: leave it to logging's own handling
            return True
        record.msg, record.args = redact_values(message), ()
        return True


#: loggers of drivers that put statement values in their records
_DRIVER_LOGGERS = ("asyncmy",)


def _install_driver_log_filters() -> None:
    for name in _DRIVER_LOGGERS:
        driver_logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactDriverLog) for f in driver_logger.filters):
            driver_logger.addFilter(_RedactDriverLog())


_install_driver_log_filters()  # at import: before any engine (and so any driver connection) exists
