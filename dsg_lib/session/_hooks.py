"""The hook points where an observer watches the core (private).

The core never imports ``dsg_lib.observability``: it calls these hooks, and
observability registers a `Watcher` per database config (``watch``). With no
watcher active, every hook costs one module-global boolean test (``ACTIVE``).
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ._context import in_operation

__all__ = [
    "ACTIVE",
    "Watcher",
    "checkout",
    "observe_class",
    "transaction",
    "unwatch",
    "watch",
    "watcher_of",
]


class Watcher(Protocol):
    """What an observer of one database implements (``dsg_lib.observability`` has the one)."""

    @property
    def active(self) -> bool:
        """True while it wants to see anything."""

    async def call(self, name: str, fn: Callable[..., Any], ops: Any, args: Any, kwargs: Any) -> Any:
        """Run operation ``name`` (``await fn(ops, *args, **kwargs)``), watching it."""

    def iterate(self, name: str, iterator: AsyncIterator[Any], args: Any) -> AsyncIterator[Any]:
        """Yield what streaming operation ``name`` yields, watching it."""

    def transaction(self, nested: bool) -> AbstractContextManager[None]:
        """Watch one ``transaction()`` level (a SAVEPOINT when ``nested``)."""

    async def checkout(self, engine: AsyncEngine) -> AsyncConnection:
        """``await engine.connect()``, watching the wait for a pooled connection."""


#: True while at least one watcher is active; the only cost of the hooks otherwise
ACTIVE = False
#: database config -> its watcher (weak: a dropped database takes its watcher with it)
_WATCHERS: weakref.WeakKeyDictionary[Any, Watcher] = weakref.WeakKeyDictionary()
_OFF: AbstractContextManager[None] = nullcontext()


def watch(config: Any, watcher: Watcher) -> None:
    """Register ``watcher`` for the database of ``config`` (replacing any other)."""
    _WATCHERS[config] = watcher
    refresh()


def unwatch(config: Any) -> Watcher | None:
    """Remove the watcher of ``config``'s database; return it."""
    watcher = _WATCHERS.pop(config, None)
    refresh()
    return watcher


def watcher_of(config: Any) -> Watcher | None:
    """The watcher registered for ``config``'s database, if any."""
    return _WATCHERS.get(config)


def refresh() -> None:
    """Recompute `ACTIVE` (call after a watcher switched something on or off)."""
    global ACTIVE
    ACTIVE = any(w.active for w in _WATCHERS.values())


def _active_watcher(config: Any) -> Watcher | None:
    watcher = _WATCHERS.get(config)
    return watcher if watcher is not None and watcher.active else None


def _observed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap one ``DatabaseOperations`` coroutine method; a plain pass-through while nothing watches."""

    @functools.wraps(fn)
    async def operation(self: Any, *args: Any, **kwargs: Any) -> Any:
        if ACTIVE and not in_operation():
            watcher = _active_watcher(self.async_db.db_config)
            if watcher is not None:
                return await watcher.call(name, fn, self, args, kwargs)
        return await fn(self, *args, **kwargs)

    return operation


def _observed_stream(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an async-generator method: the original generator, untouched, while nothing watches."""

    @functools.wraps(fn)
    def operation(self: Any, *args: Any, **kwargs: Any) -> Any:
        iterator = fn(self, *args, **kwargs)
        if ACTIVE:
            watcher = _active_watcher(self.async_db.db_config)
            if watcher is not None:
                return watcher.iterate(name, iterator, args)
        return iterator

    return operation


def observe_class(cls: type) -> type:
    """Hook every public coroutine (and async generator) method of ``cls``."""
    for name in dir(cls):
        if name.startswith("_"):
            continue
        fn = getattr(cls, name)
        if inspect.iscoroutinefunction(fn):
            setattr(cls, name, _observed(name, fn))
        elif inspect.isasyncgenfunction(fn):
            setattr(cls, name, _observed_stream(name, fn))
    return cls


def transaction(config: Any, nested: bool) -> AbstractContextManager[None]:
    """Around one ``transaction()`` level; a shared no-op while nothing watches."""
    if ACTIVE:
        watcher = _active_watcher(config)
        if watcher is not None:
            return watcher.transaction(nested)
    return _OFF


async def checkout(config: Any, engine: AsyncEngine) -> AsyncConnection:
    """``await engine.connect()``, through the watcher of ``config``'s database if one is active."""
    watcher = _active_watcher(config) if ACTIVE else None
    if watcher is None:
        return await engine.connect()
    return await watcher.checkout(engine)
