"""The exception classes of ``dsg_lib`` (private: import them from ``dsg_lib.errors``).

This module imports nothing from ``dsg_lib``: it is the bottom of the package.
"""

from __future__ import annotations

from collections.abc import Iterable

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
    "StaleRecordError",
    "StatementTimeoutError",
    "TransactionConflictError",
    "TransactionEndedError",
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

    #: the driver's (or SQLAlchemy's) own exception this error was translated from, for
    #: debugging; its text may hold bound values: never log or return it
    driver_error: BaseException | None = None

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
        columns: The columns involved, when the database names them (never
            their values), else an empty tuple: the same on every backend.

    Examples:
        >>> err = ConstraintViolationError(
        ...     "duplicate", constraint="uq_email", kind="unique", columns=("email",)
        ... )
        >>> (err.constraint, err.kind, err.columns)
        ('uq_email', 'unique', ('email',))
    """

    def __init__(
        self,
        details: str = "",
        *,
        constraint: str | None = None,
        kind: str = "unknown",
        columns: Iterable[str] = (),
    ) -> None:
        super().__init__(details)
        self.constraint = constraint
        self.kind = kind
        self.columns: tuple[str, ...] = tuple(columns)


class StaleRecordError(DatabaseError):
    """Optimistic locking: the row's version is not the one the caller read (it moved on).

    Raised by ``update_one(..., expected_version=n)`` / ``update_where(...,
    expected_version=n)`` on a model with SQLAlchemy's ``version_id_col``, and
    whenever a versioned row changed between an ORM read and its flush. A
    conflict with the current state, like a unique violation (HTTP 409, or 412
    when the request sent ``If-Match``), and unlike `TransactionConflictError`
    not retried: sending the same change again fails the same way; read the
    row again first.

    Attributes:
        expected: The version the caller expected, when known.
        current: The version the row has now, when known.

    Examples:
        >>> err = StaleRecordError("Doc 1 is at version 4, not 3", expected=3, current=4)
        >>> (err.expected, err.current, err.to_dict()["error"])
        (3, 4, 'StaleRecordError')
    """

    def __init__(self, details: str = "", *, expected: object = None, current: object = None) -> None:
        super().__init__(details)
        self.expected = expected
        self.current = current


class TransactionConflictError(DatabaseError):
    """A deadlock, serialization failure or lock wait timeout; retrying may succeed.

    `AsyncDatabase.run_in_transaction` retries on it.

    Examples:
        >>> TransactionConflictError("deadlock detected").to_dict()["error"]
        'TransactionConflictError'
    """


class TransactionEndedError(DatabaseError):
    """The database ended the transaction of a ``transaction()`` block by itself.

    MySQL / MariaDB commit implicitly on DDL and roll the whole transaction
    back on a deadlock; SQLite rolls it back on an ``ON CONFLICT ROLLBACK``
    constraint or a trigger's ``RAISE(ROLLBACK)``. Every later statement of
    the block (and its commit) raises this error instead of running on its
    own, so nothing written after that point is stored. Not retried by
    `AsyncDatabase.run_in_transaction`: what ran before an implicit commit is
    already committed.

    Examples:
        >>> TransactionEndedError("ended").to_dict()["error"]
        'TransactionEndedError'
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


# The classes are imported from ``dsg_lib.errors``: tracebacks, reprs and pickles name that path.
for _name in __all__:
    globals()[_name].__module__ = "dsg_lib.errors"
