"""dsg_lib: async database utilities on SQLAlchemy 2 for SQLite, PostgreSQL and MySQL/MariaDB.

Examples:
    >>> import asyncio
    >>> from dsg_lib import AsyncDatabase, DBConfig
    >>> async def main():
    ...     async with AsyncDatabase(DBConfig({"database_uri": "sqlite://"})) as db:
    ...         return db.db_config.dialect
    >>> asyncio.run(main())
    'sqlite'
"""

from ._install_clash import DistributionClashWarning as DistributionClashWarning
from ._version import __version__ as __version__
from .config import DBConfig as DBConfig
from .database import AsyncDatabase as AsyncDatabase
from .errors import ConfigurationError as ConfigurationError
from .errors import ConstraintViolationError as ConstraintViolationError
from .errors import DatabaseError as DatabaseError
from .errors import DatabaseUnavailableError as DatabaseUnavailableError
from .errors import InvalidInputError as InvalidInputError
from .errors import MissingDependencyError as MissingDependencyError
from .errors import MultipleRecordsFoundError as MultipleRecordsFoundError
from .errors import NotConnectedError as NotConnectedError
from .errors import PoolTimeoutError as PoolTimeoutError
from .errors import QueryBudgetExceededError as QueryBudgetExceededError
from .errors import QueryError as QueryError
from .errors import RecordNotFoundError as RecordNotFoundError
from .errors import ScopeRequiredError as ScopeRequiredError
from .errors import SessionMissingError as SessionMissingError
from .errors import StaleRecordError as StaleRecordError
from .errors import StatementTimeoutError as StatementTimeoutError
from .errors import TransactionConflictError as TransactionConflictError
from .errors import TransactionEndedError as TransactionEndedError
from .filters import Q as Q
from .operations import DatabaseOperations as DatabaseOperations
from .pagination import CursorPage as CursorPage
from .pagination import Page as Page
from .schema import SchemaBaseMySQL as SchemaBaseMySQL
from .schema import SchemaBasePostgres as SchemaBasePostgres
from .schema import SchemaBaseSQLite as SchemaBaseSQLite
from .schema import SoftDeleteMixin as SoftDeleteMixin

__all__ = [
    "AsyncDatabase",
    "ConfigurationError",
    "ConstraintViolationError",
    "CursorPage",
    "DBConfig",
    "DatabaseError",
    "DatabaseOperations",
    "DatabaseUnavailableError",
    "DistributionClashWarning",
    "InvalidInputError",
    "MissingDependencyError",
    "MultipleRecordsFoundError",
    "NotConnectedError",
    "Page",
    "Q",
    "PoolTimeoutError",
    "QueryBudgetExceededError",
    "QueryError",
    "RecordNotFoundError",
    "SchemaBaseMySQL",
    "SchemaBasePostgres",
    "SchemaBaseSQLite",
    "ScopeRequiredError",
    "SessionMissingError",
    "SoftDeleteMixin",
    "StaleRecordError",
    "StatementTimeoutError",
    "TransactionConflictError",
    "TransactionEndedError",
    "__version__",
]
