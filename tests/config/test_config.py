"""Tests for ``dsg_lib.async_database_functions.database_config`` (``DBConfig``)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import (
    AsyncDatabase,
    ConfigurationError,
    DatabaseUnavailableError,
    DBConfig,
    MissingDependencyError,
)
from dsg_lib.async_database_functions import async_database, base_schema, database_config

# Suffix for table names: concurrent test runs on the same servers do not collide.
RUN = os.getpid()

SPECIAL_PASSWORD = "p@ss:w/rd%"
# The same password as it appears percent-encoded inside a URI.
SPECIAL_PASSWORD_ENCODED = "p%40ss%3Aw%2Frd%25"


# --------------------------------------------------------------------------- imports


def test_devsetgo_lib_import_style_verbatim() -> None:
    # the documented import line, verbatim
    from dsg_lib.async_database_functions import async_database, base_schema, database_config

    db_config = database_config.DBConfig(
        {
            "database_uri": "sqlite+aiosqlite:///:memory:?cache=shared",
            "echo": False,
            "future": True,
            "pool_recycle": 3600,
        }
    )
    async_db = async_database.AsyncDatabase(db_config)
    assert db_config.dialect == "sqlite"
    assert db_config.is_memory
    assert isinstance(db_config.engine, AsyncEngine)
    assert async_db.db_config is db_config
    assert async_db.engine is db_config.engine
    assert hasattr(base_schema, "SchemaBaseSQLite")


def test_devsetgo_lib_import_style_with_operations_verbatim() -> None:
    pytest.importorskip(
        "dsg_lib.async_database_functions.database_operations",
        reason="database_operations is not in this checkout yet (written in a separate change)",
    )
    # the DESIGN.md snippet, verbatim
    from dsg_lib.async_database_functions import (
        async_database,
        base_schema,
        database_config,
        database_operations,
    )

    db_config = database_config.DBConfig(
        {
            "database_uri": "sqlite+aiosqlite:///:memory:?cache=shared",
            "echo": False,
            "future": True,
            "pool_recycle": 3600,
        }
    )
    async_db = async_database.AsyncDatabase(db_config)
    db_ops = database_operations.DatabaseOperations(async_db)

    assert base_schema.SchemaBaseSQLite is not None
    assert db_config.dialect == "sqlite"
    assert async_db.db_config is db_config
    assert isinstance(db_ops, database_operations.DatabaseOperations)


async def test_devsetgo_lib_style_config_works_end_to_end() -> None:
    db_config = database_config.DBConfig(
        {
            "database_uri": "sqlite+aiosqlite:///:memory:?cache=shared",
            "echo": False,
            "future": True,
            "pool_recycle": 3600,
        }
    )
    async_db = async_database.AsyncDatabase(db_config)

    class LegacyStyleNote(base_schema.SchemaBaseSQLite, async_db.Base):
        __tablename__ = "cfg_legacy_style_note"
        body: Mapped[str] = mapped_column()

    await async_db.create_tables()
    async with async_db.transaction() as session:
        session.add(LegacyStyleNote(body="hello"))
    async with db_config.get_db_session() as session:
        body = (await session.execute(text("SELECT body FROM cfg_legacy_style_note"))).scalar_one()
    assert body == "hello"
    await async_db.disconnect()


def test_short_imports_are_the_same_objects() -> None:
    from dsg_lib import AsyncDatabase as ShortAsyncDatabase
    from dsg_lib import DBConfig as ShortDBConfig

    # the face's DBConfig only adds devsetgo-lib's session factory
    assert database_config.DBConfig.__bases__ == (ShortDBConfig,)
    assert ShortAsyncDatabase is async_database.AsyncDatabase


# --------------------------------------------------------------------------- building


async def test_from_uri_on_each_backend(backend: str, db_url: str) -> None:
    cfg = DBConfig({"database_uri": db_url})
    expected = {"postgresql": "postgresql", "mariadb": "mysql"}.get(backend, "sqlite")
    assert cfg.dialect == expected
    assert isinstance(cfg.engine, AsyncEngine)
    assert cfg.metadata is not None and len(cfg.metadata.tables) == 0
    assert cfg.is_memory == (backend == "sqlite_memory")
    async with cfg.get_db_session() as session:
        assert isinstance(session, AsyncSession)
        assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
    await cfg.dispose()


def test_from_parts_postgresql() -> None:
    cfg = DBConfig(
        {
            "dialect": "postgresql",
            "host": "db.example",
            "port": 5433,
            "username": "app",
            "password": "s3cret",
            "database": "appdb",
            "pool_size": 3,
        }
    )
    assert cfg.dialect == "postgresql"
    assert cfg.url.drivername == "postgresql+asyncpg"
    assert (cfg.url.host, cfg.url.port, cfg.url.username, cfg.url.database) == (
        "db.example",
        5433,
        "app",
        "appdb",
    )
    assert cfg.safe_url == "postgresql+asyncpg://app:***@db.example:5433/appdb"


def test_from_parts_mysql_with_driver_choice() -> None:
    cfg = DBConfig({"dialect": "mysql", "driver": "asyncmy", "host": "h", "database": "d"})
    assert cfg.dialect == "mysql"
    assert cfg.url.drivername == "mysql+asyncmy"


async def test_from_parts_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "parts.db"
    cfg = DBConfig({"dialect": "sqlite", "database": str(path)})
    assert cfg.dialect == "sqlite"
    assert not cfg.is_memory
    async with cfg.get_db_session() as session:
        await session.execute(text("CREATE TABLE cfg_parts_t (x INTEGER)"))
        await session.commit()
    await cfg.dispose()
    assert path.exists()


async def test_from_parts_on_each_backend(backend: str, db_url: str) -> None:
    url = DBConfig({"database_uri": db_url}).url
    parts: dict[str, Any] = {"dialect": url.get_backend_name(), "database": url.database}
    if url.host:
        parts["host"] = url.host
    if url.port:
        parts["port"] = url.port
    if url.username:
        parts["username"] = url.username
    if backend == "sqlite_memory":
        parts.pop("database")
    cfg = DBConfig(parts)
    async with cfg.get_db_session() as session:
        assert (await session.execute(text("SELECT 41 + 1"))).scalar_one() == 42
    await cfg.dispose()


def test_config_attribute_is_a_copy() -> None:
    original = {"database_uri": "sqlite://", "echo": False}
    cfg = DBConfig(original)
    copy = cfg.config
    assert copy == {"database_uri": "sqlite://", "echo": False}
    copy["echo"] = True
    original["echo"] = True
    assert cfg.config["echo"] is False


def test_from_env_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSG_TEST_CFG_URL", "postgresql://envuser:envpw@envhost/envdb")
    cfg = DBConfig.from_env("DSG_TEST_CFG_URL", default="sqlite://", pool_size=4)
    assert cfg.dialect == "postgresql"
    assert cfg.url.host == "envhost"
    assert cfg.config["pool_size"] == 4


def test_from_env_default_var_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://u@h/envdefault")
    cfg = DBConfig.from_env()
    assert cfg.dialect == "mysql"
    assert cfg.url.database == "envdefault"


def test_from_env_unset_uses_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DSG_TEST_CFG_UNSET", raising=False)
    cfg = DBConfig.from_env("DSG_TEST_CFG_UNSET", default="sqlite+aiosqlite:///:memory:", echo=False)
    assert cfg.dialect == "sqlite"
    assert cfg.is_memory
    assert cfg.config["echo"] is False


def test_from_env_unset_without_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DSG_TEST_CFG_UNSET", raising=False)
    with pytest.raises(ConfigurationError, match="DSG_TEST_CFG_UNSET"):
        DBConfig.from_env("DSG_TEST_CFG_UNSET")


def test_from_env_passes_options_through_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSG_TEST_CFG_URL", "postgresql://u@h/d")
    with pytest.raises(ConfigurationError, match="busy_timeout_ms"):
        DBConfig.from_env("DSG_TEST_CFG_URL", busy_timeout_ms=10)


@pytest.mark.parametrize(
    ("uri", "drivername", "dialect"),
    [
        ("sqlite://", "sqlite+aiosqlite", "sqlite"),
        ("sqlite:///:memory:", "sqlite+aiosqlite", "sqlite"),
        ("sqlite+pysqlite:///app.db", "sqlite+aiosqlite", "sqlite"),
        ("postgresql://u:pw@h/db", "postgresql+asyncpg", "postgresql"),
        ("postgres://u:pw@h/db", "postgresql+asyncpg", "postgresql"),
        ("postgresql+psycopg2://u:pw@h/db", "postgresql+asyncpg", "postgresql"),
        ("mysql://u:pw@h/db", "mysql+aiomysql", "mysql"),
        ("mysql+pymysql://u:pw@h/db", "mysql+aiomysql", "mysql"),
        ("mariadb://u:pw@h/db", "mariadb+aiomysql", "mariadb"),
    ],
)
def test_sync_uris_are_upgraded(uri: str, drivername: str, dialect: str, log_messages: list[str]) -> None:
    cfg = DBConfig({"database_uri": uri})
    assert cfg.url.drivername == drivername
    assert cfg.dialect == dialect
    assert isinstance(cfg.engine, AsyncEngine)
    upgrades = [m for m in log_messages if f"using {drivername}" in m]
    assert len(upgrades) == 1, log_messages
    assert "pw" not in "".join(upgrades).replace("\n", "")


@pytest.mark.parametrize(
    "uri",
    [
        "sqlite+aiosqlite://",
        "postgresql+asyncpg://u@h/db",
        "mysql+aiomysql://u@h/db",
        "mysql+asyncmy://u@h/db",
    ],
)
def test_async_uris_are_kept_and_not_logged_as_upgraded(uri: str, log_messages: list[str]) -> None:
    cfg = DBConfig({"database_uri": uri})
    assert cfg.url.drivername == uri.split(":")[0]
    assert not [m for m in log_messages if "no async driver" in m]


async def test_sync_uri_upgrade_connects(backend: str, db_url: str) -> None:
    sync_url = db_url.replace("+aiosqlite", "").replace("+asyncpg", "").replace("+aiomysql", "")
    assert "+" not in sync_url.split("://")[0]
    async with AsyncDatabase(DBConfig({"database_uri": sync_url})) as db:
        assert (await db.health_check())["ok"] is True


# --------------------------------------------------------------------------- rejected configs


def _config_error(config: Any) -> str:
    with pytest.raises(ConfigurationError) as info:
        DBConfig(config)
    assert isinstance(info.value, ValueError)
    assert info.value.details == str(info.value)
    return str(info.value)


def test_unknown_key_names_key_dialect_and_accepted() -> None:
    message = _config_error({"database_uri": "sqlite://", "poolsize": 5})
    assert "'poolsize'" in message
    assert "sqlite" in message
    assert "accepted" in message and "busy_timeout_ms" in message and "echo" in message


def test_unknown_key_on_postgresql_lists_postgres_keys() -> None:
    message = _config_error({"database_uri": "postgresql://u@h/d", "colour": "blue"})
    assert "'colour'" in message and "'postgresql'" in message
    assert "pgbouncer" in message
    assert "busy_timeout_ms" not in message


@pytest.mark.parametrize(
    ("uri", "key", "value", "dialect", "accepted"),
    [
        ("postgresql://u@h/d", "busy_timeout_ms", 100, "postgresql", "sqlite"),
        ("postgresql://u@h/d", "sqlite_begin", "immediate", "postgresql", "sqlite"),
        ("mysql://u@h/d", "pgbouncer", True, "mysql", "postgresql"),
        ("sqlite://", "pgbouncer", True, "sqlite", "postgresql"),
        ("sqlite:///x.db", "read_replicas", ["sqlite:///y.db"], "sqlite", "mysql"),
        ("sqlite:///x.db", "connect_timeout", 3, "sqlite", "postgresql"),
    ],
)
def test_key_for_wrong_dialect(uri: str, key: str, value: Any, dialect: str, accepted: str) -> None:
    message = _config_error({"database_uri": uri, key: value})
    assert f"'{key}'" in message
    assert f"'{dialect}'" in message
    assert accepted in message


def test_url_part_for_sqlite() -> None:
    message = _config_error({"dialect": "sqlite", "database": "x.db", "host": "h"})
    assert "'host'" in message and "'sqlite'" in message and "postgresql" in message


@pytest.mark.parametrize("key", ["pool_size", "max_overflow"])
def test_pool_sizing_on_in_memory_sqlite(key: str) -> None:
    message = _config_error({"database_uri": "sqlite+aiosqlite:///:memory:", key: 3})
    assert f"'{key}'" in message
    assert "in-memory" in message
    assert "file database" in message


def test_pool_size_on_sqlite_file_is_accepted(tmp_path: Path) -> None:
    cfg = DBConfig({"database_uri": f"sqlite:///{tmp_path / 'p.db'}", "pool_size": 3})
    assert cfg.config["pool_size"] == 3
    assert cfg.engine.pool.size() == 3  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("echo", "yes", "True, False or 'debug'"),
        ("pool_pre_ping", 1, "a bool"),
        ("pool_size", "5", "an int >= 1"),
        ("pool_size", 0, "an int >= 1"),
        ("pool_size", True, "an int >= 1"),
        ("pool_timeout", -1, "seconds"),
        ("connect_args", [("a", 1)], "a dict"),
        ("isolation_level", "SOMETIMES", "READ COMMITTED"),
        ("slow_query_ms", "fast", "milliseconds"),
        ("read_replicas", "postgresql://u@r/d", "a list of URI strings"),
        ("pgbouncer", "yes", "a bool"),
        ("port", "5432", "int"),
    ],
)
def test_wrong_type_names_key_and_expected(key: str, value: Any, expected: str) -> None:
    if key == "port":
        config: dict[str, Any] = {"dialect": "postgresql", "host": "h", "port": value}
    else:
        config = {"database_uri": "postgresql://u@h/d", key: value}
    message = _config_error(config)
    assert f"'{key}'" in message
    assert expected in message


def test_wrong_type_on_sqlite_names_dialect() -> None:
    message = _config_error({"database_uri": "sqlite:///x.db", "busy_timeout_ms": "5s"})
    assert "'busy_timeout_ms'" in message and "'sqlite'" in message and "milliseconds" in message


@pytest.mark.parametrize(
    "uri",
    [
        "not a uri",
        "://nothing",
        "",
        "   ",
        "postgresql://u:secretpw@host:notaport/db",
        "postgresql://u:secretpw@host:99999/db",
    ],
)
def test_unparsable_uri(uri: str) -> None:
    message = _config_error({"database_uri": uri})
    assert "database_uri" in message or "port" in message
    assert "secretpw" not in message


def test_uri_of_wrong_type() -> None:
    message = _config_error({"database_uri": 42})
    assert "database_uri" in message and "int" in message


def test_unsupported_dialect_lists_accepted() -> None:
    message = _config_error({"database_uri": "db2://u:secretpw@h/db"})
    assert "db2" in message
    assert "postgresql" in message and "sqlite" in message and "mysql" in message
    assert "secretpw" not in message


def test_unsupported_driver_lists_accepted() -> None:
    message = _config_error({"database_uri": "postgresql+notadriver://u@h/db"})
    assert "notadriver" in message and "asyncpg" in message


def test_both_uri_and_parts() -> None:
    message = _config_error({"database_uri": "postgresql://u@h/d", "host": "other", "port": 5432})
    assert "database_uri" in message
    assert "host" in message and "port" in message


def test_parts_without_dialect() -> None:
    message = _config_error({"host": "h", "database": "d"})
    assert "dialect" in message and "database_uri" in message


def test_not_a_mapping() -> None:
    message = _config_error("sqlite://")
    assert "mapping" in message


# --------------------------------------------------------------------------- secrets


def _special_configs() -> list[dict[str, Any]]:
    return [
        {
            "dialect": "postgresql",
            "host": "127.0.0.1",
            "port": 1,
            "username": "u",
            "password": SPECIAL_PASSWORD,
            "database": "x",
        },
        {"database_uri": f"postgresql://u:{SPECIAL_PASSWORD_ENCODED}@127.0.0.1:1/x"},
        {"database_uri": f"mysql://u:{SPECIAL_PASSWORD_ENCODED}@127.0.0.1:1/x"},
    ]


def _assert_no_password(text_: str) -> None:
    assert SPECIAL_PASSWORD not in text_
    assert SPECIAL_PASSWORD_ENCODED not in text_
    assert "p@ss" not in text_


@pytest.mark.parametrize("config", _special_configs())
def test_password_not_in_repr_str_config_safe_url(config: dict[str, Any], log_messages: list[str]) -> None:
    cfg = DBConfig(config)
    assert cfg.url.password == SPECIAL_PASSWORD  # parsed correctly, percent-decoded
    for shown in (repr(cfg), str(cfg), repr(cfg.config), str(cfg.config), cfg.safe_url, str(cfg.url)):
        _assert_no_password(shown)
    assert "***" in cfg.safe_url
    _assert_no_password("\n".join(log_messages))
    assert log_messages, "DBConfig should log its lifecycle"


@pytest.mark.parametrize("config", _special_configs())
def test_password_not_in_configuration_errors(config: dict[str, Any]) -> None:
    bad = dict(config, pool_timeout="soon")
    message = _config_error(bad)
    assert "'pool_timeout'" in message
    _assert_no_password(message)
    bad = dict(config, not_a_key=1)
    _assert_no_password(_config_error(bad))


def test_password_not_in_wrong_type_password_error() -> None:
    message = _config_error({"dialect": "postgresql", "host": "h", "password": 12345678})
    assert "'password'" in message
    assert "12345678" not in message


@pytest.mark.parametrize("config", _special_configs())
async def test_password_not_in_connection_errors_or_logs(
    config: dict[str, Any], log_messages: list[str]
) -> None:
    db = AsyncDatabase(DBConfig(dict(config, connect_timeout=1)))
    with pytest.raises(DatabaseUnavailableError) as info:
        await db.connect(timeout=0.5)
    _assert_no_password(str(info.value))
    _assert_no_password(repr(info.value))
    _assert_no_password(str(info.value.to_dict()))
    health = await db.health_check(timeout=2)
    assert health["ok"] is False
    _assert_no_password(str(health))
    await db.disconnect()
    _assert_no_password(repr(db))
    _assert_no_password("\n".join(log_messages))
    assert any("not ready" in m or "retrying" in m for m in log_messages)


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
async def test_password_not_in_logs_on_real_server(
    backend: str, db_url: str, log_messages: list[str]
) -> None:
    url = DBConfig({"database_uri": db_url}).url
    if backend == "postgresql":
        # trust authentication accepts any password, so the connection succeeds
        cfg = DBConfig(
            {
                "dialect": "postgresql",
                "host": url.host,
                "port": url.port,
                "username": url.username,
                "password": SPECIAL_PASSWORD,
                "database": url.database,
            }
        )
        async with AsyncDatabase(cfg) as db:
            assert (await db.health_check())["ok"] is True
    else:
        # a wrong password is refused: the error must not carry it
        cfg = DBConfig(
            {
                "dialect": "mysql",
                "host": url.host,
                "port": url.port,
                "username": url.username,
                "password": SPECIAL_PASSWORD,
                "database": url.database,
            }
        )
        db = AsyncDatabase(cfg)
        with pytest.raises(DatabaseUnavailableError) as info:
            await db.connect(timeout=1)
        _assert_no_password(str(info.value))
        _assert_no_password(str(info.value.driver_error))
        await db.disconnect()
    _assert_no_password("\n".join(log_messages))
    assert any("configured" in m for m in log_messages)


# --------------------------------------------------------------------------- missing drivers


@pytest.fixture
def hide_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make ``importlib.util.find_spec`` (as used by ``_url``) report chosen modules missing."""
    from dsg_lib.config import _url

    hidden: set[str] = set()
    real = importlib.util.find_spec

    def fake_find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        if name in hidden:
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(_url.importlib.util, "find_spec", fake_find_spec)
    return hidden


