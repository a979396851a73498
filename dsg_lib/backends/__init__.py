"""What differs by database, in one place: a `Backend` per family, chosen once (internal).

``DBConfig`` asks `backend_for` once for its URL's dialect; everything that
differs by database is then a method or attribute of that object:

- ``sqlite`` / ``postgresql`` / ``mysql``: engine defaults and hooks, ping,
  autocommit and snapshot options, failover decisions, upsert and timestamp
  SQL, consistency tokens (``_base`` is the protocol, and what a
  pass-through dialect gets);
- ``_catalog``: the databases and drivers dsg_lib knows, listed once;
- ``_driver``: the driver connection under SQLAlchemy (reach it, ping it);
- ``_transaction_hooks``: explicit BEGIN, the transaction guard, the pool
  reset, for connections in driver autocommit (SQLite, MySQL/MariaDB);
- ``_compiled``: an operation's statement compiled once and run as one
  driver call (the executor in ``operations/`` decides when);
- ``_statement_stop``: stopping the statement of a cancelled operation;
- ``_size_guard``: MySQL/MariaDB values too big for their column or packet;
- ``_consistency_tokens``: the token format and a replica's replay check.

This package is internal: the rest of dsg_lib imports these names from here.
"""

from . import _compiled as compiled
from ._base import DEFAULT_CONNECT_TIMEOUT, Backend, Keeper
from ._catalog import ASYNC_DRIVERS, MYSQL_FAMILY, PASS_THROUGH, SUPPORTED, SYNC_DRIVERS, TESTED_DRIVERS
from ._consistency_tokens import (
    PRIMARY_TOKEN,
    ReplayCache,
    format_lsn,
    keep_if_caught_up,
    parse_token,
)
from ._driver import LAST_USED, is_alive, pooled_connection
from ._size_guard import SIZES_CHECKED, holds_small_values
from ._statement_stop import SIDE_CALL_TIMEOUT, StatementStopper
from ._transaction_hooks import BEGIN_AGAIN, GUARD
from .mysql import DEFAULT_MYSQL_RECYCLE, MySQLBackend
from .postgresql import PostgreSQLBackend
from .sqlite import DEFAULT_BUSY_TIMEOUT_MS, SQLiteBackend

__all__ = [
    "ASYNC_DRIVERS",
    "BEGIN_AGAIN",
    "DEFAULT_BUSY_TIMEOUT_MS",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MYSQL_RECYCLE",
    "GUARD",
    "LAST_USED",
    "MYSQL_FAMILY",
    "PASS_THROUGH",
    "PRIMARY_TOKEN",
    "SIDE_CALL_TIMEOUT",
    "SIZES_CHECKED",
    "SUPPORTED",
    "SYNC_DRIVERS",
    "TESTED_DRIVERS",
    "Backend",
    "Keeper",
    "MySQLBackend",
    "PostgreSQLBackend",
    "ReplayCache",
    "SQLiteBackend",
    "StatementStopper",
    "backend_for",
    "compiled",
    "format_lsn",
    "holds_small_values",
    "is_alive",
    "keep_if_caught_up",
    "parse_token",
    "pooled_connection",
]

_BACKENDS: dict[str, Backend] = {
    "sqlite": SQLiteBackend(),
    "postgresql": PostgreSQLBackend(),
    "mysql": MySQLBackend(),
    "mariadb": MySQLBackend(),
}


def backend_for(dialect: str | None) -> Backend:
    """The `Backend` of a dialect name (``"mariadb"`` is MySQL's); a plain `Backend` for any other.

    Examples:
        >>> backend_for("mariadb").name, backend_for("mssql").name
        ('mysql', 'other')
    """
    return _BACKENDS.get(dialect or "", _OTHER)


_OTHER = Backend()
