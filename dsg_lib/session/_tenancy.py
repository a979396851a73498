"""Tenant scoping: ``db.scoped(...)``, ``require_scope`` and the session hooks (private).

The open scopes live in ONE module-level ``ContextVar`` (in ``_context``,
with every other one) holding the innermost level, so a scope is per task (a
task created inside one copies it). Each level names the database it applies
to (``owner``: the database's ``Acquirer``), or ``None`` for every database
(``scope_dependency(fn)``). Nested levels merge outer to inner: an inner scope
adds names and replaces the value of a name the outer one set.

How it holds on every path:

* operations add ``Model.attr == value`` to their own WHERE (`criteria`), set
  the value on what they insert (`apply_to_object`, `apply_to_row`) and refuse
  a value naming another tenant; the executor never takes the compiled path
  while a scope is active (`blocks_compiled`);
* every ORM statement on a dsg_lib session (``get_db_session()``,
  ``transaction()``, the operations' own, a ``session=`` the caller passes)
  gets SQLAlchemy's ``with_loader_criteria`` for each mapped class with the
  attribute (`_on_execute`), which also covers relationship loads and
  subqueries; a flush sets the value on new objects and refuses changing or
  deleting another tenant's objects (`_before_flush`).

The hooks are on `TenantSession`, the ``Session`` subclass dsg_lib's sessions
use, not on ``Session`` itself: unscoped code pays one ``ContextVar`` read per
statement and keeps the compiled path.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from contextvars import Token
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import __version__ as _sqlalchemy_version
from sqlalchemy import and_, event, inspect
from sqlalchemy.orm import Mapper, ORMExecuteState, Session, UOWTransaction, with_loader_criteria
from sqlalchemy.orm import registry as Registry
from sqlalchemy.sql.elements import ClauseElement

from ..errors import ConfigurationError, InvalidInputError, ScopeRequiredError
from ._context import TenantLevel, tenant_entered, tenant_left, tenant_open, tenant_values

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement

__all__ = ["SUPPORTED", "TenantScope", "TenantSession", "criteria", "scope_for", "tenant_values"]

#: SQLAlchemy 2.0 does not apply ``with_loader_criteria`` inside the EXISTS of a relationship's
#: ``any()`` / ``has()``: a filter through a relationship would see every tenant's rows there.
#: 2.1 does, so scopes open only on 2.1 and later (fail closed); ``require_scope`` works on both.
SUPPORTED = tuple(int(part) for part in _sqlalchemy_version.split(".")[:2]) >= (2, 1)

#: ``Session.info`` key naming the database (its ``Acquirer``) a session belongs to
OWNER_KEY = "dsg_lib_tenancy_owner"


class TenantScope:
    """The context manager `AsyncDatabase.scoped` returns (``async with`` or ``with``).

    Examples:
        >>> scope = TenantScope(None, {"tenant_id": 42})
        >>> with scope:
        ...     dict(tenant_values(object()))
        {'tenant_id': 42}
        >>> dict(tenant_values(object()))
        {}
    """

    def __init__(self, owner: object | None, values: Mapping[str, Any]) -> None:
        if not SUPPORTED:
            raise ConfigurationError(
                f"tenant scoping needs SQLAlchemy 2.1 or later (installed: {_sqlalchemy_version}): "
                "2.0 does not apply the scope inside a relationship's any()/has() subquery, "
                "so a filter through a relationship could see other tenants' rows"
            )
        if not isinstance(values, Mapping) or not values:
            raise InvalidInputError("a scope needs at least one attribute=value, e.g. scoped(tenant_id=42)")
        for name, value in values.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise InvalidInputError(f"scope names must be attribute names, got {str(name)[:60]!r}")
            if value is None:
                raise InvalidInputError(f"scope value of {name!r} cannot be None")
        self.owner = owner
        self.values = dict(values)
        self._tokens: list[Token[TenantLevel | None]] = []

    def __enter__(self) -> TenantScope:
        self._tokens.append(tenant_entered(self.owner, self.values))
        return self

    def __exit__(self, *exc: object) -> None:
        tenant_left(self._tokens.pop())

    async def __aenter__(self) -> TenantScope:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    def __repr__(self) -> str:  # names only: the values may identify a customer
        return f"TenantScope({', '.join(sorted(self.values))})"


# --------------------------------------------------------------------------- models

_keys: weakref.WeakKeyDictionary[Mapper[Any], frozenset[str]] = weakref.WeakKeyDictionary()
#: registries whose classes a scope applies to (those of every model dsg_lib has seen)
_registries: weakref.WeakSet[Registry] = weakref.WeakSet()


def remember(registry: Registry) -> None:
    """Make the classes of ``registry`` known to the session hooks.

    Every ``AsyncDatabase`` remembers its ``Base``'s (and the legacy
    ``database_config.BASE``'s); the registry of any model an operation or a
    statement names is remembered when first seen.
    """
    _registries.add(registry)


def column_keys(mapper: Mapper[Any]) -> frozenset[str]:
    """The column attribute keys of ``mapper`` (cached)."""
    keys = _keys.get(mapper)
    if keys is None:
        keys = _keys[mapper] = frozenset(prop.key for prop in mapper.column_attrs)
        _registries.add(mapper.registry)
    return keys


def required_names(config: Any) -> Literal[True] | frozenset[str] | None:
    """``require_scope`` of ``config``: True, the names, or None (not required)."""
    required = config.option("require_scope")
    if not required:
        return None
    if required is True:
        return True
    return frozenset((required,) if isinstance(required, str) else required)


def scope_for(model: Any, owner: Any, config: Any) -> dict[str, Any]:
    """The scope values that apply to ``model`` (a mapped class or mapper) now.

    Raises:
        ScopeRequiredError: ``require_scope`` asks for a scope this call is not in.
    """
    if not tenant_open() and not config.option("require_scope"):
        return {}  # the common case, cheap: no scope open and none required
    mapper = model if isinstance(model, Mapper) else inspect(model, raiseerr=False)
    if not isinstance(mapper, Mapper):
        return {}  # not a mapped class: the caller's own check gives the error
    keys = column_keys(mapper)
    values = tenant_values(owner)
    required = required_names(config)
    if required is not None:
        missing: tuple[str, ...]
        if required is True:
            missing = () if values else ("a scope",)
        else:
            missing = tuple(sorted(n for n in required & keys if n not in values))
        if missing:
            raise ScopeRequiredError(
                f"{mapper.class_.__name__} needs {', '.join(missing)} set by "
                "'async with db.scoped(...)' (config key require_scope)"
            )
    if not values:
        return {}
    return {k: v for k, v in values.items() if k in keys}


def blocks_compiled(model: Any, owner: Any, config: Any) -> bool:
    """True while a scope of ``owner`` is active: the executor then runs everything through
    SQLAlchemy. Outside one, a model ``require_scope`` guards raises `ScopeRequiredError` here.

    Unscoped calls without ``require_scope`` pay one ``ContextVar`` read and one dict lookup.
    """
    if not tenant_open() and not config.option("require_scope"):
        return False
    if tenant_values(owner):
        return True
    scope_for(model, owner, config)  # raises outside a required scope
    return False


def criteria(model: Any, scope: Mapping[str, Any]) -> list[ColumnElement[bool]]:
    """``Model.attr == value`` for every scoped attribute."""
    return [getattr(model, key) == value for key, value in scope.items()]


def visible(obj: Any, scope: Mapping[str, Any]) -> bool:
    """Whether a loaded object belongs to ``scope`` (unloaded values count as not visible)."""
    state = inspect(obj).dict
    return all(key in state and state[key] == value for key, value in scope.items())


def _differs(given: Any, value: Any) -> bool:
    """Whether a given value is not the scope's (a SQL expression always is: it cannot be checked)."""
    if isinstance(given, ClauseElement):
        return True
    try:
        return bool(given != value)
    except Exception:  # a value that cannot be compared cannot be the scope's
        return True


