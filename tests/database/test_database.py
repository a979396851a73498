"""Tests for ``dsg_lib.async_database_functions.async_database`` (``AsyncDatabase``) on every backend."""

from __future__ import annotations

import asyncio
import os
import time
import warnings
from typing import Any

import pytest
from sqlalchemy import ForeignKey, String, Table, func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dsg_lib import (
    AsyncDatabase,
    DatabaseUnavailableError,
    DBConfig,
    InvalidInputError,
    NotConnectedError,
    SessionMissingError,
    TransactionConflictError,
)
from dsg_lib.async_database_functions import database_config
from tests.helpers import count_rows

# Suffix for table names: concurrent test runs on the same servers do not collide.
RUN = os.getpid()

POOL_KEYS = {"size", "checked_in", "checked_out", "overflow"}


def make_item_model(db: AsyncDatabase, table: str) -> Any:
    """A model ``(id, name)`` on ``db.Base``; the class name is unique like the table name."""
    return type(
        f"Item_{table}",
        (db.Base,),
        {
            "__tablename__": table,
            "__annotations__": {"id": Mapped[int], "name": Mapped[str]},
            "id": mapped_column(primary_key=True, autoincrement=False),
            "name": mapped_column(String(50)),
        },
    )


async def names(db: AsyncDatabase, model: Any) -> list[str]:
    async with db.get_db_session() as session:
        return list((await session.execute(select(model.name).order_by(model.id))).scalars().all())


async def table_names(db: AsyncDatabase) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


# --------------------------------------------------------------------------- Base


def test_base_uses_config_metadata() -> None:
    cfg = DBConfig({"database_uri": "sqlite://"})
    db = AsyncDatabase(cfg)
    assert issubclass(db.Base, DeclarativeBase)
    assert db.Base.metadata is cfg.metadata
    other = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
    assert other.Base is not db.Base
    assert other.Base.metadata is not db.Base.metadata


async def test_base_can_be_passed_in(backend: str, db_url: str) -> None:
    class MyBase(DeclarativeBase):
        pass

    class Early(MyBase):
        __tablename__ = f"adb_early_{backend}_{RUN}"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(20))

    db = AsyncDatabase(DBConfig({"database_uri": db_url}), base=MyBase)
    assert db.Base is MyBase
    try:
        await db.drop_tables()
        await db.create_tables()
        async with db.transaction() as session:
            session.add(Early(id=1, name="early"))
        assert await names(db, Early) == ["early"]
    finally:
        await db.drop_tables()
        await db.disconnect()


def test_constructor_rejects_bad_arguments() -> None:
    with pytest.raises(InvalidInputError, match="DBConfig"):
        AsyncDatabase({"database_uri": "sqlite://"})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="DeclarativeBase"):
        AsyncDatabase(DBConfig({"database_uri": "sqlite://"}), base=object)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- lifecycle


async def test_connect_with_timeout(db: AsyncDatabase) -> None:
    started = time.monotonic()
    await db.connect(timeout=5)
    assert time.monotonic() - started < 5
    assert db.is_connected


@pytest.mark.parametrize("uri", ["postgresql://u:secretpw@127.0.0.1:1/x", "mysql://u:secretpw@127.0.0.1:1/x"])
async def test_connect_unreachable_fails_within_timeout(uri: str, log_messages: list[str]) -> None:
    db = AsyncDatabase(DBConfig({"database_uri": uri}))
    timeout = 1.5
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailableError) as info:
        await db.connect(timeout=timeout)
    elapsed = time.monotonic() - started
    assert elapsed < timeout + 2
    assert elapsed >= timeout * 0.9  # it retried until the deadline
    message = str(info.value)
    assert "secretpw" not in message
    assert "127.0.0.1" in message and "***" in message
    assert "secretpw" not in str(info.value.to_dict())
    assert "secretpw" not in "\n".join(log_messages)
    assert sum("not ready" in m for m in log_messages) >= 2, "it should retry with backoff"
    await db.disconnect()


