"""``DatabaseOperations``: devsetgo-lib-compatible CRUD plus safe model-level operations.

Every method raises a `dsg_lib.DatabaseError` subclass on failure
(``err.to_dict()`` gives devsetgo-lib's ``{"error", "details"}`` shape).
Every method joins the caller's open ``db.transaction()`` in the same task.
Outside one, a write of several statements runs in a transaction of its own,
while a read or a single-statement write runs by itself (it commits by itself,
with no BEGIN/COMMIT). Pass ``session=`` to use a session you own: the
operation uses it and never commits it. How a statement runs (compiled or
through SQLAlchemy, same results) is decided in one place, ``_executor``.

Examples:
    >>> import asyncio
    >>> from sqlalchemy import String
    >>> from sqlalchemy import Integer
    >>> from sqlalchemy.orm import mapped_column
    >>> from dsg_lib import AsyncDatabase, DBConfig, DatabaseOperations
    >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
    >>> class Pet(db.Base):
    ...     __tablename__ = "pets"
    ...     id = mapped_column(Integer, primary_key=True)
    ...     name = mapped_column(String(40))
    >>> ops = DatabaseOperations(db)
    >>> async def main():
    ...     await db.create_tables()
    ...     await ops.insert_many(Pet, [{"name": "Rex"}, {"name": "Tom"}])
    ...     return [p.name for p in await ops.find(Pet, name__startswith="R")]
    >>> asyncio.run(main())
    ['Rex']
    >>> asyncio.run(db.disconnect())
"""

from __future__ import annotations

from ..session import observe_class
from ._compat import CompatOperations, returns_rows, run_statement
from ._paging import PagingOperations
from ._reads import ReadOperations
from ._versions import version_attribute
from ._writes import WriteOperations

# returns_rows, run_statement: the one execute of execute_one / execute_many, shared with the
# devsetgo-lib face; version_attribute: the model's version column, for dsg_lib.fastapi's ETags
__all__ = ["DatabaseOperations", "returns_rows", "run_statement", "version_attribute"]


@observe_class  # a span / metrics per public operation when dsg_lib.observability is on
class DatabaseOperations(CompatOperations, ReadOperations, WriteOperations, PagingOperations):
    """Generic CRUD over an `AsyncDatabase`.

    The method examples below run (as doctests) against an in-memory SQLite
    database with a `User` model (`id`, `name`, `email` unique, `age`
    nullable) holding Ada (36), Alan (41) and Grace (no age), a soft-deletable
    `Note` model with two rows, `ops = DatabaseOperations(db)`, and `run(...)`
    awaiting a coroutine (inside your own async code, just `await`).

    Args:
        async_db: The database to operate on.

    Examples:
        >>> from dsg_lib import AsyncDatabase, DBConfig
        >>> ops = DatabaseOperations(AsyncDatabase(DBConfig({"database_uri": "sqlite://"})))
        >>> ops.async_db.db_config.dialect
        'sqlite'
    """
