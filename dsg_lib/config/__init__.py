"""``DBConfig``: one config mapping becomes a pooled async SQLAlchemy engine.

Examples:
    >>> from dsg_lib.async_database_functions import database_config
    >>> cfg = database_config.DBConfig({"database_uri": "sqlite+aiosqlite:///:memory:"})
    >>> cfg.dialect
    'sqlite'
"""

from __future__ import annotations

import importlib
import inspect
import os
import warnings
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractContextManager, asynccontextmanager
from typing import Any

from loguru import logger
from sqlalchemy import MetaData
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase

from ..backends import DEFAULT_CONNECT_TIMEOUT, TESTED_DRIVERS, Backend, StatementStopper, backend_for
from ..engine import (
    DEFAULT_PRE_PING_WINDOW_MS,
    Endpoint,
    Node,
    Replica,
    ReplicaSet,
    build_engine,
    install_hosts,
    install_sync_wait,
    split_hosts,
)
from ..errors import ConfigurationError, DatabaseError, map_errors, translate_error
from ..session import Acquirer
from . import _keys as _config_keys
from . import _url

__all__ = ["DBConfig"]

#: dialect -> the sync driver ``DBConfig.sync_url()`` names by default
_SYNC_DEFAULTS = {"sqlite": "pysqlite", "postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}


class LegacyBase(DeclarativeBase):
    """The process-wide declarative base devsetgo-lib exposed as ``BASE``."""


def __getattr__(name: str) -> Any:
    if name == "BASE":
        warnings.warn(
            "database_config.BASE is a process-wide declarative base kept for devsetgo-lib "
            "code; declare models on AsyncDatabase(...).Base or pass your own base: "
            "AsyncDatabase(config, base=MyBase)",
            DeprecationWarning,
            stacklevel=2,
        )
        return LegacyBase
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: what SQLAlchemy's asyncio adapters take besides the driver's own ``connect()`` keywords
_ADAPTER_CONNECT_ARGS = {
    "asyncpg": {"prepared_statement_cache_size", "prepared_statement_name_func"},
    "aiosqlite": {
        # sqlite3.connect() (a builtin without an inspectable signature)
        "timeout",
        "detect_types",
        "isolation_level",
        "check_same_thread",
        "factory",
        "cached_statements",
        "uri",
        "autocommit",
    },
}


#: drivers whose ``connect()`` keywords are checked (the pass-through dialects' are not)
_CHECKED_DRIVERS = frozenset(driver for _, driver in TESTED_DRIVERS)


def _check_connect_args(connect_args: Any, driver: str) -> None:
    """Refuse a ``connect_args`` key the driver does not take (it would fail every connect)."""
    if not isinstance(connect_args, Mapping) or driver not in _CHECKED_DRIVERS:
        return
    try:
        connect = importlib.import_module(driver).connect
        parameters = inspect.signature(connect).parameters
    except (ImportError, AttributeError, TypeError, ValueError):  # nothing to check against
        return
    accepted = {
        name
        for name, p in parameters.items()
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    } | _ADAPTER_CONNECT_ARGS.get(driver, set())
    if driver != "aiosqlite" and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(str(k) for k in connect_args if k not in accepted)
    if unknown:
        raise ConfigurationError(
            f"config key 'connect_args' has {', '.join(repr(k) for k in unknown)}, which the {driver} "
            f"driver does not take; accepted: {', '.join(sorted(accepted))}"
        )


def _secrets_of(raw: Mapping[str, Any], url: URL) -> tuple[str, ...]:
    """Every secret string of a config, for masking in error messages."""
    found: list[Any] = [url.password, raw.get("password"), raw.get("cursor_secret"), *_url.query_secrets(url)]
    connect_args = raw.get("connect_args")
    if isinstance(connect_args, Mapping):
        found.extend(v for k, v in connect_args.items() if _url.is_secret_key(k))
    for uri in raw.get("read_replicas") or ():
        if isinstance(uri, str):
            try:
                replica = _url.parse_uri(uri)
            except ConfigurationError:
                continue
            found.extend([replica.password, *_url.query_secrets(replica)])
    return tuple(s for s in found if isinstance(s, str) and s)


class DBConfig:
    """Turn a config mapping into a pooled ``AsyncEngine`` and a ``MetaData``.

    Either give ``database_uri`` or the parts ``dialect``, ``host``, ``port``,
    ``username``, ``password``, ``database``. Every other key is validated
    against the dialect: an unknown key, a key the dialect cannot use or a
    wrong type raises `ConfigurationError` naming the key.

    A URI without an async driver gets the default one (``sqlite://`` ->
    aiosqlite, ``postgresql://`` -> asyncpg, ``mysql://`` -> aiomysql).
    Servers get ``pool_pre_ping``; SQLite files get WAL, ``busy_timeout`` and
    ``foreign_keys=ON``; an in-memory SQLite is one database shared by every
    session of this config.

    Args:
        config: The settings; see the Configuration page for every key.

    Attributes:
        engine: The ``AsyncEngine``.
        metadata: The ``MetaData`` that ``AsyncDatabase.Base`` models use.
        dialect: ``"sqlite"``, ``"postgresql"``, ``"mysql"`` or ``"mariadb"``.

    Raises:
        ConfigurationError: a bad key, value or URI.
        MissingDependencyError: the driver for the backend is not installed.

    Examples:
        >>> cfg = DBConfig({"dialect": "postgresql", "host": "db", "username": "app",
        ...                 "password": "s3cret", "database": "app", "pool_size": 5})
        >>> str(cfg)
        'postgresql+asyncpg://app:***@db/app'
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        raw, url, backend, nodes = self._parse(config)
        engine_opts, library = self._split_options(raw)
        if library.get("log_enabled"):  # the library is quiet until the application asks
            logger.enable("dsg_lib")
        self._url: URL = url
        self._secrets = _secrets_of(raw, url)
        self._show_values = bool(engine_opts.get("echo"))
        self._config = raw
        self._library = library
        self.dialect: str = backend
        #: what dsg_lib does differently on this database (``dsg_lib.backends``), picked once here
        self.backend: Backend = backend_for(backend)
        self.metadata: MetaData = MetaData()
        with map_errors(secrets=self._secrets):
            engine, self._keeper = build_engine(url, self.backend, engine_opts, library)
        #: the primary: its engine, the no-BEGIN twin and one pool per event loop
        self.primary = Endpoint(engine, self.backend.autocommit_options(library), _url.mask(url))
        #: True when the URI lists several hosts (failover between them)
        self.multi_host: bool = bool(nodes)
        self.nodes = install_hosts(engine, self.backend, nodes, self.connect_timeout)
        if library.get("wsrep_sync_wait"):
            install_sync_wait(engine, int(library["wsrep_sync_wait"]))
        #: seconds a pooled connection may sit idle before it is pinged; None: never ping
        self.pre_ping_window: float | None = self._pre_ping_window(self.backend, engine_opts, library)
        #: stops the statement of a cancelled operation (see _stopper.StatementStopper)
        self.stopper = StatementStopper(backend, engine_opts)
        self.stopper.install(engine)
        self._users = 0
        self.replicas = self._build_replicas(library, backend, engine_opts)
        logger.info("dsg_lib: engine configured for {}", self.safe_url)

    @classmethod
    def _parse(cls, config: Mapping[str, Any]) -> tuple[dict[str, Any], URL, str, list[Node]]:
        """Check the settings; return them with the normalized URL, its backend and its hosts."""
        if not isinstance(config, Mapping):
            raise ConfigurationError(f"DBConfig takes a mapping of settings, got {type(config).__name__}")
        raw = dict(config)
        has_parts = [k for k in _config_keys.URL_PARTS if k in raw]
        if "database_uri" in raw and has_parts:
            raise ConfigurationError(
                f"give either 'database_uri' or its parts, not both (also got: {', '.join(has_parts)})"
            )
        uri, nodes = split_hosts(raw.get("database_uri"))
        url = _url.parse_uri(uri) if "database_uri" in raw else _url.from_parts(raw)
        url, backend = _url.normalize(url)
        url = cls._multi_host_url(url, backend_for(backend), nodes)
        memory = backend_for(backend).is_memory(url)
        _config_keys.validate(raw, backend, memory)
        _check_connect_args(raw.get("connect_args"), url.get_driver_name())
        return raw, url, backend, nodes

    @staticmethod
    def _split_options(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split the settings into SQLAlchemy engine options and dsg_lib's own."""
        engine_opts = {k: v for k, v in raw.items() if _config_keys.KEYS[k].kind == "engine"}
        library = {k: v for k, v in raw.items() if _config_keys.KEYS[k].kind == "library"}
        # echo shows the SQL; its bound values too unless the caller said otherwise
        if engine_opts.get("echo") and "hide_parameters" not in engine_opts:
            engine_opts["hide_parameters"] = False
        return engine_opts, library

    @staticmethod
    def _pre_ping_window(
        backend: Backend, engine_opts: dict[str, Any], library: dict[str, Any]
    ) -> float | None:
        """Idle seconds after which a pooled connection is pinged; None: never (SQLite, or opted out)."""
        if not backend.server or engine_opts.get("pool_pre_ping") is False:
            return None
        return float(library.get("pre_ping_window_ms", DEFAULT_PRE_PING_WINDOW_MS)) / 1000.0

    @staticmethod
    def _multi_host_url(url: URL, backend: Backend, nodes: list[Node]) -> URL:
        if not nodes:
            return url
        if backend.embedded:
            raise ConfigurationError(f"'database_uri' lists several hosts; {backend.title} has none")
        return backend.multi_host_url(url, [(n.host, n.port) for n in nodes])

    def _build_replicas(
        self, library: dict[str, Any], backend: str, engine_opts: dict[str, Any]
    ) -> ReplicaSet:
        """One engine per ``read_replicas`` URI, same options as the primary."""
        replicas: list[Replica] = []
        for index, uri in enumerate(library.get("read_replicas", ())):
            url, replica_backend = _url.normalize(_url.parse_uri(uri))
            if replica_backend != backend:
                raise ConfigurationError(
                    f"config key 'read_replicas'[{index}] is a {replica_backend} URI; "
                    f"replicas must use the primary's dialect '{backend}'"
                )
            self._secrets = (*self._secrets, *_secrets_of({}, url))
            options = {k: v for k, v in library.items() if k != "read_replicas"}
            with map_errors(secrets=self._secrets):
                engine, _ = build_engine(url, self.backend, engine_opts, options)
            install_hosts(engine, self.backend, [], self.connect_timeout)
            self.stopper.install(engine)
            replicas.append(
                Replica(Endpoint(engine, self.backend.autocommit_options(options), _url.mask(url)))
            )
        return ReplicaSet(replicas)

    @classmethod
    def from_env(cls, var: str = "DATABASE_URL", default: str | None = None, **options: Any) -> DBConfig:
        """Build a config from the URI in environment variable ``var``.

        Args:
            var: The variable that holds the URI.
            default: The URI to use when the variable is unset.
            **options: Other config keys (``pool_size=5`` ...).

        Raises:
            ConfigurationError: the variable is unset and there is no default.

        Examples:
            >>> import os
            >>> os.environ["MY_DB"] = "sqlite:///:memory:"
            >>> DBConfig.from_env("MY_DB").dialect
            'sqlite'
        """
        uri = os.environ.get(var) or default
        if not uri:
            raise ConfigurationError(f"environment variable '{var}' is not set and no default URI was given")
        return cls({"database_uri": uri, **options})

    @property
    def config(self) -> dict[str, Any]:
        """A copy of the settings with every secret masked (safe to log or show).

        Passwords in ``database_uri`` and ``read_replicas`` (also
        ``?password=``), the ``password`` and ``cursor_secret`` keys and
        secret ``connect_args`` (``password`` ...) read ``***``.

        Examples:
            >>> DBConfig({"database_uri": "sqlite://", "echo": False}).config
            {'database_uri': 'sqlite://', 'echo': False}
            >>> DBConfig({"database_uri": "postgresql://u:pw@h/db",
            ...           "connect_args": {"password": "pw"}}).config
            {'database_uri': 'postgresql://u:***@h/db', 'connect_args': {'password': '***'}}
        """
        copy = _url.mask_mapping(self._config)
        if isinstance(copy.get("database_uri"), str):
            copy["database_uri"] = _url.mask(copy["database_uri"])
        if isinstance(copy.get("read_replicas"), (list, tuple)):
            copy["read_replicas"] = [_url.mask(u) if isinstance(u, str) else u for u in copy["read_replicas"]]
        if isinstance(copy.get("connect_args"), Mapping):
            copy["connect_args"] = _url.mask_mapping(copy["connect_args"])
        return copy

    def connect_args(self, hide_secrets: bool = True) -> dict[str, Any]:
        """A copy of the ``connect_args`` setting (driver keyword arguments).

        Args:
            hide_secrets: Replace secret values (``password`` ...) with ``***``
                (the default). Pass ``False`` only to hand them to a tool that
                connects; never log them.

        Examples:
            >>> cfg = DBConfig({"database_uri": "postgresql://u@h/db",
            ...                 "connect_args": {"password": "pw", "ssl": False}})
            >>> cfg.connect_args()
            {'password': '***', 'ssl': False}
        """
        args = dict(self._config.get("connect_args") or {})
        return _url.mask_mapping(args) if hide_secrets else args

    @property
    def connect_timeout(self) -> float:
        """Seconds one connection attempt to one host may take (TCP, TLS, handshake, login).

        Examples:
            >>> DBConfig({"database_uri": "sqlite://"}).connect_timeout
            10.0
            >>> DBConfig({"database_uri": "mysql://u@h/db", "connect_timeout": 2}).connect_timeout
            2.0
        """
        return float(self._library.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT))

    @property
    def engine(self) -> AsyncEngine:
        """The primary ``AsyncEngine``, with the running event loop's pool in place.

        Each event loop gets a pool of its own on this one engine, so one
        config serves any number of loops one after the other.

        Examples:
            >>> DBConfig({"database_uri": "sqlite://"}).engine.dialect.name
            'sqlite'
        """
        return self.primary.engine()

    @property
    def url(self) -> URL:
        """The engine's URL (its ``str()`` hides the password).

        Examples:
            >>> DBConfig({"database_uri": "mysql://u:pw@h/db"}).url.drivername
            'mysql+aiomysql'
        """
        return self._url

    @property
    def safe_url(self) -> str:
        """The URL as a string with the password replaced by ``***``.

        Examples:
            >>> DBConfig({"database_uri": "postgresql://u:pw@h/db"}).safe_url
            'postgresql+asyncpg://u:***@h/db'
        """
        return _url.mask(self._url)

    def async_url(self, hide_password: bool = True) -> str:
        """The URL the engine uses (async driver), as a string.

        Args:
            hide_password: Replace the password with ``***`` (the default).
                Pass ``False`` only to hand the URL to a tool that connects,
                such as Alembic; never log it.

        Examples:
            >>> cfg = DBConfig({"database_uri": "postgresql://u:pw@h/db"})
            >>> cfg.async_url()
            'postgresql+asyncpg://u:***@h/db'
            >>> cfg.async_url(hide_password=False)
            'postgresql+asyncpg://u:pw@h/db'
        """
        return _url.mask(self._url) if hide_password else self._url.render_as_string(hide_password=False)

    def sync_url(self, hide_password: bool = True, driver: str | None = None) -> str:
        """The same database with a synchronous driver, for sync tools (Alembic, scripts).

        Args:
            hide_password: Replace the password with ``***`` (the default).
            driver: The sync driver; by default ``pysqlite`` for SQLite,
                ``psycopg`` (psycopg 3) for PostgreSQL and ``pymysql`` for
                MySQL/MariaDB. The driver is not imported here.

        Examples:
            >>> cfg = DBConfig({"database_uri": "mysql+aiomysql://u:pw@h/db"})
            >>> cfg.sync_url()
            'mysql+pymysql://u:***@h/db'
            >>> cfg.sync_url(hide_password=False, driver="mysqldb")
            'mysql+mysqldb://u:pw@h/db'
            >>> DBConfig({"database_uri": "sqlite:///app.db"}).sync_url()
            'sqlite+pysqlite:///app.db'
        """
        backend = self._url.get_backend_name()
        chosen = driver or _SYNC_DEFAULTS[self.dialect]
        url = self._url.set(drivername=f"{backend}+{chosen}")
        return _url.mask(url) if hide_password else url.render_as_string(hide_password=False)

    @property
    def is_memory(self) -> bool:
        """True for an in-memory SQLite database.

        Examples:
            >>> DBConfig({"database_uri": "sqlite://"}).is_memory
            True
        """
        return self._keeper is not None

    def option(self, key: str, default: Any = None) -> Any:
        """The value of a ``dsg_lib`` config key such as ``slow_query_ms``.

        Examples:
            >>> DBConfig({"database_uri": "sqlite://", "slow_query_ms": 50}).option("slow_query_ms")
            50
        """
        return self._library.get(key, default)

    def translate(self, exc: BaseException) -> DatabaseError:
        """Translate ``exc`` with this config's secrets masked (see ``translate_error``).

        Examples:
            >>> from sqlalchemy.exc import NoResultFound
            >>> type(DBConfig({"database_uri": "sqlite://"}).translate(NoResultFound())).__name__
            'RecordNotFoundError'
        """
        return translate_error(exc, secrets=self._secrets, show_values=self._show_values)

    def errors(self) -> AbstractContextManager[None]:
        """A context manager translating errors with this config's secrets masked.

        Examples:
            >>> cfg = DBConfig({"database_uri": "sqlite://"})
            >>> with cfg.errors():
            ...     pass
        """
        return map_errors(secrets=self._secrets, show_values=self._show_values)

    @asynccontextmanager
    async def get_db_session(self) -> AsyncIterator[AsyncSession]:
        """Yield a new ``AsyncSession`` (``expire_on_commit=False``); roll back on error.

        The session is closed on exit. It never commits for you.

        Examples:
            >>> import asyncio
            >>> from sqlalchemy import text
            >>> async def main():
            ...     cfg = DBConfig({"database_uri": "sqlite://"})
            ...     try:
            ...         async with cfg.get_db_session() as session:
            ...             return (await session.execute(text("select 1"))).scalar()
            ...     finally:
            ...         await cfg.dispose()
            >>> asyncio.run(main())
            1
        """
        async with Acquirer(self).user_session() as session:
            yield session

    def retain(self) -> None:
        """Count one more user (an ``AsyncDatabase``) of this config's engine.

        An in-memory database closed by `dispose` is re-opened (empty).

        Examples:
            >>> cfg = DBConfig({"database_uri": "sqlite://"})
            >>> cfg.retain()
        """
        self._users += 1
        if self._keeper is not None:
            self._keeper.open()

    async def release(self) -> None:
        """Count one user less; the last one out closes the pool (`dispose`).

        So ``disconnect()`` of one ``AsyncDatabase`` never pulls the engine (or
        an in-memory database's data) from under another one on this config.

        Examples:
            >>> import asyncio
            >>> cfg = DBConfig({"database_uri": "sqlite://"})
            >>> cfg.retain()
            >>> asyncio.run(cfg.release())
        """
        self._users = max(self._users - 1, 0)
        if self._users == 0:
            await self.dispose()

    async def dispose(self) -> None:
        """Close every pooled connection (and the in-memory database, if any).

        Examples:
            >>> import asyncio
            >>> asyncio.run(DBConfig({"database_uri": "sqlite://"}).dispose())
        """
        await self.primary.dispose()
        await self.replicas.dispose()
        await self.stopper.dispose()
        if self._keeper is not None:
            self._keeper.close()

    def __repr__(self) -> str:
        return f"DBConfig(dialect={self.dialect!r}, url={self.safe_url!r})"

    def __str__(self) -> str:
        return self.safe_url
