"""devsetgo-lib path of `DatabaseOperations`: ``dsg_lib.async_database_functions.database_operations``.

Examples:
    >>> from dsg_lib.async_database_functions.database_operations import DatabaseOperations
    >>> DatabaseOperations.__name__
    'DatabaseOperations'
"""

from ..operations import DatabaseOperations as DatabaseOperations

__all__ = ["DatabaseOperations"]
