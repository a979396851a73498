"""What ``AsyncDatabase.health_check`` and ``pool_status`` report (private)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import DatabaseError

if TYPE_CHECKING:
    from ..session import Acquirer

#: report key -> the pool method that counts it (pools without one report 0)
_POOL_COUNTERS = (
    ("size", "size"),
    ("checked_in", "checkedin"),
    ("checked_out", "checkedout"),
    ("overflow", "overflow"),
)


def pool_status(engine: AsyncEngine) -> dict[str, int]:
    """The pool's counters; a pool class without a counter (NullPool, StaticPool) reports 0.

    Never negative: SQLAlchemy's ``QueuePool.overflow()`` counts from
    ``-pool_size`` while fewer connections than ``pool_size`` are open.
    """
    pool: Any = engine.pool
    status = {"size": 0, "checked_in": 0, "checked_out": 0, "overflow": 0}
    for key, method in _POOL_COUNTERS:
        fn = getattr(pool, method, None)
        if callable(fn):
            status[key] = max(int(fn()), 0)
    return status


async def ping_report(acquire: Acquirer, dialect: str, timeout: float) -> dict[str, Any]:
    """Ping within ``timeout``: ``ok``, ``latency_ms``, ``dialect`` and, on failure, ``error``."""
    start = time.perf_counter()
    result: dict[str, Any] = {"ok": True, "latency_ms": 0.0, "dialect": dialect}
    try:
        acquire.check_open()
        await asyncio.wait_for(acquire.ping(), timeout=timeout)
    except (DatabaseError, asyncio.TimeoutError) as exc:
        result["ok"] = False
        result["error"] = exc.details if isinstance(exc, DatabaseError) else f"timed out after {timeout:g}s"
    result["latency_ms"] = round((time.perf_counter() - start) * 1000.0, 3)
    return result
