"""DBSessionMiddleware checks out the request's connection on first use, not per request.

Routes that never touch the database (``/metrics`` wired by hand, a status
page) answer while the database is down and while the pool is exhausted;
routes that use it keep every guarantee of the eager checkout: one connection
for the whole request, commit on success, rollback on error, the pre-ping,
the atomicity guard.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import Integer, String, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig
from dsg_lib.errors import DatabaseError
from dsg_lib.fastapi import (
    CONSISTENCY_HEADER,
    ConsistencyMiddleware,
    DBSessionMiddleware,
    register_exception_handlers,
)
from dsg_lib.observability import PrometheusCollector
from tests.helpers import MYSQL_URL, backend_problem, captured_sql, unreachable, unused_port

TABLE = "lazy_items"


def _app(db: AsyncDatabase) -> tuple[FastAPI, Any]:
    """``/ping`` never uses the database; the other routes do, each in its own way."""

    class Item(db.Base):
        __tablename__ = TABLE
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        name: Mapped[str] = mapped_column(String(20))

    ops = DatabaseOperations(db)
    app = FastAPI()
    register_exception_handlers(app)
    app.add_middleware(DBSessionMiddleware, db=db)

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        db.current_session()  # the request's session exists; it has no connection yet
        return {"ok": True}

    @app.get("/count")
    async def count() -> dict[str, int]:
        return {"n": await ops.count(Item)}

    @app.post("/items/{item_id}", status_code=201)
    async def create(item_id: int, fail: int = 0) -> dict[str, Any]:
        before = db.pool_status()["checked_out"]
        session = db.current_session()
        session.add(Item(id=item_id, name="a"))  # pending: no connection needed yet
        pending = db.pool_status()["checked_out"]
        await session.flush()  # the first use: the request's connection is checked out here
        await ops.create_one(Item(id=item_id + 1, name="b"))
        async with db.transaction():  # a savepoint, on the same connection
            await ops.create_one(Item(id=item_id + 2, name="c"))
        found = (await session.execute(select(Item.id).where(Item.id >= item_id))).scalars().all()
        if fail == 400:
            raise HTTPException(status_code=400, detail="refused after the writes")
        if fail == 500:
            raise RuntimeError("boom after the writes")
        return {"before": before, "pending": pending, "during": db.pool_status()["checked_out"], "ids": found}

    @app.post("/pending/{item_id}", status_code=201)
    async def only_pending(item_id: int) -> dict[str, bool]:
        db.current_session().add(Item(id=item_id, name="p"))  # flushed by the commit at the end
        return {"ok": True}

    return app, Item


@contextmanager
def connections_used(db: AsyncDatabase) -> Iterator[list[int]]:
    """The driver connection of every statement sent through ``db`` while the block runs."""
    seen: list[int] = []

    def listener(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(id(conn.connection.driver_connection))

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listener)


@pytest.fixture
async def client_of() -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    def make(app: FastAPI) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        clients.append(httpx.AsyncClient(transport=transport, base_url="http://test"))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


@pytest.mark.parametrize(
    "driver", ["postgresql+asyncpg", "mysql+aiomysql", "mysql+asyncmy", "sqlite+aiosqlite"]
)
async def test_a_route_without_the_database_answers_while_it_is_down(
    driver: str, tmp_path: Path, client_of: Any
) -> None:
    if driver.startswith("sqlite"):
        config = {"database_uri": f"{driver}:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}"}  # cannot open
    else:
        config = {"database_uri": f"{driver}://u@127.0.0.1:{unused_port()}/db", "connect_timeout": 1}
    db = AsyncDatabase(DBConfig(config))
    app, _ = _app(db)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PrometheusCollector(db))

    @app.get("/prometheus")  # metrics wired by hand, not through metrics_router
    async def prometheus() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    client = client_of(app)
    try:
        for _ in range(3):
            ping = await asyncio.wait_for(client.get("/ping"), 2)
            assert ping.status_code == 200, ping.text
        metrics = await asyncio.wait_for(client.get("/prometheus"), 2)
        assert metrics.status_code == 200 and "dsg_lib_pool_checked_out" in metrics.text, metrics.text
        used = await asyncio.wait_for(client.get("/count"), 10)  # a route that needs it: 503, as before
        assert used.status_code == 503 and used.headers["Retry-After"] == "5", used.text
        assert used.json()["error"] == "DatabaseUnavailableError"
        assert db.pool_status()["checked_out"] == 0
    finally:
        await db.disconnect()


async def test_a_route_without_the_database_answers_while_the_pool_is_exhausted(
    db_url: str, backend: str, client_of: Any
) -> None:
    sized = {} if backend == "sqlite_memory" else {"pool_size": 1, "max_overflow": 0}  # memory: always 1
    db = AsyncDatabase(DBConfig({"database_uri": db_url, "pool_timeout": 2, **sized}))
    app, _ = _app(db)
    client = client_of(app)
    try:
        await db.create_tables()
        # the pool's one connection is taken (not by a transaction(): the request would join it)
        async with db.engine.connect() as held:
            await held.exec_driver_sql("SELECT 1")
            assert db.pool_status()["checked_out"] == 1
            started = time.perf_counter()
            ping = await asyncio.wait_for(client.get("/ping"), 1.5)
            assert ping.status_code == 200, ping.text
            assert time.perf_counter() - started < 1.0  # no wait for pool_timeout (2 s)
            used = await asyncio.wait_for(client.get("/count"), 10)  # needs it: waits, then 503
            assert used.status_code == 503 and used.json()["error"] == "PoolTimeoutError", used.text
        assert (await client.get("/count")).json() == {"n": 0}
        assert db.pool_status()["checked_out"] == 0
    finally:
        await db.drop_tables()
        await db.disconnect()


async def test_a_request_checks_out_on_first_use_and_keeps_that_connection(
    db: AsyncDatabase, client_of: Any
) -> None:
    app, item = _app(db)
    await db.drop_tables()
    await db.create_tables()
    client = client_of(app)
    with connections_used(db) as seen:
        created = await client.post("/items/10")
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["before"], body["pending"], body["during"]) == (0, 0, 1)
    assert body["ids"] == [10, 11, 12]
    assert seen and len(set(seen)) == 1, "every statement of the request on one connection"
    ops = DatabaseOperations(db)
    assert await ops.count(item) == 3  # committed at the end of the request

    for status in (400, 500):  # an error answer or an exception: everything rolled back
        failed = await client.post("/items/20", params={"fail": status})
        assert failed.status_code == status
        assert await ops.count(item, id=20) == 0 and await ops.count(item) == 3

    pending = await client.post("/pending/30")  # added, never flushed by the route: the commit does
    assert pending.status_code == 201
    assert await ops.count(item, id=30) == 1
    assert db.pool_status()["checked_out"] == 0


async def test_tasks_that_first_use_the_database_together_share_one_connection(
    db: AsyncDatabase, client_of: Any
) -> None:
    app, item = _app(db)
    ops = DatabaseOperations(db)

    @app.get("/gather")
    async def gather() -> dict[str, Any]:
        # operations started together take turns on the request's session (a raw AsyncSession
        # used by several tasks at once is not supported, checked out lazily or not)
        counts = await asyncio.gather(*(ops.count(item, id=n) for n in range(4)))
        return {"counts": counts, "during": db.pool_status()["checked_out"]}

    await db.drop_tables()
    await db.create_tables()
    with connections_used(db) as seen:
        response = await client_of(app).get("/gather")
    assert response.status_code == 200, response.text
    assert response.json() == {"counts": [0, 0, 0, 0], "during": 1}
    assert len(set(seen)) == 1
    assert db.pool_status()["checked_out"] == 0


async def test_a_request_cancelled_while_it_waits_for_its_connection_leaks_nothing(
    db_url: str, backend: str, client_of: Any
) -> None:
    sized = {} if backend == "sqlite_memory" else {"pool_size": 1, "max_overflow": 0}
    db = AsyncDatabase(DBConfig({"database_uri": db_url, "pool_timeout": 10, **sized}))
    app, _ = _app(db)
    client = client_of(app)
    try:
        await db.create_tables()
        async with db.engine.connect() as held:
            await held.exec_driver_sql("SELECT 1")
            waiting = asyncio.ensure_future(client.get("/count"))
            await asyncio.sleep(0.3)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        assert db.pool_status()["checked_out"] == 0
        assert (await asyncio.wait_for(client.get("/count"), 5)).json() == {"n": 0}
        assert db.pool_status()["checked_out"] == 0
    finally:
        await db.drop_tables()
        await db.disconnect()


async def test_a_request_cancelled_mid_statement_leaks_nothing(
    server_backend_url: tuple[str, str], client_of: Any
) -> None:
    backend, url = server_backend_url
    db = AsyncDatabase(DBConfig({"database_uri": url, "pool_size": 1, "max_overflow": 0, "pool_timeout": 5}))
    app, _ = _app(db)
    sleep = "SELECT pg_sleep(5)" if backend == "postgresql" else "SELECT SLEEP(5)"

    @app.get("/slow")
    async def slow() -> None:
        await db.current_session().execute(text(sleep))

    client = client_of(app)
    try:
        await db.create_tables()
        started = time.perf_counter()
        slow_request = asyncio.ensure_future(client.get("/slow"))
        await asyncio.sleep(0.5)
        slow_request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow_request
        assert time.perf_counter() - started < 4  # the statement was stopped, not waited for
        assert db.pool_status()["checked_out"] == 0
        assert (await asyncio.wait_for(client.get("/count"), 5)).json() == {"n": 0}
    finally:
        await db.drop_tables()
        await db.disconnect()


async def test_the_pre_ping_replaces_a_dead_pooled_connection_on_first_use(
    server_backend_url: tuple[str, str], client_of: Any
) -> None:
    backend, url = server_backend_url
    db = AsyncDatabase(
        DBConfig({"database_uri": url, "pool_size": 1, "max_overflow": 0, "pre_ping_window_ms": 0})
    )
    app, _ = _app(db)
    client = client_of(app)
    try:
        await db.create_tables()
        async with db.engine.connect() as conn:  # the pool's one connection, then back to the pool
            own_id = "SELECT pg_backend_pid()" if backend == "postgresql" else "SELECT CONNECTION_ID()"
            victim = (await conn.exec_driver_sql(own_id)).scalar()
        killer = AsyncDatabase(DBConfig({"database_uri": url}))
        try:
            async with killer.engine.connect() as other:
                kill = (
                    f"SELECT pg_terminate_backend({victim})" if backend == "postgresql" else f"KILL {victim}"
                )
                await other.exec_driver_sql(kill)
        finally:
            await killer.disconnect()
        await asyncio.sleep(0.2)
        response = await client.get("/count")  # pinged at checkout, replaced, then used
        assert response.status_code == 200, response.text
        assert db.pool_status()["checked_out"] == 0
    finally:
        await db.drop_tables()
        await db.disconnect()


# ----------------------------------------------------------------------------- the atomicity guard


@pytest.fixture(params=["mysql+aiomysql", "mysql+asyncmy", "sqlite"])
async def guarded_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncDatabase]:
    """A database that can end a transaction by itself: MariaDB (DDL), SQLite (RAISE(ROLLBACK))."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'guard.db'}"
    else:
        problem = await backend_problem("mariadb")
        if problem:
            unreachable("mariadb", problem)
        url = make_url(MYSQL_URL).set(drivername=request.param).render_as_string(hide_password=False)
    db = AsyncDatabase(DBConfig({"database_uri": url}))
    yield db
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")
        await conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}_ddl")
    assert db.pool_status()["checked_out"] == 0
    await db.disconnect()


