"""devsetgo-lib path of the schema mixins: ``dsg_lib.async_database_functions.base_schema``.

Examples:
    >>> from dsg_lib.async_database_functions import base_schema
    >>> base_schema.SchemaBaseSQLite.__name__
    'SchemaBaseSQLite'
"""

from ..schema import *  # noqa: F403
from ..schema import __all__ as __all__
