"""When ``run_in_transaction`` runs its unit of work again (private).

Conflicts (deadlock, serialization failure, Galera certification failure) are
retried up to ``retries`` times. ``DatabaseUnavailableError`` (a failover in
progress: the primary died or was demoted, a cluster node left) is retried
with a capped backoff until ``unavailable_timeout`` seconds have passed since
the first try, so a unit of work rides over a failover of a few seconds.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from loguru import logger

from .errors import DatabaseError, DatabaseUnavailableError, PoolTimeoutError, TransactionConflictError

#: seconds ``run_in_transaction`` keeps retrying an unavailable multi-host database
DEFAULT_FAILOVER_SECONDS = 15.0
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
