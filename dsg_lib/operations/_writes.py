"""Model-level writes of ``DatabaseOperations`` (private module)."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from typing import Any

from loguru import logger
from sqlalchemy import (
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ClauseElement

from ..errors import ConstraintViolationError, InvalidInputError, MultipleRecordsFoundError
from ..filters import model_columns
from . import _bulk
from ._base import M, OperationsBase, is_soft
from ._versions import versioned_update


class WriteOperations(OperationsBase):
    """Model-level writes of ``DatabaseOperations``."""

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
            >>> rows = ({"name": f"user {i}", "email": f"u{i}@example.com"} for i in range(1000))
            >>> run(ops.insert_many(User, rows, chunk_size=250))
            1000
        """
        mapper = self._mapper(model)
        checker = self._row_checker(model)
        size = (
            _bulk.chunk_rows_for(self._backend, 1, chunk_size)
            if chunk_size is not None
            else _bulk.DEFAULT_CHUNK_ROWS
        )
        if mapper.inherits is not None or mapper.polymorphic_on is not None:
            # inheritance: SQLAlchemy's ORM bulk INSERT fills the discriminator and writes the
            # rows of every table of a joined subclass, as by hand
            total = 0
            async with self._session(session, write=True) as s:
                index = 0
                async for chunk in _bulk.iter_chunks(rows, size):
                    prepared = [checker.prepare(row, validate, index + i) for i, row in enumerate(chunk)]
                    index += len(chunk)
                    await s.execute(insert(model), prepared)
                    total += len(prepared)
            return total
        table = _bulk.table_of(model)
        if isinstance(rows, Sequence) and not isinstance(rows, (str, bytes)) and len(rows) <= size:
            # Small input: check it all first; one statement needs no BEGIN/COMMIT of its own.
            # (sqlite3 and PyMySQL run executemany as several statements: atomic only in a
            # transaction; asyncpg's executemany is atomic by itself.)
            groups = checker.prepare_groups(list(rows), validate)
            single = len(groups) == 1 and (len(groups[0]) == 1 or self._backend.atomic_executemany)
            async with self._connection(session, write=True, single_statement=single) as conn:
                total = await self._insert_chunk(conn, table, groups, checker, validate)
        else:
            total = 0
            async with self._connection(session, write=True, single_statement=False) as conn:
                index = 0
                async for chunk in _bulk.iter_chunks(rows, size):
                    groups = checker.prepare_groups(chunk, validate, index)
                    index += len(chunk)
                    total += await self._insert_chunk(conn, table, groups, checker, validate)
        logger.debug("dsg_lib: insert_many inserted {} rows into {}", total, table.name)
        return total

    async def _insert_chunk(
        self,
        conn: Any,
        table: Any,
        groups: list[list[dict[str, Any]]],
        checker: _bulk.RowChecker,
        validate: bool,
    ) -> int:
        """COPY on PostgreSQL for a larger chunk of one key set, else one executemany per key set."""
        count = sum(map(len, groups))
        if (
            self._backend.copy
            and len(groups) == 1
            and count >= _bulk.COPY_MIN_ROWS
            and await _bulk.copy_insert(conn, table, checker.by_column_key(groups[0]))
        ):
            return count
        for group in groups:
            options = checker.insert_options(group, validate)
            await conn.execute(insert(table), checker.by_column_key(group), execution_options=options)
        return count

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
            >>> run(ops.upsert(User, [
            ...     {"email": "ada@example.com", "name": "Ada Lovelace"},
            ...     {"email": "kay@example.com", "name": "Kay"},
            ... ], conflict="email"))
            2
            >>> run(ops.get(User, 1)).name
            'Ada Lovelace'
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
            max_bytes = await _bulk.packet_budget(conn)
            for group in _bulk.group_by_keys(prepared):

                def build(rows: list[dict[str, Any]]) -> Any:
                    return self._backend.upsert_statement(table, rows, conflict_cols, update_cols)

                # size by the parameters the statement really binds (Python-side defaults add
                # one per row) and, on MySQL/MariaDB, by bytes under max_allowed_packet
                per_row, fixed = _bulk.params_per_row(conn, build, group[0])
                size = _bulk.chunk_rows_for(self._backend, per_row, chunk_size, fixed)
                for chunk in _bulk.sized_chunks(group, size, max_bytes):
                    result = await conn.execute(build(list(chunk)))
                    if self._backend.returning:
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
        expected_version: Any = None,
        session: AsyncSession | None = None,
        **filters: Any,
    ) -> int:
        """Set ``values`` on every row matching the filters; returns the rows matched.

        Values may be SQL expressions, e.g. ``{"balance": Account.balance - 10}``.
        ``expected_version`` (a model with ``version_id_col``): every matching row
        must be at that version; they all move to the next one, or nothing changes.

        Raises:
            InvalidInputError: no filter and ``all_rows`` is not True; bad values.
            StaleRecordError: with ``expected_version``, a matching row is at another version.

        Examples:
            >>> run(ops.update_where(User, {"age": User.age + 1}, age__is_null=False))
            2
            >>> try:
            ...     run(ops.update_where(User, {"age": 0}))  # no filter: refused
            ... except InvalidInputError as err:
            ...     print(type(err).__name__)
            InvalidInputError
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
        if expected_version is not None:  # optimistic locking (private module _versions)
            return await versioned_update(self, model, criteria, prepared, expected_version, session)
        if not (where or expressions) and validate and plain:
            matched = await self._compiled_point_write(model, filters, include_deleted, prepared, session)
            if matched is not None:
                return matched
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
            >>> run(ops.delete_where(User, age__is_null=True))
            1
            >>> run(ops.count(User))
            2
        """
        criteria = self._criteria(model, where, filters, include_deleted=True)
        self._guard(criteria, all_rows, "delete_where", model, True)
        if not where and (hard or not is_soft(model)):
            deleted = await self._compiled_point_write(model, filters, True, None, session)
            if deleted is not None:
                return deleted
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
            >>> run(ops.delete_where(Note, id=1))  # soft: sets deleted_at
            1
            >>> run(ops.count(Note))
            1
            >>> run(ops.restore(Note, id=1))
            1
            >>> run(ops.count(Note))
            2
        """
        if not is_soft(model):
            raise InvalidInputError(f"{model.__name__} does not use SoftDeleteMixin")
        criteria = self._criteria(model, where, filters, include_deleted=True)
        self._guard(criteria, all_rows, "restore", model, True)
        stmt = update(model).where(*criteria, model.deleted_at.is_not(None)).values(deleted_at=None)
        return await self._execute_dml(stmt, session)

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
            >>> kay = {"name": "Kay"}
            >>> user, created = run(ops.get_or_create(User, email="kay@example.com", defaults=kay))
            >>> (user.name, created)
            ('Kay', True)
            >>> run(ops.get_or_create(User, email="kay@example.com"))[1]
            False
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
                stmt.with_for_update(read=True) if locking and self._backend.lock_read_for_update else stmt
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
                    error = self.async_db.db_config.translate(exc)
                    raise error from error.__cause__
                return winner, False
            await self._load_unloaded(s, [record])
            return record, True


def _iter_rows(rows: Any) -> Iterable[Any]:
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Iterable):
        raise InvalidInputError("rows must be an iterable of dicts")
    return rows
