"""Helpers shared by the test modules and the conftest files: backends, URLs, statement capture, fresh
schemas, the value models, row counts, the repository root and an unused port.

Import them as ``from tests.helpers import ...`` (the fixtures are in the conftest files, which are
never imported by name).

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
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NoReturn

import pytest
from sqlalchemy import JSON, DateTime, Integer, LargeBinary, Numeric, String, Uuid, event, func, select
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig
from dsg_lib.schema import SchemaBaseSQLite

#: the repository root (this checkout's ``dsg_lib``, docs, examples)
ROOT = Path(__file__).resolve().parent.parent

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


# --------------------------------------------------------------------------- operations: models and schemas
# the value models are the default ``models`` of tests/operations/conftest.py (test_types_values.py,
# test_big_inputs.py and test_keyset_inputs.py)

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


async def fresh_env(db: AsyncDatabase, models: SimpleNamespace) -> SimpleNamespace:
    """``db`` on freshly created tables: ``db``, ``ops``, the models as ``m``, and ``dialect``.

    The ``env`` fixture of tests/operations/conftest.py; a test with models of its own calls it directly.
    """
    await db.drop_tables()
    await db.create_tables()
    return SimpleNamespace(db=db, ops=DatabaseOperations(db), m=models, dialect=db.db_config.dialect)


# --------------------------------------------------------------------------- small helpers


async def count_rows(db: AsyncDatabase, model: Any) -> int:
    """The rows of ``model``'s table, counted through a plain session (not ``DatabaseOperations``)."""
    async with db.get_db_session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