@pytest.mark.parametrize(
    ("uri", "module", "extra"),
    [
        ("postgresql://u@h/d", "asyncpg", "dsg-lib[postgres]"),
        ("postgresql+asyncpg://u@h/d", "asyncpg", "dsg-lib[postgres]"),
        ("mysql://u@h/d", "aiomysql", "dsg-lib[mysql]"),
        ("mariadb+aiomysql://u@h/d", "aiomysql", "dsg-lib[mysql]"),
        ("mysql+asyncmy://u@h/d", "asyncmy", "dsg-lib[asyncmy]"),
    ],
)
def test_missing_driver_names_the_extra(hide_module: set[str], uri: str, module: str, extra: str) -> None:
    hide_module.add(module)
    with pytest.raises(MissingDependencyError) as info:
        DBConfig({"database_uri": uri})
    assert isinstance(info.value, ConfigurationError)
    assert extra in str(info.value)
    assert "pip install" in str(info.value)
    assert module in str(info.value)


def test_missing_aiosqlite_names_the_package(hide_module: set[str]) -> None:
    hide_module.add("aiosqlite")
    with pytest.raises(MissingDependencyError, match="pip install aiosqlite"):
        DBConfig({"database_uri": "sqlite://"})


def test_other_driver_still_works_when_one_is_missing(hide_module: set[str]) -> None:
    hide_module.add("asyncpg")
    assert DBConfig({"database_uri": "mysql://u@h/d"}).dialect == "mysql"


