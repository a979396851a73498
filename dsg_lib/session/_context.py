"""Every ``ContextVar`` of dsg_lib, in one module (private).

What a block of code asked for lives in the context of the task running it,
so it follows the tasks that block starts (``asyncio.create_task`` copies the
context) and never leaks to other requests:

- the open ``transaction()`` levels (`Scope`), innermost first;
- the route a ``primary()`` / ``read_only()`` block asks for;
- the position a ``consistent_with(token)`` block must read at;
- the commits that wrote, for ``ConsistencyMiddleware``;
- the open ``query_budget()`` block;
- the open ``db.scoped(...)`` tenant scopes (`TenantLevel`, see ``_tenancy``);
- whether an observed operation is already running (one span, not two).

Each value names the database (``owner``) it belongs to where several
databases can be in use at once, so blocks on two databases nest without
seeing each other. Context variables are created once, here, at import:
a context keeps every variable it has seen alive, so they must not be made
per object.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..errors import SessionMissingError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = [
    "NO_REQUIREMENT",
    "TenantLevel",
    "Route",
    "Scope",
    "TaskTurn",
    "active",
    "budget_entered",
    "consistent",
    "current_budget",
    "current_session",
    "entered",
    "in_operation",
    "operation_started",
    "tenant_entered",
    "tenant_left",
    "tenant_open",
    "tenant_values",
    "route_of",
    "routed",
    "wanted_of",
    "watched_writes",
    "writes_seen",
]

Route = Literal["primary", "replica"]
#: no ``consistent_with`` block: reads route as usual
NO_REQUIREMENT = -1


# --------------------------------------------------------------------------- transactions
class TaskTurn:
    """Lets the tasks sharing one transaction take turns on its session.

    An ``AsyncSession`` runs one statement at a time, so operations joined from
    several tasks (``asyncio.gather`` inside ``transaction()``) wait for their
    turn. The task that has the turn may take it again without waiting: a
    ``stream()`` keeps its turn while it yields rows, and the loop consuming
    them must still be able to run other operations of the same transaction.
    That per-task re-entrance is the only reason this is not a plain lock.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._holder: asyncio.Task[Any] | None = None
        self._depth = 0

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is not None and self._holder is task:
            self._depth += 1
            return
        await self._lock.acquire()
        self._holder, self._depth = task, 1

    async def __aexit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._holder = None
            self._lock.release()


@dataclass(eq=False)
class Scope:
    """One level of an open ``transaction()`` of database ``owner``.

    ``outer`` is the scope that was current when this one opened (of any
    database), so the chain from the innermost scope visits every enclosing
    level. A nested ``transaction()`` (SAVEPOINT) is a level on the same
    session; its task holds the enclosing level's turn until it ends, so a
    sibling task's statements cannot land inside the savepoint (and be rolled
    back with it), while tasks started inside it take turns on the new level.
    """

    owner: object
    session: AsyncSession
    outer: Scope | None
    turn: TaskTurn = field(default_factory=TaskTurn)
    closed: bool = False


_SCOPE: ContextVar[Scope | None] = ContextVar("dsg_lib_scope", default=None)


def active(owner: object) -> Scope | None:
    """The innermost open transaction level of ``owner`` visible from this task."""
    scope = _SCOPE.get()
    while scope is not None and (scope.closed or scope.owner is not owner):
        scope = scope.outer
    return scope


def current_session(owner: object) -> AsyncSession:
    """The session of ``owner``'s enclosing transaction; `SessionMissingError` outside one."""
    scope = active(owner)
    if scope is None:
        raise SessionMissingError(
            "no session in this context: call current_session() inside "
            "'async with db.transaction()' or a request handled by DBSessionMiddleware"
        )
    return scope.session


@contextmanager
def entered(owner: object, session: AsyncSession) -> Iterator[Scope]:
    """Make a new transaction level of ``owner`` on ``session`` current for this block."""
    scope = Scope(owner, session, _SCOPE.get())
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        scope.closed = True  # tasks started inside may outlive the block: they must not join it
        _SCOPE.reset(token)


# --------------------------------------------------------------------------- tenant scopes
@dataclass(frozen=True, eq=False, repr=False)  # no repr: the values may identify a customer
class TenantLevel:
    """One open ``db.scoped(...)``: ``values`` for database ``owner`` (None: every database)."""

    owner: object | None
    values: Mapping[str, Any]
    outer: TenantLevel | None


_TENANTS: ContextVar[TenantLevel | None] = ContextVar("dsg_lib_tenant_scope", default=None)
_NO_VALUES: Mapping[str, Any] = {}


