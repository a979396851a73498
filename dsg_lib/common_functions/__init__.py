"""devsetgo-lib's ``common_functions`` path; only ``logging_config`` is provided.

Examples:
    >>> from dsg_lib.common_functions import logging_config
    >>> logging_config.config_log.__name__
    'config_log'
"""

from . import logging_config as logging_config

__all__ = ["logging_config"]
