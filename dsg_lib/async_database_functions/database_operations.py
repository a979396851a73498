"""``DatabaseOperations``: devsetgo-lib-compatible CRUD plus safe, fast model-level operations.

Every method raises a `dsg_lib.DatabaseError` subclass on failure
(``err.to_dict()`` gives devsetgo-lib's ``{"error", "details"}`` shape).
Every method joins the caller's open ``db.transaction()`` in the same task;
outside one it runs in a short transaction of its own. Pass ``session=`` to use
a session you own: the operation uses it and never commits it.

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
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar, cast

from loguru import logger
from sqlalchemy import (
    ColumnElement,
    Delete,
    Executable,
    Select,
    Update,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapper
from sqlalchemy.sql.elements import ClauseElement, UnaryExpression

from . import _bulk
from .async_database import AsyncDatabase
from .base_schema import SoftDeleteMixin, utcnow
from .errors import (
    ConstraintViolationError,
    InvalidInputError,
    MultipleRecordsFoundError,
    RecordNotFoundError,
)
from .filters import build_filters, check_value, model_columns
from .pagination import CursorCodec, CursorPage, Page

__all__ = ["DatabaseOperations"]

M = TypeVar("M")
_MAX_PAGE_SIZE = 10_000


class DatabaseOperations:
    """Generic CRUD over an `AsyncDatabase`.

    Args:
        async_db: The database to operate on.

    Examples:
        >>> from dsg_lib import AsyncDatabase, DBConfig
        >>> ops = DatabaseOperations(AsyncDatabase(DBConfig({"database_uri": "sqlite://"})))
        >>> ops.async_db.db_config.dialect
        'sqlite'
    """

    def __init__(self, async_db: AsyncDatabase) -> None:
        if not isinstance(async_db, AsyncDatabase):
            raise InvalidInputError(
                f"DatabaseOperations needs an AsyncDatabase, got {type(async_db).__name__}"
            )
        self.async_db = async_db
        self._dialect = async_db.db_config.dialect
        self._pk_selects: dict[tuple[Any, bool], Select[Any]] = {}
        self._row_checkers: dict[Any, _bulk.RowChecker] = {}
        secret = async_db.db_config.option("cursor_secret")
        self._cursors = CursorCodec(secret.encode() if isinstance(secret, str) else secret)

    # ================================================================== helpers
    def _connection(
        self, session: AsyncSession | None, *, write: bool, single_statement: bool = True
    ) -> AbstractAsyncContextManager[AsyncConnection]:
        return self.async_db._op_connection(session, write=write, single_statement=single_statement)

    def _session(
        self,
        session: AsyncSession | None,
        *,
        write: bool,
        single_statement: bool = False,
        autocommit_read: bool = True,
    ) -> AbstractAsyncContextManager[AsyncSession]:
        return self.async_db._op_session(
            session, write=write, single_statement=single_statement, autocommit_read=autocommit_read
        )

    @staticmethod
    def _mapper(model: Any) -> Mapper[Any]:
        mapper = inspect(model, raiseerr=False)
        if not isinstance(mapper, Mapper):
            raise InvalidInputError(f"expected a mapped model class, got {model!r}"[:200])
        return mapper

    def _criteria(
        self,
        model: Any,
        where: Sequence[Any],
        filters: Mapping[str, Any],
        include_deleted: bool,
        validate: bool = True,
    ) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        for expression in where:
            if not isinstance(expression, ColumnElement):
                raise InvalidInputError(
                    f"positional filters must be SQLAlchemy expressions, got {type(expression).__name__}; "
                    "use keyword filters (field__op=value) for plain values"
                )
            clauses.append(expression)
        clauses.extend(build_filters(model, filters, validate=validate, dialect=self._dialect))
        if not include_deleted and _is_soft(model):
            clauses.append(model.deleted_at.is_(None))
        return clauses

    def _order(self, model: Any, order_by: Any) -> list[Any]:
        if order_by is None:
            return []
        items = order_by if isinstance(order_by, (list, tuple)) else [order_by]
        columns = model_columns(model) if model is not None else {}
        result: list[Any] = []
        for item in items:
            if isinstance(item, str):
                descending = item.startswith("-")
                name = item.lstrip("-")
                if name not in columns:
                    raise InvalidInputError(
                        f"cannot order by {name[:60]!r}: not a column of {getattr(model, '__name__', model)}"
                    )
                attribute = getattr(model, name)
                result.append(attribute.desc() if descending else attribute.asc())
            elif isinstance(item, ColumnElement) or hasattr(item, "__clause_element__"):
                result.append(item)
            else:
                raise InvalidInputError(f"order_by takes column names or expressions, got {item!r}"[:200])
        return result

    @staticmethod
    def _check_limit(name: str, value: Any, minimum: int = 0, maximum: int | None = None) -> None:
        if value is None:
            return
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            bounds = f">= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
            raise InvalidInputError(f"{name} must be an int {bounds}, got {value!r}"[:200])

    def _check_pk(self, model: Any, record_id: Any) -> Any:
        pk = self._mapper(model).primary_key
        if len(pk) == 1:
            if isinstance(record_id, (tuple, list)) and len(record_id) == 1:
                record_id = record_id[0]
            return check_value(pk[0], record_id, name=pk[0].key)
        if isinstance(record_id, Mapping):
            return {c.key: check_value(c, record_id.get(c.key), name=c.key) for c in pk}
        if not isinstance(record_id, (tuple, list)) or len(record_id) != len(pk):
            raise InvalidInputError(
                f"{model.__name__} has a composite primary key ({', '.join(str(c.key) for c in pk)}): "
                "pass a tuple or dict"
            )
        return tuple(check_value(c, v, name=c.key) for c, v in zip(pk, record_id, strict=True))

    def _pk_clause(self, model: Any, record_id: Any) -> ColumnElement[bool]:
        pk = self._mapper(model).primary_key
        value = self._check_pk(model, record_id)
        if len(pk) == 1:
            return cast(ColumnElement[bool], pk[0] == value)
        values = value.values() if isinstance(value, dict) else value
        return and_(*[c == v for c, v in zip(pk, values, strict=True)])

    @staticmethod
    async def _load_unloaded(session: AsyncSession, records: Iterable[Any]) -> None:
        """Refresh server-generated attributes so objects are usable after the session closes."""
        for record in records:
            state = inspect(record)
            if state.expired_attributes or state.unloaded:
                await session.refresh(record)

    # ================================================================== devsetgo-lib layer
    async def get_columns_details(self, table: Any) -> dict[str, dict[str, Any]]:
        """Describe every column of a model: type, nullable, primary_key, unique, autoincrement, default.

        Examples:
            >>> # columns = await ops.get_columns_details(User)
            >>> # columns["name"]["type"] -> 'VARCHAR(40)'
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
            >>> # await ops.get_primary_keys(User) -> ['pkid']
        """
        return [c.name for c in _bulk.table_of(table).primary_key.columns]

    async def get_table_names(self) -> list[str]:
        """The table names this database's ``Base`` (and legacy ``BASE``) declares.

        Examples:
            >>> # await ops.get_table_names() -> ['users', 'orders']
        """
        names: list[str] = []
        for metadata in self.async_db._metadatas():
            names.extend(t for t in metadata.tables if t not in names)
        return names

    async def count_query(self, query: Select[Any], *, session: AsyncSession | None = None) -> int:
        """Count the rows a ``select()`` returns.

        Examples:
            >>> # await ops.count_query(select(User).where(User.age > 30)) -> 12
        """
        _require_select(query)
        counter = select(func.count()).select_from(query.order_by(None).subquery())
        async with self._connection(session, write=False) as conn:
            return int((await conn.execute(counter)).scalar_one())

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
            >>> # await ops.paginate_query(select(User).order_by(User.name), page=2, page_size=10)
        """
        return (await self.paginate(query, page, page_size, session=session)).to_dict()

    async def read_one_record(self, query: Select[Any], *, session: AsyncSession | None = None) -> Any:
        """The single object a query returns, or ``None`` when there is none.

        Raises:
            MultipleRecordsFoundError: the query returned more than one row.

        Examples:
            >>> # await ops.read_one_record(select(User).where(User.name == "Ada"))
        """
        _require_select(query)
        async with self._session(session, write=False) as s:
            result = await s.execute(query)
            rows = result.scalars().fetchmany(2) if _single_column(query) else result.fetchmany(2)
        if len(rows) > 1:
            raise MultipleRecordsFoundError("the query returned more than one row; expected at most one")
        return rows[0] if rows else None

    async def read_query(self, query: Executable, *, session: AsyncSession | None = None) -> list[Any]:
        """Every row of a query: objects/scalars for one-entity queries, ``Row`` tuples otherwise.

        Examples:
            >>> # await ops.read_query(select(User).where(User.age > 30)) -> [User, ...]
        """
        async with self._session(session, write=False) as s:
            result = await s.execute(_as_statement(query))
            if _single_column(query):
                return list(result.scalars().all())
            return list(result.all())

    async def read_multi_query(
        self, queries: Mapping[str, Executable], *, session: AsyncSession | None = None
    ) -> dict[str, list[Any]]:
        """Run several named queries in one session: ``{name: rows}``.

        Examples:
            >>> # await ops.read_multi_query({"adults": select(User).where(User.age >= 18)})
        """
        if not isinstance(queries, Mapping):
            raise InvalidInputError("read_multi_query takes a dict of {name: query}")
        results: dict[str, list[Any]] = {}
        async with self._session(session, write=False) as s:
            for name, query in queries.items():
                result = await s.execute(_as_statement(query))
                results[name] = list(result.scalars().all() if _single_column(query) else result.all())
        return results

    async def execute_one(
        self,
        query: Executable | str,
        values: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        return_metadata: bool = False,
        *,
        session: AsyncSession | None = None,
    ) -> Any:
        """Execute one write statement (insert / update / delete / text) in a transaction.

        Returns:
            The affected row count, or with ``return_metadata=True`` a dict with
            ``rowcount``, ``inserted_primary_key`` (single inserts) and ``rows``
            (statements with RETURNING).

        Examples:
            >>> # await ops.execute_one(update(User).where(User.id == 1).values(name="Bo")) -> 1
        """
        statement = _as_statement(query)
        single = values is None or isinstance(values, Mapping)
        async with self._session(session, write=True, single_statement=single) as s:
            result = await s.execute(statement, values) if values is not None else await s.execute(statement)
            return _result_info(result, return_metadata)

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
            >>> # await ops.execute_many([insert(User).values(name="a"), delete(User).where(User.id == 9)])
        """
        if isinstance(queries, (str, bytes)) or not isinstance(queries, Sequence):
            raise InvalidInputError("execute_many takes a list of statements or (statement, values) pairs")
        results: list[Any] = []
        total = 0
        async with self._session(session, write=True) as s:
            for item in queries:
                statement, values = item if isinstance(item, tuple) and len(item) == 2 else (item, None)
                statement = _as_statement(statement)
                result = (
                    await s.execute(statement, values) if values is not None else await s.execute(statement)
                )
                if getattr(result, "returns_rows", True):  # ORM selects give a Result without it
                    rows = list(result.all())
                    results.append(rows)
                else:
                    count = max(getattr(result, "rowcount", 0), 0)
                    total += count
                    results.append(count)
        return results if return_results else total

    async def create_one(self, record: M, *, session: AsyncSession | None = None) -> M:
        """Insert one ORM object and return it with generated values loaded.

        Examples:
            >>> # user = await ops.create_one(User(name="Ada"))
        """
        self._check_instance(record)
        # Without relationships the flush is one INSERT: atomic by itself.
        single = not self._mapper(type(record)).relationships
        async with self._session(session, write=True, single_statement=single) as s:
            s.add(record)
            await s.flush()
            await self._load_unloaded(s, [record])
        return record

    async def create_many(self, records: Sequence[M], *, session: AsyncSession | None = None) -> list[M]:
        """Insert several ORM objects in one transaction; all or none.

        For large loads of plain dicts use `insert_many`, which is much faster.

        Examples:
            >>> # users = await ops.create_many([User(name="a"), User(name="b")])
        """
        records = list(records)
        for record in records:
            self._check_instance(record)
        if not records:
            return []
        async with self._session(session, write=True) as s:
            s.add_all(records)
            await s.flush()
            await self._load_unloaded(s, records)
        return records

    def _check_instance(self, record: Any) -> None:
        state = inspect(record, raiseerr=False)
        if state is None or not hasattr(state, "mapper"):
            raise InvalidInputError(f"expected an instance of a mapped model, got {type(record).__name__}")
        columns = model_columns(type(record))
        for key, column in columns.items():
            if key in state.dict:
                check_value(column, state.dict[key], name=key)

    async def update_one(
        self,
        table: type[M],
        record_id: Any,
        new_values: Mapping[str, Any],
        *,
        session: AsyncSession | None = None,
    ) -> M:
        """Update the row with primary key ``record_id`` and return the updated object.

        Primary key columns and ``date_created`` in ``new_values`` are ignored (as in
        devsetgo-lib); an unknown column is an ``InvalidInputError``.

        Raises:
            RecordNotFoundError: no row has that primary key.

        Examples:
            >>> # user = await ops.update_one(User, user.pkid, {"name": "Bo"})
        """
        if not isinstance(new_values, Mapping):
            raise InvalidInputError("new_values must be a dict of column values")
        columns = model_columns(table)
        pk_keys = {c.key for c in self._mapper(table).primary_key}
        values = {}
        for key, value in new_values.items():
            if key in pk_keys or key == "date_created":
                continue
            if key not in columns:
                raise InvalidInputError(f"{str(key)[:60]!r} is not a column of {table.__name__}")
            values[key] = check_value(columns[key], value, name=key)
        ident = self._check_pk(table, record_id)
        async with self._session(session, write=True) as s:
            record = await s.get(table, ident)
            if record is None or (_is_soft(table) and getattr(record, "deleted_at", None) is not None):
                raise RecordNotFoundError(f"no {table.__name__} with primary key {record_id!r}"[:200])
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
            >>> # await ops.delete_one(User, user.pkid)
        """
        clause = self._pk_clause(table, record_id)
        deleted = await self._delete(table, [clause], hard=hard, session=session)
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
            >>> # await ops.delete_many(User, "pkid", [a.pkid, b.pkid]) -> 2
        """
        values = list(id_values or [])
        if not values:
            return 0
        clauses = build_filters(table, {f"{id_column_name}__in": values}, dialect=self._dialect)
        return await self._delete(table, clauses, hard=hard, session=session)

    # ================================================================== model layer: reads
    async def get(
        self,
        model: type[M],
        id: Any,
        *,
        options: Sequence[Any] = (),
        include_deleted: bool = False,
        session: AsyncSession | None = None,
    ) -> M | None:
        """The object with primary key ``id``, or ``None``.

        Args:
            model: The mapped class.
            id: The primary key value (a tuple or dict for composite keys).
            options: Loader options, e.g. ``selectinload(User.orders)``.
            include_deleted: Also return soft-deleted rows.
            session: A caller-owned session to use (never committed).

        Examples:
            >>> # user = await ops.get(User, 42)
        """
        ident = self._check_pk(model, id)
        joined = session is not None or self.async_db._in_scope()
        if joined and not (_is_soft(model) and not include_deleted):
            async with self._session(session, write=False) as s:
                return await s.get(model, ident, options=options)  # identity map first
        stmt = self._pk_select(model, include_deleted)
        if options:
            stmt = stmt.options(*options)
        pk = self._mapper(model).primary_key
        values = ident.values() if isinstance(ident, dict) else ident if len(pk) > 1 else (ident,)
        params = {f"pk_{i}": v for i, v in enumerate(values)}
        async with self._session(session, write=False) as s:
            found: M | None = (await s.execute(stmt, params)).scalars().first()
            return found

    def _row_checker(self, model: Any) -> _bulk.RowChecker:
        checker = self._row_checkers.get(model)
        if checker is None:
            checker = self._row_checkers[model] = _bulk.RowChecker(model)
        return checker

    def _pk_select(self, model: Any, include_deleted: bool) -> Select[Any]:
        """``select(model)`` by primary key with bound parameters, built once per model."""
        key = (model, include_deleted)
        stmt = self._pk_selects.get(key)
        if stmt is None:
            pk = self._mapper(model).primary_key
            stmt = select(model).where(*[c == bindparam(f"pk_{i}") for i, c in enumerate(pk)])
            if _is_soft(model) and not include_deleted:
                stmt = stmt.where(model.deleted_at.is_(None))
            self._pk_selects[key] = stmt
        return stmt

    async def get_one(
        self,
        model: type[M],
        *where: Any,
        options: Sequence[Any] = (),
        include_deleted: bool = False,
        session: AsyncSession | None = None,
        **filters: Any,
    ) -> M:
        """Exactly one object matching the filters.

        Raises:
            RecordNotFoundError: nothing matched.
            MultipleRecordsFoundError: more than one row matched.

        Examples:
            >>> # user = await ops.get_one(User, email="ada@example.com")
        """
        stmt = select(model).where(*self._criteria(model, where, filters, include_deleted))
        stmt = stmt.options(*options).limit(2)
        async with self._session(session, write=False) as s:
            rows = list((await s.execute(stmt)).scalars().all())
        if not rows:
            raise RecordNotFoundError(f"no {model.__name__} matched the filters")
        if len(rows) > 1:
            raise MultipleRecordsFoundError(f"more than one {model.__name__} matched the filters")
        return rows[0]

    async def find(
        self,
        model: type[M],
        *where: Any,
        order_by: Any = None,
        limit: int | None = None,
        offset: int | None = None,
        options: Sequence[Any] = (),
        include_deleted: bool = False,
        session: AsyncSession | None = None,
        **filters: Any,
    ) -> list[M]:
        """Objects matching the filters.

        Args:
            model: The mapped class.
            *where: SQLAlchemy expressions (``or_(...)`` for OR).
            order_by: A column name (``"-name"`` for descending), an expression,
                or a list of them.
            limit: At most this many rows.
            offset: Skip this many rows.
            options: Loader options.
            include_deleted: Include soft-deleted rows.
            session: A caller-owned session.
            **filters: ``field__op=value`` filters.

        Examples:
            >>> # await ops.find(User, or_(User.age < 18, User.age > 65), name__startswith="A",
            >>> #                order_by="-age", limit=10)
        """
        self._check_limit("limit", limit)
        self._check_limit("offset", offset)
        stmt = select(model).where(*self._criteria(model, where, filters, include_deleted))
        stmt = stmt.order_by(*self._order(model, order_by)).options(*options)
        if limit is not None:
            stmt = stmt.limit(limit)
        if offset:
            stmt = stmt.offset(offset)
        async with self._session(session, write=False) as s:
            return list((await s.execute(stmt)).scalars().all())

    async def find_mappings(
        self,
        model: Any,
        *where: Any,
        order_by: Any = None,
        limit: int | None = None,
        offset: int | None = None,
        include_deleted: bool = False,
        session: AsyncSession | None = None,
        **filters: Any,
    ) -> list[dict[str, Any]]:
        """Like `find`, but rows as plain dicts (no ORM objects: faster for large reads).

        Examples:
            >>> # await ops.find_mappings(User, age__gte=18) -> [{"id": 1, "name": "Ada", ...}]
        """
        self._check_limit("limit", limit)
        self._check_limit("offset", offset)
        table = _bulk.table_of(model)
        stmt = select(*table.columns).where(*self._criteria(model, where, filters, include_deleted))
        stmt = stmt.order_by(*self._order(model, order_by))
        if limit is not None:
            stmt = stmt.limit(limit)
        if offset:
            stmt = stmt.offset(offset)
        async with self._connection(session, write=False) as conn:
            result = await conn.execute(stmt)
            keys = list(result.keys())
            return [dict(zip(keys, row, strict=True)) for row in result]

    async def count(
        self,
        model: Any,
        *where: Any,
        include_deleted: bool = False,
        session: AsyncSession | None = None,
        **filters: Any,
    ) -> int:
        """How many rows match the filters.

        Examples:
            >>> # await ops.count(User, age__gte=18) -> 1200
        """
        stmt = select(func.count()).select_from(_bulk.table_of(model))
        stmt = stmt.where(*self._criteria(model, where, filters, include_deleted))
        async with self._connection(session, write=False) as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def exists(
        self,
        model: Any,
        *where: Any,
        include_deleted: bool = False,
        session: AsyncSession | None = None,
        **filters: Any,
    ) -> bool:
        """Whether any row matches the filters (stops at the first match).

        Examples:
            >>> # await ops.exists(User, email="ada@example.com") -> True
        """
        inner = select(literal(1)).select_from(_bulk.table_of(model))
        inner = inner.where(*self._criteria(model, where, filters, include_deleted))
        async with self._connection(session, write=False) as conn:
            return bool((await conn.execute(select(exists(inner)))).scalar())

    # ================================================================== model layer: writes
    async def insert_many(
        self,
        model: Any,
        rows: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
        chunk_size: int | None = None,
        *,
        validate: bool = True,
        session: AsyncSession | None = None,
    ) -> int:
        """Insert many rows given as dicts: the bulk fast path (no ORM objects).

        Rows are consumed in chunks, so a generator or async generator keeps
        memory flat. PostgreSQL uses binary COPY when every row has the same
        keys and all defaults are Python-side; other backends use the driver's
        ``executemany``. All rows are inserted in one transaction (or the
        caller's).

        Args:
            model: The mapped class.
            rows: Dicts of column values (sync or async iterable).
            chunk_size: Rows per round trip (default 10,000).
            validate: Check values against column types (skip for trusted loads).
            session: A caller-owned session.

        Returns:
            The number of rows inserted.

        Examples:
            >>> # await ops.insert_many(User, ({"name": f"u{i}"} for i in range(100_000)))
        """
        table = _bulk.table_of(model)
        checker = self._row_checker(model)
        size = (
            _bulk.chunk_rows_for(self._dialect, 1, chunk_size)
            if chunk_size is not None
            else _bulk.DEFAULT_CHUNK_ROWS
        )
        if isinstance(rows, Sequence) and not isinstance(rows, (str, bytes)) and len(rows) <= size:
            # Small input: check it all first; one statement needs no BEGIN/COMMIT of its own.
            prepared = [checker.prepare(row, validate, i) for i, row in enumerate(rows)]
            groups = _bulk.group_by_keys(prepared)
            single = len(groups) == 1 and (len(prepared) == 1 or self._dialect != "sqlite")
            async with self._connection(session, write=True, single_statement=single) as conn:
                total = await self._insert_chunk(conn, table, prepared)
        else:
            total = 0
            async with self._connection(session, write=True, single_statement=False) as conn:
                index = 0
                async for chunk in _bulk.iter_chunks(rows, size):
                    prepared = [checker.prepare(row, validate, index + i) for i, row in enumerate(chunk)]
                    index += len(chunk)
                    total += await self._insert_chunk(conn, table, prepared)
        logger.debug("dsg_lib: insert_many inserted {} rows into {}", total, table.name)
        return total

    async def _insert_chunk(self, conn: Any, table: Any, prepared: list[dict[str, Any]]) -> int:
        """COPY on PostgreSQL for larger chunks, else one executemany per key set."""
        if (
            self._dialect == "postgresql"
            and len(prepared) >= _bulk.COPY_MIN_ROWS
            and await _bulk.copy_insert(conn, table, prepared)
        ):
            return len(prepared)
        for group in _bulk.group_by_keys(prepared):
            await conn.execute(insert(table), group)
        return len(prepared)

    async def upsert(
        self,
        model: Any,
        rows: Iterable[Mapping[str, Any]],
        conflict: Sequence[str] | str,
        update: Sequence[str] | str | None = None,
        *,
        chunk_size: int | None = None,
        validate: bool = True,
        session: AsyncSession | None = None,
    ) -> int:
        """Insert rows, or update them when ``conflict`` columns match an existing row.

        ``INSERT .. ON CONFLICT`` on PostgreSQL and SQLite, ``ON DUPLICATE KEY
        UPDATE`` on MySQL/MariaDB, chunked under the bind-parameter limit.

        Args:
            model: The mapped class.
            rows: Dicts of column values; each must contain the conflict columns.
            conflict: The unique column(s) that identify a row.
            update: Columns to overwrite on conflict. ``None`` = every given
                non-conflict column; ``()`` = leave existing rows unchanged.
            chunk_size: Rows per statement (capped by the bind limit).
            validate: Check values against column types.
            session: A caller-owned session.

        Returns:
            Rows inserted or updated. With ``update=()`` PostgreSQL and SQLite
            count only inserted rows; MySQL/MariaDB cannot tell skipped rows
            apart and count every row processed.

        Raises:
            InvalidInputError: the same conflict key twice in ``rows``, or bad columns.

        Examples:
            >>> # await ops.upsert(User, [{"email": "a@x", "name": "A"}], conflict="email")
        """
        table = _bulk.table_of(model)
        checker = self._row_checker(model)
        prepared = [checker.prepare(row, validate, i) for i, row in enumerate(_iter_rows(rows))]
        if not prepared:
            return 0
        conflict_cols, update_cols = _bulk.check_upsert_args(model, conflict, update, list(prepared[0]))
        _bulk.check_no_duplicate_keys(prepared, conflict_cols)
        total = 0
        async with self._connection(session, write=True, single_statement=False) as conn:
            for group in _bulk.group_by_keys(prepared):
                size = _bulk.chunk_rows_for(self._dialect, len(group[0]), chunk_size)
                for start in range(0, len(group), size):
                    chunk = group[start : start + size]
                    stmt = _bulk.upsert_statement(self._dialect, table, chunk, conflict_cols, update_cols)
                    result = await conn.execute(stmt)
                    if self._dialect in ("postgresql", "sqlite"):
                        total += len(result.all())
                    else:
                        total += len(chunk)
        return total

    async def update_where(
        self,
        model: Any,
        values: Mapping[str, Any],
        *where: Any,
        all_rows: bool = False,
        validate: bool = True,
        include_deleted: bool = False,
        session: AsyncSession | None = None,
        **filters: Any,
    ) -> int:
        """Set ``values`` on every row matching the filters; returns the rows matched.

        Values may be SQL expressions, e.g. ``{"balance": Account.balance - 10}``.

        Raises:
            InvalidInputError: no filter and ``all_rows`` is not True; bad values.

        Examples:
            >>> # await ops.update_where(User, {"active": False}, last_login__lt=cutoff) -> 17
        """
        if not isinstance(values, Mapping) or not values:
            raise InvalidInputError("update_where needs a non-empty dict of column values")
        # SQL expressions (``Account.balance - 10``) are kept as they are; plain values are checked
        expressions = {k: v for k, v in values.items() if isinstance(v, ClauseElement)}
        plain = {k: v for k, v in values.items() if k not in expressions}
        prepared = self._row_checker(model).prepare(plain, validate, 0)
        unknown = [k for k in expressions if k not in model_columns(model)]
        if unknown:
            raise InvalidInputError(f"{str(unknown[0])[:60]!r} is not a column of {model.__name__}")
        prepared.update(expressions)
        criteria = self._criteria(model, where, filters, include_deleted, validate)
        self._guard(criteria, all_rows, "update_where", model, include_deleted)
        stmt = update(model).where(*criteria).values(**prepared)
        return await self._execute_dml(stmt, session)

    async def delete_where(
        self,
        model: Any,
        *where: Any,
        all_rows: bool = False,
        hard: bool = False,
        session: AsyncSession | None = None,
        **filters: Any,
    ) -> int:
        """Delete every row matching the filters (soft for ``SoftDeleteMixin`` unless ``hard``).

        Raises:
            InvalidInputError: no filter and ``all_rows`` is not True.

        Examples:
            >>> # await ops.delete_where(Session, expires_at__lt=now) -> 3
        """
        criteria = self._criteria(model, where, filters, include_deleted=True)
        self._guard(criteria, all_rows, "delete_where", model, True)
        return await self._delete(model, criteria, hard=hard, session=session)

    async def restore(
        self,
        model: Any,
        *where: Any,
        all_rows: bool = False,
        session: AsyncSession | None = None,
        **filters: Any,
    ) -> int:
        """Undo soft deletes of the matching rows; returns how many were restored.

        Examples:
            >>> # await ops.restore(Doc, id=7) -> 1
        """
        if not _is_soft(model):
            raise InvalidInputError(f"{model.__name__} does not use SoftDeleteMixin")
        criteria = self._criteria(model, where, filters, include_deleted=True)
        self._guard(criteria, all_rows, "restore", model, True)
        stmt = update(model).where(*criteria, model.deleted_at.is_not(None)).values(deleted_at=None)
        return await self._execute_dml(stmt, session)

    @staticmethod
    def _guard(criteria: list[Any], all_rows: bool, name: str, model: Any, include_deleted: bool) -> None:
        user_criteria = criteria if include_deleted or not _is_soft(model) else criteria[:-1]
        if not user_criteria and all_rows is not True:
            raise InvalidInputError(
                f"{name} without a filter would change every row of {model.__name__}; "
                "pass all_rows=True if that is what you want"
            )

    async def _delete(
        self, model: Any, criteria: list[Any], *, hard: bool, session: AsyncSession | None
    ) -> int:
        stmt: Update | Delete
        if _is_soft(model) and not hard:
            stmt = update(model).where(*criteria, model.deleted_at.is_(None)).values(deleted_at=utcnow())
        else:
            stmt = delete(model).where(*criteria)
        return await self._execute_dml(stmt, session)

    async def _execute_dml(self, stmt: Update | Delete, session: AsyncSession | None) -> int:
        if session is not None or self.async_db._in_scope():
            # keep objects already loaded in the joined session in step with the change
            stmt = stmt.execution_options(synchronize_session="fetch")
            async with self._session(session, write=True) as s:
                result = await s.execute(stmt)
        else:
            async with self._connection(None, write=True) as conn:
                result = await conn.execute(stmt)
        return int(max(getattr(result, "rowcount", 0), 0))

    async def get_or_create(
        self,
        model: type[M],
        defaults: Mapping[str, Any] | None = None,
        *,
        session: AsyncSession | None = None,
        **filters: Any,
    ) -> tuple[M, bool]:
        """Return ``(object, False)`` if a row matches ``filters``, else create it: ``(object, True)``.

        Safe under concurrent callers: the insert relies on a unique constraint
        over the filter columns; when another caller wins the race the unique
        violation is caught and the winner's row is returned.

        Args:
            model: The mapped class.
            defaults: Extra column values used only when creating.
            session: A caller-owned session.
            **filters: Equality filters (``field=value``) identifying the row.

        Examples:
            >>> # tag, created = await ops.get_or_create(Tag, name="python")
        """
        if not filters:
            raise InvalidInputError("get_or_create needs at least one field=value filter")
        for key in filters:
            if "__" in key:
                raise InvalidInputError("get_or_create takes equality filters only (field=value)")
        values = self._row_checker(model).prepare({**(defaults or {}), **filters}, True, 0)
        criteria = self._criteria(model, (), filters, include_deleted=False)
        stmt = select(model).where(*criteria).limit(2)

        async def read(s: AsyncSession, locking: bool = False) -> M | None:
            query = (
                stmt.with_for_update(read=True) if locking and self._dialect in ("mysql", "mariadb") else stmt
            )
            found = list((await s.execute(query)).scalars().all())
            if len(found) > 1:
                raise MultipleRecordsFoundError(f"more than one {model.__name__} matched the filters")
            return found[0] if found else None

        async with self._session(session, write=True) as s:
            existing = await read(s)
            if existing is not None:
                return existing, False
            record = model(**values)
            try:
                async with s.begin_nested():
                    s.add(record)
                    await s.flush()
            except (IntegrityError, ConstraintViolationError) as exc:
                winner = await read(s, locking=True)
                if winner is None:
                    raise self.async_db.db_config.translate(exc) from exc
                return winner, False
            await self._load_unloaded(s, [record])
            return record, True

    # ================================================================== pagination & streaming
    async def paginate(
        self,
        query_or_model: Any,
        page: int = 1,
        page_size: int = 100,
        *,
        with_total: bool = True,
        options: Sequence[Any] = (),
        include_deleted: bool = False,
        session: AsyncSession | None = None,
        **filters: Any,
    ) -> Page[Any]:
        """Offset pagination: page ``page`` (1-based) of ``page_size`` rows.

        A model is ordered by its primary key; a ``select()`` keeps its own
        order (give it one for stable pages). The total is a separate
        ``COUNT(*)`` over the filtered query; ``with_total=False`` skips it.

        Examples:
            >>> # page = await ops.paginate(select(User).order_by(User.name), page=3, page_size=20)
            >>> # page.items, page.total, page.pages
        """
        self._check_limit("page", page, 1)
        self._check_limit("page_size", page_size, 1, _MAX_PAGE_SIZE)
        stmt = self._base_select(query_or_model, include_deleted, filters)
        if isinstance(query_or_model, type) and not stmt._order_by_clauses:
            stmt = stmt.order_by(*self._mapper(query_or_model).primary_key)
        stmt = stmt.options(*options) if options else stmt
        async with self._session(session, write=False) as s:
            total: int | None = None
            if with_total:
                counter = select(func.count()).select_from(stmt.order_by(None).subquery())
                total = int((await s.execute(counter)).scalar_one())
            result = await s.execute(stmt.limit(page_size).offset((page - 1) * page_size))
            items = list(result.scalars().all() if _single_column(stmt) else result.all())
        pages = None if total is None else (total + page_size - 1) // page_size
        return Page(items=items, total=total, page=page, page_size=page_size, pages=pages)

    def _base_select(
        self, query_or_model: Any, include_deleted: bool, filters: Mapping[str, Any] | None = None
    ) -> Select[Any]:
        """``select(Model)`` with soft-delete and keyword filters, or a given ``select()`` as is.

        Keyword filters on a ``select()`` apply to its single entity.
        """
        if isinstance(query_or_model, Select):
            if not filters:
                return query_or_model
            return query_or_model.where(
                *build_filters(_entity_of(query_or_model), filters, dialect=self._dialect)
            )
        self._mapper(query_or_model)
        return select(query_or_model).where(
            *self._criteria(query_or_model, (), filters or {}, include_deleted)
        )

    async def paginate_keyset(
        self,
        query_or_model: Any,
        order_by: Any,
        after: str | None = None,
        limit: int = 100,
        *,
        before: str | None = None,
        options: Sequence[Any] = (),
        include_deleted: bool = False,
        session: AsyncSession | None = None,
        **filters: Any,
    ) -> CursorPage[Any]:
        """Keyset (cursor) pagination: constant cost per page, however deep.

        The order is ``order_by`` plus the primary key as a unique tiebreaker.
        Pass ``next_cursor`` back as ``after=`` for the next page, or
        ``prev_cursor`` as ``before=`` for the previous one. Sort columns must
        not be NULL in the rows paged over.

        Args:
            query_or_model: A mapped class or ``select(Model)`` (one entity).
            order_by: Column name(s) (``"-created"`` for descending) or column expressions.
            after: A ``next_cursor`` from the previous page.
            limit: Rows per page.
            before: A ``prev_cursor`` to page backwards.
            options: Loader options.
            include_deleted: Include soft-deleted rows.
            session: A caller-owned session.
            **filters: ``field__op=value`` filters.

        Raises:
            InvalidInputError: malformed, tampered or foreign cursor; NULL sort key.

        Examples:
            >>> # page = await ops.paginate_keyset(User, order_by=["-created", "name"], limit=50)
            >>> # nxt = await ops.paginate_keyset(User, ["-created", "name"], after=page.next_cursor)
        """
        self._check_limit("limit", limit, 1, _MAX_PAGE_SIZE)
        if after is not None and before is not None:
            raise InvalidInputError("pass either after= or before=, not both")
        stmt = self._base_select(query_or_model, include_deleted, filters)
        model = _entity_of(stmt)
        keys = self._keyset_columns(model, order_by)
        fingerprint = hashlib.sha256(
            repr([(model.__tablename__, col.key, desc) for col, desc in keys]).encode()
        ).hexdigest()[:16]
        cursor = after if after is not None else before
        backwards = before is not None
        if cursor is not None:
            values, _direction = self._cursors.decode(cursor, fingerprint)
            if len(values) != len(keys):
                raise InvalidInputError("invalid pagination cursor")
            values = [check_value(col, v, name=col.key) for (col, _), v in zip(keys, values, strict=True)]
            stmt = stmt.where(_keyset_condition(keys, values, backwards))
        ordering = [(col.desc() if desc != backwards else col.asc()) for col, desc in keys]
        stmt = stmt.order_by(None).order_by(*ordering).limit(limit + 1)
        stmt = stmt.options(*options) if options else stmt
        async with self._session(session, write=False) as s:
            items = list((await s.execute(stmt)).scalars().all())
        more = len(items) > limit
        items = items[:limit]
        if backwards:
            items.reverse()

        def cursor_for(item: Any, direction: str) -> str:
            row_values = [getattr(item, col.key) for col, _ in keys]
            if any(v is None for v in row_values):
                raise InvalidInputError("keyset pagination needs non-NULL values in every sort column")
            return self._cursors.encode(fingerprint, row_values, direction)

        next_cursor = prev_cursor = None
        if items:
            has_later = backwards or more  # coming back from a later page, or more ahead
            has_earlier = more if backwards else cursor is not None
            next_cursor = cursor_for(items[-1], "next") if has_later else None
            prev_cursor = cursor_for(items[0], "prev") if has_earlier else None
        return CursorPage(items=items, next_cursor=next_cursor, prev_cursor=prev_cursor)

    def _keyset_columns(self, model: Any, order_by: Any) -> list[tuple[Any, bool]]:
        items = order_by if isinstance(order_by, (list, tuple)) else [order_by]
        if not items or items == [None]:
            raise InvalidInputError("paginate_keyset needs order_by")
        columns = model_columns(model)
        keys: list[tuple[Any, bool]] = []
        for item in items:
            if isinstance(item, str):
                name = item.lstrip("-")
                if name not in columns:
                    raise InvalidInputError(
                        f"cannot order by {name[:60]!r}: not a column of {model.__name__}"
                    )
                keys.append((getattr(model, name), item.startswith("-")))
            elif isinstance(item, UnaryExpression) and item.element is not None:
                element = item.element
                descending = getattr(item.modifier, "__name__", "") == "desc_op"
                keys.append((_column_attr(model, element), descending))
            else:
                keys.append((_column_attr(model, item), False))
        for pk in self._mapper(model).primary_key:
            if all(getattr(col, "key", None) != pk.key for col, _ in keys):
                keys.append((getattr(model, str(pk.key)), keys[-1][1]))
        return keys

    async def stream(
        self,
        query: Any,
        batch_size: int = 1000,
        *,
        options: Sequence[Any] = (),
        include_deleted: bool = False,
        session: AsyncSession | None = None,
        **filters: Any,
    ) -> AsyncIterator[Any]:
        """Iterate a large result without loading it into memory.

        PostgreSQL and MySQL/MariaDB use a server-side cursor; SQLite fetches
        in batches. Objects for one-entity queries, ``Row`` tuples otherwise.
        Close it early with ``contextlib.aclosing`` so the connection returns
        to the pool at once. On MySQL/MariaDB no other statement may run on the
        same connection while the stream is open (use another session).

        Args:
            query: A ``select()`` or a mapped class.
            batch_size: Rows fetched per round trip.
            options: Loader options.
            include_deleted: Include soft-deleted rows (for a mapped class).
            session: A caller-owned session.
            **filters: ``field__op=value`` filters.

        Examples:
            >>> # async for user in ops.stream(select(User), batch_size=5000):
            >>> #     handle(user)
        """
        self._check_limit("batch_size", batch_size, 1, 1_000_000)
        stmt = self._base_select(query, include_deleted, filters)
        stmt = stmt.options(*options) if options else stmt
        single = _single_column(stmt)
        stmt = stmt.execution_options(yield_per=batch_size, stream_results=True)
        # server-side cursors live inside a transaction (PostgreSQL requires one)
        async with self._session(session, write=False, autocommit_read=False) as s:
            result = await s.stream(stmt)
            try:
                iterator = result.scalars() if single else result
                async for partition in iterator.partitions(batch_size):
                    for item in partition:
                        yield item
            finally:
                await result.close()


# ====================================================================== module helpers
def _is_soft(model: Any) -> bool:
    return isinstance(model, type) and issubclass(model, SoftDeleteMixin)


def _require_select(query: Any) -> None:
    if not isinstance(query, Select):
        raise InvalidInputError(f"expected a select() statement, got {type(query).__name__}")


def _as_statement(query: Any) -> Executable:
    if isinstance(query, str):
        return text(query)
    if not isinstance(query, Executable):
        raise InvalidInputError(f"expected a SQLAlchemy statement or SQL text, got {type(query).__name__}")
    return query


def _single_column(query: Any) -> bool:
    return isinstance(query, Select) and len(query.column_descriptions) == 1


def _entity_of(stmt: Select[Any]) -> Any:
    descriptions = stmt.column_descriptions
    entity = descriptions[0].get("entity") if len(descriptions) == 1 else None
    if entity is None or descriptions[0].get("type") is not entity:
        raise InvalidInputError("paginate_keyset takes a mapped class or select(Model) of one entity")
    return entity


def _column_attr(model: Any, element: Any) -> Any:
    key = getattr(element, "key", None)
    if key is None or key not in model_columns(model):
        raise InvalidInputError(f"cannot order by {element!r}: not a column of {model.__name__}"[:200])
    return getattr(model, key)


def _keyset_condition(keys: list[tuple[Any, bool]], values: list[Any], backwards: bool) -> Any:
    """Rows strictly after (or before) ``values`` in the mixed-direction key order."""
    alternatives = []
    for i, (col, desc) in enumerate(keys):
        forward_greater = not desc
        greater = forward_greater != backwards
        compare = col > values[i] if greater else col < values[i]
        equal_prefix = [keys[j][0] == values[j] for j in range(i)]
        alternatives.append(and_(*equal_prefix, compare))
    return or_(*alternatives)


def _iter_rows(rows: Any) -> Iterable[Any]:
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Iterable):
        raise InvalidInputError("rows must be an iterable of dicts")
    return rows


def _result_info(result: Any, return_metadata: bool) -> Any:
    rowcount = max(getattr(result, "rowcount", -1) or 0, 0)
    if not return_metadata:
        return rowcount
    info: dict[str, Any] = {"rowcount": rowcount}
    try:
        if result.returns_rows:
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
