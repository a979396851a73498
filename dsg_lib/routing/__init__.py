"""Read routing: ``primary()`` / ``read_only()`` blocks and read-your-writes consistency tokens.

``AsyncDatabase`` gets its routing methods from `ReadRoutingMixin`; the tokens
(``dsg_lib.consistency``, also importable from here) let a later request
read a replica only once it has caught up with an earlier write.

Examples:
    >>> from dsg_lib.routing import parse_token
    >>> parse_token("primary") is None
    True
"""

from ._read_routing import ReadRoutingMixin
from .consistency import PRIMARY_TOKEN, WriteTracker, format_lsn, parse_token

__all__ = ["PRIMARY_TOKEN", "ReadRoutingMixin", "WriteTracker", "format_lsn", "parse_token"]
