"""Shared state and helpers of ``DatabaseOperations`` (private)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Delete,
    Executable,
    Select,
    Update,
    and_,
    bindparam,
    delete,
    insert,
    inspect,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm.attributes import instance_dict
from sqlalchemy.sql.elements import ClauseElement

from ..backends import compiled
from ..database import AsyncDatabase
from ..errors import InvalidInputError
from ..filters import Q, build_filters, check_value, is_json, mapper_of, model_columns, order_terms
from ..pagination import CursorCodec
from ..schema import SoftDeleteMixin, utcnow
from . import _bulk
from ._executor import Executor

M = TypeVar("M")
T = TypeVar("T")
MAX_PAGE_SIZE = 10_000


class OperationsBase:
    """The database, caches and helpers every group of operations uses."""

    def __init__(self, async_db: AsyncDatabase) -> None:
        if not isinstance(async_db, AsyncDatabase):
            raise InvalidInputError(
                f"DatabaseOperations needs an AsyncDatabase, got {type(async_db).__name__}"
            )
        self.async_db = async_db
        self._dialect = async_db.db_config.dialect
        #: what differs by database (``dsg_lib.backends``)
        self._backend = async_db.db_config.backend
        self._pk_selects: dict[tuple[Any, bool], Select[Any]] = {}
        self._row_checkers: dict[Any, _bulk.RowChecker] = {}
        self._executor = Executor(async_db)
        secret = async_db.db_config.option("cursor_secret")
        self._cursors = CursorCodec(secret.encode() if isinstance(secret, str) else secret)

    def _connection(
        self, session: AsyncSession | None, *, write: bool, single_statement: bool = True
    ) -> AbstractAsyncContextManager[AsyncConnection]:
        return self.async_db.acquire.connection(session, write=write, single_statement=single_statement)

    def _session(
        self,
        session: AsyncSession | None,
        *,
        write: bool,
        single_statement: bool = False,
        autocommit: bool = True,
    ) -> AbstractAsyncContextManager[AsyncSession]:
        return self.async_db.acquire.session(
            session, write=write, single_statement=single_statement, autocommit=autocommit
        )

    async def _compiled_create(self, record: Any) -> bool:
        """INSERT .. RETURNING ``record`` as one compiled statement, if the executor allows
        (see ``_executor``); False: nothing was sent, use the ORM."""
        model = type(record)
        loader = self._executor.compiled_loader(model, None)
        if loader is None or not inspect(record).transient:
            return False
        dialect = self.async_db.db_config.engine.dialect
        if not dialect.insert_returning or loader.mapper.version_id_col is not None:
            return False  # SQLite < 3.35; a version counter is the ORM's
        found = compiled.insert_values(loader, record)
        if found is None:
            return False
        values, computed = found
        returned = compiled.returned_columns(loader, values)
        compiled_stmt = None
        if returned is not None:
            table: Any = loader.mapper.local_table
            compiled_stmt = self._executor.compiled_statement(
                ("create", model, tuple(values)),
                lambda: (
                    insert(table)
                    .values({k: bindparam(k, type_=table.c[k].type) for k in values})
                    .returning(*(returned or (literal_column("1"),)))
                ),
            )
        written = None if compiled_stmt is None else await self._executor.write(compiled_stmt, values)
        if written is None:
            # not sent: the ORM inserts it, with the defaults already computed (they run once)
            for key, value in computed.items():
                setattr(record, key, value)
            return False
        instance_dict(record).update(computed)
        rows = written[0]
        compiled.detach_created(loader, record, returned or (), rows[0] if rows else ())
        return True

    async def _compiled_point_write(
        self,
        model: Any,
        filters: Mapping[str, Any],
        include_deleted: bool,
        values: Mapping[str, Any] | None,
        session: AsyncSession | None,
    ) -> int | None:
        """UPDATE (``values``) or DELETE of the row whose whole primary key is in ``filters``, as one
        compiled statement if the executor allows; the rows matched, or None: use SQLAlchemy.

        ``RETURNING`` counts the rows in the same call where the dialect has it (MySQL/MariaDB
        report rows matched); the primary key bounds them to one.
        """
        loader = self._executor.compiled_loader(model, session)
        if loader is None:
            return None
        dialect = self.async_db.db_config.engine.dialect
        returning = dialect.update_returning if values else dialect.delete_returning
        columns = model_columns(model)
        pk_keys = {loader.mapper.get_property_by_column(c).key for c in loader.mapper.primary_key}
        if not pk_keys <= set(filters) or any(k not in columns for k in values or ()):
            return None
        table: Any = loader.mapper.local_table

        def build(loader: compiled.Loader, where: list[Any]) -> Any:  # runs once per compiled statement
            sets = {columns[k].key: bindparam(f"v_{k}", type_=columns[k].type) for k in values or ()}
            stmt = (update(table).values(sets) if values else delete(table)).where(*where)
            return stmt.returning(literal_column("1")) if returning else stmt

        kind = ("update", tuple(values)) if values else "delete"
        found = self._compiled_read(kind, model, filters, include_deleted, session, build)
        if found is None:
            return None
        compiled_stmt, params, _ = found
        params.update({f"v_{k}": v for k, v in (values or {}).items()})
        written = await self._executor.write(compiled_stmt, params)
        return None if written is None else written[1]

    def _compiled_read(
        self,
        kind: Any,
        model: Any,
        filters: Mapping[str, Any],
        include_deleted: bool,
        session: AsyncSession | None,
        build: Callable[[compiled.Loader, list[Any]], Any],
    ) -> tuple[compiled.CompiledStatement, dict[str, Any], compiled.Loader] | None:
        """The compiled statement, bound values and loader of work on ``model`` filtered by
        ``field=value`` only, if the executor allows it now; else None (use SQLAlchemy)."""
        loader = self._executor.compiled_loader(model, session)
        if loader is None:
            return None
        params = self._equality(model, filters)
        if params is None:
            return None
        compiled_stmt = self._executor.compiled_statement(
            (kind, model, include_deleted, tuple(filters)),
            lambda: build(loader, self._equality_where(model, filters, include_deleted)),
        )
        return None if compiled_stmt is None else (compiled_stmt, params, loader)

    def _equality(self, model: Any, filters: Mapping[str, Any]) -> dict[str, Any] | None:
        """Checked values of ``field=value`` filters (no operators, no None, no JSON), else None.

        None leaves the filters to `build_filters`, which also gives the typed errors.
        """
        if not isinstance(model, type):
            return None
        columns = model_columns(model)
        values: dict[str, Any] = {}
        for key, value in filters.items():
            column = columns.get(key) if isinstance(key, str) else None
            if column is None or value is None or is_json(column):
                return None
            values[f"f_{key}"] = check_value(column, value, name=key, dialect=self._dialect)
        return values

    def _equality_where(self, model: Any, keys: Iterable[str], include_deleted: bool) -> list[Any]:
        """The WHERE of `_equality` filters, as bound parameters (compiled once per key set)."""
        columns = model_columns(model)
        clauses: list[Any] = [columns[k] == bindparam(f"f_{k}", type_=columns[k].type) for k in keys]
        if not include_deleted and is_soft(model):
            clauses.append(model.deleted_at.is_(None))
        return clauses

    def _read(
        self, session: AsyncSession | None, fn: Callable[[Any], Awaitable[T]], *, orm: bool = False
    ) -> Awaitable[T]:
        """Run a read (``fn(conn)``; ``fn(session)`` with ``orm``), retried once on a dead connection."""
        return self.async_db.acquire.read(fn, session, orm=orm)

    _mapper = staticmethod(mapper_of)

    def _criteria(
        self,
        model: Any,
        where: Sequence[Any],
        filters: Mapping[str, Any],
        include_deleted: bool,
        validate: bool = True,
    ) -> list[ColumnElement[bool]]:
        self._mapper(model)
        clauses: list[ColumnElement[bool]] = []
        for expression in where:
            if isinstance(expression, Q):  # a filter group: AND / OR / NOT of field__op filters
                grouped = expression.resolve(model, dialect=self._dialect, validate=validate)
                if grouped is not None:
                    clauses.append(grouped)
                continue
            if not isinstance(expression, ColumnElement):
                raise InvalidInputError(
                    f"positional filters must be SQLAlchemy expressions, got {type(expression).__name__}; "
                    "use keyword filters (field__op=value) for plain values"
                )
            clauses.append(expression)
        clauses.extend(build_filters(model, filters, validate=validate, dialect=self._dialect))
        if not include_deleted and is_soft(model):
            clauses.append(model.deleted_at.is_(None))
        return clauses

    def _order(self, model: Any, order_by: Any) -> list[Any]:
        return [] if order_by is None else [clause for clause, _, _ in order_terms(model, order_by)]

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
        if record_id is None:  # a lookup by a missing key, not a NOT NULL violation
            raise InvalidInputError(f"{model.__name__}: a primary key value cannot be None")
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

    def _pk_params(self, model: Any, ident: Any) -> dict[str, Any]:
        """The bound values of `_pk_select` for a checked primary key ``ident``."""
        pk = self._mapper(model).primary_key
        values = ident.values() if isinstance(ident, dict) else ident if len(pk) > 1 else (ident,)
        return {f"pk_{i}": v for i, v in enumerate(values)}

    def _pk_clause(self, model: Any, record_id: Any) -> ColumnElement[bool]:
        pk = self._mapper(model).primary_key
        value = self._check_pk(model, record_id)
        if len(pk) == 1:
            return cast(ColumnElement[bool], pk[0] == value)
        values = value.values() if isinstance(value, dict) else value
        return and_(*[c == v for c, v in zip(pk, values, strict=True)])

    @staticmethod
    async def _load_unloaded(session: AsyncSession, records: Iterable[Any]) -> None:
        """Load the column attributes a flush left unloaded (server-generated values), so objects
        are usable after the session closes; the values the caller gave stay as given, as by hand."""
        for record in records:
            state = inspect(record)
            columns = state.mapper.column_attrs
            names = [key for key in state.expired_attributes | state.unloaded if key in columns]
            if names:
                await session.refresh(record, attribute_names=names)

    def _check_instance(self, record: Any) -> None:
        state = inspect(record, raiseerr=False)
        if state is None or not hasattr(state, "mapper"):
            raise InvalidInputError(f"expected an instance of a mapped model, got {type(record).__name__}")
        columns = model_columns(type(record))
        for key, column in columns.items():
            if key in state.dict:
                value = state.dict[key]
                if isinstance(value, ClauseElement):  # a SQL expression: the ORM runs it in the INSERT
                    continue
                checked = check_value(column, value, name=key, dialect=self._dialect)
                if checked is not value:  # store what every other path stores (UTC, UUID, SQL NULL)
                    setattr(record, key, checked)

    def _row_checker(self, model: Any) -> _bulk.RowChecker:
        checker = self._row_checkers.get(model) if isinstance(model, type) else None
        if checker is None:
            self._mapper(model)
            checker = self._row_checkers[model] = _bulk.RowChecker(model, self._dialect)
        return checker

    def _pk_select(self, model: Any, include_deleted: bool) -> Select[Any]:
        """``select(model)`` by primary key with bound parameters, built once per model."""
        key = (model, include_deleted)
        stmt = self._pk_selects.get(key)
        if stmt is None:
            pk = self._mapper(model).primary_key
            stmt = select(model).where(*[c == bindparam(f"pk_{i}") for i, c in enumerate(pk)])
            if is_soft(model) and not include_deleted:
                stmt = stmt.where(model.deleted_at.is_(None))
            self._pk_selects[key] = stmt
        return stmt

    def _base_select(
        self,
        query_or_model: Any,
        include_deleted: bool,
        filters: Mapping[str, Any] | None = None,
        where: Sequence[Any] = (),
    ) -> Select[Any]:
        """``select(Model)`` with soft-delete and keyword filters, or a given ``select()`` as is.

        Keyword filters and ``Q`` groups on a ``select()`` apply to its single entity.
        """
        if isinstance(query_or_model, Select):
            if not filters and not where:
                return query_or_model
            entity = entity_of(query_or_model)
            return query_or_model.where(*self._criteria(entity, where, filters or {}, include_deleted=True))
        self._mapper(query_or_model)
        return select(query_or_model).where(
            *self._criteria(query_or_model, where, filters or {}, include_deleted)
        )

    @staticmethod
    def _guard(criteria: list[Any], all_rows: bool, name: str, model: Any, include_deleted: bool) -> None:
        user_criteria = criteria if include_deleted or not is_soft(model) else criteria[:-1]
        if not user_criteria and all_rows is not True:
            raise InvalidInputError(
                f"{name} without a filter would change every row of {model.__name__}; "
                "pass all_rows=True if that is what you want"
            )

    async def _count(self, counter: Select[Any], session: AsyncSession | None) -> int:
        """Run a ``SELECT count(*)`` statement: the one count behind ``count`` and ``count_query``."""

        async def run(s: AsyncSession) -> int:
            return int((await s.execute(counter)).scalar_one())

        return await self._read(session, run, orm=True)

    async def _fetch_all(self, stmt: Executable, session: AsyncSession | None) -> list[Any]:
        """Every row of a read: objects / scalars for one entity or column, ``Row`` tuples otherwise.

        The one fetch behind ``find`` and ``read_query``.
        """

        async def run(s: AsyncSession) -> list[Any]:
            result = await s.execute(stmt)
            return list(result.scalars().all() if single_column(stmt) else result.all())

        return await self._read(session, run, orm=True)

    async def _delete(
        self, model: Any, criteria: list[Any], *, hard: bool, session: AsyncSession | None
    ) -> int:
        stmt: Update | Delete
        if is_soft(model) and not hard:
            stmt = update(model).where(*criteria, model.deleted_at.is_(None)).values(deleted_at=utcnow())
        else:
            stmt = delete(model).where(*criteria)
        return await self._execute_dml(stmt, session)

    async def _execute_dml(self, stmt: Update | Delete, session: AsyncSession | None) -> int:
        if session is not None or self.async_db.acquire.in_transaction():
            # keep objects already loaded in the joined session in step with the change
            stmt = stmt.execution_options(synchronize_session="fetch")
            async with self._session(session, write=True) as s:
                result = await s.execute(stmt)
        else:
            async with self._connection(None, write=True) as conn:
                result = await conn.execute(stmt)
        return int(max(getattr(result, "rowcount", 0), 0))


def is_soft(model: Any) -> bool:
    return isinstance(model, type) and issubclass(model, SoftDeleteMixin)


def require_select(query: Any) -> None:
    if not isinstance(query, Select):
        raise InvalidInputError(f"expected a select() statement, got {type(query).__name__}")


def as_statement(query: Any) -> Executable:
    if isinstance(query, str):
        return text(query)
    if not isinstance(query, Executable):
        raise InvalidInputError(f"expected a SQLAlchemy statement or SQL text, got {type(query).__name__}")
    return query


def single_column(query: Any) -> bool:
    return isinstance(query, Select) and len(query.column_descriptions) == 1


def entity_of(stmt: Select[Any]) -> Any:
    descriptions = stmt.column_descriptions
    entity = descriptions[0].get("entity") if len(descriptions) == 1 else None
    if entity is None or descriptions[0].get("type") is not entity:
        raise InvalidInputError("paginate_keyset takes a mapped class or select(Model) of one entity")
    return entity
