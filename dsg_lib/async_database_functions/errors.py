"""devsetgo-lib path of the error hierarchy: ``dsg_lib.async_database_functions.errors``.

Examples:
    >>> from dsg_lib.async_database_functions.errors import DatabaseError
    >>> DatabaseError.__module__
    'dsg_lib.errors'
"""

from ..errors import *  # noqa: F403
from ..errors import __all__ as __all__
