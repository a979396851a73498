"""Handing out connections: the pre-ping window, the one read retry, cancellation, shared configs."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest
from sqlalchemy import String, text
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import (
    AsyncDatabase,
    ConfigurationError,
    DatabaseOperations,
    DatabaseUnavailableError,
    DBConfig,
    StatementTimeoutError,
)

RUN = os.getpid()


def _model(db: AsyncDatabase, label: str) -> Any:
    class Row(db.Base):
        __tablename__ = f"acq_{label}_{RUN}"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(20))

    return Row


_OWN_ID = {"postgresql": "SELECT pg_backend_pid()", "mariadb": "SELECT CONNECTION_ID()"}
_KILL = {"postgresql": "SELECT pg_terminate_backend({})", "mariadb": "KILL {}"}


async def _kill_own_connection(backend: str, url: str, db: AsyncDatabase) -> None:
    """Kill, from another connection, the one pooled connection of ``db`` (pool_size=1)."""
    async with db.get_db_session() as session:
        victim = int((await session.execute(text(_OWN_ID[backend]))).scalar_one())
    admin = AsyncDatabase(DBConfig({"database_uri": url}))
    try:
        async with admin.get_db_session() as session:
            await session.execute(text(_KILL[backend].format(victim)))
    finally:
        await admin.disconnect()
    await asyncio.sleep(0.1)


async def _seeded(url: str, name: str, **options: Any) -> tuple[AsyncDatabase, Any, DatabaseOperations]:
    db = AsyncDatabase(DBConfig({"database_uri": url, "pool_size": 1, "max_overflow": 0, **options}))
    model = _model(db, name)
    await db.drop_tables()
    await db.create_tables()
    ops = DatabaseOperations(db)
    await ops.insert_many(model, [{"id": 1, "name": "a"}])
    return db, model, ops


async def _close(db: AsyncDatabase) -> None:
    await db.drop_tables()
    await db.disconnect()


async def test_a_connection_used_within_the_window_is_not_pinged_and_writes_are_never_retried(
    server_backend_url: tuple[str, str],
) -> None:
    backend, url = server_backend_url
    db, model, ops = await _seeded(url, "nowrite")
    try:
        await _kill_own_connection(backend, url, db)
        # used a moment ago: handed out without a ping, and a write is not repeated
        with pytest.raises(DatabaseUnavailableError):
            await ops.update_where(model, {"name": "b"}, id=1)
        assert await ops.count(model, name="a") == 1  # the write did not happen
    finally:
        await _close(db)


async def test_a_read_that_meets_a_dead_connection_is_retried_once(
    server_backend_url: tuple[str, str], log_messages: list[str]
) -> None:
    backend, url = server_backend_url
    db, model, ops = await _seeded(url, "retry")
    try:
        await _kill_own_connection(backend, url, db)
        assert await ops.count(model) == 1
        assert any("read retried" in m for m in log_messages)
        await _kill_own_connection(backend, url, db)
        assert [r.name for r in await ops.find(model)] == ["a"]  # ORM reads too
        await _kill_own_connection(backend, url, db)
        with pytest.raises(DatabaseUnavailableError):  # inside a transaction: never repeated
            async with db.transaction():
                await ops.count(model)
        assert await ops.count(model) == 1
        assert db.pool_status()["checked_out"] == 0
    finally:
        await _close(db)


@pytest.mark.parametrize("window_ms", [0, 200])
async def test_a_connection_idle_past_the_window_is_pinged_and_replaced(
    server_backend_url: tuple[str, str], window_ms: int
) -> None:
    backend, url = server_backend_url
    db, model, ops = await _seeded(url, f"ping{window_ms}", pre_ping_window_ms=window_ms)
    try:
        await _kill_own_connection(backend, url, db)
        await asyncio.sleep(window_ms / 1000.0 + 0.1)
        assert await ops.update_where(model, {"name": "b"}, id=1) == 1  # a write: pinged, not retried
        assert await ops.count(model, name="b") == 1
    finally:
        await _close(db)


def test_pre_ping_window_is_validated_and_sqlite_is_never_pinged() -> None:
    assert DBConfig({"database_uri": "sqlite://"}).pre_ping_window is None
    assert DBConfig({"database_uri": "postgresql://u@h/db"}).pre_ping_window == 1.0
    assert DBConfig({"database_uri": "mysql://u@h/db", "pre_ping_window_ms": 0}).pre_ping_window == 0.0
    assert DBConfig({"database_uri": "mysql://u@h/db", "pool_pre_ping": False}).pre_ping_window is None
    with pytest.raises(ConfigurationError, match="pre_ping_window_ms"):
        DBConfig({"database_uri": "sqlite:///x.db", "pre_ping_window_ms": 10})
    with pytest.raises(ConfigurationError, match="pre_ping_window_ms"):
        DBConfig({"database_uri": "postgresql://u@h/db", "pre_ping_window_ms": -1})
    with pytest.raises(ConfigurationError, match="pre_ping_window_ms"):
        DBConfig({"database_uri": "postgresql://u@h/db", "pre_ping_window_ms": 0.5})


# ---------------------------------------------------------------- cancellation (issue 13, item 12)
_SLOW = {
    "postgresql": "SELECT pg_sleep(5) /* {tag} */",
    "mariadb": "SELECT SLEEP(5) /* {tag} */",
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500000000) "
    "SELECT count(*) FROM c /* {tag} */",
}
_RUNNING = {
    "postgresql": "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%{tag}%' "
    "AND pid <> pg_backend_pid()",
    "mariadb": "SELECT count(*) FROM information_schema.processlist WHERE info LIKE '%{tag}%' "
    "AND id <> CONNECTION_ID()",
}


async def _still_running(url: str, backend: str, tag: str) -> int:
    admin = AsyncDatabase(DBConfig({"database_uri": url}))
    try:
        async with admin.get_db_session() as session:
            return int((await session.execute(text(_RUNNING[backend].format(tag=tag)))).scalar_one())
    finally:
        await admin.disconnect()


async def test_a_cancelled_query_stops_on_the_server(backend: str, db_url: str) -> None:
    kind = "sqlite" if backend.startswith("sqlite") else backend
    tag = f"dsg_cancel_{RUN}_{backend}"
    db = AsyncDatabase(DBConfig({"database_uri": db_url}))
    try:

        async def slow() -> None:
            async with db.get_db_session() as session:
                await session.execute(text(_SLOW[kind].format(tag=tag)))

        started = time.perf_counter()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slow(), 0.3)
        assert time.perf_counter() - started < 1.5  # SQLite took 10 s before: the statement ran on
        if kind != "sqlite":
            for _ in range(10):  # within ~1 s
                if not await _still_running(db_url, backend, tag):
                    break
                await asyncio.sleep(0.1)
            assert await _still_running(db_url, backend, tag) == 0  # MariaDB kept running it before
        started = time.perf_counter()
        async with db.transaction() as session:  # usable at once (a file's write lock released)
            assert (await session.execute(text("SELECT 1"))).scalar() == 1
        assert time.perf_counter() - started < 1.0
        assert db.pool_status()["checked_out"] == 0
    finally:
        await db.disconnect()


async def test_sqlite_statement_timeout_interrupts_in_time(tmp_path: Any) -> None:
    db = AsyncDatabase(
        DBConfig({"database_uri": f"sqlite:///{tmp_path / 't.db'}", "statement_timeout_ms": 300})
    )
    try:
        started = time.perf_counter()
        with pytest.raises(StatementTimeoutError):
            async with db.get_db_session() as session:
                await session.execute(text(_SLOW["sqlite"].format(tag="timeout")))
        assert time.perf_counter() - started < 1.5
        async with db.get_db_session() as session:
            assert (await session.execute(text("SELECT 2"))).scalar() == 2
    finally:
        await db.disconnect()


# ---------------------------------------------------------------- shared config (issue 13, item 16)
async def test_disconnecting_one_database_keeps_another_on_the_same_in_memory_config() -> None:
    config = DBConfig({"database_uri": "sqlite://"})
    first, second = AsyncDatabase(config), AsyncDatabase(config)
    model = _model(first, "shared")
    await first.create_tables()
    await DatabaseOperations(first).insert_many(model, [{"id": 1, "name": "kept"}])
    await first.disconnect()
    assert (await second.health_check())["ok"] is True
    assert [r.name for r in await DatabaseOperations(second).find(model)] == ["kept"]  # tables wiped before
    await second.disconnect()
    await second.connect()  # the last one out closed it: a fresh, empty in-memory database
    with pytest.raises(Exception, match="no such table"):
        await DatabaseOperations(second).count(model)
    await second.disconnect()


# ---------------------------------------------------------------- newcomer warning (issue 13, item 18)
async def test_create_tables_that_creates_nothing_warns(log_messages: list[str]) -> None:
    async with AsyncDatabase(DBConfig({"database_uri": "sqlite://"})) as db:
        await db.create_tables()
    warning = [m for m in log_messages if "found no tables" in m]
    assert warning, log_messages
    assert "db.Base" in warning[0] and "pass them" in warning[0]
