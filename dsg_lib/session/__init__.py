"""Sessions and transactions: connection checkout, ``transaction()``, retries, budgets (internal).

``session/`` is the layer between the engine (pools, hooks) and
``AsyncDatabase``: `Acquirer` hands out connections and sessions (pre-ping,
pinning to an open transaction, read routing, failover discard), ``_context``
holds every ``ContextVar`` of dsg_lib, ``_transactions`` the ``transaction()``
levels, ``_retry`` ``run_in_transaction``, ``_budget`` ``query_budget`` and
``_hooks`` the points where ``dsg_lib.observability`` watches, ``_tenancy``
(exported as ``tenancy``) the ``db.scoped(...)`` tenant scopes and the
session hooks that enforce them.

This package is internal: the rest of dsg_lib imports these names from here;
applications use ``AsyncDatabase``.
"""

from . import _tenancy as tenancy
from ._acquire import Acquirer
from ._budget import QueryBudget, query_budget
from ._context import (
    NO_REQUIREMENT,
    Route,
    active,
    consistent,
    current_budget,
    current_session,
    operation_started,
    routed,
    wanted_of,
    watched_writes,
    writes_seen,
)
from ._hooks import observe_class, unwatch, watch, watcher_of
from ._hooks import refresh as refresh_watchers
from ._retry import Retrier, default_unavailable_timeout, run_in_transaction, wait_until_ready
from ._transactions import transaction

__all__ = [
    "NO_REQUIREMENT",
    "Acquirer",
    "QueryBudget",
    "Retrier",
    "default_unavailable_timeout",
    "wait_until_ready",
    "Route",
    "active",
    "consistent",
    "current_budget",
    "current_session",
    "observe_class",
    "operation_started",
    "query_budget",
    "refresh_watchers",
    "routed",
    "tenancy",
    "run_in_transaction",
    "transaction",
    "unwatch",
    "wanted_of",
    "watch",
    "watched_writes",
    "watcher_of",
    "writes_seen",
]
