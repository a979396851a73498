"""The devsetgo-lib-compatible methods of ``DatabaseOperations`` (private module)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, overload

from sqlalchemy import (
    Executable,
    Insert,
    Select,
    UpdateBase,
    func,
    inspect,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from ..backends import compiled
from ..errors import InvalidInputError, MultipleRecordsFoundError, RecordNotFoundError
from ..filters import check_value, model_columns
from ..session import tenancy as _tenancy
from . import _bulk
from ._base import M, as_statement, is_soft, require_select, single_column
from ._paging import PagingOperations
from ._schemas import input_values, is_pydantic_model
from ._versions import check_expected, check_not_versioned, version_attribute
from ._writes import WriteOperations


class CompatOperations(WriteOperations, PagingOperations):
    """devsetgo-lib-compatible methods of ``DatabaseOperations``.

    Where a devsetgo-lib name and a modern one do the same thing, the old name
    delegates (``delete_many`` / ``delete_one`` -> ``delete_where``,
    ``paginate_query`` -> ``paginate``) or shares the one private step
    (``count_query`` and ``count`` -> ``_count``; ``read_query`` and ``find``
    -> ``_fetch_all``): one implementation per operation.
    """

    async def get_columns_details(self, table: Any) -> dict[str, dict[str, Any]]:
        """Describe every column of a model: type, nullable, primary_key, unique, autoincrement, default.

        Examples:
            >>> sorted(run(ops.get_columns_details(User)))
            ['age', 'email', 'id', 'name']
            >>> run(ops.get_columns_details(User))["email"]["unique"]
            True
        """
        table_obj = _bulk.table_of(table)
        return {
            c.name: {
                "type": str(c.type),
                "nullable": c.nullable,
                "primary_key": c.primary_key,
                "unique": c.unique,
                "autoincrement": c.autoincrement,
                "default": (
                    str(getattr(c.default, "arg", None))
                    if c.default is not None and not callable(getattr(c.default, "arg", None))
                    else None
                ),
            }
            for c in table_obj.columns
        }

    async def get_primary_keys(self, table: Any) -> list[str]:
        """The primary key column names of a model.

        Examples:
            >>> run(ops.get_primary_keys(User))
            ['id']
        """
        return [c.name for c in _bulk.table_of(table).primary_key.columns]

    async def get_table_names(self) -> list[str]:
        """The table names this database's ``Base`` (and legacy ``BASE``) declares.

        Examples:
            >>> run(ops.get_table_names())
            ['doc_users', 'doc_notes']
        """
        names: list[str] = []
        for metadata in self.async_db.metadatas():
            names.extend(t for t in metadata.tables if t not in names)
        return names

    async def count_query(self, query: Select[Any], *, session: AsyncSession | None = None) -> int:
        """Count the rows a ``select()`` returns.

        Examples:
            >>> run(ops.count_query(select(User).where(User.age > 40)))
            1
        """
        require_select(query)
        return await self._count(select(func.count()).select_from(query.order_by(None).subquery()), session)

    async def paginate_query(
        self,
        query: Select[Any],
        page: int = 1,
        page_size: int = 100,
        *,
        session: AsyncSession | None = None,
    ) -> dict[str, Any]:
        """One page of a ``select()`` as ``{"items", "total", "page", "page_size", "pages"}``.

        Examples:
            >>> page = run(ops.paginate_query(select(User).order_by(User.id), page=1, page_size=2))
            >>> (page["total"], page["pages"], [u.name for u in page["items"]])
            (3, 2, ['Ada', 'Alan'])
        """
        return (await self.paginate(query, page, page_size, session=session)).to_dict()

    async def read_one_record(self, query: Select[Any], *, session: AsyncSession | None = None) -> Any:
        """The single object a query returns, or ``None`` when there is none.

        Raises:
            MultipleRecordsFoundError: the query returned more than one row.

        Examples:
            >>> run(ops.read_one_record(select(User).where(User.name == "Ada"))).email
            'ada@example.com'
            >>> run(ops.read_one_record(select(User).where(User.name == "Nobody"))) is None
            True
        """
        require_select(query)
        async with self._session(session, write=False) as s:
            result = await s.execute(query)
            rows = result.scalars().fetchmany(2) if single_column(query) else result.fetchmany(2)
        if len(rows) > 1:
            raise MultipleRecordsFoundError("the query returned more than one row; expected at most one")
        return rows[0] if rows else None

    async def read_query(self, query: Executable, *, session: AsyncSession | None = None) -> list[Any]:
        """Every row of a query: objects/scalars for one-entity queries, ``Row`` tuples otherwise.

        Examples:
            >>> [u.name for u in run(ops.read_query(select(User).order_by(User.name)))]
            ['Ada', 'Alan', 'Grace']
            >>> run(ops.read_query(select(User.name, User.age).where(User.id == 1)))
            [('Ada', 36)]
        """
        return await self._fetch_all(as_statement(query), session)

    async def read_multi_query(
        self, queries: Mapping[str, Executable], *, session: AsyncSession | None = None
    ) -> dict[str, list[Any]]:
        """Run several named queries in one session: ``{name: rows}``.

        Examples:
            >>> queries = {"over_40": select(User).where(User.age > 40), "all": select(User)}
            >>> found = run(ops.read_multi_query(queries))
            >>> {name: len(rows) for name, rows in found.items()}
            {'over_40': 1, 'all': 3}
        """
        if not isinstance(queries, Mapping):
            raise InvalidInputError("read_multi_query takes a dict of {name: query}")
        results: dict[str, list[Any]] = {}
        # one read snapshot for all the queries (see Acquirer.session)
        async with self.async_db.acquire.session(session, write=False, snapshot=True) as s:
            for name, query in queries.items():
                results[name] = await self._fetch_all(as_statement(query), s)
        return results

    async def execute_one(
        self,
        query: Executable | str,
        values: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        return_metadata: bool = False,
        *,
        session: AsyncSession | None = None,
    ) -> Any:
        """Execute one statement (insert / update / delete / text / select) in a transaction.

        Returns:
            A select's rows (as `read_query` gives them); otherwise the affected
            row count, or with ``return_metadata=True`` a dict with
            ``rowcount``, ``inserted_primary_key`` (single inserts) and ``rows``
            (statements with RETURNING).

        Examples:
            >>> run(ops.execute_one(update(User).where(User.age.is_(None)).values(age=85)))
            1
            >>> tim = insert(User).values(name="Tim", email="tim@example.com")
            >>> run(ops.execute_one(tim, return_metadata=True))
            {'rowcount': 1, 'inserted_primary_key': [4]}
        """
        statement = as_statement(query)
        single = values is None or isinstance(values, Mapping)
        async with self._session(session, write=True, single_statement=single) as s:
            result = await run_statement(s, statement, values)
            if isinstance(statement, Select) and not return_metadata:
                return _rows(statement, result)  # a select's answer is its rows, not a rowcount
            return _result_info(statement, result, return_metadata)

    async def execute_many(
        self,
        queries: Sequence[Any],
        return_results: bool = False,
        *,
        session: AsyncSession | None = None,
    ) -> Any:
        """Execute several statements in one transaction: all succeed or none does.

        Args:
            queries: Statements, or ``(statement, values)`` pairs.
            return_results: Return each statement's result (rows for RETURNING /
                selects, else its rowcount) instead of the total rowcount.

        Examples:
            >>> run(ops.execute_many([
            ...     insert(User).values(name="Tim", email="tim@example.com"),
            ...     delete(User).where(User.name == "Tim"),
            ... ]))
            2
        """
        if isinstance(queries, (str, bytes)) or not isinstance(queries, Sequence):
            raise InvalidInputError("execute_many takes a list of statements or (statement, values) pairs")
        results: list[Any] = []
        total = 0
        async with self._session(session, write=True) as s:
            for item in queries:
                statement, values = item if isinstance(item, tuple) and len(item) == 2 else (item, None)
                statement = as_statement(statement)
                result = await run_statement(s, statement, values)
                if returns_rows(statement, result):
                    results.append(_rows(statement, result))
                else:
                    count = max(getattr(result, "rowcount", 0), 0)
                    total += count
                    results.append(count)
        return results if return_results else total

    @overload
    async def create_one(self, record: M, data: None = None, *, session: AsyncSession | None = None) -> M: ...

    @overload
    async def create_one(self, record: type[M], data: Any, *, session: AsyncSession | None = None) -> M: ...

    async def create_one(self, record: Any, data: Any = None, *, session: AsyncSession | None = None) -> Any:
        """Insert one ORM object and return it with generated values loaded.

        ``create_one(Model, data)`` builds the object first from ``data``: a
        Pydantic model instance (every field, ``model_dump()``) or a mapping of
        column values (unknown names are an ``InvalidInputError``).

        Examples:
            >>> user = run(ops.create_one(User(name="Tim", email="tim@example.com")))
            >>> user.id
            4
            >>> run(ops.create_one(User, {"name": "Kay", "email": "kay@example.com"})).id
            5
        """
        if isinstance(record, type):
            record = self._from_data(record, data)
        elif data is not None:
            raise InvalidInputError("pass create_one(obj) or create_one(Model, data), not both")
        _tenancy.apply_to_object(record, self._scope(type(record)))  # db.scoped(...)
        self._check_instance(record)
        # One table and no relationships: the flush is one INSERT, atomic by itself
        # (joined-table inheritance or cascades flush several and need a transaction).
        # A value the database makes (a server default) that could fail to read back needs a
        # transaction too: the flush fails after the INSERT and must take the row back with it.
        mapper = self._mapper(type(record))
        given = inspect(record).dict
        single = (
            len(mapper.tables) == 1
            and not mapper.relationships
            and not any(
                compiled.may_refuse_stored(prop.columns[0])
                for prop in mapper.column_attrs
                if prop.key not in given and prop.columns[0].server_default is not None
            )
        )
        if session is None and await self._compiled_create(record):
            return record
        async with self._session(session, write=True, single_statement=single) as s:
            s.add(record)
            await s.flush()
            await self._load_unloaded(s, [record])
        return record

    def _from_data(self, model: Any, data: Any) -> Any:
        """A new ``model`` object from a Pydantic model or mapping, its values checked."""
        values = input_values(data, partial=False)
        columns = model_columns(model)
        for key, value in values.items():
            if key not in columns:
                raise InvalidInputError(f"{str(key)[:60]!r} is not a column of {model.__name__}")
            values[key] = check_value(columns[key], value, name=key, dialect=self._dialect)
        return model(**values)

    async def create_many(self, records: Sequence[M], *, session: AsyncSession | None = None) -> list[M]:
        """Insert several ORM objects in one transaction; all or none.

        For large loads of plain dicts use `insert_many`, which is much faster.

        Examples:
            >>> new = [User(name="A", email="a@example.com"), User(name="B", email="b@example.com")]
            >>> users = run(ops.create_many(new))
            >>> [u.id for u in users]
            [4, 5]
        """
        records = list(records)
        for record in records:
            if inspect(record, raiseerr=False) is not None:
                _tenancy.apply_to_object(record, self._scope(type(record)))  # db.scoped(...)
            self._check_instance(record)
        if not records:
            return []
        async with self._session(session, write=True) as s:
            s.add_all(records)
            await s.flush()
            await self._load_unloaded(s, records)
        return records

    async def update_one(
        self,
        table: type[M],
        record_id: Any,
        new_values: Mapping[str, Any],
        *,
        expected_version: Any = None,
        session: AsyncSession | None = None,
    ) -> M:
        """Update the row with primary key ``record_id`` and return the updated object.

        Primary key columns and ``date_created`` in ``new_values`` are ignored (as in
        devsetgo-lib); an unknown column is an ``InvalidInputError``.

        ``expected_version`` (optimistic locking, for a model with SQLAlchemy's
        ``version_id_col``): the version the caller read; the update only happens
        if the row is still at it. The UPDATE itself also carries ``AND version =``,
        so a concurrent writer between the read and the write is caught too.

        Raises:
            RecordNotFoundError: no row has that primary key.
            StaleRecordError: the row's version is not ``expected_version``, or it
                changed while this update ran.

        Examples:
            >>> run(ops.update_one(User, 1, {"age": 37})).age
            37
        """
        if is_pydantic_model(new_values):  # PATCH: only the fields that were set
            new_values = input_values(new_values, partial=True)
        if not isinstance(new_values, Mapping):
            raise InvalidInputError("new_values must be a dict of column values (or a Pydantic model)")
        columns = model_columns(table)
        pk_keys = {c.key for c in self._mapper(table).primary_key}
        values = {}
        for key, value in new_values.items():
            if key in pk_keys or key == "date_created":
                continue
            if key not in columns:
                raise InvalidInputError(f"{str(key)[:60]!r} is not a column of {table.__name__}")
            values[key] = check_value(columns[key], value, name=key, dialect=self._dialect)
        check_not_versioned(self._mapper(table), values, table.__name__)
        scope = self._scope(table)  # db.scoped(...): another scope's row is not found
        _tenancy.check_new_values(table, values, scope)
        ident = self._check_pk(table, record_id)
        version_key = None
        if expected_version is not None:
            version_key = version_attribute(self._mapper(table), table.__name__)
            check_expected(expected_version, expected_version, table.__name__)  # its type, before SQL
        async with self._session(session, write=True) as s:
            # a versioned row is read fresh: a version cached in a joined session may be old
            record = await s.get(table, ident, populate_existing=version_key is not None)
            if (
                record is None
                or (is_soft(table) and getattr(record, "deleted_at", None) is not None)
                or (scope and not _tenancy.visible(record, scope))
            ):
                raise RecordNotFoundError(f"no {table.__name__} with primary key {record_id!r}"[:200])
            if version_key is not None:
                check_expected(
                    expected_version, getattr(record, version_key), f"{table.__name__} {record_id!r}"
                )
            for key, value in values.items():
                setattr(record, key, value)
            await s.flush()
            await self._load_unloaded(s, [record])
        return record

    async def delete_one(
        self, table: Any, record_id: Any, *, hard: bool = False, session: AsyncSession | None = None
    ) -> dict[str, str]:
        """Delete the row with primary key ``record_id`` (soft for ``SoftDeleteMixin`` models).

        Returns:
            ``{"success": "Record deleted successfully"}`` as devsetgo-lib did.

        Raises:
            RecordNotFoundError: no row has that primary key.

        Examples:
            >>> run(ops.delete_one(User, 3))
            {'success': 'Record deleted successfully'}
            >>> run(ops.get(User, 3)) is None
            True
        """
        clause = self._pk_clause(table, record_id)
        deleted = await self.delete_where(table, clause, hard=hard, session=session)
        if deleted == 0:
            raise RecordNotFoundError(f"no {table.__name__} with primary key {record_id!r}"[:200])
        return {"success": "Record deleted successfully"}

    async def delete_many(
        self,
        table: Any,
        id_column_name: str = "pkid",
        id_values: Sequence[Any] | None = None,
        *,
        hard: bool = False,
        session: AsyncSession | None = None,
    ) -> int:
        """Delete the rows whose ``id_column_name`` is in ``id_values``; returns the count.

        Examples:
            >>> run(ops.delete_many(User, "id", [2, 3]))
            2
        """
        values = list(id_values or [])
        if not values:
            return 0
        filters: dict[str, Any] = {f"{id_column_name}__in": values}
        return await self.delete_where(table, hard=hard, session=session, **filters)


async def run_statement(session: AsyncSession, statement: Executable, values: Any) -> Any:
    """Execute ``statement`` (with ``values``, if any) in ``session``; the one execute of
    ``execute_one`` / ``execute_many`` on both faces."""
    if isinstance(statement, Insert) and values is not None:
        # Core semantics for (insert(Model), values): a result with rowcount and
        # inserted_primary_key, which the ORM's bulk insert mode reports neither of
        statement = statement.execution_options(dml_strategy="raw")
    if values is None:
        return await session.execute(statement)
    return await session.execute(statement, values)


def returns_rows(statement: Any, result: Any) -> bool:
    """Whether a statement's result holds rows for the caller: selects, explicit RETURNING, text.

    Not ``result.returns_rows`` alone: ORM selects give a result without it, and an
    insert's implicit RETURNING of its primary key (PostgreSQL) is not the caller's.
    """
    if isinstance(statement, Select):
        return True
    if isinstance(statement, UpdateBase):
        return len(statement.exported_columns) > 0
    return bool(getattr(result, "returns_rows", False))


def _rows(statement: Any, result: Any) -> list[Any]:
    return list(result.scalars().all() if single_column(statement) else result.all())


def _result_info(statement: Any, result: Any, return_metadata: bool) -> Any:
    rowcount = max(getattr(result, "rowcount", -1) or 0, 0)
    if not return_metadata:
        return rowcount
    info: dict[str, Any] = {"rowcount": rowcount}
    try:
        if returns_rows(statement, result):
            info["rows"] = list(result.all())
    except Exception:  # pragma: no cover - drivers without row info
        pass
    try:
        pk = result.inserted_primary_key
        if pk is not None:
            info["inserted_primary_key"] = list(pk)
    except Exception:
        pass
    return info
