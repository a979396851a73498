"""Transactions on connections in driver autocommit: explicit BEGIN, the guard, the reset (private).

SQLite (``isolation_level = None``) and MySQL/MariaDB (connected with
``autocommit``) commit each statement by itself outside a transaction. These
hooks give them SQLAlchemy's transaction behaviour back: a BEGIN where
SQLAlchemy begins one, a guard that refuses the rest of a transaction the
database ended by itself, and a pool reset that sends ROLLBACK only when a
transaction is open. The backend answers "is the server in a transaction?"
from what its driver already knows, without a round trip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from .._own_listeners import own
from ..errors import TransactionEndedError

if TYPE_CHECKING:
    from ._base import Backend

__all__ = [
    "BEGIN_AGAIN",
    "BEGIN_WITH",
    "GUARD",
    "install_conditional_reset",
    "install_explicit_begin",
    "install_transaction_guard",
]

#: execution option of a connection whose transactions dsg_lib owns (``transaction()``,
#: sessions): before each statement and the COMMIT, check the database has not ended it
GUARD = "dsg_lib_guard"
#: `GUARD` value of a session that is not a ``transaction()`` block (``get_db_session()``): a
#: statement after the database ended the transaction begins a new one, as it would on a
#: connection without driver autocommit (plain SQLAlchemy), instead of failing
BEGIN_AGAIN = "begin_again"
#: execution option: the statement that begins this connection's next transaction
#: (instead of the dialect's BEGIN); see `snapshot_options`
BEGIN_WITH = "dsg_lib_begin"
#: connection info key: a statement of a guarded MySQL transaction failed, so the
#: transaction state the driver holds is stale (error packets carry no status flags)
_STALE = "dsg_lib_tx_state_stale"


def install_conditional_reset(engine: AsyncEngine, backend: Backend) -> None:
    """Roll back a connection returned to the pool only if it is inside a transaction.

    The MySQL protocol reports the transaction state in every reply and
    sqlite3 tracks it in ``in_transaction``, so this check costs no round trip
    (or thread hop); SQLAlchemy's default reset sends ROLLBACK always.
    """

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_conn: Any, record: Any, reset_state: Any) -> None:
        if reset_state.terminate_only:
            return
        if backend.server_in_transaction(dbapi_conn.driver_connection):
            dbapi_conn.rollback()


def install_transaction_guard(engine: AsyncEngine, backend: Backend, stale_after_error: bool) -> None:
    """Refuse statements (and the COMMIT) of a guarded transaction the database already ended.

    SQLite connections (``isolation_level = None``) and MySQL/MariaDB ones
    (driver autocommit) commit each statement by itself outside a
    transaction. When the database ends a transaction on its own (an implicit
    commit by DDL, a deadlock victim, ``ON CONFLICT ROLLBACK``,
    ``RAISE(ROLLBACK)``), SQLAlchemy still believes it is open, and every
    later statement of the block would commit on its own. The driver reports
    the server's transaction state with each reply, so checking it before
    each statement costs no round trip. Only connections marked with `GUARD`
    are checked: DDL blocks (``create_tables``, a hand-written
    ``engine.begin()``) keep the plain SQLAlchemy behaviour.

    The check sits in the dialect's ``do_execute`` hooks (the last step
    before the driver call), not in ``before_cursor_execute``, so the engine
    keeps no cursor listener a compiled statement would have to honour.
    """
    sync_engine = engine.sync_engine
    message = (
        "the database ended this transaction by itself (an implicit commit by DDL, a deadlock, "
        "or a rollback by a constraint or trigger); the rest of the block is refused and the block fails"
    )

    def ended(conn: Connection) -> bool:
        if not conn.get_execution_options().get(GUARD) or conn.invalidated:
            return False
        raw = conn.connection
        if raw.info.pop(_STALE, False):
            # One COM_PING: its OK packet carries the server's current transaction state.
            try:
                raw.dbapi_connection.run_async(lambda driver: driver.ping(False))  # type: ignore[union-attr]
            except Exception:  # a broken connection: the statement itself will say so
                return False
        return not backend.server_in_transaction(raw.driver_connection)

    def check(cursor: Any, context: Any) -> None:
        conn = context.root_connection
        # in_transaction() is still False while the BEGIN itself runs (see install_explicit_begin)
        if conn.in_transaction() and ended(conn):
            if conn.get_execution_options().get(GUARD) != BEGIN_AGAIN:
                raise TransactionEndedError(message)
            cursor.execute("BEGIN")  # what a connection without autocommit does by itself

    @event.listens_for(sync_engine, "do_execute")
    @own
    def _execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        check(cursor, context)
        return False  # not run here: the dialect runs it

    @event.listens_for(sync_engine, "do_executemany")
    @own
    def _executemany(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        check(cursor, context)
        return False

    @event.listens_for(sync_engine, "do_execute_no_params")
    @own
    def _execute_no_params(cursor: Any, statement: str, context: Any) -> bool:
        check(cursor, context)
        return False

    @event.listens_for(sync_engine, "commit")
    @own  # a no-op outside a guarded transaction, where a compiled statement runs
    def _commit(conn: Connection) -> None:
        if ended(conn) and conn.get_execution_options().get(GUARD) != BEGIN_AGAIN:
            raise TransactionEndedError(message)

    if not stale_after_error:  # sqlite3 knows its state after an error too
        return

    @event.listens_for(sync_engine, "handle_error")
    @own
    def _failed(context: Any) -> None:
        conn = context.connection
        if conn is not None and not conn.invalidated and conn.get_execution_options().get(GUARD):
            conn.connection.info[_STALE] = True


def install_explicit_begin(engine: AsyncEngine, begin: str) -> None:
    """Send ``begin`` where SQLAlchemy begins a transaction, except on the autocommit engine.

    SQLite (``isolation_level = None``) and MySQL/MariaDB (connected with
    ``autocommit``) commit each statement by itself, so a transaction exists
    only where SQLAlchemy begins one: SAVEPOINTs and transactional DDL work,
    and a lone statement outside a transaction costs no COMMIT or ROLLBACK.
    """

    @event.listens_for(engine.sync_engine, "begin")
    @own  # a no-op outside a transaction, where a compiled statement runs
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get("dsg_lib_autocommit") or options.get("isolation_level") == "AUTOCOMMIT":
            return  # a statement outside a transaction: it commits by itself
        conn.connection.info.pop(_STALE, None)  # a new transaction: its state is known again
        conn.exec_driver_sql(options.get(BEGIN_WITH, begin))