def apply_to_object(obj: Any, scope: Mapping[str, Any]) -> None:
    """Set the scope values on a new object; a different value given is `InvalidInputError`."""
    if not scope:
        return
    state = inspect(obj).dict
    for key, value in scope.items():
        given = state.get(key)
        if given is None:
            setattr(obj, key, value)
        elif _differs(given, value):
            raise InvalidInputError(f"{type(obj).__name__}.{key} names another scope than the one in force")


def apply_to_row(row: Any, scope: Mapping[str, Any], index: int, model: Any) -> Any:
    """A copy of dict ``row`` with the scope values set; another value given is `InvalidInputError`."""
    if not isinstance(row, Mapping):
        return row  # the row checker gives the error
    out = dict(row)
    for key, value in scope.items():
        given = out.get(key)
        if given is None:
            out[key] = value
        elif _differs(given, value):
            raise InvalidInputError(
                f"row {index}: {model.__name__}.{key} names another scope than the one in force"
            )
    return out


def check_new_values(model: Any, values: Mapping[str, Any], scope: Mapping[str, Any]) -> None:
    """Refuse an update that would move rows to another scope value."""
    for key, value in scope.items():
        if key in values and _differs(values[key], value):
            raise InvalidInputError(f"{model.__name__}.{key} cannot be changed to another scope")