# --------------------------------------------------------------------------- SQLite defaults


async def _pragma(session: AsyncSession, name: str) -> Any:
    return (await session.execute(text(f"PRAGMA {name}"))).scalar_one()


async def test_sqlite_file_pragmas(tmp_path: Path) -> None:
    cfg = DBConfig({"database_uri": f"sqlite+aiosqlite:///{tmp_path / 'pragmas.db'}"})
    async with cfg.get_db_session() as session:
        assert str(await _pragma(session, "journal_mode")).lower() == "wal"
        assert await _pragma(session, "busy_timeout") == 5000
        assert await _pragma(session, "foreign_keys") == 1
    await cfg.dispose()


async def test_sqlite_file_busy_timeout_configured(tmp_path: Path) -> None:
    cfg = DBConfig({"database_uri": f"sqlite:///{tmp_path / 'busy.db'}", "busy_timeout_ms": 1234})
    async with cfg.get_db_session() as session:
        assert await _pragma(session, "busy_timeout") == 1234
        assert str(await _pragma(session, "journal_mode")).lower() == "wal"
    await cfg.dispose()


@pytest.mark.parametrize("backend", ["sqlite_memory", "sqlite_file"], indirect=True)
async def test_sqlite_pragmas_on_every_session(backend: str, db_url: str) -> None:
    cfg = DBConfig({"database_uri": db_url})
    for _ in range(3):
        async with cfg.get_db_session() as session:
            assert await _pragma(session, "foreign_keys") == 1
            assert await _pragma(session, "busy_timeout") == 5000
            mode = str(await _pragma(session, "journal_mode")).lower()
            assert mode == ("memory" if backend == "sqlite_memory" else "wal")
    await cfg.dispose()


