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

pytest_plugins = ["dsg_lib.testing"]  # runs tests using these fixtures on the session loop
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

import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.orm import DeclarativeBase

from .config import DBConfig
from .database import AsyncDatabase
from .errors import InvalidInputError

__all__ = ["database_fixtures", "isolated"]  # the pytest hook below is found by name, not API

#: attribute marking fixtures made by database_fixtures (their tests need the session loop)
_FIXTURE_FLAG = "_dsg_lib_session_loop"


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
    (named ``name``) yields the same database inside `isolated`. Both
    run on the session event loop, so no loop-scope errors.

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

    @pytest_asyncio.fixture(scope="session", loop_scope="session", name=f"{name}_session")
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

    session_name = f"{name}_session"

    async def _isolated_db(**fixtures: AsyncDatabase) -> AsyncIterator[AsyncDatabase]:
        async with isolated(fixtures[session_name]) as db:
            yield db

    # pytest finds a fixture's dependencies in its signature: depend on the session fixture by name
    _isolated_db.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(session_name, inspect.Parameter.KEYWORD_ONLY)]
    )
    isolated_fixture = pytest_asyncio.fixture(loop_scope="session", name=name)(_isolated_db)
    setattr(_isolated_db, _FIXTURE_FLAG, True)

    return _session_db, isolated_fixture


def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Pytest hook (``pytest_plugins = ["dsg_lib.testing"]``): run tests that use a
    `database_fixtures` fixture on the session event loop, where its engine lives.

    Examples:
        >>> pytest_collection_modifyitems([])
    """
    import pytest

    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        for name in item.fixturenames:
            defs = info.name2fixturedefs.get(name) or ()
            if any(
                getattr(d.func, _FIXTURE_FLAG, False)
                or getattr(getattr(d.func, "__wrapped__", None), _FIXTURE_FLAG, False)
                for d in defs
            ):
                item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)
                break
