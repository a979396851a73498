"""The databases and drivers dsg_lib knows, listed once (private).

Everything that asks "is this database / driver supported?" reads these
tables: URL normalization (``config/_url``), the config keys, the check of
``connect_args`` and the compiled driver call.
"""

from __future__ import annotations

__all__ = ["ASYNC_DRIVERS", "MYSQL_FAMILY", "PASS_THROUGH", "SUPPORTED", "SYNC_DRIVERS", "TESTED_DRIVERS"]

#: dialect names of the MySQL family: one backend (``backends`` treats MariaDB as MySQL)
MYSQL_FAMILY = frozenset({"mysql", "mariadb"})
#: dialects devsetgo-lib accepted and dsg_lib passes through to SQLAlchemy untested:
#: only the URL parts and SQLAlchemy's own engine keys apply, no dsg_lib hooks
PASS_THROUGH = frozenset({"oracle", "mssql", "cockroachdb"})
#: backend name -> (default async driver, accepted async drivers)
ASYNC_DRIVERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "sqlite": ("aiosqlite", ("aiosqlite",)),
    "postgresql": ("asyncpg", ("asyncpg",)),
    "mysql": ("aiomysql", ("aiomysql", "asyncmy")),
    "mariadb": ("aiomysql", ("aiomysql", "asyncmy")),
    "oracle": ("oracledb", ("oracledb",)),
    "mssql": ("aioodbc", ("aioodbc",)),
    "cockroachdb": ("asyncpg", ("asyncpg",)),
}
#: the backends dsg_lib supports and tests (the pass-through ones are accepted, not listed)
SUPPORTED = tuple(sorted(set(ASYNC_DRIVERS) - PASS_THROUGH))
#: (dialect name, driver) pairs dsg_lib tests: their hooks, driver calls and connect keywords
TESTED_DRIVERS = frozenset((name, driver) for name in SUPPORTED for driver in ASYNC_DRIVERS[name][1])
#: sync drivers a URL may name: silently upgraded to the backend's default async driver
SYNC_DRIVERS = frozenset(
    {
        "pysqlite",
        "psycopg2",
        "psycopg",
        "pg8000",
        "psycopg2cffi",
        "pymysql",
        "mysqldb",
        "mysqlconnector",
        "mariadbconnector",
        "cymysql",
        "",
    }
)
