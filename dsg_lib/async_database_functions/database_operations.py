"""devsetgo-lib's ``DatabaseOperations``: ``dsg_lib.async_database_functions.database_operations``.

A thin face over `dsg_lib.DatabaseOperations`: the devsetgo-lib-named methods
(``read_query``, ``execute_one``, ``create_one``, ...) return what devsetgo-lib
returns, including a `DatabaseErrorResult` dict instead of raising, so code
written for devsetgo-lib runs unchanged. Two exceptions make failures safe:

* inside ``async with db.transaction()`` (or a request of
  ``dsg_lib.fastapi.DBSessionMiddleware``, which is one transaction) they
  raise the typed error, so a failed step cannot be ignored and half the
  work committed;
* ``DatabaseOperations(async_db, raise_errors=True)`` makes them raise
  everywhere (the first step of moving to the modern API).

The modern methods (``get``, ``find``, ``insert_many``, ...) are inherited
unchanged and always raise. Each devsetgo-lib method opens its session with
``async_db.get_db_session()`` (as devsetgo-lib does) and commits writes itself.

Examples:
    >>> import asyncio
    >>> from sqlalchemy import Column, Integer, String, insert, select
    >>> from dsg_lib.async_database_functions import async_database, database_config
    >>> db = async_database.AsyncDatabase(database_config.DBConfig({"database_uri": "sqlite://"}))
    >>> class Pet(db.Base):
    ...     __tablename__ = "face_pets"
    ...     id = Column(Integer, primary_key=True)
    ...     name = Column(String(40), unique=True)
    >>> ops = DatabaseOperations(db)
    >>> async def main():
    ...     await db.create_tables()
    ...     done = await ops.execute_many([(insert(Pet), {"name": "Rex"}), (insert(Pet), {"name": "Tom"})])
    ...     names = await ops.execute_one(select(Pet.name).order_by(Pet.name))
    ...     failed = await ops.execute_one(insert(Pet), {"name": "Rex"})
    ...     return done, names, failed["error"]
    >>> asyncio.run(main())
    ('complete', ['Rex', 'Tom'], 'IntegrityError')
    >>> asyncio.run(db.disconnect())
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ..database import AsyncDatabase
from ..errors import InvalidInputError, RecordNotFoundError, SessionMissingError
from ..operations import DatabaseOperations as _ModernOperations
from ..operations import returns_rows, run_statement
from ._results import DatabaseErrorResult, error_result, handle_exceptions, metadata_of, shape_row, shape_rows

__all__ = ["DatabaseErrorResult", "DatabaseOperations", "handle_exceptions"]

T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[T]]


class DatabaseOperations(_ModernOperations):
    """devsetgo-lib's operations: error dicts outside ``transaction()``, typed errors inside.

    Args:
        async_db: The database to operate on.
        raise_errors: Raise the typed `dsg_lib.DatabaseError` instead of
            returning a `DatabaseErrorResult`, everywhere.

    Examples:
        >>> from dsg_lib.async_database_functions import async_database, database_config
        >>> db = async_database.AsyncDatabase(database_config.DBConfig({"database_uri": "sqlite://"}))
        >>> DatabaseOperations(db, raise_errors=True).raise_errors
        True
    """

    def __init__(self, async_db: AsyncDatabase, raise_errors: bool = False) -> None:
        super().__init__(async_db)
        self.raise_errors = raise_errors

    # ------------------------------------------------------------ the one place
    def _transaction_session(self) -> AsyncSession | None:
        try:
            return self.async_db.current_session()
        except SessionMissingError:
            return None

    def _failed(self, exc: Exception) -> DatabaseErrorResult:
        """Raise ``exc`` where failures must not be ignored, else devsetgo-lib's error dict."""
        if self.raise_errors or self._transaction_session() is not None:
            raise exc
        password = self.async_db.db_config.url.password
        return error_result(exc, (password,) if password else ())

    async def _run(self, work: Work[T], *, write: bool, session: AsyncSession | None = None) -> Any:
        """Run ``work(session)`` the devsetgo-lib way; every legacy query goes through here.

        Inside a transaction (or with a caller's ``session``) the work joins it and
        errors raise; otherwise it gets its own session from ``get_db_session()``,
        writes are committed, and errors become a `DatabaseErrorResult` unless
        ``raise_errors``.
        """
        errors = self.async_db.db_config.errors
        joined = session if session is not None else self._transaction_session()
        if joined is not None:
            with errors():
                return await work(joined)
        try:
            with errors():
                async with self.async_db.get_db_session() as own:
                    result = await work(own)
                    if write:
                        await own.commit()
                    return result
        except Exception as exc:
            return self._failed(exc)

    async def _legacy_guard(self, work: Awaitable[T]) -> T | DatabaseErrorResult:
        try:
            return await work
        except Exception as exc:
            return self._failed(exc)

    def _not_found(self, record_id: Any) -> DatabaseErrorResult:
        error = RecordNotFoundError(f"No record found with pkid {record_id}"[:200])
        if self.raise_errors or self._transaction_session() is not None:
            raise error
        result = DatabaseErrorResult({"error": "Record not found", "details": error.details})
        result.exception = error
        return result

    # ------------------------------------------------------------ introspection
    async def get_columns_details(self, table: Any) -> Any:
        """As `dsg_lib.DatabaseOperations.get_columns_details`; an error dict on failure.

        Examples:
            >>> sorted(run(face_ops.get_columns_details(User)))
            ['age', 'email', 'id', 'name']
        """
        return await self._legacy_guard(super().get_columns_details(table))

    async def get_primary_keys(self, table: Any) -> Any:
        """As `dsg_lib.DatabaseOperations.get_primary_keys`; an error dict on failure.

        Examples:
            >>> run(face_ops.get_primary_keys(User))
            ['id']
        """
        return await self._legacy_guard(super().get_primary_keys(table))

    async def get_table_names(self) -> Any:
        """The table names of this database's ``Base``; an error dict on failure.

        Examples:
            >>> run(face_ops.get_table_names())
            ['doc_users', 'doc_notes']
        """
        return await self._legacy_guard(super().get_table_names())

    # ------------------------------------------------------------ reads
    async def count_query(self, query: Any, *, session: AsyncSession | None = None) -> Any:
        """The number of rows ``query`` returns; an error dict on failure.

        Examples:
            >>> run(face_ops.count_query(select(User).where(User.age > 40)))
            1
        """
        count = super().count_query
        return await self._run(lambda s: count(query, session=s), write=False, session=session)

    async def paginate_query(
        self, query: Any, page: int = 1, page_size: int = 100, *, session: AsyncSession | None = None
    ) -> Any:
        """One page as ``{"items", "total", "page", "page_size", "pages"}``; items shaped as `read_query`.

        Examples:
            >>> found = run(face_ops.paginate_query(select(User.name).order_by(User.name), 1, 2))
            >>> found["items"], found["pages"]
            (['Ada', 'Alan'], 2)
            >>> run(face_ops.paginate_query(select(User), page=0))["error"]
            'Invalid pagination parameters'
        """
        if not _positive(page) or not _positive(page_size):
            details = f"page and page_size must be >= 1 (got page={page}, page_size={page_size})"
            if self.raise_errors or self._transaction_session() is not None:
                raise InvalidInputError(details)
            return DatabaseErrorResult({"error": "Invalid pagination parameters", "details": details})
        paginate = self.paginate

        async def work(s: AsyncSession) -> dict[str, Any]:
            found = (await paginate(query, page, page_size, session=s)).to_dict()
            found["items"] = [shape_row(item) for item in found["items"]]
            return found

        return await self._run(work, write=False, session=session)

    async def read_one_record(self, query: Any, *, session: AsyncSession | None = None) -> Any:
        """The one row ``query`` returns (an object for ``select(Model)``), or ``None``.

        More than one row is an error (``MultipleRecordsFoundError``), as in devsetgo-lib.

        Examples:
            >>> run(face_ops.read_one_record(select(User).where(User.name == "Ada"))).age
            36
        """

        read = super().read_one_record
        return await self._run(lambda s: read(query, session=s), write=False, session=session)

    async def read_query(self, query: Any, *, session: AsyncSession | None = None) -> Any:
        """Every row: scalars or objects for one column/entity, dicts for several columns.

        Examples:
            >>> run(face_ops.read_query(select(User.name, User.age).where(User.age > 40)))
            [{'name': 'Alan', 'age': 41}]
        """

        async def work(s: AsyncSession) -> list[Any]:
            return shape_rows(await s.execute(_statement(query)))

        return await self._run(work, write=False, session=session)

    async def read_multi_query(
        self, queries: Mapping[str, Any], *, session: AsyncSession | None = None
    ) -> Any:
        """Several named queries in one session: ``{name: rows}`` (rows as `read_query`).

        Examples:
            >>> run(face_ops.read_multi_query({"names": select(User.name).where(User.age > 40)}))
            {'names': ['Alan']}
        """

        async def work(s: AsyncSession) -> dict[str, list[Any]]:
            return {name: shape_rows(await s.execute(_statement(q))) for name, q in queries.items()}

        return await self._run(work, write=False, session=session)

    # ------------------------------------------------------------ writes
    async def execute_one(
        self,
        query: Any,
        values: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        return_metadata: bool = False,
        *,
        session: AsyncSession | None = None,
    ) -> Any:
        """Execute one statement: a select returns its rows, anything else ``"complete"``.

        With ``return_metadata=True`` a non-select returns ``{"rowcount",
        "inserted_primary_key" (inserts), "rows" (when it returns rows)}``.

        Examples:
            >>> run(face_ops.execute_one(update(User).where(User.name == "Ada").values(age=37)))
            'complete'
            >>> run(face_ops.execute_one(insert(User), {"name": "Tim", "email": "t@x.org"}, True))["rowcount"]
            1
        """

        async def work(s: AsyncSession) -> Any:
            return await _execute(s, query, values, return_metadata)

        is_select = isinstance(query, Select)
        return await self._run(work, write=not is_select, session=session)

    async def execute_many(
        self, queries: Sequence[Any], return_results: bool = False, *, session: AsyncSession | None = None
    ) -> Any:
        """Execute ``(statement, values)`` pairs in one transaction; ``"complete"`` or each result.

        Examples:
            >>> run(face_ops.execute_many([(insert(User), {"name": "Tim", "email": "t@x.org"}),
            ...                            (select(User.name).where(User.name == "Tim"), None)], True))
            [{'rowcount': 1, 'inserted_primary_key': [4]}, ['Tim']]
        """

        async def work(s: AsyncSession) -> Any:
            results = []
            for item in queries:
                statement, values = item if isinstance(item, tuple) else (item, None)
                results.append(await _execute(s, statement, values, True))
            return results if return_results else "complete"

        return await self._run(work, write=True, session=session)

    async def create_one(self, record: Any, data: Any = None, *, session: AsyncSession | None = None) -> Any:
        """Insert one ORM object and return it; an error dict on failure.

        ``create_one(Model, data)`` (a Pydantic model or mapping) as on ``dsg_lib.DatabaseOperations``.

        Examples:
            >>> run(face_ops.create_one(User(name="Tim", email="t@x.org"))).id
            4
        """
        create = super().create_one
        return await self._run(lambda s: create(record, data, session=s), write=True, session=session)

    async def create_many(self, records: Sequence[Any], *, session: AsyncSession | None = None) -> Any:
        """Insert several ORM objects in one transaction and return them; an error dict on failure.

        Examples:
            >>> new = [User(name="A", email="a@x.org"), User(name="B", email="b@x.org")]
            >>> len(run(face_ops.create_many(new)))
            2
        """
        create = super().create_many
        return await self._run(lambda s: create(records, session=s), write=True, session=session)

    async def update_one(
        self,
        table: Any,
        record_id: Any,
        new_values: Mapping[str, Any],
        *,
        expected_version: Any = None,
        session: AsyncSession | None = None,
    ) -> Any:
        """Update the row with primary key ``record_id`` and return it.

        ``expected_version``: optimistic locking, as on ``dsg_lib.DatabaseOperations``.

        Returns:
            The object, or ``{"error": "Record not found", ...}`` when there is none.

        Examples:
            >>> run(face_ops.update_one(User, 1, {"age": 37})).age
            37
            >>> run(face_ops.update_one(User, 99, {"age": 37}))["error"]
            'Record not found'
        """
        if not self._valid_pk(table, record_id):
            return self._not_found(record_id)
        update = super().update_one
        result = await self._run(
            lambda s: update(table, record_id, new_values, expected_version=expected_version, session=s),
            write=True,
            session=session,
        )
        return self._not_found(record_id) if _is_not_found(result) else result

    async def delete_one(
        self, table: Any, record_id: Any, *, hard: bool = False, session: AsyncSession | None = None
    ) -> Any:
        """Delete the row with primary key ``record_id``.

        Returns:
            ``{"success": "Record deleted successfully"}``, or
            ``{"error": "Record not found", ...}`` when there is none.

        Examples:
            >>> run(face_ops.delete_one(User, 3))
            {'success': 'Record deleted successfully'}
        """
        if not self._valid_pk(table, record_id):
            return self._not_found(record_id)
        delete = super().delete_one
        result = await self._run(
            lambda s: delete(table, record_id, hard=hard, session=s), write=True, session=session
        )
        return self._not_found(record_id) if _is_not_found(result) else result

    async def delete_many(
        self,
        table: Any,
        id_column_name: str = "pkid",
        id_values: Sequence[Any] | None = None,
        *,
        hard: bool = False,
        session: AsyncSession | None = None,
    ) -> Any:
        """Delete the rows whose ``id_column_name`` is in ``id_values``; the number deleted.

        Examples:
            >>> run(face_ops.delete_many(User, "id", [2, 3]))
            2
        """
        delete = super().delete_many
        return await self._run(
            lambda s: delete(table, id_column_name, id_values, hard=hard, session=s),
            write=True,
            session=session,
        )

    def _valid_pk(self, table: Any, record_id: Any) -> bool:
        """False when ``record_id`` cannot be a primary key of ``table`` (so no row has it)."""
        try:
            self._check_pk(table, record_id)
        except InvalidInputError:
            return False
        return True


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_not_found(result: Any) -> bool:
    return isinstance(result, DatabaseErrorResult) and isinstance(result.exception, RecordNotFoundError)


def _statement(query: Any) -> Any:
    return text(query) if isinstance(query, str) else query


async def _execute(session: AsyncSession, query: Any, values: Any, metadata: bool) -> Any:
    """One statement as devsetgo-lib runs it: select -> rows; else "complete" or its metadata."""
    statement = _statement(query)
    result = await run_statement(session, statement, values)
    if isinstance(statement, Select):
        return shape_rows(result)
    rows = shape_rows(result) if returns_rows(statement, result) else []
    return metadata_of(statement, result, rows) if metadata else "complete"
