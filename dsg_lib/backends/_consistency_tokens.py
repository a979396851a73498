"""Consistency tokens: their format, the primary's position and a replica's replay (private).

A token is ``"pg:<LSN>"`` on PostgreSQL (a WAL position) and `PRIMARY_TOKEN`
on backends without one. ``dsg_lib.consistency`` re-exports the public names.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import InvalidInputError

__all__ = ["PRIMARY_TOKEN", "ReplayCache", "format_lsn", "keep_if_caught_up", "parse_token"]

#: the token of a backend without a WAL position: read the primary
PRIMARY_TOKEN = "primary"

_PG_TOKEN = re.compile(r"^pg:([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


def parse_token(token: str) -> int | None:
    """The WAL position a token stands for, or ``None`` for "read the primary".

    Args:
        token: A string returned by `AsyncDatabase.consistency_token`.

    Raises:
        InvalidInputError: not a token (e.g. a tampered header).

    Examples:
        >>> parse_token("pg:1/0")
        4294967296
        >>> parse_token("x")
        Traceback (most recent call last):
        ...
        dsg_lib.errors.InvalidInputError: not a consistency token: expected 'pg:<hi>/<lo>' or 'primary'
    """
    if token == PRIMARY_TOKEN:
        return None
    match = _PG_TOKEN.match(token) if isinstance(token, str) else None
    if match is None:
        raise InvalidInputError("not a consistency token: expected 'pg:<hi>/<lo>' or 'primary'")
    return (int(match[1], 16) << 32) + int(match[2], 16)


def format_lsn(lsn: str) -> str:
    """The token for a PostgreSQL LSN as the server prints it (``0/16B3748``).

    Examples:
        >>> format_lsn("0/16B3748")
        'pg:0/16B3748'
    """
    return f"pg:{lsn}"


_CACHES: weakref.WeakKeyDictionary[object, ReplayCache] = weakref.WeakKeyDictionary()


async def keep_if_caught_up(owner: object, conn: AsyncConnection, wanted: int) -> AsyncConnection | None:
    """``conn`` (a replica's) when it has replayed up to ``wanted``; else close it and return None."""
    cache = _CACHES.get(owner)
    if cache is None:
        cache = _CACHES[owner] = ReplayCache()
    return conn if await cache.usable(conn.engine.url, conn, wanted) else None


@dataclass
class ReplayCache:
    """The furthest WAL position seen replayed on each replica (replay only moves forward)."""

    replayed: dict[Any, int] = field(default_factory=dict)

    async def usable(self, name: Any, conn: AsyncConnection, wanted: int) -> bool:
        """True when the replica behind ``conn`` has replayed up to ``wanted``; else closes ``conn``."""
        try:
            ok = await self.caught_up(name, conn, wanted)
        except BaseException:
            await conn.close()
            raise
        if not ok:
            await conn.close()
        return ok

    async def caught_up(self, name: Any, conn: AsyncConnection, wanted: int) -> bool:
        """True when the replica behind ``conn`` has replayed up to ``wanted``."""
        if self.replayed.get(name, -1) >= wanted:
            return True
        value = (await conn.execute(text("SELECT pg_last_wal_replay_lsn()::text"))).scalar()
        if value is None:  # not a standby (e.g. promoted): it has everything it has
            return True
        seen = parse_token(format_lsn(str(value)))
        assert seen is not None
        if seen > self.replayed.get(name, -1):
            self.replayed[name] = seen
        return seen >= wanted