def tenant_open() -> bool:
    """Whether any tenant scope is open in this task (one ``ContextVar`` read)."""
    return _TENANTS.get() is not None


def tenant_values(owner: object) -> Mapping[str, Any]:
    """The attribute -> value mapping in force for database ``owner`` (levels merged, inner wins)."""
    level = _TENANTS.get()
    if level is None:
        return _NO_VALUES
    chain: list[TenantLevel] = []
    while level is not None:
        if level.owner is None or level.owner is owner:
            chain.append(level)
        level = level.outer
    if len(chain) == 1:
        return chain[0].values
    merged: dict[str, Any] = {}
    for found in reversed(chain):
        merged.update(found.values)
    return merged


def tenant_entered(owner: object | None, values: Mapping[str, Any]) -> Token[TenantLevel | None]:
    """Open a tenant scope level; give the token to `tenant_left`."""
    return _TENANTS.set(TenantLevel(owner, values, _TENANTS.get()))


def tenant_left(token: Token[TenantLevel | None]) -> None:
    """Close the level `tenant_entered` opened."""
    try:
        _TENANTS.reset(token)
    except ValueError:  # closed from a copy of the context it was opened in (a framework's task)
        _TENANTS.set(token.old_value if token.old_value is not Token.MISSING else None)


# --------------------------------------------------------------------------- read routing
_ROUTES: ContextVar[tuple[tuple[object, Route], ...]] = ContextVar("dsg_lib_routes", default=())


def route_of(owner: object) -> Route | None:
    """The route the innermost ``primary()`` / ``read_only()`` block of ``owner`` asks for."""
    for who, route in reversed(_ROUTES.get()):
        if who is owner:
            return route
    return None


@asynccontextmanager
async def routed(owner: object, route: Route) -> AsyncIterator[None]:
    """Send ``owner``'s reads in this block (and in tasks it starts) along ``route``."""
    token = _ROUTES.set((*_ROUTES.get(), (owner, route)))
    try:
        yield
    finally:
        _ROUTES.reset(token)


# --------------------------------------------------------------------------- read-your-writes
_WANTED: ContextVar[tuple[tuple[object, int | None], ...]] = ContextVar("dsg_lib_wanted", default=())


def wanted_of(owner: object) -> int | None:
    """The WAL position reads of ``owner`` must see, ``None`` (primary) or `NO_REQUIREMENT`."""
    for who, wanted in reversed(_WANTED.get()):
        if who is owner:
            return wanted
    return NO_REQUIREMENT


@asynccontextmanager
async def consistent(owner: object, wanted: int | None) -> AsyncIterator[None]:
    """Reads of ``owner`` in this block (and tasks it starts) must see position ``wanted``."""
    token = _WANTED.set((*_WANTED.get(), (owner, wanted)))
    try:
        yield
    finally:
        _WANTED.reset(token)


_WRITES: ContextVar[tuple[tuple[object, list[bool]], ...]] = ContextVar("dsg_lib_writes", default=())


def writes_seen(owner: object) -> list[bool] | None:
    """The list the innermost ``watched_writes`` block of ``owner`` collects into, if any."""
    for who, seen in reversed(_WRITES.get()):
        if who is owner:
            return seen
    return None


@contextmanager
def watched_writes(owner: object) -> Iterator[list[bool]]:
    """Collect ``owner``'s commits that wrote in this block; the list is non-empty after one."""
    seen: list[bool] = []
    token = _WRITES.set((*_WRITES.get(), (owner, seen)))
    try:
        yield seen
    finally:
        _WRITES.reset(token)


# --------------------------------------------------------------------------- observed operations
_IN_OPERATION: ContextVar[bool] = ContextVar("dsg_lib_in_operation", default=False)


def in_operation() -> bool:
    """True inside an observed operation (one operation calling another gives one span)."""
    return _IN_OPERATION.get()


@contextmanager
def operation_started() -> Iterator[None]:
    """Mark this block as inside an observed operation."""
    token = _IN_OPERATION.set(True)
    try:
        yield
    finally:
        _IN_OPERATION.reset(token)


# --------------------------------------------------------------------------- query budgets
#: the innermost open ``query_budget()`` block (a ``QueryBudget``), or None
_BUDGET: ContextVar[Any] = ContextVar("dsg_lib_query_budget", default=None)


def current_budget() -> Any:
    """The ``QueryBudget`` of the innermost open ``query_budget()`` block, or None."""
    return _BUDGET.get()


@contextmanager
def budget_entered(budget: Any) -> Iterator[None]:
    """Make ``budget`` the current one for this block."""
    token = _BUDGET.set(budget)
    try:
        yield
    finally:
        _BUDGET.reset(token)
