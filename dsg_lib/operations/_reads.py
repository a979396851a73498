"""Model-level reads of ``DatabaseOperations`` (private module)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from typing import Any, TypeVar, overload

from sqlalchemy import (
    exists,
    func,
    literal,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from ..errors import MultipleRecordsFoundError, RecordNotFoundError
from ..filters import model_columns
from ._base import M, OperationsBase, is_soft
from ._schemas import to_schema, to_schemas

S = TypeVar("S")  # an ``as_=`` schema class


class ReadOperations(OperationsBase):
    """Model-level reads of ``DatabaseOperations``."""

    @overload
    async def get(
        self,
        model: type[M],
        id: Any,
        *,
        options: Sequence[Any] = ...,
        include_deleted: bool = ...,
        session: AsyncSession | None = ...,
        as_: None = ...,
    ) -> M | None: ...

    @overload
    async def get(
        self,
        model: type[M],
        id: Any,
        *,
        options: Sequence[Any] = ...,
        include_deleted: bool = ...,
        session: AsyncSession | None = ...,
        as_: type[S],
    ) -> S | None: ...

    async def get(
        self,
        model: type[M],
        id: Any,
        *,
        options: Sequence[Any] = (),
        include_deleted: bool = False,
        session: AsyncSession | None = None,
        as_: Any = None,
    ) -> Any:
        """The object with primary key ``id``, or ``None``.

        Args:
            model: The mapped class.
            id: The primary key value (a tuple or dict for composite keys).
            options: Loader options, e.g. ``selectinload(User.orders)``.
            include_deleted: Also return soft-deleted rows.
            session: A caller-owned session to use (never committed).
            as_: A Pydantic model class: return an instance of it, validated
                from the object's attributes (loaded relationships included).

        Examples:
            >>> run(ops.get(User, 1)).name
            'Ada'
            >>> run(ops.get(User, 99)) is None
            True
        """
        if as_ is not None:
            found = await self.get(
                model, id, options=options, include_deleted=include_deleted, session=session
            )
            return to_schema(as_, found)
        ident = self._check_pk(model, id)
        joined = session is not None or self.async_db.acquire.in_transaction()
        if joined and not (is_soft(model) and not include_deleted):
            async with self._session(session, write=False) as s:
                return await s.get(model, ident, options=options)  # identity map first
        loader = None if options else self._executor.compiled_loader(model, session)
        if loader is not None:
            compiled_stmt = self._executor.compiled_statement(
                ("get", model, include_deleted),
                lambda: self._pk_select(model, include_deleted).with_only_columns(*loader.columns),
            )
            if compiled_stmt is not None:
                rows = await self._executor.fetch(compiled_stmt, self._pk_params(model, ident))
                return loader.build(rows[:1])[0] if rows else None
        stmt = self._pk_select(model, include_deleted)
        if options:
            stmt = stmt.options(*options)
        params = self._pk_params(model, ident)

        async def run(s: AsyncSession) -> M | None:
            found: M | None = (await s.execute(stmt, params)).scalars().first()
            return found

        return await self._read(session, run, orm=True)

    @overload
    async def get_one(
        self,
        model: type[M],
        *where: Any,
        options: Sequence[Any] = ...,
        include_deleted: bool = ...,
        session: AsyncSession | None = ...,
        as_: None = ...,
        **filters: Any,
    ) -> M: ...

    @overload
    async def get_one(
        self,
        model: type[M],
        *where: Any,
        options: Sequence[Any] = ...,
        include_deleted: bool = ...,
        session: AsyncSession | None = ...,
        as_: type[S],
        **filters: Any,
    ) -> S: ...

    async def get_one(
        self,
        model: type[M],
        *where: Any,
        options: Sequence[Any] = (),
        include_deleted: bool = False,
        session: AsyncSession | None = None,
        as_: Any = None,
        **filters: Any,
    ) -> Any:
        """Exactly one object matching the filters (``as_=Schema``: as a Pydantic model).

        Raises:
            RecordNotFoundError: nothing matched.
            MultipleRecordsFoundError: more than one row matched.

        Examples:
            >>> run(ops.get_one(User, email="alan@example.com")).name
            'Alan'
        """
        self._mapper(model)  # before select(model): a typed error, not SQLAlchemy's ArgumentError
        stmt = select(model).where(*self._criteria(model, where, filters, include_deleted))
        stmt = stmt.options(*options).limit(2)

        async def run(s: AsyncSession) -> list[M]:
            return list((await s.execute(stmt)).scalars().all())

        rows = await self._read(session, run, orm=True)
        if not rows:
            raise RecordNotFoundError(f"no {model.__name__} matched the filters")
        if len(rows) > 1:
            raise MultipleRecordsFoundError(f"more than one {model.__name__} matched the filters")
        return rows[0] if as_ is None else to_schema(as_, rows[0])

    @overload
    async def find(
        self,
        model: type[M],
        *where: Any,
        order_by: Any = ...,
        limit: int | None = ...,
        offset: int | None = ...,
        options: Sequence[Any] = ...,
        include_deleted: bool = ...,
        session: AsyncSession | None = ...,
        as_: None = ...,
        **filters: Any,
    ) -> list[M]: ...

    @overload
    async def find(
        self,
        model: type[M],
        *where: Any,
        order_by: Any = ...,
        limit: int | None = ...,
        offset: int | None = ...,
        options: Sequence[Any] = ...,
        include_deleted: bool = ...,
        session: AsyncSession | None = ...,
        as_: type[S],
        **filters: Any,
    ) -> list[S]: ...

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
        as_: Any = None,
        **filters: Any,
    ) -> Any:
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
            as_: A Pydantic model class: return instances of it, validated from
                the objects' attributes in one ``TypeAdapter(list[as_])`` call.
            **filters: ``field__op=value`` filters.

        Examples:
            >>> [u.name for u in run(ops.find(User, name__startswith="A", order_by="-age"))]
            ['Alan', 'Ada']
            >>> [u.name for u in run(ops.find(User, or_(User.age < 40, User.age.is_(None)), order_by="name"))]
            ['Ada', 'Grace']
        """
        self._check_limit("limit", limit)
        self._check_limit("offset", offset)
        self._mapper(model)  # before select(model): a typed error, not SQLAlchemy's ArgumentError
        if as_ is not None:
            found_objects = await self.find(
                model,
                *where,
                order_by=order_by,
                limit=limit,
                offset=offset,
                options=options,
                include_deleted=include_deleted,
                session=session,
                **filters,
            )
            return to_schemas(as_, found_objects)
        plain = not (where or options or limit is not None or offset or order_by is not None)
        found = (
            self._compiled_read(
                "find", model, filters, include_deleted, session, lambda ld, w: select(*ld.columns).where(*w)
            )
            if plain
            else None
        )
        if found is not None:
            compiled_stmt, params, loader = found
            return loader.build(await self._executor.fetch(compiled_stmt, params))
        stmt = select(model).where(*self._criteria(model, where, filters, include_deleted))
        stmt = stmt.order_by(*self._order(model, order_by)).options(*options)
        if limit is not None:
            stmt = stmt.limit(limit)
        if offset:
            stmt = stmt.offset(offset)
        return await self._fetch_all(stmt, session)

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
            >>> run(ops.find_mappings(User, id=1))
            [{'id': 1, 'name': 'Ada', 'email': 'ada@example.com', 'age': 36}]
        """
        self._check_limit("limit", limit)
        self._check_limit("offset", offset)
        keys = list(model_columns(model))  # the attribute keys, on every path
        plain = not (where or limit is not None or offset or order_by is not None)
        found = (
            self._compiled_read(
                "mappings",
                model,
                filters,
                include_deleted,
                session,
                lambda ld, w: select(*ld.columns).where(*w),
            )
            if plain
            else None
        )
        if found is not None:
            compiled_stmt, params, loader = found
            return list(
                map(dict, map(zip, repeat(loader.keys), await self._executor.fetch(compiled_stmt, params)))
            )
        # ORM attributes: the entity's FROM (joined inheritance), its discriminator, session events
        stmt = select(*[getattr(model, key) for key in keys])
        stmt = stmt.where(*self._criteria(model, where, filters, include_deleted))
        stmt = stmt.order_by(*self._order(model, order_by))
        if limit is not None:
            stmt = stmt.limit(limit)
        if offset:
            stmt = stmt.offset(offset)

        async def run(s: AsyncSession) -> list[dict[str, Any]]:
            return [dict(zip(keys, row, strict=True)) for row in await s.execute(stmt)]

        return await self._read(session, run, orm=True)

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
            >>> run(ops.count(User, age__gte=40))
            1
            >>> run(ops.count(User, age__is_null=True))
            1
        """
        found = (
            None
            if where
            else self._compiled_read(
                "count",
                model,
                filters,
                include_deleted,
                session,
                lambda ld, w: select(func.count()).select_from(ld.mapper.local_table).where(*w),
            )
        )
        if found is not None:
            compiled_stmt, params, _ = found
            return int((await self._executor.fetch(compiled_stmt, params))[0][0])
        self._mapper(model)
        stmt = select(func.count()).select_from(model)  # the entity: discriminator, joins, events
        stmt = stmt.where(*self._criteria(model, where, filters, include_deleted))
        return await self._count(stmt, session)

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
            >>> run(ops.exists(User, email="ada@example.com"))
            True
            >>> run(ops.exists(User, name__contains="%"))
            False
        """
        found = (
            None
            if where
            else self._compiled_read(
                "exists",
                model,
                filters,
                include_deleted,
                session,
                lambda ld, w: select(exists(select(literal(1)).select_from(ld.mapper.local_table).where(*w))),
            )
        )
        if found is not None:
            compiled_stmt, params, _ = found
            return bool((await self._executor.fetch(compiled_stmt, params))[0][0])
        self._mapper(model)
        inner = select(literal(1)).select_from(model)
        inner = inner.where(*self._criteria(model, where, filters, include_deleted))

        async def run(s: AsyncSession) -> bool:
            return bool((await s.execute(select(inner.exists()))).scalar())

        return await self._read(session, run, orm=True)
