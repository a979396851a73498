"""dsg_lib.observability on every backend: query budgets (N+1), spans, pool and operation metrics."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from sqlalchemy import ForeignKey, Integer, String, select, text
from sqlalchemy.ext.asyncio import AsyncAttrs, create_async_engine
from sqlalchemy.orm import Mapped, mapped_column, relationship, selectinload
from sqlalchemy.pool import NullPool

from dsg_lib import (
    AsyncDatabase,
    DatabaseOperations,
    DBConfig,
    InvalidInputError,
    QueryBudgetExceededError,
    RecordNotFoundError,
    observability,
)
from dsg_lib.observability import PrometheusCollector, instrument, pool_metrics, uninstrument
from dsg_lib.observability._metrics import EngineStats
from tests.helpers import ROOT, unused_port

SECRET = "s3cret-value-never-in-telemetry"


def library(db: AsyncDatabase) -> tuple[Any, Any]:
    """An author/book schema with a lazy relationship (the N+1 trap), on ``db.Base``."""

    class Author(AsyncAttrs, db.Base):
        __tablename__ = "obs_authors"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        name: Mapped[str] = mapped_column(String(60))
        books: Mapped[list[Book]] = relationship(back_populates="author", order_by="Book.id")

    class Book(AsyncAttrs, db.Base):
        __tablename__ = "obs_books"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        title: Mapped[str] = mapped_column(String(60))
        author_id: Mapped[int] = mapped_column(ForeignKey("obs_authors.id"))
        author: Mapped[Author] = relationship(back_populates="books")

    return Author, Book


@pytest.fixture
async def seeded(db: AsyncDatabase) -> AsyncIterator[tuple[AsyncDatabase, Any, Any]]:
    Author, Book = library(db)
    await db.create_tables()
    ops = DatabaseOperations(db)
    await ops.insert_many(Author, [{"id": i, "name": f"author {i}"} for i in (1, 2, 3)])
    await ops.insert_many(
        Book, [{"id": i, "title": f"{SECRET} {i}", "author_id": 1 + i % 3} for i in range(1, 7)]
    )
    yield db, Author, Book
    uninstrument(db)


# --------------------------------------------------------------------------- query budget
async def test_budget_catches_n_plus_one_with_awaitable_attrs(seeded: Any) -> None:
    db, Author, _ = seeded
    with pytest.raises(QueryBudgetExceededError) as caught:
        async with db.query_budget(max_queries=2), db.get_db_session() as session:
            authors = (await session.scalars(select(Author).order_by(Author.id))).all()
            titles = [len(await a.awaitable_attrs.books) for a in authors]
    assert titles == [2, 2, 2]
    err = caught.value
    assert len(err.statements) == 4  # 1 for the authors + 1 per author: N+1
    assert err.max_queries == 2
    assert "4 statements issued, budget 2" in str(err)
    assert any(
        line.lstrip().startswith("3x SELECT") and "obs_books" in line for line in str(err).splitlines()
    )
    assert SECRET not in str(err) and "author 1" not in str(err)


async def test_budget_passes_with_selectinload(seeded: Any) -> None:
    db, Author, _ = seeded
    async with db.query_budget(max_queries=2) as budget, db.get_db_session() as session:
        stmt = select(Author).options(selectinload(Author.books)).order_by(Author.id)
        authors = (await session.scalars(stmt)).all()
        assert [len(a.books) for a in authors] == [2, 2, 2]
    assert budget.count == 2


async def test_budget_counts_sync_lazy_loads_in_run_sync(seeded: Any) -> None:
    db, Author, _ = seeded

    def titles(session: Any) -> list[int]:
        return [len(a.books) for a in session.scalars(select(Author)).all()]  # lazy load per author

    with pytest.raises(QueryBudgetExceededError) as caught:
        async with db.query_budget(max_queries=3), db.get_db_session() as session:
            assert await session.run_sync(titles) == [2, 2, 2]
    assert len(caught.value.statements) == 4


async def test_budget_counts_operations_and_child_tasks(seeded: Any) -> None:
    db, Author, Book = seeded
    ops = DatabaseOperations(db)
    async with db.query_budget(max_queries=3) as budget:
        authors = await ops.find(Author, options=[selectinload(Author.books)], order_by="id")
        assert [len(a.books) for a in authors] == [2, 2, 2]
        await asyncio.gather(ops.count(Book))
    assert budget.count == 3
    with pytest.raises(QueryBudgetExceededError):
        async with db.query_budget(max_queries=1):
            await asyncio.gather(ops.count(Book), ops.count(Author))


async def test_budget_ignores_transaction_control_and_nests(seeded: Any) -> None:
    db, Author, _ = seeded
    ops = DatabaseOperations(db)
    async with db.query_budget(max_queries=2) as outer, db.transaction():
        async with db.transaction():  # SAVEPOINT / RELEASE are not counted
            await ops.exists(Author, id=1)
        async with db.query_budget(max_queries=1) as inner:
            await ops.count(Author)
    assert (outer.count, inner.count) == (2, 1)
    assert all(not s.lstrip().upper().startswith(("BEGIN", "SAVEPOINT", "RELEASE")) for s in outer.statements)


async def test_budget_lets_the_blocks_own_error_through(seeded: Any) -> None:
    db, Author, _ = seeded
    ops = DatabaseOperations(db)
    with pytest.raises(RecordNotFoundError):
        async with db.query_budget(max_queries=0):
            await ops.get_one(Author, id=99)
    with pytest.raises(InvalidInputError):
        db.query_budget(max_queries=-1)
    with pytest.raises(InvalidInputError):
        db.query_budget(max_queries=True)  # type: ignore[arg-type]


def test_max_queries_marker_in_a_users_test_suite(tmp_path: Path, db_url: str) -> None:
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            f"""
            from sqlalchemy import ForeignKey, String
            from sqlalchemy.ext.asyncio import AsyncAttrs
            from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
            from dsg_lib.testing import database_fixtures

            class Base(AsyncAttrs, DeclarativeBase):
                pass

            class Team(Base):
                __tablename__ = "marker_teams"
                id: Mapped[int] = mapped_column(primary_key=True)
                players: Mapped[list["Player"]] = relationship()

            class Player(Base):
                __tablename__ = "marker_players"
                id: Mapped[int] = mapped_column(primary_key=True)
                team_id: Mapped[int] = mapped_column(ForeignKey("marker_teams.id"))

            pytest_plugins = ["dsg_lib.testing"]
            db_session, db = database_fixtures({db_url!r}, base=Base, name="db")
            """
        )
    )
    (tmp_path / "test_teams.py").write_text(
        textwrap.dedent(
            """
            import pytest
            import pytest_asyncio
            from sqlalchemy import select
            from sqlalchemy.orm import selectinload
            from dsg_lib import DatabaseOperations
            from conftest import Player, Team

            @pytest_asyncio.fixture  # on the test's own loop, like the db fixture it uses
            async def teams(db):
                ops = DatabaseOperations(db)
                await ops.insert_many(Team, [{"id": i} for i in range(1, 6)])
                await ops.insert_many(Player, [{"id": i, "team_id": i} for i in range(1, 6)])
                return db

            @pytest.mark.max_queries(2)
            async def test_selectinload_fits(teams):
                async with teams.get_db_session() as s:
                    for t in (await s.scalars(select(Team).options(selectinload(Team.players)))).all():
                        assert len(t.players) == 1

            @pytest.mark.max_queries(2)
            async def test_n_plus_one_fails(teams):
                async with teams.get_db_session() as s:
                    for t in (await s.scalars(select(Team))).all():
                        assert len(await t.awaitable_attrs.players) == 1
            """
        )
    )
    root = str(ROOT)  # this checkout's dsg_lib, not an installed one
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto",
         str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": root},
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert "1 failed, 1 passed" in out, out
    assert "QueryBudgetExceededError" in out and "6 statements issued, budget 2" in out, out


# --------------------------------------------------------------------------- tracing
@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def by_name(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name == name]


async def test_operation_spans_follow_db_semantic_conventions(seeded: Any, spans: Any) -> None:
    db, _, Book = seeded
    provider, exporter = spans
    instrument(db, tracer_provider=provider, otel_metrics=False)
    ops = DatabaseOperations(db)
    parent_tracer = provider.get_tracer("app")
    with parent_tracer.start_as_current_span("request") as request_span:
        books = await ops.find(Book, title__startswith=SECRET)
        changed = await ops.update_where(Book, {"title": "x"}, title=f"{SECRET} 1")
    assert len(books) == 6 and changed == 1
    finished = exporter.get_finished_spans()
    find, update = by_name(finished, "dsg_lib.find")[0], by_name(finished, "dsg_lib.update_where")[0]
    expected_system = "mariadb" if db.db_config.dialect in ("mysql", "mariadb") else db.db_config.dialect
    for span in (find, update):
        assert span.kind is trace.SpanKind.CLIENT
        assert span.parent is not None and span.parent.span_id == request_span.get_span_context().span_id
        assert span.attributes is not None
        assert span.attributes["db.system.name"] == expected_system
        assert span.attributes["db.collection.name"] == "obs_books"
    assert find.attributes is not None and update.attributes is not None
    assert find.attributes["db.operation.name"] == "find"
    assert find.attributes["db.response.returned_rows"] == 6
    assert update.attributes["dsg_lib.rows_affected"] == 1
    if db.db_config.dialect != "sqlite":
        assert find.attributes["server.address"] == "127.0.0.1"
        assert find.attributes["db.namespace"] == db.db_config.url.database
    for span in finished:
        for value in (span.attributes or {}).values():
            assert SECRET not in str(value)


async def test_transaction_span_parents_its_operations_and_records_errors(seeded: Any, spans: Any) -> None:
    db, Author, _ = seeded
    provider, exporter = spans
    instrument(db, tracer_provider=provider, otel_metrics=False)
    ops = DatabaseOperations(db)
    async with db.transaction():
        await ops.count(Author)
        with pytest.raises(RecordNotFoundError):
            async with db.transaction():
                await ops.get_one(Author, id=404)
    finished = exporter.get_finished_spans()
    tx, savepoint = by_name(finished, "dsg_lib.transaction")[0], by_name(finished, "dsg_lib.savepoint")[0]
    count, get_one = by_name(finished, "dsg_lib.count")[0], by_name(finished, "dsg_lib.get_one")[0]
    assert count.parent is not None and count.parent.span_id == tx.context.span_id
    assert savepoint.parent is not None and savepoint.parent.span_id == tx.context.span_id
    assert get_one.parent is not None and get_one.parent.span_id == savepoint.context.span_id
    for failed in (get_one, savepoint):
        assert failed.status.status_code is trace.StatusCode.ERROR
        assert failed.attributes is not None and failed.attributes["error.type"] == "RecordNotFoundError"
    assert tx.status.status_code is trace.StatusCode.UNSET
    assert not by_name(finished, "dsg_lib.find"), "get_one's inner find is not a second span"


async def test_uninstrument_stops_spans(seeded: Any, spans: Any) -> None:
    db, Author, _ = seeded
    provider, exporter = spans
    instrument(db, tracer_provider=provider, otel_metrics=False)
    uninstrument(db)
    await DatabaseOperations(db).count(Author)
    assert exporter.get_finished_spans() == ()


async def test_stream_span_covers_the_iteration(seeded: Any, spans: Any) -> None:
    db, _, Book = seeded
    provider, exporter = spans
    instrument(db, tracer_provider=provider, otel_metrics=False)
    titles = [book.title async for book in DatabaseOperations(db).stream(select(Book), batch_size=2)]
    assert len(titles) == 6
    (stream,) = by_name(exporter.get_finished_spans(), "dsg_lib.stream")
    assert stream.attributes is not None and stream.attributes["db.collection.name"] == "obs_books"
    assert observability.operation_metrics(db)["stream"]["count"] == 1


def test_import_does_not_load_optional_packages() -> None:
    code = (
        "import sys, dsg_lib, dsg_lib.observability, dsg_lib.operations, dsg_lib.testing\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('opentelemetry', 'prometheus_client')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- metrics
async def test_operation_metrics_and_prometheus_export(seeded: Any) -> None:
    db, Author, _ = seeded
    instrument(db, tracing=False, otel_metrics=False)
    ops = DatabaseOperations(db)
    await ops.count(Author)
    await ops.count(Author)
    with pytest.raises(RecordNotFoundError):
        await ops.get_one(Author, id=404)
    stats = observability.operation_metrics(db)
    assert stats["count"]["count"] == 2 and stats["count"]["errors"] == {}
    assert stats["get_one"]["errors"] == {"RecordNotFoundError": 1}
    registry = CollectorRegistry()
    registry.register(PrometheusCollector({"main": db}))
    sample = registry.get_sample_value
    assert sample("dsg_lib_operation_duration_seconds_count", {"database": "main", "operation": "count"}) == 2
    failed = {"database": "main", "operation": "get_one", "error": "RecordNotFoundError"}
    assert sample("dsg_lib_operation_errors_total", failed) == 1
    primary = {"database": "main", "engine": "primary"}
    assert sample("dsg_lib_pool_checked_out", primary) == 0
    assert sample("dsg_lib_pool_checkouts_total", primary) >= 3
    assert sample("dsg_lib_pool_wait_seconds_total", primary) > 0


async def test_pool_gauges_waiters_and_wait_time(db_url: str, backend: str) -> None:
    options: dict[str, Any] = {"database_uri": db_url, "pool_timeout": 10}
    if backend != "sqlite_memory":  # an in-memory database is always one connection
        options.update(pool_size=1, max_overflow=0)
    db = AsyncDatabase(DBConfig(options))
    instrument(db, tracing=False, otel_metrics=False)
    try:
        async with db.get_db_session() as held:
            await held.execute(text("SELECT 1"))
            gauges = pool_metrics(db)["primary"]
            assert (gauges["checked_out"], gauges["size"], gauges["waiters"]) == (1, 1, 0)

            async def in_a_transaction() -> None:
                async with db.transaction() as session:
                    await session.execute(text("SELECT 3"))

            waiting = [
                asyncio.create_task(DatabaseOperations(db).execute_one(text("SELECT 2"))),
                asyncio.create_task(in_a_transaction()),
            ]
            for _ in range(200):
                await asyncio.sleep(0.01)
                if pool_metrics(db)["primary"]["waiters"] == 2:
                    break
            assert pool_metrics(db)["primary"]["waiters"] == 2  # an operation and a transaction
            await asyncio.sleep(0.05)
        await asyncio.gather(*waiting)
        after = pool_metrics(db)["primary"]
        assert (after["checked_out"], after["waiters"], after["timeouts"]) == (0, 0, 0)
        assert after["wait_seconds_max"] >= 0.05
        assert after["waits"] >= 3 and after["connections_opened"] >= 1 and after["checkouts"] >= 3
    finally:
        uninstrument(db)
        await db.disconnect()


async def test_replica_engines_are_reported_separately(server_backend_url: tuple[str, str]) -> None:
    _, url = server_backend_url
    db = AsyncDatabase(DBConfig({"database_uri": url, "read_replicas": [url]}))
    instrument(db, tracing=False, otel_metrics=False)
    try:
        await DatabaseOperations(db).read_query(select(text("1")))
        stats = pool_metrics(db)
        assert list(stats) == ["primary", "replica-0"]
        assert stats["replica-0"]["waits"] == 1 and stats["primary"]["waits"] == 0
        assert stats["replica-0"]["checkouts"] == 1
    finally:
        uninstrument(db)
        await db.disconnect()


async def test_nullpool_gauges_come_from_pool_events(db_url: str, backend: str) -> None:
    if backend == "sqlite_memory":
        pytest.skip(reason="NullPool would give every connection its own empty in-memory database")
    engine = create_async_engine(db_url, poolclass=NullPool)
    stats = EngineStats("primary", engine, "masked")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            snap = stats.snapshot()
            assert (snap["pool_class"], snap["size"], snap["checked_out"], snap["checked_in"]) == (
                "NullPool",
                0,
                1,
                0,
            )
        snap = stats.snapshot()
        assert (snap["checked_out"], snap["connections_opened"], snap["connections_closed"]) == (0, 1, 1)
    finally:
        stats.remove()
        await engine.dispose()


async def test_opentelemetry_metrics(seeded: Any) -> None:
    db, Author, _ = seeded
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrument(db, tracing=False, meter_provider=provider)
    await DatabaseOperations(db).count(Author)
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    duration = points["db.client.operation.duration"]
    assert any(p.attributes["db.operation.name"] == "count" and p.count == 1 for p in duration)
    used = [p for p in points["db.client.connection.count"]
            if p.attributes["db.client.connection.state"] == "used"]  # fmt: skip
    assert used and used[0].attributes["db.client.connection.pool.name"] == "primary" and used[0].value == 0
    assert "db.client.connection.wait_time" in points
    provider.shutdown()


# --------------------------------------------------------------------------- FastAPI
async def test_fastapi_request_spans_metrics_endpoint_and_budget(seeded: Any, spans: Any) -> None:
    import httpx
    from fastapi import FastAPI

    from dsg_lib.fastapi import DBSessionMiddleware, metrics_router

    db, Author, _ = seeded
    provider, exporter = spans
    instrument(db, tracer_provider=provider, otel_metrics=False)
    ops = DatabaseOperations(db)
    app = FastAPI()
    app.add_middleware(DBSessionMiddleware, db=db)
    app.include_router(metrics_router(db))

    @app.get("/authors")
    async def authors(eager: bool = True) -> list[dict[str, Any]]:
        options = [selectinload(Author.books)] if eager else []
        found = await ops.find(Author, options=options, order_by="id")
        return [{"name": a.name, "books": len(await a.awaitable_attrs.books)} for a in found]

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        with provider.get_tracer("server").start_as_current_span("GET /authors") as server_span:
            async with db.query_budget(max_queries=2):  # "this endpoint issues at most 2 queries"
                response = await client.get("/authors")
        assert response.status_code == 200 and [a["books"] for a in response.json()] == [2, 2, 2]
        with pytest.raises(QueryBudgetExceededError):
            async with db.query_budget(max_queries=2):
                await client.get("/authors", params={"eager": "false"})
        metrics = await client.get("/metrics")
    finished = exporter.get_finished_spans()
    tx = by_name(finished, "dsg_lib.transaction")[0]
    find = by_name(finished, "dsg_lib.find")[0]
    assert tx.parent is not None and tx.parent.span_id == server_span.get_span_context().span_id
    assert find.parent is not None and find.parent.span_id == tx.context.span_id
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    # /metrics runs outside DBSessionMiddleware's transaction: it holds no connection
    assert 'dsg_lib_pool_checked_out{database="default",engine="primary"} 0.0' in metrics.text
    assert 'dsg_lib_operation_duration_seconds_count{database="default",operation="find"} 2.0' in metrics.text


async def test_a_4xx_answer_is_not_a_failed_transaction(seeded: Any, spans: Any) -> None:
    import httpx
    from fastapi import FastAPI, HTTPException

    from dsg_lib.fastapi import DBSessionMiddleware

    db, Author, _ = seeded
    provider, exporter = spans
    instrument(db, tracer_provider=provider, otel_metrics=False)
    ops = DatabaseOperations(db)
    app = FastAPI()
    app.add_middleware(DBSessionMiddleware, db=db)

    @app.get("/authors/{name}")
    async def author(name: str) -> dict[str, int]:
        if not await ops.count(Author, name=name):
            raise HTTPException(404, "no such author")
        return {"found": 1}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/authors/nobody")).status_code == 404
    tx = by_name(exporter.get_finished_spans(), "dsg_lib.transaction")[0]
    assert tx.attributes is not None and "error.type" not in tx.attributes
    assert tx.status.status_code is trace.StatusCode.UNSET
    assert observability.operation_metrics(db)["transaction"]["errors"] == {}


async def test_spans_name_the_server_in_use(server_backend_url: tuple[str, str], spans: Any) -> None:

    from sqlalchemy.engine import make_url

    backend, url = server_backend_url
    closed = unused_port()
    parsed = make_url(url)
    port = parsed.port or (5432 if backend == "postgresql" else 3306)
    hosts = f"127.0.0.1:{closed},{parsed.host}:{port}"
    multi = f"{parsed.drivername}://{parsed.username or ''}@{hosts}/{parsed.database}"
    provider, exporter = spans
    for uri in (url, multi):  # a fresh engine each: its first span too
        db = AsyncDatabase(DBConfig({"database_uri": uri, "connect_timeout": 2}))
        instrument(db, tracer_provider=provider, otel_metrics=False)
        try:
            await DatabaseOperations(db).execute_one(text("SELECT 1"))
        finally:
            uninstrument(db)
            await db.disconnect()
    finished = exporter.get_finished_spans()
    assert len(finished) == 2
    system = "postgresql" if backend == "postgresql" else "mariadb"
    for span in finished:
        assert span.attributes is not None
        assert span.attributes["db.system.name"] == system, dict(span.attributes)
        assert span.attributes["server.address"] == parsed.host
        assert span.attributes["server.port"] == port


async def test_metrics_answer_while_the_database_is_down_or_the_pool_exhausted(
    db_url: str, backend: str
) -> None:

    import httpx
    from fastapi import FastAPI

    from dsg_lib.fastapi import DBSessionMiddleware, health_router, metrics_router

    closed = unused_port()
    down = AsyncDatabase(
        DBConfig({"database_uri": f"postgresql://u@127.0.0.1:{closed}/db", "connect_timeout": 1})
    )
    sized = {} if backend == "sqlite_memory" else {"pool_size": 1, "max_overflow": 0}
    busy = AsyncDatabase(DBConfig({"database_uri": db_url, "pool_timeout": 5, **sized}))
    try:
        for db in (down, busy):
            instrument(db, tracing=False, otel_metrics=False)
            app = FastAPI()
            app.add_middleware(DBSessionMiddleware, db=db)
            app.include_router(metrics_router(db))
            app.include_router(health_router(db))
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                if db is busy:
                    async with db.transaction():  # the pool's one connection is taken
                        metrics = await asyncio.wait_for(client.get("/metrics"), 2)
                        assert 'engine="primary"} 1.0' in metrics.text
                else:
                    metrics = await asyncio.wait_for(client.get("/metrics"), 2)
                    health = await asyncio.wait_for(client.get("/health"), 10)
                    assert health.status_code == 503 and health.json()["ok"] is False
                assert metrics.status_code == 200, metrics.text
                assert "dsg_lib_pool_checked_out" in metrics.text
    finally:
        for db in (down, busy):
            uninstrument(db)
            await db.disconnect()


async def test_pool_counters_are_never_negative(db_url: str) -> None:
    db = AsyncDatabase(DBConfig({"database_uri": db_url}))
    try:
        for status in (db.pool_status(), (await db.health_check())["pool"]):
            assert all(value >= 0 for value in status.values()), status
        async with db.transaction():
            assert all(value >= 0 for value in db.pool_status().values()), db.pool_status()
    finally:
        await db.disconnect()


async def test_a_task_that_outlives_its_budget_block_records_nothing_more(seeded: Any) -> None:
    db, Author, _ = seeded
    ops = DatabaseOperations(db)
    block_over, counted = asyncio.Event(), asyncio.Event()

    async def long_lived() -> None:
        await ops.count(Author)
        counted.set()
        await block_over.wait()
        for _ in range(3):
            await ops.count(Author)

    async with db.query_budget(max_queries=5) as outer:
        async with db.query_budget(max_queries=5) as inner:
            task = asyncio.create_task(long_lived())
            await counted.wait()
        block_over.set()
        await task
    seen = f"inner={inner.statements} outer={outer.statements}"
    assert inner.count == 1, seen  # the three counts after the inner block are not its statements
    assert outer.count == 4, seen  # the outer block was still open: they are its
