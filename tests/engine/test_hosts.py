"""Multi-host URIs, failover-aware retries and consistency tokens, on the shared servers.

The failover itself is tested on real clusters in ``tests/ha`` (``-m ha``);
here a closed port stands in for a dead node.
"""

from __future__ import annotations

import time

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from dsg_lib import AsyncDatabase, ConfigurationError, DatabaseUnavailableError, DBConfig, InvalidInputError
from dsg_lib.consistency import PRIMARY_TOKEN, parse_token
from dsg_lib.errors import translate_error
from tests.helpers import unused_port


def _with_dead_node_first(url: str) -> str:
    parsed = make_url(url)
    dead = f"127.0.0.1:{unused_port()}"
    live = f"{parsed.host}:{parsed.port or (5432 if parsed.get_backend_name() == 'postgresql' else 3306)}"
    user = parsed.username or ""
    return f"{parsed.drivername}://{user}@{dead},{live}/{parsed.database}"


def test_postgres_hosts_become_the_asyncpg_multi_host_form() -> None:
    config = DBConfig(
        {"database_uri": "postgresql://app:pw@db-a:5433,db-b/shop?target_session_attrs=read-write"}
    )
    assert config.multi_host
    assert config.url.host is None
    assert config.url.query["host"] == ("db-a:5433", "db-b:5432")
    assert config.url.query["target_session_attrs"] == "read-write"
    assert "pw" not in config.safe_url


def test_single_host_uri_is_unchanged() -> None:
    config = DBConfig({"database_uri": "postgresql://app@db-a:5433/shop"})
    assert not config.multi_host
    assert (config.url.host, config.url.port) == ("db-a", 5433)


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql://app@db-a:port,db-b/shop",
        "mysql://app@db-a:70000,db-b/shop",
        "postgresql://app@,db-b/shop",
    ],
)
def test_bad_host_list_is_a_configuration_error(uri: str) -> None:
    with pytest.raises(ConfigurationError, match="several hosts"):
        DBConfig({"database_uri": uri})


def test_sqlite_has_no_hosts() -> None:
    with pytest.raises(ConfigurationError, match="SQLite"):
        DBConfig({"database_uri": "sqlite+aiosqlite://a,b/x.db"})


@pytest.mark.parametrize("value", [-1, 16, "1", True])
def test_wsrep_sync_wait_is_validated(value: object) -> None:
    with pytest.raises(ConfigurationError, match="wsrep_sync_wait"):
        DBConfig({"database_uri": "mysql://root@h/db", "wsrep_sync_wait": value})


def test_wsrep_sync_wait_is_mysql_only() -> None:
    with pytest.raises(ConfigurationError, match="cannot be used with dialect 'postgresql'"):
        DBConfig({"database_uri": "postgresql://u@h/db", "wsrep_sync_wait": 1})


def test_no_writable_host_is_database_unavailable() -> None:
    err = translate_error(asyncpg.TargetServerAttributeNotMatched("none of the hosts match"))
    assert isinstance(err, DatabaseUnavailableError)


async def test_a_dead_node_is_skipped(server_backend_url: tuple[str, str]) -> None:
    backend, url = server_backend_url
    extra = {"wsrep_sync_wait": 0} if backend == "mariadb" else {}
    db = AsyncDatabase(DBConfig({"database_uri": _with_dead_node_first(url), "connect_timeout": 2, **extra}))
    try:

        async def one(session: AsyncSession) -> int:
            return int((await session.execute(text("SELECT 1"))).scalar_one())

        assert await db.run_in_transaction(one) == 1
        if backend == "mariadb":
            nodes = db.db_config.nodes
            assert nodes is not None and not nodes.nodes[0].healthy and nodes.current is nodes.nodes[1]
    finally:
        await db.disconnect()


async def test_run_in_transaction_retries_an_unavailable_multi_host_database_for_a_bounded_time() -> None:
    dead = ",".join(f"127.0.0.1:{unused_port()}" for _ in range(2))
    db = AsyncDatabase(DBConfig({"database_uri": f"postgresql://u@{dead}/db", "connect_timeout": 1}))
    tries = 0

    async def work(session: AsyncSession) -> None:
        nonlocal tries
        tries += 1
        await session.execute(text("SELECT 1"))

    started = time.monotonic()
    try:
        with pytest.raises(DatabaseUnavailableError):
            await db.run_in_transaction(work, unavailable_timeout=1.0)
    finally:
        await db.disconnect()
    elapsed = time.monotonic() - started
    assert elapsed >= 1.0, f"gave up after {elapsed:.2f}s, before the 1 s budget"
    assert elapsed < 5.0, f"still trying after {elapsed:.2f}s, past the budget"


