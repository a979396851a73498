"""One ``AsyncDatabase`` (module level, as apps declare it) across event loops.

Each scenario failed before the per-loop pools: "Queue is bound to a different
event loop" (in-memory SQLite after two concurrent calls, servers with a small
pool), "attached to a different loop" in user fixtures on PostgreSQL/MariaDB,
MariaDB "Command Out of Sync" in the next test, and ``dsg_lib.testing``'s
documented conftest in pytest-asyncio's strict mode (its default).
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig
from tests.helpers import ROOT

RUN = os.getpid()


@pytest.fixture
def noise() -> Iterator[list[str]]:
    """Warnings and exceptions ignored in ``__del__`` ("Event loop is closed") during the test."""
    seen: list[str] = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda info: seen.append(f"{info.exc_type.__name__}: {info.exc_value}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield seen
            gc.collect()
        finally:
            sys.unraisablehook = previous
    seen.extend(f"{w.category.__name__}: {w.message}" for w in caught)


def test_one_database_serves_asyncio_run_after_asyncio_run(
    backend: str, db_url: str, noise: list[str]
) -> None:
    small_pool = {} if backend == "sqlite_memory" else {"pool_size": 1, "max_overflow": 0}
    db = AsyncDatabase(DBConfig({"database_uri": db_url, **small_pool}))

    class Item(db.Base):
        __tablename__ = f"loops_items_{RUN}"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(20))

    ops = DatabaseOperations(db)

    async def first() -> list[Any]:
        await db.drop_tables()
        await db.create_tables()
        await ops.insert_many(Item, [{"id": 1, "name": "a"}])
        return await asyncio.gather(ops.count(Item), ops.count(Item), ops.exists(Item, id=1))

    async def second() -> list[Any]:
        counts = await asyncio.gather(ops.count(Item), ops.count(Item))
        async with db.transaction():
            await ops.insert_many(Item, [{"id": 2, "name": "b"}])
        return [*counts, await ops.count(Item)]

    async def last() -> int:
        try:
            return await ops.count(Item)
        finally:
            await db.drop_tables()
            await db.disconnect()

    assert asyncio.run(first()) == [1, 1, True]
    assert asyncio.run(second()) == [1, 1, 2]
    assert asyncio.run(last()) == 2
    gc.collect()
    assert noise == []


_SLOW_SQL = {
    "postgresql": "SELECT pg_sleep(3)",
    "mysql": "SELECT SLEEP(3)",
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000000) "
    "SELECT count(*) FROM c",
}

_APP_CONFTEST = """
    import os

    import pytest_asyncio
    from sqlalchemy import String
    from sqlalchemy.orm import Mapped, mapped_column

    from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig

    URL = os.environ["DSG_INNER_URL"]
    POOL = {} if URL.startswith("sqlite") and ":memory:" in URL else {"pool_size": 2, "max_overflow": 0}
    db = AsyncDatabase(DBConfig({"database_uri": URL, **POOL}))  # module level, like an app's


    class Item(db.Base):
        __tablename__ = "loops_app_items_%(run)s"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(40))


    @pytest_asyncio.fixture
    async def ops():  # a user fixture depending on the database, on the test's own loop
        await db.drop_tables()
        await db.create_tables()
        operations = DatabaseOperations(db)
        await operations.insert_many(Item, [{"id": 1, "name": "seed"}])
        yield operations
        await db.drop_tables()
"""

_APP_TESTS = """
    import asyncio

    import pytest
    from sqlalchemy import text

    from conftest import Item, db

    pytestmark = pytest.mark.asyncio  # strict mode needs it; auto mode does not mind
    SLOW = %(slow)r


    @pytest.mark.parametrize("run", range(3))
    async def test_concurrent_reads_and_a_transaction(ops, run):
        assert await asyncio.gather(*(ops.count(Item) for _ in range(4))) == [1, 1, 1, 1]
        async with db.transaction():
            await ops.insert_many(Item, [{"id": 2, "name": f"run {run}"}])
        assert await ops.count(Item) == 2


    async def test_a_query_cancelled_by_a_timeout(ops):
        async def slow():
            async with db.get_db_session() as session:
                await session.execute(text(SLOW))

        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slow(), 0.3)
        assert await ops.count(Item) == 1


    @pytest.mark.parametrize("run", range(2))
    async def test_the_next_tests_work(ops, run):
        assert [i.name for i in await ops.find(Item)] == ["seed"]
        assert (await ops.get(Item, 1)).name == "seed"
"""

_TESTING_CONFTEST = """
    import os

    import pytest_asyncio
    from sqlalchemy import String
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

    from dsg_lib import DatabaseOperations
    from dsg_lib.testing import database_fixtures


    class Base(DeclarativeBase):
        pass


    class Note(Base):
        __tablename__ = "loops_notes_%(run)s"
        id: Mapped[int] = mapped_column(primary_key=True)
        text: Mapped[str] = mapped_column(String(50))


    pytest_plugins = ["dsg_lib.testing"]
    db_session_fixture, db_fixture = database_fixtures(os.environ["DSG_INNER_URL"], base=Base, name="db")


    @pytest_asyncio.fixture
    async def seeded(db):  # a user fixture depending on the per-test database
        ops = DatabaseOperations(db)
        await ops.insert_many(Note, [{"text": "seed"}])
        return ops
"""

_TESTING_TESTS = """
    import pytest

    from conftest import Note


    @pytest.mark.parametrize("run", range(3))
    async def test_each_test_starts_clean(db, seeded, run):
        assert await seeded.count(Note) == 1
        async with db.transaction():
            await seeded.insert_many(Note, [{"text": f"run {run}"}])
        assert await seeded.count(Note) == 2


    async def test_without_the_user_fixture(db):
        from dsg_lib import DatabaseOperations

        assert await DatabaseOperations(db).count(Note) == 0
"""


def _run_inner_suite(tmp_path: Path, url: str, mode: str, conftest: str, tests: str) -> str:
    suite = tmp_path / "suite"
    suite.mkdir()
    values = {"run": RUN, "slow": _SLOW_SQL[_dialect(url)]}
    (suite / "conftest.py").write_text(textwrap.dedent(conftest % values))
    (suite / "test_app.py").write_text(textwrap.dedent(tests % values))
    # pytest-asyncio's defaults: function-scoped loops for tests and fixtures
    (suite / "pytest.ini").write_text(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
    )
    env = {**os.environ, "DSG_INNER_URL": url, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [
            sys.executable,
            "-X",
            "dev",  # show every ResourceWarning, "Event loop is closed" included
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "error::pytest.PytestUnraisableExceptionWarning",
            "-W",
            "error::ResourceWarning",
        ],
        cwd=suite,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def _dialect(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql" if url.startswith("postgresql") else "mysql"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_module_level_database_under_pytest_asyncio(mode: str, db_url: str, tmp_path: Path) -> None:
    output = _run_inner_suite(tmp_path, db_url, mode, _APP_CONFTEST, _APP_TESTS)
    assert "6 passed" in output
    assert "Event loop is closed" not in output and "different loop" not in output


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_documented_testing_conftest_under_pytest_asyncio(mode: str, db_url: str, tmp_path: Path) -> None:
    output = _run_inner_suite(tmp_path, db_url, mode, _TESTING_CONFTEST, _TESTING_TESTS)
    assert "4 passed" in output
