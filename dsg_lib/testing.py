"""Test helpers: a database per backend URL, rolled back after every test.

The "join an external transaction" pattern: each test runs inside one outer
transaction on one connection; every session of the database (including
``transaction()`` commits, which become SAVEPOINT releases) joins it, and the
outer transaction is rolled back when the test ends, so the next test starts
clean without re-creating tables.

Limits: the test's operations share one connection, so do not run them
concurrently (``asyncio.gather`` of writes) inside an isolated test; on
MySQL/MariaDB DDL commits implicitly, so create tables before (the fixtures
below do), not inside a test.

In your ``conftest.py``:

```python
from dsg_lib.testing import database_fixtures
from myapp.models import Base

pytest_plugins = ["dsg_lib.testing"]  # marks async tests using these fixtures (strict mode)
db_session_fixture, db = database_fixtures(
    "sqlite+aiosqlite:///:memory:", base=Base, name="db")

# tests: async def test_x(db): await DatabaseOperations(db).insert_many(...)
```

Examples:
    >>> import asyncio
    >>> from sqlalchemy import text
    >>> from dsg_lib import AsyncDatabase, DBConfig
    >>> async def main():
    ...     async with AsyncDatabase(DBConfig({"database_uri": "sqlite://"})) as db:
    ...         async with db.transaction() as s:
    ...             await s.execute(text("create table t (x int)"))
    ...         async with isolated(db):
    ...             async with db.transaction() as s:
    ...                 await s.execute(text("insert into t values (1)"))
    ...         async with db.get_db_session() as s:
    ...             return (await s.execute(text("select count(*) from t"))).scalar()
    >>> asyncio.run(main())
    0
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.orm import DeclarativeBase

from .config import DBConfig
from .database import AsyncDatabase
from .errors import InvalidInputError
from .session import query_budget

__all__ = ["database_fixtures", "isolated"]  # the pytest hooks below are found by name, not API


@asynccontextmanager
async def isolated(db: AsyncDatabase) -> AsyncIterator[AsyncDatabase]:
    """Run the block in an outer transaction that is rolled back at the end.

    Examples:
        >>> # async with isolated(db):
        >>> #     await ops.insert_many(User, rows)   # gone after the block
    """
    if db.acquire.pinned is not None:
        raise InvalidInputError("isolated() blocks cannot be nested on one database")
    async with db.engine.connect() as conn:
        outer = await conn.begin()
        try:
            with db.pin(conn):
                yield db
        finally:
            if outer.is_active:
                await outer.rollback()


def database_fixtures(
    config: str | Mapping[str, Any],
    *,
    base: type[DeclarativeBase] | None = None,
    name: str = "db",
    create_tables: bool = True,
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """Two pytest-asyncio fixtures: a session-wide database and a per-test isolated one.

    The session fixture (named ``f"{name}_session"``) connects, creates the
    tables of ``base`` once, and drops them at the end; the per-test fixture
    (named ``name``) yields the same database inside `isolated`. The per-test
    fixture runs on the test's own event loop (pytest-asyncio's default
    function-scoped loops, or whatever loop scope you configured), and so do
    your async fixtures that depend on it: an ``AsyncDatabase`` gives every
    loop connections of its own. Works in strict and auto mode.

    Args:
        config: A database URI or a ``DBConfig`` mapping.
        base: Your declarative base (models declared on it get tables).
        name: The per-test fixture's name.
        create_tables: Create (and finally drop) the tables.

    Examples:
        >>> session_fixture, db_fixture = database_fixtures("sqlite://", name="db")
    """
    import pytest_asyncio

    settings = {"database_uri": config} if isinstance(config, str) else dict(config)
    session_name = f"{name}_session"

    @pytest_asyncio.fixture(scope="session", loop_scope="session", name=session_name)
    async def _session_db() -> AsyncIterator[AsyncDatabase]:
        db = AsyncDatabase(DBConfig(settings), base=base)
        await db.connect()
        if create_tables:
            await db.drop_tables()
            await db.create_tables()
        yield db
        if create_tables:
            await db.drop_tables()
        await db.disconnect()

    async def _isolated_db(**fixtures: AsyncDatabase) -> AsyncIterator[AsyncDatabase]:
        async with isolated(fixtures[session_name]) as db:
            yield db

    # pytest finds a fixture's dependencies in its signature: depend on the session fixture by name
    _isolated_db.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(session_name, inspect.Parameter.KEYWORD_ONLY)]
    )
    # no loop_scope: the outer transaction must live on the loop the test runs on
    isolated_fixture = pytest_asyncio.fixture(name=name)(_isolated_db)
    _FIXTURE_NAMES.add(name)
    return _session_db, isolated_fixture


#: names of the per-test fixtures made by database_fixtures (their tests are asyncio tests)
_FIXTURE_NAMES: set[str] = set()


def pytest_configure(config: Any) -> None:
    """Pytest hook: registers the ``max_queries`` marker.

    Examples:
        >>> class Config:
        ...     def addinivalue_line(self, name, line):
        ...         print(name, line.split(":")[0])
        >>> pytest_configure(Config())
        markers max_queries(n)
    """
    config.addinivalue_line(
        "markers",
        "max_queries(n): fail the test if its body issues more than n SQL statements "
        "(dsg_lib.testing; fixtures are not counted)",
    )


def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Pytest hook (``pytest_plugins = ["dsg_lib.testing"]``): run tests marked
    ``@pytest.mark.max_queries(n)`` inside ``query_budget(n)``.

    Examples:
        >>> pytest_collection_modifyitems([])
    """
    for item in items:
        marker = item.get_closest_marker("max_queries")
        if marker is not None:
            _budget_test(item, marker)