async def test_single_host_database_unavailable_is_not_retried_by_default() -> None:
    db = AsyncDatabase(
        DBConfig({"database_uri": f"postgresql://u@127.0.0.1:{unused_port()}/db", "connect_timeout": 1})
    )
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseUnavailableError):
            await db.run_in_transaction(lambda s: s.execute(text("SELECT 1")))
    finally:
        await db.disconnect()
    assert time.monotonic() - started < 1.0


def test_tokens_parse() -> None:
    assert parse_token("pg:0/10") == 16
    assert parse_token("pg:1/0") == 1 << 32
    assert parse_token(PRIMARY_TOKEN) is None
    for bad in ("", "pg:", "pg:x/1", "pg:0/1/2", "0/10"):
        with pytest.raises(InvalidInputError):
            parse_token(bad)


async def test_consistency_token_on_each_backend(db: AsyncDatabase) -> None:
    token = await db.consistency_token()
    if db.db_config.dialect == "postgresql":
        assert token.startswith("pg:") and parse_token(token) is not None
        async with db.transaction() as session:
            await session.execute(text("SELECT pg_current_wal_lsn()"))
        assert parse_token(await db.consistency_token()) >= parse_token(token)  # type: ignore[operator]
    else:
        assert token == PRIMARY_TOKEN
    async with db.consistent_with(token):
        assert (await db.health_check())["ok"]
    with pytest.raises(InvalidInputError):
        async with db.consistent_with("tampered"):
            pass


@pytest.mark.parametrize(
    ("uri", "hosts"),
    [
        ("postgresql://u@[::1]:5432,[::1]:5433/db", [("::1", 5432), ("::1", 5433)]),
        ("mysql://u@[fe80::1],db-b:3307/db", [("fe80::1", None), ("db-b", 3307)]),
        ("postgresql://u:pw@h1:5432,[::1]/db", [("h1", 5432), ("::1", None)]),
    ],
)
def test_ipv6_hosts_in_a_host_list(uri: str, hosts: list[tuple[str, int | None]]) -> None:
    config = DBConfig({"database_uri": uri})
    assert config.nodes is not None
    assert [(n.host, n.port) for n in config.nodes.nodes] == hosts
    assert "pw" not in repr(config) + repr(config.config)


@pytest.mark.parametrize("uri", ["postgresql://u@::1,::2/db", "mysql://u@[::1]x,h2/db"])
def test_ipv6_without_brackets_is_a_clear_error(uri: str) -> None:
    with pytest.raises(ConfigurationError, match=r"\[ipv6\]"):
        DBConfig({"database_uri": uri})


async def test_an_ipv6_host_that_refuses_moves_on_to_the_next(server_backend_url: tuple[str, str]) -> None:
    backend, url = server_backend_url
    parsed = make_url(url)
    live = f"{parsed.host}:{parsed.port or (5432 if backend == 'postgresql' else 3306)}"
    uri = f"{parsed.drivername}://{parsed.username or ''}@[::1]:{unused_port()},{live}/{parsed.database}"
    db = AsyncDatabase(DBConfig({"database_uri": uri, "connect_timeout": 2}))
    try:
        async with db.transaction() as session:
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await db.disconnect()


@pytest.mark.parametrize(
    ("uri", "driver"),
    [
        ("postgresql://u@h/db", "asyncpg"),
        ("mysql+aiomysql://u@h/db", "aiomysql"),
        ("mysql+asyncmy://u@h/db", "asyncmy"),
        ("sqlite+aiosqlite:///x.db", "aiosqlite"),
    ],
)
def test_a_connect_args_key_the_driver_does_not_take_is_a_configuration_error(uri: str, driver: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"'connect_argz_typo'.*{driver}"):
        DBConfig({"database_uri": uri, "connect_args": {"connect_argz_typo": 1}})


def test_known_connect_args_are_accepted() -> None:
    DBConfig({"database_uri": "postgresql://u@h/db", "connect_args": {"ssl": False, "server_settings": {}}})
    DBConfig({"database_uri": "mysql://u@h/db", "connect_args": {"charset": "utf8mb4"}})
    DBConfig({"database_uri": "sqlite:///x.db", "connect_args": {"check_same_thread": False}})