@pytest.mark.parametrize("first_use", ["dsg_lib", "sqlalchemy"])
async def test_the_atomicity_guard_holds_on_a_connection_checked_out_on_first_use(
    guarded_db: AsyncDatabase, client_of: Any, first_use: str
) -> None:
    db = guarded_db
    app, item = _app(db)
    sqlite = db.db_config.dialect == "sqlite"
    ops = DatabaseOperations(db)

    @app.post("/ended")
    async def ended() -> dict[str, bool]:
        if first_use == "dsg_lib":
            await ops.create_one(item(id=1, name="before"))
        else:  # a path that reaches the database without the session's checkout hook
            session = db.current_session()
            insert = text(f"INSERT INTO {TABLE} (id, name) VALUES (1, 'before')")
            await AsyncSession.run_sync(session, lambda sync: sync.execute(insert))
        if sqlite:
            try:  # the trigger rolls the whole transaction back
                await ops.insert_many(item, [{"id": 2, "name": "bad"}])
            except DatabaseError:
                pass
        else:  # DDL commits implicitly and ends the transaction
            await db.current_session().execute(text(f"CREATE TABLE {TABLE}_ddl (x INT)"))
        await ops.create_one(item(id=3, name="after"))  # refused: it would commit on its own
        return {"ok": True}

    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, name VARCHAR(20))")
        if sqlite:
            await conn.exec_driver_sql(
                f"CREATE TRIGGER {TABLE}_no_bad BEFORE INSERT ON {TABLE} WHEN NEW.name = 'bad' "
                "BEGIN SELECT RAISE(ROLLBACK, 'refused'); END"
            )
    response = await client_of(app).post("/ended")
    assert response.status_code == 500 and response.json()["error"] == "TransactionEndedError", response.text
    async with db.engine.connect() as conn:
        names = [r[0] for r in await conn.exec_driver_sql(f"SELECT name FROM {TABLE} ORDER BY id")]
    # MariaDB's DDL committed "before" itself (it cannot be undone); nothing after it was stored
    assert names == ([] if sqlite else ["before"])


