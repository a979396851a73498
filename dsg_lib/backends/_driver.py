"""The driver connection under SQLAlchemy: reaching it, pinging it, its transaction state (private).

Public SQLAlchemy API only (``AsyncConnection.get_raw_connection()``, the
pooled connection's ``driver_connection``); what differs by driver is here.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import PoolProxiedConnection

from ._statement_stop import SIDE_CALL_TIMEOUT

if TYPE_CHECKING:
    from ._base import Backend

__all__ = ["LAST_USED", "is_alive", "pooled_connection"]

#: pool record info key: when the connection was last returned to the pool
LAST_USED = "dsg_lib_last_used"


async def pooled_connection(conn: AsyncConnection) -> PoolProxiedConnection:
    """The pooled DBAPI connection of ``conn``, without a greenlet hop when it is at hand.

    ``AsyncConnection.get_raw_connection()`` runs the public attribute lookup
    ``Connection.connection`` through ``greenlet_spawn`` (it may have to
    reconnect an invalidated connection); a valid checked-out connection has
    its DBAPI connection at hand, so the hop is skipped.
    """
    sync = conn.sync_connection
    if sync is not None and not sync.invalidated and not sync.closed:
        return sync.connection
    return await conn.get_raw_connection()


async def is_alive(raw: PoolProxiedConnection, backend: Backend, window: float) -> bool:
    """False if the pooled ``raw`` sat idle longer than ``window`` seconds and fails a ping.

    One round trip on the driver connection (public ``driver_connection``):
    PostgreSQL ``SELECT 1`` over the simple-query protocol (no prepared
    statement, so safe behind PgBouncer), MySQL/MariaDB ``COM_PING``. Fresh
    connections and connections used within the window are not pinged.
    """
    last = raw.info.get(LAST_USED)
    if last is None or time.monotonic() - last <= window:
        return True
    driver: Any = raw.driver_connection
    try:
        await asyncio.wait_for(backend.ping(driver), SIDE_CALL_TIMEOUT)
    except Exception:  # any failure means: do not hand this connection out
        return False
    return True
