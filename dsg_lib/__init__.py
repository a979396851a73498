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

from .async_database_functions import AsyncDatabase as AsyncDatabase
from .async_database_functions import ConfigurationError as ConfigurationError
from .async_database_functions import ConstraintViolationError as ConstraintViolationError
from .async_database_functions import CursorPage as CursorPage
from .async_database_functions import DatabaseError as DatabaseError
from .async_database_functions import DatabaseOperations as DatabaseOperations
from .async_database_functions import DatabaseUnavailableError as DatabaseUnavailableError
from .async_database_functions import DBConfig as DBConfig
from .async_database_functions import InvalidInputError as InvalidInputError
from .async_database_functions import MissingDependencyError as MissingDependencyError
from .async_database_functions import MultipleRecordsFoundError as MultipleRecordsFoundError
from .async_database_functions import NotConnectedError as NotConnectedError
from .async_database_functions import Page as Page
from .async_database_functions import PoolTimeoutError as PoolTimeoutError
from .async_database_functions import QueryError as QueryError
from .async_database_functions import RecordNotFoundError as RecordNotFoundError
from .async_database_functions import SchemaBaseMySQL as SchemaBaseMySQL
from .async_database_functions import SchemaBasePostgres as SchemaBasePostgres
from .async_database_functions import SchemaBaseSQLite as SchemaBaseSQLite
from .async_database_functions import SessionMissingError as SessionMissingError
from .async_database_functions import SoftDeleteMixin as SoftDeleteMixin
from .async_database_functions import StatementTimeoutError as StatementTimeoutError
from .async_database_functions import TransactionConflictError as TransactionConflictError

__version__ = "0.1.0"

__all__ = [
    "AsyncDatabase",
    "ConfigurationError",
    "ConstraintViolationError",
    "CursorPage",
    "DBConfig",
    "DatabaseError",
    "DatabaseOperations",
    "DatabaseUnavailableError",
    "InvalidInputError",
    "MissingDependencyError",
    "MultipleRecordsFoundError",
    "NotConnectedError",
    "Page",
    "PoolTimeoutError",
    "QueryError",
    "RecordNotFoundError",
    "SchemaBaseMySQL",
    "SchemaBasePostgres",
    "SchemaBaseSQLite",
    "SessionMissingError",
    "SoftDeleteMixin",
    "StatementTimeoutError",
    "TransactionConflictError",
    "__version__",
]
