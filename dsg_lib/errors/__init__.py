"""The one exception hierarchy of ``dsg_lib``.

Every failure that reaches a caller is a `DatabaseError`:

```text
DatabaseError                      .details  .to_dict()  .driver_error
├── ConfigurationError             (also ValueError)
│   └── MissingDependencyError     driver not installed: says which extra to install
├── InvalidInputError              (also ValueError)
├── NotConnectedError
├── SessionMissingError
│   └── ScopeRequiredError         require_scope: an operation outside db.scoped(...)
├── DatabaseUnavailableError       refused / lost / timed out
│   └── PoolTimeoutError
├── RecordNotFoundError            (also LookupError)
├── MultipleRecordsFoundError
├── ConstraintViolationError       unique / foreign key / not null / check
├── StaleRecordError               optimistic lock: the row's version moved on
├── TransactionConflictError       deadlock / serialization failure
├── TransactionEndedError          the database ended the transaction itself
├── QueryError                     anything else the database rejected
│   └── StatementTimeoutError      the statement ran past its time limit
└── QueryBudgetExceededError       a query_budget() block issued too many statements
```

Driver errors (asyncpg, aiomysql / asyncmy / PyMySQL, sqlite3 through
aiosqlite) and SQLAlchemy's own errors are converted in exactly one place,
`translate_error` (``errors/_translate.py``, with the code tables in
``errors/codes.py``), by SQLSTATE (PostgreSQL), errno (MySQL / MariaDB) and
extended result code (SQLite). The original exception is kept on the
``driver_error`` attribute, out of the printed chain (``__cause__`` is
``None`` and the context suppressed): the driver's text can hold bound
values (``DETAIL: Key (email)=(...)``), and a formatted traceback, a
``logger.exception`` line or an error tracker must not show them. Messages
never contain the connection password, and the values of a failed
statement only when the engine was created with ``echo``.

Examples:
    >>> from dsg_lib import RecordNotFoundError
    >>> err = RecordNotFoundError("User 42 not found")
    >>> err.to_dict()
    {'error': 'RecordNotFoundError', 'details': 'User 42 not found'}
"""

from ._hierarchy import (
    ConfigurationError,
    ConstraintViolationError,
    DatabaseError,
    DatabaseUnavailableError,
    InvalidInputError,
    MissingDependencyError,
    MultipleRecordsFoundError,
    NotConnectedError,
    PoolTimeoutError,
    QueryBudgetExceededError,
    QueryError,
    RecordNotFoundError,
    ScopeRequiredError,
    SessionMissingError,
    StaleRecordError,
    StatementTimeoutError,
    TransactionConflictError,
    TransactionEndedError,
)
from ._redact import redact_values
from ._translate import map_errors, translate_error

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
    "ScopeRequiredError",
    "SessionMissingError",
    "StaleRecordError",
    "StatementTimeoutError",
    "TransactionConflictError",
    "TransactionEndedError",
    "map_errors",
    "redact_values",
    "translate_error",
]
