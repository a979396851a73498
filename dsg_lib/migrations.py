"""Alembic migrations driven by a ``DBConfig``: an ``env.py`` of a few lines.

Needs the ``migrations`` extra, which installs Alembic
(``pip install -e ".[migrations]"`` from a checkout). After
``alembic init migrations``, replace the generated
``migrations/env.py`` with:

```python
from dsg_lib import DBConfig
from dsg_lib.migrations import run_migrations

from myapp.models import Base  # the declarative base of your models

run_migrations(DBConfig.from_env("DATABASE_URL"), target_metadata=Base.metadata)
```

``alembic revision --autogenerate``, ``alembic upgrade head``,
``alembic downgrade -1`` and offline ``alembic upgrade head --sql`` then work
on SQLite, PostgreSQL and MySQL/MariaDB (offline on SQLite: every revision
but a batch block that rebuilds a table without ``copy_from=``, which needs a
live database; `ConfigurationError` names it and the fixes):

- online runs use the config's async driver on a dedicated connection (not
  the application pool) and one transaction for the whole run;
- autogenerate renders the library's column types (``UTCDateTime``) with
  their import, so generated revisions run without hand edits;
- on SQLite, revisions are rendered in batch mode, and run with
  ``PRAGMA foreign_keys=OFF`` so that recreating a table never
  cascade-deletes the rows that reference it; ``PRAGMA foreign_key_check``
  runs before the commit and a violation rolls everything back.

Examples:
    >>> from dsg_lib import DBConfig
    >>> options = migration_options(DBConfig({"database_uri": "sqlite:///app.db"}))
    >>> options["render_as_batch"], options["transactional_ddl"]
    (True, True)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import MetaData, event, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.types import TypeEngine

from ._sync_bridge import run_coroutine
from .backends import Backend
from .config import DBConfig
from .database import AsyncDatabase
from .engine import Node, install_hosts
from .errors import ConfigurationError, ConstraintViolationError, MissingDependencyError

__all__ = ["drop_redundant_index_drops", "migration_options", "render_item", "run_migrations"]

RenderItem = Callable[[str, Any, Any], "str | bool"]


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Alembic ``render_item`` hook: render dsg_lib column types with their import.

    Alembic writes a custom type as ``module.Class()`` but does not import the
    module, so the revision fails with ``NameError``. This hook adds
    ``import dsg_lib.schema`` (or the type's module) to the revision. Any other
    object returns ``False``: Alembic renders it as usual.

    Args:
        type_: What Alembic renders (``"type"``, ``"server_default"``, ...).
        obj: The object to render.
        autogen_context: Alembic's ``AutogenContext`` (its ``imports`` set is
            written into the revision).

    Returns:
        The Python source for ``obj``, or ``False`` for Alembic's default.

    Examples:
        >>> from types import SimpleNamespace
        >>> from dsg_lib.schema import UTCDateTime
        >>> ctx = SimpleNamespace(imports=set())
        >>> render_item("type", UTCDateTime(), ctx)
        'dsg_lib.schema.UTCDateTime()'
        >>> ctx.imports
        {'import dsg_lib.schema'}
        >>> render_item("type", object(), ctx)
        False
    """
    if type_ != "type" or not isinstance(obj, TypeEngine):
        return False
    module = type(obj).__module__
    if module.split(".")[0] != "dsg_lib":
        return False
    autogen_context.imports.add(f"import {module}")
    return f"{module}.{type(obj).__name__}()"


