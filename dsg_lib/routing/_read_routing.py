"""Read routing of an ``AsyncDatabase``: primary, replicas, read-your-writes (private).

A mixin, so ``AsyncDatabase`` keeps lifecycle and health; the replicas are
``engine/_replicas``, the route a block asks for lives in ``session/_context``
and the tokens are `dsg_lib.consistency`.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from ..session import routed
from . import consistency

if TYPE_CHECKING:
    from ..config import DBConfig
    from ..session import Acquirer


class ReadRoutingMixin:
    """``primary()``, ``read_only()``, ``consistency_token()`` and ``consistent_with()``."""

    db_config: DBConfig
    acquire: Acquirer

    def primary(self) -> AbstractAsyncContextManager[None]:
        """Send this block's reads to the primary (read-your-writes after a write).

        Examples:
            >>> import asyncio
            >>> from dsg_lib import AsyncDatabase, DBConfig
            >>> from sqlalchemy import text
            >>> async def main():
            ...     async with AsyncDatabase(DBConfig({"database_uri": "sqlite://"})) as db:
            ...         async with db.primary(), db.get_db_session() as session:
            ...             return (await session.execute(text("select 1"))).scalar()
            >>> asyncio.run(main())
            1
        """
        return routed(self.acquire, "primary")

    def read_only(self) -> AbstractAsyncContextManager[None]:
        """Send this block's reads to a read replica and refuse writes made through operations.

        With no healthy replica the reads go to the primary (with a warning).

        Raises:
            InvalidInputError: a ``DatabaseOperations`` write inside the block.

        Examples:
            >>> import asyncio
            >>> from dsg_lib import AsyncDatabase, DBConfig
            >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
            >>> async def main():
            ...     async with db.read_only():
            ...         return (await db.health_check())["ok"]
            >>> asyncio.run(main())
            True
            >>> asyncio.run(db.disconnect())
        """
        return routed(self.acquire, "replica")

    async def consistency_token(self) -> str:
        """A token for every write committed so far; pass it to `consistent_with` later.

        Call it after a write transaction commits (e.g. at the end of a POST)
        and hand it to the client; the client's next request presents it so
        its reads see that write even when they go to a read replica. On
        PostgreSQL it is the primary's WAL position (``pg:<lsn>``), read with
        one query; elsewhere it is ``"primary"`` (reads go to the primary).

        Examples:
            >>> import asyncio
            >>> from dsg_lib import AsyncDatabase, DBConfig
            >>> async def main():
            ...     async with AsyncDatabase(DBConfig({"database_uri": "sqlite://"})) as db:
            ...         return await db.consistency_token()
            >>> asyncio.run(main())
            'primary'
        """
        return await consistency.issue_token(self.acquire)

    def consistent_with(self, token: str | None) -> AbstractAsyncContextManager[None]:
        """Make this block's reads see everything ``token`` stands for (read-your-writes).

        A read goes to a read replica only when that replica has replayed
        past the token, else to the primary. ``None`` or ``""`` changes nothing.

        Args:
            token: A string from `consistency_token`.

        Raises:
            InvalidInputError: ``token`` is not a consistency token.

        Examples:
            >>> import asyncio
            >>> from dsg_lib import AsyncDatabase, DBConfig
            >>> async def main():
            ...     async with AsyncDatabase(DBConfig({"database_uri": "sqlite://"})) as db:
            ...         async with db.consistent_with(await db.consistency_token()):
            ...             return (await db.health_check())["ok"]
            >>> asyncio.run(main())
            True
        """
        return consistency.consistent_with(self.acquire, token)
