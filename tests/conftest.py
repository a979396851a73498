"""Backend fixtures: every database test runs on SQLite (memory and file), PostgreSQL and MariaDB.

Environment:
    DSG_TEST_BACKENDS      comma list, default "sqlite_memory,sqlite_file,postgresql,mariadb"
    DSG_TEST_POSTGRES_URL  default postgresql+asyncpg://postgres@127.0.0.1:5432/test
    DSG_TEST_MYSQL_URL     default mysql+aiomysql://root@127.0.0.1:3306/test
    CI=true                an unreachable server backend fails the run instead of skipping
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import os
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NoReturn

import pytest
from loguru import logger
from sqlalchemy import JSON, DateTime, Integer, LargeBinary, Numeric, String, Uuid, event
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig
from dsg_lib.schema import SchemaBaseSQLite

POSTGRES_URL = os.environ.get("DSG_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("DSG_TEST_MYSQL_URL", "mysql+aiomysql://root@127.0.0.1:3306/test")
ALL_BACKENDS = ("sqlite_memory", "sqlite_file", "postgresql", "mariadb")
BACKENDS = tuple(
    b.strip() for b in os.environ.get("DSG_TEST_BACKENDS", ",".join(ALL_BACKENDS)).split(",") if b.strip()
)
SERVER_BACKENDS = tuple(b for b in BACKENDS if b in ("postgresql", "mariadb"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

_reachable: dict[str, str | None] = {}


def backend_url(backend: str, tmp_path: Path) -> str:
    """The URL a test should use for ``backend``."""
    if backend == "sqlite_memory":
        return "sqlite+aiosqlite:///:memory:"
    if backend == "sqlite_file":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    if backend == "postgresql":
        return POSTGRES_URL
    if backend == "mariadb":
        return MYSQL_URL
    raise ValueError(backend)


async def _probe(url: str) -> str | None:
    db = AsyncDatabase(DBConfig({"database_uri": url, "connect_timeout": 3}))
    try:
        await db.connect(timeout=5)
        return None
    except Exception as exc:  # reported by unreachable()
        return f"{type(exc).__name__}: {exc}"
    finally:
        await db.disconnect()


async def backend_problem(backend: str) -> str | None:
    """Why a server backend cannot be reached (``None`` when it can); probed once per run."""
    if backend not in _reachable:
        _reachable[backend] = await _probe(POSTGRES_URL if backend == "postgresql" else MYSQL_URL)
    return _reachable[backend]


def unreachable(backend: str, problem: str) -> NoReturn:
    """Skip the test, or under ``CI=true`` fail it: an unreachable backend is never silent there."""
    message = f"{backend} unreachable: {problem}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(reason=message)


def require_backend(backend: str) -> None:
    """Skip (or, under CI, fail) when a server backend cannot be reached. For sync fixtures."""
    if backend not in ("postgresql", "mariadb"):
        return
    if backend not in _reachable:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(backend_problem(backend))
        finally:
            loop.close()
    problem = _reachable[backend]
    if problem:
        unreachable(backend, problem)


@contextmanager
def captured_sql(db: AsyncDatabase) -> Iterator[list[str]]:
    """Every statement text sent through ``db``'s engine while the block runs."""
    statements: list[str] = []

    def listener(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", listener)


@pytest.fixture
def log_messages() -> Iterator[list[str]]:
    """Everything ``dsg_lib`` logs through loguru during the test (all levels)."""
    messages: list[str] = []
    logger.enable("dsg_lib")
    sink_id = logger.add(lambda m: messages.append(str(m)), level="DEBUG", format="{message}")
    try:
        yield messages
    finally:
        logger.remove(sink_id)
        logger.disable("dsg_lib")


@pytest.fixture(scope="session", autouse=True)
def _quiet_logs() -> Iterator[None]:
    logger.disable("dsg_lib")
    yield
    logger.enable("dsg_lib")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend name; each test using it runs once per backend."""
    require_backend(request.param)
    return str(request.param)


@pytest.fixture(params=SERVER_BACKENDS)
def server_backend(request: pytest.FixtureRequest) -> str:
    """Only PostgreSQL and MariaDB."""
    require_backend(request.param)
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> str:
    return backend_url(backend, tmp_path)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[AsyncDatabase]:
    """A fresh ``AsyncDatabase`` for the backend; every table of its ``Base`` is dropped after."""
    database = AsyncDatabase(DBConfig({"database_uri": db_url, "pool_timeout": 10}))
    yield database
    if not database.is_connected:
        await database.connect()
    await database.drop_tables()
    assert database.pool_status()["checked_out"] == 0, "a test leaked a pooled connection"
    await database.disconnect()


@pytest.fixture
def postgres_url() -> str:
    """PostgreSQL only, for behaviour that exists only there (e.g. deferred constraints)."""
    require_backend("postgresql")
    return POSTGRES_URL


@pytest.fixture
def mysql_url() -> str:
    """MariaDB only (the aiomysql URL), for driver-specific behaviour there."""
    require_backend("mariadb")
    return MYSQL_URL


@pytest.fixture
def server_backend_url(server_backend: str) -> tuple[str, str]:
    """``(backend, url)`` for PostgreSQL and MariaDB only."""
    return server_backend, POSTGRES_URL if server_backend == "postgresql" else MYSQL_URL


# --------------------------------------------------------------------------- value models
# shared by tests/operations/test_types_values.py, test_big_inputs.py and test_keyset_inputs.py

VALUES_PREFIX = f"tv_{os.getpid()}_"


def make_value_models(db: AsyncDatabase) -> SimpleNamespace:
    """``Val`` (a column per value type), ``Keyed`` (string ``pkid`` key), ``Sorted`` (nullable sort)."""

    class Val(db.Base):
        __tablename__ = VALUES_PREFIX + "val"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        meta: Mapped[Any] = mapped_column(JSON, nullable=True)
        at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
        naive: Mapped[dt.datetime | None] = mapped_column(DateTime(), nullable=True)
        amount: Mapped[decimal.Decimal | None] = mapped_column(Numeric(5, 2), nullable=True)
        big: Mapped[decimal.Decimal | None] = mapped_column(Numeric(30, 10), nullable=True)
        bare: Mapped[decimal.Decimal | None] = mapped_column(Numeric(), nullable=True)
        blob: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
        uid: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)

    class Keyed(SchemaBaseSQLite, db.Base):
        __tablename__ = VALUES_PREFIX + "keyed"
        name: Mapped[str] = mapped_column(String(20))

    class Sorted(db.Base):
        __tablename__ = VALUES_PREFIX + "sorted"
        id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
        name: Mapped[str] = mapped_column(String(40))
        rank: Mapped[int | None] = mapped_column(Integer, nullable=True)

    return SimpleNamespace(Val=Val, Keyed=Keyed, Sorted=Sorted)


@pytest.fixture
async def value_env(db: AsyncDatabase) -> SimpleNamespace:
    """The value models on a fresh schema of ``db``, with ``ops``; for the operations' type tests."""
    return await fresh_env(db, make_value_models(db))


async def fresh_env(db: AsyncDatabase, models: SimpleNamespace) -> SimpleNamespace:
    """``db`` on freshly created tables: ``db``, ``ops``, the models as ``m``, and ``dialect``.

    The ``env`` fixtures of the operations tests build on it.
    """
    await db.drop_tables()
    await db.create_tables()
    return SimpleNamespace(db=db, ops=DatabaseOperations(db), m=models, dialect=db.db_config.dialect)


# --------------------------------------------------------------------------- executor strategies
# Every test under tests/operations/ runs on both strategies of the operations' executor:
# "compiled" (the default: allowed shapes run as one compiled driver call) and "sqlalchemy"
# (``compiled_statements: False``: everything through SQLAlchemy). The results must be the
# same: the differential proof of the compiled path (docs/operations.md, "How a statement
# runs"). A test about the compiled strategy itself (which SQL is sent, how many driver
# calls) is marked ``compiled_only``; a config that sets ``compiled_statements`` keeps it, and
# a module with a ``strategy`` fixture of its own (the property test) chooses for itself.
# (Here, not in tests/operations/conftest.py: test modules import this module as ``conftest``.)

#: DSG_TEST_STRATEGIES=compiled runs one (CI's dependency-versions jobs: the two strategies are
#: compared in the main job; there the point is the dependencies)
STRATEGIES = tuple(
    s.strip() for s in os.environ.get("DSG_TEST_STRATEGIES", "compiled,sqlalchemy").split(",") if s.strip()
)
_OPERATIONS_DIR = Path(__file__).parent / "operations"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "strategy" not in metafunc.fixturenames or _OPERATIONS_DIR not in metafunc.definition.path.parents:
        return
    if hasattr(metafunc.module, "strategy"):  # the module chooses the strategy itself
        return
    compiled_only = metafunc.definition.get_closest_marker("compiled_only") is not None
    chosen = tuple(s for s in STRATEGIES if s == "compiled" or not compiled_only)
    metafunc.parametrize("strategy", chosen, indirect=True, ids=list(chosen))


@pytest.fixture(autouse=True)
def strategy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The executor strategy of every ``DBConfig`` built during the test ("compiled" outside
    tests/operations)."""
    name = str(getattr(request, "param", "compiled"))
    if name == "sqlalchemy":
        original = DBConfig.__init__

        def sqlalchemy_only(self: DBConfig, config: Mapping[str, Any]) -> None:
            if isinstance(config, Mapping) and "compiled_statements" not in config:
                config = {**config, "compiled_statements": False}
            original(self, config)

        monkeypatch.setattr(DBConfig, "__init__", sqlalchemy_only)
    return name
