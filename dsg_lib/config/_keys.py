"""The accepted ``DBConfig`` keys, their types and the dialects that use them (private)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..backends import PASS_THROUGH
from ..errors import ConfigurationError

SERVERS = frozenset({"postgresql", "mysql", "mariadb"})
ALL = frozenset({"sqlite"}) | SERVERS
ISOLATION_LEVELS = (
    "AUTOCOMMIT",
    "READ UNCOMMITTED",
    "READ COMMITTED",
    "REPEATABLE READ",
    "SERIALIZABLE",
)


@dataclass(frozen=True)
class KeySpec:
    """One config key: what it accepts and where."""

    kind: str  # "url", "engine" or "library"
    check: Callable[[Any], bool]
    expected: str
    dialects: frozenset[str] = ALL
    memory_ok: bool = True


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_int(minimum: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_opt_str(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _is_mapping(v: Any) -> bool:
    return isinstance(v, Mapping)


KEYS: dict[str, KeySpec] = {
    # where to connect
    "database_uri": KeySpec("url", _is_str, "a URI string"),
    "dialect": KeySpec("url", _is_str, "'sqlite', 'postgresql', 'mysql' or 'mariadb'"),
    "driver": KeySpec("url", _is_opt_str, "'aiosqlite', 'asyncpg', 'aiomysql' or 'asyncmy'"),
    "host": KeySpec("url", _is_opt_str, "a host name", SERVERS),
    "port": KeySpec("url", lambda v: v is None or _is_int(1)(v), "an int port", SERVERS),
    "username": KeySpec("url", _is_opt_str, "a string", SERVERS),
    "password": KeySpec("url", _is_opt_str, "a string", SERVERS),
    "database": KeySpec("url", _is_opt_str, "a database name (a file path for SQLite)"),
    # SQLAlchemy engine keys
    "echo": KeySpec("engine", lambda v: isinstance(v, bool) or v == "debug", "True, False or 'debug'"),
    "future": KeySpec("engine", _is_bool, "True (SQLAlchemy 2 is always 'future')"),
    "pool_pre_ping": KeySpec("engine", _is_bool, "a bool"),
    "pool_size": KeySpec("engine", _is_int(1), "an int >= 1", memory_ok=False),
    "max_overflow": KeySpec("engine", _is_int(-1), "an int >= -1", memory_ok=False),
    "pool_recycle": KeySpec("engine", lambda v: _is_int(-1)(v) or _is_number(v), "seconds (int, -1 = never)"),
    "pool_timeout": KeySpec("engine", _is_number, "seconds (a number >= 0)"),
    "connect_args": KeySpec("engine", _is_mapping, "a dict passed to the driver's connect()"),
    "execution_options": KeySpec("engine", _is_mapping, "a dict of execution options"),
    "isolation_level": KeySpec(
        "engine", lambda v: v in ISOLATION_LEVELS, f"one of {', '.join(ISOLATION_LEVELS)}"
    ),
    "query_cache_size": KeySpec("engine", _is_int(0), "an int >= 0"),
    "hide_parameters": KeySpec("engine", _is_bool, "a bool"),
    "json_serializer": KeySpec("engine", callable, "a callable: object -> str"),
    "json_deserializer": KeySpec("engine", callable, "a callable: str -> object"),
    # dsg_lib keys
    "log_enabled": KeySpec("library", _is_bool, "a bool"),
    "slow_query_ms": KeySpec("library", lambda v: v is None or _is_number(v), "milliseconds or None"),
    "busy_timeout_ms": KeySpec("library", _is_int(0), "an int >= 0 (milliseconds)", frozenset({"sqlite"})),
    "sqlite_begin": KeySpec(
        "library",
        lambda v: v in ("deferred", "immediate"),
        "'deferred' or 'immediate'",
        frozenset({"sqlite"}),
    ),
    "connect_timeout": KeySpec("library", lambda v: _is_number(v) and v > 0, "seconds > 0", SERVERS),
    "statement_timeout_ms": KeySpec(
        "library", lambda v: v is None or (_is_int(1)(v)), "an int >= 1 (milliseconds) or None"
    ),
    "read_replicas": KeySpec(
        "library",
        lambda v: isinstance(v, (list, tuple)) and all(isinstance(u, str) for u in v),
        "a list of URI strings",
        SERVERS,
    ),
    "cursor_secret": KeySpec(
        "library",
        lambda v: isinstance(v, (str, bytes)) and len(v) >= 16,
        "a str or bytes of at least 16 characters (HMAC key for keyset cursors)",
    ),
    "pgbouncer": KeySpec("library", _is_bool, "a bool", frozenset({"postgresql"})),
    "wsrep_sync_wait": KeySpec(
        "library",
        lambda v: v is None or (_is_int(0)(v) and v <= 15),
        "an int 0..15 (Galera causal reads: 1 = reads wait for the cluster) or None",
        frozenset({"mysql", "mariadb"}),
    ),
    "compiled_statements": KeySpec(
        "library",
        _is_bool,
        "a bool (False: every operation runs through SQLAlchemy, never as one compiled driver call)",
    ),
    "failover_timeout": KeySpec(
        "library",
        _is_number,
        "seconds (a number >= 0) that run_in_transaction re-runs a unit of work on "
        "DatabaseUnavailableError by default (a database behind a proxy: 15)",
        SERVERS,
    ),
    "require_scope": KeySpec(
        "library",
        lambda v: (
            v is True
            or v is False
            or (isinstance(v, str) and v.isidentifier())
            or (
                isinstance(v, (list, tuple, frozenset, set))
                and len(v) > 0
                and all(isinstance(n, str) and n.isidentifier() for n in v)
            )
        ),
        "True, False, or an attribute name or list of names (operations on models with that "
        "attribute outside 'async with db.scoped(...)' raise ScopeRequiredError)",
    ),
    "pre_ping_window_ms": KeySpec(
        "library", _is_int(0), "an int >= 0 (milliseconds; 0 pings every checkout)", SERVERS
    ),
}

URL_PARTS = ("dialect", "driver", "host", "port", "username", "password", "database")


def applies(spec: KeySpec, backend: str) -> bool:
    """Whether a key of ``spec`` can be used with ``backend``."""
    if backend in PASS_THROUGH:
        return spec.kind in ("url", "engine")
    return backend in spec.dialects


def validate(config: Mapping[str, Any], backend: str, in_memory: bool) -> None:
    """Raise ``ConfigurationError`` for an unknown, misplaced or mistyped key."""
    for key, value in config.items():
        spec = KEYS.get(key)
        if spec is None:
            raise ConfigurationError(
                f"unknown config key '{key}' for dialect '{backend}'; accepted: "
                f"{', '.join(sorted(k for k, s in KEYS.items() if applies(s, backend)))}"
            )
        if not applies(spec, backend):
            where = ", ".join(sorted(spec.dialects))
            raise ConfigurationError(
                f"config key '{key}' cannot be used with dialect '{backend}'; it applies to: {where}"
            )
        if in_memory and not spec.memory_ok:
            raise ConfigurationError(
                f"config key '{key}' cannot be used with an in-memory SQLite database "
                "(it is one shared connection); use a file database to size the pool"
            )
        if not spec.check(value):
            # these may hold passwords: name the type only
            secretive = ("password", "database_uri", "cursor_secret", "read_replicas", "connect_args")
            shown = f"a {type(value).__name__}" if key in secretive else repr(value)
            raise ConfigurationError(
                f"config key '{key}' for dialect '{backend}' must be {spec.expected}, got {shown}"
            )