async def test_connect_unreachable_with_connect_timeout_never_hangs() -> None:
    # 127.0.0.1:1 refuses at once; with a tiny overall timeout we still return promptly
    db = AsyncDatabase(DBConfig({"database_uri": "postgresql://u:secretpw@127.0.0.1:1/x"}))
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailableError):
        await db.connect(timeout=0.2)
    assert time.monotonic() - started < 2.2
    health = await db.health_check(timeout=1)
    assert health["ok"] is False
    assert "secretpw" not in health["error"]
    await db.disconnect()


async def test_disconnect_idempotent_then_not_connected(db: AsyncDatabase) -> None:
    await db.connect()
    await db.disconnect()
    await db.disconnect()
    assert not db.is_connected
    with pytest.raises(NotConnectedError):
        async with db.get_db_session():
            pass
    with pytest.raises(NotConnectedError):
        async with db.transaction():
            pass
    with pytest.raises(NotConnectedError):
        await db.create_tables()
    with pytest.raises(NotConnectedError):
        await db.drop_tables()

    async def work(session: AsyncSession) -> int:
        return 1

    with pytest.raises(NotConnectedError):
        await db.run_in_transaction(work)
    health = await db.health_check()
    assert health["ok"] is False and "disconnected" in health["error"]
    # connect() again reopens it
    await db.connect(timeout=5)
    assert db.is_connected
    async with db.get_db_session() as session:
        assert (await session.execute(text("SELECT 1"))).scalar_one() == 1


async def test_async_with(db_url: str, backend: str) -> None:
    async with AsyncDatabase(DBConfig({"database_uri": db_url})) as db:
        assert db.is_connected
        Item = make_item_model(db, f"adb_with_{backend}_{RUN}")
        await db.drop_tables()
        await db.create_tables()
        async with db.transaction() as session:
            session.add(Item(id=1, name="inside"))
        assert await names(db, Item) == ["inside"]
        await db.drop_tables()
    assert not db.is_connected
    with pytest.raises(NotConnectedError):
        async with db.get_db_session():
            pass


async def test_repr_shows_state_without_password() -> None:
    db = AsyncDatabase(DBConfig({"database_uri": "postgresql://u:secretpw@127.0.0.1:1/x"}))
    assert "secretpw" not in repr(db) and "open" in repr(db)
    await db.disconnect()
    assert "closed" in repr(db)


# --------------------------------------------------------------------------- sessions


async def test_get_db_session_never_commits(db: AsyncDatabase, backend: str) -> None:
    Item = make_item_model(db, f"adb_nocommit_{backend}_{RUN}")
    await db.drop_tables()
    await db.create_tables()
    async with db.get_db_session() as session:
        assert isinstance(session, AsyncSession)
        session.add(Item(id=1, name="uncommitted"))
        await session.flush()
        assert (await session.execute(select(func.count()).select_from(Item))).scalar_one() == 1
    assert await count_rows(db, Item) == 0
    async with db.get_db_session() as session:
        session.add(Item(id=2, name="committed"))
        await session.commit()
    assert await names(db, Item) == ["committed"]
    assert db.pool_status()["checked_out"] == 0


async def test_get_db_session_rolls_back_on_error(db: AsyncDatabase, backend: str) -> None:
    Item = make_item_model(db, f"adb_sess_err_{backend}_{RUN}")
    await db.drop_tables()
    await db.create_tables()
    with pytest.raises(RuntimeError, match="boom"):
        async with db.get_db_session() as session:
            session.add(Item(id=1, name="x"))
            await session.flush()
            raise RuntimeError("boom")
    assert await count_rows(db, Item) == 0
    assert db.pool_status()["checked_out"] == 0


