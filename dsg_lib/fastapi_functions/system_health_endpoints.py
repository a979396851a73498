"""devsetgo-lib's ``create_health_router``: ``/status``, ``/uptime`` and an opt-in ``/heapdump``.

Examples:
    >>> from fastapi import FastAPI
    >>> from fastapi.testclient import TestClient
    >>> app = FastAPI()
    >>> app.include_router(create_health_router({"enable_uptime_endpoint": False}), prefix="/api/health")
    >>> client = TestClient(app)
    >>> client.get("/api/health/status").json()
    {'status': 'UP'}
    >>> client.get("/api/health/uptime").status_code, client.get("/api/health/heapdump").status_code
    (404, 404)
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter

__all__ = ["create_health_router", "heap_dump", "uptime"]

_STARTED = time.time()


def uptime(since: float = _STARTED) -> dict[str, dict[str, float]]:
    """Time since ``since`` (default: this module's import) as days, hours, minutes, seconds.

    Examples:
        >>> uptime(time.time() - 90061)["uptime"]["Days"]
        1
    """
    days, rest = divmod(time.time() - since, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return {
        "uptime": {
            "Days": int(days),
            "Hours": int(hours),
            "Minutes": int(minutes),
            "Seconds": round(seconds, 2),
        }
    }


def heap_dump(top: int = 10) -> dict[str, Any]:
    """Current and peak traced memory and the ``top`` allocating source lines (needs ``tracemalloc``).

    Examples:
        >>> tracemalloc.start()
        >>> sorted(heap_dump(3))
        ['heap_dump', 'memory_use']
        >>> tracemalloc.stop()
    """
    current, peak = tracemalloc.get_traced_memory()
    stats = tracemalloc.take_snapshot().statistics("lineno")[:top]
    return {
        "memory_use": {"current": current, "peak": peak},
        "heap_dump": [
            {
                "filename": stat.traceback[0].filename,
                "lineno": stat.traceback[0].lineno,
                "size": stat.size,
                "count": stat.count,
            }
            for stat in stats
        ],
    }


def create_health_router(config: Mapping[str, Any]) -> APIRouter:
    """A router with the health endpoints ``config`` enables.

    Args:
        config: ``enable_status_endpoint`` (default True): ``GET /status`` ->
            ``{"status": "UP"}``; ``enable_uptime_endpoint`` (default True):
            ``GET /uptime``; ``enable_heapdump_endpoint`` (default False):
            ``GET /heapdump``, which reveals file paths and memory use, so
            guard it with ``heapdump_dependencies`` (a list of your app's
            ``Depends(...)`` auth checks). Enabling it starts ``tracemalloc``,
            which slows allocations down.

    Returns:
        The router, for ``app.include_router(..., prefix="/api/health")``.
    """
    router = APIRouter()
    if config.get("enable_status_endpoint", True):

        @router.get("/status")
        async def health_status() -> dict[str, str]:
            return {"status": "UP"}

    if config.get("enable_uptime_endpoint", True):

        @router.get("/uptime")
        async def get_uptime() -> dict[str, dict[str, float]]:
            return uptime()

    if config.get("enable_heapdump_endpoint", False):
        if not tracemalloc.is_tracing():
            tracemalloc.start()

        @router.get("/heapdump", dependencies=list(config.get("heapdump_dependencies") or []))
        async def get_heapdump() -> dict[str, Any]:
            return heap_dump()

    return router