def _mark_asyncio(items: list[Any]) -> None:
    """Mark async tests that use a `database_fixtures` fixture as asyncio tests.

    In pytest-asyncio's strict mode (its default) an unmarked ``async def``
    test is not run; a test asking for the ``db`` fixture plainly means to be
    one. Its own ``asyncio`` marker (and loop scope), if any, is kept.
    """
    import pytest

    for item in items:
        if (
            inspect.iscoroutinefunction(getattr(item, "obj", None))
            and item.get_closest_marker("asyncio") is None
            and _FIXTURE_NAMES.intersection(getattr(item, "fixturenames", ()))
        ):
            item.add_marker(pytest.mark.asyncio)


def _plugin_hooks() -> Any:
    import pytest

    @pytest.hookimpl(hookwrapper=True, trylast=True)
    def pytest_pycollect_makeitem(collector: Any, name: str, obj: object) -> Any:
        # trylast: innermost wrapper, so the marker is on the items before
        # pytest-asyncio's wrapper decides which of them are asyncio tests
        outcome = yield
        result = outcome.get_result()
        if result:
            _mark_asyncio(list(result) if isinstance(result, (list, tuple)) else [result])

    return pytest_pycollect_makeitem


try:
    pytest_pycollect_makeitem = _plugin_hooks()
except ImportError:  # pytest not installed: isolated() still works
    pass


def _budget_test(item: Any, marker: Any) -> None:
    """Run the test function (not its fixtures) inside ``query_budget(n)``."""
    limit = marker.args[0] if marker.args else marker.kwargs.get("n")
    test = item.obj
    if inspect.iscoroutinefunction(test):

        @functools.wraps(test)
        async def budgeted(*args: Any, **kwargs: Any) -> Any:
            async with query_budget(limit):
                return await test(*args, **kwargs)

        item.obj = budgeted
    else:

        @functools.wraps(test)
        def budgeted_sync(*args: Any, **kwargs: Any) -> Any:
            with query_budget(limit):
                return test(*args, **kwargs)

        item.obj = budgeted_sync