async def test_sessions_do_not_expire_on_commit(db: AsyncDatabase, backend: str) -> None:
    Item = make_item_model(db, f"adb_expire_{backend}_{RUN}")
    await db.drop_tables()
    await db.create_tables()
    async with db.get_db_session() as session:
        item = Item(id=1, name="kept")
        session.add(item)
        await session.commit()
    # readable after commit and close, without lazy IO
    assert item.name == "kept"


async def test_in_memory_sqlite_is_shared_across_sessions() -> None:
    db = AsyncDatabase(DBConfig({"database_uri": "sqlite+aiosqlite:///:memory:"}))

    class Shared(db.Base):
        __tablename__ = "adb_mem_shared"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(20))

    async with db.get_db_session() as session:
        await session.run_sync(lambda s: Shared.__table__.create(s.connection()))
        await session.commit()
    assert "adb_mem_shared" in await table_names(db)
    async with db.transaction() as session:
        session.add_all([Shared(id=1, name="a"), Shared(id=2, name="b")])
    async with db.get_db_session() as other:
        got = (await other.execute(select(Shared.name).order_by(Shared.id))).scalars().all()
    assert got == ["a", "b"]
    await db.disconnect()


# --------------------------------------------------------------------------- transactions


async def test_transaction_commits(db: AsyncDatabase, backend: str) -> None:
    Item = make_item_model(db, f"adb_tx_commit_{backend}_{RUN}")
    await db.drop_tables()
    await db.create_tables()
    async with db.transaction() as session:
        session.add(Item(id=1, name="one"))
        await session.execute(Item.__table__.insert().values(id=2, name="two"))
    assert await names(db, Item) == ["one", "two"]
    assert db.pool_status()["checked_out"] == 0


async def test_transaction_rolls_back_on_exception(db: AsyncDatabase, backend: str) -> None:
    Item = make_item_model(db, f"adb_tx_rollback_{backend}_{RUN}")
    await db.drop_tables()
    await db.create_tables()
    async with db.transaction() as session:
        session.add(Item(id=1, name="kept"))
    with pytest.raises(ValueError, match="nope"):
        async with db.transaction() as session:
            session.add(Item(id=2, name="lost"))
            await session.flush()
            await session.execute(Item.__table__.update().values(name="changed"))
            raise ValueError("nope")
    assert await names(db, Item) == ["kept"]
    assert db.pool_status()["checked_out"] == 0