@pytest.mark.parametrize(
    "uri", ["sqlite+aiosqlite:///:memory:", "sqlite://", "sqlite+aiosqlite:///:memory:?cache=shared"]
)
async def test_in_memory_sqlite_is_one_shared_database(uri: str) -> None:
    cfg = DBConfig({"database_uri": uri})
    async with cfg.get_db_session() as first:
        await first.execute(text("CREATE TABLE cfg_mem_shared (x INTEGER)"))
        await first.commit()
    async with cfg.get_db_session() as second:
        await second.execute(text("INSERT INTO cfg_mem_shared VALUES (7)"))
        await second.commit()
    async with cfg.get_db_session() as third:
        rows = (await third.execute(text("SELECT x FROM cfg_mem_shared"))).scalars().all()
    assert rows == [7]
    # a second config is a different database
    other = DBConfig({"database_uri": uri})
    async with other.get_db_session() as session:
        names = (
            (await session.execute(text("SELECT name FROM sqlite_master WHERE name = 'cfg_mem_shared'")))
            .scalars()
            .all()
        )
    assert names == []
    await cfg.dispose()
    await other.dispose()


async def test_in_memory_sqlite_shared_through_async_database() -> None:
    db = AsyncDatabase(DBConfig({"database_uri": "sqlite+aiosqlite:///:memory:"}))
    async with db.transaction() as session:
        await session.execute(text("CREATE TABLE cfg_mem_tx (x INTEGER)"))
        await session.execute(text("INSERT INTO cfg_mem_tx VALUES (1), (2)"))
    async with db.get_db_session() as session:
        total = (await session.execute(text("SELECT sum(x) FROM cfg_mem_tx"))).scalar_one()
    async with db.db_config.get_db_session() as session:
        count = (await session.execute(text("SELECT count(*) FROM cfg_mem_tx"))).scalar_one()
    assert (total, count) == (3, 2)
    await db.disconnect()