async def test_a_connection_that_refused_a_write_as_read_only_is_dropped(
    postgres_url: str, client_of: Any
) -> None:
    # 25006 (read-only) is a failover on PostgreSQL: that connection must not go back to the pool
    db = AsyncDatabase(DBConfig({"database_uri": postgres_url, "pool_size": 1, "max_overflow": 0}))
    app, item = _app(db)
    pids: list[int] = []

    @app.post("/read-only-write")
    async def read_only_write() -> None:
        session = db.current_session()
        pids.append((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        await session.execute(text("SET TRANSACTION READ ONLY"))
        await DatabaseOperations(db).create_one(item(id=1, name="refused"))

    @app.get("/pid")
    async def pid() -> int:
        return int((await db.current_session().execute(text("SELECT pg_backend_pid()"))).scalar_one())

    client = client_of(app)
    try:
        await db.create_tables()
        refused = await client.post("/read-only-write")
        assert refused.status_code == 503 and refused.json()["error"] == "DatabaseUnavailableError", (
            refused.text
        )
        assert (await client.get("/pid")).json() != pids[0], "the refusing connection went back to the pool"
        assert db.pool_status()["checked_out"] == 0
    finally:
        await db.drop_tables()
        await db.disconnect()


async def test_a_request_that_never_uses_the_database_sends_nothing_and_gets_no_token(
    db: AsyncDatabase, client_of: Any
) -> None:
    app, _ = _app(db)
    app.add_middleware(ConsistencyMiddleware, db=db)  # outermost: sees the request's commit
    await db.drop_tables()
    await db.create_tables()
    client = client_of(app)
    with captured_sql(db) as statements:
        ping = await client.get("/ping")
    assert ping.status_code == 200 and CONSISTENCY_HEADER not in ping.headers
    assert statements == []
    wrote = await client.post("/pending/40")  # its first statement is the final commit's flush
    assert wrote.status_code == 201 and wrote.headers.get(CONSISTENCY_HEADER)
    assert db.pool_status()["checked_out"] == 0
