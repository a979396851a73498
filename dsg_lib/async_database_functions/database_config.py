"""devsetgo-lib path of `DBConfig`: ``dsg_lib.async_database_functions.database_config``.

``database_config.BASE`` is the process-wide declarative base devsetgo-lib code
declares models on; it still works and warns with a ``DeprecationWarning``.

Examples:
    >>> from dsg_lib.async_database_functions import database_config
    >>> database_config.DBConfig({"database_uri": "sqlite://"}).dialect
    'sqlite'
"""

from typing import Any

from .. import config as _config
from ..config import DBConfig as DBConfig

__all__ = ["DBConfig"]


def __getattr__(name: str) -> Any:
    return _config.__getattr__(name)
