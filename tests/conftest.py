"""Backend fixtures: every database test runs on SQLite (memory and file), PostgreSQL and MariaDB.

The backends, URLs and helpers these fixtures use are in tests/helpers.py (its docstring lists the
environment variables); the operations tests' fixtures are in tests/operations/conftest.py.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from dsg_lib import AsyncDatabase, DBConfig
from tests.helpers import BACKENDS, MYSQL_URL, POSTGRES_URL, SERVER_BACKENDS, backend_url, require_backend


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


# --------------------------------------------------------------------------- executor strategies
# Every test under tests/operations/ runs on both strategies of the operations' executor:
# "compiled" (the default: allowed shapes run as one compiled driver call) and "sqlalchemy"
# (``compiled_statements: False``: everything through SQLAlchemy). The results must be the
# same: the differential proof of the compiled path (docs/operations.md, "How a statement
# runs"). A test about the compiled strategy itself (which SQL is sent, how many driver
# calls) is marked ``compiled_only``; a config that sets ``compiled_statements`` keeps it, and
# a module with a ``strategy`` fixture of its own (the property test) chooses for itself.
# (Here, not in tests/operations/conftest.py: this conftest is loaded before pytest's own
# parametrization hook, so the strategy's parametrization comes after the backend's, as in the test
# ids ``[sqlite_memory-compiled]``; a conftest found during collection would come first.)

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
