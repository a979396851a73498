"""Driver error codes and message patterns, by backend: the data `_translate` classifies with.

PostgreSQL by SQLSTATE, MySQL / MariaDB by errno, SQLite by extended result
name (or, from older drivers, by message). Each constraint table maps a code
to the ``kind`` of `ConstraintViolationError`.
"""

from __future__ import annotations

import re

PG_CONSTRAINT = {"23505": "unique", "23503": "foreign_key", "23502": "not_null", "23514": "check"}
PG_CONFLICT = {"40001", "40P01", "55P03"}
PG_UNAVAILABLE_PREFIX = ("08", "53", "57P0", "28", "3D")
PG_TIMEOUT = {"57014"}
#: 25006 read_only_sql_transaction: a write on a standby or on a primary a failover demoted
PG_READ_ONLY = "25006"
#: the server cannot take the transaction any more: read-only (25006), shutting down
#: (57P01 admin_shutdown, 57P02 crash_shutdown) or starting up (57P03 cannot_connect_now).
#: A failover on every URI: behind a proxy (HAProxy, PgBouncer, a cloud endpoint) a single
#: host is a cluster. `DatabaseUnavailableError`, and the connection is dropped (``engine/_hosts``).
PG_FAILOVER = frozenset({PG_READ_ONLY, "57P01", "57P02", "57P03"})
#: errors (by class name) raised while connecting when no host of a multi-host URI takes
#: writes: asyncpg's own (every host answered, none writable) and ``engine/_hosts.NoWritableHostError``
PG_NO_WRITABLE_HOST = frozenset({"TargetServerAttributeNotMatched", "NoWritableHostError"})

MY_CONSTRAINT = {
    1062: "unique",
    1586: "unique",
    1451: "foreign_key",
    1452: "foreign_key",
    1216: "foreign_key",
    1217: "foreign_key",
    1048: "not_null",
    1364: "not_null",
    3819: "check",
    4025: "check",
}
MY_CONFLICT = {1213, 1205, 1020}
MY_UNAVAILABLE = {
    1040,
    1047,  # Galera: node not in the primary component ("WSREP has not yet prepared node")
    1044,
    1045,
    1049,
    1053,
    1152,
    1158,
    1159,
    1160,
    1161,
    1927,
    2002,
    2003,
    2005,
    2006,
    2013,
    2014,
    2026,
    2055,
}
MY_TIMEOUT = {1969, 3024, 1317, 1028}
# 1153: a packet over max_allowed_packet. The same request would fail again: not "unavailable".
MY_DATA = {1264, 1265, 1292, 1366, 1367, 1406, 1411, 1690, 1138, 3140, 1300, 4078, 1153}

SQLITE_CONSTRAINT = {
    "SQLITE_CONSTRAINT_UNIQUE": "unique",
    "SQLITE_CONSTRAINT_PRIMARYKEY": "unique",
    "SQLITE_CONSTRAINT_FOREIGNKEY": "foreign_key",
    "SQLITE_CONSTRAINT_NOTNULL": "not_null",
    "SQLITE_CONSTRAINT_CHECK": "check",
}
SQLITE_MESSAGES = (
    ("UNIQUE constraint failed", "unique"),
    ("FOREIGN KEY constraint failed", "foreign_key"),
    ("NOT NULL constraint failed", "not_null"),
    ("CHECK constraint failed", "check"),
)

MY_KEY = re.compile(r"for key '([^']+)'")
MY_FK = re.compile(r"CONSTRAINT `([^`]+)`")
MY_CHECK = re.compile(r"CONSTRAINT `([^`]+)` failed|constraint '([^']+)'", re.I)
SQLITE_COLUMN = re.compile(r"constraint failed: (.+)$")
# column names only, never the values that follow them
PG_KEY_COLUMNS = re.compile(r"^Key \((.+?)\)=\(")
MY_COLUMN = re.compile(r"^(?:Column|Field) '([^']+)'")
MY_FK_COLUMNS = re.compile(r"FOREIGN KEY \(([^)]+)\)")
