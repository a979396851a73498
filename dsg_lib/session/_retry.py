"""Trying again: ``connect()``'s wait for the server and ``run_in_transaction``'s re-runs (private).

``connect()`` pings with a doubling backoff (capped at 2 s) until the server
answers or its timeout passes.

Conflicts (deadlock, serialization failure, Galera certification failure) are
retried up to ``retries`` times. ``DatabaseUnavailableError`` (a failover in
progress: the primary died or was demoted, a cluster node left, a proxy still
routes to a read-only or shutting-down server) is retried with a capped
backoff until ``unavailable_timeout`` seconds have passed since the first try,
so a unit of work rides over a failover of a few seconds.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from ..errors import DatabaseError, DatabaseUnavailableError, PoolTimeoutError, TransactionConflictError
from ._transactions import transaction

if TYPE_CHECKING:
    from ._acquire import Acquirer

T = TypeVar("T")

#: seconds ``run_in_transaction`` keeps retrying an unavailable multi-host database
DEFAULT_FAILOVER_SECONDS = 15.0


def default_unavailable_timeout(failover_timeout: float | None, multi_host: bool) -> float:
    """``run_in_transaction``'s ``unavailable_timeout`` when the caller gives none.

    The ``failover_timeout`` config key when set (a database behind a proxy is
    one host to dsg_lib, yet fails over); else `DEFAULT_FAILOVER_SECONDS` for
    a multi-host URI and 0 (no retry) for a single host.
    """
    if failover_timeout is not None:
        return float(failover_timeout)
    return DEFAULT_FAILOVER_SECONDS if multi_host else 0.0


#: the longest sleep between two tries
MAX_SLEEP = 1.0


@dataclass
class Retrier:
    """Decides, per failed try, whether to sleep and run the unit of work again."""

    retries: int
    backoff: float
    unavailable_timeout: float
    conflicts: int = 0
    outages: int = 0
    started: float = field(default_factory=time.monotonic)

    async def again(self, exc: DatabaseError) -> bool:
        """Sleep and return True when ``exc`` is worth another try, else False."""
        if isinstance(exc, TransactionConflictError):
            if self.conflicts >= self.retries:
                return False
            self.conflicts += 1
            attempt, kind, limit = self.conflicts, "transaction conflict", f"{self.retries}"
        elif isinstance(exc, DatabaseUnavailableError) and not isinstance(exc, PoolTimeoutError):
            left = self.started + self.unavailable_timeout - time.monotonic()
            if left <= 0:
                return False
            self.outages += 1
            attempt, kind, limit = self.outages, "database unavailable", f"{left:.1f}s left"
        else:
            return False
        sleep = min(self.backoff * (2 ** (attempt - 1)), MAX_SLEEP) * random.uniform(0.5, 1.5)
        logger.warning(
            "dsg_lib: {} ({}), retry {} ({}) in {:.3f}s", kind, exc.details[:120], attempt, limit, sleep
        )
        await asyncio.sleep(sleep)
        return True


async def run_in_transaction(
    acquire: Acquirer, fn: Callable[[AsyncSession], Awaitable[T]], retrier: Retrier
) -> T:
    """Run ``await fn(session)`` in a transaction until it succeeds or ``retrier`` gives up."""
    while True:
        try:
            async with transaction(acquire) as session:
                return await fn(session)
        except (TransactionConflictError, DatabaseUnavailableError) as exc:
            # a savepoint cannot be re-run alone: the enclosing transaction decides
            if acquire.in_transaction() or not await retrier.again(exc):
                raise


async def wait_until_ready(ping: Callable[[], Awaitable[None]], safe_url: str, timeout: float) -> None:
    """Call ``ping`` with backoff until it succeeds; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay, attempt = 0.05, 0
    last_error: DatabaseUnavailableError | None = None
    while True:
        attempt += 1
        reason, cause = await _try_ping(ping, deadline, last_error)
        if cause is None:
            logger.info("dsg_lib: connected to {}", safe_url)
            return
        if isinstance(cause, DatabaseUnavailableError):
            last_error = cause
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DatabaseUnavailableError(
                f"{safe_url} did not answer within {timeout:g}s ({attempt} attempts): {reason}"
            ) from cause
        logger.warning(
            "dsg_lib: database not ready (attempt {}), retrying in {:.2f}s: {}",
            attempt,
            min(delay, remaining),
            reason,
        )
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, 2.0)


async def _try_ping(
    ping: Callable[[], Awaitable[None]], deadline: float, last_error: DatabaseUnavailableError | None
) -> tuple[str, BaseException | None]:
    """One ``connect()`` attempt: ``("", None)`` on success, else the reason and its cause."""
    try:
        await asyncio.wait_for(ping(), timeout=max(deadline - time.monotonic(), 0.001))
    except DatabaseUnavailableError as exc:
        return exc.details, exc
    except asyncio.TimeoutError as exc:
        # A last attempt cut short by the deadline keeps the previous, more useful reason.
        if last_error is not None:
            return f"timed out; last error: {last_error.details}", last_error
        return "timed out", exc
    return "", None
