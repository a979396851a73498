"""Pagination and streaming of ``DatabaseOperations`` (private module)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import (
    Integer,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from ..backends import compiled
from ..errors import InvalidInputError
from ..filters import check_value, order_terms, where_list
from ..pagination import CursorPage, Page, query_fingerprint
from ._base import MAX_PAGE_SIZE, OperationsBase, entity_of, single_column
from ._schemas import to_schemas


class PagingOperations(OperationsBase):
    """Pagination and streaming of ``DatabaseOperations``."""

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
        where: Any = (),
        as_: Any = None,
        **filters: Any,
    ) -> Page[Any]:
        """Offset pagination: page ``page`` (1-based) of ``page_size`` rows.

        A model is ordered by its primary key; a ``select()`` keeps its own
        order (give it one for stable pages). The total is a separate
        ``COUNT(*)`` over the filtered query; ``with_total=False`` skips it.
        ``where=`` takes a ``Q`` filter group or SQLAlchemy expression (or a list).
        ``as_=Schema`` (a Pydantic model class) returns the items as its instances.

        Examples:
            >>> page = run(ops.paginate(User, page=2, page_size=2))
            >>> (page.total, page.pages, [u.name for u in page.items])
            (3, 2, ['Grace'])
        """
        self._check_limit("page", page, 1)
        self._check_limit("page_size", page_size, 1, MAX_PAGE_SIZE)
        if as_ is not None:
            found = await self.paginate(
                query_or_model,
                page,
                page_size,
                with_total=with_total,
                options=options,
                include_deleted=include_deleted,
                session=session,
                where=where,
                **filters,
            )
            return replace(found, items=to_schemas(as_, list(found.items)))
        conditions = where_list(where)
        if isinstance(query_or_model, type) and not options and not conditions:
            fast = await self._compiled_page(
                query_or_model, page, page_size, with_total, include_deleted, filters, session
            )
            if fast is not None:
                return fast
        stmt = self._base_select(query_or_model, include_deleted, filters, conditions)
        if isinstance(query_or_model, type):  # a model: stable pages by primary key
            stmt = stmt.order_by(*self._mapper(query_or_model).primary_key)
        stmt = stmt.options(*options) if options else stmt
        # the count and the rows from one read snapshot (see Acquirer.session)
        async with self.async_db.acquire.session(session, write=False, snapshot=with_total) as s:
            total: int | None = None
            if with_total:
                counter = select(func.count()).select_from(stmt.order_by(None).subquery())
                total = int((await s.execute(counter)).scalar_one())
            result = await s.execute(stmt.limit(page_size).offset((page - 1) * page_size))
            items = list(result.scalars().all() if single_column(stmt) else result.all())
        pages = None if total is None else (total + page_size - 1) // page_size
        return Page(items=items, total=total, page=page, page_size=page_size, pages=pages)

    async def _compiled_page(
        self,
        model: Any,
        page: int,
        page_size: int,
        with_total: bool,
        include_deleted: bool,
        filters: dict[str, Any],
        session: AsyncSession | None,
    ) -> Page[Any] | None:
        """`paginate` of a model by ``field=value`` filters as one or two compiled statements,
        if the executor allows (see ``_executor``); None: use SQLAlchemy."""
        rows_statement = self._compiled_read(
            "page",
            model,
            filters,
            include_deleted,
            session,
            lambda ld, w: (
                select(*ld.columns)
                .where(*w)
                .order_by(*ld.mapper.primary_key)
                .limit(bindparam("p_limit", type_=Integer))
                .offset(bindparam("p_offset", type_=Integer))
            ),
        )
        count_statement = self._compiled_read(
            "page_count",
            model,
            filters,
            include_deleted,
            session,
            lambda ld, w: select(func.count()).select_from(ld.mapper.local_table).where(*w),
        )
        if rows_statement is None or count_statement is None:
            return None
        compiled_stmt, params, loader = rows_statement
        total: int | None = None
        async with self.async_db.acquire.connection(None, write=False, snapshot=with_total) as conn:
            if with_total:
                total = int((await compiled.fetch(conn, count_statement[0], count_statement[1]))[0][0])
            rows = await compiled.fetch(
                conn, compiled_stmt, {**params, "p_limit": page_size, "p_offset": (page - 1) * page_size}
            )
        pages = None if total is None else (total + page_size - 1) // page_size
        return Page(items=loader.build(rows), total=total, page=page, page_size=page_size, pages=pages)

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
        where: Any = (),
        as_: Any = None,
        **filters: Any,
    ) -> CursorPage[Any]:
        """Keyset (cursor) pagination: constant cost per page, however deep.

        The order is ``order_by`` plus the primary key as a unique tiebreaker.
        Pass ``next_cursor`` back as ``after=`` for the next page, or
        ``prev_cursor`` as ``before=`` for the previous one. NULLs in a
        nullable sort column come first ascending and last descending, on every
        backend, so no row is skipped in either direction.

        Args:
            query_or_model: A mapped class or ``select(Model)`` (one entity).
            order_by: Column name(s) (``"-created"`` for descending), column
                attributes (``Model.name``) or ``Model.name.desc()``, or a list.
            after: A ``next_cursor`` from the previous page.
            limit: Rows per page.
            before: A ``prev_cursor`` to page backwards.
            options: Loader options.
            include_deleted: Include soft-deleted rows.
            session: A caller-owned session.
            where: A ``Q`` filter group or SQLAlchemy expression, or a list of them.
            as_: A Pydantic model class: the items as its instances.
            **filters: ``field__op=value`` filters.

        Raises:
            InvalidInputError: malformed, tampered or foreign cursor; a sort key that is
                not a column of the model.

        Examples:
            >>> first = run(ops.paginate_keyset(User, order_by="name", limit=2))
            >>> [u.name for u in first.items]
            ['Ada', 'Alan']
            >>> last = run(ops.paginate_keyset(User, order_by="name", after=first.next_cursor, limit=2))
            >>> ([u.name for u in last.items], last.next_cursor)
            (['Grace'], None)
        """
        self._check_limit("limit", limit, 1, MAX_PAGE_SIZE)
        if after is not None and before is not None:
            raise InvalidInputError("pass either after= or before=, not both")
        stmt = self._base_select(query_or_model, include_deleted, filters, where_list(where))
        model = entity_of(stmt)
        keys = self._keyset_columns(model, order_by)
        fingerprint = query_fingerprint(stmt, [(model.__tablename__, col.key, desc) for col, desc in keys])
        cursor = after if after is not None else before
        backwards = before is not None
        if cursor is not None:
            values, _direction = self._cursors.decode(cursor, fingerprint)
            if len(values) != len(keys):
                raise InvalidInputError("invalid pagination cursor")
            values = [check_value(col, v, name=col.key) for (col, _), v in zip(keys, values, strict=True)]
            stmt = stmt.where(_keyset_condition(keys, values, backwards))
        stmt = stmt.order_by(None).order_by(*_keyset_order(keys, backwards)).limit(limit + 1)
        stmt = stmt.options(*options) if options else stmt
        async with self._session(session, write=False) as s:
            items = list((await s.execute(stmt)).scalars().all())
        more = len(items) > limit
        items = items[:limit]
        if backwards:
            items.reverse()

        def cursor_for(item: Any, direction: str) -> str:
            row_values = [getattr(item, col.key) for col, _ in keys]
            return self._cursors.encode(fingerprint, row_values, direction)

        next_cursor = prev_cursor = None
        if items:
            has_later = backwards or more  # coming back from a later page, or more ahead
            has_earlier = more if backwards else cursor is not None
            next_cursor = cursor_for(items[-1], "next") if has_later else None
            prev_cursor = cursor_for(items[0], "prev") if has_earlier else None
        if as_ is not None:  # after the cursors: they are read from the objects
            items = to_schemas(as_, items)
        return CursorPage(items=items, next_cursor=next_cursor, prev_cursor=prev_cursor)

    def _keyset_columns(self, model: Any, order_by: Any) -> list[tuple[Any, bool]]:
        items = list(order_by) if isinstance(order_by, (list, tuple)) else [order_by]
        if not items or any(item is None for item in items):
            raise InvalidInputError("paginate_keyset needs order_by")
        keys: list[tuple[Any, bool]] = []
        for clause, attribute, descending in order_terms(model, items):
            if attribute is None:
                raise InvalidInputError(f"paginate_keyset sorts by columns of the model, got {clause}"[:200])
            keys.append((attribute, descending))
        for pk in self._mapper(model).primary_key:
            if all(col.key != pk.key for col, _ in keys):
                keys.append((getattr(model, str(pk.key)), keys[-1][1]))
        return keys

    async def stream(
        self,
        query: Any,
        batch_size: int = 1000,
        *,
        options: Sequence[Any] = (),
        include_deleted: bool = False,
        batched: bool = False,
        session: AsyncSession | None = None,
        where: Any = (),
        as_: Any = None,
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
            batched: Yield lists of up to ``batch_size`` rows instead of single
                rows: much less per-row overhead for very large results.
            session: A caller-owned session.
            where: A ``Q`` filter group or SQLAlchemy expression, or a list of them.
            as_: A Pydantic model class: rows as its instances (one validation per batch).
            **filters: ``field__op=value`` filters.

        Examples:
            >>> async def names():
            ...     return [user.name async for user in ops.stream(User, batch_size=2)]
            >>> sorted(run(names()))
            ['Ada', 'Alan', 'Grace']
            >>> async def batch_sizes():
            ...     return [len(batch) async for batch in ops.stream(User, batch_size=2, batched=True)]
            >>> run(batch_sizes())
            [2, 1]
        """
        self._check_limit("batch_size", batch_size, 1, 1_000_000)
        stmt = self._base_select(query, include_deleted, filters, where_list(where))
        stmt = stmt.options(*options) if options else stmt
        single = single_column(stmt)
        stmt = stmt.execution_options(yield_per=batch_size, stream_results=True)
        # PostgreSQL keeps server-side cursors only inside a transaction; on SQLite the
        # stream must not BEGIN (IMMEDIATE would hold the write lock while it is read).
        # MySQL/MariaDB read in the implicit transaction they always have.
        needs_transaction = self._backend.stream_needs_transaction
        async with self._session(session, write=False, autocommit=not needs_transaction) as s:
            result = await s.stream(stmt)
            try:
                iterator = result.scalars() if single else result
                async for partition in iterator.partitions(batch_size):
                    if as_ is not None:
                        partition = to_schemas(as_, list(partition))
                    if batched:
                        yield list(partition)
                        continue
                    for item in partition:
                        yield item
            finally:
                await result.close()


