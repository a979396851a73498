"""Read replicas: handed out round robin over the healthy ones, skipped for a while after a failure (private).

Which reads go to a replica is decided in ``session/_acquire`` (the route a
``primary()`` / ``read_only()`` block asks for lives in ``session/_context``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..errors import DatabaseError
from ._pool_per_loop import Endpoint

#: seconds a failed replica is skipped before it is tried again
RETRY_AFTER_SECONDS = 5.0


@dataclass
class Replica:
    """One read replica and its health."""

    endpoint: Endpoint
    down_until: float = 0.0
    reads: int = 0

    @property
    def safe_url(self) -> str:
        return self.endpoint.safe_url

    @property
    def engine(self) -> AsyncEngine:
        """The replica's engine, with the running event loop's pool in place."""
        return self.endpoint.engine()

    @property
    def healthy(self) -> bool:
        return time.monotonic() >= self.down_until


class ReplicaSet:
    """Hands out replicas in round-robin order, skipping ones that failed recently."""

    def __init__(self, replicas: list[Replica], retry_after: float = RETRY_AFTER_SECONDS) -> None:
        self.replicas = replicas
        self.retry_after = retry_after
        self._next = 0

    def __bool__(self) -> bool:
        return bool(self.replicas)

    def candidates(self) -> list[Replica]:
        """Healthy replicas, starting with the next one in rotation."""
        if not self.replicas:
            return []
        start = self._next % len(self.replicas)
        self._next += 1
        ordered = self.replicas[start:] + self.replicas[:start]
        return [r for r in ordered if r.healthy]

    async def connect(
        self,
        autocommit: bool,
        checkout: Callable[[AsyncEngine], Awaitable[AsyncConnection]],
        translate: Callable[[BaseException], DatabaseError],
    ) -> AsyncConnection | None:
        """A connection to the next healthy replica, or ``None`` when none answers."""
        for replica in self.candidates():
            try:
                conn = await checkout(replica.endpoint.engine(autocommit))
            except (DatabaseError, OSError, asyncio.TimeoutError, SQLAlchemyError) as exc:
                self.mark_down(replica, translate(exc).details)
                continue
            self.mark_used(replica)
            return conn
        return None

    def mark_down(self, replica: Replica, reason: str) -> None:
        was_healthy = replica.healthy
        replica.down_until = time.monotonic() + self.retry_after
        if was_healthy:
            logger.warning(
                "dsg_lib: read replica {} failed ({}); skipping it for {:.0f}s, reads go elsewhere",
                replica.safe_url,
                reason,
                self.retry_after,
            )

    def mark_used(self, replica: Replica) -> None:
        replica.reads += 1
        if replica.down_until:
            replica.down_until = 0.0
            logger.info("dsg_lib: read replica {} recovered", replica.safe_url)

    def status(self) -> list[dict[str, Any]]:
        return [{"url": r.safe_url, "healthy": r.healthy, "reads": r.reads} for r in self.replicas]

    async def dispose(self) -> None:
        for replica in self.replicas:
            await replica.endpoint.dispose()