def migration_options(
    db_config: DBConfig,
    target_metadata: MetaData | Sequence[MetaData] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The keyword arguments ``run_migrations`` gives ``alembic.context.configure``.

    Useful when you write your own ``env.py`` but want the same behaviour:
    type comparison, dsg_lib types rendered with imports and, on SQLite,
    batch mode and one real transaction.

    Args:
        db_config: The database.
        target_metadata: The models' ``MetaData`` (for autogenerate).
        **options: Other ``context.configure`` arguments; they win. A
            ``render_item`` or ``process_revision_directives`` of yours is
            called first, then dsg_lib's.

    Examples:
        >>> from dsg_lib import DBConfig
        >>> opts = migration_options(DBConfig({"database_uri": "postgresql://u@h/db"}), None)
        >>> opts["render_as_batch"], opts["compare_type"]
        (False, True)
    """
    batch = db_config.backend.batch_migrations
    mine = options.pop("render_item", None)
    directives = options.pop("process_revision_directives", None)
    result: dict[str, Any] = {
        "target_metadata": target_metadata,
        "compare_type": True,
        "render_as_batch": batch,
        "render_item": render_item if mine is None else _chain(mine),
        "process_revision_directives": _then_drop_redundant_indexes(directives),
    }
    if batch:
        # The migration engine issues a real BEGIN (see _migration_engine): DDL is transactional.
        result["transactional_ddl"] = True
    result.update(options)
    return result


def _chain(first: RenderItem) -> RenderItem:
    def chained(type_: str, obj: Any, autogen_context: Any) -> str | bool:
        rendered = first(type_, obj, autogen_context)
        return rendered if rendered is not False else render_item(type_, obj, autogen_context)

    return chained


def drop_redundant_index_drops(context: Any, revision: Any, directives: list[Any]) -> None:
    """Alembic ``process_revision_directives`` hook: no ``drop_index`` before ``drop_table``.

    Autogenerate drops each index of a table before dropping the table. On
    MySQL/MariaDB that fails for the index a foreign key needs
    (``Cannot drop index ...: needed in a foreign key constraint``), so the
    downgrade of a first revision would not run. Dropping the table drops its
    indexes on every database: the separate drops are removed.

    Args:
        context: Alembic's ``MigrationContext`` (unused).
        revision: The revision tuple (unused).
        directives: Alembic's directives; ``MigrationScript`` objects are edited in place.

    Examples:
        >>> from alembic.operations import ops
        >>> script = ops.MigrationScript(
        ...     "rev", ops.UpgradeOps([]),
        ...     ops.DowngradeOps([
        ...         ops.ModifyTableOps("t", [ops.DropIndexOp("ix_t_a", table_name="t")]),
        ...         ops.DropTableOp("t"),
        ...     ]))
        >>> drop_redundant_index_drops(None, None, [script])
        >>> [type(op).__name__ for op in script.downgrade_ops.ops]
        ['DropTableOp']
    """
    from alembic.operations import ops

    for script in directives:
        if isinstance(script, ops.MigrationScript):
            for container in [*script.upgrade_ops_list, *script.downgrade_ops_list]:
                _drop_index_drops(container, ops)


def _drop_index_drops(container: Any, ops: Any) -> None:
    """Remove, from ``container``, index drops of the tables it drops (also inside ``ModifyTableOps``)."""
    dropped = {(op.schema, op.table_name) for op in container.ops if isinstance(op, ops.DropTableOp)}
    kept = []
    for op in container.ops:
        if isinstance(op, ops.DropIndexOp) and (op.schema, op.table_name) in dropped:
            continue
        if isinstance(op, ops.ModifyTableOps) and (op.schema, op.table_name) in dropped:
            op.ops = [sub for sub in op.ops if not isinstance(sub, ops.DropIndexOp)]
            if not op.ops:
                continue
        kept.append(op)
    container.ops = kept


def _then_drop_redundant_indexes(mine: Callable[..., None] | None) -> Callable[..., None]:
    if mine is None:
        return drop_redundant_index_drops

    def both(context: Any, revision: Any, directives: list[Any]) -> None:
        mine(context, revision, directives)
        drop_redundant_index_drops(context, revision, directives)

    return both


def run_migrations(
    database: AsyncDatabase | DBConfig | str,
    target_metadata: MetaData | Sequence[MetaData] | None = None,
    **options: Any,
) -> None:
    """Run Alembic from ``env.py``, offline (``--sql``) or online, on ``database``.

    Args:
        database: An ``AsyncDatabase``, a ``DBConfig`` or a URL string.
        target_metadata: The models' ``MetaData``; defaults to
            ``database.Base.metadata`` for an ``AsyncDatabase``.
        **options: Extra ``alembic.context.configure`` arguments
            (``include_object``, ``compare_server_default``, ...).

    Raises:
        MissingDependencyError: Alembic is not installed.
        ConfigurationError: an in-memory SQLite database (each process has its own).
        ConstraintViolationError: on SQLite, the migration left rows that break
            a foreign key; nothing was committed.

    Examples:
        ```python
        # migrations/env.py
        from dsg_lib import DBConfig
        from dsg_lib.migrations import run_migrations
        from myapp.models import Base

        run_migrations(DBConfig.from_env("DATABASE_URL"), target_metadata=Base.metadata)
        ```

        Outside Alembic it only explains where it belongs:

        >>> run_migrations("sqlite://")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        dsg_lib.errors.ConfigurationError: run_migrations() runs inside Alembic's env.py ...
    """
    context = _alembic_context()
    if isinstance(database, AsyncDatabase):
        db_config = database.db_config
        if target_metadata is None:
            target_metadata = database.Base.metadata
    else:
        db_config = database if isinstance(database, DBConfig) else DBConfig({"database_uri": database})
    opts = migration_options(db_config, target_metadata, **options)
    if context.is_offline_mode():
        _run_offline(context, db_config, opts)
        return
    connection = context.config.attributes.get("connection")
    if connection is not None:  # the caller runs Alembic's command API on its own connection
        _migrate(connection, context, opts, db_config.backend)
        return
    if db_config.is_memory:
        raise ConfigurationError(
            "an in-memory SQLite database cannot be migrated by the alembic command "
            "(each process has its own); use a file URL or create_tables()"
        )
    with db_config.errors():
        run_coroutine(_run_online(context, db_config, opts))


def _alembic_context() -> Any:
    """``alembic.context``, available only while Alembic runs ``env.py``."""
    try:
        from alembic import context
    except ImportError:
        raise MissingDependencyError(
            'Alembic is not installed; install it with: pip install "dsg-lib[migrations]"'
        ) from None
    try:
        context.is_offline_mode()
    except (AttributeError, NameError):  # the proxy is empty outside an Alembic command
        raise ConfigurationError(
            "run_migrations() runs inside Alembic's env.py (alembic upgrade head, "
            "alembic revision --autogenerate ...), not on its own"
        ) from None
    return context


def _run_offline(context: Any, db_config: DBConfig, opts: dict[str, Any]) -> None:
    """Write the SQL script (``alembic upgrade head --sql``); the URL only picks the dialect."""
    batch = db_config.backend.batch_migrations
    context.configure(
        url=db_config.async_url(), literal_binds=True, dialect_opts={"paramstyle": "named"}, **opts
    )
    if batch:
        context.execute("PRAGMA foreign_keys=OFF")  # must precede BEGIN to take effect
    try:
        with context.begin_transaction():
            context.run_migrations()
            if batch:
                context.execute("PRAGMA foreign_key_check")
    except Exception as exc:
        if batch and "batch mode" in str(exc):
            raise ConfigurationError(_offline_rebuild_message(exc)) from None
        raise


def _offline_rebuild_message(exc: BaseException) -> str:
    """Why an offline SQLite script stopped at a table rebuild, naming the revision and table, and the fixes.

    Alembic's message names the table; the revision is the Alembic revision
    module whose ``upgrade()``/``downgrade()`` was running (a frame of the traceback).
    """
    found = re.search(r'reflect the table "([^"]+)"', str(exc))
    table = found.group(1) if found else "<table>"
    revision, down = "<revision>", "<previous revision>"
    tb = exc.__traceback__
    while tb is not None:
        names = tb.tb_frame.f_globals
        if isinstance(names.get("revision"), str) and "down_revision" in names:
            revision, before = names["revision"], names["down_revision"]
            down = ",".join(before) if isinstance(before, (tuple, list)) else str(before)
        tb = tb.tb_next
    complete = (
        f"; the revisions up to {down} can be written with 'alembic upgrade <start>:{down} --sql'"
        if down != "None"
        else ""
    )
    return (
        f'revision {revision} rebuilds table "{table}" (SQLite batch mode: a change other than '
        "add_column, create_index or drop_index), and an offline (--sql) script cannot: Alembic "
        "copies the table from its current definition, which only a live database gives. The "
        f"script written so far is incomplete (it stops inside revision {revision}, without "
        f"COMMIT){complete}. Either run that revision online (alembic upgrade {revision}), "
        "or make it work offline: pass the table as it is before the revision, "
        f'batch_alter_table("{table}", copy_from=Table(...)); see docs/migrations.md'
    )


async def _run_online(context: Any, db_config: DBConfig, opts: dict[str, Any]) -> None:
    engine = _migration_engine(db_config)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate, context, opts, db_config.backend)
    finally:
        await engine.dispose()


def _migrate(connection: Connection, context: Any, opts: dict[str, Any], backend: Backend) -> None:
    context.configure(connection=connection, **opts)
    with context.begin_transaction():
        context.run_migrations()
        if backend.batch_migrations:  # foreign keys were off for the batch copies: check them now
            _check_foreign_keys(connection)


def _check_foreign_keys(connection: Connection) -> None:
    """Fail (and so roll back) when the run left rows that break a foreign key."""
    rows = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if rows:
        table, _rowid, parent, _fk = rows[0]
        raise ConstraintViolationError(
            f"the migration left {len(rows)} row(s) violating foreign keys "
            f"(first: table '{table}' -> '{parent}'); nothing was committed"
        )


def _migration_engine(db_config: DBConfig) -> AsyncEngine:
    """A one-connection engine for Alembic, without the application pool's hooks.

    The application engine forces ``PRAGMA foreign_keys=ON`` on SQLite; a
    batch migration (copy table, drop the old one) would then cascade-delete
    every child row. Here foreign keys are switched off on connect, outside
    any transaction (inside one the pragma is a no-op), and the transaction
    Alembic begins is a real ``BEGIN IMMEDIATE``. On the servers each host
    gets ``connect_timeout`` (TCP, TLS, handshake, login), as in the
    application pool, and a multi-host URI moves on to the next host.
    """
    connect_args = db_config.connect_args(hide_secrets=False)
    if db_config.option("pgbouncer"):  # a PostgreSQL-only key
        connect_args.setdefault("statement_cache_size", 0)
    engine = create_async_engine(
        db_config.async_url(hide_password=False), poolclass=pool.NullPool, connect_args=connect_args
    )
    # the application engine's bound: each host within connect_timeout, the next host tried
    hosts = [Node(n.host, n.port) for n in db_config.nodes.nodes] if db_config.nodes else []
    install_hosts(engine, db_config.backend, hosts, db_config.connect_timeout)
    if db_config.backend.batch_migrations:
        _install_sqlite_migration_hooks(engine, int(db_config.option("busy_timeout_ms", 5000)))
    return engine


def _install_sqlite_migration_hooks(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy, not sqlite3, decides where BEGIN goes
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
