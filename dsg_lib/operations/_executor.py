"""The one place that decides how an operation's statement runs (private).

Every operation builds its statement and hands it here. A statement runs
as one compiled driver call (``backends/_compiled``) only when it is one of the
shapes on the allow-list below, proven to give what SQLAlchemy gives, and
nothing would notice the difference; anything else runs through SQLAlchemy
(``AsyncSession`` / ``AsyncConnection``), exactly as written by hand.

Allow-list (all outside ``transaction()``, a caller's session, a pinned
connection or an open ``db.scoped(...)``, on a known driver,
``compiled_statements`` not False, not PostgreSQL behind PgBouncer):

* ``get``, ``find``, ``paginate``: ``select(Model)`` filtered by ``field=value``;
* ``count``, ``exists``, ``find_mappings``: the same filters;
* ``create_one``: ``INSERT .. RETURNING`` of one new object of plain columns;
* ``update_where``, ``delete_where``: by the whole primary key, plain values.

and only for a *plain* model (one table, no inheritance, no deferred or
composite columns) when no listener is registered that the driver call
would skip: session events (any), mapper persistence events and instance
``load`` / ``refresh`` events of the model, engine execute / cursor /
transaction events other than dsg_lib's own (``dsg_lib._own_listeners``), and
``echo``. Engine execution options other than ``isolation_level`` and
``schema_translate_map`` send the work to SQLAlchemy; a
``schema_translate_map`` is rendered into the compiled SQL (and is part of
the cache key, with the dialect).

The fallback rule: only an error raised before the statement was sent
(building its arguments) runs the work through SQLAlchemy instead. A read
that failed in the driver is run again through SQLAlchemy, which raises the
usual typed error (a read is safe to repeat); a write that reached the
server is never sent again: its error is raised (translated like any).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapper, Session, SessionEvents

from .._own_listeners import OWN
from ..backends import compiled
from ..database import AsyncDatabase
from ..filters import mapper_of
from ..session import current_budget
from ..session import tenancy as _tenancy

#: engine events a compiled driver call does not fire (SQLAlchemy's run of a lone statement does)
_ENGINE_EVENTS = (
    "before_execute",
    "after_execute",
    "before_cursor_execute",
    "after_cursor_execute",
    "begin",
    "commit",
    "rollback",
)  # and the dialect's "handle_error": a compiled write's error does not pass through SQLAlchemy
_SESSION_EVENTS = tuple(n for n in dir(SessionEvents) if not n.startswith("_") and n != "dispatch")
_MAPPER_EVENTS = (
    "before_insert",
    "after_insert",
    "before_update",
    "after_update",
    "before_delete",
    "after_delete",
)
_INSTANCE_EVENTS = ("load", "refresh", "refresh_flush")
#: engine execution options a compiled call honours (the map is rendered into its SQL)
_OPTIONS_OK = frozenset({"isolation_level", "schema_translate_map"})


class Executor:
    """Decides, per call, whether a statement runs compiled or through SQLAlchemy, and runs it."""

    def __init__(self, async_db: AsyncDatabase) -> None:
        self.async_db = async_db
        self._statements: dict[Any, compiled.CompiledStatement | None] = {}
        self._loaders: dict[Any, compiled.Loader] = {}
        # An unbound Session: its dispatch sees every listener on the Session class (dsg_lib's
        # sessions are AsyncSession(bind=...) of _tenancy.TenantSession, a Session whose own
        # listeners do nothing outside db.scoped(...), inside which nothing runs compiled). Its
        # listener collections are resolved once; each reflects later listen()/remove() calls.
        probe = Session().dispatch
        self._session_events = tuple(getattr(probe, name) for name in _SESSION_EVENTS)
        self._engine_seen: tuple[int, ...] | None = None  # engine id, then listener counts
        self._engine_quiet = False

    # ------------------------------------------------------------------ the decision

    def loader(self, model: Any) -> compiled.Loader:
        """The row -> object loader of ``model`` (built once per model)."""
        loader = self._loaders.get(model)
        if loader is None:
            loader = self._loaders[model] = compiled.Loader(mapper_of(model))
        return loader

    def compiled_loader(self, model: Any, session: Any) -> compiled.Loader | None:
        """The loader of ``model`` if its work may run compiled now, else None (SQLAlchemy).

        Cheap enough to ask on every call, so listeners added or removed at
        any time are seen at once.
        """
        if session is not None or not isinstance(model, type):
            return None
        db = self.async_db
        # tenant scoping (_tenancy): never compiled while a scope is active; outside one, a
        # model that require_scope guards is refused here, before anything is sent
        if _tenancy.blocks_compiled(model, db.acquire, db.db_config):
            return None
        if current_budget() is not None:  # a query_budget counts statements by SQLAlchemy's cursor events
            return None
        config = db.db_config
        acquire = db.acquire
        if (
            config.option("compiled_statements") is False
            or acquire.pinned is not None
            or acquire.in_transaction()
            or config.option("pgbouncer")
        ):
            return None
        engine = config.engine
        if not compiled.usable(engine) or not self._engine_plain(engine.sync_engine):
            return None
        if not set(engine.get_execution_options()) <= _OPTIONS_OK:
            return None
        loader = self.loader(model)
        if not loader.plain or any(map(bool, self._events_of(loader.mapper))):
            return None
        if any(map(bool, self._session_events)):
            return None
        return loader

    @staticmethod
    def _events_of(mapper: Mapper[Any]) -> list[Any]:
        """The listener collections of ``mapper``'s persistence events and its class's load events.

        Looked up on every call: a listener on the mapper itself replaces its collection.
        """
        events, instance = mapper.dispatch, mapper.class_manager.dispatch
        return [getattr(events, n) for n in _MAPPER_EVENTS] + [getattr(instance, n) for n in _INSTANCE_EVENTS]

    def _engine_plain(self, sync_engine: Any) -> bool:
        """No engine listener but dsg_lib's own for the events a driver call skips."""
        dispatch, dialect_dispatch = sync_engine.dispatch, sync_engine.dialect.dispatch
        counts = [len(getattr(dispatch, name)) for name in _ENGINE_EVENTS]
        seen = (id(sync_engine), len(dialect_dispatch.handle_error), *counts)
        if seen != self._engine_seen:  # listeners changed: count the foreign ones again
            own = list(OWN)
            names = ("handle_error", *_ENGINE_EVENTS)
            foreign = sum(
                n - sum(1 for fn in own if _contains(sync_engine, name, fn))
                for name, n in zip(names, seen[1:], strict=True)
            )
            self._engine_seen, self._engine_quiet = seen, foreign == 0
        return self._engine_quiet

    # ------------------------------------------------------------------ compiled statements

    def compiled_statement(self, key: Any, build: Callable[[], Any]) -> compiled.CompiledStatement | None:
        """The compiled statement of shape ``key`` (``build`` runs once per shape, dialect and
        ``schema_translate_map``), or None if only SQLAlchemy can run it."""
        config = self.async_db.db_config
        engine = config.engine
        schema_map = engine.get_execution_options().get("schema_translate_map")
        full_key = (key, engine.dialect.name, tuple(schema_map.items()) if schema_map else None)
        try:
            return self._statements[full_key]
        except KeyError:
            compiled_stmt = compiled.compile_statement(build(), engine, config.stopper, schema_map)
            self._statements[full_key] = compiled_stmt
            return compiled_stmt

    async def fetch(self, compiled_stmt: compiled.CompiledStatement, params: Mapping[str, Any]) -> list[Any]:
        """The rows of a compiled read (retried once on a fresh connection if the pooled one was dead)."""
        return await self.async_db.acquire.read(lambda conn: compiled.fetch(conn, compiled_stmt, params))

    async def write(
        self, compiled_stmt: compiled.CompiledStatement, params: Mapping[str, Any]
    ) -> tuple[list[Sequence[Any]], int] | None:
        """Rows and rows-matched of a compiled write; None if it could not be sent (use SQLAlchemy).

        Once the statement is sent it is never sent again: its error is raised.
        """
        try:
            arguments = compiled_stmt.arguments(params)
        except Exception:
            return None  # nothing was sent: SQLAlchemy runs the work and gives its error
        conn: AsyncConnection
        async with self.async_db.acquire.connection(None, write=True) as conn:
            return await compiled.run_written(conn, compiled_stmt, params, arguments)


def _contains(target: Any, name: str, fn: Any) -> bool:
    """``fn`` listens for ``name`` on the engine ``target``, or on every engine (the ``Engine`` class)."""
    return bool(event.contains(target, name, fn) or event.contains(Engine, name, fn))
