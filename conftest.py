"""Doctest setup for the ``dsg_lib.filters`` helper examples (``T``: a model with an integer ``id``) and
for the ``DatabaseOperations`` method examples (``dsg_lib/operations/_*.py``, and
``face_ops``: the devsetgo-lib face's operations in ``async_database_functions/database_operations.py``).

Every method example runs against a fresh in-memory SQLite database holding
``User`` (Ada 36, Alan 41, Grace with no age) and the soft-deletable ``Note``;
``run`` awaits a coroutine on the example's own event loop.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _operations_doctest_namespace(
    request: pytest.FixtureRequest, doctest_namespace: dict[str, Any]
) -> Iterator[None]:
    module = getattr(getattr(request.node, "dtest", None), "name", "")
    face = ".async_database_functions.database_operations.DatabaseOperations." in module
    if ".operations._" not in module and not face:
        yield
        return
    from sqlalchemy import Integer, String, delete, insert, or_, select, update
    from sqlalchemy.orm import mapped_column

    from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig, InvalidInputError, SoftDeleteMixin
    from dsg_lib.async_database_functions import database_operations

    loop = asyncio.new_event_loop()
    db = AsyncDatabase(DBConfig({"database_uri": "sqlite+aiosqlite:///:memory:"}))

    class User(db.Base):
        __tablename__ = "doc_users"
        id = mapped_column(Integer, primary_key=True)
        name = mapped_column(String(50), nullable=False)
        email = mapped_column(String(100), unique=True, nullable=False)
        age = mapped_column(Integer, nullable=True)

    class Note(SoftDeleteMixin, db.Base):
        __tablename__ = "doc_notes"
        id = mapped_column(Integer, primary_key=True)
        title = mapped_column(String(50), nullable=False)

    ops = DatabaseOperations(db)

    async def seed() -> None:
        await db.create_tables()
        await ops.insert_many(
            User,
            [
                {"name": "Ada", "email": "ada@example.com", "age": 36},
                {"name": "Alan", "email": "alan@example.com", "age": 41},
                {"name": "Grace", "email": "grace@example.com", "age": None},
            ],
        )
        await ops.insert_many(Note, [{"title": "first"}, {"title": "second"}])

    loop.run_until_complete(seed())
    doctest_namespace.update(
        db=db,
        ops=ops,
        face_ops=database_operations.DatabaseOperations(db),
        User=User,
        Note=Note,
        run=loop.run_until_complete,
        select=select,
        insert=insert,
        update=update,
        delete=delete,
        or_=or_,
        InvalidInputError=InvalidInputError,
    )
    try:
        yield
    finally:
        loop.run_until_complete(db.disconnect())
        loop.close()


@pytest.fixture(autouse=True)
def _filters_doctest_namespace(request: pytest.FixtureRequest, doctest_namespace: dict[str, Any]) -> None:
    """``T``, the one-column model the examples of the ``dsg_lib.filters`` helpers take."""
    module = getattr(getattr(request.node, "dtest", None), "name", "")
    if not module.startswith("dsg_lib.filters."):
        return
    from sqlalchemy import Integer
    from sqlalchemy.orm import DeclarativeBase, mapped_column

    class B(DeclarativeBase):
        pass

    class T(B):
        __tablename__ = "t"
        id = mapped_column(Integer, primary_key=True)

    doctest_namespace["T"] = T


@pytest.fixture(autouse=True)
def _keep_the_current_event_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """Give the thread its event loop back after a synchronous test or doctest ran ``asyncio.run()``.

    ``asyncio.run()`` unsets the thread's current loop when it finishes; pytest-asyncio before 1.5
    then cannot find the session loop for the next async test ("There is no current event loop").
    """
    if asyncio.iscoroutinefunction(getattr(request.node, "obj", None)):
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_event_loop()
        except RuntimeError:
            loop = None
    yield
    if loop is not None and not loop.is_closed():
        asyncio.set_event_loop(loop)


#: doctests that open a tenant scope: SQLAlchemy 2.0 refuses scopes (tests/session/test_tenancy_versions.py)
_SCOPE_DOCTESTS = ("dsg_lib.database.AsyncDatabase.scoped", "dsg_lib.session._tenancy.TenantScope")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from dsg_lib.session import tenancy

    if tenancy.SUPPORTED:
        return
    skip = pytest.mark.skip(reason="SQLAlchemy 2.0: db.scoped() refuses (session/test_tenancy_versions.py)")
    for item in items:
        if item.name in _SCOPE_DOCTESTS:
            item.add_marker(skip)