async def test_config_get_db_session_never_commits(backend: str, db_url: str) -> None:
    cfg = DBConfig({"database_uri": db_url})
    table = f"cfg_nocommit_{backend}_{RUN}"
    async with cfg.get_db_session() as session:
        await session.execute(text(f"DROP TABLE IF EXISTS {table}"))
        await session.execute(text(f"CREATE TABLE {table} (x INTEGER)"))
        await session.commit()
    try:
        async with cfg.get_db_session() as session:
            await session.execute(text(f"INSERT INTO {table} VALUES (1)"))
        async with cfg.get_db_session() as session:
            assert (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one() == 0
    finally:
        async with cfg.get_db_session() as session:
            await session.execute(text(f"DROP TABLE IF EXISTS {table}"))
            await session.commit()
        await cfg.dispose()


def test_option_returns_library_keys() -> None:
    cfg = DBConfig({"database_uri": "sqlite:///x.db", "slow_query_ms": 25, "busy_timeout_ms": 10})
    assert cfg.option("slow_query_ms") == 25
    assert cfg.option("busy_timeout_ms") == 10
    assert cfg.option("pgbouncer", "absent") == "absent"


async def test_server_pre_ping_replaces_a_killed_pooled_connection(
    server_backend_url: tuple[str, str],
) -> None:
    """Pre-ping is on by default for servers: a pooled connection killed by the server is replaced.

    ``pre_ping_window_ms=0`` pings on every checkout; with the default window a
    connection used less than a second ago is not pinged (see the pre-ping tests).
    """
    backend, url = server_backend_url
    db = AsyncDatabase(
        DBConfig({"database_uri": url, "pool_size": 1, "max_overflow": 0, "pre_ping_window_ms": 0})
    )
    own_id = "SELECT pg_backend_pid()" if backend == "postgresql" else "SELECT CONNECTION_ID()"
    kill = "SELECT pg_terminate_backend({})" if backend == "postgresql" else "KILL {}"
    async with db.get_db_session() as session:
        victim = (await session.execute(text(own_id))).scalar()
    admin = AsyncDatabase(DBConfig({"database_uri": url}))
    async with admin.get_db_session() as session:
        await session.execute(text(kill.format(int(victim))))
    await asyncio.sleep(0.2)
    async with db.get_db_session() as session:  # same pool slot: pinged, found dead, reconnected
        assert (await session.execute(text(own_id))).scalar() != victim
    for database in (db, admin):
        await database.disconnect()

    no_ping = AsyncDatabase(DBConfig({"database_uri": url, "pool_pre_ping": False, "pool_size": 1}))
    async with no_ping.get_db_session() as session:
        victim = (await session.execute(text(own_id))).scalar()
    admin = AsyncDatabase(DBConfig({"database_uri": url}))
    async with admin.get_db_session() as session:
        await session.execute(text(kill.format(int(victim))))
    await asyncio.sleep(0.2)
    with pytest.raises(DatabaseUnavailableError):  # without pre-ping the dead connection is used
        async with no_ping.get_db_session() as session:
            await session.execute(text(own_id))
    for database in (no_ping, admin):
        await database.disconnect()


@pytest.mark.parametrize(
    ("uri", "missing", "hint"),
    [
        ("oracle+oracledb://u:p@h/d", "oracledb", "pip install oracledb"),
        ("mssql+aioodbc://u:p@h/d", "aioodbc", "pip install aioodbc"),
        ("cockroachdb+asyncpg://u:p@h/d", "sqlalchemy_cockroachdb", "pip install sqlalchemy-cockroachdb"),
    ],
)
def test_pass_through_dialect_without_its_package_names_it(
    hide_module: set[str], uri: str, missing: str, hint: str
) -> None:
    """Oracle, SQL Server and CockroachDB are accepted as devsetgo-lib accepted them; a missing
    driver or dialect package is a MissingDependencyError saying what to install."""
    hide_module.add(missing)
    with pytest.raises(MissingDependencyError, match=hint) as err:
        DBConfig({"database_uri": uri})
    assert "p@" not in str(err.value)


@pytest.mark.parametrize("key", ["slow_query_ms", "statement_timeout_ms", "read_replicas", "busy_timeout_ms"])
def test_pass_through_dialects_refuse_dsg_lib_keys(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    """dsg_lib's own keys need its per-dialect hooks, which pass-through dialects do not get:
    refused by name, before an engine is built."""
    from dsg_lib.config import _url

    real = importlib.util.find_spec
    monkeypatch.setattr(  # the driver counts as installed whether or not this venv has it
        _url.importlib.util, "find_spec", lambda name, *a: object() if name == "oracledb" else real(name, *a)
    )
    with pytest.raises(ConfigurationError, match=f"'{key}' cannot be used with dialect 'oracle'"):
        DBConfig({"database_uri": "oracle+oracledb://u:p@h/d", key: 5})
