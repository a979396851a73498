"""devsetgo-lib path of `AsyncDatabase`: ``dsg_lib.async_database_functions.async_database``.

Examples:
    >>> from dsg_lib.async_database_functions.async_database import AsyncDatabase
    >>> AsyncDatabase.__name__
    'AsyncDatabase'
"""

from ..database import AsyncDatabase as AsyncDatabase

__all__ = ["AsyncDatabase"]
