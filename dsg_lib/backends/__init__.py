"""What differs by database: engine hooks, driver calls, statement stops, size limits, tokens (internal).

- ``_catalog``: the databases and drivers dsg_lib knows, listed once;
- ``_driver``: the driver connection under SQLAlchemy (reach it, ping it,
  read its transaction state without a round trip);
- ``_compiled``: an operation's statement compiled once and run as one
  driver call (the executor in ``operations/`` decides when);
- ``_statement_stop``: stopping the statement of a cancelled operation on
  the server;
- ``_size_guard``: MySQL/MariaDB values too big for their column or packet;
- ``_consistency_tokens``: the primary's position and a replica's replay.

This package is internal: the rest of dsg_lib imports these names from here.
"""

from . import _compiled as compiled
from ._catalog import ASYNC_DRIVERS, MYSQL_FAMILY, PASS_THROUGH, SUPPORTED, SYNC_DRIVERS, TESTED_DRIVERS
from ._consistency_tokens import (
    PRIMARY_TOKEN,
    ReplayCache,
    format_lsn,
    keep_if_caught_up,
    parse_token,
    primary_token,
)
from ._driver import LAST_USED, is_alive, pooled_connection, server_in_transaction
from ._size_guard import SIZES_CHECKED, holds_small_values, install_size_guard
from ._statement_stop import SIDE_CALL_TIMEOUT, StatementStopper

__all__ = [
    "ASYNC_DRIVERS",
    "MYSQL_FAMILY",
    "PASS_THROUGH",
    "SUPPORTED",
    "SYNC_DRIVERS",
    "TESTED_DRIVERS",
    "LAST_USED",
    "PRIMARY_TOKEN",
    "SIDE_CALL_TIMEOUT",
    "SIZES_CHECKED",
    "ReplayCache",
    "StatementStopper",
    "compiled",
    "format_lsn",
    "holds_small_values",
    "install_size_guard",
    "is_alive",
    "keep_if_caught_up",
    "parse_token",
    "pooled_connection",
    "primary_token",
    "server_in_transaction",
]