async def scoped_rows(rows: Any, scope: Mapping[str, Any], model: Any) -> Any:
    """An async iterator of ``rows`` (sync or async) with `apply_to_row` applied."""
    index = 0
    if hasattr(rows, "__aiter__"):
        async for row in rows:
            yield apply_to_row(row, scope, index, model)
            index += 1
        return
    for row in rows:
        yield apply_to_row(row, scope, index, model)
        index += 1


def scoped_list(rows: Iterable[Any], scope: Mapping[str, Any], model: Any) -> list[Any]:
    """`apply_to_row` over a sync iterable of rows."""
    return [apply_to_row(row, scope, i, model) for i, row in enumerate(rows)]


# --------------------------------------------------------------------------- the session hooks


class TenantSession(Session):
    """The ``Session`` class of dsg_lib's sessions: a plain ``Session`` with the scope hooks.

    Examples:
        >>> issubclass(TenantSession, Session)
        True
    """


def _classes_with(names: frozenset[str]) -> list[Any]:
    # Every known class with a scoped attribute, looked up per statement (no cache: a cache keyed
    # by registries could go stale when models come and go, and a stale list is a leak). The cost
    # is paid inside a scope only: ~0.15 ms per statement with one scoped model, ~1 ms with 30 (SQLite).
    found = []
    for registry in list(_registries):
        for mapper in registry.mappers:
            if column_keys(mapper) & names:
                found.append(mapper.class_)
    return found


def _on_execute(state: ORMExecuteState) -> None:
    owner = state.session.info.get(OWNER_KEY)
    if owner is None or state.is_column_load:
        return
    values = tenant_values(owner)
    config = owner.config
    if not values and required_names(config) is None:
        return
    for mapper in state.all_mappers:
        _registries.add(mapper.registry)
        scope_for(mapper, owner, config)  # raises outside a required scope
    if not values or not (state.is_select or state.is_update or state.is_delete):
        return
    if (state.is_update or state.is_delete) and state.is_executemany:
        _scope_bulk_by_primary_key(state, values)
        return
    options = []
    for cls in _classes_with(frozenset(values)):
        keys = column_keys(inspect(cls))
        clause = and_(*[getattr(cls, k) == v for k, v in values.items() if k in keys])
        options.append(with_loader_criteria(cls, clause, include_aliases=True))
    if options:
        state.statement = state.statement.options(*options)


def _scope_bulk_by_primary_key(state: ORMExecuteState, values: Mapping[str, Any]) -> None:
    """ORM bulk UPDATE / DELETE by primary key (a list of parameter dicts) ignores loader criteria:
    add the scope to its WHERE. SQLAlchemy cannot synchronize loaded objects with extra WHERE
    criteria, so unless the caller chose otherwise the statement runs with
    ``synchronize_session=None`` (as SQLAlchemy's own error message advises)."""
    mapper = state.bind_mapper
    if mapper is None:
        return
    scope = {k: v for k, v in values.items() if k in column_keys(mapper)}
    if not scope:
        return
    stmt = state.statement.where(*criteria(mapper.class_, scope))  # type: ignore[attr-defined]
    if "synchronize_session" not in state.execution_options:
        stmt = stmt.execution_options(synchronize_session=None)
    state.statement = stmt


def _before_flush(session: Session, flush_context: UOWTransaction, instances: Any) -> None:
    owner = session.info.get(OWNER_KEY)
    if owner is None:
        return
    config = owner.config
    if not tenant_values(owner) and required_names(config) is None:
        return
    for obj in session.new:
        apply_to_object(obj, scope_for(type(obj), owner, config))
    for obj in (*session.dirty, *session.deleted):
        scope = scope_for(type(obj), owner, config)
        state = inspect(obj)
        for key, value in scope.items():
            history = state.attrs[key].history
            now = state.dict.get(key)  # unloaded: None, refused (it cannot be checked)
            if (history.deleted and _differs(history.deleted[0], value)) or _differs(now, value):
                raise InvalidInputError(
                    f"{type(obj).__name__}: a row of another scope cannot be changed or deleted here"
                )


event.listen(TenantSession, "do_orm_execute", _on_execute)
event.listen(TenantSession, "before_flush", _before_flush)


def adopt(session: Any, owner: object) -> None:
    """Give a caller's ``AsyncSession`` (passed as ``session=``) the scope hooks, once."""
    sync = session.sync_session
    if isinstance(sync, TenantSession) or OWNER_KEY in sync.info:
        return
    sync.info[OWNER_KEY] = owner
    event.listen(sync, "do_orm_execute", _on_execute)
    event.listen(sync, "before_flush", _before_flush)
