"""Async database functions: config, database, operations, schema mixins and errors.

The devsetgo-lib import style keeps working:

```python
from dsg_lib.async_database_functions import (
    async_database, base_schema, database_config, database_operations)
```

Examples:
    >>> from dsg_lib.async_database_functions import DBConfig
    >>> DBConfig({"database_uri": "sqlite://"}).dialect
    'sqlite'
"""

from loguru import logger as _logger

from ..config import DBConfig as DBConfig
from ..database import AsyncDatabase as AsyncDatabase
from ..errors import ConfigurationError as ConfigurationError
from ..errors import ConstraintViolationError as ConstraintViolationError
from ..errors import DatabaseError as DatabaseError
from ..errors import DatabaseUnavailableError as DatabaseUnavailableError
from ..errors import InvalidInputError as InvalidInputError
from ..errors import MissingDependencyError as MissingDependencyError
from ..errors import MultipleRecordsFoundError as MultipleRecordsFoundError
from ..errors import NotConnectedError as NotConnectedError
from ..errors import PoolTimeoutError as PoolTimeoutError
from ..errors import QueryError as QueryError
from ..errors import RecordNotFoundError as RecordNotFoundError
from ..errors import SessionMissingError as SessionMissingError
from ..errors import StatementTimeoutError as StatementTimeoutError
from ..errors import TransactionConflictError as TransactionConflictError
from ..errors import TransactionEndedError as TransactionEndedError
from ..operations import DatabaseOperations as DatabaseOperations
from ..pagination import CursorPage as CursorPage
from ..pagination import Page as Page
from ..schema import SchemaBaseMySQL as SchemaBaseMySQL
from ..schema import SchemaBasePostgres as SchemaBasePostgres
from ..schema import SchemaBaseSQLite as SchemaBaseSQLite
from ..schema import SoftDeleteMixin as SoftDeleteMixin
from . import async_database as async_database
from . import base_schema as base_schema
from . import database_config as database_config
from . import database_operations as database_operations
from . import errors as errors

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
    "TransactionEndedError",
    "async_database",
    "base_schema",
    "database_config",
    "database_operations",
    "errors",
]

# devsetgo-lib logs through loguru without disabling its name: its users see the library's
# lines. The modern API is quiet by default (dsg_lib/_startup.py); this face keeps devsetgo-lib's way.
_logger.enable("dsg_lib")