async def test_transaction_rolls_back_on_cancellation(db: AsyncDatabase, backend: str) -> None:
    Item = make_item_model(db, f"adb_tx_cancel_{backend}_{RUN}")
    await db.drop_tables()
    await db.create_tables()
    inserted = asyncio.Event()
    never = asyncio.Event()
    reached_end = False

    async def worker() -> None:
        nonlocal reached_end
        async with db.transaction() as session:
            session.add(Item(id=1, name="cancelled"))
            await session.flush()
            inserted.set()
            await never.wait()
            reached_end = True

    task = asyncio.create_task(worker())
    await asyncio.wait_for(inserted.wait(), timeout=10)
    assert db.pool_status()["checked_out"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert not reached_end
    assert db.pool_status()["checked_out"] == 0
    assert await count_rows(db, Item) == 0
    # the database still works normally afterwards
    async with db.transaction() as session:
        session.add(Item(id=1, name="after"))
    assert await names(db, Item) == ["after"]


async def test_transaction_cancelled_during_commit_like_wait_leaks_nothing(
    db: AsyncDatabase, backend: str
) -> None:
    Item = make_item_model(db, f"adb_tx_cancel_many_{backend}_{RUN}")
    await db.drop_tables()
    await db.create_tables()

    async def worker(i: int, ready: asyncio.Event) -> None:
        async with db.transaction() as session:
            session.add(Item(id=i, name=f"n{i}"))
            await session.flush()
            ready.set()
            await asyncio.sleep(30)

    for i in range(3):
        ready = asyncio.Event()
        task = asyncio.create_task(worker(i, ready))
        await asyncio.wait_for(ready.wait(), timeout=10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert db.pool_status()["checked_out"] == 0
    assert await count_rows(db, Item) == 0


async def test_nested_transaction_is_a_savepoint(db: AsyncDatabase, backend: str) -> None:
    Item = make_item_model(db, f"adb_tx_nested_{backend}_{RUN}")
    await db.drop_tables()
    await db.create_tables()
    async with db.transaction() as outer:
        outer.add(Item(id=1, name="outer-before"))
        await outer.flush()
        with pytest.raises(RuntimeError, match="inner failed"):
            async with db.transaction() as inner:
                assert inner is outer
                inner.add(Item(id=2, name="inner-lost"))
                await inner.flush()
                raise RuntimeError("inner failed")
        async with db.transaction() as inner_ok:
            inner_ok.add(Item(id=3, name="inner-kept"))
        outer.add(Item(id=4, name="outer-after"))
    assert await names(db, Item) == ["outer-before", "inner-kept", "outer-after"]
    assert db.pool_status()["checked_out"] == 0


async def test_outer_failure_rolls_back_committed_savepoint(db: AsyncDatabase, backend: str) -> None:
    Item = make_item_model(db, f"adb_tx_nested_outer_{backend}_{RUN}")
    await db.drop_tables()
    await db.create_tables()
    with pytest.raises(KeyError):
        async with db.transaction() as outer:
            async with db.transaction() as inner:
                inner.add(Item(id=1, name="inner"))
            outer.add(Item(id=2, name="outer"))
            await outer.flush()
            raise KeyError("outer failed")
    assert await count_rows(db, Item) == 0


async def test_current_session_inside_and_outside(db: AsyncDatabase) -> None:
    with pytest.raises(SessionMissingError) as info:
        db.current_session()
    assert "transaction()" in str(info.value)
    async with db.transaction() as session:
        assert db.current_session() is session

        async def child() -> AsyncSession:
            return db.current_session()

        # tasks started inside the transaction see it too
        assert await asyncio.create_task(child()) is session
        async with db.transaction() as nested:
            assert db.current_session() is nested is session
    with pytest.raises(SessionMissingError):
        db.current_session()
    # a get_db_session() is not a transaction scope
    async with db.get_db_session():
        with pytest.raises(SessionMissingError):
            db.current_session()


async def test_current_session_is_per_database(db: AsyncDatabase) -> None:
    other = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
    async with db.transaction():
        with pytest.raises(SessionMissingError):
            other.current_session()
    await other.disconnect()


async def test_current_session_not_visible_in_unrelated_task(db: AsyncDatabase) -> None:
    entered = asyncio.Event()
    leave = asyncio.Event()

    async def holder() -> None:
        async with db.transaction():
            entered.set()
            await leave.wait()

    task = asyncio.create_task(holder())
    await asyncio.wait_for(entered.wait(), timeout=10)
    with pytest.raises(SessionMissingError):
        db.current_session()
    leave.set()
    await task


# --------------------------------------------------------------------------- run_in_transaction


async def test_run_in_transaction_returns_value(db: AsyncDatabase, backend: str) -> None:
    Item = make_item_model(db, f"adb_rit_value_{backend}_{RUN}")
    await db.drop_tables()
    await db.create_tables()

    async def work(session: AsyncSession) -> str:
        session.add(Item(id=1, name="via-fn"))
        await session.flush()
        return "done"

    assert await db.run_in_transaction(work) == "done"
    assert await names(db, Item) == ["via-fn"]


async def test_run_in_transaction_retries_conflicts(
    db: AsyncDatabase, backend: str, log_messages: list[str]
) -> None:
    Item = make_item_model(db, f"adb_rit_retry_{backend}_{RUN}")
    await db.drop_tables()
    await db.create_tables()
    calls = 0

    async def work(session: AsyncSession) -> int:
        nonlocal calls
        calls += 1
        session.add(Item(id=calls, name=f"attempt-{calls}"))
        await session.flush()
        if calls < 3:
            raise TransactionConflictError("deadlock detected (simulated)")
        return calls

    assert await db.run_in_transaction(work, retries=3, backoff=0.001) == 3
    assert calls == 3
    # the failed attempts were rolled back: only the last one's row is there
    assert await names(db, Item) == ["attempt-3"]
    assert sum("transaction conflict" in m for m in log_messages) == 2
    assert db.pool_status()["checked_out"] == 0


async def test_run_in_transaction_gives_up_after_retries(db: AsyncDatabase, backend: str) -> None:
    Item = make_item_model(db, f"adb_rit_giveup_{backend}_{RUN}")
    await db.drop_tables()
    await db.create_tables()
    calls = 0

    async def work(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        session.add(Item(id=calls, name="never"))
        await session.flush()
        raise TransactionConflictError(f"conflict {calls}")

    with pytest.raises(TransactionConflictError, match="conflict 3"):
        await db.run_in_transaction(work, retries=2, backoff=0.001)
    assert calls == 3
    assert await count_rows(db, Item) == 0
    calls = 0
    with pytest.raises(TransactionConflictError):
        await db.run_in_transaction(work, retries=0)
    assert calls == 1


async def test_run_in_transaction_does_not_retry_other_errors(db: AsyncDatabase) -> None:
    calls = 0

    async def work(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("not a conflict")

    with pytest.raises(ValueError, match="not a conflict"):
        await db.run_in_transaction(work, retries=5, backoff=0.001)
    assert calls == 1


@pytest.mark.parametrize("retries", [-1, 1.5, True, "3"])
async def test_run_in_transaction_rejects_bad_retries(db: AsyncDatabase, retries: Any) -> None:
    async def work(session: AsyncSession) -> None:
        return None

    with pytest.raises(InvalidInputError, match="retries"):
        await db.run_in_transaction(work, retries=retries)


async def test_run_in_transaction_inside_transaction_joins_it(db: AsyncDatabase, backend: str) -> None:
    Item = make_item_model(db, f"adb_rit_nested_{backend}_{RUN}")
    await db.drop_tables()
    await db.create_tables()

    async def work(session: AsyncSession) -> AsyncSession:
        session.add(Item(id=5, name="joined"))
        return session

    with pytest.raises(LookupError):
        async with db.transaction() as outer:
            assert await db.run_in_transaction(work) is outer
            raise LookupError("roll back everything")
    assert await count_rows(db, Item) == 0


# --------------------------------------------------------------------------- tables


async def test_create_and_drop_tables_idempotent_and_selective(db: AsyncDatabase, backend: str) -> None:
    first = make_item_model(db, f"adb_ddl_a_{backend}_{RUN}")
    second = make_item_model(db, f"adb_ddl_b_{backend}_{RUN}")
    a, b = first.__tablename__, second.__tablename__
    await db.drop_tables()
    await db.create_tables()
    await db.drop_tables()
    assert not {a, b} & await table_names(db)

    await db.create_tables(first)
    await db.create_tables(first)  # idempotent
    found = await table_names(db)
    assert a in found and b not in found

    await db.create_tables(second.__table__)  # a Table works too
    assert {a, b} <= await table_names(db)

    await db.drop_tables(first)
    await db.drop_tables(first)  # idempotent
    found = await table_names(db)
    assert a not in found and b in found

    await db.create_tables()
    await db.create_tables()
    assert {a, b} <= await table_names(db)
    await db.drop_tables()
    await db.drop_tables()
    assert not {a, b} & await table_names(db)


async def test_create_tables_respects_foreign_key_order(db: AsyncDatabase, backend: str) -> None:
    class Parent(db.Base):
        __tablename__ = f"adb_fk_parent_{backend}_{RUN}"
        id: Mapped[int] = mapped_column(primary_key=True)

    class Child(db.Base):
        __tablename__ = f"adb_fk_child_{backend}_{RUN}"
        id: Mapped[int] = mapped_column(primary_key=True)
        parent_id: Mapped[int] = mapped_column(ForeignKey(f"{Parent.__tablename__}.id"))

    await db.drop_tables()
    await db.create_tables()
    async with db.transaction() as session:
        session.add(Parent(id=1))
        await session.flush()
        session.add(Child(id=1, parent_id=1))
    await db.drop_tables()
    assert not {Parent.__tablename__, Child.__tablename__} & await table_names(db)


async def test_create_tables_rejects_non_models(db: AsyncDatabase) -> None:
    with pytest.raises(InvalidInputError, match="model class or a Table"):
        await db.create_tables("users")
    with pytest.raises(InvalidInputError):
        await db.drop_tables(42)


def _legacy_base() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return database_config.BASE


def test_legacy_base_warns() -> None:
    with pytest.warns(DeprecationWarning, match=r"AsyncDatabase\(\.\.\.\)\.Base") as record:
        legacy = database_config.BASE
    assert issubclass(legacy, DeclarativeBase)
    assert "base=" in str(record[0].message)
    assert _legacy_base() is legacy


async def test_legacy_base_models_are_created(db: AsyncDatabase, backend: str) -> None:
    legacy = _legacy_base()
    name = f"adb_legacy_{backend}_{RUN}"
    # a unique class per run: the legacy base is process-wide
    Legacy = type(
        f"LegacyWidget_{backend}_{RUN}",
        (legacy,),
        {
            "__tablename__": name,
            "__annotations__": {"id": Mapped[int], "label": Mapped[str]},
            "id": mapped_column(primary_key=True),
            "label": mapped_column(String(30)),
        },
    )
    table: Table = Legacy.__table__
    try:
        await db.drop_tables(Legacy)
        await db.create_tables()  # no arguments: Base and the legacy BASE
        assert name in await table_names(db)
        async with db.transaction() as session:
            session.add(Legacy(id=1, label="old style"))
        async with db.get_db_session() as session:
            assert (await session.execute(select(Legacy.label))).scalar_one() == "old style"
        await db.drop_tables()  # no arguments drops the legacy tables too
        assert name not in await table_names(db)
    finally:
        await db.drop_tables(Legacy)
        legacy.metadata.remove(table)


# --------------------------------------------------------------------------- health


async def test_pool_status_keys_and_values(db: AsyncDatabase, backend: str) -> None:
    status = db.pool_status()
    assert set(status) == POOL_KEYS
    assert all(isinstance(v, int) for v in status.values())
    assert status["checked_out"] == 0
    async with db.transaction() as session:
        await session.execute(text("SELECT 1"))
        during = db.pool_status()
        assert during["checked_out"] == 1
        assert during["size"] >= 1
    after = db.pool_status()
    assert after["checked_out"] == 0
    assert after["checked_in"] >= 1
    if backend == "sqlite_memory":
        assert after["size"] == 1  # one shared connection


async def test_health_check(db: AsyncDatabase, backend: str) -> None:
    health = await db.health_check()
    assert set(health) == {"ok", "latency_ms", "dialect", "pool"}
    assert health["ok"] is True
    assert isinstance(health["latency_ms"], float) and 0 <= health["latency_ms"] < 5000
    expected = {"postgresql": "postgresql", "mariadb": "mysql"}.get(backend, "sqlite")
    assert health["dialect"] == expected == db.db_config.dialect
    assert set(health["pool"]) == POOL_KEYS
    assert health["pool"]["checked_out"] == 0


async def test_health_check_unreachable_does_not_raise() -> None:
    db = AsyncDatabase(DBConfig({"database_uri": "mysql://u:secretpw@127.0.0.1:1/x"}))
    started = time.monotonic()
    health = await db.health_check(timeout=2)
    assert time.monotonic() - started < 4
    assert health["ok"] is False
    assert health["dialect"] == "mysql"
    assert health["error"] and "secretpw" not in health["error"]
    assert set(health["pool"]) == POOL_KEYS
    await db.disconnect()
