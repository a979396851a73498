"""Tables of an ``AsyncDatabase``: which ones it knows, CREATE and DROP (private).

A mixin so ``database.py`` keeps lifecycle and health; the DDL runs on the
connection ``session.Acquirer`` hands out (a savepoint when the database is pinned).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loguru import logger
from sqlalchemy import MetaData, Table
from sqlalchemy.orm import DeclarativeBase

from ..config import LegacyBase
from ..errors import InvalidInputError

if TYPE_CHECKING:
    from ..config import DBConfig
    from ..session import Acquirer


class TablesMixin:
    """``create_tables()``, ``drop_tables()``, ``add_models()``, ``clean()`` and ``metadatas()``."""

    Base: type[DeclarativeBase]
    db_config: DBConfig
    acquire: Acquirer
    _created: set[str]
    _extra_metadata: list[MetaData]

    def metadatas(self) -> list[MetaData]:
        """The ``MetaData`` collections whose tables this database manages.

        ``Base``, the legacy ``database_config.BASE`` and models added with
        `add_models`, each once and only when it has tables.

        Examples:
            >>> from dsg_lib import AsyncDatabase, DBConfig
            >>> AsyncDatabase(DBConfig({"database_uri": "sqlite://"})).metadatas()
            []
        """
        found: list[MetaData] = []
        for metadata in (
            self.Base.metadata,
            self.db_config.metadata,
            LegacyBase.metadata,
            *self._extra_metadata,
        ):
            if metadata.tables and all(metadata is not m for m in found):
                found.append(metadata)
        return found

    async def create_tables(self, *models_or_tables: Any) -> None:
        """Create tables that do not exist yet (idempotent).

        With nothing to create (no model declared on ``Base`` and none passed)
        it logs a warning: models declared on another base are not seen.

        Args:
            *models_or_tables: Mapped classes or ``Table`` objects. None means
                every table of ``Base`` (and of the legacy ``database_config.BASE``).

        Examples:
            >>> import asyncio
            >>> from dsg_lib import AsyncDatabase, DBConfig
            >>> from sqlalchemy import Integer
            >>> from sqlalchemy.orm import mapped_column
            >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
            >>> class Tag(db.Base):
            ...     __tablename__ = "tags"
            ...     id = mapped_column(Integer, primary_key=True)
            >>> asyncio.run(db.create_tables(Tag))
            >>> asyncio.run(db.disconnect())
        """
        names = await self._run_ddl(models_or_tables, create=True)
        if not names:
            logger.warning(
                "dsg_lib: create_tables() found no tables to create; declare models on db.Base "
                "(class Model(db.Base): ...) or pass them: create_tables(Model, ...)"
            )

    async def add_models(self, *models: Any) -> None:
        """Register models (from any declarative base) and create their tables the first time.

        Later calls with the same models do nothing; ``drop_tables()`` and
        ``clean()`` include them.

        Examples:
            >>> import asyncio
            >>> from dsg_lib import AsyncDatabase, DBConfig
            >>> from sqlalchemy import Integer
            >>> from sqlalchemy.orm import DeclarativeBase, mapped_column
            >>> class OtherBase(DeclarativeBase):
            ...     pass
            >>> class Plugin(OtherBase):
            ...     __tablename__ = "plugins"
            ...     id = mapped_column(Integer, primary_key=True)
            >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
            >>> asyncio.run(db.add_models(Plugin))
            >>> asyncio.run(db.disconnect())
        """
        tables = _resolve_tables(models)
        for table in tables:
            if all(table.metadata is not m for m in (*self.metadatas(), *self._extra_metadata)):
                self._extra_metadata.append(table.metadata)
        new = [t for t in tables if t.fullname not in self._created]
        if new:
            await self.create_tables(*new)

    async def clean(self) -> None:
        """Drop every table this database knows (``Base``, legacy ``BASE``, ``add_models``). For tests.

        Examples:
            >>> import asyncio
            >>> from dsg_lib import AsyncDatabase, DBConfig
            >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
            >>> asyncio.run(db.clean())
            >>> asyncio.run(db.disconnect())
        """
        await self.drop_tables()

    async def drop_tables(self, *models_or_tables: Any) -> None:
        """Drop tables that exist (idempotent); no arguments drops every table of ``Base``.

        Examples:
            >>> import asyncio
            >>> from dsg_lib import AsyncDatabase, DBConfig
            >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
            >>> asyncio.run(db.drop_tables())
            >>> asyncio.run(db.disconnect())
        """
        await self._run_ddl(models_or_tables, create=False)

    async def _run_ddl(self, items: tuple[Any, ...], *, create: bool) -> list[str]:
        """CREATE or DROP the tables of ``items`` (all known tables if empty); their names."""
        self.acquire.check_open()
        groups: dict[int, tuple[MetaData, list[Table] | None]] = {}
        if items:
            for table in _resolve_tables(items):
                groups.setdefault(id(table.metadata), (table.metadata, []))[1].append(table)  # type: ignore[union-attr]
        else:
            for metadata in self.metadatas():
                groups[id(metadata)] = (metadata, None)
        async with self.acquire.ddl_connection() as conn:
            for metadata, tables in groups.values():
                action = metadata.create_all if create else metadata.drop_all
                await conn.run_sync(action, tables=tables, checkfirst=True)
        names = sorted(t.fullname for m, ts in groups.values() for t in (ts or m.tables.values()))
        if create:
            self._created.update(names)
        else:
            self._created.difference_update(names)
        logger.info("dsg_lib: {} tables {}", "created" if create else "dropped", names)
        return names


def _resolve_tables(items: tuple[Any, ...]) -> list[Table]:
    tables: list[Table] = []
    for item in items:
        table = item if isinstance(item, Table) else getattr(item, "__table__", None)
        if not isinstance(table, Table):
            raise InvalidInputError(f"expected a mapped model class or a Table, got {item!r}")
        tables.append(table)
    return tables
