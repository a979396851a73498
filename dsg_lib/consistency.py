"""Read-your-writes across requests: consistency tokens (the public path of ``dsg_lib.routing.consistency``).

Examples:
    >>> parse_token("pg:0/16B3748")
    23803720
"""

from .routing.consistency import PRIMARY_TOKEN, WriteTracker, format_lsn, parse_token

__all__ = ["PRIMARY_TOKEN", "WriteTracker", "format_lsn", "parse_token"]