def _nullable(column: Any) -> bool:
    return bool(getattr(column.expression, "nullable", False))


def _keyset_order(keys: list[tuple[Any, bool]], backwards: bool) -> list[Any]:
    """ORDER BY terms; NULL sorts before every value ascending (after them descending) everywhere."""
    terms = []
    for col, desc in keys:
        down = desc != backwards
        if _nullable(col):
            # explicit, because backends disagree on where NULLs go (and MariaDB lacks NULLS FIRST)
            is_set = case((col.is_(None), 0), else_=1)
            terms.append(is_set.desc() if down else is_set.asc())
        terms.append(col.desc() if down else col.asc())
    return terms


def _keyset_condition(keys: list[tuple[Any, bool]], values: list[Any], backwards: bool) -> Any:
    """Rows strictly after (or before) ``values`` in the mixed-direction key order, NULLs included."""
    alternatives = []
    for i, (col, desc) in enumerate(keys):
        greater = (not desc) != backwards
        value = values[i]
        if value is None:
            if not greater:
                continue  # nothing sorts below NULL
            compare = col.is_not(None)
        elif greater:
            compare = col > value
        else:
            compare = or_(col < value, col.is_(None)) if _nullable(col) else col < value
        equal_prefix = [
            keys[j][0].is_(None) if values[j] is None else keys[j][0] == values[j] for j in range(i)
        ]
        alternatives.append(and_(*equal_prefix, compare))
    return or_(*alternatives)
